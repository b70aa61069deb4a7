"""Attack results as a printable table and as results rows in the kit's schema (mintkit.core.records).

Rows: ``Run.add_metrics`` with the attack's label in ``label_column`` — by default ``condition``, the column
the published aMINT Table 3 rows use for "Salem et al." ... "Watson et al." (mintkit/reference/amint.csv) —
plus each attack's own time as ``time_attack`` and, optionally, bootstrap intervals of AUC and TPRs.
"""
from __future__ import annotations

import math

import pandas as pd

from mintkit.attacks.run import AttackResult
from mintkit.core.metrics import METRICS
from mintkit.core.records import RESULT_COLUMNS, Run

INTERVAL_METRICS = tuple(f"{m}_ci_{s}" for m in ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")
                         for s in ("low", "high"))


def _fmt(m: dict, key: str, pct: bool = False) -> str:
    f = (lambda v: f"{100 * v:.1f}") if pct else (lambda v: f"{v:.3f}")
    lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    ci = "" if lo is None or math.isnan(lo) else f" [{f(lo)}, {f(hi)}]"
    return f"{f(m[key])}{ci}"


def metric_cells(m: dict) -> dict[str, str]:
    """AUC and TPR (%) at 1% and 0.1% FPR, each with its 95% bootstrap interval, of one membership_metrics
    dict (an attack's or a MINT model's), and the evaluation counts."""
    return {"AUC": _fmt(m, "auc"), "TPR@1%FPR (%)": _fmt(m, "tpr_at_1pct_fpr", True),
            "TPR@0.1%FPR (%)": _fmt(m, "tpr_at_0.1pct_fpr", True),
            "n_eval": f"{m['n_eval_members']}+{m['n_eval_nonmembers']}"}


def results_table(results: dict[str, AttackResult]) -> pd.DataFrame:
    """One row per attack: AUC, TPR (%) at 1% and 0.1% FPR with 95% bootstrap intervals, calibrated
    accuracy, the attack's own seconds and the evaluation counts."""
    rows = []
    for r in results.values():
        m = r.metrics
        cells = metric_cells(m)
        rows.append({"attack": r.label, **{k: v for k, v in cells.items() if k != "n_eval"},
                     "acc (calibrated)": f"{m['accuracy_calibrated']:.3f}",
                     "seconds": round(r.seconds, 2), "n_eval": cells["n_eval"]})
    return pd.DataFrame(rows)


def comparison_table(methods: dict[tuple[str, ...], dict], index: tuple[str, ...] = ("method",)) -> pd.DataFrame:
    """MINT models and attacks side by side: {key tuple (e.g. (protocol, method)): membership_metrics dict}
    -> one row each, the key columns named by ``index``, then accuracy at the method's own threshold and
    `metric_cells`."""
    rows = []
    for key, m in methods.items():
        rows.append(dict(zip(index, key)) | {"accuracy": f"{m['accuracy']:.3f}"} | metric_cells(m))
    return pd.DataFrame(rows)


def add_attack_rows(run: Run, results: dict[str, AttackResult], audited: dict | None = None,
                    label_column: str = "condition", with_intervals: bool = True, save_scores: bool = True,
                    scores_prefix: str = "attack", label_suffix: str = "", **keys: str) -> None:
    """Write each attack's metrics as results rows (``keys``: table, dataset, model, setup ...).

    audited: the audited model's accuracies (rows beside each attack, as the papers' stages do).
    label_suffix: appended to each label (MINT's Table 6 features read "<method>;Model Outcome").
    save_scores: also store ``<scores_prefix>_<name>_scores`` / ``_labels`` in the run's scores.npz (a
    prefix per view, e.g. ``attack_heldout``, keeps the views of one run apart).
    """
    if label_column not in RESULT_COLUMNS[:7] or label_column in ("paper",):
        raise ValueError(f"label_column must be a key column ({', '.join(RESULT_COLUMNS[1:7])}); got {label_column!r}")
    if label_column in keys:
        raise ValueError(f"{label_column!r} is set by each attack's label; do not pass it in keys")
    names = METRICS + (INTERVAL_METRICS if with_intervals else ())
    for r in results.values():
        row_keys = keys | {label_column: r.label + label_suffix}
        run.add_metrics(r.metrics, audited, metric_names=names, **row_keys)
        run.add("time_attack", r.seconds, **row_keys)
        if save_scores:
            tag = r.name.replace("-", "_")
            run.save_scores(**{f"{scores_prefix}_{tag}_scores": r.scores, f"{scores_prefix}_{tag}_labels": r.labels})
