"""The report on hand-made run folders: published vs reproduced tables, 'no run' cells, unmatched rows, index."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from mintkit.batch import cli
from mintkit.batch import report
from mintkit.core.records import Run

T1 = dict(table="Table 1", setup="Entry", condition="Active")


def _run(folder, seed, rows, paper="amint", finish=True):
    run = Run(folder, paper, {"seed": seed}, seed=seed, protocol="paper")
    for keys, metrics, audited in rows:
        run.add_metrics(metrics, audited, **keys)
    (run.dir / "roc.png").write_bytes(b"\x89PNG fixture")
    if finish:
        run.finish()
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    runs = root / "runs"
    paper = runs / "paper" / "amint"
    mnist = dict(T1, dataset="MNIST", model="ResNet50")
    for seed, v in [(0, 0.80), (1, 0.84)]:
        _run(paper / f"table1-seed={seed}-0000000{seed}", seed,
             [(mnist, {"mint_accuracy": v, "auc": 0.9}, {"audited_accuracy": 0.95, "audited_train_accuracy": 1.0})])
    _run(paper / "table1-broken", 0, [(mnist, {"mint_accuracy": 0.1}, {})], finish=False)  # not complete
    (paper.parent / "batch.json").write_text(json.dumps(
        {"profile": "paper", "commands": ["python -m mintkit reproduce --profile paper"], "runs": {}}))
    quick = runs / "quick" / "amint" / "quick-11111111"
    _run(quick, 0, [(dict(T1, table="", dataset="digits", model="SmallCNN"), {"mint_accuracy": 0.61},
                     {"audited_accuracy": 0.9})])
    out = root / "figures"
    assert cli.main(["report", "--runs", str(runs), "--out", str(out), "--paper", "amint"]) == 0
    return out


def test_published_reproduced_difference_and_no_run(built):
    t = pd.read_csv(built / "amint" / "table1.csv", keep_default_na=False)
    row = t[(t.dataset == "MNIST") & (t.model == "ResNet50") & (t.setup == "Entry") & (t.metric == "mint_accuracy")]
    assert len(row) == 1
    r = row.iloc[0].replace("", float("nan"))
    num = lambda k: float(r[k])  # noqa: E731
    assert num("published") == 0.83 and num("reproduced") == pytest.approx(0.82) and num("n_seeds") == 2
    assert num("sd") == pytest.approx(0.0282843, abs=1e-5) and num("difference") == pytest.approx(-0.01)
    assert num("audited_accuracy_published") == 0.97 and num("audited_accuracy_reproduced") == pytest.approx(0.95)
    assert r.status == "reproduced"
    other = t[(t.model == "MobileNet") & (t.metric == "mint_accuracy")]
    assert (other.status == "no run").all() and (other.reproduced == "").all()  # never filled from the paper
    assert len(t[t.metric == "mint_accuracy"]) == 72 and not (t.metric == "audited_accuracy").any()
    md = (built / "amint" / "table1.md").read_text()
    assert "| MNIST / ResNet50 | 0.83 → 0.82 ± 0.03 (Δ -0.01) | 0.82 → no run |" in md
    assert "Audited model, test accuracy" in md and "0.97 → 0.95" in md
    assert (built / "amint" / "table1.png").exists() and (built / "amint" / "table1.pdf").exists()
    t2 = pd.read_csv(built / "amint" / "table2.csv", keep_default_na=False)
    assert (t2.status == "no run").all()


def test_unmatched_rows_are_a_labelled_table(built):
    md = (built / "amint" / "reproduced_no_published_counterpart.md").read_text()
    assert "**quick**" in md and "digits / SmallCNN" in md and "0.610" in md
    csv = pd.read_csv(built / "amint" / "reproduced_no_published_counterpart.csv", keep_default_na=False)
    assert set(csv.dataset) == {"digits"} and "MNIST" not in set(csv.dataset)


def test_index_lists_profiles_commands_figures_and_left_out_runs(built):
    index = (built / "README.md").read_text()
    assert "**paper, quick**" in index
    assert "python -m mintkit reproduce --profile paper" in index
    assert "python -m mintkit report --runs" in index
    assert "table1-broken`: unfinished" in index
    assert "[png](amint/table1.png)" in index
    assert (built / "amint" / "runs" / "paper" / "table1-seed=0-00000000" / "roc.png").exists()
    assert (built / "amint" / "runs" / "quick" / "quick-11111111" / "roc.png").exists()
    assert not (built / "amint" / "runs" / "paper" / "table1-broken").exists()


def test_report_without_runs_says_no_run_everywhere(tmp_path):
    report.build(tmp_path / "none", tmp_path / "fig", papers=["factors"])
    t = pd.read_csv(tmp_path / "fig" / "factors" / "table1.csv", keep_default_na=False)
    assert (t.status == "no run").all()
    assert "no run" in (tmp_path / "fig" / "factors" / "table1.md").read_text()


def test_slugs_and_unknown_paper():
    assert report.slug("mint", "Fig. 5", "mint") == "fig5"
    assert report.slug("mint-demo", "Table 1", "mint") == "demo-table1"
    with pytest.raises(ValueError, match="valid: mint, amint, gmint, factors"):
        report.build("runs", "figures", papers=["nope"])
