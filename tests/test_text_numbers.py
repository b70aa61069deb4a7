"""Text equals tables: every decimal number the reasons of `mintkit/reference/deviations.csv` quote, and every one
on a line of docs/gmint.md or docs/amint.md that cites the MNIST MobileNet results, is a value of the committed
figures csvs (`figures/*/table*.csv`, `figures/*/reproduced*.csv`) within the rounding it is quoted at. A number
that is a published value or a recipe setting, not a result, is on the short allow-list below with why; anything
else that fails was copied from a superseded run: copy the committed value (issue "verdicts", item 7)."""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\d.]*\d)")
# numbers quoted that are not results of a run: (text, number) -> why
ALLOWED = {
    ("docs", "0.01"): "a margin or a false-positive rate (TPR at 1% FPR), a setting",
    ("docs", "0.001"): "a significance level or a false-positive rate, a setting",
    ("docs", "0.05"): "the reason threshold |Δ| > 0.05 (mintkit.batch.provenance), a setting",
    ("docs", "0.5"): "chance (the decision threshold), not a result",
    ("deviations", "0.63"): "the zoo's MobileNet at the preset's lr 1e-4 (docs/models.md): why the recipe was changed, "
                            "no committed cell",
}
DOCS = ("docs/gmint.md", "docs/amint.md")


KEYS = ("table", "dataset", "model", "setup", "condition")


@lru_cache(maxsize=None)
def committed_rows(paper: str) -> pd.DataFrame:
    """Every row of the committed figures csvs of `paper` (its tables and its reproduced / no-counterpart
    files), all as text."""
    files = sorted(ROOT.glob(f"figures/{paper}/table*.csv")) + sorted(ROOT.glob(f"figures/{paper}/reproduced*.csv"))
    assert files, f"no committed figures csv for {paper}"
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False) for f in files]
    return pd.concat(frames, ignore_index=True).fillna("")


def committed_values(paper: str, **keys: str) -> tuple[float, ...]:
    """The numbers (results, sds, audited accuracies, published values) of the rows of `paper` whose key columns
    equal `keys` (an empty key: any), so a number is checked against the cells the text speaks of."""
    df = committed_rows(paper)
    for k, v in keys.items():
        if v and k in df.columns:
            df = df[df[k] == v]
    out = set()
    for col in df.columns:
        if col in KEYS or col in ("seeds", "n", "n_seeds"):
            continue
        num = pd.to_numeric(df[col], errors="coerce").dropna()
        out |= {float(v) for v in num if abs(v) <= 1.5}  # accuracies, AUCs, sds; counts are not quoted as decimals
    return tuple(sorted(out | diagnosis_values(paper)))


@lru_cache(maxsize=None)
def diagnosis_values(paper: str) -> frozenset[float]:
    """Every number of the committed diagnosis csvs of `paper` (`figures/<paper>/diagnosis/*.csv`: measured curves
    a docs section explains, e.g. why the aMINT Output head does not train)."""
    out: set[float] = set()
    for f in sorted(ROOT.glob(f"figures/{paper}/diagnosis/*.csv")):
        df = pd.read_csv(f)
        for col in df.columns:
            out |= {float(v) for v in pd.to_numeric(df[col], errors="coerce").dropna()}
    return frozenset(out)


def in_figures(quoted: str, values: tuple[float, ...]) -> bool:
    """A committed value rounds to `quoted` at its decimals (0.891 for 0.890518; 0.52 for a published 0.52)."""
    q, k = float(quoted), len(quoted.split(".")[1])
    tol = 0.5 * 10 ** -k + 1e-9
    return any(abs(v - q) <= tol for v in values)


def deviation_numbers() -> list[tuple[str, str, tuple]]:
    """(row label, number, the row's (paper, keys)) for every decimal number in a deviations.csv reason."""
    lines = [ln for ln in (ROOT / "mintkit/reference/deviations.csv").read_text().splitlines()
             if not ln.startswith("#")]
    out = []
    for r in csv.DictReader(lines):
        label = " / ".join(v for k, v in r.items() if k != "reason" and v)
        scope = (r["paper"], tuple((k, r[k]) for k in KEYS))
        out += [(label, n, scope) for n in DECIMAL.findall(r["reason"]) if ("deviations", n) not in ALLOWED]
    return out


def doc_numbers() -> list[tuple[str, str, tuple]]:
    """(file:line, number, (paper, keys)) for every decimal number on a docs line citing MNIST MobileNet results."""
    out = []
    for name in DOCS:
        paper = Path(name).stem
        for i, line in enumerate((ROOT / name).read_text().splitlines(), 1):
            if "MobileNet" in line and "MNIST" in line:
                out += [(f"{name}:{i}", n, (paper, (("dataset", "MNIST"), ("model", "MobileNet"))))
                        for n in DECIMAL.findall(line) if ("docs", n) not in ALLOWED]
    return out


def test_the_number_pattern_reads_decimals_only():
    assert DECIMAL.findall("passive 0.891 (3 seeds), lr 1e-3, D 5,000, v1.2.3, 0.5-0.55, Adam 1e-4") == [
        "0.891", "0.5", "0.55"]
    values = committed_values("amint", model="MobileNet", setup="Entry", condition="Passive")
    assert in_figures("0.891", values) and not in_figures("0.91", values)  # the 3-seed passive, not seed 0's


@pytest.mark.parametrize("where, number, scope", deviation_numbers())
def test_deviation_reasons_quote_the_committed_tables(where, number, scope):
    paper, keys = scope
    assert in_figures(number, committed_values(paper, **dict(keys))), (
        f"deviations.csv ({where}) quotes {number}, which no committed figures csv holds within its rounding: copy "
        "the committed value")


@pytest.mark.parametrize("where, number, scope", doc_numbers())
def test_docs_quote_the_committed_mnist_mobilenet_numbers(where, number, scope):
    paper, keys = scope
    assert in_figures(number, committed_values(paper, **dict(keys))), (
        f"{where} quotes {number}, which no committed figures csv holds within its rounding: copy the committed "
        "value, or allow-list it with why")


def test_gmint_docs_do_not_say_the_mobilenet_variant_cells_were_not_run():
    text = (ROOT / "docs/gmint.md").read_text()
    variant = pd.read_csv(ROOT / "figures/gmint/table1.csv", dtype=str, keep_default_na=False)
    ran = variant[(variant["model"] == "MobileNet") & (variant["variant"] != "definition")
                  & (pd.to_numeric(variant["n_seeds"], errors="coerce") > 0)]
    assert len(ran), "the committed gMINT Table 1 has no MobileNet variant cell"
    flat = " ".join(text.split())
    assert "MobileNet cells of Table 1 under these variants are not run" not in flat
    assert "variant `optim_state=carried,order=members_first`" in flat
