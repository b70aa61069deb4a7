"""The claims ledger: each paper's headline claims as stated, tested comparisons on the cells `figures/` shows.

A claim (docs/protocol.md, "Claims ledger") names the statistic the paper states (the headline cell, the best
setup, a difference between two conditions), a rule (``at least`` / ``at most`` a bound, or ``within`` ± a margin:
an equivalence test) and whether a negative answer means "the method did not detect" (``detection``). Its
`test` reads the cells of one scope (dataset, model, protocol, precision, variant; mintkit.batch.cells) and returns
a `Test` (statistic with its interval, mintkit.batch.verdicts), or a string: why this scope cannot test it. The
same `test` applied to the published numbers (`published_checks`) must hold: a rule the paper's own table fails is
too strict.

Verdicts (mintkit.batch.verdicts): **holds**, **does not hold**, **inconclusive** (the interval spans the bound;
the row says what would decide it), **artifact** (holds only under a reading whose null control is beyond chance),
**did not train** (a cell the claim needs comes from a MINT head that did not fit its own training samples),
**not testable here** (the reason is computed from the cells that are missing). A *does not hold* of a detection
claim stands only beside a positive control that detects (`controls`); without one it reads *inconclusive
(sensitivity not shown)*.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mintkit.batch import cells as C
from mintkit.batch import verdicts as V
from mintkit.batch.claims_render import render
from mintkit.batch.controls import Controls, controls_of, gap_attack, loss_cells
from mintkit.reference import published

CSV, MD = "claims.csv", "CLAIMS.md"
HEADLINE = ("Combined", "All")  # gMINT's three layers together (Table 2 says Combined, Table 1 All)


@dataclass(frozen=True)
class Test:
    statistic: str
    estimate: V.Estimate
    rule: str
    bound: float
    unfitted: str = ""  # cells it needed whose head did not train (the verdict is then 'did not train')


@dataclass(frozen=True)
class Claim:
    key: str
    paper: str
    statement: str                                   # as the paper states it, with where
    reading: str                                     # the statistic and rule, in words
    test: Callable[[pd.DataFrame], "Test | str | None"]  # None: this scope is not about the claim
    detection: bool = False                          # a negative verdict needs a positive control that detects
    # published (dataset, model) scopes whose own numbers fail the rule: the paper contradicts its claim there;
    # the ledger says so, and a test checks the list is exact (every other published scope holds)
    paper_exceptions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Evidence:
    claim: str
    paper: str
    scope: str
    variant: str
    statistic: str
    effect: str
    rule: str
    verdict: str
    why: str
    seeds: int
    n_eval: int
    controls: str
    baselines: str
    source: str


# ---------------------------------------------------------------------- selecting cells
def pick(sub: pd.DataFrame, table=None, setup=None, condition=None, feature=None) -> pd.DataFrame:
    """The fitted-or-unknown and unfitted cells of `sub` whose keys match (a string, a tuple of them, or a
    predicate on the value)."""
    m = np.ones(len(sub), bool)
    for col, want in (("table", table), ("setup", setup), ("condition", condition), ("feature", feature)):
        if want is None:
            continue
        vals = sub[col].astype(str)
        m &= vals.map(want).to_numpy(bool) if callable(want) else vals.isin([want] if isinstance(want, str)
                                                                            else list(want)).to_numpy()
    return sub[m]


def _args(rows: pd.DataFrame):
    return rows["mean"].to_numpy(float), rows["sd"].to_numpy(float), rows["n"].to_numpy(int), \
        rows["n_eval"].to_numpy(int)


def unfitted(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["fitted"].notna() & (rows["fitted"] < 1)]


def _label(rows: pd.DataFrame) -> str:
    return "; ".join(sorted({" ".join(x for x in r if x) for r in rows[C.CELL_KEYS].itertuples(index=False)}))


def cell_test(rows: pd.DataFrame, statistic: str, rule: str, bound: float) -> Test | str:
    rows = rows.drop_duplicates(["mean", "sd", "n"])
    if rows.empty:
        return f"no cell for {statistic}"
    r = rows.iloc[[0]]
    bad = _label(unfitted(r))
    return Test(statistic, V.single(*[a[0] for a in _args(r)]), rule, bound, bad)


def contrast_test(a: pd.DataFrame, b: pd.DataFrame, statistic: str, rule: str, bound: float,
                  b_best: bool = False) -> Test | str:
    """mean(a) − mean(b), or − best(b) with `b_best` (b's best cell, the others ignored)."""
    if a.empty or b.empty:
        return f"no cells for {statistic}" + (f" (have {_label(a) or 'none'} vs {_label(b) or 'none'})")
    bad = _label(pd.concat([unfitted(a), unfitted(b)]))
    if b_best:
        b = best_of(b)
    ma, sa, ka, na = _args(a)
    mb, sb, kb, nb = _args(b)
    w = np.concatenate([np.full(len(a), 1 / len(a)), np.full(len(b), -1 / len(b))])
    est = V.contrast(np.concatenate([ma, mb]), np.concatenate([sa, sb]), np.concatenate([ka, kb]),
                     np.concatenate([na, nb]), w)
    return Test(statistic, est, rule, bound, bad)


def extreme_test(rows: pd.DataFrame, which: str, statistic: str, rule: str, bound: float) -> Test | str:
    fitted = rows[~rows.index.isin(unfitted(rows).index)]
    if fitted.empty:
        return (f"{V.DID_NOT_TRAIN}: {_label(rows)}" if len(rows) else f"no cells for {statistic}")
    return Test(statistic, V.extreme(*_args(fitted), which), rule, bound, "")


# ---------------------------------------------------------------------- the claims' statistics
def _g(cond: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda sub: pick(sub, ("Table 1", "Table 2"), HEADLINE, cond).drop_duplicates("condition")


def gmint_near_perfect(sub):
    return cell_test(_g("MEAN;D100")(sub), "Combined, MEAN, D100", "at least", 0.95)


def gmint_reductions(sub):
    rows = pick(sub, "Table 1", HEADLINE, ("MEAN;D100", "MIN;D100", "MAX;D100"))
    if rows["condition"].nunique() < 3:
        return f"needs MEAN, MIN and MAX at D100 (Table 1); have {sorted(rows['condition'].unique()) or 'none'}"
    return extreme_test(rows, "min", "worst of MEAN / MIN / MAX (Combined, D100)", "at least", 0.90)


def gmint_mean(sub):
    mean = pick(sub, "Table 1", HEADLINE, "MEAN;D100")
    other = pick(sub, "Table 1", HEADLINE, ("MIN;D100", "MAX;D100"))
    return contrast_test(mean.iloc[:1], other, "MEAN − mean(MIN, MAX) (Combined, D100)", "at least", 0.0)


def gmint_d1(sub):
    return contrast_test(_g("MEAN;D1")(sub), _g("MEAN;D100")(sub), "D1 − D100 (Combined, MEAN)", "within", 0.03)


def gmint_combined(sub):
    singles = pick(sub, ("Table 1", "Table 2"), ("Entry", "Middle", "Output"), "MEAN;D100").drop_duplicates("setup")
    return contrast_test(_g("MEAN;D100")(sub), singles, "Combined − best single layer (MEAN, D100)", "at least",
                         -0.01, b_best=True)


def amint_80(sub):
    rows = pick(sub, "Table 1", ("Entry", "Middle", "Output"), "Active").drop_duplicates("setup")
    return extreme_test(rows, "max", "best setup's active accuracy", "at least", 0.80)


def amint_active(sub):
    # Table 2 is the Entry setup in the paper (its Middle / Output rows here come from the other setups' runs)
    act, pas = pick(sub, "Table 2", "Entry", "Active").iloc[:1], pick(sub, "Table 2", "Entry", "Passive").iloc[:1]
    return contrast_test(act, pas, "Active − Passive (Table 2, Entry)", "at least", 0.0)


def amint_output(sub):
    out = pick(sub, "Table 1", "Output", "Active").iloc[:1]
    other = pick(sub, "Table 1", ("Entry", "Middle"), "Active").drop_duplicates("setup")
    return contrast_test(best_of(other), out, "best of Entry / Middle − Output", "at least", -0.01)


def best_of(rows: pd.DataFrame) -> pd.DataFrame:
    """The row with the highest mean (empty stays empty)."""
    return rows.iloc[[int(np.argmax(rows["mean"].to_numpy(float)))]] if len(rows) else rows


def _is_fr(sub) -> bool:
    return sub["model"].astype(str).str.startswith("FR Model").any()


def mint_face(sub):
    if not _is_fr(sub):
        return None
    rows = pick(sub, "Table 1", feature=lambda f: f.startswith(("Vanilla MINT;", "CNN MINT;")))
    return extreme_test(rows, "max", "best MINT cell (Table 1)", "at least", 0.80)


def _single_layer(f: str) -> bool:
    return not f.endswith((";Combination", ";All Conv Layers"))


def mint_combination(sub):
    v = pick(sub, "Table 1", feature=lambda f: f.startswith("Vanilla MINT;"))
    comb = v[v["feature"].str.endswith(";Combination")].iloc[:1]
    return contrast_test(comb, v[v["feature"].map(_single_layer).to_numpy(bool)], "Combination − best single layer (Vanilla, "
                         "Table 1)", "at least", -0.01, b_best=True)


def mint_cnn_conv1(sub):
    conv1 = pick(sub, "Table 4", feature="CNN MINT;Conv Layer #1").iloc[:1]
    others = pd.concat([pick(sub, "Table 4", feature=lambda f: f.startswith("CNN MINT;") and f != "CNN MINT;Conv "
                             "Layer #1" and _single_layer(f)),
                        pick(sub, "Table 1", feature=lambda f: f.startswith("Vanilla MINT;") and _single_layer(f))])
    return contrast_test(conv1, others, "CNN Conv Layer #1 − best other single-layer model", "at least", -0.01,
                         b_best=True)


def _size(condition: str) -> float:
    m = re.match(r"\s*([\d.]+)\s*([KkM]?)", str(condition))
    if not m:
        return float("nan")
    return float(m.group(1)) * {"": 1, "K": 1e3, "k": 1e3, "M": 1e6}[m.group(2)]


def mint_data(sub):
    rows = pick(sub, "Table 3", feature="Vanilla MINT;Combination")
    if rows["condition"].nunique() < 2:
        return f"needs ≥ 2 MINT-training sizes in Table 3; have {rows['condition'].nunique()}"
    size = rows["condition"].map(_size)
    return contrast_test(rows[(size == size.max()).to_numpy(bool)].iloc[:1],
                         rows[(size == size.min()).to_numpy(bool)].iloc[:1],
                         f"largest − smallest MINT-training size ({int(size.max())} vs {int(size.min())})",
                         "at least", 0.0)


def mint_vs_mia(sub):
    mia = pick(sub, "Table 6", feature=lambda f: f.startswith("MIA")).iloc[:1]
    mint = pick(sub, "Table 6", feature=lambda f: f.startswith(("Vanilla MINT;", "CNN MINT;")))
    return contrast_test(best_of(mint), mia, "best MINT − MIA baseline (Table 6)", "at least", 0.0)


def mint_cnn_size(sub):
    rows = pick(sub, "Table 7", feature=lambda f: f.startswith("CNN MINT;"))
    if rows["condition"].nunique() < 2 and rows["feature"].nunique() < 2:
        return f"needs ≥ 2 CNN sizes in Table 7; have {len(rows)} cell(s)"
    m = rows["mean"].to_numpy(float)
    return contrast_test(rows.iloc[[int(np.argmax(m))]], rows.iloc[[int(np.argmin(m))]],
                         "largest − smallest CNN size (Table 7)", "within", 0.03)


def mint_appendix(sub):
    rows = pick(sub, "Table 8", feature="CNN MINT;Conv Layer #1")
    return cell_test(rows, "CNN MINT, Conv Layer #1 (Table 8)", "at least", 0.90)


def _factor(table: str, first: str, last: str, what: str, rule: str, bound: float):
    def test(sub):
        r = pick(sub, table, feature=lambda f: f.endswith(";All Conv Layers"))
        return contrast_test(r[(r["condition"] == first).to_numpy(bool)].iloc[:1],
                             r[(r["condition"] == last).to_numpy(bool)].iloc[:1], what, rule, bound)
    return test


CLAIMS: tuple[Claim, ...] = (
    Claim("gmint-near-perfect", "gmint", "gMINT detects the training samples with ~100 % accuracy on every dataset "
          "and architecture (abstract; Tables 1-2)", "the headline cell (Combined, MEAN, D100) ≥ 0.95",
          gmint_near_perfect, detection=True, paper_exceptions=(("Tiny ImageNet", "Xception"),)),
    Claim("gmint-reductions", "gmint", "all three reductions reach ≈100 % (§6)",
          "the worst of MEAN / MIN / MAX (Combined, D100) ≥ 0.90", gmint_reductions, detection=True),
    Claim("gmint-mean", "gmint", "MEAN is slightly better than MIN and MAX (§6)",
          "MEAN − mean(MIN, MAX) (Combined, D100) ≥ 0", gmint_mean),
    Claim("gmint-d1", "gmint", "D1 ≈ D100: 1 % of the data trains a MINT model as good as all of it (§6)",
          "|D1 − D100| (Combined, MEAN) ≤ 0.03, an equivalence test", gmint_d1, paper_exceptions=(("Tiny ImageNet", "Xception"),)),
    Claim("gmint-combined", "gmint", "Combined is the best setup (§6)",
          "Combined − best single layer (MEAN, D100) ≥ −0.01 (ties at the ceiling count)", gmint_combined,
          paper_exceptions=(("Tiny ImageNet", "Xception"),)),
    Claim("amint-80", "amint", "Active MINT exceeds 80 % accuracy on five benchmarks and various architectures "
          "(abstract, Table 1)", "the best setup's active accuracy ≥ 0.80 (the paper's own Table 1 has every setup "
          "above 0.80 in only 14 of 24 rows)", amint_80, detection=True),
    Claim("amint-active", "amint", "aMINT beats passive MINT (Table 2: 0.86 vs 0.52-0.66 on MNIST)",
          "Active − Passive (Table 2, Entry) ≥ 0", amint_active),
    Claim("amint-output", "amint", "Entry or Middle is best; Output is never best (§5)",
          "best of Entry / Middle − Output ≥ −0.01 (published values are rounded to 0.01)", amint_output),
    Claim("mint-90", "mint", "up to 90 % accuracy on face-recognition models (FR Models 1-3, Table 1)",
          "the best MINT cell of Table 1 on an FR model ≥ 0.80 (Table 1's best cells are 0.81-0.84)", mint_face,
          detection=True),
    Claim("mint-combination", "mint", "the combination of layers is best for Vanilla MINT (Table 1)",
          "Combination − best single layer (Vanilla) ≥ −0.01", mint_combination),
    Claim("mint-cnn-conv1", "mint", "the CNN MINT on Conv Layer #1 is the best single model (Tables 1, 4)",
          "CNN Conv Layer #1 − best other single-layer model ≥ −0.01", mint_cnn_conv1),
    Claim("mint-data", "mint", "more MINT-training data helps (Table 3: 1K vs 100K)",
          "largest − smallest MINT-training size (Vanilla Combination) ≥ 0", mint_data),
    Claim("mint-mia", "mint", "MINT beats the MIA baseline on the model outcome (Table 6)",
          "best MINT − MIA (Rezaei & Liu) ≥ 0", mint_vs_mia),
    Claim("mint-cnn-size", "mint", "the CNN MINT's size barely matters (Table 7: /3, ×3, ×10 parameters)",
          "|largest − smallest CNN size| ≤ 0.03, an equivalence test", mint_cnn_size),
    Claim("mint-appendix", "mint", "CNN MINT on Conv Layer #1 reaches 0.94-0.99 on image classifiers (Table 8)",
          "CNN MINT Conv Layer #1 ≥ 0.90", mint_appendix, detection=True),
    Claim("factors-exposure", "factors", "more exposure, more detectable: the ×30 quarter beats the ×1 quarter "
          "(0.87 vs 0.76, Table 2)", "x30 − x1 (All Conv Layers) ≥ 0",
          _factor("Table 2", "x30", "x1", "x30 − x1 (All Conv Layers)", "at least", 0.0)),
    Claim("factors-batch", "factors", "smaller batches do not help MINT (batch 8 ≤ batch 256, Table 3)",
          "batch 8 − batch 256 (All Conv Layers) ≤ 0.02",
          _factor("Table 3", "batch 8", "batch 256", "batch 8 − batch 256 (All Conv Layers)", "at most", 0.02)),
    Claim("factors-dropout", "factors", "removing dropout makes the data more detectable (+3 points, Table 4)",
          "without − with dropout (All Conv Layers) ≥ 0",
          _factor("Table 4", "without dropout", "with dropout", "without − with dropout (All Conv Layers)",
                  "at least", 0.0)),
)


# ---------------------------------------------------------------------- evaluation
def scope_label(scope: dict) -> str:
    return f"{scope['dataset']}, {scope['model']}, protocol {scope['protocol'] or '-'}, " \
           f"{scope['precision'] or 'precision not recorded'}"


def judge(c: Claim, t: Test, ctl: Controls) -> tuple[str, str]:
    """(verdict, why) of one test beside its controls."""
    if t.unfitted:
        return V.DID_NOT_TRAIN, f"{t.unfitted}: the MINT head did not separate its own training samples"
    v = V.verdict(t.estimate, t.rule, t.bound)
    why = ""
    if v == V.INCONCLUSIVE:
        why = V.seeds_to_decide(t.estimate, t.rule, t.bound)
    if v == V.HOLDS and ctl.null_fails:
        return V.ARTIFACT, f"its null control reads beyond chance ({ctl.null_text})"
    if v == V.FAILS and c.detection and not ctl.positive_valid:
        return V.INCONCLUSIVE, "sensitivity not shown: " + (ctl.positive_text or "no positive control at this scope")
    return v, why


def evaluate(cells: pd.DataFrame) -> pd.DataFrame:
    """Evidence rows (asdict(Evidence)) of every claim over every scope of `cells` (mintkit.batch.cells)."""
    out = []
    for c in CLAIMS:
        sub = cells[(cells["ref"] == c.paper) & ~cells["variant"].map(C.is_null) & ~cells["variant"].map(C.is_positive)]
        found = 0
        for key, rows in sub.groupby(C.SCOPE, sort=True):
            scope = dict(zip(C.SCOPE, key))
            t = c.test(rows)
            if t is None:
                continue
            ctl = controls_of(cells, c.paper, scope)
            common = dict(claim=c.key, paper=c.paper, scope=scope_label(scope), variant=scope["variant"],
                          controls=ctl.summary(), baselines=baseline_text(rows, cells, c.paper, scope),
                          source=", ".join(sorted({s for v in rows["source"] for s in str(v).split(", ") if s})))
            if isinstance(t, str):
                verdict = V.DID_NOT_TRAIN if t.startswith(V.DID_NOT_TRAIN) else V.UNTESTABLE
                out.append(asdict(Evidence(statistic="", effect="", rule=c.reading, verdict=verdict, why=t,
                                           seeds=int(rows["n"].min()), n_eval=int(rows["n_eval"].min()), **common)))
                continue
            found += 1
            verdict, why = judge(c, t, ctl)
            out.append(asdict(Evidence(statistic=t.statistic, effect=t.estimate.text(), rule=f"{t.rule} {t.bound:g}",
                                       verdict=verdict, why=why, seeds=t.estimate.seeds, n_eval=t.estimate.n_eval,
                                       **common)))
        if not found and not any(r["claim"] == c.key for r in out):
            out.append(asdict(Evidence(c.key, c.paper, "", "", "", "", c.reading, V.UNTESTABLE,
                                       untestable_reason(c, cells), 0, 0, "", "", "")))
    return pd.DataFrame(out, columns=list(Evidence.__dataclass_fields__))


def baseline_text(rows: pd.DataFrame, cells: pd.DataFrame, paper: str, scope: dict) -> str:
    """The free baselines of a scope: the generalisation-gap attack and the loss attack."""
    parts = []
    gap = gap_attack(rows)
    if gap is not None:
        parts.append(f"gap attack {gap:.3f}")
    loss = loss_cells(cells, paper, scope)
    if len(loss):
        parts.append(f"loss attack {V.single(*[a[0] for a in _args(loss.iloc[[0]])]).text()}")
    return "; ".join(parts)


def untestable_reason(c: Claim, cells: pd.DataFrame) -> str:
    """Why no scope tests `c`, from what the cells hold."""
    sub = cells[cells["ref"] == c.paper]
    if sub.empty:
        return f"figures/{c.paper} holds no reproduced cell"
    if c.key == "mint-90":
        models = ", ".join(sorted(sub["model"].unique()))
        return (f"no cell of an FR model (figures/mint has {models}): needs the InsightFace FR models and "
                "MS1Mv3 / Glint360K images; `reproduce --profile paper --dry-run` names the checkpoints and data")
    return f"no scope of figures/{c.paper} has the cells it needs"


def published_cells(paper: str) -> pd.DataFrame:
    """The published accuracies of `paper` in the cells layout (one seed, no counts): the rules' reference."""
    pub = published(paper)
    pub = pub[pub["metric"] == "accuracy"].rename(columns={"value": "mean"}).copy()
    for col in C.CELL_KEYS + ["dataset", "model"]:
        pub[col] = pub[col].fillna("").astype(str) if col in pub.columns else ""
    return pub.assign(ref=paper, protocol="", precision="", variant="definition", sd=np.nan, n=1, n_eval=0,
                      fitted=np.nan, source="published")


def published_checks() -> pd.DataFrame:
    """Each claim's rule on each published (dataset, model): claim, dataset, model, value, holds."""
    out = []
    for c in CLAIMS:
        pub = published_cells(c.paper)
        for (ds, model), rows in pub.groupby(["dataset", "model"]):
            t = c.test(rows)
            if isinstance(t, Test):
                out.append({"claim": c.key, "dataset": ds, "model": model, "value": t.estimate.value,
                            "holds": V.holds_on_values(t.estimate.value, t.rule, t.bound),
                            "exception": (ds, model) in c.paper_exceptions})
    return pd.DataFrame(out, columns=["claim", "dataset", "model", "value", "holds", "exception"])


def paper_notes() -> dict[str, str]:
    """{claim: the published scopes whose own numbers fail its rule, with their values} for claims with any."""
    pc = published_checks()
    notes = {}
    for key, sub in pc.groupby("claim"):
        bad = sub[sub["exception"]]
        if len(bad):
            notes[key] = ("the paper's own numbers fail this rule at " + ", ".join(
                f"{r.dataset} {r.model} ({r.value:.3f})" for r in bad.itertuples()) + f" of {len(sub)} published scopes")
    return notes


def write(out: Path) -> list[Path]:
    """Recompute the ledger from every table under `out`; write ``out/claims.csv`` and ``out/CLAIMS.md``."""
    cells = C.merged_cells(out)
    ev = evaluate(cells)
    ev.to_csv(out / CSV, index=False)
    (out / MD).write_text(render(ev, CLAIMS, cells, paper_notes()))
    return [out / CSV, out / MD]
