"""One training epoch: device-resident uint8 pool + index-slice batches vs a torch DataLoader with
per-sample PIL transforms (ToTensor + Normalize, what the released aMINT notebooks do). Same model,
same data, same batch size, same optimiser. Also times the data path alone (no model).

Target: the device-resident epoch is at least 3× faster than the DataLoader epoch.
    python benchmarks/bench_epoch.py [--device cpu|cuda] [--arch smallcnn] [--batch 64]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_pool, interleaved, machine  # noqa: E402

from mintkit.core.data import iterate_batches  # noqa: E402
from mintkit.models.zoo import build_model  # noqa: E402
from mintkit.core.precision import autocast  # noqa: E402
from mintkit.core.train import pick_device  # noqa: E402


class PILDataset(torch.utils.data.Dataset):
    """The naive path: numpy images -> PIL -> ToTensor -> Normalize, one sample at a time."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        from torchvision import transforms
        self.x, self.y = x, y
        self.tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        from PIL import Image
        return self.tf(Image.fromarray(self.x[i])), int(self.y[i])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--arch", default="smallcnn")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n", type=int, default=4096, help="samples per epoch")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    dev = pick_device(a.device)
    pool = bench_pool()
    idx = np.arange(min(a.n, len(pool)))
    gpool = pool.to(dev)
    loader = torch.utils.data.DataLoader(PILDataset(pool.x[idx, 0].numpy(), pool.y[idx].numpy()),
                                         batch_size=a.batch, shuffle=True)
    torch.manual_seed(0)
    model = build_model(a.arch, pool.num_classes, pool.in_channels, pool.image_size).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step(x, y):
        with autocast(dev):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def resident_epoch(train: bool = True):
        for b in iterate_batches(idx, a.batch, shuffle=True, generator=gen):
            x, y = gpool.batch(b)
            if train:
                step(x, y)

    def loader_epoch(train: bool = True):
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if train:
                step(x, y)

    model.train()
    resident_epoch(), loader_epoch()  # warm-up
    t = interleaved({"resident": resident_epoch, "loader": loader_epoch}, a.repeats, sync)
    d = interleaved({"resident": lambda: resident_epoch(False), "loader": lambda: loader_epoch(False)},
                    a.repeats, sync)
    print(f"machine: {machine(dev)}; arch {a.arch}; {len(idx)} images of {tuple(pool.x.shape[1:])}; batch {a.batch}")
    print(f"data path only : resident {d['resident'] * 1e3:8.1f} ms, DataLoader {d['loader'] * 1e3:8.1f} ms, "
          f"ratio {d['loader'] / d['resident']:.1f}×")
    print(f"training epoch : resident {t['resident']:.3f} s ({len(idx) / t['resident']:,.0f} img/s), "
          f"DataLoader {t['loader']:.3f} s ({len(idx) / t['loader']:,.0f} img/s)")
    print(f"ratio DataLoader/resident (epoch) = {t['loader'] / t['resident']:.2f}  (target >= 3)")


if __name__ == "__main__":
    main()
