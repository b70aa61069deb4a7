"""Stratified bootstrap of the membership metrics, vectorised over resamples (docs/protocol.md).

Members and non-members are resampled separately, so every resample keeps the original class counts;
the thresholds are held fixed. :func:`mintkit.core.metrics.membership_metrics` turns the distributions
returned here into percentile intervals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mintkit.core.thresholds import max_fp

__all__ = ["BOOT_CHUNK_ELEMS", "stratified_bootstrap"]

# Bootstrap works on chunks of resamples holding at most this many drawn samples, so memory
# stays bounded (a few tens of MB) whatever n and n_boot are.
BOOT_CHUNK_ELEMS = 4_000_000


@dataclass(frozen=True)
class _Cuts:
    """Positions in the sorted member scores ss [n1] and non-member scores ts [n0], fixed across resamples."""

    ss: np.ndarray
    ts: np.ndarray
    mem_cut: list        # per threshold: members >= t are sorted indices >= cut
    non_cut: list        # per threshold: non-members < t are sorted indices < cut
    lo: np.ndarray       # [n1] non-members strictly below member i
    hi: np.ndarray       # [n1] ... below or tied
    kths: dict           # FPR level -> index of the (k+1)-th largest non-member (k = allowed false positives)
    part_k: list         # the distinct non-negative kths, for one np.partition


def _cuts(ss: np.ndarray, ts: np.ndarray, thresholds, tpr_levels) -> _Cuts:
    n0 = len(ts)
    kths = {f: n0 - max_fp(f, n0) - 1 for f in tpr_levels}
    return _Cuts(ss, ts, [np.searchsorted(ss, t, "left") for t in thresholds],
                 [np.searchsorted(ts, t, "left") for t in thresholds],
                 np.searchsorted(ts, ss, "left"), np.searchsorted(ts, ss, "right"),
                 kths, sorted({k for k in kths.values() if k >= 0}))


def _chunk(c: _Cuts, idx_m: np.ndarray, idx_n: np.ndarray, out: dict[str, list]) -> None:
    """Append the statistics of b resamples, idx_m [b, n1] / idx_n [b, n0] indices into the sorted arrays."""
    (b, n1), n0 = idx_m.shape, idx_n.shape[1]
    for k, (cm, cn) in enumerate(zip(c.mem_cut, c.non_cut)):
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
    below2 = cum[:, c.lo] + cum[:, c.hi]  # (b, n1)
    u2 = np.take_along_axis(below2, idx_m, axis=1).sum(axis=1)
    out["auc"].append(u2 / (2.0 * n1 * n0))

    if c.part_k:
        part = np.partition(idx_n, c.part_k, axis=1)
    for f, kth in c.kths.items():
        if kth < 0:  # the level allows every non-member to be a false positive
            out[f"tpr@{f}"].append(np.ones(b))
            continue
        q = c.ts[part[:, kth]]  # (k+1)-th largest resampled non-member score
        cut = np.searchsorted(c.ss, q, "right")  # members strictly above q
        out[f"tpr@{f}"].append((idx_m >= cut[:, None]).sum(axis=1) / n1)


def stratified_bootstrap(s_mem: np.ndarray, s_non: np.ndarray, thresholds, tpr_levels, n_boot: int,
                         seed: int) -> dict[str, np.ndarray]:
    """Stratified bootstrap of all metrics of member scores [n1] and non-member scores [n0].

    Works on the sorted scores of each class. A resample is a matrix of indices into the
    sorted array; since index order is score order, counts "above a threshold" are index
    comparisons and order statistics are ``np.partition`` on the indices.

    AUC of a resample is the Mann-Whitney U statistic with the resample's multiplicities:
    for member i, the weighted number of resampled non-members below it (+1/2 per tie) is
    a difference of the cumulative multiplicity counts at two positions fixed in advance.

    Returns dict name -> array (n_boot,) for 'acc@k', 'bacc@k' (k indexes ``thresholds``),
    'auc' and 'tpr@f'.
    """
    c = _cuts(np.sort(s_mem), np.sort(s_non), thresholds, tpr_levels)
    n1, n0 = len(c.ss), len(c.ts)
    seq_m, seq_n = np.random.SeedSequence(seed).spawn(2)
    rng_m, rng_n = np.random.default_rng(seq_m), np.random.default_rng(seq_n)
    out: dict[str, list] = {f"acc@{k}": [] for k in range(len(thresholds))}
    out.update({f"bacc@{k}": [] for k in range(len(thresholds))})
    out["auc"] = []
    out.update({f"tpr@{f}": [] for f in tpr_levels})

    chunk = max(1, BOOT_CHUNK_ELEMS // (n1 + n0))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        done += b
        idx_m = rng_m.integers(0, n1, size=(b, n1))
        idx_n = rng_n.integers(0, n0, size=(b, n0))
        _chunk(c, idx_m, idx_n, out)
    return {k: np.concatenate(v) for k, v in out.items()}
