"""Published InsightFace ``arcface_torch`` backbones (``.pth`` state dicts of ``IResNet``) loaded into a FaceModel.

Beside the zoo rather than inside `mintkit.models.iresnet`: a loaded file names its architecture, and a model of
that architecture comes from `mintkit.models.zoo.build_model`, which itself builds the IResNets (docs/models.md).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from mintkit.models.iresnet import IRESNET_LAYERS, FaceModel
from mintkit.models.zoo import build_model


def is_insightface_state(sd: dict) -> bool:
    """A bare InsightFace IResNet state dict: keys conv1/bn1/prelu/layer1..4/fc/features (a "module." prefix
    allowed), none under "backbone." (that is a mintkit FaceModel's)."""
    keys = {k[7:] if k.startswith("module.") else k for k in sd}
    return ("conv1.weight" in keys and "fc.weight" in keys and any(k.startswith("layer4.") for k in keys)
            and not any(k.startswith("backbone.") for k in keys))


def _arch_from_state_dict(sd: dict) -> str:
    counts = tuple(len({k.split(".")[1] for k in sd if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    for arch, layers in IRESNET_LAYERS.items():
        if tuple(layers) == counts:
            return arch
    raise ValueError(f"state dict has blocks per stage {counts}; not one of "
                     + ", ".join(f"{a}={tuple(v)}" for a, v in IRESNET_LAYERS.items()))


def load_insightface_backbone(path, model: FaceModel | None = None, *, num_classes: int = 2,
                              head: str = "softmax", image_size: int | None = None, **head_kw) -> FaceModel:
    """Load an InsightFace ``arcface_torch`` backbone ``.pth`` (a bare state dict of ``IResNet``)
    with ``torch.load(weights_only=True)`` into ``model.backbone`` (strict). Without `model`, the
    architecture (r18/r50/r100), input channels and image size are read off the state dict and a
    new ``FaceModel`` with a fresh `head` is built. A "module." prefix (DataParallel) is stripped;
    missing ``num_batches_tracked`` buffers are tolerated. Raises ValueError naming missing,
    unexpected and wrongly-shaped keys."""
    sd = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
    if model is None:
        arch = _arch_from_state_dict(sd)
        if image_size is None:
            fc_in = sd["fc.weight"].shape[1] // 512
            side = int(round(math.sqrt(fc_in)))
            image_size = 112 if side == 7 else side * 16
        model = build_model(arch, num_classes, int(sd["conv1.weight"].shape[1]), image_size,
                            head=head, **head_kw)
    own = model.backbone.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{path}: not an InsightFace IResNet backbone matching this model; "
                         f"missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}, "
                         f"unexpected keys {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}, "
                         f"shape mismatches {shapes[:8]}")
    for k in own:
        if k not in sd:  # num_batches_tracked only
            sd[k] = own[k]
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    model.backbone.load_state_dict(sd, strict=True)
    return model
