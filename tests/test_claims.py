"""The claims ledger: each verdict from fixture run folders through the real report, the rules against the published
tables, the statistics of mintkit.batch.verdicts, and the full key columns of every csv the report writes."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mintkit.batch import claim_stats, claims, cli, verdicts as V
from mintkit.batch.cells import merged_cells
from mintkit.core.records import Run

COUNTS = {"n_eval_members": 1000, "n_eval_nonmembers": 1000}
ORDER = "optim_state=carried,order=members_first"


def _gmint(folder, seed, value, variant="definition", loss=0.55, fitted=1.0):
    run = Run(folder, "gmint", {"seed": seed}, seed=seed, protocol="heldout", variant=variant)
    jitter = 0.004 * (seed - 1)
    for setup in ("Entry", "Middle", "Output", "Combined"):
        for red in ("MEAN", "MIN", "MAX"):
            for frac in ("D100", "D1"):
                table = "Table 1"
                run.add_metrics({"accuracy": value(setup, red, frac) + jitter, "head_fitted": fitted} | COUNTS,
                                {"audited_accuracy": 0.96, "audited_train_accuracy": 1.0}, table=table,
                                dataset="MNIST", model="MobileNet", setup=setup, condition=f"{red};{frac}")
    run.add_metrics({"accuracy": loss + jitter} | COUNTS, {"audited_accuracy": 0.96, "audited_train_accuracy": 1.0},
                    table="Table 3", dataset="MNIST", model="MobileNet", condition="LOSS (Yeom et al.)")
    run.finish()


def _amint(folder, seed, active, passive, protocol="paper"):
    run = Run(folder, "amint", {"seed": seed}, seed=seed, protocol=protocol)
    jitter = 0.003 * (seed - 1)
    for setup, a in zip(("Entry", "Middle", "Output"), active):
        run.add_metrics({"accuracy": a + jitter} | COUNTS, {"audited_accuracy": 0.9}, table="Table 1",
                        dataset="MNIST", model="MobileNet", setup=setup, condition="Active")
    run.add_metrics({"accuracy": active[0] + jitter} | COUNTS, {}, table="Table 2", dataset="MNIST",
                    model="MobileNet", setup="Entry", condition="Active")
    run.add_metrics({"accuracy": passive + 0.05 * (seed - 1)} | COUNTS, {}, table="Table 2", dataset="MNIST",
                    model="MobileNet", setup="Entry", condition="Passive")
    run.finish()


def _verdict(ev: pd.DataFrame, claim: str, variant: str = "definition", protocol: str = "") -> str:
    sub = ev[(ev["claim"] == claim) & (ev["variant"] == variant)]
    if protocol:
        sub = sub[sub["scope"].str.contains(f"protocol {protocol},")]
    assert len(sub) == 1, sub
    return sub["verdict"].iloc[0]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("claims")
    runs = tmp / "runs"
    for s in (0, 1, 2):
        _gmint(runs / f"g-def-{s}", s, lambda *_: 0.52)
        _gmint(runs / f"g-order-{s}", s, lambda su, r, f: 0.99 if f == "D100" else 0.985, variant=ORDER)
        _gmint(runs / f"g-null-{s}", s, lambda *_: 0.50, variant="null=other-data", loss=0.50)
        _gmint(runs / f"g-null-order-{s}", s, lambda *_: 0.80, variant=ORDER + ",null=other-data")
        _gmint(runs / f"g-shuffled-{s}", s, lambda *_: 0.50, variant=ORDER.replace("members_first", "shuffled"))
        _gmint(runs / f"g-pos-{s}", s, lambda *_: 0.75, variant="control=leaky", loss=0.80)
        # Entry/Middle train, the Output head reads chance on its own training members (paper protocol)
        _amint(runs / f"a-paper-{s}", s, (0.90, 0.88, 0.50), 0.83)
    out = tmp / "figures"
    assert cli.main(["report", "--runs", str(runs), "--out", str(out), "--include-adhoc"]) == 0
    return pd.read_csv(out / claims.CSV, keep_default_na=False), out


def test_each_verdict_from_fixture_runs(ledger):
    ev, out = ledger
    # the definition at 0.52: far below 0.95, and a positive control that detects (method 0.75, loss 0.80)
    assert _verdict(ev, "gmint-near-perfect") == V.FAILS
    # the order reading reaches 0.99, but its null control reads 0.80: an artifact
    assert _verdict(ev, "gmint-near-perfect", ORDER) == V.ARTIFACT
    # D1 = D100 within 0.03 with 3 seeds of 2,000 samples a seed: holds (an equivalence test)
    assert _verdict(ev, "gmint-d1") == V.HOLDS
    # aMINT best setup 0.90: holds; the Output head did not train; active − passive = +0.07 over a wide passive
    # spread (sd 0.05 over 3 seeds): inconclusive
    assert _verdict(ev, "amint-80", protocol="paper") == V.HOLDS
    assert _verdict(ev, "amint-output", protocol="paper") == V.DID_NOT_TRAIN
    row = ev[(ev["claim"] == "amint-active")].iloc[0]
    assert row["verdict"] == V.INCONCLUSIVE and "seeds at this n would decide it" in row["why"]
    # no Factors run: not testable, with a reason computed from the tables
    f = ev[ev["claim"] == "factors-exposure"]
    assert list(f["verdict"]) == [V.UNTESTABLE] and "figures/factors holds no reproduced cell" in f["why"].iloc[0]
    md = (out / claims.MD).read_text()
    assert "## Controls" in md and "**method detects**" in md and "figures/mint holds no reproduced cell" in md
    pos = ev[(ev["claim"] == "gmint-near-perfect") & (ev["variant"] == "definition")]["controls"].iloc[0]
    assert "positive control" in pos and "the method detects it" in pos and "null control: 0 of" in pos
    # the members-first reading cites the same reading over a shuffled order (at chance: the order, not membership)
    order = ev[(ev["claim"] == "gmint-near-perfect") & (ev["variant"] == ORDER)]["controls"].iloc[0]
    assert "shuffled-order control: 0 of 24 cells beyond chance" in order and "shuffled-order" not in pos
    assert "| shuffled order |" in md.split("## Controls")[1]


def test_a_negative_detection_verdict_needs_a_positive_control(tmp_path):
    runs = tmp_path / "runs"
    for s in (0, 1, 2):
        _gmint(runs / f"g-def-{s}", s, lambda *_: 0.52)
    out = tmp_path / "figures"
    assert cli.main(["report", "--runs", str(runs), "--out", str(out), "--include-adhoc"]) == 0
    ev = pd.read_csv(out / claims.CSV, keep_default_na=False)
    row = ev[(ev["claim"] == "gmint-near-perfect")].iloc[0]
    assert row["verdict"] == V.INCONCLUSIVE and row["why"].startswith("sensitivity not shown")


@pytest.mark.parametrize("leaky_null, verdict", [(0.50, V.FAILS), (0.75, V.INCONCLUSIVE)])
def test_the_positive_control_counts_only_where_its_own_null_reads_chance(tmp_path, leaky_null, verdict):
    runs = tmp_path / "runs"
    for s in (0, 1, 2):
        _gmint(runs / f"g-def-{s}", s, lambda *_: 0.52)
        _gmint(runs / f"g-pos-{s}", s, lambda *_: 0.75, variant="control=leaky", loss=0.80)
        _gmint(runs / f"g-pos-null-{s}", s, lambda *_: leaky_null, variant="null=other-data,control=leaky",
               loss=leaky_null)
    out = tmp_path / "figures"
    assert cli.main(["report", "--runs", str(runs), "--out", str(out), "--include-adhoc"]) == 0
    ev = pd.read_csv(out / claims.CSV, keep_default_na=False)
    row = ev[(ev["claim"] == "gmint-near-perfect") & (ev["variant"] == "definition")].iloc[0]
    assert row["verdict"] == verdict
    assert "null control at the positive control's recipe" in row["controls"]


def test_every_rule_holds_on_the_published_tables_except_the_listed_exceptions():
    pc = claims.published_checks()
    assert len(pc) > 100 and set(pc["claim"]) >= {"gmint-near-perfect", "amint-80", "amint-output", "mint-combination",
                                                   "factors-exposure", "factors-batch", "factors-dropout",
                                                   "factors-loss", "mint-cnn-size"}
    assert (pc["holds"] != pc["exception"]).all(), pc[pc["holds"] == pc["exception"]]
    loss = pc[pc["claim"] == "factors-loss"]  # (0.75 − 0.67) − (0.74 − 0.76) in the paper's Table 5
    assert len(loss) == 1 and loss["value"].iloc[0] == pytest.approx(0.10)


def test_cnn_size_reads_from_the_original_up_and_takes_table_4s_x1_when_table_7_has_none():
    """table7_mnist runs the scaled CNNs only: the ×1 cell is Table 4's; the /3 cell is not part of the claim."""
    def cell(table, feature, mean):
        return dict(table=table, setup="", condition="8K;MNIST", feature=feature, mean=mean, sd=np.nan, n=1,
                    n_eval=2000, fitted=1.0)
    rows = pd.DataFrame([cell("Table 4", "CNN MINT;Conv Layer #1", 0.50),
                         cell("Table 7", "CNN MINT /3 params;Conv Layer #1", 0.40),
                         cell("Table 7", "CNN MINT x3 params;Conv Layer #1", 0.52)])
    t = claim_stats.mint_cnn_size(rows)
    assert t.estimate.value == pytest.approx(0.02) and (t.rule, t.bound) == ("within", 0.03)
    assert "needs ≥ 2 CNN sizes" in claim_stats.mint_cnn_size(rows.iloc[:2])


def test_a_members_first_reading_without_a_shuffled_order_run_has_no_order_control():
    """The reading's sibling cells are absent (no shuffled-order run at this scope): an empty control, no error."""
    from mintkit.batch.controls import controls_of
    cols = ["ref", "dataset", "model", "protocol", "precision", "variant", "table", "setup", "condition", "feature",
            "mean", "sd", "n", "n_eval", "audited", "audited_train"]
    cells = pd.DataFrame([["gmint", "MNIST", "MobileNet", "heldout", "fp32", ORDER, "Table 1", "Combined",
                           "MEAN;D100", "", 0.98, 0.01, 3, 2000, 0.96, 1.0]], columns=cols)
    ctl = controls_of(cells, "gmint", dict(cells.iloc[0][["dataset", "model", "protocol", "precision", "variant"]]))
    assert ctl.order_text == "" and ctl.summary() == "none at this scope"


def test_interval_and_verdict_statistics():
    # 3 seeds, sd 0.01, 2,000 samples a seed: the seeds' spread dominates (t with 2 df)
    e = V.single(0.80, 0.01, 3, 2000)
    half = 0.01 / math.sqrt(3) * 9.9248
    assert e.low == pytest.approx(0.80 - half, abs=1e-3) and e.high == pytest.approx(0.80 + half, abs=1e-3)
    # one seed: the binomial floor with the normal quantile
    e1 = V.single(0.535, float("nan"), 1, 2000)
    assert e1.low == pytest.approx(0.535 - 2.5758 * math.sqrt(0.535 * 0.465 / 2000), abs=1e-4) and e1.low > 0.5
    assert V.verdict(V.Estimate(0.9, 0.85, 0.95, 3, 100, 1), "at least", 0.8) == V.HOLDS
    assert V.verdict(V.Estimate(0.6, 0.55, 0.65, 3, 100, 1), "at least", 0.8) == V.FAILS
    assert V.verdict(V.Estimate(0.8, 0.75, 0.85, 3, 100, 1), "at least", 0.8) == V.INCONCLUSIVE
    assert V.verdict(V.Estimate(0.01, -0.02, 0.02, 3, 100, 1), "within", 0.03) == V.HOLDS
    assert V.verdict(V.Estimate(0.1, 0.05, 0.15, 3, 100, 1), "within", 0.03) == V.FAILS
    with pytest.raises(ValueError, match="valid: at least, at most, within"):
        V.verdict(e, "greater", 0.0)
    assert "seeds at this n" in V.seeds_to_decide(V.Estimate(0.82, 0.70, 0.94, 3, 2000, 1, 0.02), "at least", 0.80)


def test_report_csvs_carry_every_key_column_and_the_ledger_reads_them(ledger):
    _, out = ledger
    for paper in ("gmint", "amint"):
        for csv in out.glob(f"{paper}/*.csv"):
            cols = set(pd.read_csv(csv, nrows=1).columns)
            if "metric" in cols:
                assert {"table", "setup", "condition", "feature", "protocol", "variant"} <= cols, csv
    cells = merged_cells(out)
    assert (cells[cells["ref"] == "gmint"]["n_eval"] == 2000).all()
    assert set(cells["precision"]) <= {"fp32", "bf16", ""}
    assert np.isfinite(cells["mean"]).all()
