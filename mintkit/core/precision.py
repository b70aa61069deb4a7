"""The precision policy: which dtype and memory layout the audited models train and extract in.

One policy per process, set by the notebooks' ``setup`` from the ``precision`` parameter (like the thread count).
Every training loop and extraction pass enters :func:`autocast` with the ``precision=`` it was given; ``None``
stands for that process-wide policy. A caller with a precision of its own (the audit) passes it, and sets it for
itself with :func:`using`, so it never inherits a notebook's policy from the same kernel.

| ``precision`` | CUDA                     | CPU with native bf16 (AVX512_BF16 / AMX) | CPU without            |
|---------------|--------------------------|------------------------------------------|------------------------|
| ``auto``      | bf16 autocast            | fp32 (bf16 not yet shown as reliable)    | fp32 (never emulated)  |
| ``bf16``      | bf16 autocast            | bf16 autocast + channels-last            | error                  |
| ``fp32``      | fp32                     | fp32, contiguous: bitwise the old path   | fp32                   |

Why ``auto`` is fp32 on every CPU: on a Xeon with AMX, bf16 + channels-last diverged late in training in 1 seed
of 4 of a MINT run (audited train accuracy 0.39 where fp32 reaches 1.00) and moved aMINT's active accuracy from
0.85 to 0.71 (docs/precision.md). Until a numerics table over ≥ 10 seeds shows bf16 as reliable as fp32 on a CPU
kind, bf16 on a CPU is an explicit choice (``precision='bf16'``), and the fit guard (mintkit.core.fit) stops a
run whose audited model did not train, whatever the precision.

Channels-last applies to convolutional models only (a model with an ``nn.Conv2d``) and only under bf16 on
CPU, where oneDNN's bf16 convolutions want it; CUDA keeps the layout it had. Paths whose numbers bf16 would
change beyond seed noise stay fp32 whatever the policy (docs/precision.md): per-sample losses and logits of the
attacks, the gMINT weight modifiers' gradient pass, the MINT heads' fits.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch
from torch import nn

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")

_policy = "auto"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512_BF16 or AMX-BF16); without, bf16 would be emulated."""
    return any(f in cpu_flags() for f in NATIVE_BF16_FLAGS)


def resolve(precision: str, device: torch.device | str) -> str:
    """'fp32' or 'bf16' for `precision` on `device` (the table above); unknown names list the valid ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    dev = torch.device(device)
    if precision == "fp32":
        return "fp32"
    if dev.type == "cuda":
        return "bf16"
    if precision == "auto":  # CPU: fp32 until bf16 is shown as reliable (the table above)
        return "fp32"
    if not (dev.type == "cpu" and cpu_has_native_bf16()):
        raise ValueError(f"precision='bf16' on {dev}: this CPU has no native bf16 ({' / '.join(NATIVE_BF16_FLAGS)} "
                         "not in its flags) and mintkit never emulates it; use 'auto' or 'fp32'")
    return "bf16"


def set_policy(precision: str) -> None:
    """The process-wide precision (``auto``, ``fp32`` or ``bf16``) read where no ``precision=`` is passed."""
    global _policy
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    _policy = precision


def policy() -> str:
    return _policy


@contextlib.contextmanager
def using(precision: str):
    """The policy is `precision` within the block and the caller's again after it (also on an error): the audit's
    own ``precision`` in a kernel where a paper notebook set another (docs/precision.md)."""
    before = _policy
    set_policy(precision)
    try:
        yield
    finally:
        set_policy(before)


def effective(device: torch.device | str, precision: str | None = None) -> str:
    """The resolved precision of one pass: `precision` if given, else the policy."""
    return resolve(precision or _policy, device)


def autocast(device: torch.device | str, precision: str | None = None, enabled: bool = True):
    """bf16 autocast where the precision resolves to bf16 on `device`, else a no-op context."""
    dev = torch.device(device)
    if not enabled or effective(dev, precision) != "bf16" or dev.type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=torch.bfloat16)


def is_convolutional(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def wants_channels_last(model: nn.Module, device: torch.device | str, precision: str | None = None) -> bool:
    """Channels-last for a convolutional model under bf16 on CPU (oneDNN's fast layout)."""
    dev = torch.device(device)
    return dev.type == "cpu" and effective(dev, precision) == "bf16" and is_convolutional(model)


def memory_format(model: nn.Module, device: torch.device | str,
                  precision: str | None = None) -> torch.memory_format:
    """The layout inputs and weights take for `model` on `device` (torch.channels_last or contiguous)."""
    return torch.channels_last if wants_channels_last(model, device, precision) else torch.contiguous_format


@contextlib.contextmanager
def in_layout(model: nn.Module, device: torch.device | str, precision: str | None = None):
    """Within the block `model` is on `device` in its precision's layout; yields that layout for the inputs.
    The weights are contiguous again afterwards, so code that reads them (checkpoints, the gMINT gradient pass)
    sees the layout it always had."""
    model.to(device)
    fmt = memory_format(model, device, precision)
    convert = fmt is torch.channels_last and not getattr(model, "_mintkit_channels_last", False)
    if convert:  # an inner block (an accuracy pass inside training) finds the layout set and leaves it
        model.to(memory_format=fmt)
        model._mintkit_channels_last = True
    try:
        yield fmt
    finally:
        if convert:
            model.to(memory_format=torch.contiguous_format)
            model._mintkit_channels_last = False


def layout(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """A 4-d batch [B, C, H, W] in layout `fmt` (other shapes unchanged)."""
    return x.contiguous(memory_format=fmt) if x.dim() == 4 and fmt is torch.channels_last else x
