"""Activation capture from named taps, reduced as it is captured.

A forward hook on each tapped module (`mintkit.models.hooks`) reduces the map in place of storing it: per-channel max
(the MINT paper's Vanilla model) keeps N×C numbers per tap, never N×C×H×W. Full maps are kept
only on request (`reduce="none"`, the CNN MINT model), in float16 to halve their memory.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from mintkit.core import precision as prec
from mintkit.core.data import Pool, iterate_batches
from mintkit.core.train import forward_logits
from mintkit.models.hooks import forward_hooks
from mintkit.models.zoo import resolve_tap

REDUCTIONS = ("max", "mean", "none")


def reduce_activation(a: torch.Tensor, how: str) -> torch.Tensor:
    """[B, C, H, W] -> [B, C]; token sequences [B, T, D] -> [B, D]; [B, D] unchanged (or kept, 'none')."""
    if how == "none" or a.ndim == 2:
        return a
    if how not in REDUCTIONS:
        raise ValueError(f"unknown reduction {how!r}; valid: {', '.join(REDUCTIONS)}")
    dims = tuple(range(2, a.ndim)) if a.ndim == 4 else (1,)
    return a.amax(dim=dims) if how == "max" else a.mean(dim=dims)


@contextmanager
def tapped(model: nn.Module, taps: list[str], reduce: str | dict[str, str] = "max"):
    """Context yielding a dict tap -> list of captured [B, ...] tensors (detached), filled per forward."""
    store: dict[str, list[torch.Tensor]] = {t: [] for t in taps}
    how = {t: reduce[t] if isinstance(reduce, dict) else reduce for t in taps}

    def keep(t: str, out: torch.Tensor) -> None:
        r = reduce_activation(out.detach(), how[t])
        store[t].append(r.half() if how[t] == "none" else r.float())

    with forward_hooks({t: resolve_tap(model, t) for t in taps}, keep):
        yield store


@torch.no_grad()
def extract(model: nn.Module, pool: Pool, indices: np.ndarray, taps: list[str], device: torch.device,
            reduce: str | dict[str, str] = "max", batch_size: int = 256,
            precision: str | None = None) -> dict[str, torch.Tensor]:
    """Eval-mode features per tap for pool[indices]: {tap: [N, C] (reduced) or [N, C, H, W]} on cpu.

    The tap 'outcome' is the model output (logits; the embedding for face models). `precision`: None follows
    the policy (mintkit.core.precision); reduced features come back float32, full maps float16, either way.
    """
    model.eval()
    with tapped(model, taps, reduce) as store, prec.in_layout(model, device, precision) as fmt:
        for b in iterate_batches(np.asarray(indices), batch_size):
            x, _ = pool.batch(b)
            with prec.autocast(device, precision):
                forward_logits(model, prec.layout(x, fmt))
            for t in taps:  # move each batch off the device as it comes: device memory stays bounded
                store[t][-1] = store[t][-1].cpu()
    return {t: torch.cat(v) if v else torch.empty(0) for t, v in store.items()}


def features_for(feats: dict[str, torch.Tensor], taps: list[str]) -> torch.Tensor:
    """Concatenate reduced features of several taps: [N, sum C]."""
    return torch.cat([feats[t].flatten(1).float() for t in taps], dim=1)
