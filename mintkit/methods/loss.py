"""The loss-threshold attack (Yeom et al.) on the MINT split: the baseline every paper reports beside MINT.

A sample is called a member when its cross-entropy loss under the audited model is low; the threshold is
calibrated on the MINT-training sets (docs/mint.md, "Baselines").
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from mintkit.core.data import Pool
from mintkit.core.metrics import loss_threshold_attack
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split
from mintkit.core.train import per_sample_losses
from mintkit.methods.mint import MINT_SETS


LABEL = "Loss attack (Yeom et al.)"


def loss_baseline(model: nn.Module, pool: Pool, split: Split, device: torch.device, n_boot: int = 200,
                  seed: int = 0) -> MembershipResult:
    """Yeom et al. loss-threshold attack on the same split: threshold calibrated on MINT-training sets."""
    t0 = time.perf_counter()
    L = {s: per_sample_losses(model, pool, split[s], device) for s in MINT_SETS}
    res = loss_attack(L, n_boot=n_boot, seed=seed)
    res.seconds = time.perf_counter() - t0
    return res


def loss_attack(L: dict[str, np.ndarray], n_boot: int = 200, seed: int = 0) -> MembershipResult:
    """`loss_baseline` from per-sample losses already computed, {set: [n_set]} for the four MINT_SETS
    (one forward pass can then serve several splits of the same samples). Scores are ``-loss`` [n_eval];
    the calibration is the MINT-training members (1) and the external data (0); ``metrics`` holds the
    calibrated ``threshold`` and ``loss_threshold`` (= -threshold)."""
    t0 = time.perf_counter()
    m = loss_threshold_attack(L["eval_members"], L["eval_nonmembers"], L["mint_train_members"], L["external"],
                              n_boot=n_boot, seed=seed)

    def pair(pos: str, neg: str) -> tuple[np.ndarray, np.ndarray]:
        return (-np.concatenate([L[pos], L[neg]]),
                np.r_[np.ones(len(L[pos])), np.zeros(len(L[neg]))].astype(int))
    scores, labels = pair("eval_members", "eval_nonmembers")
    calib, calib_labels = pair("mint_train_members", "external")
    return MembershipResult("loss", LABEL, scores, labels, calib, calib_labels, m, time.perf_counter() - t0)
