"""Per-sample weight gradients of chosen layers from one ordinary batched pass: gMINT's hooks engine.

In eval mode a sample's loss depends on its own input only, so for a batch of B samples the gradient of the summed
loss with respect to a layer's output [B, F_out, ...] holds every sample's own output gradient δ_i. With the layer's
input a_i kept by a forward hook (`mintkit.models.hooks`), sample i's weight gradient is a product per layer:

=========  ==========================================================================================
Conv2d     g_i = δ_i [F_out, L] · unfold(a_i)ᵀ [L, F_in·K_h·K_w]   (L output positions; groups = 1)
Linear     g_i = δ_iᵀ a_i [out, in], summed over tokens for [B, T, in] inputs (ViT's fc1)
=========  ==========================================================================================

One forward and one ``autograd.grad`` to the layers' outputs: no weight gradient is formed and nothing below the
earliest chosen layer is differentiated. `mintkit.methods.modifiers.weight_modifiers` turns these into modifiers and
ties them to the literal loop (docs/gmint.md, "Weight modifiers").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mintkit.core.train import forward_logits
from mintkit.models.hooks import forward_hooks


def hooks_can_take(module: nn.Module) -> bool:
    """Whether the hooks engine computes this layer's per-sample gradient (a Linear, or an ungrouped,
    zero-padded Conv2d with numeric padding); the vmap engine takes the rest."""
    if isinstance(module, torch.jit.ScriptModule):  # no forward hooks on TorchScript
        return False
    if isinstance(module, nn.Linear):
        return True
    return (isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"
            and not isinstance(module.padding, str))


def per_sample_gradient(module: nn.Module, a: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """[s, *weight.shape] weight gradients of s samples from the layer's input ``a`` and output gradient ``delta``
    (Conv2d: a [s, F_in, H, W], delta [s, F_out, H', W']; Linear: a [s, (T,) in], delta [s, (T,) out])."""
    if isinstance(module, nn.Conv2d):
        cols = F.unfold(a, module.kernel_size, module.dilation, module.padding, module.stride)  # [s, F_in·K·K, L]
        return torch.bmm(delta.flatten(2), cols.transpose(1, 2)).view(len(a), *module.weight.shape)
    if a.dim() == 2:
        return delta[:, :, None] * a[:, None, :]
    return torch.einsum("sto,sti->soi", delta.flatten(1, -2), a.flatten(1, -2))


def hooked_gradients(model: nn.Module, mods: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor
                     ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{layer: (input a, output gradient δ)} of a batch: one forward, one autograd.grad to the layers' outputs."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with forward_hooks(mods, lambda n, out, inp: seen.__setitem__(n, (inp.detach(), out)), with_input=True), \
            torch.enable_grad():
        out = forward_logits(model, x.requires_grad_(True), y)  # x needs grad so every output is in the graph
        deltas = torch.autograd.grad(F.cross_entropy(out.float(), y, reduction="sum"), [seen[n][1] for n in mods])
    return {n: (seen[n][0], d.detach()) for n, d in zip(mods, deltas)}


@torch.no_grad()
def each_runs_once(model: nn.Module, mods: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether every chosen layer runs exactly once in a forward of one sample (a shared layer has one weight
    gradient from several uses, which one hook cannot see: the vmap engine takes such a model)."""
    calls = {n: 0 for n in mods}
    with forward_hooks(mods, lambda n, _out: calls.__setitem__(n, calls[n] + 1)):
        forward_logits(model, x, y)
    return all(c == 1 for c in calls.values())
