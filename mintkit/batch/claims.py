"""The claims ledger: each paper's headline claims, tested on the runs the report reads (figures/CLAIMS.md).

A claim is a sentence a paper states (docs/protocol.md, "Claims ledger") and a check: a function of the cells
`figures/` shows, every runs folder merged (mean, sd and seeds per cell, read back from the tables the report has
just written: `merged_cells`), that returns one `Evidence` per scope it can test (dataset, model, protocol,
precision, variant). The null control is tested per cell with its evaluation counts, so it reads the collected run
rows of the runs folder being reported (mintkit.batch.collect). Verdicts:

=====================  =========================================================================================
``holds``              the kit's runs show it, at their scale (the scope says which data and sizes)
``does not hold``      they contradict it (a finding, with the numbers)
``holds only under``   the definition does not show it, a named protocol variant does (which reading reproduces it)
``not informative``    the comparison is between numbers at chance: it cannot hold or fail here
``not testable here``  no run can test it on this kit's data and hardware; the reason says what is missing
=====================  =========================================================================================

So the ledger says what the tables say: a claim's evidence is recomputed from all merged cells on every report
(its ``source`` names the runs folders that made them), and the null control's rows in ``claims.csv`` are kept per
runs folder, a new report replacing only its own folder's; ``CLAIMS.md`` is rendered from all of them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mintkit.batch import merge
from mintkit.core.null import ACCURACY_KEYS as ACCURACY
from mintkit.core.null import CHANCE_ALPHA, chance_table
from mintkit.core.records import DEFINITION

SCOPE = ["dataset", "model", "protocol", "precision", "variant"]
CSV, MD = "claims.csv", "CLAIMS.md"
NEAR_PERFECT, ABOVE_CHANCE, SAME = 0.95, 0.60, 0.03


@dataclass(frozen=True)
class Evidence:
    claim: str
    scope: str
    variant: str
    verdict: str
    numbers: str
    seeds: str  # seeds per cell: '3', or '1-3' when the cells have different counts
    source: str = ""


@dataclass(frozen=True)
class Claim:
    key: str
    paper: str
    statement: str  # as the paper states it, with where
    check: Callable[..., list[tuple[dict, str, str, str, str]]]  # cells -> (scope, verdict, numbers, seeds, sources)
    untestable: str  # why, when no run gives evidence


CELL_KEYS = ["table", "setup", "condition", "feature", "metric"]


def merged_cells(out: Path) -> pd.DataFrame:
    """Every reproduced cell under `out` (each paper's table csvs and its reproduced-without-counterpart csv, as
    mintkit.batch.merge left them): columns ref (the paper folder), SCOPE, CELL_KEYS, mean, sd, n, source."""
    cols = ["ref", *SCOPE, *CELL_KEYS, "mean", "sd", "n", "source"]
    frames = []
    for ref in ("gmint", "amint", "mint", "factors"):
        tables = merge.read_tables(out / ref).rename(columns={"reproduced": "mean", "n_seeds": "n"})
        unmatched = out / ref / merge.UNMATCHED
        extra = pd.read_csv(unmatched, dtype=str, keep_default_na=False) if unmatched.is_file() else pd.DataFrame()
        for df in (tables, extra):
            if not len(df) or not {"mean", "n", *CELL_KEYS} <= set(df.columns):
                continue
            for c in (*SCOPE, "source", "sd"):
                df[c] = df[c] if c in df.columns else ""
            frames.append(df.assign(ref=ref)[cols])
    cells = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    for c in ("mean", "sd", "n"):
        cells[c] = pd.to_numeric(cells[c], errors="coerce")
    cells = cells[cells["n"] > 0]
    for c in (*SCOPE, *CELL_KEYS, "source"):
        cells[c] = cells[c].fillna("").astype(str)
    return cells.drop_duplicates(["ref", *SCOPE, *CELL_KEYS], keep="first").reset_index(drop=True)


def accuracy_cells(cells: pd.DataFrame, tables: tuple[str, ...], by: list[str]) -> pd.DataFrame:
    """Mean, sd and seeds of the membership accuracy per cell of `tables` (a cell two tables share counted
    once): columns SCOPE + `by` + mean, sd, n, source."""
    r = cells[cells["metric"].isin(ACCURACY) & cells["table"].isin(tables)]
    if r.empty:
        return pd.DataFrame(columns=[*SCOPE, *by, "mean", "sd", "n", "source"])
    g = r.groupby([*SCOPE, *by], dropna=False)
    return g.agg(mean=("mean", "mean"), sd=("sd", "mean"), n=("n", "max"), source=("source", _sources)).reset_index()


def _sources(s: pd.Series) -> str:
    return ", ".join(sorted({x for v in s for x in str(v).split(", ") if x}))


def _fmt(m: float, sd: float, n: int) -> str:
    return f"{m:.3f}" + (f" ± {sd:.3f}" if n > 1 and np.isfinite(sd) else "")


def _scopes(cells: pd.DataFrame):
    for key, sub in cells.groupby(SCOPE, dropna=False, sort=True):
        yield dict(zip(SCOPE, key)), sub


def _is_null(variant: str) -> bool:
    return "null=" in str(variant)


# ---------------------------------------------------------------------- the checks
def near_perfect(rows: pd.DataFrame) -> list:
    cells = accuracy_cells(rows, ("Table 1", "Table 2"), ["setup", "condition"])
    out = []
    for scope, sub in _scopes(cells):
        if _is_null(scope["variant"]):
            continue
        lo, hi = sub["mean"].min(), sub["mean"].max()
        verdict = "holds" if lo >= NEAR_PERFECT else "does not hold"
        out.append((scope, verdict, f"{len(sub)} cells, mean accuracy {lo:.3f}-{hi:.3f} (median "
                                    f"{sub['mean'].median():.3f})", _seeds(sub["n"]), _sources(sub["source"])))
    return out


def _seeds(n: pd.Series) -> str:
    """Seeds per cell of a scope: '3' when every cell has 3, '1-3' when they differ (a ledger row never claims
    more seeds than its weakest cell has)."""
    lo, hi = int(n.min()), int(n.max())
    return str(hi) if lo == hi else f"{lo}-{hi}"

def _pairs(rows: pd.DataFrame, tables, by: str, a: Callable, b: Callable, what: str, margin: float,
           direction: str) -> list:
    """Compare cells where `a(value of by)` against those where `b(...)` within each scope and other key."""
    cells = accuracy_cells(rows, tables, ["setup", "condition", "feature"])
    out = []
    for scope, sub in _scopes(cells):
        if _is_null(scope["variant"]):
            continue
        xa, xb = sub[sub[by].map(lambda v: a(str(v)))], sub[sub[by].map(lambda v: b(str(v)))]
        if xa.empty or xb.empty:
            continue
        ma, mb = xa["mean"].mean(), xb["mean"].mean()
        seeds = _seeds(sub["n"])
        text = f"{what}: {ma:.3f} vs {mb:.3f} ({len(xa)} vs {len(xb)} cells)"
        if max(ma, mb) < ABOVE_CHANCE:
            out.append((scope, "not informative", text + ", both near chance", seeds, _sources(sub["source"])))
            continue
        ok = {"same": abs(ma - mb) <= margin, "ge": ma >= mb - margin, "gt": ma - mb >= margin}[direction]
        out.append((scope, "holds" if ok else "does not hold", text, seeds, _sources(sub["source"])))
    return out


def _condition_part(i: int) -> Callable[[str], str]:
    return lambda c: str(c).split(";")[i] if len(str(c).split(";")) > i else ""


def d1_equals_d100(rows):
    return _pairs(rows, ("Table 1", "Table 2"), "condition", lambda c: _condition_part(1)(c) == "D1",
                  lambda c: _condition_part(1)(c) == "D100", "D1 vs D100", SAME, "same")


def mean_best(rows):
    d100 = rows[rows["condition"].astype(str).str.endswith(";D100")]
    return _pairs(d100, ("Table 1",), "condition", lambda c: c.startswith("MEAN;"),
                  lambda c: c.startswith(("MIN;", "MAX;")), "MEAN vs MIN/MAX at D100", 0.01, "ge")


def combined_best(rows):
    d100 = rows[rows["condition"] == "MEAN;D100"]
    return _pairs(d100, ("Table 1", "Table 2"), "setup", lambda s: s == "Combined",
                  lambda s: s in ("Entry", "Middle", "Output"), "Combined vs single layers (MEAN, D100)", 0.01, "ge")


def above_80(rows):
    cells = accuracy_cells(rows[rows["condition"] == "Active"], ("Table 1",), ["setup"])
    out = []
    for scope, sub in _scopes(cells):
        if _is_null(scope["variant"]):
            continue
        text = ", ".join(f"{s} {_fmt(m, sd, n)}" for s, m, sd, n in sub[["setup", "mean", "sd", "n"]].values)
        out.append((scope, "holds" if sub["mean"].min() > 0.80 else "does not hold", text, _seeds(sub["n"]),
                    _sources(sub["source"])))
    return out


def active_beats_passive(rows):
    return _pairs(rows, ("Table 2",), "condition", lambda c: c == "Active", lambda c: c == "Passive",
                  "Active vs Passive", 0.10, "gt")


def output_not_best(rows):
    act = rows[rows["condition"] == "Active"]
    cells = accuracy_cells(act, ("Table 1",), ["setup"])
    out = []
    for scope, sub in _scopes(cells):
        m = dict(zip(sub["setup"], sub["mean"]))
        if _is_null(scope["variant"]) or "Output" not in m or not ({"Entry", "Middle"} & set(m)):
            continue
        best = max(m.get("Entry", 0), m.get("Middle", 0))
        text = f"max(Entry, Middle) {best:.3f} vs Output {m['Output']:.3f}"
        verdict = ("not informative" if max(best, m["Output"]) < ABOVE_CHANCE
                   else "holds" if best >= m["Output"] else "does not hold")
        out.append((scope, verdict, text, _seeds(sub["n"]), _sources(sub["source"])))
    return out


def face_accuracy(rows):
    face = rows[rows["model"].astype(str).str.startswith("FR Model")]
    cells = accuracy_cells(face, ("Table 1",), ["condition", "feature"])
    return [(scope, "holds" if sub["mean"].max() >= 0.85 else "does not hold",
             f"best cell {sub['mean'].max():.3f} of {len(sub)}", _seeds(sub["n"]), _sources(sub["source"]))
            for scope, sub in _scopes(cells) if not _is_null(scope["variant"])]


def combination_best(rows):
    t1 = rows[rows["feature"].astype(str).str.startswith("Vanilla MINT;")]
    return _pairs(t1, ("Table 1",), "feature", lambda f: f.endswith(";Combination"),
                  lambda f: not f.endswith((";Combination", ";All Conv Layers")), "Combination vs single layers",
                  0.01, "ge")


def _factor(table: str, first: str, last: str, what: str, direction: str, margin: float):
    def check(rows):
        r = rows[rows["feature"].astype(str).str.endswith(";All Conv Layers")]
        return _pairs(r, (table,), "condition", lambda c: c == first, lambda c: c == last, what, margin, direction)
    return check


def null_reads_chance(rows: pd.DataFrame, source: str) -> list:
    """Every cell of a null-control run in `rows` (collected run rows of runs folder `source`): its accuracy
    against 0.5 with the cell's own evaluation counts (mintkit.core.null.chance_table)."""
    null = rows[rows["variant"].map(_is_null)]
    out = []
    for scope, sub in (null.groupby(SCOPE, dropna=False) if len(null) else []):
        cells = chance_table(sub)
        if cells.empty:
            continue
        far = int(cells["beyond_chance"].sum())
        text = (f"{len(cells)} cells, accuracy {cells['accuracy'].min():.3f}-{cells['accuracy'].max():.3f} on "
                f"{cells['n'].min()}-{cells['n'].max()} evaluated samples; {far} beyond chance (binomial p < "
                f"{CHANCE_ALPHA:g})")
        out.append((dict(zip(SCOPE, scope)), "holds" if not far else "does not hold", text,
                    int(cells["run_id"].nunique()), source))
    return out


CLAIMS: tuple[Claim, ...] = (
    Claim("gmint-near-perfect", "gmint", "gMINT detects the training samples with ~100 % accuracy on every dataset, "
          "architecture, layer setup and reduction (Tables 1-2)", near_perfect,
          "no gMINT run"),
    Claim("gmint-d1", "gmint", "D1 ≈ D100: 1 % of the data trains a MINT model as good as all of it (§6)",
          d1_equals_d100, "no gMINT run with data_fraction 0"),
    Claim("gmint-mean", "gmint", "all three reductions reach ≈100 %; MEAN is slightly better on harder architectures "
          "(§6)", mean_best, "no gMINT run with reduction all"),
    Claim("gmint-combined", "gmint", "Combined is the best setup (§6)", combined_best, "no gMINT run with setup all"),
    Claim("amint-80", "amint", "Active MINT exceeds 80 % accuracy on the five benchmarks (abstract, Table 1)",
          above_80, "no aMINT run"),
    Claim("amint-active", "amint", "aMINT > passive MINT everywhere (Table 2: 0.86 vs 0.52-0.66 on MNIST)",
          active_beats_passive, "no aMINT run with both conditions"),
    Claim("amint-output", "amint", "Entry or Middle is best; Output is never best (§5)", output_not_best,
          "no aMINT run with all three setups"),
    Claim("mint-90", "mint", "up to 90 % accuracy on face-recognition models (FR Models 1-3, Table 1)", face_accuracy,
          "needs the InsightFace FR models and Glint360K / MS1Mv3 images (checkpoints and data of several hundred GB, "
          "GPU scale): `reproduce --profile paper --dry-run` names them"),
    Claim("mint-combination", "mint", "the combination of layers is best for Vanilla MINT (Table 1)", combination_best,
          "no MINT run with a Combination row"),
    Claim("factors-exposure", "factors", "more exposure, more detectable: the ×30 quarter beats the ×1 quarter "
          "(0.87 vs 0.76, Table 2)", _factor("Table 2", "x30", "x1", "x30 vs x1", "gt", 0.01),
          "no Factors exposure run"),
    Claim("factors-batch", "factors", "smaller batches do not help MINT (batch 8 ≤ batch 256, Table 3)",
          _factor("Table 3", "batch 256", "batch 8", "batch 256 vs batch 8", "ge", 0.02),
          "no Factors batch-size run with batch 8 and 256"),
    Claim("factors-dropout", "factors", "removing dropout makes the data more detectable (+3 points, Table 4)",
          _factor("Table 4", "without dropout", "with dropout", "without vs with dropout", "gt", 0.01),
          "no Factors dropout run"),
    Claim("null-chance", "all", "(the kit's control, not a paper's claim) on a null model that never saw the members "
          "every method reads chance (mintkit.core.null)", null_reads_chance,
          "no null-control run (`-p null_model other-data`)"),
)


NULL_CLAIM = "null-chance"


def evidence(c: Claim, found: list) -> list[dict]:
    out = []
    for scope, verdict, numbers, seeds, sources in found:
        label = ", ".join(str(scope[k]) for k in ("dataset", "model")) + f", protocol {scope['protocol']}, " \
                f"{scope['precision']}"
        out.append(asdict(Evidence(c.key, label, str(scope["variant"]), verdict, numbers, seeds, sources)))
    return out


def evaluate(cells: pd.DataFrame, rows: pd.DataFrame, source: str) -> pd.DataFrame:
    """Evidence rows (asdict(Evidence)) of every claim: the papers' claims from the merged `cells`
    (merged_cells), the null control from runs folder `source`'s collected `rows`."""
    out = []
    for c in CLAIMS:
        if c.key == NULL_CLAIM:
            out += evidence(c, c.check(rows, source) if len(rows) else [])
            continue
        sub = cells[cells["ref"] == c.paper]
        out += evidence(c, c.check(sub) if len(sub) else [])
    return pd.DataFrame(out, columns=[f for f in Evidence.__dataclass_fields__])


def mark_variants(ev: pd.DataFrame) -> pd.DataFrame:
    """Where the definition does not hold and a (non-null) variant of the same claim and scope does, the
    definition's row says which reading reproduces the claim."""
    ev = ev.copy()
    for i, r in ev[(ev["variant"] == DEFINITION) & (ev["verdict"] == "does not hold")].iterrows():
        alt = ev[(ev["claim"] == r["claim"]) & (ev["scope"] == r["scope"]) & (ev["variant"] != DEFINITION)
                 & (ev["verdict"] == "holds") & ~ev["variant"].map(_is_null)]
        if len(alt):
            ev.loc[i, "verdict"] = "holds only under " + "; ".join(f"`{v}`" for v in alt["variant"])
    return ev


def write(rows: pd.DataFrame, out: Path, source: str) -> list[Path]:
    """Recompute the ledger from the tables under `out` and the null control of runs folder `source` (its
    collected `rows`), keep other runs folders' null-control rows, write ``out/claims.csv`` and ``out/CLAIMS.md``."""
    path = out / CSV
    new = evaluate(merged_cells(out), rows, source)
    old = pd.read_csv(path, keep_default_na=False) if path.is_file() else new.iloc[0:0]
    kept = old[(old["claim"] == NULL_CLAIM) & (old["source"] != source)]
    ev = mark_variants(pd.concat([kept, new], ignore_index=True))
    ev.to_csv(path, index=False)
    (out / MD).write_text(render(ev))
    return [path, out / MD]


def render(ev: pd.DataFrame) -> str:
    lines = ["# Claims ledger", "",
             "Each paper's headline claims, tested on the runs behind `figures/` (generated by `python -m mintkit "
             "report`; docs/protocol.md, \"Claims ledger\"). A verdict holds at the kit's scale only: the scope names "
             "the data, the protocol and the precision, the numbers give cells and seeds (mean ± sd over seeds where "
             "n > 1). Variants are protocol readings (docs/variants.md); `null=…` rows are the "
             "null control, which must read chance.", ""]
    for paper in ("gmint", "amint", "mint", "factors", "all"):
        claims = [c for c in CLAIMS if c.paper == paper]
        lines += [f"## {'null control' if paper == 'all' else paper}", ""]
        for c in claims:
            sub = ev[ev["claim"] == c.key]
            lines += [f"### {c.statement}", ""]
            if sub.empty:
                lines += [f"**not testable here**: {c.untestable}.", ""]
                continue
            lines += ["| scope | variant | verdict | numbers | seeds | runs folder(s) |", "|---|---|---|---|---|---|"]
            lines += [f"| {r.scope} | `{r.variant}` | **{r.verdict}** | {r.numbers} | {r.seeds} | `{r.source}` |"
                      for r in sub.itertuples()]
            lines.append("")
    return "\n".join(lines)
