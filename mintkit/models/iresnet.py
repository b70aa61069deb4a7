"""Face-recognition models: IResNet backbones (InsightFace layout) and margin heads.

The backbone reproduces the module names and tensor shapes of InsightFace ``arcface_torch``
``backbones/iresnet.py`` so that a published r18/r50/r100 backbone ``.pth`` loads with
``load_state_dict(strict=True)``:

    conv1, bn1, prelu                                   stem (3x3, stride 1, 64 ch)
    layer1..layer4  of IBasicBlock(bn1, conv1, bn2, prelu, conv2, bn3, downsample.0/.1)
    bn2, dropout, fc (512*h*w -> 512), features (BatchNorm1d(512), gamma frozen at 1)

At 112x112 the four stride-2 stages give 7x7 maps and ``fc`` takes 512*7*7 inputs, as in
InsightFace. Other input sizes: a stage downsamples only while its input map is larger than
4x4, and the ``fc`` input is computed from ``image_size`` (differs from InsightFace, which
only supports 112). ``fp16`` autocast of the original is not reproduced (use torch autocast).

Margin heads (class matrix W [num_classes, 512]; logits s*cos(theta) with normalised
embeddings and rows of W): ArcFace (cos(theta+m)), CosFace (cos(theta)-m), AdaFace
(feature-norm adaptive margin, Kim et al. CVPR 2022), and a plain linear ``softmax`` head.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mintkit.models.convnets import downsample_plan

IRESNET_LAYERS = {"iresnet18": (2, 2, 2, 2), "iresnet50": (3, 4, 14, 3), "iresnet100": (3, 13, 30, 3)}
EMBEDDING_SIZE = 512


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style IResNet block: BN-conv-BN-PReLU-conv(stride)-BN, + shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """IResNet backbone returning the 512-d embedding (see module docstring for the layout)."""

    def __init__(self, layers, in_channels: int = 3, image_size: int = 112, dropout: float = 0.0,
                 num_features: int = EMBEDDING_SIZE):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        strides, final = downsample_plan(image_size, 4)
        self.layer1 = self._make_layer(64, layers[0], strides[0])
        self.layer2 = self._make_layer(128, layers[1], strides[1])
        self.layer3 = self._make_layer(256, layers[2], strides[2])
        self.layer4 = self._make_layer(512, layers[3], strides[3])
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)  # InsightFace uses inplace=True; not vmap-safe
        self.fc = nn.Linear(512 * final * final, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False  # as InsightFace: BN1d gamma frozen at 1
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # InsightFace: normal(0, 0.1), which overflows in eval mode
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes, eps=1e-5))
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))


# ----------------------------------------------------------------------------- margin heads
class _CosineHead(nn.Module):
    """Shared part: W [num_classes, in_features]; cos = normalize(emb) @ normalize(W).T."""

    needs_labels = True

    def __init__(self, in_features: int, num_classes: int, s: float):
        super().__init__()
        self.s = float(s)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, emb):
        return F.linear(F.normalize(emb, dim=1), F.normalize(self.weight, dim=1)).clamp(-1.0, 1.0)

    def margin(self, cos, labels, emb):  # returns margin-adjusted cosines
        raise NotImplementedError

    def forward(self, emb, labels=None):
        cos = self.cosine(emb)
        if labels is None:
            return self.s * cos
        return self.s * self.margin(cos, labels, emb)


class ArcFaceHead(_CosineHead):
    """ArcFace: target logit s*cos(theta + m). Where theta + m > pi (cos(theta) < cos(pi - m)) the
    InsightFace fallback cos(theta) - m*sin(m) keeps the logit monotone in theta."""

    def __init__(self, in_features: int, num_classes: int, s: float = 64.0, m: float = 0.5):
        super().__init__(in_features, num_classes, s)
        self.m = float(m)

    def margin(self, cos, labels, emb):
        sin = torch.sqrt((1.0 - cos * cos).clamp_min(0.0))
        phi = cos * math.cos(self.m) - sin * math.sin(self.m)
        phi = torch.where(cos > math.cos(math.pi - self.m), phi, cos - math.sin(math.pi - self.m) * self.m)
        onehot = F.one_hot(labels.long(), cos.shape[1]).to(cos.dtype)
        return onehot * phi + (1.0 - onehot) * cos


class CosFaceHead(_CosineHead):
    """CosFace: target logit s*(cos(theta) - m)."""

    def __init__(self, in_features: int, num_classes: int, s: float = 64.0, m: float = 0.35):
        super().__init__(in_features, num_classes, s)
        self.m = float(m)

    def margin(self, cos, labels, emb):
        return cos - self.m * F.one_hot(labels.long(), cos.shape[1]).to(cos.dtype)


class AdaFaceHead(_CosineHead):
    """AdaFace (Kim et al., CVPR 2022). With ||z|| the embedding norm (clipped to [1e-3, 100],
    no gradient) and running batch statistics mu, sigma (EMA with t_alpha, updated in train mode):
        g = clip(h * (||z|| - mu) / (sigma + 1e-3), -1, 1)
        target: theta' = clip(theta - m*g, eps, pi - eps);  logit = s*(cos(theta') - (m + m*g))
    Non-target logits are s*cos(theta). Running stats start at mu=20, sigma=100 as in AdaFace."""

    def __init__(self, in_features: int, num_classes: int, s: float = 64.0, m: float = 0.4,
                 h: float = 0.333, t_alpha: float = 0.01):
        super().__init__(in_features, num_classes, s)
        self.m, self.h, self.t_alpha, self.eps = float(m), float(h), float(t_alpha), 1e-3
        self.register_buffer("batch_mean", torch.ones(1) * 20.0)
        self.register_buffer("batch_std", torch.ones(1) * 100.0)

    def margin(self, cos, labels, emb):
        with torch.no_grad():
            norms = emb.norm(dim=1, keepdim=True).clamp(0.001, 100.0)
            if self.training and norms.shape[0] > 1:
                self.batch_mean.mul_(1 - self.t_alpha).add_(self.t_alpha * norms.mean())
                self.batch_std.mul_(1 - self.t_alpha).add_(self.t_alpha * norms.std())
            g = ((norms - self.batch_mean) / (self.batch_std + self.eps) * self.h).clamp(-1.0, 1.0)
        onehot = F.one_hot(labels.long(), cos.shape[1]).to(cos.dtype)
        theta = torch.acos(cos.clamp(-1 + self.eps, 1 - self.eps))
        theta = (theta + onehot * (-self.m * g)).clamp(self.eps, math.pi - self.eps)
        return torch.cos(theta) - onehot * (self.m + self.m * g)


class SoftmaxHead(nn.Linear):
    """Plain linear classifier on the embedding (labels ignored)."""

    needs_labels = False

    def forward(self, emb, labels=None):
        return super().forward(emb)


HEAD_CLASSES = {"softmax": SoftmaxHead, "arcface": ArcFaceHead, "cosface": CosFaceHead, "adaface": AdaFaceHead}


def build_head(head: str, in_features: int, num_classes: int, **kw) -> nn.Module:
    if head not in HEAD_CLASSES:
        raise ValueError(f"unknown head {head!r}; valid heads: {', '.join(HEAD_CLASSES)}")
    return HEAD_CLASSES[head](in_features, num_classes, **kw)


class FaceModel(nn.Module):
    """IResNet backbone + classification head. ``forward(x, labels)`` gives logits; the margin is
    applied only when labels are given and the model is in training mode. ``embed(x)`` gives the
    512-d embedding (the MINT "model outcome")."""

    def __init__(self, backbone: IResNet, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.needs_labels = bool(getattr(head, "needs_labels", False))

    def embed(self, x):
        return self.backbone(x)

    def forward(self, x, labels=None):
        emb = self.backbone(x)
        return self.head(emb, labels if (labels is not None and self.training) else None)


def is_face_model(model: nn.Module) -> bool:
    """An IResNet + head: its ``outcome`` tap is the embedding, and its head may be one MINT never trained."""
    return isinstance(model, FaceModel)


def build_iresnet(arch: str, num_classes: int, in_channels: int = 3, image_size: int = 112,
                  dropout: float = 0.0, head: str = "softmax", **head_kw) -> FaceModel:
    if arch not in IRESNET_LAYERS:
        raise ValueError(f"unknown face arch {arch!r}; valid: {', '.join(IRESNET_LAYERS)}")
    backbone = IResNet(IRESNET_LAYERS[arch], in_channels, image_size, dropout)
    return FaceModel(backbone, build_head(head, EMBEDDING_SIZE, num_classes, **head_kw))
