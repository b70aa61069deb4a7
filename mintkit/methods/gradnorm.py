"""Gradient-norm MINT (docs/gradnorm.md): per sample, the size of its own loss gradient at each chosen layer.

For the audited model M in eval mode (BatchNorm on its running statistics, dropout off, so a sample's gradient
does not depend on the others computed with it) and a sample d = (x, y) with its *true* label, the feature of
layer j (an ``nn.Conv2d`` or ``nn.Linear``) is

    n_j(d) = ‖∂ CE(M(x), y) / ∂W_j‖₂         (the Frobenius norm over the whole weight tensor W_j)

one number per layer: features [N, L] for N samples and L layers. A model has fitted its training samples, so a
member's loss, and with it the gradient, tends to be smaller. The numbers are standardised on the MINT-training
samples and go into the same MINT MLP and fit the other methods use (``mintkit.methods.mint.run_mint``;
``mintkit.methods.registry`` registers it as ``gradnorm``).

=============  =====================================================================  ================
layer          per-sample weight gradient g_i (a: layer input, δ: output gradient)     ‖g_i‖₂
=============  =====================================================================  ================
Linear [B,in]  g_i = δ_i a_iᵀ  [out, in]                                               ‖δ_i‖₂ · ‖a_i‖₂
Linear tokens  g_i = Σ_t δ_it a_itᵀ  [out, in]                                         ‖g_i‖_F
Conv2d         g_i = δ_i [F_out, L] · unfold(a_i)ᵀ [L, F_in·K_h·K_w]                    ‖g_i‖_F
=============  =====================================================================  ================

:func:`gradient_norms` is the fast path: one ordinary batched forward and one ``autograd.grad`` to the layers'
outputs give every sample's (a_i, δ_i) (``mintkit.methods.per_sample``, gMINT's hooks engine), and the table
above turns them into norms (a rank-one Linear gradient needs no [out, in] tensor at all). A layer the hooks
cannot take (grouped convolutions, a layer run twice, TorchScript) goes through ``torch.func`` ``vmap(grad)``
instead. :func:`gradient_norms_loop` is the definition, one sample at a time (forward, backward, ``w.grad``'s
norm); ``tests/test_gradnorm.py`` holds the two equal. Both run in fp32 whatever the precision policy: the
norms are a membership signal (docs/precision.md).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from mintkit.core.data import Pool, iterate_batches
from mintkit.core.train import forward_logits
from mintkit.methods.modifiers import check_layer
from mintkit.methods.per_sample import each_runs_once, hooked_gradients, hooks_can_take, per_sample_gradient


def _norms_from_hooks(module: nn.Module, a: torch.Tensor, delta: torch.Tensor, chunk: int) -> torch.Tensor:
    """[B] norms of the per-sample weight gradients from the layer's inputs a [B, ...] and output gradients
    δ [B, ...] (the module docstring's table), `chunk` samples' weight-sized tensors at a time."""
    if isinstance(module, nn.Linear) and a.dim() == 2:  # rank one: ‖δ aᵀ‖_F = ‖δ‖ ‖a‖
        return delta.norm(dim=1) * a.norm(dim=1)
    return torch.cat([per_sample_gradient(module, a[lo:lo + chunk], delta[lo:lo + chunk]).flatten(1).norm(dim=1)
                      for lo in range(0, len(a), chunk)])


def _vmap_norms(model: nn.Module, layers: list[str]):
    """x [B, ...], y [B] -> [B, L] norms through vmap(grad) of a functional call (any layer, any model)."""
    weights = {n: model.get_submodule(n).weight.detach() for n in layers}
    fixed = {k: v.detach() for k, v in (*model.named_parameters(), *model.named_buffers())
             if k not in {f"{n}.weight" for n in layers}}

    def loss(w: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels = {"labels": y[None]} if getattr(model, "needs_labels", False) else {}  # as forward_logits
        out = functional_call(model, fixed | {f"{n}.weight": w[n] for n in layers}, (x[None],), labels)
        return F.cross_entropy(out.float(), y[None])

    def one(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = grad(loss)(weights, x, y)
        return torch.stack([g[n].norm() for n in layers])
    return vmap(one)


def gradient_norms(model: nn.Module, pool: Pool, indices: np.ndarray, layers: list[str], device: torch.device,
                   batch_size: int = 256, chunk_size: int = 16, engine: str = "hooks",
                   progress: bool = False) -> torch.Tensor:
    """Features [N, L] (float32, cpu): ‖∂CE/∂W_j‖₂ of each sample of pool[indices] at each layer of `layers`
    (dotted nn.Conv2d / nn.Linear names), in that order.

    `batch_size` samples go through one forward and backward; `chunk_size` of them have their conv weight
    gradients at once (memory ∝ chunk × weights). `engine` 'hooks' (the default; a model or layer the hooks
    cannot take falls back to 'vmap') or 'vmap'.
    """
    if engine not in ("hooks", "vmap"):
        raise ValueError(f"unknown engine {engine!r}; valid: hooks, vmap")
    model.eval().to(device)
    mods = {n: check_layer(model.get_submodule(n), n) for n in layers}
    dtype = next(iter(mods.values())).weight.dtype
    idx = np.asarray(indices)
    if not len(idx):
        return torch.empty(0, len(layers))
    probe = [t.to(device) for t in pool.batch(torch.as_tensor(idx[:1]), dtype=dtype)]
    hooks = engine == "hooks" and all(hooks_can_take(m) for m in mods.values()) and each_runs_once(model, mods, *probe)
    vmapped = None if hooks else _vmap_norms(model, list(layers))
    out = []
    for b in tqdm(list(iterate_batches(idx, batch_size)), desc="gradient norms", disable=not progress, leave=False):
        x, y = (t.to(device) for t in pool.batch(b, dtype=dtype))
        if hooks:
            caught = hooked_gradients(model, mods, x, y)
            out.append(torch.stack([_norms_from_hooks(mods[n], *caught[n], chunk_size) for n in layers], dim=1))
        else:
            out.append(vmapped(x, y).detach())
    return torch.cat(out).float().cpu()


def gradient_norms_loop(model: nn.Module, pool: Pool, indices: np.ndarray, layers: list[str],
                        device: torch.device) -> torch.Tensor:
    """The definition, one sample at a time: forward, backward of its cross-entropy, the norm of each chosen
    weight's ``.grad``. Features [N, L]; slow, the reference of the tests."""
    model.eval().to(device)
    weights = [check_layer(model.get_submodule(n), n).weight for n in layers]
    rows = []
    for i in np.asarray(indices):
        x, y = (t.to(device) for t in pool.batch(torch.tensor([int(i)]), dtype=weights[0].dtype))
        model.zero_grad(set_to_none=True)
        F.cross_entropy(forward_logits(model, x, y).float(), y).backward()
        rows.append(torch.stack([w.grad.detach().norm() for w in weights]))
    model.zero_grad(set_to_none=True)
    return torch.stack(rows).float().cpu() if rows else torch.empty(0, len(layers))
