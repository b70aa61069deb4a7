"""The CUDA paths (marker `gpu`: skipped without CUDA, tests/conftest.py; run by scripts/gpu_check.sh):
bf16 extraction against fp32, the batched weight modifiers against the literal loop, and one training step of
each trainer (audited model, MINT head, aMINT's M+). docs/precision.md gives the precision policy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mintkit.core.data import load_pool
from mintkit.core.train import TrainConfig, train_classifier
from mintkit.methods.mint import fit_mint, score
from mintkit.methods.modifiers import weight_modifiers, weight_modifiers_loop
from mintkit.methods.mplus import build_mplus, train_mplus
from mintkit.models.classifiers import VanillaMLP
from mintkit.models.extract import extract
from mintkit.models.zoo import GMINT_LAYERS, build_model

pytestmark = pytest.mark.gpu
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def pool():
    return load_pool("digits")


@pytest.fixture
def no_tf32():
    """TF32 rounds matmuls and convolutions to 10-bit mantissas: the loop comparison needs it off
    (mintkit.methods.modifiers, module docstring)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_bf16_extraction_is_close_to_fp32(pool):
    torch.manual_seed(0)
    model = build_model("smallcnn", 10, 1, 8).eval()
    idx, taps = np.arange(128), ["stage2", "stage4", "outcome"]
    ref = extract(model, pool, idx, taps, CPU, precision="fp32")
    got = extract(model.to(CUDA), pool.to(CUDA), idx, taps, CUDA, precision="bf16")
    for t in taps:
        assert got[t].dtype == torch.float32 and got[t].device == CPU and got[t].shape == ref[t].shape, t
        # bf16 keeps 8 bits of mantissa: about 2 significant digits of each activation
        torch.testing.assert_close(got[t], ref[t], rtol=5e-2, atol=5e-2 * float(ref[t].abs().max()),
                                   msg=lambda m, t=t: f"{t}: {m}")


def test_batched_modifiers_match_the_loop_on_cuda(pool, no_tf32):
    torch.manual_seed(0)
    model = build_model("smallcnn", 10, 1, 8).eval().to(CUDA)
    layers = list(GMINT_LAYERS["smallcnn"].values())
    idx = np.arange(6)
    rules, reductions = ("grad", "sgd"), ("mean", "max")
    batched = weight_modifiers(model, pool, idx, layers, CUDA, rules=rules, reductions=reductions, chunk_size=4)
    for rule in rules:
        loop = weight_modifiers_loop(model, pool, idx, layers, CUDA, rule=rule, reductions=reductions)
        for k, ref in loop.features.items():
            # the loop's W_t - W_{t+1} in float32 is good to a few ulp of W (cancellation when |G| << |W|)
            w = model.get_submodule(k.split("|")[0]).weight.detach()
            atol = max(1e-3 * float(ref.abs().max()), 4 * torch.finfo(torch.float32).eps * float(w.abs().max()))
            torch.testing.assert_close(batched.features[k], ref, rtol=1e-3, atol=atol, msg=lambda m, k=k: f"{k}: {m}")


def test_one_training_step_of_each_trainer_on_cuda(pool):
    gpu_pool = pool.to(CUDA)
    model = build_model("smallcnn", 10, 1, 8).to(CUDA)
    before = [p.detach().clone() for p in model.parameters()]
    hist = train_classifier(model, gpu_pool, np.arange(128), TrainConfig(epochs=1, batch_size=64, precision="bf16"),
                            CUDA, seed=0, progress=False)
    assert math.isfinite(hist["loss"][0]) and next(model.parameters()).device.type == CUDA.type
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 12, generator=g), torch.arange(64) % 2
    head = VanillaMLP(12, hidden=(16,))
    mint_hist = fit_mint(head, x, y, CUDA, epochs=1, batch_size=32)
    s = score(head, x, CUDA)
    assert math.isfinite(mint_hist["loss"][0]) and s.shape == (64,) and ((s >= 0) & (s <= 1)).all()

    mplus = build_mplus(build_model("smallcnn", 10, 1, 8).to(CUDA), "middle", 8, 1, width=8)
    sets = {"task": np.arange(0, 64), "mint_members": np.arange(0, 32), "external": np.arange(64, 96),
            "val_members": np.arange(32, 40), "val_nonmembers": np.arange(96, 104)}
    plus_hist = train_mplus(mplus, gpu_pool, sets, CUDA, epochs=1, batch_size=16, max_steps=2)
    assert plus_hist["steps"] == 2 and math.isfinite(plus_hist["loss"][0])
