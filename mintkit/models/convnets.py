"""Convolutional audited models: SmallCNN, MobileNet v1, ResNet50/101, DenseNet121, Xception.

All take ``(num_classes, in_channels, image_size, dropout)`` and return logits from
``forward(x)``. Size adaptation shared by all of them (``downsample_plan``): a stride-2 stage
downsamples only while its incoming map is larger than 4x4, so an 8x8 digit never collapses
below 4x4 and the deep stages stay cheap; at 64x64 and above every model keeps the layout the
aMINT/gMINT code uses (docs/models.md §Size adaptation). ``dropout`` is the probability of the ``dropout``
module in front of the final classifier (p=0 is a no-op). No ReLU runs in place, so
``torch.func.vmap(grad(...))`` works over these models in eval mode.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.densenet import DenseNet
from torchvision.models.resnet import Bottleneck, ResNet


def downsample_plan(size: int, n: int, min_size: int = 4) -> tuple[list[int], int]:
    """Strides for `n` stride-2 stages (2 while the map is larger than `min_size`, else 1)
    and the final map size (conv 3x3/s2/p1 semantics: ceil(size/2))."""
    strides = []
    for _ in range(n):
        if size > min_size:
            strides.append(2)
            size = (size + 1) // 2
        else:
            strides.append(1)
    return strides, size


def no_inplace(model: nn.Module) -> nn.Module:
    """Switch every nn.ReLU / nn.Dropout to out-of-place (torchvision builds them in place)."""
    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.Dropout)):
            m.inplace = False
    return model


def conv_bn_relu(cin: int, cout: int, stride: int = 1, k: int = 3, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        bn=nn.BatchNorm2d(cout), relu=nn.ReLU(inplace=False)))


class _Classifier(nn.Module):
    """Common tail: global average pool -> dropout -> fc."""

    def _head_init(self, width: int, num_classes: int, dropout: float):
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def head(self, x):
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


# ------------------------------------------------------------------------------------ SmallCNN
class SmallCNN(_Classifier):
    """Fast 4-stage CNN (not in the papers; the CPU default). Stage i = two conv3x3-BN-ReLU units
    of width 32/64/128/256; the first unit of a stage has stride 2 while the map is > 4x4."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0,
                 widths=(32, 64, 128, 256)):
        super().__init__()
        strides, _ = downsample_plan(image_size, 4)
        cin = in_channels
        for i, (w, s) in enumerate(zip(widths, strides), 1):
            self.add_module(f"stage{i}", nn.Sequential(conv_bn_relu(cin, w, s), conv_bn_relu(w, w)))
            cin = w
        self._head_init(cin, num_classes, dropout)

    def forward(self, x):
        return self.head(self.stage4(self.stage3(self.stage2(self.stage1(x)))))


# ------------------------------------------------------------------------------- MobileNet v1
class DWSeparable(nn.Module):
    """Depthwise 3x3 conv-BN-ReLU (stride here) then pointwise 1x1 conv-BN-ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.dw = conv_bn_relu(cin, cin, stride, groups=cin)
        self.pw = conv_bn_relu(cin, cout, k=1)

    def forward(self, x):
        return self.pw(self.dw(x))


class MobileNetV1(_Classifier):
    """MobileNet v1 in the aMINT-notebook layout: stem conv 32 + DW 64 (stride 1), then
    conv1 128(/2),128; conv2 256(/2),256; conv3 512(/2)+5x512; conv4 1024(/2),1024; avgpool, fc.
    Differs from Howard et al. (stride-2 stem) as the notebooks do; stage strides follow
    ``downsample_plan`` for inputs below 64x64."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0):
        super().__init__()
        s, _ = downsample_plan(image_size, 4)
        self.stem = nn.Sequential(conv_bn_relu(in_channels, 32), DWSeparable(32, 64))
        self.conv1 = nn.Sequential(DWSeparable(64, 128, s[0]), DWSeparable(128, 128))
        self.conv2 = nn.Sequential(DWSeparable(128, 256, s[1]), DWSeparable(256, 256))
        self.conv3 = nn.Sequential(DWSeparable(256, 512, s[2]), *[DWSeparable(512, 512) for _ in range(5)])
        self.conv4 = nn.Sequential(DWSeparable(512, 1024, s[3]), DWSeparable(1024, 1024))
        self._head_init(1024, num_classes, dropout)

    def forward(self, x):
        return self.head(self.conv4(self.conv3(self.conv2(self.conv1(self.stem(x))))))


# ------------------------------------------------------------------------------------ ResNet
class TVResNet(ResNet):
    """torchvision ResNet with Bottleneck blocks (ResNet50 [3,4,6,3], ResNet101 [3,4,23,3]).
    image_size >= 64: the paper/notebook stem, 7x7/s2 conv + 3x3/s2 maxpool, standard strides.
    Smaller inputs: 3x3/s1 stem, no maxpool, layer2..4 downsample only while the map is > 4x4
    (CIFAR-style; the notebooks used the 7x7/s2 stem even on MNIST). Differences from the
    notebooks: Bottleneck convs without bias (torchvision), dropout before ``fc``."""

    def __init__(self, layers, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0):
        super().__init__(Bottleneck, list(layers), num_classes=num_classes)
        if image_size >= 64:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            size, min_size = math.ceil(image_size / 4), 1
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
            size, min_size = image_size, 4
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        strides, _ = downsample_plan(size, 3, min_size)
        for layer, s in zip((self.layer2, self.layer3, self.layer4), strides):
            if s == 1:
                layer[0].conv2.stride = (1, 1)
                layer[0].downsample[0].stride = (1, 1)
        self.dropout = nn.Dropout(dropout)
        no_inplace(self)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


# ---------------------------------------------------------------------------------- DenseNet
class TVDenseNet121(DenseNet):
    """torchvision DenseNet-121 (BC, growth 32, blocks [6,12,24,16]) with the notebooks' stem:
    3x3/s1 conv to 64 channels, no stem pooling (torchvision: 7x7/s2 + maxpool). Transitions
    (BN-ReLU-1x1 conv x0.5-avgpool2) pool only while the map is > 4x4. Dropout before
    ``classifier``."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0):
        super().__init__(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                         num_classes=num_classes)
        self.features.conv0 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(self.features.conv0.weight)
        self.features.pool0 = nn.Identity()
        size = image_size
        for i in (1, 2, 3):
            if size > 4:
                size //= 2
            else:
                getattr(self.features, f"transition{i}").pool = nn.Identity()
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        no_inplace(self)

    def forward(self, x):
        x = self.pool(self.relu(self.features(x)))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


# ---------------------------------------------------------------------------------- Xception
class SeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """`reps` units of (ReLU, SeparableConv, BN) in ``rep``, 3x3/s2 maxpool when stride 2, plus a
    1x1-conv+BN shortcut (identity when shapes match)."""

    def __init__(self, cin: int, cout: int, reps: int, stride: int = 1, first_relu: bool = True,
                 grow_first: bool = True):
        super().__init__()
        chans = [cin] + [cout] * reps if grow_first else [cin] * reps + [cout]
        units = []
        for i in range(reps):
            relu = nn.ReLU(inplace=False) if (i > 0 or first_relu) else nn.Identity()
            units.append(nn.Sequential(OrderedDict(relu=relu, sep=SeparableConv(chans[i], chans[i + 1]),
                                                   bn=nn.BatchNorm2d(chans[i + 1]))))
        self.rep = nn.Sequential(*units)
        self.pool = nn.MaxPool2d(3, stride, 1) if stride != 1 else nn.Identity()
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if (stride != 1 or cin != cout) else nn.Identity())

    def forward(self, x):
        return self.pool(self.rep(x)) + self.skip(x)


class Xception(_Classifier):
    """Xception (Chollet 2017) in the notebook layout: stem 3x3/s1 conv 32 and 64 (paper: first
    conv stride 2); entry flow blocks 128(/2), 256(/2), 728 (no downsampling; paper /2);
    middle flow 8 x 728 (3 separable convs each); exit flow block 728->1024 (/2), separable
    convs 1536 and 2048, global average pool, fc. Strides follow ``downsample_plan``."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0):
        super().__init__()
        s, _ = downsample_plan(image_size, 3)  # entry.0, entry.1, exit
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32),
                                  nn.ReLU(inplace=False), nn.Conv2d(32, 64, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU(inplace=False))
        self.entry = nn.Sequential(XceptionBlock(64, 128, 2, s[0], first_relu=False),
                                   XceptionBlock(128, 256, 2, s[1]), XceptionBlock(256, 728, 2, 1))
        self.middle = nn.Sequential(*[XceptionBlock(728, 728, 3, 1) for _ in range(8)])
        self.exit = XceptionBlock(728, 1024, 2, s[2], grow_first=False)
        self.exit_conv = nn.Sequential(SeparableConv(1024, 1536), nn.BatchNorm2d(1536), nn.ReLU(inplace=False),
                                       SeparableConv(1536, 2048), nn.BatchNorm2d(2048), nn.ReLU(inplace=False))
        self._head_init(2048, num_classes, dropout)

    def forward(self, x):
        return self.head(self.exit_conv(self.exit(self.middle(self.entry(self.stem(x))))))
