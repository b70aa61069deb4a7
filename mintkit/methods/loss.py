"""The loss-threshold attack (Yeom et al.): the one home of its score and of its calibrated threshold.

A sample is called a member when its cross-entropy loss under the audited model is low: score ``-loss``
(`loss_scores`, which the attacks' "yeom" scorer reads too). The threshold is calibrated (max balanced accuracy)
on the MINT-training members that are not evaluated and on the external data: the data a MINT model sees, never
evaluated samples (docs/mint.md, "Baselines"; docs/attacks.md). Yeom et al. use the audited model's mean
training loss; that is one possible calibration set, pass those losses to reproduce it.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from mintkit.core.data import Pool
from mintkit.core.metrics import membership_metrics
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split
from mintkit.core.thresholds import calibrate_threshold
from mintkit.core.train import per_sample_losses
from mintkit.methods.mint import MINT_SETS


LABEL = "Loss attack (Yeom et al.)"


def loss_scores(loss) -> np.ndarray:
    """Membership scores −ℓ [N] (float64) from per-sample losses ℓ [N]: low loss, high score."""
    return -np.asarray(loss, dtype=np.float64).reshape(-1)


def loss_sets(split: Split) -> dict[str, np.ndarray]:
    """Pool indices of the four MINT_SETS as the loss attack reads them: the calibration members are the
    MINT-training members that are not evaluated (under aMINT's paper protocol some are; elsewhere none)."""
    sets = {s: np.asarray(split[s]) for s in MINT_SETS}
    sets["mint_train_members"] = sets["mint_train_members"][~np.isin(sets["mint_train_members"],
                                                                      sets["eval_members"])]
    return sets


def loss_baseline(model: nn.Module, pool: Pool, split: Split, device: torch.device, n_boot: int = 200,
                  seed: int = 0) -> MembershipResult:
    """Yeom et al. loss-threshold attack on the same split: threshold calibrated on MINT-training sets."""
    t0 = time.perf_counter()
    L = {s: per_sample_losses(model, pool, idx, device) for s, idx in loss_sets(split).items()}
    res = loss_attack(L, n_boot=n_boot, seed=seed)
    res.seconds = time.perf_counter() - t0
    return res


def loss_attack(L: dict[str, np.ndarray], n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> MembershipResult:
    """`loss_baseline` from per-sample losses already computed, {set: [n_set]} for the four MINT_SETS
    (`loss_sets`: one forward pass can then serve several splits of the same samples). Scores are ``-loss``
    [n_eval]; the calibration is the MINT-training members (1) and the external data (0); ``metrics`` holds
    `membership_metrics` with ``accuracy`` at the calibrated threshold (= ``accuracy_calibrated``), plus that
    ``threshold`` and ``loss_threshold`` (= -threshold; members have loss <= it)."""
    t0 = time.perf_counter()

    def pair(pos: str, neg: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.r_[loss_scores(L[pos]), loss_scores(L[neg])],
                np.r_[np.ones(len(L[pos])), np.zeros(len(L[neg]))].astype(int))
    scores, labels = pair("eval_members", "eval_nonmembers")
    calib, calib_labels = pair("mint_train_members", "external")
    thr = calibrate_threshold(calib, calib_labels.astype(bool))
    m = membership_metrics(scores, labels.astype(bool), calib_scores=calib, calib_labels=calib_labels.astype(bool),
                           threshold=thr, n_boot=n_boot, seed=seed, ci=ci)
    m["threshold"], m["loss_threshold"] = thr, -thr
    return MembershipResult("loss", LABEL, scores, labels, calib, calib_labels, m, time.perf_counter() - t0)
