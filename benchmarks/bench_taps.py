"""Forward pass with taps (hooks reducing 4 stages + outcome per channel) vs a plain forward.

Target: taps cost at most 1.10× a plain forward; captured memory is N×C per tap, never N×C×H×W.
    python benchmarks/bench_taps.py [--device cpu|cuda] [--arch smallcnn] [--batch 256]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_pool, interleaved, machine  # noqa: E402

from mintkit.models.extract import tapped  # noqa: E402
from mintkit.models.zoo import build_model  # noqa: E402
from mintkit.core.precision import autocast  # noqa: E402
from mintkit.core.train import pick_device  # noqa: E402

TAPS = ["stage1", "stage2", "stage3", "stage4", "outcome"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--arch", default="smallcnn")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args()
    dev = pick_device(a.device)
    pool = bench_pool().to(dev)
    model = build_model(a.arch, pool.num_classes, pool.in_channels, pool.image_size).to(dev).eval()
    xs = [pool.batch(torch.arange(i * a.batch, (i + 1) * a.batch))[0] for i in range(a.batches)]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    @torch.no_grad()
    def plain():
        for x in xs:
            with autocast(dev):
                model(x)

    captured = {}

    @torch.no_grad()
    def with_taps():
        with tapped(model, TAPS, "max") as store:
            for x in xs:
                with autocast(dev):
                    model(x)
        captured.update(store)

    plain(), with_taps()  # warm-up
    t = interleaved({"plain": plain, "taps": with_taps}, a.repeats, sync)
    n = a.batch * a.batches
    numbers = sum(torch.cat(v).numel() for v in captured.values())
    full = 0
    with torch.no_grad(), tapped(model, TAPS, "none") as store:
        model(xs[0])
        full = sum(v[0].numel() for v in store.values()) * a.batches
    print(f"machine: {machine(dev)}; arch {a.arch}; input {tuple(xs[0].shape[1:])}; {n} images")
    print(f"plain forward : {t['plain'] * 1e3:8.1f} ms  ({n / t['plain']:,.0f} img/s)")
    print(f"with 5 taps   : {t['taps'] * 1e3:8.1f} ms  ({n / t['taps']:,.0f} img/s)")
    print(f"ratio taps/plain = {t['taps'] / t['plain']:.3f}  (target <= 1.10)")
    print(f"captured numbers: {numbers:,} (N×C per tap) vs {full:,} for full maps N×C×H×W "
          f"({full / max(numbers, 1):.1f}× more)")


if __name__ == "__main__":
    main()
