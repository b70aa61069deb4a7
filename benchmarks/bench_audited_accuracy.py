"""Each zoo architecture's test accuracy on the real MNIST at a fixed small budget, beside how chaotic it is at
initialisation: the regression check of docs/models.md, "Audited accuracy".

At initialisation a deep plain stack of conv-BN-ReLU layers (MobileNet v1: 27, no skip connections) sits in the
chaotic regime: a 1% input perturbation moves the penultimate features as much as a different image does, so the
model can fit training images by features that say nothing about unseen ones. ``sensitivity`` is that relative
change (train-mode BN, 256 test images); ``cos same / other`` the mean cosine of centred features between images
of the same and of other classes. Then each model trains ``--members`` training images for ``--epochs`` at
each ``--lr`` (Adam, batch 64, the kit's loop) and reports test accuracy on 2,000 test images.

    python benchmarks/bench_audited_accuracy.py --data-root ../shared/data [--archs smallcnn,mobilenet]
        [--members 5000] [--epochs 3] [--lrs 1e-4,1e-3] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mintkit.core.data import TEST, TRAIN, load_pool  # noqa: E402
from mintkit.core.train import TrainConfig, seed_everything, train_classifier  # noqa: E402
from mintkit.models.zoo import build_model  # noqa: E402

CPU = torch.device("cpu")


def penultimate(model: nn.Module) -> nn.Module:
    """The module whose output is the pooled feature vector in front of the classifier."""
    for name in ("pool", "avgpool"):
        if hasattr(model, name):
            return getattr(model, name)
    return model.norm if hasattr(model, "norm") else model  # timm ViT: the final LayerNorm (CLS at position 0)


def chaos(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    """(sensitivity to a 1% input perturbation, cos same-class, cos other-class) of centred features at init."""
    feats = {}
    h = penultimate(model).register_forward_hook(lambda m, i, o: feats.__setitem__("f", o.flatten(1)))
    model.train()
    with torch.no_grad():
        model(x)
        f = feats["f"] - feats["f"].mean(0)
        model(x + 0.01 * torch.randn_like(x))
        fp = feats["f"] - feats["f"].mean(0)
    h.remove()
    c = nn.functional.normalize(f, dim=1)
    cos = c @ c.T
    same = (y[:, None] == y[None]) & ~torch.eye(len(y), dtype=torch.bool)
    return (float(((fp - f).norm(dim=1) / f.norm(dim=1)).mean()), float(cos[same].mean()),
            float(cos[y[:, None] != y[None]].mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--archs", default="smallcnn,mobilenet")
    ap.add_argument("--members", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lrs", default="1e-4,1e-3")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pool = load_pool("mnist", a.data_root, download=False)
    rng = np.random.default_rng(0)
    members = np.sort(rng.choice(pool.indices(TRAIN), a.members, replace=False))
    test = np.sort(rng.choice(pool.indices(TEST), 2000, replace=False))
    xb, yb = pool.batch(torch.as_tensor(test[:256]))
    print(f"real MNIST, {a.members} members, {a.epochs} epochs, Adam batch 64, {a.threads} thread(s); test acc on "
          f"2,000 test images")
    for arch in a.archs.split(","):
        seed_everything(0)
        sens, same, other = chaos(build_model(arch, 10, 1, 28), xb, yb)
        for lr in map(float, a.lrs.split(",")):
            seed_everything(0)
            model = build_model(arch, 10, 1, 28)
            t0 = time.perf_counter()
            h = train_classifier(model, pool, members, TrainConfig(epochs=a.epochs, batch_size=64, lr=lr), CPU,
                                 progress=False, eval_sets={"test": test})
            accs = " ".join(f"{v:.3f}" for v in h["test_acc"])
            print(f"{arch:11s} sensitivity {sens:5.2f}  cos same/other {same:+.3f}/{other:+.3f}  lr {lr:g}: "
                  f"test acc per epoch {accs}  ({(time.perf_counter() - t0) / a.epochs:.0f} s/epoch)")


if __name__ == "__main__":
    main()
