"""The precision policy: what it picks per device and CPU, that forced fp32 is the old path bit for bit, the layout."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from mintkit.core import precision as prec
from mintkit.core.data import iterate_batches, synthetic_pool
from mintkit.core.train import TrainConfig, epoch_indices, predict, seed_everything, train_classifier
from mintkit.models.extract import extract
from mintkit.models.zoo import build_model
from mintkit.papers import gmint

CPU = torch.device("cpu")


@pytest.fixture
def fake_cpu(monkeypatch):
    """Pretend the CPU has (or lacks) native bf16: cpu_flags is what the policy reads."""
    def set_flags(*flags):
        monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset(flags))
    return set_flags


def test_policy_needs_native_bf16_on_cpu_and_never_emulates(fake_cpu):
    fake_cpu("avx2", "avx512f")
    assert prec.resolve("auto", "cpu") == "fp32" and prec.resolve("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="no native bf16.*never emulates"):
        prec.resolve("bf16", "cpu")
    fake_cpu("avx512f", "avx512_bf16")  # native bf16: an explicit choice; auto stays fp32 (docs/precision.md)
    assert prec.resolve("auto", "cpu") == "fp32" and prec.resolve("bf16", "cpu") == "bf16"
    fake_cpu("amx_bf16", "amx_tile")
    assert prec.resolve("auto", "cpu") == "fp32" and prec.resolve("bf16", "cpu") == "bf16"
    assert prec.resolve("auto", "cuda") == "bf16" and prec.resolve("fp32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="valid: auto, fp32, bf16"):
        prec.resolve("fp16", "cpu")
    with pytest.raises(ValueError, match="valid: auto, fp32, bf16"):
        TrainConfig(precision="half")


def test_channels_last_only_for_conv_models_under_cpu_bf16(fake_cpu):
    fake_cpu("avx512_bf16")
    cnn, mlp = build_model("smallcnn", 4, 1, 8), nn.Sequential(nn.Linear(4, 4))
    assert prec.memory_format(cnn, CPU, "bf16") is torch.channels_last
    assert prec.memory_format(cnn, CPU, "auto") is torch.contiguous_format  # auto is fp32 on a CPU
    assert prec.memory_format(cnn, CPU, "fp32") is torch.contiguous_format
    assert prec.memory_format(mlp, CPU, "bf16") is torch.contiguous_format
    with prec.in_layout(cnn, CPU, "bf16") as fmt:
        w = cnn.stage1[0].conv.weight
        assert fmt is torch.channels_last and w.is_contiguous(memory_format=torch.channels_last)
        with prec.in_layout(cnn, CPU, "bf16"):  # nested (an accuracy pass inside training) leaves it set
            pass
        assert cnn.stage1[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert cnn.stage1[0].conv.weight.is_contiguous()  # back to the layout checkpoints and gMINT read


def _old_loop(model, pool, idx, cfg, seed):
    """The training loop as it was before the policy: fp32, contiguous, no autocast on CPU."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.epochs):
        model.train()
        for b in iterate_batches(epoch_indices(torch.as_tensor(idx), None, gen), cfg.batch_size):
            x, y = pool.batch(b)
            loss = nn.functional.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def test_forced_fp32_is_bitwise_the_old_path_and_bf16_is_not(fake_cpu):
    fake_cpu("avx512_bf16")  # bf16 is there: fp32 must still be the old numbers exactly
    pool = synthetic_pool(n=160, size=8)
    idx = np.arange(128)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=1e-3, precision="fp32", fit_check=False)  # two steps' numerics
    models = []
    for _ in range(2):
        seed_everything(0)
        models.append(build_model("smallcnn", pool.num_classes, 1, 8))
    train_classifier(models[0], pool, idx, cfg, CPU, seed=0, progress=False)
    _old_loop(models[1], pool, idx, cfg, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()))
    old_logits = models[1](pool.batch(torch.arange(128, 160))[0]).detach()
    assert torch.equal(predict(models[0], pool, np.arange(128, 160), CPU, precision="fp32")[0], old_logits)
    seed_everything(0)
    m = build_model("smallcnn", pool.num_classes, 1, 8)
    train_classifier(m, pool, idx, TrainConfig(epochs=2, batch_size=32, lr=1e-3, precision="bf16", fit_check=False), CPU,
                     seed=0, progress=False)
    assert not torch.equal(m.fc.weight, models[0].fc.weight)  # bf16 really ran: other rounding
    assert m.stage1[0].conv.weight.is_contiguous()
    feats = extract(m, pool, np.arange(8), ["stage4"], CPU, precision="bf16")["stage4"]
    assert feats.dtype == torch.float32 and feats.shape == (8, 256)


def test_run_records_the_resolved_precision(tmp_path, fake_cpu):
    fake_cpu("avx2")  # no native bf16: auto resolves to fp32, and an explicit bf16 fails before any work
    P = gmint.Params.from_values({"out_dir": str(tmp_path / "a"), "n_members": 60})
    gmint.setup(P)
    assert json.loads((tmp_path / "a" / "env.json").read_text())["precision"] == "fp32"
    with pytest.raises(ValueError, match="no native bf16"):
        gmint.setup(P.replace(precision="bf16", out_dir=str(tmp_path / "b")))
    assert not (tmp_path / "b").exists() and prec.policy() == "auto"


def test_using_sets_the_policy_for_a_block_and_restores_the_callers():
    prec.set_policy("fp32")
    try:
        with prec.using("auto"):
            assert prec.policy() == "auto"
        with pytest.raises(RuntimeError), prec.using("bf16"):
            raise RuntimeError("an error inside the block")
        assert prec.policy() == "fp32"  # restored on the way out, error or not
        with pytest.raises(ValueError, match="valid: auto, fp32, bf16"), prec.using("half"):
            pass
        assert prec.policy() == "fp32"
    finally:
        prec.set_policy("auto")
