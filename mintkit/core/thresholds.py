"""Score checks, the calibrated threshold and the ROC read-outs every membership metric is built on.

Conventions as in :mod:`mintkit.core.metrics`: one score per sample, higher = more likely a member, labels
1 = member / 0 = non-member, a sample is predicted member when ``score >= threshold`` (the rule of
:func:`sklearn.metrics.roc_curve`). docs/protocol.md.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta, rankdata
from sklearn.metrics import roc_curve

__all__ = ["check_scores", "calibrate_threshold", "max_fp", "tpr_at_fpr", "auc_ranks", "clopper_pearson"]


def check_scores(scores, labels, what: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Return (float64 scores [n], bool labels [n]); raise ValueError on bad input."""
    where = f" ({what})" if what else ""
    s = np.asarray(scores, dtype=np.float64).reshape(-1) if np.ndim(scores) <= 1 else None
    if s is None:
        raise ValueError(f"scores{where} must be one-dimensional, got shape {np.shape(scores)}")
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels{where} must be one-dimensional, got shape {y.shape}")
    if s.shape[0] != y.shape[0]:
        raise ValueError(
            f"scores and labels{where} have different lengths: {s.shape[0]} != {y.shape[0]}"
        )
    if np.isnan(s).any():
        raise ValueError(
            f"scores{where} contain {int(np.isnan(s).sum())} NaN value(s); "
            "membership scores must be numbers (check the model output / losses)"
        )
    if y.dtype != bool:
        if y.size and not np.isin(y, (0, 1)).all():
            bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
            raise ValueError(
                f"labels{where} must be 0 (non-member) or 1 (member); found {bad.tolist()}"
            )
        y = y.astype(bool)
    n1 = int(y.sum())
    n0 = int(y.size - n1)
    if n1 == 0 or n0 == 0:
        raise ValueError(
            f"labels{where} must contain both members (1) and non-members (0); "
            f"got {n1} member(s) and {n0} non-member(s)"
        )
    return s, y


def calibrate_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold maximising balanced accuracy on *calibration* data.

    Pass the data the MINT model was trained on (its members and external non-members),
    never the evaluation data. Candidate thresholds lie halfway between consecutive
    distinct scores, so the rule ``score >= t`` gives the same split on the calibration
    data as any threshold in that gap, and unseen scores are judged by the nearest side.
    Ties in balanced accuracy go to the highest threshold. If predicting "member" for
    every sample is optimal the smallest score is returned; if nothing beats chance
    (balanced accuracy 0.5 everywhere) the returned threshold predicts all non-member.
    """
    s, y = check_scores(scores, labels, "calibration")
    n1 = y.sum()
    n0 = y.size - n1
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    # last position of each run of equal scores: the split "score >= that value"
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    u = s_sorted[last]  # distinct scores, descending
    j = tp[last] / n1 - fp[last] / n0  # Youden J = 2 * balanced accuracy - 1
    # candidate 0: nothing is a member (J = 0)
    j = np.r_[0.0, j]
    best = int(np.argmax(j))  # first maximum = highest threshold
    if best == 0:
        return float(np.nextafter(u[0], np.inf))
    i = best - 1  # members are all scores >= u[i]
    if i == len(u) - 1:
        return float(u[i])
    with np.errstate(invalid="ignore", over="ignore"):
        mid = u[i] / 2 + u[i + 1] / 2
    if not np.isfinite(mid) or not (u[i + 1] < mid <= u[i]):
        mid = u[i]
    return float(mid)


def max_fp(fpr: float, n0: int) -> int:
    """Largest k with k / n0 <= fpr (the comparison roc_curve's FPR undergoes)."""
    k = int(math.floor(fpr * n0))
    while k + 1 <= n0 and (k + 1) / n0 <= fpr:
        k += 1
    while k > 0 and k / n0 > fpr:
        k -= 1
    return k


def tpr_at_fpr(scores, labels, fpr: float) -> float:
    """Largest TPR over ROC points whose FPR is <= ``fpr``; 0 if there is none."""

    s, y = check_scores(scores, labels)
    # keep every point: dropping collinear ones can drop the best point below the level
    f, t, _ = roc_curve(y, s, drop_intermediate=False)
    ok = f <= fpr
    return float(t[ok].max()) if ok.any() else 0.0


def auc_ranks(s_mem: np.ndarray, s_non: np.ndarray) -> float:
    """Mann-Whitney U / (n1 n0) of member scores [n1] over non-member scores [n0], ties count one half
    (= sklearn roc_auc_score)."""

    n1, n0 = len(s_mem), len(s_non)
    r = rankdata(np.r_[s_mem, s_non])  # average ranks for ties
    u = r[:n1].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n0))


def clopper_pearson(x: int, n: int, level: float) -> tuple[float, float]:
    """Exact two-sided interval of a binomial proportion x / n at ``level``."""
    a = 1 - level
    low = 0.0 if x == 0 else float(beta.ppf(a / 2, x, n - x + 1))
    high = 1.0 if x == n else float(beta.ppf(1 - a / 2, x + 1, n - x))
    return low, high
