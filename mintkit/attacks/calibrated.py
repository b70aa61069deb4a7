"""Attacks that calibrate the audited model's loss per sample with reference models OUT for the sample.

ℓ = ℓ(θ; x, y) of the audited model [N]; ℓ_j = ℓ(θ_j; x, y) of reference model j [k, N]; ``out`` [k, N]
marks the models that did not train on the sample (only those are used). Larger score = "member".

==================  =========================================================  =================================
attack              score s(x, y)                                              reads
==================  =========================================================  =================================
Watson et al.       −(ℓ − mean_{j OUT} ℓ_j)                                    mean OUT loss (difficulty)
Ye et al. Attack-R  #{j OUT : ℓ_j ≥ ℓ} / #{j OUT}                              the OUT losses' empirical CDF
  interpolated      1 − F̃(ℓ), F̃ the piecewise-linear CDF through the sorted   (``interpolate=True``)
                    OUT losses at levels (i − ½)/m, clipped to [0, 1]
==================  =========================================================  =================================

Attack-R is a per-sample percentile test: "member" when the audited loss is below the α-quantile of the
sample's reference losses, i.e. when the score ≥ 1 − α. With m OUT models the plain share takes only m + 1
values, so many samples tie (a coarse ROC at low FPR); ``interpolate=True`` (our option) breaks ties
between the sorted reference losses. Samples with no OUT model get NaN (the caller must avoid them).
"""
from __future__ import annotations

import numpy as np


def _out_mask(out: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.asarray(out, dtype=bool)
    if out.shape != shape:
        raise ValueError(f"out mask has shape {out.shape}, expected {shape} (reference models × samples)")
    return out


def watson_scores(loss: np.ndarray, ref_loss: np.ndarray, out: np.ndarray) -> np.ndarray:
    """−(ℓ − mean OUT ℓ_j) [N] from ℓ [N], ℓ_j [k, N] and the OUT mask [k, N]."""
    ref_loss = np.asarray(ref_loss, dtype=np.float64)
    out = _out_mask(out, ref_loss.shape)
    n_out = out.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(out, ref_loss, 0.0).sum(0) / n_out
    return -(np.asarray(loss, dtype=np.float64) - mean)


def ye_scores(loss: np.ndarray, ref_loss: np.ndarray, out: np.ndarray, interpolate: bool = False) -> np.ndarray:
    """Attack-R share [N] of OUT reference losses ≥ ℓ (or its interpolated version, see the module table)."""
    loss = np.asarray(loss, dtype=np.float64)
    ref_loss = np.asarray(ref_loss, dtype=np.float64)
    out = _out_mask(out, ref_loss.shape)
    n_out = out.sum(0)
    if not interpolate:
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((ref_loss >= loss[None]) & out).sum(0) / n_out
    scores = np.full(len(loss), np.nan)
    for i in range(len(loss)):
        r = np.sort(ref_loss[out[:, i], i])
        if len(r):
            levels = (np.arange(1, len(r) + 1) - 0.5) / len(r)
            scores[i] = 1.0 - np.interp(loss[i], r, levels, left=0.0, right=1.0)
    return scores
