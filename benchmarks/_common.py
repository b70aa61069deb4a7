"""Shared helpers of the benchmark scripts: a pool to time on, interleaved repeated timing."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def bench_pool(name: str = "auto"):
    """The real MNIST test split when ../shared/data (or .gpu/data) holds it, else digits upsampled to 28×28."""
    from mintkit.core.data import load_pool
    for root in (SHARED, Path(__file__).resolve().parents[1] / ".gpu" / "data"):
        if name in ("auto", "mnist-test") and (root / "MNIST" / "raw").exists():
            return load_pool("mnist-test", root)
    return load_pool("digits", image_size=28)


def interleaved(fns: dict[str, Callable[[], None]], repeats: int = 5, sync: Callable[[], None] = lambda: None
                ) -> dict[str, float]:
    """Median seconds of each fn, run alternately so machine noise hits all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def machine(device: torch.device) -> str:
    import platform
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
