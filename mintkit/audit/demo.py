"""A model with known members, to try the audit on: ``python -m mintkit.audit.demo --out DIR``.

Writes, from scikit-learn's bundled 8x8 digits (offline):

* ``DIR/members/<digit>/*.png``: the images the demo model is trained on (the candidate members);
* ``DIR/nonmembers/<digit>/*.png``: images of the same kind it never sees;
* ``DIR/model.pt``: the state dict of a torchvision ``resnet18`` (10 classes), trained with plain
  PyTorch on the members. The grayscale digits are repeated to 3 channels (torchvision's ResNet
  takes RGB) and scaled to 0..1, so the audit reads them with ``--channels 3 --normalize 0-1``.

and prints the audit command. A second call with the same settings reuses what is there.
"""
from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from mintkit.audit.params import AuditParams
from mintkit.core.data import load_digits_pool
from mintkit.core.records import atomic_write_bytes, write_json

# 200 members, 40 epochs: a clear signal at ~160 optimiser steps (tens of seconds on a laptop CPU)
SETTINGS = {"n_members": 200, "n_nonmembers": 200, "epochs": 40, "batch_size": 64, "lr": 1e-3, "seed": 0}


def write_tree(root: Path, x: np.ndarray, y: np.ndarray, ids: np.ndarray) -> None:
    """x [N, H, W] uint8, y [N] -> root/<label>/<id>.png (one PNG per image)."""
    for img, label, i in zip(x, y, ids):
        d = root / str(int(label))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{int(i):05d}.png")


def train_resnet18(x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float,
                   seed: int) -> torch.nn.Module:
    """torchvision resnet18 fitted to x [N, 3, H, W] in 0..1 and y [N]: Adam with a one-cycle schedule."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2 * lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), batch_size):
            b = order[s:s + batch_size]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def audit_command(out: Path) -> str:
    def q(p: Path) -> str:
        return shlex.quote(str(p))
    return (f"python -m mintkit audit --model {q(out / 'model.pt')} --arch resnet18 --channels 3 --normalize 0-1 "
            f"--members {q(out / 'members')} --nonmembers {q(out / 'nonmembers')} --out {q(out / 'audit')}")


def make_demo(out: str | Path, settings: dict | None = None, progress: bool = True) -> dict:
    """Write the demo folders and model under `out` (reused when complete with the same settings).

    Returns {'model', 'members', 'nonmembers', 'command', 'seconds'}.
    """
    out = Path(out)
    cfg = SETTINGS | (settings or {})
    marker = out / "demo.json"
    paths = {"model": str(out / "model.pt"), "members": str(out / "members"), "nonmembers": str(out / "nonmembers"),
             "command": audit_command(out)}
    complete = marker.exists() and (out / "model.pt").is_file()
    if complete and json.loads(marker.read_text()).get("settings") == cfg:
        return paths | {"seconds": 0.0}
    t0 = time.perf_counter()
    pool = load_digits_pool()
    rng = np.random.default_rng(cfg["seed"])
    perm = rng.permutation(len(pool))
    mem, non = perm[:cfg["n_members"]], perm[cfg["n_members"]:cfg["n_members"] + cfg["n_nonmembers"]]
    if len(non) < cfg["n_nonmembers"]:
        raise ValueError(f"digits holds {len(pool)} images; n_members + n_nonmembers must not exceed it")
    images, labels = pool.x[:, 0].numpy(), pool.y.numpy()
    for name in ("members", "nonmembers"):
        if (out / name).exists():  # a half-written earlier call: start the trees afresh
            for p in sorted((out / name).rglob("*.png")):
                p.unlink()
    write_tree(out / "members", images[mem], labels[mem], mem)
    write_tree(out / "nonmembers", images[non], labels[non], non)
    x = pool.x[torch.as_tensor(mem)].float().div(255).repeat(1, 3, 1, 1)
    if progress:
        print(f"training resnet18 on {len(mem)} members for {cfg['epochs']} epochs ...", flush=True)
    model = train_resnet18(x, pool.y[torch.as_tensor(mem)], cfg["epochs"], cfg["batch_size"], cfg["lr"], cfg["seed"])
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(out / "model.pt", buf.getvalue())
    seconds = time.perf_counter() - t0
    write_json(marker, {"settings": cfg, "seconds": seconds})  # written last: the demo is complete
    return paths | {"seconds": seconds}


def demo_params(P: AuditParams, progress: bool = True) -> AuditParams:
    """P with the demo's model and folders (written under ``<out_dir>/demo``) filled in."""
    d = make_demo(Path(P.out_dir) / "demo", progress=progress)
    return P.replace(model=d["model"], arch="resnet18", build="", channels=3, normalize="0-1",
                     members=d["members"], nonmembers=d["nonmembers"], external="", control="")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mintkit.audit.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/audit-demo"),
                    help="folder to write (default runs/audit-demo)")
    ap.add_argument("--epochs", type=int, default=SETTINGS["epochs"], help="training epochs of the demo model")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # a tiny model: one thread is fastest on a shared CPU
    d = make_demo(args.out, {"epochs": args.epochs})
    print(f"demo model {d['model']} ({d['seconds']:.0f} s); members {d['members']}, non-members {d['nonmembers']}")
    print("audit it with:\n  " + d["command"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
