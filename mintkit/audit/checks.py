"""Everything checked before the audit trains or writes anything (``docs/audit.md``, "Bad input").

The model must take the images (channel count, image size), give one output per class folder, have
the taps and gMINT layers asked for; the split must leave enough held-out samples for a test.
Each failure is an `AuditInputError` naming what to change.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mintkit.audit.data import SOURCES, AuditInputError, AuditPool
from mintkit.audit.models import AuditedModel
from mintkit.audit.taps import TapInfo, default_taps, gmint_default_layers, list_taps

MIN_PER_SET = 10  # fewest samples per MINT-training or held-out set the audit accepts


def first_conv(module: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """(name, module) of the first nn.Conv2d in declaration order, or None."""
    return next(((n, m) for n, m in module.named_modules() if isinstance(m, nn.Conv2d)), None)


FIX_CHANNELS = "set --channels {want} (grayscale images are then converted to RGB, or RGB to grayscale)"
FIX_SIZE = "set --image-size to the side the model was trained on"


@torch.no_grad()
def probe_taps(model: AuditedModel, x: torch.Tensor) -> list[TapInfo]:
    """The tap list on a probe batch x [B, C, H, W], after checking the model takes such images.

    Raises AuditInputError for a channel-count or image-size mismatch or a forward pass that fails.
    """
    c, h, w = (int(v) for v in x.shape[1:])
    if model.input_shape is not None and model.input_shape != (c, h, w):
        wc, wh, ww = model.input_shape
        hints = ([FIX_CHANNELS.format(want=wc)] if wc != c else []) + ([FIX_SIZE] if (wh, ww) != (h, w) else [])
        raise AuditInputError(f"the exported model takes images of shape [{wc}, {wh}, {ww}]; the folders give "
                              f"[{c}, {h}, {w}]: {' and '.join(hints)}")
    conv = first_conv(model.module) if model.kind == "python" else None
    if conv is not None and conv[1].in_channels != c:
        raise AuditInputError(f"the model's first convolution {conv[0]!r} takes {conv[1].in_channels} channel(s); "
                              f"the images have {c}: {FIX_CHANNELS.format(want=conv[1].in_channels)}")
    try:
        return list_taps(model, x)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AuditInputError(f"the model cannot take images of shape [{c}, {h}, {w}] ({msg}); if it was trained "
                              f"on another size, {FIX_SIZE}; on another channel count, set --channels") from None


def check_model_takes_images(model: AuditedModel, pool: AuditPool) -> list[TapInfo]:
    """Probe the model with two images of the pool; returns the tap list (names and output shapes).

    Raises AuditInputError for a channel-count or image-size mismatch, a forward pass that fails, an
    output that is not [B, K] logits, or K different from the number of class folders.
    """
    x, _ = pool.batch(torch.arange(min(2, len(pool))))
    infos = probe_taps(model, x)
    out = infos[-1].shape
    if len(out) != 1:
        raise AuditInputError(f"the model's output has shape [B, {', '.join(map(str, out))}]; the audit needs class "
                              "scores [B, K] (one per class folder)")
    if out[0] != pool.num_classes:
        raise AuditInputError(f"class count mismatch: the model has {out[0]} outputs, the folders hold "
                              f"{pool.num_classes} classes ({', '.join(pool.classes[:12])}"
                              f"{' ...' if pool.num_classes > 12 else ''}); output k must be the k-th class folder "
                              "in sorted order (torchvision ImageFolder's convention)")
    return infos


def resolve_taps(asked: list[str], infos: list[TapInfo]) -> list[str]:
    """The MINT taps: `asked` (checked against the tap list) or the default choice."""
    if not asked:
        return default_taps(infos)
    known = {i.name for i in infos}
    bad = [t for t in asked if t not in known]
    if bad:
        raise AuditInputError(f"--taps {bad}: not modules the model runs; list them with --list-taps "
                              f"(e.g. {', '.join(n for n in list(known)[:6] if n)})")
    return list(dict.fromkeys(asked))


def resolve_gmint_layers(model: AuditedModel, asked: list[str], methods: list[str] | tuple[str, ...] = ("gmint",)
                         ) -> list[str]:
    """Weight layers (nn.Conv2d / nn.Linear names) of the gradient `methods`; only Python models can be
    differentiated per sample."""
    who = ", ".join(methods)
    if not model.differentiable:
        raise AuditInputError(f"{who} needs per-sample gradients, which torch.func cannot take through a "
                              f"{model.kind} model; load the state dict with --arch or --build, or drop {who} from "
                              "--method")
    layers = asked or gmint_default_layers(model)
    if not layers:
        raise AuditInputError(f"{who}: the model has no nn.Conv2d or nn.Linear layer; drop {who} from --method")
    for name in layers:
        try:
            m = model.module.get_submodule(name)
        except AttributeError:
            raise AuditInputError(f"--gmint-layer {name!r} is not a module of the model; list them with --list-taps") \
                from None
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            raise AuditInputError(f"--gmint-layer {name!r} is {type(m).__name__}; gMINT reads the weights of an "
                                  "nn.Conv2d or nn.Linear")
    return list(dict.fromkeys(layers))


def check_sizes(pool: AuditPool, n_eval: int, n_external: int, n_mint_members: int) -> None:
    """Enough images for a MINT model and a test: MIN_PER_SET per set."""
    have = {"held-out members and non-members (--n-eval)": n_eval, "MINT-training non-members (E)": n_external,
            "MINT-training members": n_mint_members}
    small = {k: v for k, v in have.items() if v < MIN_PER_SET}
    if small:
        counts = {s: len(pool.of(s)) for s in ("members", "nonmembers", "external") if len(pool.of(s))}
        raise AuditInputError(f"too few images for an audit: {small} (each needs >= {MIN_PER_SET}); the folders hold "
                              f"{counts}. Add images, pass --external, or lower --n-eval")


def check_control(model: AuditedModel, control: AuditedModel) -> None:
    """The control must be the same architecture: the same state-dict keys and shapes (Python models)."""
    if model.kind != control.kind:
        raise AuditInputError(f"--control is a {control.kind} model, the audited one {model.kind}: use the same kind")
    if model.kind == "python":
        a = {k: tuple(v.shape) for k, v in model.module.state_dict().items()}
        b = {k: tuple(v.shape) for k, v in control.module.state_dict().items()}
        if a != b:
            raise AuditInputError("--control does not have the audited model's architecture (state-dict keys or "
                                  "shapes differ)")


def assert_protocol(split, pool: AuditPool) -> None:
    """Assert the protocol on the split: E and the evaluated non-members come from the non-member trees,
    members only from the members tree; held-out sets disjoint from everything the MINT model saw."""
    src = pool.source
    mem, non, ext = (SOURCES.index(s) for s in ("members", "nonmembers", "external"))
    assert np.all(src[split["members"]] == mem), "members drawn outside the members tree"
    assert np.all(np.isin(src[split["external"]], (non, ext))), "MINT non-members (E) drawn from the members tree"
    assert np.all(src[split["eval_nonmembers"]] == non), "evaluated non-members drawn outside the nonmembers tree"
    seen = set(split["mint_train_members"].tolist()) | set(split["external"].tolist())
    held = set(split["eval_members"].tolist()) | set(split["eval_nonmembers"].tolist())
    assert not seen & held, f"{len(seen & held)} held-out samples trained the MINT model"

