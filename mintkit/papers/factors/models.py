"""Audited models of the Factors runs: the zoo's, plus a margin-head SmallCNN for the CPU default.

The zoo has margin heads (ArcFace, CosFace, AdaFace) only on its IResNets; the loss factor on the
default `smallcnn` needs one too (docs/factors.md, "Loss factor on a small CNN").
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from mintkit.models.convnets import SmallCNN
from mintkit.models.iresnet import build_head
from mintkit.models.zoo import build_model
from mintkit.papers.factors.params import Params


class MarginSmallCNN(SmallCNN):
    """SmallCNN whose classifier is an embedding layer (Linear -> `embedding`) followed by a margin head of
    `mintkit.models.iresnet`. Same stage taps as SmallCNN; its outcome is the head's output s·cos(theta) per
    class [N, num_classes]. The margin applies only to labelled inputs in training mode (as `iresnet.FaceModel`)."""

    needs_labels = True

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0,
                 head: str = "arcface", embedding: int = 64, **head_kw) -> None:
        super().__init__(num_classes, in_channels, image_size, dropout)
        self.fc = nn.Linear(self.fc.in_features, embedding)
        self.margin = build_head(head, embedding, num_classes, **head_kw)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = super().forward(x)
        return self.margin(emb, labels if (labels is not None and self.training) else None)


def build_audited(arch: str, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0,
                  head: str = "softmax", embedding: int = 64, **head_kw) -> nn.Module:
    """`build_model`'s signature: the zoo's model, or `MarginSmallCNN` for a margin head on `smallcnn`."""
    if arch != "smallcnn" or head == "softmax":
        return build_model(arch, num_classes, in_channels, image_size, dropout=dropout, head=head, **head_kw)
    model = MarginSmallCNN(num_classes, in_channels, image_size, dropout, head=head, embedding=embedding, **head_kw)
    model.arch = "smallcnn"  # the taps of SmallCNN resolve unchanged
    model.config = dict(arch=arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                        dropout=dropout, head=head, embedding=embedding, **head_kw)
    return model


def builder(head: str, P: Params) -> tuple[Callable[..., nn.Module] | None, dict]:
    """(build_fn, model_kw) for `models.audited.train_audited`: nothing extra for softmax; the margin scale for a
    margin head, and on smallcnn the `build_audited` wrapper with its embedding width."""
    if head == "softmax":
        return None, {}
    kw = {"s": P.margin_scale}
    if P.arch == "smallcnn":
        return build_audited, kw | {"embedding": P.embedding_dim}
    return None, kw
