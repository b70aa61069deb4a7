"""Shared fixtures: small pools, the real MNIST test split when present, the gpu marker."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# one intra-op thread: the test models are tiny, and on a busy 2-core machine two threads sync more than they compute
torch.set_num_threads(1)

# fixture notebooks (one fails on purpose) are inputs of the runner tests, not notebooks to validate with nbval
collect_ignore = ["fixtures"]

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
    from mintkit.core.data import load_pool
    return load_pool("digits")
