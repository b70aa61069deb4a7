"""The audited-model zoo: ``build_model`` by name, configs that rebuild a model, named taps.

Architectures (``ARCHS``): ``smallcnn`` (fast CPU default, not in the papers), ``mobilenet``
(v1), ``resnet50``, ``resnet101`` ("ResNet100" in the aMINT/gMINT tables), ``densenet121``,
``xception``, ``vit`` (patch 4, dim 64, depth 12, 8 heads) and the face backbones
``iresnet18/50/100`` (InsightFace layout, with a margin head from ``HEADS``). Each builder's
docstring says where it differs from the paper (see ``mintkit.models.convnets``, ``mintkit.models.iresnet``).

Every model has ``model.arch`` and ``model.config`` (the build keywords, JSON-able) so that
``build_model(**model_config(m))`` rebuilds it, and names its activation taps:

* ``stage1..stage4`` output of the last block of each of 4 stages (MINT / Factors AAD),
* ``outcome`` the model output ("" = the model itself; face models: the 512-d embedding),
* ``entry`` / ``middle`` / ``output`` one representative activation per aMINT setup (the
  second module of the ``AMINT_TAPS`` pair).

``AMINT_TAPS`` and ``GMINT_LAYERS`` below are *our choice*: the papers do not name the layers
(docs/models.md §Taps). aMINT: entry = last two layers of the first stage, middle = two
intermediate stages (the notebooks' taps where they exist), output = last two layers of the
last stage. gMINT: entry = a conv near the input, middle = a mid-depth conv, output = a late
conv (ViT: the MLP ``fc1`` of an early / middle / last transformer block).
"""
from __future__ import annotations

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from mintkit.models.convnets import MobileNetV1, SmallCNN, TVDenseNet121, TVResNet, Xception
from mintkit.models.iresnet import IRESNET_LAYERS, build_iresnet

ARCHS: tuple[str, ...] = ("smallcnn", "mobilenet", "resnet50", "resnet101", "densenet121", "xception",
                          "vit", "iresnet18", "iresnet50", "iresnet100")
HEADS: tuple[str, ...] = ("softmax", "arcface", "cosface", "adaface")
FACE_ARCHS = tuple(IRESNET_LAYERS)
TAP_NAMES: tuple[str, ...] = ("entry", "middle", "output", "stage1", "stage2", "stage3", "stage4", "outcome")
SETUPS = ("entry", "middle", "output")

# ----------------------------------------------------------------------- tap tables (our choice: docs/models.md §Taps)
# arch -> (stage1, stage2, stage3, stage4, outcome)
STAGE_TAPS: dict[str, tuple[str, str, str, str, str]] = {
    "smallcnn": ("stage1", "stage2", "stage3", "stage4", ""),
    "mobilenet": ("conv1", "conv2", "conv3", "conv4", ""),
    "resnet50": ("layer1", "layer2", "layer3", "layer4", ""),
    "resnet101": ("layer1", "layer2", "layer3", "layer4", ""),
    "densenet121": ("features.denseblock1", "features.denseblock2", "features.denseblock3",
                    "features.denseblock4", ""),
    # Xception has 3 flows; stages = first entry block, entry-flow out, middle-flow out, exit flow
    "xception": ("entry.0", "entry.2", "middle.7", "exit_conv", ""),
    "vit": ("blocks.2", "blocks.5", "blocks.8", "blocks.11", ""),
    **{a: ("backbone.layer1", "backbone.layer2", "backbone.layer3", "backbone.layer4", "backbone.features")
       for a in FACE_ARCHS},
}


def _face_amint(layers) -> dict[str, tuple[str, str]]:
    n1, n4 = layers[0], layers[3]
    return {"entry": (f"backbone.layer1.{n1 - 2}", f"backbone.layer1.{n1 - 1}"),
            "middle": ("backbone.layer2", "backbone.layer3"),
            "output": (f"backbone.layer4.{n4 - 2}", f"backbone.layer4.{n4 - 1}")}


# aMINT: two dotted module names per setup whose outputs feed the aMINT head. The papers do not
# name them (docs/models.md §Taps); middle follows the released notebooks where they exist (ResNet layer2+layer3,
# DenseNet transition2+3, MobileNet conv2+conv3, Xception middle flow; ViT block 7), DenseNet
# entry follows the Tiny/CASIA notebook (stem conv + transition1), Xception entry = two 728-ch
# maps of the last entry-flow block (paper E2: 16x16x728 twice at 64x64).
AMINT_TAPS: dict[str, dict[str, tuple[str, str]]] = {
    "smallcnn": {"entry": ("stage1.0", "stage1.1"), "middle": ("stage2", "stage3"),
                 "output": ("stage4.0", "stage4.1")},
    "mobilenet": {"entry": ("conv1.0", "conv1.1"), "middle": ("conv2", "conv3"),
                  "output": ("conv4.0", "conv4.1")},
    "resnet50": {"entry": ("layer1.1", "layer1.2"), "middle": ("layer2", "layer3"),
                 "output": ("layer4.1", "layer4.2")},
    "resnet101": {"entry": ("layer1.1", "layer1.2"), "middle": ("layer2", "layer3"),
                  "output": ("layer4.1", "layer4.2")},
    "densenet121": {"entry": ("features.conv0", "features.transition1"),
                    "middle": ("features.transition2", "features.transition3"),
                    "output": ("features.denseblock4.denselayer16", "features.norm5")},
    "xception": {"entry": ("entry.2.rep.0", "entry.2"), "middle": ("middle.3", "middle.7"),
                 "output": ("exit_conv.2", "exit_conv.5")},
    "vit": {"entry": ("blocks.1", "blocks.2"), "middle": ("blocks.5", "blocks.7"),
            "output": ("blocks.10", "blocks.11")},
    **{a: _face_amint(l) for a, l in IRESNET_LAYERS.items()},
}

# gMINT: ONE nn.Conv2d / nn.Linear per setup whose weight gets the per-sample Weight Modifier.
# The paper does not name them (docs/models.md §Taps); we take a conv near the input, one at mid depth and a late
# one with many output filters (ViT: the 256-wide MLP fc1 of blocks 0, 5, 11).
GMINT_LAYERS: dict[str, dict[str, str]] = {
    "smallcnn": {"entry": "stage1.0.conv", "middle": "stage3.0.conv", "output": "stage4.1.conv"},
    "mobilenet": {"entry": "stem.1.pw.conv", "middle": "conv3.2.pw.conv", "output": "conv4.1.pw.conv"},
    "resnet50": {"entry": "conv1", "middle": "layer3.2.conv2", "output": "layer4.2.conv3"},
    "resnet101": {"entry": "conv1", "middle": "layer3.11.conv2", "output": "layer4.2.conv3"},
    "densenet121": {"entry": "features.conv0", "middle": "features.transition2.conv",
                    "output": "features.denseblock4.denselayer16.conv1"},
    "xception": {"entry": "stem.3", "middle": "middle.3.rep.1.sep.pointwise",
                 "output": "exit_conv.3.pointwise"},
    "vit": {"entry": "blocks.0.mlp.fc1", "middle": "blocks.5.mlp.fc1", "output": "blocks.11.mlp.fc1"},
    **{a: {"entry": "backbone.conv1", "middle": f"backbone.layer3.{l[2] // 2}.conv2",
           "output": f"backbone.layer4.{l[3] - 1}.conv2"} for a, l in IRESNET_LAYERS.items()},
}

# name of the dropout module in front of the final classifier (Factors toggles its p)
DROPOUT_MODULES: dict[str, str] = {**{a: "dropout" for a in ARCHS}, "vit": "head_drop",
                                   **{a: "backbone.dropout" for a in FACE_ARCHS}}


# ------------------------------------------------------------------------------------- ViT
def build_vit(num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0) -> nn.Module:
    """timm VisionTransformer as in the aMINT ViT notebook: patch 4, embed 64, depth 12, 8 heads,
    MLP ratio 4, CLS token, learned positional embedding, no dropout inside; classifier = final
    LayerNorm + Linear on the CLS token, with ``head_drop`` (p=dropout) before it. Differs from
    the notebook in timm's initialisation (truncated normal pos-embed; notebook: zeros)."""
    if image_size % 4:
        raise ValueError(f"vit needs image_size divisible by the patch size 4, got {image_size}")
    return VisionTransformer(img_size=image_size, patch_size=4, in_chans=in_channels, num_classes=num_classes,
                             embed_dim=64, depth=12, num_heads=8, mlp_ratio=4.0, class_token=True,
                             global_pool="token", drop_rate=dropout, pos_drop_rate=0.0, proj_drop_rate=0.0,
                             attn_drop_rate=0.0, drop_path_rate=0.0)


_BUILDERS = {
    "smallcnn": SmallCNN, "mobilenet": MobileNetV1, "densenet121": TVDenseNet121, "xception": Xception,
    "resnet50": lambda *a, **k: TVResNet((3, 4, 6, 3), *a, **k),
    "resnet101": lambda *a, **k: TVResNet((3, 4, 23, 3), *a, **k),
    "vit": build_vit,
}


def build_model(arch: str, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0,
                head: str = "softmax", **kw) -> nn.Module:
    """Build an audited model by name. Classifier archs take ``head="softmax"`` only; face archs
    (iresnet*) return a ``FaceModel`` whose head is one of ``HEADS`` (extra ``kw`` such as s, m, h,
    t_alpha go to the head). The result carries ``.arch`` and ``.config``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; valid archs: {', '.join(ARCHS)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; valid heads: {', '.join(HEADS)}")
    num_classes, in_channels, image_size, dropout = int(num_classes), int(in_channels), int(image_size), float(dropout)
    if num_classes < 1 or in_channels < 1 or image_size < 4:
        raise ValueError(f"need num_classes >= 1, in_channels >= 1, image_size >= 4; got "
                         f"{num_classes}, {in_channels}, {image_size}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if arch in FACE_ARCHS:
        model = build_iresnet(arch, num_classes, in_channels, image_size, dropout, head, **kw)
    else:
        if head != "softmax":
            raise ValueError(f"margin heads ({', '.join(HEADS[1:])}) are for the face archs "
                             f"{', '.join(FACE_ARCHS)}; {arch!r} takes head='softmax'")
        if kw:
            raise ValueError(f"{arch!r} takes no extra options; got {sorted(kw)}")
        model = _BUILDERS[arch](num_classes, in_channels, image_size, dropout=dropout)
    model.arch = arch
    model.config = dict(arch=arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                        dropout=dropout, head=head, **kw)
    return model


def model_config(model: nn.Module) -> dict:
    """The plain JSON-able dict that rebuilds `model`: ``build_model(**model_config(model))``."""
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, dict) or "arch" not in cfg:
        raise ValueError("model was not built by mintkit.models.zoo.build_model (no .config with 'arch')")
    return dict(cfg)


def _arch_of(model: nn.Module) -> str:
    arch = getattr(model, "arch", None)
    if arch not in ARCHS:
        raise ValueError(f"model has no known .arch ({arch!r}); valid archs: {', '.join(ARCHS)}")
    return arch


def tap_modules(model: nn.Module) -> dict[str, str]:
    """Tap name -> dotted module name in ``model.named_modules()`` ("" = the model's own output)."""
    arch = _arch_of(model)
    s1, s2, s3, s4, outcome = STAGE_TAPS[arch]
    taps = {k: AMINT_TAPS[arch][k][1] for k in SETUPS}
    taps.update(stage1=s1, stage2=s2, stage3=s3, stage4=s4, outcome=outcome)
    return {k: taps[k] for k in TAP_NAMES}


def get_module(model: nn.Module, name: str) -> nn.Module:
    """Module by dotted name ("" = the model); unknown names raise ValueError."""
    try:
        return model.get_submodule(name) if name else model
    except AttributeError as e:
        raise ValueError(f"{getattr(model, 'arch', type(model).__name__)} has no module {name!r}") from e


def resolve_tap(model: nn.Module, tap: str) -> nn.Module:
    """The module whose forward output is tap `tap`; unknown taps raise listing the valid ones."""
    if tap not in TAP_NAMES:
        raise ValueError(f"unknown tap {tap!r}; valid taps: {', '.join(TAP_NAMES)}")
    return get_module(model, tap_modules(model)[tap])


def gmint_layer(model: nn.Module, setup: str) -> nn.Module:
    """The nn.Conv2d / nn.Linear of ``GMINT_LAYERS[arch][setup]``."""
    if setup not in SETUPS:
        raise ValueError(f"unknown setup {setup!r}; valid setups: {', '.join(SETUPS)}")
    return get_module(model, GMINT_LAYERS[_arch_of(model)][setup])
