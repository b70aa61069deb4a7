"""gMINT protocol variants: readings of how the per-sample steps of Eq. 6 are taken, beside the definition.

The paper computes "the Weight Modifiers of each sample" from "one optimiser step" on it (docs/gmint.md,
"Protocol variants") and does not say whether the optimiser and the weights go back to the audited model's
between samples, in which order the samples go, or in which mode BatchNorm runs. Each choice is a field of
:class:`Protocol`:

=================  ==========================================================================================
``optim_state``    ``restored`` (definition): every sample's step starts from the same optimiser state (fresh,
                   or the audited model's end-of-training state for rule ``adam-state``). ``carried``: one
                   optimiser for the whole sequence, its state (Adam's moments and step count) kept from sample
                   to sample. Plain SGD and the raw gradient have no state, so for them it changes nothing.
``weights``        ``restored`` (definition): every step starts from the audited weights (and BatchNorm
                   statistics). ``carried``: each step is applied and kept, every parameter steps: online
                   training over the sequence; rule ``grad`` then follows the SGD step (G = g at the current
                   weights, the weights move by lr·g).
``order``          the sequence of the samples when anything is carried: ``members_first`` (all of D, then all
                   of E) or ``shuffled`` (D and E interleaved in one seeded permutation). Irrelevant, and left
                   out of the label, when both are restored.
``bn_mode``        ``eval`` (definition): BatchNorm uses its running statistics. ``train``: the single step
                   normalises with the one sample's own statistics (and updates the running ones, restored with
                   the weights). Dropout stays off.
=================  ==========================================================================================

The definition runs the batched path of :mod:`mintkit.methods.modifiers` unchanged
(:func:`protocol_modifiers` dispatches to it). Every other variant runs :func:`sequential_modifiers`, a
literal loop (forward, backward, ``optimizer.step()``, G = W_before - W_after) that cannot be batched: a
carried sample's step depends on every sample before it. Both give the same :class:`Modifiers` object, rows
in the order the samples were processed (``Modifiers.get`` looks rows up by pool index).
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mintkit.core.data import Pool
from mintkit.methods.modifiers import (Modifiers, Optimiser, _check, _logits, check_layer, key, reduce_filters,
                                       weight_modifiers)

OPTIM_STATES: tuple[str, ...] = ("restored", "carried")
WEIGHTS: tuple[str, ...] = ("restored", "carried")
ORDERS: tuple[str, ...] = ("members_first", "shuffled")
BN_MODES: tuple[str, ...] = ("eval", "train")
DEFINITION = "definition"  # the label of the defaults: gMINT as defined


@dataclass(frozen=True)
class Protocol:
    """How the per-sample steps are taken; the defaults are the definition (module docstring)."""

    optim_state: str = "restored"
    weights: str = "restored"
    order: str = "members_first"
    bn_mode: str = "eval"

    def __post_init__(self) -> None:
        for name, valid in (("optim_state", OPTIM_STATES), ("weights", WEIGHTS), ("order", ORDERS),
                            ("bn_mode", BN_MODES)):
            if getattr(self, name) not in valid:
                raise ValueError(f"{name}={getattr(self, name)!r}; valid: {', '.join(valid)}")

    @property
    def carries(self) -> bool:
        """Does a sample's modifier depend on the samples processed before it?"""
        return self.optim_state == "carried" or self.weights == "carried"

    @property
    def is_definition(self) -> bool:
        return not self.carries and self.bn_mode == "eval"

    @property
    def label(self) -> str:
        """'definition', else the fields that differ from it and matter: 'optim_state=carried,order=members_first'
        (the order is named whenever something is carried, and only then)."""
        if self.is_definition:
            return DEFINITION
        parts = [f"optim_state={self.optim_state}"] if self.optim_state != "restored" else []
        parts += [f"weights={self.weights}"] if self.weights != "restored" else []
        parts += [f"order={self.order}"] if self.carries else []
        parts += [f"bn_mode={self.bn_mode}"] if self.bn_mode != "eval" else []
        return ",".join(parts)


def processing_order(members: np.ndarray, nonmembers: np.ndarray, order: str, seed: int) -> np.ndarray:
    """Pool indices in the sequence the samples are stepped on: D then E (members_first), or one seeded
    permutation of D ∪ E (shuffled). [|D| + |E|]"""
    idx = np.concatenate([np.asarray(members), np.asarray(nonmembers)]).astype(np.int64)
    if order == "members_first":
        return idx
    if order == "shuffled":
        return np.random.default_rng([seed, 19]).permutation(idx)
    raise ValueError(f"order={order!r}; valid: {', '.join(ORDERS)}")


def batchnorms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _optimiser(params: list[torch.Tensor], rule: str, opt: Optimiser) -> torch.optim.Optimizer:
    if rule in ("sgd", "grad"):  # grad: the weights (when carried) follow the SGD step of which G is the gradient
        return torch.optim.SGD(params, lr=opt.lr, weight_decay=opt.weight_decay)
    return torch.optim.Adam(params, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay)


def _start_state(o: torch.optim.Optimizer, weights: list[torch.Tensor], layers: list[str], rule: str,
                 state: dict | None) -> torch.optim.Optimizer:
    """Rule 'adam-state': the chosen layers continue the audited model's Adam state (copies of it)."""
    if rule == "adam-state":
        for n, w in zip(layers, weights):
            o.state[w] = {"step": torch.tensor(float(state[n]["step"])),
                          "exp_avg": torch.as_tensor(state[n]["exp_avg"]).to(w).clone(),
                          "exp_avg_sq": torch.as_tensor(state[n]["exp_avg_sq"]).to(w).clone()}
    return o


def _rule_pass(model: nn.Module, pool: Pool, order: np.ndarray, layers: list[str], device: torch.device,
               rule: str, reductions: tuple[str, ...], opt: Optimiser, state: dict | None, protocol: Protocol,
               progress: bool) -> dict[str, torch.Tensor]:
    """One rule over the sequence `order`, on a copy of `model`: {key(layer, rule, reduction): [N, F_out]}."""
    model = copy.deepcopy(model).to(device).eval()  # carried weights must never touch the audited model
    if protocol.bn_mode == "train":
        for m in batchnorms(model):
            m.train()
    weights = [check_layer(model.get_submodule(n), n).weight for n in layers]
    # with the weights restored, a step of the other parameters never reaches the chosen layers' G (the optimisers
    # are per parameter), so only the chosen weights step; online training (carried weights) steps every parameter
    stepped = list(model.parameters()) if protocol.weights == "carried" else weights
    saved = copy.deepcopy(model.state_dict())  # weights and BatchNorm statistics, restored per sample
    o = _start_state(_optimiser(stepped, rule, opt), weights, layers, rule, state)
    dtype = weights[0].dtype
    parts: dict[str, list[torch.Tensor]] = {key(n, rule, r): [] for n in layers for r in reductions}
    for i in tqdm(order, desc=f"weight modifiers ({rule}, {protocol.label})", disable=not progress, leave=False):
        if protocol.optim_state == "restored":
            o = _start_state(_optimiser(stepped, rule, opt), weights, layers, rule, state)
        x, y = pool.batch(torch.tensor([int(i)]), dtype=dtype)
        x, y = x.to(device), y.to(device)
        before = [w.detach().clone() for w in weights]
        o.zero_grad(set_to_none=True)
        F.cross_entropy(_logits(model, model, x, y).float(), y).backward()
        if rule == "grad":
            G = [w.grad.detach().clone() for w in weights]
            if protocol.weights == "carried":
                o.step()
        else:
            o.step()
            G = [b - w.detach() for b, w in zip(before, weights)]
        if protocol.weights == "restored":
            model.load_state_dict(saved)
        for n, g in zip(layers, G):
            for r in reductions:
                parts[key(n, rule, r)].append(reduce_filters(g, r).float().cpu())
    return {k: torch.stack(v) for k, v in parts.items()}


def sequential_modifiers(model: nn.Module, pool: Pool, order: np.ndarray, layers: list[str], device: torch.device,
                         protocol: Protocol, rules: tuple[str, ...] = ("adam",),
                         reductions: tuple[str, ...] = ("mean",), opt: Optimiser | None = None,
                         state: dict[str, dict] | None = None,
                         progress: bool = False) -> Modifiers:
    """Weight Modifiers of pool[order] under `protocol`, one sample at a time in the sequence `order`.

    Every rule runs its own pass (a carried state or carried weights follow that rule's steps), each on a
    copy of `model`, which is left as it was. Rows follow `order`. Shapes as :func:`weight_modifiers`.
    """
    opt = opt or Optimiser()
    rules, reductions = tuple(rules), tuple(reductions)
    _check(rules, reductions, layers, state)
    if protocol.bn_mode == "train" and not batchnorms(model):
        raise ValueError("bn_mode='train' but the audited model has no BatchNorm layer: the variant would be the "
                         "definition under another name; use bn_mode='eval'")
    order = np.asarray(order, dtype=np.int64)
    t0 = time.perf_counter()
    feats: dict[str, torch.Tensor] = {}
    for r in rules:
        feats |= _rule_pass(model, pool, order, layers, device, r, reductions, opt, state, protocol, progress)
    return Modifiers(feats, order, list(layers), rules, reductions, time.perf_counter() - t0,
                     {"filters": {n: int(model.get_submodule(n).weight.shape[0]) for n in layers},
                      "optimiser": opt.__dict__, "protocol": asdict(protocol), "variant": protocol.label})


def protocol_modifiers(model: nn.Module, pool: Pool, members: np.ndarray, nonmembers: np.ndarray,
                       layers: list[str], device: torch.device, protocol: Protocol, seed: int = 0,
                       rules: tuple[str, ...] = ("adam",), reductions: tuple[str, ...] = ("mean",),
                       opt: Optimiser | None = None, state: dict[str, dict] | None = None, chunk_size: int | None = None,
                       progress: bool = False) -> Modifiers:
    """Modifiers of D ∪ E (`members` then `nonmembers`) under `protocol`: the definition goes through the batched
    :func:`weight_modifiers` exactly as before; any other variant through :func:`sequential_modifiers` in the
    sequence :func:`processing_order` gives. ``meta['variant']`` names the variant."""
    if protocol.is_definition:
        idx = np.concatenate([np.asarray(members), np.asarray(nonmembers)])
        mods = weight_modifiers(model, pool, idx, layers, device, rules=rules, reductions=reductions, opt=opt,
                                state=state, chunk_size=chunk_size, progress=progress)
        mods.meta["variant"] = DEFINITION
        return mods
    order = processing_order(members, nonmembers, protocol.order, seed)
    return sequential_modifiers(model, pool, order, layers, device, protocol, rules, reductions, opt, state, progress)
