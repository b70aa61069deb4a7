"""Shared fixtures: small pools, the real MNIST test split when present, the gpu marker."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """../shared/data (holds MNIST/raw/t10k-*), or skip with the reason."""
    if not (SHARED_MNIST / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {SHARED_MNIST}/MNIST/raw")
    return SHARED_MNIST


@pytest.fixture
def digits_pool():
    from mintkit.data import load_pool
    return load_pool("digits")
