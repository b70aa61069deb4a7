"""The fit guard (mintkit.core.fit): a model that did not learn its own task stops the run or marks its rows, never
passes silently; nothing it trained is cached."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mintkit.core.data import synthetic_pool
from mintkit.core.fit import DidNotFit, check_classifier, check_head
from mintkit.core.splits import build_split
from mintkit.core.train import TrainConfig, seed_everything, train_classifier
from mintkit.models.audited import AuditedRecipe, train_audited
from mintkit.methods.mint import MintData, run_mint
from mintkit.models.zoo import build_model

CPU = torch.device("cpu")


def test_a_model_that_cannot_fit_stops_the_run_and_says_why():
    pool = synthetic_pool(n=256)
    seed_everything(0)
    model = build_model("smallcnn", pool.num_classes, pool.in_channels, pool.image_size)
    # lr 1e-7 for one epoch: the weights barely move, training accuracy stays at chance
    with pytest.raises(DidNotFit, match=r"training accuracy 0\.\d+ on its own training samples, below 0\.625.*lower "
                                        r"lr, train longer, or use precision fp32"):
        train_classifier(model, pool, np.arange(200), TrainConfig(epochs=1, lr=1e-7, batch_size=32), CPU,
                         progress=False)


def test_a_good_fit_passes_and_records_its_training_accuracy():
    pool = synthetic_pool(n=256)
    seed_everything(0)
    model = build_model("smallcnn", pool.num_classes, pool.in_channels, pool.image_size)
    hist = train_classifier(model, pool, np.arange(200), TrainConfig(epochs=8, lr=3e-3, batch_size=32), CPU,
                            progress=False)
    assert hist["train_acc_final"] >= 0.625


def test_a_failed_fit_is_never_cached(tmp_path):
    pool = synthetic_pool(n=256)
    split = build_split(pool, 100, 60, 20, seed=0)
    with pytest.raises(DidNotFit):
        train_audited(pool, split, AuditedRecipe("smallcnn", TrainConfig(epochs=2, lr=1e-7, batch_size=32)), CPU,
                      seed=0, cache_dir=tmp_path / "cache", progress=False)
    # no marker and no training state (mintkit.core.train_state): a later run retrains from its first epoch
    assert not list((tmp_path / "cache").glob("*.json")) and not list((tmp_path / "cache").glob("*.train-state.pt"))


def test_divergence_is_a_failed_fit():
    check = check_classifier(0.97, 10, [0.4, 0.1, 2.5], "m")
    assert not check.fitted and "not below the first" in check.reason
    assert check_classifier(0.97, 10, [2.3, 0.1], "m").fitted
    assert not check_classifier(0.387, 10, [2.3, 1.9], "m").fitted  # the bf16 seed-1 case of docs/precision.md


def test_head_guard_constant_chance_and_fitted():
    y = np.r_[np.ones(500), np.zeros(500)]
    assert "constant scores" in check_head(np.full(1000, 0.5), y).reason
    rng = np.random.default_rng(0)
    assert not check_head(rng.random(1000), y).fitted  # chance on its own training samples
    assert check_head(np.where(y == 1, 0.7, 0.3) + 0.01 * rng.random(1000), y).fitted


def test_mint_results_carry_the_head_guard():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=g)
    y = torch.cat([torch.ones(200), torch.zeros(200)]).long()
    x[y == 1] += 1.5  # separable: the head fits
    data = MintData(x, y, x[150:250], y[150:250])
    res = run_mint(data, "mlp", CPU, epochs=5, seed=0, n_boot=0)
    assert res.metrics["head_fitted"] == 1.0 and res.metrics["head_train_accuracy"] > 0.8 and res.fit.fitted
