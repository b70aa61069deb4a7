"""Membership metrics with uncertainty and seed summaries (the LOSS attack itself: mintkit.methods.loss).

Conventions (used by every function here)
-----------------------------------------
* ``scores``: one membership score per sample, any real number; **higher = more likely a
  member**. MINT heads give a probability in [0, 1]; the LOSS attack uses ``-loss``.
* ``labels``: 1 = member, 0 = non-member (bool or int).
* Decision rule: a sample is predicted *member* when ``score >= threshold``. This is the
  convention of :func:`sklearn.metrics.roc_curve`.
* Thresholds are never chosen on evaluation data. ``accuracy`` uses the fixed threshold
  (0.5 by default: the papers' number); ``accuracy_calibrated`` uses the threshold that
  maximises balanced accuracy on *calibration* data (the data the MINT model was trained on),
  see :func:`mintkit.core.thresholds.calibrate_threshold`.

Keys returned by :func:`membership_metrics`
-------------------------------------------
Point estimates, exactly :data:`METRICS`::

    accuracy             accuracy at ``threshold``
    accuracy_calibrated  accuracy at the calibrated threshold (NaN without calibration data)
    balanced_accuracy         (TPR + TNR) / 2 at ``threshold``
    auc                       ROC AUC (ties count one half)
    tpr_at_1pct_fpr           largest TPR with FPR <= 1%
    tpr_at_0.1pct_fpr         largest TPR with FPR <= 0.1%
    n_eval_members            number of evaluated members
    n_eval_nonmembers         number of evaluated non-members

Extra keys, with regular suffixes:

* ``threshold`` / ``threshold_calibrated``: the thresholds used (the latter NaN without
  calibration data).
* ``<m>_ci_low`` / ``<m>_ci_high`` for every ``m`` in :data:`CI_METRICS`: percentile
  bootstrap interval (level ``ci``, default 95%). Members and non-members are resampled
  separately (stratified), so every resample has the original class counts. Thresholds
  (0.5 and the calibrated one) are held fixed: the calibration data are not resampled.
  NaN when ``n_boot == 0``.
* ``<t>_cp_low`` / ``<t>_cp_high`` for ``t`` in :data:`TPR_METRICS`: exact Clopper-Pearson
  interval for the TPR as a binomial proportion over the members, *conditional on the
  threshold* that attains the FPR (it does not include the threshold's own noise; the
  bootstrap interval does).
* ``<t>_max_fp`` for ``t`` in :data:`TPR_METRICS`: how many false positives the FPR level
  allows on this evaluation set, i.e. the largest ``k`` with ``k / n_eval_nonmembers <= fpr``.
  ``0`` means the TPR is measured at zero false positives (e.g. 0.1% FPR with fewer than
  1000 non-members).
* ``fpr_resolution``: ``1 / n_eval_nonmembers``, the smallest non-zero FPR this set can show.
* ``ci_level`` and ``n_boot``: the settings that produced the intervals.

All values are plain Python ``float`` / ``int`` (JSON-ready).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mintkit.core.bootstrap import stratified_bootstrap
from mintkit.core.thresholds import auc_ranks, calibrate_threshold, check_scores, clopper_pearson, max_fp, tpr_at_fpr

__all__ = [
    "METRICS",
    "CI_METRICS",
    "TPR_METRICS",
    "FPR_LEVELS",
    "membership_metrics",
    "summarize_seeds",
]

METRICS = (
    "accuracy",
    "accuracy_calibrated",
    "balanced_accuracy",
    "auc",
    "tpr_at_1pct_fpr",
    "tpr_at_0.1pct_fpr",
    "n_eval_members",
    "n_eval_nonmembers",
)
#: metric name -> FPR level it is measured at
FPR_LEVELS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001}
TPR_METRICS = tuple(FPR_LEVELS)
#: metrics that get a bootstrap interval ``<m>_ci_low`` / ``<m>_ci_high``
CI_METRICS = tuple(m for m in METRICS if not m.startswith("n_eval"))


# --------------------------------------------------------------------------- main entry
def _point_estimates(s: np.ndarray, y: np.ndarray, threshold: float, thr_cal: float) -> dict:
    """The METRICS of scores s [n] / bool labels y [n] at ``threshold`` (and ``thr_cal`` unless NaN)."""
    s_mem, s_non = s[y], s[~y]
    n1, n0 = len(s_mem), len(s_non)

    def acc_at(t: float) -> tuple[float, float]:
        tp = int((s_mem >= t).sum())
        tn = int((s_non < t).sum())
        return (tp + tn) / (n1 + n0), (tp / n1 + tn / n0) / 2

    acc, bacc = acc_at(threshold)
    out: dict = {
        "accuracy": acc,
        "accuracy_calibrated": acc_at(thr_cal)[0] if not math.isnan(thr_cal) else math.nan,
        "balanced_accuracy": bacc,
        "auc": auc_ranks(s_mem, s_non),
    }
    for name, f in FPR_LEVELS.items():
        out[name] = tpr_at_fpr(s, y, f)
    out["n_eval_members"] = n1
    out["n_eval_nonmembers"] = n0
    out["threshold"] = threshold
    out["threshold_calibrated"] = thr_cal
    out["fpr_resolution"] = 1.0 / n0
    return out


def _intervals(s_mem: np.ndarray, s_non: np.ndarray, point: dict, n_boot: int, seed: int, ci: float) -> dict:
    """``<m>_ci_low/high`` (bootstrap, NaN without), ``<t>_cp_low/high`` and ``<t>_max_fp`` of the estimates."""
    threshold, thr_cal = point["threshold"], point["threshold_calibrated"]
    n1, n0 = len(s_mem), len(s_non)
    out: dict = {}
    for m in CI_METRICS:
        out[f"{m}_ci_low"] = out[f"{m}_ci_high"] = math.nan
    if n_boot > 0:
        thresholds = [threshold] + ([] if math.isnan(thr_cal) else [thr_cal])
        boot = stratified_bootstrap(s_mem, s_non, thresholds, tuple(FPR_LEVELS.values()), n_boot, seed)
        dist = {
            "accuracy": boot["acc@0"],
            "balanced_accuracy": boot["bacc@0"],
            "auc": boot["auc"],
        }
        if len(thresholds) == 2:
            dist["accuracy_calibrated"] = boot["acc@1"]
        for name, f in FPR_LEVELS.items():
            dist[name] = boot[f"tpr@{f}"]
        q = [100 * (1 - ci) / 2, 100 * (1 + ci) / 2]
        for m, v in dist.items():
            low, high = np.percentile(v, q)
            out[f"{m}_ci_low"], out[f"{m}_ci_high"] = float(low), float(high)

    for name, f in FPR_LEVELS.items():
        x = int(round(point[name] * n1))
        out[f"{name}_cp_low"], out[f"{name}_cp_high"] = clopper_pearson(x, n1, ci)
        out[f"{name}_max_fp"] = max_fp(f, n0)
    return out


def membership_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    calib_scores: np.ndarray | None = None,
    calib_labels: np.ndarray | None = None,
    threshold: float = 0.5,
    n_boot: int = 200,
    seed: int = 0,
    ci: float = 0.95,
) -> dict:
    """All membership metrics of one evaluation set (scores [n], labels [n]), with intervals.

    See the module docstring for every key. ``calib_scores``/``calib_labels`` are the
    MINT-training (calibration) data; without them the calibrated metrics are NaN.
    ``n_boot=0`` skips the bootstrap (CI keys are NaN). Same ``seed``, same intervals.
    """
    s, y = check_scores(scores, labels, "evaluation")
    if (calib_scores is None) != (calib_labels is None):
        raise ValueError("pass both calib_scores and calib_labels, or neither")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    thr_cal = math.nan
    if calib_scores is not None:
        thr_cal = calibrate_threshold(calib_scores, calib_labels)
    out = _point_estimates(s, y, float(threshold), thr_cal)
    out |= _intervals(s[y], s[~y], out, n_boot, seed, ci)
    out["ci_level"] = float(ci)
    out["n_boot"] = int(n_boot)
    return out


# --------------------------------------------------------------------------- seeds
def summarize_seeds(df: "pd.DataFrame", by: list[str]) -> "pd.DataFrame":
    """Mean, sample standard deviation (ddof=1) and count of ``value`` over seeds.

    ``df`` holds tidy rows with a ``value`` column and a ``seed`` column; ``by`` names the
    columns that identify one cell (e.g. ``["dataset", "model", "setup", "metric"]``).
    Returns one row per cell: the ``by`` columns, then ``mean``, ``sd`` (NaN for one seed)
    and ``n`` (number of non-NaN values). Missing keys (NaN) form their own group; cell
    order follows first appearance in ``df``.
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, "value", "seed"] if c not in df.columns]
    if missing:
        raise ValueError(f"summarize_seeds: missing column(s) {missing}; have {list(df.columns)}")
    if "seed" in by:
        raise ValueError("summarize_seeds: 'seed' is what is summarised over; remove it from by")
    dup = df.duplicated(subset=[*by, "seed"])
    if dup.any():
        raise ValueError(
            f"summarize_seeds: {int(dup.sum())} row(s) repeat a (cell, seed) pair; "
            f"add the distinguishing column(s) to by={by}"
        )
    g = df.groupby(by, dropna=False, sort=False)["value"]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    out["n"] = out["n"].astype(int)
    return out
