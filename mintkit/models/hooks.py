"""The one forward-hook primitive: the outputs of named modules, handed to a callback on every forward pass.

Every activation tap of mintkit goes through `forward_hooks`: extraction (`mintkit.models.extract.tapped`, reduced
and detached as captured), aMINT's M+ (`mintkit.methods.mplus`, maps kept *with* their gradients) and the audit of
a user's model (`mintkit.audit.taps`, any named module). What a consumer keeps (each call, the first, the last) is
its callback's choice; a callback may raise to end the forward early (M+ does, once both maps are in). TorchScript
modules refuse Python hooks and keep their own graph path (`mintkit.audit.taps.ScriptTapper`). docs/models.md, "Taps".
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Hashable, Iterator, Mapping

import torch
from torch import nn


def first_tensor(out) -> torch.Tensor | None:
    """A module's output as one tensor: itself, the first tensor of a tuple/list (an RNN's, a timm block's), or None."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return next((o for o in out if isinstance(o, torch.Tensor)), None)
    return None


@contextmanager
def forward_hooks(modules: Mapping[Hashable, nn.Module], on_output: Callable[..., None],
                  with_input: bool = False) -> Iterator[None]:
    """Within the block, every forward of ``modules[key]`` calls ``on_output(key, first_tensor(output))``, or
    ``on_output(key, output, input)`` with ``with_input`` (the module's first input tensor: what gMINT's hooks
    engine needs to form a per-sample weight gradient, `mintkit.methods.modifiers`).

    The output [B, ...] is handed over as the module produced it (on its device, in the autograd graph); hooks
    are registered in the mapping's order and removed on leaving the block, an exception included.
    """
    def hook(k):
        if with_input:
            return lambda _m, inp, out: on_output(k, first_tensor(out), first_tensor(inp))
        return lambda _m, _inp, out: on_output(k, first_tensor(out))
    handles = [m.register_forward_hook(hook(k)) for k, m in modules.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
