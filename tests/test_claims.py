"""The claims ledger from fixture run folders: verdicts, variants that reproduce a claim, the null control,
and the merge that keeps another runs folder's evidence."""
from __future__ import annotations

import pandas as pd

from mintkit.batch import claims, cli
from mintkit.core.records import Run

COUNTS = {"n_eval_members": 500, "n_eval_nonmembers": 500}


def _gmint(folder, seed, value, variant="definition"):
    run = Run(folder, "gmint", {"seed": seed}, seed=seed, protocol="heldout", variant=variant)
    for setup in ("Entry", "Combined"):
        for red in ("MEAN", "MIN"):
            for frac in ("D100", "D1"):
                run.add_metrics({"accuracy": value(setup, red, frac), "auc": 0.5} | COUNTS,
                                {"audited_accuracy": 0.96}, table="Table 1", dataset="MNIST", model="MobileNet",
                                setup=setup, condition=f"{red};{frac}")
    run.finish()


def _amint(folder, seed, active, passive, variant="definition"):
    run = Run(folder, "amint", {"seed": seed}, seed=seed, protocol="paper", variant=variant)
    for setup, a in zip(("Entry", "Middle", "Output"), active):
        run.add_metrics({"accuracy": a} | COUNTS, {"audited_accuracy": 0.9}, table="Table 1", dataset="MNIST",
                        model="MobileNet", setup=setup, condition="Active")
    run.add_metrics({"accuracy": active[0]} | COUNTS, {}, table="Table 2", dataset="MNIST", model="MobileNet",
                    setup="Entry", condition="Active")
    run.add_metrics({"accuracy": passive} | COUNTS, {}, table="Table 2", dataset="MNIST", model="MobileNet",
                    setup="Entry", condition="Passive")
    run.finish()


def _ledger(ev: pd.DataFrame, claim: str, variant: str = "definition") -> str:
    sub = ev[(ev["claim"] == claim) & (ev["variant"] == variant)]
    assert len(sub) == 1, sub
    return sub["verdict"].iloc[0]


def test_ledger_verdicts_variants_null_control_and_merge(tmp_path):
    runs = tmp_path / "runs"
    for s in (0, 1, 2):
        _gmint(runs / f"g-def-{s}", s, lambda *_: 0.50 + 0.01 * _[0].startswith("C"))
        _gmint(runs / f"g-carried-{s}", s, lambda su, r, f: 0.99 if f == "D100" else 0.97,
               variant="optim_state=carried,order=members_first")
        _gmint(runs / f"g-null-{s}", s, lambda *_: 0.51, variant="null=other-data")
        _gmint(runs / f"g-null-art-{s}", s, lambda *_: 0.97, variant="optim_state=carried,order=members_first,"
                                                                        "null=other-data")
    _amint(runs / "a-0", 0, (0.81, 0.75, 0.50), 0.91)
    out = tmp_path / "figures"
    assert cli.main(["report", "--runs", str(runs), "--out", str(out)]) == 0
    ev = pd.read_csv(out / claims.CSV, keep_default_na=False)
    assert _ledger(ev, "gmint-near-perfect") == "holds only under `optim_state=carried,order=members_first`"
    assert _ledger(ev, "gmint-near-perfect", "optim_state=carried,order=members_first") == "holds"
    assert _ledger(ev, "gmint-d1") == "not informative"  # both at chance: D1 = D100 says nothing
    assert _ledger(ev, "gmint-d1", "optim_state=carried,order=members_first") == "holds"
    assert _ledger(ev, "amint-80") == "does not hold" and _ledger(ev, "amint-active") == "does not hold"
    assert _ledger(ev, "amint-output") == "holds"
    assert _ledger(ev, "null-chance", "null=other-data") == "holds"
    assert _ledger(ev, "null-chance", "optim_state=carried,order=members_first,null=other-data") == "does not hold"
    assert (ev[ev["claim"] == "gmint-near-perfect"]["seeds"].astype(str) == "3").all()
    md = (out / claims.MD).read_text()
    assert "not testable here**: needs the InsightFace FR models" in md and "[CLAIMS.md](CLAIMS.md)" in (
        out / "README.md").read_text()

    # a second runs folder replaces the cells it gives, as in the tables; the ledger keeps what the tables keep
    other = tmp_path / "other"
    _amint(other / "a-0", 0, (0.90, 0.88, 0.82), 0.55)
    assert cli.main(["report", "--runs", str(other), "--out", str(out)]) == 0
    ev2 = pd.read_csv(out / claims.CSV, keep_default_na=False)
    a80 = ev2[ev2["claim"] == "amint-80"]
    assert list(a80["verdict"]) == ["holds"] and list(a80["source"]) == [str(other)]
    kept = ev2[ev2["claim"] == "gmint-near-perfect"]
    before = ev[ev["claim"] == "gmint-near-perfect"]
    assert kept.drop(columns="source").reset_index(drop=True).equals(before.drop(columns="source").reset_index(drop=True))
    assert set(kept["source"]) == {str(runs)}
    assert _ledger(ev2, "null-chance", "null=other-data") == "holds"  # the null control is kept per runs folder


def test_ledger_seeds_name_the_weakest_cell():
    assert claims._seeds(pd.Series([3, 3])) == "3"
    assert claims._seeds(pd.Series([3, 1, 3])) == "1-3"
