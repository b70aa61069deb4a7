"""The metrics' bootstrap (200 resamples of 20,000 scores) against the literal loop it replaces: one
``sklearn.metrics.roc_auc_score`` per resample. Same process, interleaved; prints seconds and the ratio.

    python benchmarks/bench_bootstrap.py [--n 20000] [--n-boot 200]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import interleaved  # noqa: E402
from mintkit.core import metrics as M  # noqa: E402


def literal_loop(s: np.ndarray, y: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """AUC of each of n_boot resamples drawn with replacement within each class (the reference)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    out = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        out[b] = roc_auc_score(y[idx], s[idx])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--n-boot", type=int, default=200)
    a = ap.parse_args()
    rng = np.random.default_rng(6)
    y = (rng.random(a.n) < 0.5).astype(int)
    s = rng.normal(size=a.n) + 0.5 * y
    M.membership_metrics(s, y, n_boot=5)  # warm imports
    t = interleaved({"membership_metrics": lambda: M.membership_metrics(s, y, s, y, n_boot=a.n_boot),
                     "literal loop (AUC only)": lambda: literal_loop(s, y, a.n_boot)}, repeats=3)
    for k, v in t.items():
        print(f"{k:>26}: {v:.3f} s")
    print(f"ratio: {t['literal loop (AUC only)'] / t['membership_metrics']:.1f}x "
          f"(the fast path computes every metric's interval, the loop AUC alone)")


if __name__ == "__main__":
    main()
