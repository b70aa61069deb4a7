"""Membership metrics with uncertainty, the LOSS baseline, face-embedding accuracies, and seed summaries.

Conventions (used by every function here)
-----------------------------------------
* ``scores``: one membership score per sample, any real number; **higher = more likely a
  member**. MINT heads give a probability in [0, 1]; the LOSS attack uses ``-loss``.
* ``labels``: 1 = member, 0 = non-member (bool or int).
* Decision rule: a sample is predicted *member* when ``score >= threshold``. This is the
  convention of :func:`sklearn.metrics.roc_curve`.
* Thresholds are never chosen on evaluation data. ``mint_accuracy`` uses the fixed threshold
  (0.5 by default: the papers' number); ``mint_accuracy_calibrated`` uses the threshold that
  maximises balanced accuracy on *calibration* data (the data the MINT model was trained on),
  see :func:`calibrate_threshold`.

Keys returned by :func:`membership_metrics`
-------------------------------------------
Point estimates, exactly :data:`METRICS`::

    mint_accuracy             accuracy at ``threshold``
    mint_accuracy_calibrated  accuracy at the calibrated threshold (NaN without calibration data)
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
import torch
from scipy.stats import beta, rankdata
from sklearn.metrics import roc_curve

__all__ = [
    "METRICS",
    "CI_METRICS",
    "TPR_METRICS",
    "FPR_LEVELS",
    "calibrate_threshold",
    "tpr_at_fpr",
    "membership_metrics",
    "loss_threshold_attack",
    "summarize_seeds",
]

METRICS = (
    "mint_accuracy",
    "mint_accuracy_calibrated",
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

# Bootstrap works on chunks of resamples holding at most this many drawn samples, so memory
# stays bounded (a few tens of MB) whatever n and n_boot are.
_BOOT_CHUNK_ELEMS = 4_000_000


# --------------------------------------------------------------------------- validation
def _check(scores, labels, what: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Return (float64 scores, bool labels); raise ValueError on bad input."""
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


# --------------------------------------------------------------------------- thresholds
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
    s, y = _check(scores, labels, "calibration")
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


def _max_fp(fpr: float, n0: int) -> int:
    """Largest k with k / n0 <= fpr (the comparison roc_curve's FPR undergoes)."""
    k = int(math.floor(fpr * n0))
    while k + 1 <= n0 and (k + 1) / n0 <= fpr:
        k += 1
    while k > 0 and k / n0 > fpr:
        k -= 1
    return k


def tpr_at_fpr(scores, labels, fpr: float) -> float:
    """Largest TPR over ROC points whose FPR is <= ``fpr``; 0 if there is none."""

    s, y = _check(scores, labels)
    # keep every point: dropping collinear ones can drop the best point below the level
    f, t, _ = roc_curve(y, s, drop_intermediate=False)
    ok = f <= fpr
    return float(t[ok].max()) if ok.any() else 0.0


# --------------------------------------------------------------------------- AUC by ranks
def _auc_ranks(s_mem: np.ndarray, s_non: np.ndarray) -> float:
    """Mann-Whitney U / (n1 n0), ties count one half (= sklearn roc_auc_score)."""

    n1, n0 = len(s_mem), len(s_non)
    r = rankdata(np.r_[s_mem, s_non])  # average ranks for ties
    u = r[:n1].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n0))


# --------------------------------------------------------------------------- bootstrap
def _bootstrap(s_mem, s_non, thresholds, tpr_levels, n_boot, seed):
    """Stratified bootstrap of all metrics, vectorised over resamples.

    Works on the sorted scores of each class. A resample is a matrix of indices into the
    sorted array; since index order is score order, counts "above a threshold" are index
    comparisons and order statistics are ``np.partition`` on the indices.

    AUC of a resample is the Mann-Whitney U statistic with the resample's multiplicities:
    for member i, the weighted number of resampled non-members below it (+1/2 per tie) is
    a difference of the cumulative multiplicity counts at two positions fixed in advance.

    Returns dict name -> array (n_boot,) for 'acc@k', 'bacc@k' (k indexes ``thresholds``),
    'auc' and 'tpr@f'.
    """
    ss = np.sort(s_mem)
    ts = np.sort(s_non)
    n1, n0 = len(ss), len(ts)
    # positions in the sorted arrays, fixed across resamples
    mem_cut = [np.searchsorted(ss, t, "left") for t in thresholds]  # members >= t: idx >= cut
    non_cut = [np.searchsorted(ts, t, "left") for t in thresholds]
    lo = np.searchsorted(ts, ss, "left")  # non-members strictly below member i
    hi = np.searchsorted(ts, ss, "right")  # ... below or tied
    kths = {f: n0 - _max_fp(f, n0) - 1 for f in tpr_levels}  # index of (k+1)-th largest
    part_k = sorted({k for k in kths.values() if k >= 0})

    seq_m, seq_n = np.random.SeedSequence(seed).spawn(2)
    rng_m, rng_n = np.random.default_rng(seq_m), np.random.default_rng(seq_n)
    out = {f"acc@{k}": [] for k in range(len(thresholds))}
    out.update({f"bacc@{k}": [] for k in range(len(thresholds))})
    out["auc"] = []
    out.update({f"tpr@{f}": [] for f in tpr_levels})

    chunk = max(1, _BOOT_CHUNK_ELEMS // (n1 + n0))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        done += b
        idx_m = rng_m.integers(0, n1, size=(b, n1))
        idx_n = rng_n.integers(0, n0, size=(b, n0))

        for k, (cm, cn) in enumerate(zip(mem_cut, non_cut)):
            tp = (idx_m >= cm).sum(axis=1)
            tn = (idx_n < cn).sum(axis=1)
            out[f"acc@{k}"].append((tp + tn) / (n1 + n0))
            out[f"bacc@{k}"].append((tp / n1 + tn / n0) / 2)

        # multiplicity of each sorted non-member in each resample, then cumulative counts
        mult = np.bincount(
            (idx_n + (np.arange(b) * n0)[:, None]).ravel(), minlength=b * n0
        ).reshape(b, n0)
        cum = np.zeros((b, n0 + 1), dtype=np.int64)
        np.cumsum(mult, axis=1, out=cum[:, 1:])
        # 2 * (count below + count below-or-tied) per sorted member; integer until the end
        below2 = cum[:, lo] + cum[:, hi]  # (b, n1)
        u2 = np.take_along_axis(below2, idx_m, axis=1).sum(axis=1)
        out["auc"].append(u2 / (2.0 * n1 * n0))

        if part_k:
            part = np.partition(idx_n, part_k, axis=1)
        for f, kth in kths.items():
            if kth < 0:  # the level allows every non-member to be a false positive
                out[f"tpr@{f}"].append(np.ones(b))
                continue
            q = ts[part[:, kth]]  # (k+1)-th largest resampled non-member score
            cut = np.searchsorted(ss, q, "right")  # members strictly above q
            out[f"tpr@{f}"].append((idx_m >= cut[:, None]).sum(axis=1) / n1)
    return {k: np.concatenate(v) for k, v in out.items()}


def _clopper_pearson(x: int, n: int, level: float) -> tuple[float, float]:

    a = 1 - level
    low = 0.0 if x == 0 else float(beta.ppf(a / 2, x, n - x + 1))
    high = 1.0 if x == n else float(beta.ppf(1 - a / 2, x + 1, n - x))
    return low, high


# --------------------------------------------------------------------------- main entry
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
    """All membership metrics of one evaluation set, with intervals.

    See the module docstring for every key. ``calib_scores``/``calib_labels`` are the
    MINT-training (calibration) data; without them the calibrated metrics are NaN.
    ``n_boot=0`` skips the bootstrap (CI keys are NaN). Same ``seed``, same intervals.
    """
    s, y = _check(scores, labels, "evaluation")
    if (calib_scores is None) != (calib_labels is None):
        raise ValueError("pass both calib_scores and calib_labels, or neither")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    threshold = float(threshold)
    s_mem, s_non = s[y], s[~y]
    n1, n0 = len(s_mem), len(s_non)

    thr_cal = math.nan
    if calib_scores is not None:
        thr_cal = calibrate_threshold(calib_scores, calib_labels)

    def acc_at(t: float) -> tuple[float, float]:
        tp = int((s_mem >= t).sum())
        tn = int((s_non < t).sum())
        return (tp + tn) / (n1 + n0), (tp / n1 + tn / n0) / 2

    acc, bacc = acc_at(threshold)
    out: dict = {
        "mint_accuracy": acc,
        "mint_accuracy_calibrated": acc_at(thr_cal)[0] if not math.isnan(thr_cal) else math.nan,
        "balanced_accuracy": bacc,
        "auc": _auc_ranks(s_mem, s_non),
    }
    for name, f in FPR_LEVELS.items():
        out[name] = tpr_at_fpr(s, y, f)
    out["n_eval_members"] = n1
    out["n_eval_nonmembers"] = n0
    out["threshold"] = threshold
    out["threshold_calibrated"] = thr_cal
    out["fpr_resolution"] = 1.0 / n0

    # bootstrap
    for m in CI_METRICS:
        out[f"{m}_ci_low"] = out[f"{m}_ci_high"] = math.nan
    if n_boot > 0:
        thresholds = [threshold] + ([] if math.isnan(thr_cal) else [thr_cal])
        boot = _bootstrap(s_mem, s_non, thresholds, tuple(FPR_LEVELS.values()), n_boot, seed)
        dist = {
            "mint_accuracy": boot["acc@0"],
            "balanced_accuracy": boot["bacc@0"],
            "auc": boot["auc"],
        }
        if len(thresholds) == 2:
            dist["mint_accuracy_calibrated"] = boot["acc@1"]
        for name, f in FPR_LEVELS.items():
            dist[name] = boot[f"tpr@{f}"]
        q = [100 * (1 - ci) / 2, 100 * (1 + ci) / 2]
        for m, v in dist.items():
            low, high = np.percentile(v, q)
            out[f"{m}_ci_low"], out[f"{m}_ci_high"] = float(low), float(high)

    for name, f in FPR_LEVELS.items():
        x = int(round(out[name] * n1))
        out[f"{name}_cp_low"], out[f"{name}_cp_high"] = _clopper_pearson(x, n1, ci)
        out[f"{name}_max_fp"] = _max_fp(f, n0)
    out["ci_level"] = float(ci)
    out["n_boot"] = int(n_boot)
    return out


# --------------------------------------------------------------------------- LOSS baseline
def loss_threshold_attack(
    member_losses,
    nonmember_losses,
    calib_member_losses,
    calib_nonmember_losses,
    n_boot: int = 200,
    seed: int = 0,
    ci: float = 0.95,
) -> dict:
    """LOSS attack (Yeom et al., 2018): a sample is a member when its loss is low.

    Score = ``-loss``. The threshold is calibrated (max balanced accuracy) on the
    calibration losses: in mintkit these are the MINT-training members and the external
    non-members, the same data a MINT model sees, so the baseline and MINT are compared on
    equal terms. (Yeom et al. use the audited model's mean training loss; that is one
    possible calibration set, pass those losses to reproduce it.)

    Returns :func:`membership_metrics` on the evaluation losses, with ``mint_accuracy``
    measured at the calibrated threshold (so it equals ``mint_accuracy_calibrated``), plus
    ``threshold`` and ``loss_threshold`` (= ``-threshold``; members have loss <= it).
    """
    mem = -np.asarray(member_losses, dtype=np.float64).reshape(-1)
    non = -np.asarray(nonmember_losses, dtype=np.float64).reshape(-1)
    cmem = -np.asarray(calib_member_losses, dtype=np.float64).reshape(-1)
    cnon = -np.asarray(calib_nonmember_losses, dtype=np.float64).reshape(-1)
    cal_s = np.r_[cmem, cnon]
    cal_y = np.r_[np.ones(len(cmem), bool), np.zeros(len(cnon), bool)]
    thr = calibrate_threshold(cal_s, cal_y)
    out = membership_metrics(
        np.r_[mem, non],
        np.r_[np.ones(len(mem), bool), np.zeros(len(non), bool)],
        calib_scores=cal_s,
        calib_labels=cal_y,
        threshold=thr,
        n_boot=n_boot,
        seed=seed,
        ci=ci,
    )
    out["threshold"] = thr
    out["loss_threshold"] = -thr
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
