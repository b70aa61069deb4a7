"""Gradient-norm MINT (mintkit/methods/gradnorm.py, docs/gradnorm.md): numbers worked by hand, the fast path
against the per-sample loop, the audit and the registry, and one run on the real MNIST."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mintkit.audit import AuditParams, prepare, score_model
from mintkit.core.data import Pool, load_digits_pool, load_pool, synthetic_pool
from mintkit.core.train import TrainConfig, seed_everything, train_classifier
from mintkit.methods import registry
from mintkit.methods.gradnorm import gradient_norms, gradient_norms_loop
from mintkit.methods.mint import MintData, run_mint
from mintkit.models.zoo import GMINT_LAYERS, build_model

CPU = torch.device("cpu")


def hand_model() -> nn.Sequential:
    """conv 1×1 (w = 1) -> flatten -> Linear W = [[2, 0], [0, 1]], no biases."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[2].weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    return model


def test_hand_worked_norms():
    """One 1×2 image with pixels 255, 0 (inputs 1, -1 after the pool's scaling), label 0:
    logits W·[1, -1] = [2, -1]; δ = softmax - onehot = [-s, s], s = 1 / (1 + e³);
    Linear: ‖δ aᵀ‖ = ‖δ‖·‖a‖ = s√2·√2 = 2s; conv: δ at its two positions = Wᵀδ = [-2s, s], so its one weight's
    gradient is Σ δ·x = -2s·1 + s·(-1) = -3s, norm 3s."""
    pool = Pool("hand", torch.tensor([[[[255, 0]]]], dtype=torch.uint8), torch.tensor([0]), 2)
    s = 1 / (1 + math.e ** 3)
    want = torch.tensor([[3 * s, 2 * s]])
    for engine in ("hooks", "vmap"):
        got = gradient_norms(hand_model(), pool, np.array([0]), ["0", "2"], CPU, engine=engine)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gradient_norms_loop(hand_model(), pool, np.array([0]), ["0", "2"], CPU), want,
                               rtol=1e-5, atol=1e-7)


class Grouped(nn.Module):
    """A grouped conv the hooks engine cannot take and a layer run twice: the vmap fallback's cases."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, groups=2)
        self.shared = nn.Linear(4, 4)
        self.head = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.repeat(1, 2, 1, 1)).mean((2, 3))
        return self.head(self.shared(torch.tanh(self.shared(h))))


@pytest.mark.parametrize("arch", ["smallcnn", "grouped"])
def test_fast_path_equals_the_loop(arch):
    seed_everything(0)
    pool = synthetic_pool(48, num_classes=4)
    model = build_model("smallcnn", 4, 1, 8) if arch == "smallcnn" else Grouped()
    layers = list(GMINT_LAYERS["smallcnn"].values()) if arch == "smallcnn" else ["conv", "shared", "head"]
    idx = np.arange(40)
    loop = gradient_norms_loop(model, pool, idx, layers, CPU)
    assert loop.shape == (40, len(layers)) and (loop > 0).all()
    for engine in ("hooks", "vmap"):
        fast = gradient_norms(model, pool, idx, layers, CPU, batch_size=16, chunk_size=5, engine=engine)
        torch.testing.assert_close(fast, loop, rtol=1e-4, atol=1e-6)


def test_registered_and_run_by_the_audit(tmp_path):
    """`--method gradnorm` on a small CNN of 8×8 digits: a tested MINT method on the gMINT layers; off by default."""
    m = registry.get("gradnorm")
    assert m.layers == "weights" and m.gradients and m.labels and not m.default
    assert "gradnorm" not in registry.defaults()
    pool = load_digits_pool()
    keep = np.flatnonzero(pool.y.numpy() < 3)[:80]
    for part, rows in (("members", keep[:40]), ("nonmembers", keep[40:])):
        for i in rows:
            (tmp_path / part / str(int(pool.y[i]))).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pool.x[i, 0].numpy()).save(tmp_path / part / str(int(pool.y[i])) / f"{i}.png")
    (tmp_path / "net.py").write_text("from torch import nn\ndef make():\n    return nn.Sequential(nn.Conv2d(1, 4, 3, "
                                     "padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))\n")
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3)).state_dict(),
               tmp_path / "net.pt")
    P = AuditParams.from_values({"model": str(tmp_path / "net.pt"), "build": f"{tmp_path / 'net.py'}:make",
                                 "normalize": "0-1", "members": str(tmp_path / "members"),
                                 "nonmembers": str(tmp_path / "nonmembers"), "out_dir": str(tmp_path / "run"),
                                 "methods": "gradnorm", "mint_epochs": 2, "n_boot": 0})
    A = prepare(P)
    res = score_model(A, A.model).methods["gradnorm"]
    assert A.gmint_layers == ["0", "3"] and res.label == "gradient-norm MINT on 0, 3"
    assert len(res.scores) == 2 * len(A.split["eval_members"]) and np.isfinite(res.test.p)


def test_real_mnist_members_have_smaller_gradients(mnist_root):
    """smallcnn fitted to 120 real MNIST test digits: its members' gradient norms are smaller at every layer,
    and the MINT fit on them (60 + 60 train, 60 + 60 evaluated) reads above chance."""
    pool = load_pool("mnist-test", mnist_root)
    idx = np.random.default_rng(0).permutation(len(pool))[:240]
    seed_everything(0)
    model = build_model("smallcnn", 10, 1, 28)
    train_classifier(model, pool, idx[:120], TrainConfig(epochs=8, batch_size=24, lr=3e-3, precision="fp32"), CPU,
                     progress=False)
    layers = list(GMINT_LAYERS["smallcnn"].values())
    x = registry.get("gradnorm").features(registry.Inputs(model, pool, idx, layers, CPU))
    assert x.shape == (240, 3) and torch.isfinite(x).all()
    assert (x[:120].median(0).values < x[120:].median(0).values).all()
    y = torch.cat([torch.ones(120), torch.zeros(120)]).long()
    tr = torch.cat([torch.arange(60), torch.arange(120, 180)])
    ev = torch.cat([torch.arange(60, 120), torch.arange(180, 240)])
    res = run_mint(MintData(x[tr], y[tr], x[ev], y[ev]), "mlp", CPU, epochs=20, seed=0, n_boot=0,
                   model_kw=registry.get("gradnorm").head, name="gradnorm")
    print(f"\nreal MNIST gradient-norm MINT: AUC {res.metrics['auc']:.3f}")
    assert res.metrics["auc"] > 0.55
