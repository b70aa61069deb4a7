"""MINT models (the membership classifiers T); their training and scoring: `mintkit.methods.mint`.

- `VanillaMLP`: MINT paper's "Vanilla" model on per-channel-max features: Dense(128, ReLU, L1) →
  BatchNorm → Dropout(0.5) → Dense(1). Factors uses two dense layers and dropout 0.3; gMINT uses
  128-128-64 without BatchNorm. One class covers all three through `hidden`, `batchnorm`, `dropout`.
- `CNNMint`: MINT paper's CNN model on full maps: Conv(64, 5×5, ReLU) → MaxPool(2) → Dense(C, ReLU)
  → Dropout(0.5) → Dense(1). Pool size 2 is our choice (the paper does not say), and so is standardising
  each channel of the maps with MINT-training statistics (`standardize`, docs/mint.md, "MINT models"):
  on raw MobileNet maps the CNN stays at constant scores for most of its 30 epochs.
- `CNNCombination`: the CNN model on several layers at once, one conv branch per layer (the paper does
  not say how it combined maps of different resolutions; docs/mint.md, "CNN Combination").
Models output a logit; the membership score is its sigmoid.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class Standardize(nn.Module):
    """x -> (x - mean) / std with statistics fitted on MINT-training features only."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: torch.Tensor) -> "Standardize":
        self.mean.copy_(x.float().mean(0))
        self.std.copy_(x.float().std(0).clamp_min(1e-6))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


# gMINT's MINT model (the paper's FC 128-128-64-1, no BatchNorm, no dropout; docs/gmint.md): the gMINT notebook and
# the audit's gmint method both build VanillaMLP(d, **GMINT_MLP)
GMINT_MLP = {"hidden": (128, 128, 64), "batchnorm": False, "dropout": 0.0}


class VanillaMLP(nn.Module):
    """[N, D] features -> [N] membership logit."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (128,), batchnorm: bool = True,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.norm = Standardize(in_dim)
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        if batchnorm:
            layers.append(nn.BatchNorm1d(d))
        layers += [nn.Dropout(dropout), nn.Linear(d, 1)]
        self.net = nn.Sequential(*layers)

    def first_layer(self) -> nn.Linear:
        return self.net[0]

    def prepare(self, x: torch.Tensor) -> None:
        self.norm.fit(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x.float())).squeeze(1)


class ChannelStandardize(nn.Module):
    """[N, C, H, W] maps -> (x - mean_c) / std_c, statistics per channel over N, H, W of MINT-training maps."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, chunk: int = 1024) -> "ChannelStandardize":
        """Moments in float64 over chunks of x [N, C, H, W] (float16 maps are never copied whole to float32)."""
        total = torch.zeros(x.shape[1], dtype=torch.float64)
        square = torch.zeros_like(total)
        for s in range(0, len(x), chunk):
            part = x[s:s + chunk].double().cpu()
            total += part.sum((0, 2, 3))
            square += part.square().sum((0, 2, 3))
        n = x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / n
        var = (square / n - mean.square()).clamp_min(0) * n / max(n - 1, 1)
        self.mean.copy_(mean.view(1, -1, 1, 1).float())
        self.std.copy_(var.sqrt().clamp_min(1e-6).view(1, -1, 1, 1).float())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CNNMint(nn.Module):
    """[N, C, H, W] activation maps -> [N] membership logit (`standardize`: per channel, MINT-training stats)."""

    def __init__(self, in_channels: int, size: int, filters: int = 64, kernel: int = 5, pool: int = 2,
                 dense: int | None = None, dropout: float = 0.5, standardize: bool = True) -> None:
        super().__init__()
        self.norm = ChannelStandardize(in_channels) if standardize else nn.Identity()
        pad = kernel // 2  # 'same' padding keeps 1×1 and 2×2 maps valid
        self.conv = nn.Sequential(nn.Conv2d(in_channels, filters, kernel, padding=pad), nn.ReLU(),
                                  nn.MaxPool2d(pool, ceil_mode=True))
        side = math.ceil(size / pool)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(filters * side * side, dense or in_channels), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(dense or in_channels, 1))

    def first_layer(self) -> nn.Conv2d:
        return self.conv[0]

    def prepare(self, x: torch.Tensor) -> None:
        if isinstance(self.norm, ChannelStandardize):
            self.norm.fit(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(self.norm(x.float()))).squeeze(1)


class CNNCombination(nn.Module):
    """CNN MINT on several layers: one Conv(filters, k) -> ReLU -> MaxPool branch per layer, flattened and
    concatenated, then Dense(`dense`, default sum of C) -> ReLU -> Dropout -> Dense(1).

    Input: the layers' maps [N, C_i, H_i, W_i] packed into one flat vector [N, sum C_i*H_i*W_i] (so that the
    shared training loop indexes it like any tensor); `shapes` gives (C_i, H_i, W_i) in packing order.
    `standardize`: each layer's channels as `CNNMint`'s.
    """

    def __init__(self, shapes: list[tuple[int, int, int]], filters: int = 64, kernel: int = 5, pool: int = 2,
                 dense: int | None = None, dropout: float = 0.5, standardize: bool = True) -> None:
        super().__init__()
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.sizes = [c * h * w for c, h, w in self.shapes]
        self.norms = nn.ModuleList(ChannelStandardize(c) if standardize else nn.Identity() for c, _, _ in self.shapes)
        self.branches = nn.ModuleList(nn.Sequential(nn.Conv2d(c, filters, kernel, padding=kernel // 2), nn.ReLU(),
                                                    nn.MaxPool2d(pool, ceil_mode=True), nn.Flatten())
                                      for c, _, _ in self.shapes)
        flat = sum(filters * math.ceil(h / pool) * math.ceil(w / pool) for _, h, w in self.shapes)
        width = dense or sum(c for c, _, _ in self.shapes)
        self.head = nn.Sequential(nn.Linear(flat, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, 1))

    def first_layer(self) -> nn.Conv2d:
        return self.branches[0][0]

    def prepare(self, x: torch.Tensor) -> None:
        for norm, part, shape in zip(self.norms, torch.split(x, self.sizes, dim=1), self.shapes):
            if isinstance(norm, ChannelStandardize):
                norm.fit(part.reshape(len(part), *shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x.float(), self.sizes, dim=1)
        z = [b(n(p.reshape(len(p), *s))) for b, n, p, s in zip(self.branches, self.norms, parts, self.shapes)]
        return self.head(torch.cat(z, 1)).squeeze(1)
