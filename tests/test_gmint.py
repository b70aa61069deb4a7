"""gMINT: batched weight modifiers equal the literal per-sample loop; shapes; the protocol; real MNIST.

Tolerances. The equality tests run in float64 (model, data and optimiser), so both paths are exact up to
summation order; the features are stored as float32, so they must agree to float32 rounding:
|batched - loop| <= 1e-5 · |loop| + 1e-6 · max|G|. The float32 test on the default architecture allows
1e-3 · |loop| + max(1e-3 · max|G|, 4 ulp(max|W|)): there the loop's W_t - W_{t+1} loses digits to
cancellation when |G| << |W| (the batched path computes G directly and does not).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest
from torch import nn

import mintkit.papers.gmint as g
from mintkit.core.data import synthetic_pool
from mintkit.core.params import ParameterError
from mintkit.core.splits import build_split
from mintkit.core.train import TrainConfig
from mintkit.models.audited import AuditedRecipe, train_audited
from mintkit.methods.modifiers import (ENGINES, FILTER_REDUCTIONS, RULES, Optimiser, adam_state_of, apply_rule, key,
                                       reduce_filters, weight_modifiers, weight_modifiers_loop)
from mintkit.models.checkpoints import save_checkpoint
from mintkit.models.zoo import GMINT_LAYERS, build_model

CPU = torch.device("cpu")


class TinyCNN(nn.Module):
    """Conv - ReLU - Conv - ReLU - pool - Linear (no BatchNorm)."""

    def __init__(self, c: int = 1, k: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(8, k)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


class BNLinear(nn.Module):
    """Conv - BatchNorm - ReLU - flatten - Linear - ReLU - Linear: BatchNorm in eval mode and Linear layers."""

    def __init__(self, c: int = 1, k: int = 4, size: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, 5, 3, padding=1)
        self.bn = nn.BatchNorm2d(5)
        self.fc1 = nn.Linear(5 * size * size, 12)
        self.fc2 = nn.Linear(12, k)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.relu(self.bn(self.conv(x))).flatten(1))))


def _state(model: nn.Module, layers: list[str], seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n in layers:
        w = model.get_submodule(n).weight
        out[n] = {"exp_avg": (torch.randn(w.shape, generator=g) * 1e-2).to(w),
                  "exp_avg_sq": (torch.rand(w.shape, generator=g) * 1e-4).to(w), "step": 37}
    return out


def _assert_equal(batched, loop, rule, tol_scale=1e-6, rtol=1e-5):
    for k, ref in loop.features.items():
        got = batched.features[k]
        assert got.shape == ref.shape, k
        scale = float(ref.abs().max()) or 1.0
        torch.testing.assert_close(got, ref, rtol=rtol, atol=tol_scale * scale, msg=lambda m: f"{k} ({rule}): {m}")


@pytest.fixture(scope="module")
def pool():
    return synthetic_pool(n=64, num_classes=4, channels=1, size=8, seed=3)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("arch", ["tinycnn", "bnlinear"])
def test_batched_equals_loop_every_rule(pool, arch, engine):
    torch.manual_seed(0)
    if arch == "tinycnn":
        model, layers = TinyCNN(), ["conv1", "conv2", "fc"]
    else:
        model, layers = BNLinear(), ["conv", "fc1", "fc2"]
        with torch.no_grad():  # non-trivial running statistics: eval mode must use them
            model.bn.running_mean.uniform_(-0.5, 0.5)
            model.bn.running_var.uniform_(0.5, 2.0)
    model = model.double().eval()
    idx = np.arange(0, 40, 3)
    opt = Optimiser(lr=1e-2, weight_decay=0.0)
    state = _state(model, layers)
    batched = weight_modifiers(model, pool, idx, layers, CPU, rules=RULES, reductions=FILTER_REDUCTIONS, opt=opt,
                               state=state, batch_size=8, chunk_size=3, engine=engine)
    assert batched.meta["engine"] == engine
    for rule in RULES:
        loop = weight_modifiers_loop(model, pool, idx, layers, CPU, rule=rule, reductions=FILTER_REDUCTIONS, opt=opt,
                                     state=state)
        _assert_equal(batched, loop, rule)
    # the literal loop (optimiser over all parameters, state dict restored) gives the same numbers
    lit = weight_modifiers_loop(model, pool, idx[:4], layers, CPU, rule="adam", opt=opt, literal=True)
    for k, v in lit.features.items():
        torch.testing.assert_close(batched.features[k][:4], v, rtol=1e-5, atol=1e-8)


class Awkward(nn.Module):
    """What the hooks engine cannot take (a depthwise conv; a Linear used twice) and what it can (tokens)."""

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        self.dw = nn.Conv2d(1, 3, 3, padding=1, groups=1)
        self.depthwise = nn.Conv2d(3, 3, 3, padding=1, groups=3)
        self.shared = nn.Linear(4, 4)
        self.fc = nn.Linear(4, k)

    def forward(self, x):
        t = self.depthwise(torch.relu(self.dw(x)))[:, :, ::2, ::2].flatten(2)  # [N, 3 tokens, 16]
        t = t.unflatten(2, (4, 4)).mean(3)  # [N, 3, 4]
        return self.fc(self.shared(torch.relu(self.shared(t))).mean(1))


def test_the_hooks_engine_takes_tokens_and_hands_the_rest_to_vmap(pool):
    """Linear on tokens [N, T, in] (ViT's fc1) goes through the hooks; a depthwise conv or a layer used twice in
    one forward falls back to vmap; every engine equals the loop."""
    torch.manual_seed(2)
    model = Awkward().double().eval()
    idx = np.arange(7)
    for layers, engine in ((["dw", "fc"], "hooks"), (["depthwise", "fc"], "vmap"), (["shared", "fc"], "vmap")):
        b = weight_modifiers(model, pool, idx, layers, CPU, rules=("adam", "grad"), reductions=FILTER_REDUCTIONS)
        assert b.meta["engine"] == engine, layers
        for rule in ("adam", "grad"):
            _assert_equal(b, weight_modifiers_loop(model, pool, idx, layers, CPU, rule=rule,
                                                   reductions=FILTER_REDUCTIONS), rule)
    with pytest.raises(ValueError, match="valid: hooks, vmap"):
        weight_modifiers(model, pool, idx, ["fc"], CPU, engine="jax")


def test_weight_decay_and_no_matmul_path(pool):
    torch.manual_seed(1)
    model = TinyCNN().double().eval()
    layers = ["conv2", "fc"]
    opt = Optimiser(lr=1e-3, weight_decay=1e-2)
    idx = np.arange(6)
    for rule in ("sgd", "adam"):
        loop = weight_modifiers_loop(model, pool, idx, layers, CPU, rule=rule, opt=opt)
        for matmul, engine in ((True, "vmap"), (False, "vmap"), (True, "hooks")):
            b = weight_modifiers(model, pool, idx, layers, CPU, rules=(rule,), opt=opt, matmul=matmul, engine=engine)
            _assert_equal(b, loop, rule)


def test_float32_default_arch(digits_pool):
    torch.manual_seed(0)
    model = build_model("smallcnn", 10, 1, 8).eval()
    layers = list(GMINT_LAYERS["smallcnn"].values())
    idx = np.arange(6)
    b = weight_modifiers(model, digits_pool, idx, layers, CPU, rules=("adam", "sgd"), reductions=("mean", "max"))
    for rule in ("adam", "sgd"):
        loop = weight_modifiers_loop(model, digits_pool, idx, layers, CPU, rule=rule, reductions=("mean", "max"))
        for k, ref in loop.features.items():
            # the loop's W_t - W_{t+1} in float32 is only good to a few ulp of W (cancellation when |G| << |W|)
            w = model.get_submodule(k.split("|")[0]).weight.detach()
            atol = max(1e-3 * float(ref.abs().max()), 4 * torch.finfo(torch.float32).eps * float(w.abs().max()))
            torch.testing.assert_close(b.features[k], ref, rtol=1e-3, atol=atol, msg=lambda m: f"{k}: {m}")


def test_reduction_shapes(pool):
    model = BNLinear().eval()
    m = weight_modifiers(model, pool, np.arange(5), ["conv", "fc1", "fc2"], CPU, rules=("grad",),
                         reductions=FILTER_REDUCTIONS)
    # Conv2d (F_out, F_in, K, K) -> F_out; Linear (out, in) -> out
    assert m.features[key("conv", "grad", "mean")].shape == (5, 5)
    assert m.features[key("fc1", "grad", "min")].shape == (5, 12)
    assert m.features[key("fc2", "grad", "max")].shape == (5, 4)
    combined = m.get(["conv", "fc1", "fc2"], "grad", "mean", rows=np.array([4, 0]))
    assert combined.shape == (2, 5 + 12 + 4)
    torch.testing.assert_close(combined[1, :5], m.features[key("conv", "grad", "mean")][0])
    G = torch.randn(7, 3, 2, 2)
    assert torch.equal(reduce_filters(G, "max"), G.flatten(1).amax(1))
    assert reduce_filters(G, "mean").shape == (7,)
    with pytest.raises(ValueError, match="valid"):
        reduce_filters(G, "median")
    with pytest.raises(TypeError, match="Conv2d or nn.Linear"):
        weight_modifiers(model, pool, np.arange(2), ["bn"], CPU)


def test_rule_formulas():
    g = torch.tensor([[1e-3, -2.0, 0.0, 1e-9]])
    w = torch.zeros_like(g)
    opt = Optimiser(lr=0.1, eps=1e-8)
    torch.testing.assert_close(apply_rule(g, w, "sgd", opt), 0.1 * g)
    torch.testing.assert_close(apply_rule(g, w, "grad", opt), g)
    torch.testing.assert_close(apply_rule(g, w, "adam", opt), 0.1 * g / (g.abs() + 1e-8))  # ≈ 0.1·sign(g)
    st = {"exp_avg": torch.zeros_like(g), "exp_avg_sq": torch.zeros_like(g), "step": 0}
    torch.testing.assert_close(apply_rule(g, w, "adam-state", opt, st), apply_rule(g, w, "adam", opt))
    with pytest.raises(ValueError, match="adam-state"):
        weight_modifiers(TinyCNN(), synthetic_pool(8), np.arange(2), ["fc"], CPU, rules=("adam-state",))


def test_adam_state_kept_by_train_audited(tmp_path):
    pool = synthetic_pool(n=96, num_classes=4)
    split = build_split(pool, 40, 20, 10, seed=0)
    layers = ["stage1.0.conv", "stage4.1.conv"]
    names = [f"{n}.weight" for n in layers]
    cfg = TrainConfig(epochs=1, batch_size=16, fit_check=False)
    recipe = AuditedRecipe("smallcnn", cfg)
    m1, i1 = train_audited(pool, split, recipe, CPU, 0, cache_dir=tmp_path, progress=False, optimizer_state_of=names)
    m2, i2 = train_audited(pool, split, recipe, CPU, 0, cache_dir=tmp_path, progress=False, optimizer_state_of=names)
    assert not i1.cache_hit and i2.cache_hit
    s1, s2 = adam_state_of(i1.optimizer_state, layers), adam_state_of(i2.optimizer_state, layers)
    for n in layers:
        assert s1[n]["exp_avg"].shape == m1.get_submodule(n).weight.shape
        assert float(s1[n]["step"]) == 3  # 40 members / batch 16 = 3 steps
        assert torch.equal(s1[n]["exp_avg_sq"], s2[n]["exp_avg_sq"])
    _, i3 = train_audited(pool, split, recipe, CPU, 0, cache_dir=tmp_path, progress=False)
    assert i3.optimizer_state is None and not i3.cache_hit  # a different cache entry: key unchanged without it
    with pytest.raises(KeyError, match="Adam state"):
        adam_state_of({}, layers)


def test_split_protocol_and_params(tmp_path):
    P = g.Params.from_values({"n_members": 0, "out_dir": str(tmp_path / "run")})
    ctx = g.setup(P)
    split = g.make_split(ctx, P)
    assert (tmp_path / "run" / "split.json").exists()
    s = split.sizes()
    half = len(ctx.pool) // 2
    assert s["members"] == half and s["external"] + s["eval_nonmembers"] == half  # two equal halves
    assert s["eval_members"] == s["eval_nonmembers"] == round(0.2 * half)
    assert s["mint_train_members"] + s["eval_members"] == half
    sets = g.mint_sets(split, 0.1, 0)
    assert len(sets["mint_train_members"]) == round(0.1 * s["mint_train_members"])
    assert set(sets["external"]) <= set(split["external"])
    assert P.fractions == (1.0, 0.1, 0.01) and P.protocol == "heldout"
    assert P.setups == ("entry", "middle", "output", "combined") and P.reductions == ("mean", "min", "max")
    assert P.rules == ("adam", "sgd", "adam-state", "grad")
    assert P.replace(selection="paper").protocol == "paper"
    assert P.replace(compare_rules=False, rule="sgd").rules == ("sgd",)
    assert P.replace(audited_optimizer="sgd", rule="sgd").rules == ("sgd", "adam", "grad")
    assert P.setup_layers("combined") == list(GMINT_LAYERS["smallcnn"].values())
    assert [g.fraction_label(f) for f in P.fractions] == ["D100", "D10", "D1"]
    for bad in ({"rule": "rmsprop"}, {"selection": "best"}, {"setup": "first"}, {"reduction": "median"},
                {"arch": "lenet"}, {"data_fraction": 2.0}, {"val_fraction": 1.0}, {"attacks": "loss"},
                {"n_reference": 1}):
        with pytest.raises(ParameterError, match="valid|must|even"):
            g.Params.from_values(bad)
    with pytest.raises(ParameterError, match="audited_optimizer"):
        g.Params.from_values({"rule": "adam-state", "audited_optimizer": "sgd"})
    with pytest.raises(ParameterError, match="leaves no MINT-training data"):
        P.replace(n_members=300, n_eval=300).split_sizes(len(ctx.pool))


def test_early_stopping_validation_is_never_a_membership_set(tmp_path):
    """patience > 0 draws the audited model's validation samples outside every set when the pool has them
    (reduced size), else out of E's MINT-training part, which then loses them; either way disjoint from all."""
    P = g.Params.from_values({"n_members": 300, "patience": 2, "n_val": 100, "out_dir": str(tmp_path / "a")})
    ctx = g.setup(P)
    split = g.make_split(ctx, P)
    val = np.asarray(split.meta["audited_val"])
    every = np.concatenate([split[s] for s in ("members", "external", "eval_members", "eval_nonmembers")])
    assert len(val) == 100 and not np.isin(val, every).any() and split.meta["audited_val_source"].startswith("pool")
    half = P.replace(n_members=0, out_dir=str(tmp_path / "b"))
    split = g.make_split(ctx, half)  # equal halves: no free sample left
    val = np.asarray(split.meta["audited_val"])
    every = np.concatenate([split[s] for s in ("members", "external", "eval_members", "eval_nonmembers")])
    assert len(val) == 100 and not np.isin(val, every).any() and "carved out of E" in split.meta["audited_val_source"]
    model, info = g.audited(ctx, split, half.replace(audited_epochs=4), progress=False)
    assert 1 <= info.history["best_epoch"] <= info.history["epochs_run"] <= 4


def test_attacks_join_table3_on_the_same_audited_model(tmp_path, capsys):
    """The attacks score gMINT's evaluated samples on its audited model; rows go to Table 3 with their own
    labels beside MINT and LOSS. A checkpoint's references repeat its architecture, and say so."""
    P = g.Params.from_values({"n_members": 150, "audited_epochs": 1, "fit_check": False, "setup": "combined", "reduction": "mean",
                              "data_fraction": 1.0, "compare_rules": False, "mint_epochs": 2, "n_boot": 0,
                              "cache_dir": "", "attacks": "yeom,lira-offline", "n_reference": 2, "threads": 1,
                              "out_dir": str(tmp_path / "run")})
    ctx = g.setup(P)
    split = g.make_split(ctx, P)
    model, info = g.audited(ctx, split, P, progress=False)
    _t3, t3res = g.table3(ctx, split, model, info, {}, P)
    mia = g.membership_attacks(ctx, split, model, info, P)
    res = mia.results[P.protocol]
    assert [r.label for r in res.values()] == ["Yeom et al.", "LiRA (offline)"]
    assert np.array_equal(res["yeom"].labels, t3res["LOSS (Yeom et al.)"].labels)
    conds = {r["condition"] for r in ctx.run.rows if r["table"] == "Table 3" and r["metric"] == "accuracy"}
    assert conds == {"MINT", "LOSS (Yeom et al.)", "Yeom et al.", "LiRA (offline)"}
    t = g.attack_table(t3res, mia, P)
    assert list(t["method"]) == ["MINT (activations)", "LOSS (Yeom et al.)", "Yeom et al.", "LiRA (offline)"]
    assert list(g.attack_curves(mia, P)) == ["LiRA (offline)"] and g.attack_curves(None, P) == {}
    assert g.membership_attacks(ctx, split, model, info, P.replace(n_reference=0)) is None
    save_checkpoint(tmp_path / "own.pt", model, {"model": model.config})
    Pc = P.replace(checkpoint=str(tmp_path / "own.pt"), attacks="yeom,watson", out_dir=str(tmp_path / "ck"))
    ctx_c = g.setup(Pc)
    own, info_c = g.audited(ctx_c, split, Pc, progress=False)
    mia_c = g.membership_attacks(ctx_c, split, own, info_c, Pc)
    assert mia_c.recipe.arch == "smallcnn" and "checkpoint's smallcnn" in capsys.readouterr().out
    assert mia_c.results[P.protocol]["yeom"].metrics["auc"] == pytest.approx(res["yeom"].metrics["auc"])


def test_real_mnist_combined_beats_chance(mnist_root, tmp_path):
    """End to end on the real MNIST test split: D = E = 300 images, smallcnn, Combined / MEAN / D100, rule sgd.

    Batch 32 gives the audited model 60 steps: with fewer, BatchNorm's running statistics lag the weights and
    the eval-mode model (the one gMINT steps) is near chance even though its training loss is low."""
    P = g.Params.from_values({
        "dataset": "mnist-test", "data_root": str(mnist_root), "n_members": 300, "audited_epochs": 6,
        "batch_size": 32, "rule": "sgd", "setup": "combined", "reduction": "mean", "data_fraction": 1.0,
        "compare_rules": False, "mint_epochs": 30, "n_boot": 0, "cache_dir": "", "device": "cpu",
        "out_dir": str(tmp_path / "run")})
    ctx = g.setup(P)
    split = g.make_split(ctx, P)
    model, info = g.audited(ctx, split, P, progress=False)
    mods = g.modifiers(ctx, split, model, info, P, progress=False)
    df, cells = g.grid(ctx, split, mods, info, P)
    m = cells[("combined", "mean", 1.0)].metrics
    n = m["n_eval_members"] + m["n_eval_nonmembers"]
    correct = int(round(m["accuracy"] * n))
    p = binomtest(correct, n, 0.5, alternative="greater").pvalue
    print(f"MNIST test split, Combined/MEAN/D100/sgd: {correct}/{n} correct (accuracy {m['accuracy']:.3f}, "
          f"AUC {m['auc']:.3f}, p={p:.1e}); audited train/test accuracy {info.accuracy}")
    assert n == 120 and m["n_eval_members"] == 60
    # enough optimiser steps for BatchNorm's running statistics: the eval-mode model must have learnt
    assert info.accuracy["audited_train_accuracy"] > 0.95 and info.accuracy["audited_accuracy"] > 0.7
    assert p < 1e-3 and m["auc"] > 0.6, f"{correct}/{n} correct, AUC {m['auc']:.3f}"
