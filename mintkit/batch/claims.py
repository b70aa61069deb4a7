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
claim stands only beside a valid positive control (its loss attack detects, mintkit.batch.controls); without one
it reads *inconclusive (sensitivity not shown)*. The statistics live in mintkit.batch.claim_stats.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mintkit.batch import cells as C
from mintkit.batch import verdicts as V
from mintkit.batch.claim_stats import (Test, amint_80, amint_active, amint_output, cell_args, factor, factors_loss,
                                       gmint_combined, gmint_d1, gmint_mean, gmint_near_perfect, gmint_reductions,
                                       mint_appendix, mint_cnn_conv1, mint_cnn_size, mint_combination, mint_data,
                                       mint_face, mint_vs_mia)
from mintkit.batch.claims_render import render
from mintkit.batch.controls import Controls, controls_of, gap_attack, loss_cells
from mintkit.reference import published

CSV, MD = "claims.csv", "CLAIMS.md"


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
    Claim("mint-cnn-size", "mint", "the CNN MINT's size barely matters above the original (Table 7: ×1, ×3, ×10 "
          "parameters; its /3 row is 0.07-0.08 lower)", "|best − worst CNN size from ×1 up| ≤ 0.03, an "
          "equivalence test", mint_cnn_size),
    Claim("mint-appendix", "mint", "CNN MINT on Conv Layer #1 reaches 0.94-0.99 on image classifiers (Table 8)",
          "CNN MINT Conv Layer #1 ≥ 0.90", mint_appendix, detection=True),
    Claim("factors-exposure", "factors", "more exposure, more detectable: the ×30 quarter beats the ×1 quarter "
          "(0.87 vs 0.76, Table 2)", "x30 − x1 (All Conv Layers) ≥ 0",
          factor("Table 2", "x30", "x1", "x30 − x1 (All Conv Layers)", "at least", 0.0)),
    Claim("factors-batch", "factors", "smaller batches do not help MINT (batch 8 ≤ batch 256, Table 3)",
          "batch 8 − batch 256 (All Conv Layers) ≤ 0.02",
          factor("Table 3", "batch 8", "batch 256", "batch 8 − batch 256 (All Conv Layers)", "at most", 0.02)),
    Claim("factors-dropout", "factors", "removing dropout makes the data more detectable (+3 points, Table 4)",
          "without − with dropout (All Conv Layers) ≥ 0",
          factor("Table 4", "without dropout", "with dropout", "without − with dropout (All Conv Layers)",
                  "at least", 0.0)),
    Claim("factors-loss", "factors", "the loss moves which depth carries the signal: ArcFace favours the deep layers, "
          "AdaFace Conv Layer #1 (Table 5)", "(Conv #4 − Conv #1) under ArcFace − the same under AdaFace "
          "(Vanilla MINT) ≥ 0", factors_loss),
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
    control = cells["variant"].map(lambda v: C.is_null(v) or C.is_positive(v) or C.is_order_control(v))
    for c in CLAIMS:
        sub = cells[(cells["ref"] == c.paper) & ~control]
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
        e = V.single(*[a[0] for a in cell_args(loss.iloc[[0]])])
        known = np.isfinite(e.low) and (e.low > 0 or e.high < 1)  # [0, 1]: neither a seed spread nor counts
        parts.append(f"loss attack {e.text()}" if known else
                     f"loss attack {e.value:.3f} (no interval: {e.seeds} seed(s), evaluated counts not recorded)")
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
