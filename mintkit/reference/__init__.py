"""The published numbers of the four papers (mintkit/reference/*.csv, see its README) and name mappings.

Reproduced rows carry the papers' labels for datasets and models when a run matches a published
setting (mnist -> "MNIST", resnet101 -> "ResNet100"), so the report is a join on the key columns.
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

PAPERS = ("mint", "amint", "gmint", "factors")

DATASET_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "gtsrb": "GTSRB",
                  "tinyimagenet": "Tiny ImageNet", "fashion-mnist": "Fashion-MNIST", "digits": "digits",
                  "mnist-test": "MNIST (test split)", "cifar10-jpeg": "CIFAR-10 (JPEG q75 stand-in)",
                  "synthetic": "synthetic"}
# stand-in dataset -> the dataset whose published cells its rows sit beside (docs/profiles.md, Stand-in data)
STANDIN_FOR = {"mnist-test": "mnist", "cifar10-jpeg": "cifar10"}
MODEL_LABELS = {"mobilenet": "MobileNet", "resnet50": "ResNet50", "resnet101": "ResNet100",
                "densenet121": "DenseNet121", "xception": "Xception", "vit": "ViT", "smallcnn": "SmallCNN",
                "iresnet18": "IResNet18", "iresnet50": "IResNet50", "iresnet100": "IResNet100"}


def label_dataset(name: str) -> str:
    """Paper label of a dataset name; imagefolder:<path> -> the folder's name (e.g. CASIA-WebFace)."""
    if name.startswith("imagefolder:"):
        return name.split(":", 1)[1].rstrip("/").split("/")[-1]
    return DATASET_LABELS.get(name, name)


def label_model(arch: str) -> str:
    return MODEL_LABELS.get(arch, arch)


def published(paper: str | None = None):
    """Published rows (schema paper,table,dataset,model,setup,condition,feature,metric,value) as a DataFrame."""
    names = PAPERS if paper is None else (paper,)
    unknown = [p for p in names if p not in PAPERS]
    if unknown:
        raise ValueError(f"unknown paper {unknown}; valid: {', '.join(PAPERS)}")
    frames = []
    for p in names:
        with resources.files("mintkit").joinpath(f"reference/{p}.csv").open() as f:
            frames.append(pd.read_csv(f, keep_default_na=False, dtype=str).astype({"value": float}))
    return pd.concat(frames, ignore_index=True)
