"""The loss-threshold attack (Yeom et al.) on the MINT split: the baseline every paper reports beside MINT.

A sample is called a member when its cross-entropy loss under the audited model is low; the threshold is
calibrated on the MINT-training sets (docs/mint.md, "Baselines").
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mintkit.core.data import Pool
from mintkit.core.metrics import loss_threshold_attack
from mintkit.core.splits import Split
from mintkit.core.train import per_sample_losses
from mintkit.methods.mint import MINT_SETS


def loss_baseline(model: nn.Module, pool: Pool, split: Split, device: torch.device, n_boot: int = 200) -> dict:
    """Yeom et al. loss-threshold attack on the same split: threshold calibrated on MINT-training sets."""
    L = {s: per_sample_losses(model, pool, split[s], device) for s in MINT_SETS}
    return loss_attack(L, n_boot=n_boot)


def loss_attack(L: dict[str, np.ndarray], n_boot: int = 200, seed: int = 0) -> dict:
    """`loss_baseline` from per-sample losses already computed, {set: [n_set]} for the four MINT_SETS
    (one forward pass can then serve several splits of the same samples)."""
    out = loss_threshold_attack(L["eval_members"], L["eval_nonmembers"], L["mint_train_members"], L["external"],
                                n_boot=n_boot, seed=seed)
    out["scores"] = -np.concatenate([L["eval_members"], L["eval_nonmembers"]])
    out["labels"] = np.r_[np.ones(len(L["eval_members"])), np.zeros(len(L["eval_nonmembers"]))].astype(int)
    return out
