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
             [(mnist, {"accuracy": v, "auc": 0.9}, {"audited_accuracy": 0.95, "audited_train_accuracy": 1.0})])
    _run(paper / "table1-broken", 0, [(mnist, {"accuracy": 0.1}, {})], finish=False)  # not complete
    (paper.parent / "batch.json").write_text(json.dumps(
        {"profile": "paper", "commands": ["python -m mintkit reproduce --profile paper"], "runs": {}}))
    quick = runs / "quick" / "amint" / "quick-11111111"
    _run(quick, 0, [(dict(T1, table="", dataset="digits", model="SmallCNN"), {"accuracy": 0.61},
                     {"audited_accuracy": 0.9})])
    (quick.parent.parent / "batch.json").write_text(json.dumps({"profile": "quick", "commands": [], "runs": {}}))
    out = root / "figures"
    assert cli.main(["report", "--runs", str(runs), "--out", str(out), "--paper", "amint"]) == 0
    return out


def test_published_reproduced_difference_and_no_run(built):
    t = pd.read_csv(built / "amint" / "table1.csv", keep_default_na=False)
    row = t[(t.dataset == "MNIST") & (t.model == "ResNet50") & (t.setup == "Entry") & (t.metric == "accuracy")]
    assert len(row) == 1
    r = row.iloc[0].replace("", float("nan"))
    num = lambda k: float(r[k])  # noqa: E731
    assert num("published") == 0.83 and num("reproduced") == pytest.approx(0.82) and num("n_seeds") == 2
    assert num("sd") == pytest.approx(0.0282843, abs=1e-5) and num("difference") == pytest.approx(-0.01)
    assert num("audited_accuracy_published") == 0.97 and num("audited_accuracy_reproduced") == pytest.approx(0.95)
    assert r.status == "reproduced"
    other = t[(t.model == "MobileNet") & (t.metric == "accuracy")]
    assert (other.status == "no run").all() and (other.reproduced == "").all()  # never filled from the paper
    assert len(t[t.metric == "accuracy"]) == 72 and not (t.metric == "audited_accuracy").any()
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


def test_report_on_a_missing_or_empty_runs_folder_exits_2(tmp_path, capsys):
    """A mistyped --runs must not write an all-'no run' report over the figures."""
    assert cli.main(["report", "--runs", str(tmp_path / "typo"), "--out", str(tmp_path / "fig")]) == 2
    assert "runs folder" in capsys.readouterr().err and not (tmp_path / "fig").exists()
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", "--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "fig")]) == 2
    assert "holds no run folder" in capsys.readouterr().err and not (tmp_path / "fig").exists()


def test_report_with_only_unrelated_runs_says_no_run_everywhere(tmp_path):
    _run(tmp_path / "runs" / "quick" / "mint" / "quick-1", 0, [(dict(table="", dataset="digits", model="SmallCNN"),
                                                               {"accuracy": 0.6}, {})], paper="mint")
    report.build(tmp_path / "runs", tmp_path / "fig", papers=["factors"], include_adhoc=True)
    t = pd.read_csv(tmp_path / "fig" / "factors" / "table1.csv", keep_default_na=False)
    assert (t.status == "no run").all()
    assert "no run" in (tmp_path / "fig" / "factors" / "table1.md").read_text()


def test_slugs_and_unknown_paper():
    assert report.slug("mint", "Fig. 5", "mint") == "fig5"
    assert report.slug("mint-demo", "Table 1", "mint") == "demo-table1"
    with pytest.raises(ValueError, match="valid: mint, amint, gmint, factors"):
        report.build("runs", "figures", papers=["nope"])


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """Three seeds of two aMINT MNIST cells run on the 10k test split (the mnist profile's stand-in)."""
    root = tmp_path_factory.mktemp("standin")
    runs = root / "runs" / "mnist" / "amint"
    split = {"pool": "mnist-test", "pool_size": 10000, "seed": 0,
             "sizes": {"members": 4500, "external": 4500, "mint_train_members": 4000, "eval_members": 500,
                       "eval_nonmembers": 500}}
    for seed in range(3):
        folder = runs / f"table1-seed={seed}"
        run = Run(folder, "amint", {"dataset": "mnist-test", "seed": seed}, seed=seed, protocol="paper")
        for model, v in (("MobileNet", 0.70 + 0.01 * seed), ("ResNet50", 0.84)):
            run.add_metrics({"accuracy": v, "auc": v}, {"audited_accuracy": 0.97},
                            **dict(T1, dataset="MNIST (test split)", model=model))
        (folder / "split.json").write_text(json.dumps(split | {"seed": seed}))
        run.finish()
    (runs.parent / "batch.json").write_text(json.dumps({"profile": "mnist", "commands": [], "runs": {}}))
    (runs.parent / "NOTE.md").write_text("Only MobileNet and ResNet50 ran: the other cells need a GPU.\n")
    out = root / "figures"
    assert cli.main(["report", "--runs", str(root / "runs"), "--out", str(out), "--paper", "amint"]) == 0
    return out


def test_standin_rows_sit_beside_the_published_cells_with_data_and_reasons(standin):
    t = pd.read_csv(standin / "amint" / "table1.csv", keep_default_na=False)
    acc = t[(t.metric == "accuracy") & (t.dataset == "MNIST") & (t.setup == "Entry")].set_index("model")
    mob, res = acc.loc["MobileNet"], acc.loc["ResNet50"]
    assert float(mob.reproduced) == pytest.approx(0.71) and int(mob.n_seeds) == 3
    assert "stand-in" in mob.data and "10,000 images" in mob.data and "D 4,500" in mob.data
    pub = float(mob.published)
    assert abs(0.71 - pub) > 0.05 and mob.reason == "stand-in data and scale (see the data column)"
    assert abs(0.84 - float(res.published)) <= 0.05 and res.reason == ""  # small Δ: no reason needed
    md = (standin / "amint" / "table1.md").read_text()
    assert f"{pub:.2f} → 0.71 ± 0.01 (Δ {0.71 - pub:+.2f})†‡" in md
    assert "‡ Cells with |Δ| > 0.05, or an audited accuracy more than 0.03 from the published one, and their reason" in md and "MNIST / MobileNet / Entry" in md


def test_index_shows_the_batch_note_on_what_did_not_run(standin):
    index = (standin / "README.md").read_text()
    assert "About the `mnist` batch (its NOTE.md):" in index
    assert "Only MobileNet and ResNet50 ran: the other cells need a GPU." in index


def test_table_figure_colours_reproduced_cells(standin):
    """The colour scale shows Δ: reproduced cells are coloured, 'no run' cells stay the neutral background."""
    import matplotlib.image as mpimg
    img = mpimg.imread(standin / "amint" / "table1.png")[..., :3]
    saturation = img.max(-1) - img.min(-1)
    assert (saturation > 0.25).mean() > 0.001  # some cells carry a clearly visible colour


def test_mplus_loss_rows_of_each_setup_are_kept_and_shared_rows_counted_once(tmp_path):
    """M+ is trained per setup: its loss row (an older run wrote it without a setup) must not collide across setups;
    the passive model's loss row is the same model in every setup run and repeats its value."""
    from mintkit.batch.collect import collect
    runs = tmp_path / "runs" / "mnist" / "amint"
    keys = dict(table="Table 3", dataset="MNIST", model="MobileNet", setup="")
    for setup, v in (("entry", 0.85), ("middle", 0.62), ("output", 0.54)):
        run = Run(runs / f"table1-setup={setup}", "amint", {"setup": setup, "seed": 0}, seed=0, protocol="paper")
        run.add_metrics({"accuracy": v}, {}, condition="Yeom et al. (on M+)", **keys)
        run.add_metrics({"accuracy": 0.91}, {}, condition="Yeom et al.", **keys)
        run.finish()
    rows, _ = collect(tmp_path / "runs")
    mplus = rows[rows.condition == "Yeom et al. (on M+)"].set_index("setup")["value"]
    assert mplus.to_dict() == {"Entry": 0.85, "Middle": 0.62, "Output": 0.54}
    assert (rows.condition == "Yeom et al.").sum() == 1
    assert rows.attrs == {"duplicates": 0, "repeats": 2}


def test_figure_footer_names_only_the_runs_that_filled_cells():
    """A quick-profile run on digits sits in no published cell: the table's footer must not name its profile."""
    cell = dict(paper="amint", table="Table 1", dataset="MNIST", model="MobileNet", setup="Entry", condition="Active",
                feature="", metric="accuracy")
    pub = pd.DataFrame([cell | {"value": 0.86}])
    rep = pd.DataFrame([cell | {"value": 0.64, "protocol": "paper", "seed": 0, "run_dir": "/nowhere/a",
                                "profile": "mnist", "data": "MNIST (stand-in: 10k)"},
                        cell | {"dataset": "digits", "model": "SmallCNN", "value": 0.6, "protocol": "paper", "seed": 0,
                                "run_dir": "/nowhere/b", "profile": "quick", "data": "digits"}])
    footer = report.provenance(rep, report.compare(pub, rep))
    assert footer.startswith("profile mnist; seeds 0; data MNIST (stand-in: 10k)") and "quick" not in footer


def test_fp32_and_bf16_runs_never_share_a_mean(tmp_path):
    """Rows of runs made in different precisions are two views of a table, each with its own mean."""
    cell = dict(paper="amint", table="Table 1", dataset="MNIST", model="MobileNet", setup="Entry", condition="Active",
                feature="", metric="accuracy")
    pub = pd.DataFrame([cell | {"value": 0.86}])
    rep = pd.DataFrame([cell | {"value": v, "protocol": "paper", "seed": s, "run_dir": f"/nowhere/{q}{s}",
                                "profile": "mnist", "data": "MNIST", "precision": q, "variant": "definition"}
                        for q, s, v in (("fp32", 0, 0.60), ("fp32", 1, 0.62), ("bf16", 0, 0.80))])
    out = report.table_outputs("aMINT", "Table 1", pub, rep, tmp_path, "t1", "amint")
    comp = pd.read_csv(tmp_path / "t1.csv")
    got = comp.set_index("precision")["reproduced"].to_dict()
    assert got == pytest.approx({"bf16": 0.80, "fp32": 0.61})
    assert "protocol `paper`, bf16" in (tmp_path / "t1.md").read_text()
    # two views (fp32, bf16) of one published cell: the index counts one cell reproduced under the definition
    assert out["views"]["definition"] == 1


def test_make_reproduce_report_keeps_the_committed_cells(tmp_path, monkeypatch):
    """`make reproduce` reports only the quick runs into figures/: the cells an earlier report made from the
    MNIST runs (the committed figures) must survive it, with the index naming which runs folder made which."""
    monkeypatch.chdir(tmp_path)
    mnist = tmp_path / "mnist-runs" / "mnist" / "amint"
    cell = dict(T1, dataset="MNIST", model="MobileNet")
    for seed, v in [(0, 0.70), (1, 0.72)]:
        _run(mnist / f"table1-seed={seed}", seed, [(cell, {"accuracy": v, "n_eval_members": 50,
                                                            "n_eval_nonmembers": 50}, {"audited_accuracy": 0.6})])
    (mnist.parent / "batch.json").write_text(json.dumps({"profile": "mnist", "commands": ["mnist batch"]}))
    figures = tmp_path / "figures"
    assert cli.main(["report", "--runs", "mnist-runs", "--out", "figures", "--paper", "amint"]) == 0
    (figures / "sources.json").unlink()  # as committed before the kit kept sources: read back from the index
    for csv in (figures / "amint").glob("*.csv"):
        pd.read_csv(csv, keep_default_na=False).drop(columns="source").to_csv(csv, index=False)
    committed = pd.read_csv(figures / "amint" / "table1.csv", keep_default_na=False)
    # a fresh checkout: only the quick profile ran, on digits (no published cell), plus one rerun cell
    quick = tmp_path / "runs" / "quick" / "amint"
    _run(quick / "quick-1", 0, [(dict(T1, table="", dataset="digits", model="SmallCNN"), {"accuracy": 0.61}, {})])
    _run(quick / "rerun", 0, [(dict(cell, model="ResNet50"), {"accuracy": 0.9}, {})])
    (quick.parent / "batch.json").write_text(json.dumps({"profile": "quick", "commands": ["quick batch"]}))
    assert cli.main(["report", "--runs", "runs/quick", "--out", "figures", "--paper", "amint"]) == 0
    t = pd.read_csv(figures / "amint" / "table1.csv", keep_default_na=False)
    key = ["dataset", "model", "setup", "condition", "metric", "protocol"]
    mob = t[(t.model == "MobileNet") & (t.dataset == "MNIST") & (t.setup == "Entry") & (t.metric == "accuracy")
            & (t.protocol == "paper")].iloc[0]
    assert float(mob.reproduced) == pytest.approx(0.71) and int(mob.n_seeds) == 2 and mob.status == "reproduced"
    assert float(mob.audited_accuracy_reproduced) == pytest.approx(0.6) and mob.source == "earlier report"
    # the evaluated counts the ledger reads stay with the kept cell, though the quick runs wrote none
    assert float(mob.n_eval_reproduced) == 100
    assert float(mob.difference) == pytest.approx(0.71 - float(mob.published))
    res = t[(t.model == "ResNet50") & (t.dataset == "MNIST") & (t.setup == "Entry") & (t.metric == "accuracy")
            & (t.protocol == "paper")].iloc[0]
    assert float(res.reproduced) == pytest.approx(0.9) and res.source == "runs/quick"
    before = committed[committed.n_seeds.astype(int) > 0].set_index(key)["reproduced"]
    after = t.set_index(key)["reproduced"]
    assert all(after.loc[k] != "" for k in before.index)  # no committed cell went back to 'no run'
    index = (figures / "README.md").read_text()
    assert "`runs/quick`: 1" in index and "`earlier report`: " in index and "mnist batch" in index
    assert "quick batch" in index
    assert "digits / SmallCNN" in (figures / "amint" / "reproduced_no_published_counterpart.md").read_text()
    # a second quick report keeps both, now from sources.json
    assert cli.main(["report", "--runs", "runs/quick", "--out", "figures", "--paper", "amint"]) == 0
    again = pd.read_csv(figures / "amint" / "table1.csv", keep_default_na=False)
    assert again.set_index(key)["reproduced"].equals(after) and "mnist batch" in (figures / "README.md").read_text()


def test_the_index_names_no_folder_of_the_machine_that_made_it(tmp_path, monkeypatch):
    """A batch run with absolute --out, data_root and cache_dir: the index and sources.json give the runs folder as
    the repository names it and `<data_root>` / `<cache_dir>`, never the machine's folders."""
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs" / "mnist"
    _run(runs / "amint" / "table1-seed=0-00000000", 0,
         [(dict(T1, dataset="MNIST", model="MobileNet"), {"accuracy": 0.8}, {"audited_accuracy": 0.9})])
    machine = "/home/someone/big disk"
    (runs / "batch.json").write_text(json.dumps({"profile": "mnist", "runs": {}, "commands": [
        f"python -m mintkit reproduce --profile mnist -p data_root '{machine}/data' -p cache_dir {tmp_path}/cache "
        f"-p n_members 5000 --out {runs}"]}))
    assert cli.main(["report", "--runs", str(runs), "--out", "figures"]) == 0
    for name in ("README.md", "sources.json"):
        text = (tmp_path / "figures" / name).read_text()
        assert str(tmp_path) not in text and machine not in text, name
    index = (tmp_path / "figures" / "README.md").read_text()
    assert ("python -m mintkit reproduce --profile mnist -p data_root <data_root> -p cache_dir <cache_dir> "
            "-p n_members 5000 --out runs/mnist") in index


def test_seeds_run_in_separate_sessions_pool_into_one_cell(tmp_path, monkeypatch):
    """Seed 0 reported from one runs folder, seeds 1-2 of the same settings later from another: the merged cell is
    the mean ± sd over all three seeds (as if one folder held them), names both folders and lists the seeds. A
    rerun of a seed the cell already holds, or other settings, replaces it instead."""
    monkeypatch.chdir(tmp_path)
    cell = dict(T1, dataset="MNIST", model="MobileNet")
    values, accs = {0: 0.80, 1: 0.84, 2: 0.79}, {0: 0.90, 1: 0.94, 2: 0.92}

    def report_of(name, seeds, offset=0.0):
        for s in seeds:
            _run(tmp_path / name / "mnist" / "amint" / f"t1-seed={s}", s,
                 [(cell, {"accuracy": values[s] + offset}, {"audited_accuracy": accs[s]})])
        assert cli.main(["report", "--runs", name, "--out", "figures", "--paper", "amint", "--include-adhoc"]) == 0
        t = pd.read_csv(tmp_path / "figures" / "amint" / "table1.csv", keep_default_na=False)
        return t[(t.model == "MobileNet") & (t.dataset == "MNIST") & (t.setup == "Entry") & (t.protocol == "paper")
                 & (t.condition == "Active") & (t.metric == "accuracy")].iloc[0]

    first = report_of("runs-a", [0])
    assert int(first.n_seeds) == 1 and str(first.seeds) == "0"
    both = report_of("runs-b", [1, 2])
    v = pd.Series(values)
    assert int(both.n_seeds) == 3 and both.seeds == "0,1,2" and both.source == "runs-a, runs-b"
    assert float(both.reproduced) == pytest.approx(v.mean()) and float(both.sd) == pytest.approx(v.std(ddof=1))
    assert float(both.audited_accuracy_reproduced) == pytest.approx(pd.Series(accs).mean())
    assert float(both.audited_accuracy_sd) == pytest.approx(pd.Series(accs).std(ddof=1))
    assert cli.main(["report", "--runs", "runs-b", "--out", "figures", "--paper", "amint",
                     "--include-adhoc"]) == 0  # reported again
    again_b = report_of("runs-b", [])
    assert int(again_b.n_seeds) == 3 and float(again_b.reproduced) == pytest.approx(v.mean())
    again = report_of("runs-c", [2], offset=0.1)  # seed 2 rerun: it replaces, never counted twice
    assert int(again.n_seeds) == 1 and float(again.reproduced) == pytest.approx(0.89) and again.source == "runs-c"


def test_pooling_needs_the_same_settings_and_is_exact():
    from mintkit.batch import merge
    rng = pd.Series([0.3, 0.5, 0.45, 0.61, 0.52])
    a, b = rng[:2], rng[2:]
    m, sd, n = merge.pool((a.mean(), a.std(ddof=1), 2), (b.mean(), b.std(ddof=1), 3))
    assert (m, sd, n) == (pytest.approx(rng.mean()), pytest.approx(rng.std(ddof=1)), 5)
    assert merge.pool((0.5, float("nan"), 1), (float("nan"), float("nan"), 0))[:1] == (0.5,)  # nothing to add
    assert merge.settings_of("MNIST; D 5,000; wall 1,142 s | MNIST; D 5,000; wall 3,528 s") == {"MNIST; D 5,000"}
    assert merge.settings_of("MNIST; D 5,000; wall 9 s") != merge.settings_of("MNIST; D 2,000; wall 9 s")
    assert merge.seeds_of("", 3) == {0, 1, 2} and merge.seeds_of("1,2", 2) == {1, 2}


def _tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_report_after_a_notebook_run_leaves_the_committed_figures_unchanged(tmp_path, monkeypatch, capsys):
    """README step 3 on a clone where only a notebook ran (its default out_dir runs/scratch) and an audit demo: the
    plain `report` writes nothing into figures/ and says why; a batch beside them is reported without them."""
    monkeypatch.chdir(tmp_path)
    cell = dict(T1, dataset="MNIST", model="MobileNet")
    _run(tmp_path / "runs" / "scratch", 0, [(cell, {"accuracy": 0.51}, {"audited_accuracy": 0.4})])
    _run(tmp_path / "runs" / "audit-demo" / "run", 0, [(cell, {"accuracy": 0.52}, {})], paper="audit")
    figures = tmp_path / "figures"
    (figures / "amint").mkdir(parents=True)
    (figures / "README.md").write_text("# committed figures\n")
    (figures / "amint" / "table1.csv").write_text("committed,cells\n")
    before = _tree(figures)
    assert cli.main(["report"]) == 2
    err = capsys.readouterr().err
    assert "only runs made outside a batch" in err and "--include-adhoc" in err and "runs/scratch" in err
    assert _tree(figures) == before
    # a batch beside the scratch run: the batch is reported, the scratch run is left out with one line
    _run(tmp_path / "runs" / "mnist" / "amint" / "t1-seed=0", 0, [(cell, {"accuracy": 0.83}, {})])
    (tmp_path / "runs" / "mnist" / "batch.json").write_text(json.dumps({"profile": "mnist", "runs": {}}))
    assert cli.main(["report", "--paper", "amint", "--out", "fig2"]) == 0
    out = capsys.readouterr().out
    assert "note: left out 2 run(s) made outside a batch" in out
    t = pd.read_csv(tmp_path / "fig2" / "amint" / "table1.csv", keep_default_na=False)
    got = t[(t.model == "MobileNet") & (t.metric == "accuracy") & (t.protocol == "paper") & (t.setup == "Entry")
            & (t.condition == "Active") & (t.dataset == "MNIST")]
    assert list(got.reproduced.astype(float)) == [0.83]
    assert cli.main(["report", "--paper", "amint", "--out", "fig3", "--include-adhoc"]) == 0  # asked for: reported
    assert "3 complete run(s) reported" in (tmp_path / "fig3" / "README.md").read_text()
    assert "left out" not in capsys.readouterr().out
