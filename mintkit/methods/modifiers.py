"""gMINT Weight Modifiers: per sample, the change one optimiser step on that sample alone would make.

For a trained audited model M with weights W and one sample d = (x, y) (its *true* label), the
Weight Modifier of layer j is (gMINT Eq. 6)

    G_j(d) = W_j^t - W_j^{t+1}(d)      one optimiser step on the batch {d} alone.

It depends on the optimiser ("rule"), which the paper leaves open (docs/gmint.md, "Weight modifiers"):

=============  =========================================================================
``sgd``        G = lr · (g + wd·W)                         (plain SGD; first momentum step is the same)
``adam``       fresh Adam state, step 1: m̂ = g, v̂ = g²  ->  G = lr · g / (|g| + eps)  (≈ lr·sign(g))
``adam-state`` Adam continued from the audited model's end-of-training state (exp_avg, exp_avg_sq,
               step of that parameter): m = β1·m0 + (1-β1)·g, v = β2·v0 + (1-β2)·g²,
               G = lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps),  t = step + 1
``grad``       G = g, the raw gradient (the paper reports it as "not competitive")
=============  =========================================================================

with g = ∂ CE(M(x), y) / ∂W_j. The model is in eval mode (BatchNorm uses its running
statistics, dropout is off), so a sample's modifier does not depend on which other samples are
computed with it. Every modifier is reduced per output filter: a conv weight
``(F_out, F_in, K_h, K_w)`` (a Linear weight ``(out, in)``) gives ``F_out`` (``out``) numbers, the
``mean`` / ``min`` / ``max`` over the rest (the paper's MEAN / MIN / MAX).

:func:`weight_modifiers` is the fast path, with two engines that give the same numbers:

=============  ==================================================================
On CUDA with TF32 allowed, cuDNN convolutions and the batched matmuls round differently, and fresh-Adam
modifiers (≈ sign(g)) differ from the loop's where |g| ~ eps; every sample goes through the same batched
path, so membership features stay consistent, but the loop comparison needs TF32 off (the benchmark does so).
"""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from mintkit.core.data import Pool, iterate_batches
from mintkit.methods.per_sample import each_runs_once, hooked_gradients, hooks_can_take, per_sample_gradient

RULES = ("sgd", "adam", "adam-state", "grad")
ENGINES = ("hooks", "vmap")
# per-filter reductions of a weight-shaped modifier (not the spatial reductions of activations,
# mintkit.models.extract.REDUCTIONS)
FILTER_REDUCTIONS = ("mean", "min", "max")
STATE_KEYS = ("exp_avg", "exp_avg_sq", "step")


@dataclass
class Optimiser:
    """Hyper-parameters of the single step. `lr` only scales G (the MINT model standardises its inputs)."""

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0


def check_layer(module: nn.Module, name: str) -> nn.Module:
    if not isinstance(module, (nn.Conv2d, nn.Linear)):
        raise TypeError(f"gMINT layer {name!r} is {type(module).__name__}; expected nn.Conv2d or nn.Linear")
    return module


def _check(rules, reductions, layers, state) -> None:
    bad = [r for r in rules if r not in RULES]
    if bad:
        raise ValueError(f"unknown rule(s) {bad}; valid: {', '.join(RULES)}")
    bad = [r for r in reductions if r not in FILTER_REDUCTIONS]
    if bad:
        raise ValueError(f"unknown reduction(s) {bad}; valid: {', '.join(FILTER_REDUCTIONS)}")
    if "adam-state" in rules:
        missing = [n for n in layers if n not in (state or {}) or any(k not in state[n] for k in STATE_KEYS)]
        if missing:
            raise ValueError(f"rule 'adam-state' needs state[layer] = {{{', '.join(STATE_KEYS)}}} for {missing} "
                             "(train the audited model with Adam and keep its optimiser state)")


def _unscaled(g: torch.Tensor, w: torch.Tensor, rule: str, opt: Optimiser, state: dict | None,
              inplace: bool = False) -> tuple[torch.Tensor, float]:
    """(U, c) with G = c·U, c > 0: the positive step size is applied after the per-filter reduction
    (mean, min and max commute with it), which saves a pass over the weight-sized tensor."""
    if rule == "grad":
        return g, 1.0
    if opt.weight_decay:
        g = g + opt.weight_decay * w
    if rule == "sgd":
        return g, opt.lr
    b1, b2 = opt.betas
    if rule == "adam":  # step 1 from zero moments: m̂ = g, v̂ = g²  ->  g / (|g| + eps)
        d = g.abs().add_(opt.eps).reciprocal_()
        return d.mul_(g), opt.lr
    t = state["step"] + 1.0
    m = state["exp_avg"] * b1 + (1 - b1) * g  # torch: exp_avg.lerp_(g, 1 - β1)
    v = (g * g).mul_(1 - b2).add_(state["exp_avg_sq"], alpha=b2)
    d = v.sqrt_().div_((1 - b2 ** t) ** 0.5).add_(opt.eps)
    return m.div_(d), opt.lr / (1 - b1 ** t)


def apply_rule(g: torch.Tensor, w: torch.Tensor, rule: str, opt: Optimiser, state: dict | None = None) -> torch.Tensor:
    """Weight Modifier G (shape of w) from one sample's gradient g, as torch.optim would step it."""
    u, c = _unscaled(g, w, rule, opt, None if state is None else state | {"step": float(state["step"])})
    return u * c


def reduce_filters(G: torch.Tensor, how: str, dim: int = 0) -> torch.Tensor:
    """[F_out, ...] -> [F_out]: mean / min / max over (F_in, K_h, K_w) (Linear: over inputs); with `dim`
    leading batch dims, [s, F_out, ...] -> [s, F_out]."""
    flat = G.flatten(dim + 1)
    if how == "mean":
        return flat.mean(dim + 1)
    if how == "min":
        return flat.amin(dim + 1)
    if how == "max":
        return flat.amax(dim + 1)
    raise ValueError(f"unknown reduction {how!r}; valid: {', '.join(FILTER_REDUCTIONS)}")


def _reduce_rules(g: torch.Tensor, w: torch.Tensor, n: str, rules: tuple[str, ...], reductions: tuple[str, ...],
                  opt: Optimiser, state: dict | None, dim: int, out: dict[str, torch.Tensor]) -> None:
    """Every rule × reduction of one layer's gradient ``g`` into ``out``: ``g`` is ``w``-shaped after ``dim``
    leading dims (0 inside vmap, 1 for a chunk ``[s, *w.shape]``); each block is reduced over the dims after
    the filter axis, so ``out[key]`` is ``[F_out]`` (``[s, F_out]``)."""
    for r in sorted(rules, key=lambda r: r != "grad"):  # grad first: sgd reuses its reductions
        if r == "sgd" and "grad" in rules and not opt.weight_decay:  # sgd = lr · grad: reduce once
            for how in reductions:
                out[key(n, r, how)] = opt.lr * out[key(n, "grad", how)]
            continue
        u, c = _unscaled(g, w, r, opt, state)
        flat = u.flatten(dim + 1)
        red = dict(zip(("min", "max"), torch.aminmax(flat, dim=dim + 1))) if {"min", "max"} <= set(reductions) else {}
        for how in reductions:
            out[key(n, r, how)] = (red[how] if how in red else reduce_filters(flat, how, dim)) * c


def _unfold_forward(c: nn.Conv2d):
    """forward of `c` as unfold + matmul (same numbers up to float rounding)."""
    kh, kw = c.kernel_size

    def forward(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ho = (h + 2 * c.padding[0] - c.dilation[0] * (kh - 1) - 1) // c.stride[0] + 1
        wo = (w + 2 * c.padding[1] - c.dilation[1] * (kw - 1) - 1) // c.stride[1] + 1
        cols = F.unfold(x, c.kernel_size, c.dilation, c.padding, c.stride)  # [N, C_in·K_h·K_w, L]
        out = (c.weight.flatten(1) @ cols).unflatten(-1, (ho, wo))
        return out if c.bias is None else out + c.bias[:, None, None]
    return forward


@contextmanager
def matmul_convs(model: nn.Module, layers: list[str]):
    """Run the chosen nn.Conv2d layers as unfold + matmul for the duration.

    Under vmap(grad) a convolution's per-sample weight gradient becomes a grouped convolution (one
    group per sample), slow on CPU; as a matmul it is one batched matmul (bmm). Convs with groups,
    string padding or a non-zero padding mode are left as they are.
    """
    patched = []
    for n in layers:
        c = model.get_submodule(n)
        if isinstance(c, nn.Conv2d) and c.groups == 1 and c.padding_mode == "zeros" \
                and not isinstance(c.padding, str):
            c.forward = _unfold_forward(c)
            patched.append(c)
    try:
        yield patched
    finally:
        for c in patched:
            del c.forward


def key(layer: str, rule: str, reduction: str) -> str:
    """Name of one modifier feature block: '<layer>|<rule>|<reduction>'."""
    return f"{layer}|{rule}|{reduction}"


def _logits(model: nn.Module, fn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return fn(x, labels=y) if getattr(model, "needs_labels", False) else fn(x)


@dataclass
class Modifiers:
    """Reduced modifiers {key(layer, rule, reduction): [N, F_out]} of pool[indices], with timing."""

    features: dict[str, torch.Tensor]
    indices: np.ndarray
    layers: list[str]
    rules: tuple[str, ...]
    reductions: tuple[str, ...]
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)

    def get(self, layers: list[str], rule: str, reduction: str, rows: np.ndarray | None = None) -> torch.Tensor:
        """[n, Σ F_out] for `layers` concatenated (Combined setup = several layers), optional pool rows."""
        x = torch.cat([self.features[key(l, rule, reduction)] for l in layers], dim=1)
        if rows is None:
            return x
        if "_row" not in self.meta:  # pool index -> row of the feature tensors
            self.meta["_row"] = np.full(int(self.indices.max()) + 1, -1)
            self.meta["_row"][self.indices] = np.arange(len(self.indices))
        r = self.meta["_row"][np.asarray(rows)]
        if (r < 0).any():
            raise KeyError(f"{int((r < 0).sum())} requested samples have no modifiers")
        return x[torch.as_tensor(r, dtype=torch.long)]


def weight_modifiers(model: nn.Module, pool: Pool, indices: np.ndarray, layers: list[str], device: torch.device,
                     rules: tuple[str, ...] = ("adam",), reductions: tuple[str, ...] = ("mean",),
                     opt: Optimiser | None = None, state: dict[str, dict] | None = None, batch_size: int = 256,
                     chunk_size: int | None = None, progress: bool = False, matmul: bool = True,
                     engine: str = "hooks") -> Modifiers:
    """Batched Weight Modifiers of the layers named `layers` (dotted nn.Conv2d/nn.Linear names) for pool[indices].

    rules × reductions are all computed from one gradient pass. `state[layer]` holds the Adam state
    (exp_avg, exp_avg_sq, step) of that layer's weight for rule 'adam-state'. `batch_size` samples are
    sliced from the pool at a time; `chunk_size` of them have their weight-sized tensors at once (memory ∝
    chunk × weights; None: 1 for the hooks engine on CPU, where one sample's tensors stay in cache and the
    elementwise rules run at cache speed, 32 for vmap on CPU, 64 on CUDA; benchmarks/bench_modifiers.py). `engine` 'hooks' (default; 'vmap' where a layer needs it, see :func:`hooks_can_take`) or
    'vmap' (module docstring); `matmul` runs the vmap engine's convs as unfold + matmul (`matmul_convs`).
    """
    opt = opt or Optimiser()
    rules, reductions = tuple(rules), tuple(reductions)
    _check(rules, reductions, layers, state)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    model.eval().to(device)
    mods = {n: check_layer(model.get_submodule(n), n) for n in layers}
    sel = {n: mods[n].weight.detach() for n in layers}
    st = {n: {"exp_avg": torch.as_tensor(state[n]["exp_avg"]).to(device, sel[n].dtype),
              "exp_avg_sq": torch.as_tensor(state[n]["exp_avg_sq"]).to(device, sel[n].dtype),
              "step": float(state[n]["step"])} for n in layers} if "adam-state" in rules else {}
    dtype = next(iter(sel.values())).dtype
    idx = np.asarray(indices)
    hooks = engine == "hooks" and all(hooks_can_take(m) for m in mods.values()) and len(idx) > 0 and \
        each_runs_once(model, mods, *(t.to(device) for t in pool.batch(torch.as_tensor(idx[:1]), dtype=dtype)))
    chunk_size = chunk_size or (64 if device.type == "cuda" else 1 if hooks else 32)
    batched = (_hooks_batch(model, mods, sel, rules, reductions, opt, st, chunk_size) if hooks else
               _vmap_batch(model, layers, sel, rules, reductions, opt, st, chunk_size))
    t0 = time.perf_counter()
    parts: dict[str, list[torch.Tensor]] = {}
    with matmul_convs(model, layers if matmul and not hooks else []):
        for b in tqdm(list(iterate_batches(idx, batch_size)), desc="weight modifiers", disable=not progress,
                      leave=False):
            x, y = pool.batch(b, dtype=dtype)
            for k, v in batched(x.to(device), y.to(device)).items():
                parts.setdefault(k, []).append(v.float().cpu())
    feats = {k: torch.cat(v) for k, v in parts.items()}
    return Modifiers(feats, idx, list(layers), rules, reductions, time.perf_counter() - t0,
                     {"filters": {n: int(mods[n].weight.shape[0]) for n in layers}, "chunk_size": chunk_size,
                      "optimiser": opt.__dict__, "engine": "hooks" if hooks else "vmap"})


def _hooks_batch(model, mods, sel, rules, reductions, opt, st, chunk_size):
    """x [B, ...], y [B] -> {key: [B, F_out]} through the hooks engine."""
    def run(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        caught = hooked_gradients(model, mods, x, y)
        step = chunk_size or len(x)
        out: dict[str, list[torch.Tensor]] = {}
        for lo in range(0, len(x), step):
            for n, (a, d) in caught.items():
                block: dict[str, torch.Tensor] = {}
                g = per_sample_gradient(mods[n], a[lo:lo + step], d[lo:lo + step])
                _reduce_rules(g, sel[n], n, rules, reductions, opt, st.get(n), 1, block)
                for k, v in block.items():
                    out.setdefault(k, []).append(v)
        return {k: torch.cat(v) for k, v in out.items()}
    return run


def _vmap_batch(model, layers, sel, rules, reductions, opt, st, chunk_size):
    """x [B, ...], y [B] -> {key: [B, F_out]} through vmap(grad) of a functional call."""
    wname = {n: f"{n}.weight" for n in layers}
    const = {k: v.detach() for k, v in model.named_parameters() if k not in set(wname.values())}
    const.update({k: v.detach() for k, v in model.named_buffers()})

    def loss(w: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        full = const | {wname[n]: w[n] for n in layers}
        out = _logits(model, lambda *a, **k: functional_call(model, full, a, k), x.unsqueeze(0), y.unsqueeze(0))
        return F.cross_entropy(out.float(), y.unsqueeze(0))

    g_fn = grad(loss)

    def per_sample(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        g, out = g_fn(sel, x, y), {}
        for n in layers:
            _reduce_rules(g[n], sel[n], n, rules, reductions, opt, st.get(n), 0, out)
        return out

    return vmap(per_sample, chunk_size=chunk_size)


def weight_modifiers_loop(model: nn.Module, pool: Pool, indices: np.ndarray, layers: list[str],
                          device: torch.device, rule: str = "adam", reductions: tuple[str, ...] = ("mean",),
                          opt: Optimiser | None = None, state: dict[str, dict] | None = None,
                          literal: bool = False) -> Modifiers:
    """The definition, one sample at a time: forward, backward, optimizer.step(), G = W_before - W_after,
    restore W (rule 'grad': G = .grad). Slow; the reference for tests and the benchmark.

    literal=False steps only the chosen layers' weights (the lean loop); literal=True is Eq. 6 as
    written: an optimiser over every parameter, the whole state dict saved and restored per sample.
    Both give the same G for the chosen layers.
    """
    opt = opt or Optimiser()
    _check((rule,), reductions, layers, state)
    model.eval().to(device)
    weights = [check_layer(model.get_submodule(n), n).weight for n in layers]
    stepped = list(model.parameters()) if literal else weights
    dtype = weights[0].dtype
    parts: dict[str, list[torch.Tensor]] = {key(n, rule, r): [] for n in layers for r in reductions}
    t0 = time.perf_counter()
    for i in np.asarray(indices):
        x, y = pool.batch(torch.tensor([int(i)]), dtype=dtype)
        x, y = x.to(device), y.to(device)
        if rule == "sgd":
            o = torch.optim.SGD(stepped, lr=opt.lr, weight_decay=opt.weight_decay)
        else:
            o = torch.optim.Adam(stepped, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay)
        if rule == "adam-state":
            for n, w in zip(layers, weights):
                o.state[w] = {"step": torch.tensor(float(state[n]["step"])),
                              "exp_avg": torch.as_tensor(state[n]["exp_avg"]).to(w).clone(),
                              "exp_avg_sq": torch.as_tensor(state[n]["exp_avg_sq"]).to(w).clone()}
        saved = copy.deepcopy(model.state_dict()) if literal else None
        before = [w.detach().clone() for w in weights]
        model.zero_grad(set_to_none=True)
        F.cross_entropy(_logits(model, model, x, y).float(), y).backward()
        if rule == "grad":
            G = [w.grad.detach().clone() for w in weights]
        else:
            o.step()
            G = [b - w.detach() for b, w in zip(before, weights)]
            if literal:
                model.load_state_dict(saved)
            else:
                with torch.no_grad():
                    for b, w in zip(before, weights):
                        w.copy_(b)
        for n, g in zip(layers, G):
            for r in reductions:
                parts[key(n, rule, r)].append(reduce_filters(g, r).float().cpu())
    model.zero_grad(set_to_none=True)
    return Modifiers({k: torch.stack(v) for k, v in parts.items()}, np.asarray(indices), list(layers), (rule,),
                     tuple(reductions), time.perf_counter() - t0)


def adam_state_of(extra: dict, layers: list[str]) -> dict[str, dict]:
    """{layer: {exp_avg, exp_avg_sq, step}} from a checkpoint's `extra` ('<param>.<key>' tensors)."""
    out = {}
    for n in layers:
        ks = {k: f"{n}.weight.optim.{k}" for k in STATE_KEYS}
        missing = [v for v in ks.values() if v not in extra]
        if missing:
            raise KeyError(f"no saved Adam state for {n}.weight (missing {missing}); the audited model must be "
                           "trained with optimizer='adam' and optimizer_state_of=<its gMINT layers>")
        out[n] = {k: extra[v] for k, v in ks.items()}
    return out
