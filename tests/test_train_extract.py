"""Training loop (determinism both ways, modes, NaN guard, exposure repeats) and tap extraction."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mintkit.core import train_state
from mintkit.core.data import synthetic_pool
from mintkit.core.splits import SETS, Split
from mintkit.core.params import ParameterError, check
from mintkit.core.train import (EarlyStopping, TrainConfig, TrainingDiverged, accuracy, ensure_finite, epoch_indices,
                                pick_device, seed_everything, train_classifier)
from mintkit.models.audited import AuditedRecipe, train_audited
from mintkit.models.extract import extract, reduce_activation
from mintkit.models.zoo import build_model

CPU = torch.device("cpu")


def _train(seed: int, pool=None):
    pool = pool or synthetic_pool(n=256)
    seed_everything(seed)
    model = build_model("smallcnn", pool.num_classes, pool.in_channels, pool.image_size)
    hist = train_classifier(model, pool, np.arange(200), TrainConfig(epochs=2, batch_size=32, fit_check=False), CPU, seed=seed,
                            progress=False)
    return model, hist


def test_same_seed_same_numbers_other_seed_other_numbers():
    (m1, h1), (m2, h2), (m3, h3) = _train(0), _train(0), _train(1)
    assert h1["loss"] == h2["loss"]
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert h1["loss"] != h3["loss"] and not torch.equal(m1.fc.weight, m3.fc.weight)


def test_training_learns_and_ends_in_eval_mode():
    pool = synthetic_pool(n=256)
    seed_everything(0)
    model = build_model("smallcnn", pool.num_classes, pool.in_channels, pool.image_size)
    hist = train_classifier(model, pool, np.arange(200), TrainConfig(epochs=6, batch_size=32), CPU, progress=False)
    assert not model.training and hist["loss"][-1] < hist["loss"][0]
    assert accuracy(model, pool, np.arange(200, 256), CPU) > 0.5  # 4 classes: chance is 0.25


def test_train_mode_during_steps(monkeypatch):
    pool = synthetic_pool(n=64)
    model = build_model("smallcnn", pool.num_classes, pool.in_channels, pool.image_size)
    modes = []
    model.register_forward_pre_hook(lambda m, i: modes.append(m.training))
    train_classifier(model, pool, np.arange(64), TrainConfig(epochs=2, batch_size=32, fit_check=False), CPU, progress=False,
                     eval_sets={"all": np.arange(64)})
    assert modes == [True, True, False, True, True, False]  # 2 train steps, then an eval pass, per epoch


def test_nan_loss_stops_with_epoch_and_step():
    pool = synthetic_pool(n=64)
    model = build_model("smallcnn", pool.num_classes, pool.in_channels, pool.image_size)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="epoch 1, step 1"):
        train_classifier(model, pool, np.arange(64), TrainConfig(epochs=1, batch_size=32, fit_check=False), CPU, progress=False)


def test_early_stopping_keeps_the_best_validation_epoch_and_its_optimiser_state():
    pool = synthetic_pool(n=256)
    val = np.arange(200, 256)
    kept, seen = {}, []
    names = ["fc.weight"]

    def snapshot(epoch, hist):  # weights after each epoch, to compare with what stopping restores
        seen.append({k: v.clone() for k, v in model.state_dict().items()})

    seed_everything(0)
    model = build_model("smallcnn", pool.num_classes, pool.in_channels, pool.image_size)
    cfg = TrainConfig(epochs=30, batch_size=32, lr=3e-2, patience=2)  # a high lr: validation accuracy wobbles
    hist = train_classifier(model, pool, np.arange(200), cfg, CPU, progress=False, on_epoch=snapshot,
                            val_indices=val, keep_optimizer_state=names)
    best = hist["best_epoch"]
    assert hist["val_acc"][best - 1] == max(hist["val_acc"])
    assert hist["epochs_run"] == len(hist["loss"]) == len(hist["val_acc"])
    assert hist["epochs_run"] - best == 2 or hist["epochs_run"] == 30  # stopped `patience` epochs after the best
    assert all(torch.equal(v, seen[best - 1][k]) for k, v in model.state_dict().items())
    assert accuracy(model, pool, val, CPU) == max(hist["val_acc"])
    kept.update(hist["extra"])
    assert set(kept) == {"fc.weight.optim.exp_avg", "fc.weight.optim.exp_avg_sq", "fc.weight.optim.step"}
    assert float(kept["fc.weight.optim.step"]) == best * 7  # 200 samples / batch 32 = 7 steps an epoch
    with pytest.raises(ValueError, match="needs validation samples"):
        train_classifier(model, pool, np.arange(200), cfg, CPU, progress=False)
    assert "patience" not in TrainConfig().as_dict() and TrainConfig(patience=3).as_dict()["patience"] == 3


def test_a_stopped_training_resumes_at_its_last_epoch_and_ends_with_the_same_weights(tmp_path, monkeypatch):
    """Stopped (Ctrl-C) after its fifth epoch, the audited model's training goes on at the sixth on the next call
    and ends bitwise where an uninterrupted one ends: Adam's moments, the batch order, the dropout masks and early
    stopping's patience all carry across. Nothing a later run would trust as finished is left by the stop."""
    pool = synthetic_pool(n=256)
    split = Split({s: np.empty(0, np.int64) for s in SETS} | {"members": np.arange(200)}, pool.name, len(pool), 0)
    recipe = AuditedRecipe("smallcnn", TrainConfig(epochs=12, batch_size=32, lr=1e-2, patience=3), dropout=0.25)
    val = np.arange(200, 256)

    def run(cache):
        return train_audited(pool, split, recipe, CPU, 5, cache, progress=False, val_indices=val,
                             optimizer_state_of=["fc.weight"])

    whole, whole_info = run(tmp_path / "whole")
    saves, real_save = [], train_state.save

    def save_then_stop(path, **kw):
        real_save(path, **kw)
        saves.append(kw["epoch"])
        if len(saves) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_state, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "stopped")
    left = sorted(p.name for p in (tmp_path / "stopped").iterdir())
    assert len(left) == 1 and left[0].endswith(".train-state.pt")  # no weights, no marker: nothing looks finished
    state = (tmp_path / "stopped" / left[0]).read_bytes()
    assert train_state.load(tmp_path / "stopped" / left[0])["epoch"] == 4
    foreign, truncated = tmp_path / "0123.train-state.pt", tmp_path / left[0]
    foreign.write_bytes(state)
    truncated.write_bytes(state[:len(state) // 2])
    monkeypatch.setattr(train_state, "save", real_save)
    resumed, info = run(tmp_path / "stopped")
    assert not info.cache_hit and info.cache_key == whole_info.cache_key and info.history["resumed_at_epoch"] == [6]
    h, w = info.history, whole_info.history
    assert h["loss"] == w["loss"] and h["val_acc"] == w["val_acc"]
    # val accuracy 0.5, 0.571, 0.893, 1.0, 1.0, 1.0, 1.0: the best epoch (4) is before the stop, patience ends after it
    assert info.history["best_epoch"] == whole_info.history["best_epoch"] == 4 and info.history["epochs_run"] == 7
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    assert all(torch.equal(info.optimizer_state[k], v) for k, v in whole_info.optimizer_state.items())
    assert not list((tmp_path / "stopped").glob("*.train-state.pt"))  # gone once the entry is complete
    # a state saved under another key, or a truncated one, is never read: such a training starts at epoch 1
    assert train_state.load(foreign) is None and train_state.load(truncated) is None


def test_exposure_repeats_count_per_epoch():
    idx = torch.arange(8)
    reps = torch.tensor([1, 1, 10, 10, 20, 20, 30, 30])
    order = epoch_indices(idx, reps, torch.Generator().manual_seed(0))
    assert torch.bincount(order, minlength=8).tolist() == reps.tolist()


def test_unknown_optimizer_and_device():
    with pytest.raises(ValueError, match="valid: adam, sgd"):
        TrainConfig(optimizer="lion")
    assert pick_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            pick_device("cuda")


def test_extract_reduced_features_hold_n_by_c():
    pool = synthetic_pool(n=40, size=8)
    model = build_model("smallcnn", pool.num_classes, pool.in_channels, pool.image_size)
    feats = extract(model, pool, np.arange(40), ["stage1", "stage4", "outcome"], CPU, batch_size=16)
    assert feats["stage1"].ndim == 2 and feats["stage1"].shape[0] == 40
    assert feats["outcome"].shape == (40, pool.num_classes)
    full = extract(model, pool, np.arange(40), ["stage1"], CPU, reduce="none", batch_size=16)["stage1"]
    assert full.ndim == 4 and torch.allclose(full.float().amax(dim=(2, 3)), feats["stage1"], atol=1e-2)
    with pytest.raises(ValueError, match="valid"):
        extract(model, pool, np.arange(4), ["stage9"], CPU)


def test_reduce_activation_shapes():
    assert reduce_activation(torch.randn(2, 3, 4, 4), "max").shape == (2, 3)
    assert reduce_activation(torch.randn(2, 5, 7), "mean").shape == (2, 7)  # tokens [B, T, D] -> [B, D]
    with pytest.raises(ValueError, match="valid: max, mean, none"):
        reduce_activation(torch.randn(2, 3, 4, 4), "median")


def test_params_check_types_and_unknown_names():
    spec = {"reduction": (str, "mean", "per-filter reduction"), "lr": (float, 1e-3, "learning rate"),
            "seed": (int, 0, "seed")}
    assert check({"lr": 1}, spec)["lr"] == 1.0  # papermill's -p lr 1 arrives as int
    with pytest.raises(ParameterError, match="unknown parameter\\(s\\) \\['lrr'\\]; valid: .*lr"):
        check({"lrr": 0.1}, spec)
    with pytest.raises(ParameterError, match="'seed' must be int, got str"):
        check({"seed": "1"}, spec)
    with pytest.raises(ParameterError, match="got bool"):
        check({"seed": True}, spec)


def test_one_early_stopping_rule_and_one_non_finite_guard():
    acc = EarlyStopping("max", patience=2)
    assert [acc.update(a, e, lambda a=a: a) for e, a in enumerate([0.5, 0.6, 0.6, 0.55])] == [False] * 3 + [True]
    assert (acc.best, acc.best_epoch, acc.best_state) == (0.6, 2, 0.6)
    never = EarlyStopping("max")  # patience 0: every epoch runs, the best is kept
    assert not any(never.update(a, e, lambda a=a: a) for e, a in enumerate([0.9, 0.1, 0.1, 0.1]))
    assert never.best_state == 0.9 and never.best_epoch == 1
    loss = EarlyStopping("min", patience=1, min_delta=1e-6, keep_best=False)
    assert not loss.update(1.0, 0, lambda: "kept") and loss.update(1.0 - 1e-7, 1)  # within min_delta: not better
    assert loss.best_epoch == 1 and loss.best_state is None
    assert ensure_finite(0.5, "x") == 0.5
    with pytest.raises(FloatingPointError, match="non-finite \\(nan\\) in epoch 2 of M"):
        ensure_finite(float("nan"), "epoch 2 of M")
    with pytest.raises(TrainingDiverged):
        ensure_finite(float("inf"), "epoch 1")


def test_run_mint_does_not_depend_on_the_global_generator():
    """A warm-cache rerun (the audited model loaded, not trained) must give the same MINT numbers."""
    import torch
    from mintkit.methods.mint import MintData, run_mint
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    y = (torch.arange(200) % 2).long()
    x[y == 1] += 0.5
    data = MintData(x[:120], y[:120], x[120:], y[120:])
    results = []
    for state in (1, 2):
        torch.manual_seed(state)  # what the audited-model stage left behind
        results.append(run_mint(data, "mlp", torch.device("cpu"), epochs=3, seed=0, n_boot=0).scores)
    assert (results[0] == results[1]).all()


def test_the_cache_key_of_a_known_recipe_is_unchanged(tmp_path):
    """Models users already cached must still hit: the keys below were computed at commit 70b5e3a, when the
    recipe travelled as keywords (arch, cfg, dropout, optimizer_state_of ...); AuditedRecipe passed whole must
    give them again. Zero epochs: nothing trains, only the key and an initial model are written."""
    pool = synthetic_pool(n=64, num_classes=4)
    empty = np.empty(0, np.int64)
    split = Split({s: empty for s in SETS} | {"members": np.arange(0, 64, 2)}, pool.name, len(pool), 0)
    cfg = TrainConfig(epochs=0, batch_size=32, lr=0.01, optimizer="sgd", weight_decay=1e-4, fit_check=False)
    _, info = train_audited(pool, split, AuditedRecipe("smallcnn", cfg, dropout=0.25), CPU, 3, tmp_path,
                            progress=False)
    assert info.cache_key == "91492f39b336b719fb09" and (tmp_path / f"{info.cache_key}.pt").exists()
    _, info = train_audited(pool, split, AuditedRecipe("smallcnn", TrainConfig(epochs=0, fit_check=False)), CPU, 0,
                            tmp_path, progress=False, optimizer_state_of=["fc.weight"])
    assert info.cache_key == "3765a1151165585d41b4"
    _, again = train_audited(pool, split, AuditedRecipe("smallcnn", TrainConfig(epochs=0, fit_check=False)), CPU, 0,
                             tmp_path, progress=False, optimizer_state_of=["fc.weight"])
    assert again.cache_hit and again.cache_key == info.cache_key
