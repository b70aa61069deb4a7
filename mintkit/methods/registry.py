"""The membership methods by name: what each reads, and the one function that gives its features.

The one home of the method names: the audit's ``methods`` parameter (``mintkit.audit.params.METHODS``) and its
dispatch, the papers that pick a method by name, and the method table of ``docs/audit.md`` ("Methods", the text
of :func:`markdown_table`; ``tests/test_registry.py`` holds the page to it). An unknown name is an error that
lists the valid ones (:func:`get`).

A method is one of two kinds:

* a **MINT method**: ``features(inputs)`` gives per-sample features [N, D] of ``pool[inputs.order]``, and the one
  MINT fit (``mintkit.methods.mint.run_mint``, a ``VanillaMLP(D, **head)`` standardised on its MINT-training
  samples) turns them into membership scores;
* a **score method** (``features`` is None: the loss attack), whose per-sample score the caller computes from the
  one forward pass it makes anyway (``mintkit.audit.pipeline`` runs it).

What a method needs (the columns of the table):

=============  ===============================================================================================
``layers``     ``taps``: module outputs it reads (activations); ``weights``: ``nn.Conv2d`` / ``nn.Linear``
               layers whose weight it differentiates; empty: none
``gradients``  per-sample gradients through the model: its Python module (a state dict), never a TorchScript
               or torch.export file
``labels``     each sample's true label
``default``    run by the audit when ``methods`` is empty (a method added later stays off by default, so earlier
               audits' Holm families, and so their numbers, do not change)
=============  ===============================================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from mintkit.core.data import Pool
from mintkit.methods.gradnorm import gradient_norms
from mintkit.methods.modifiers import Optimiser, weight_modifiers
from mintkit.models.classifiers import GMINT_MLP

LAYER_KINDS = ("", "taps", "weights")


@dataclass(frozen=True)
class Inputs:
    """What a method's features read; every row follows ``order`` (sorted pool indices, [N])."""

    model: nn.Module
    pool: Pool
    order: np.ndarray
    layers: list[str]                          # taps or weight layers, as the method's ``layers`` says
    device: torch.device
    activations: torch.Tensor | None = None    # [N, D] the taps' reduced features, from the caller's one pass
    rule: str = "grad"                         # gMINT's weight-modifier rule (mintkit.methods.modifiers.RULES)
    progress: bool = False


@dataclass(frozen=True)
class Method:
    """One membership method: its name, a one-line description, what it needs and how its features come."""

    name: str
    description: str
    layers: str
    gradients: bool
    labels: bool
    features: Callable[[Inputs], torch.Tensor] | None   # [N, D]; None: a score method
    label: str                                          # the result's label: {layers}, {rule} filled in
    head: dict = field(default_factory=dict)            # VanillaMLP keywords of its MINT head
    default: bool = True

    def __post_init__(self) -> None:
        if self.layers not in LAYER_KINDS:
            raise ValueError(f"method {self.name!r}: layers {self.layers!r}; valid: {LAYER_KINDS}")

    def describe(self, layers: list[str], rule: str = "grad") -> str:
        """The result's label, e.g. 'gMINT (grad, mean per filter) on layer4.1.conv2, fc'."""
        return self.label.format(layers=", ".join(layers), rule=rule)


def _activations(inputs: Inputs) -> torch.Tensor:
    """MINT: the taps' reduced activations the caller extracted, [N, Σ C]."""
    if inputs.activations is None:
        raise ValueError("mint reads activations: pass Inputs.activations (the taps' reduced features)")
    return inputs.activations


def _modifiers(inputs: Inputs) -> torch.Tensor:
    """gMINT: each layer's weight modifier under ``inputs.rule``, averaged per output filter, [N, Σ F_out]."""
    mods = weight_modifiers(inputs.model, inputs.pool, inputs.order, inputs.layers, inputs.device,
                            rules=(inputs.rule,), reductions=("mean",), opt=Optimiser(), progress=inputs.progress)
    return mods.get(inputs.layers, inputs.rule, "mean")


def _gradient_norms(inputs: Inputs) -> torch.Tensor:
    """Gradient-norm MINT: ‖∂CE/∂W‖₂ of each layer's weight, one number per layer, [N, L] (docs/gradnorm.md)."""
    return gradient_norms(inputs.model, inputs.pool, inputs.order, inputs.layers, inputs.device,
                          progress=inputs.progress)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("mint", "an MLP on the per-channel maxima of the taps' activations (MINT)", "taps", False, False,
           _activations, "MINT on {layers}"),
    Method("gmint", "an MLP on each layer's per-sample weight modifier, averaged per output filter (gMINT)",
           "weights", True, True, _modifiers, "gMINT ({rule}, mean per filter) on {layers}", head=GMINT_MLP),
    Method("loss", "the per-sample cross-entropy, thresholded (Yeom et al.)", "", False, True, None,
           "the loss attack"),
    Method("gradnorm", "an MLP on the norm of each layer's per-sample loss gradient, one number per layer "
           "(docs/gradnorm.md)", "weights", True, True, _gradient_norms, "gradient-norm MINT on {layers}",
           head=GMINT_MLP, default=False),
)}


def names() -> tuple[str, ...]:
    """Every registered method, in registry order."""
    return tuple(METHODS)


def get(name: str) -> Method:
    """The method called `name`; an unknown name is a ValueError that lists the valid ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name]


def defaults(differentiable: bool = True) -> list[str]:
    """The methods run when none is named: the default ones the model allows (no gradients through a file that
    cannot be differentiated per sample)."""
    return [m.name for m in METHODS.values() if m.default and (differentiable or not m.gradients)]


def markdown_table() -> str:
    """The method table of docs/audit.md ("Methods"), one row per registered method."""
    def yes(flag: bool) -> str:
        return "yes" if flag else "no"
    rows = ["| method | what it reads | layers | gradients | labels | default |", "|---|---|---|---|---|---|"]
    rows += [f"| `{m.name}` | {m.description} | {m.layers or '-'} | {yes(m.gradients)} | {yes(m.labels)} | "
             f"{yes(m.default)} |" for m in METHODS.values()]
    return "\n".join(rows)
