"""Factors (CVPRW 2024): exposure sampler, the sweep's heads and dropout, tidy rows, and the exposure
contrast on the real MNIST test split."""
from __future__ import annotations

import importlib
import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mintkit.papers.factors as fac
from mintkit.core.data import synthetic_pool
from mintkit.core.face_metrics import verification_accuracy
from mintkit.core.params import ParameterError
from mintkit.core.records import RESULT_COLUMNS
from mintkit.core.train import epoch_indices
from mintkit.methods.mint import MINT_SETS
from mintkit.models.iresnet import CosFaceHead
from mintkit.models.zoo import build_model
from mintkit.papers import common



def params(**kw) -> fac.Params:
    return fac.Params.from_values({"cache_dir": "", "n_boot": 0} | kw)


def context(P: fac.Params, pool) -> common.Context:
    """A run folder and `pool` on the CPU, as `fac.setup` gives for a registry dataset."""
    return common.setup(P, pool)


# ------------------------------------------------------------------------------- parameters


def test_bad_values_name_the_valid_ones():
    for key, bad, word in [("arch", "resnet9", "iresnet50"), ("dataset", "digitz", "tinyimagenet"),
                           ("loss", "focal", "adaface"), ("optimizer", "rmsprop", "sgd"),
                           ("scenarios", "exposure,size", "dropout"), ("losses", "arcface,focal", "cosface"),
                           ("exposures", "1,x", "whole numbers"), ("batch_sizes", "0,8", ">= 1")]:
        with pytest.raises(ParameterError, match=word):
            params(**{key: bad})
    with pytest.raises(ParameterError, match="unknown parameter.*setup"):
        params(setup="entry")                                                  # removed: nothing read it
    with pytest.raises(ParameterError, match="margin heads"):
        params(arch="resnet50")                                                # default losses hold margin heads
    assert params(arch="resnet50", scenarios="batch").arch == "resnet50"       # loss factor off: softmax only
    with pytest.raises(ParameterError, match="raise exposure_members"):
        params(exposure_members=100)                                           # 25 per quarter, n_eval 50


# ------------------------------------------------------------------------------- exposure


def test_exposure_sampler_counts_per_epoch():
    pool = synthetic_pool(n=400, num_classes=4)
    split = fac.exposure_split(pool, n_members=160, n_external=60, n_eval=10, n_quarters=4, seed=3)
    exposures = [1, 10, 20, 30]
    repeats = fac.exposure_repeats(split, exposures)
    members = torch.as_tensor(split["members"])
    order = epoch_indices(members, repeats, torch.Generator().manual_seed(0))  # one epoch, as train_classifier
    counts = torch.bincount(order, minlength=len(pool))[members].numpy()
    q = fac.quarters(split)
    assert np.bincount(q).tolist() == [40, 40, 40, 40]
    for k, e in enumerate(exposures):
        assert (counts[q == k] == e).all(), f"quarter {k + 1}: seen {set(counts[q == k])} times, expected {e}"
    assert len(order) == 40 * sum(exposures)
    assert not (order[:-1] == order[1:]).all()  # shuffled within the epoch, not blocks


def test_exposure_split_quarters_hold_their_own_mint_sets():
    pool = synthetic_pool(n=400, num_classes=4)
    split = fac.exposure_split(pool, 160, 60, 10, 4, seed=1)
    qmap = dict(zip(split["members"].tolist(), fac.quarters(split).tolist()))
    ev = np.array([qmap[i] for i in split["eval_members"]])
    assert np.bincount(ev).tolist() == [10] * 4 and len(split["eval_nonmembers"]) == 10
    assert not set(split["eval_members"]) & set(split["mint_train_members"])
    feats = {s: {"t": torch.as_tensor(split[s], dtype=torch.float32)[:, None]} for s in MINT_SETS}
    for k in range(4):
        f = fac.quarter_features(feats, split, k)
        for s in ("mint_train_members", "eval_members"):
            assert {qmap[int(i)] for i in f[s]["t"][:, 0]} == {k}
        assert torch.equal(f["external"]["t"], feats["external"]["t"])  # non-members shared
        assert torch.equal(f["eval_nonmembers"]["t"], feats["eval_nonmembers"]["t"])


def test_exposure_split_too_small_quarter_names_the_fix():
    with pytest.raises(ValueError, match="exposure_members"):
        fac.exposure_split(synthetic_pool(n=200), 40, 20, 10, 4)


# ------------------------------------------------------------------------------- heads, dropout


def _built(P, scenario, value, split):
    """The model exactly as the sweep builds it (variant -> build_fn/model_kw -> train_audited's builder)."""
    v, _ = fac.variant(split, scenario, value, P)
    torch.manual_seed(0)
    return (v.build_fn or build_model)(P.arch, num_classes=4, in_channels=1, image_size=8,
                                       dropout=v.dropout, head=v.head, **v.model_kw)


@pytest.mark.parametrize("head", ["arcface", "cosface", "adaface"])
def test_sweep_margin_heads_match_their_formula(head):
    pool = synthetic_pool(n=64, num_classes=4)
    P = params(arch="smallcnn", dropout=0.0, margin_scale=16.0)
    ctx = common.Context(None, pool, torch.device("cpu"))
    split = fac.make_split(ctx, "loss", P.replace(n_members=30, n_external=10, n_eval=5))
    model = _built(P, "loss", head, split).train()
    assert model.needs_labels and type(model.margin).__name__.lower().startswith(head[:3])
    x, y = pool.batch(torch.arange(8))
    emb = {}
    model.fc.register_forward_hook(lambda m, i, o: emb.setdefault("z", o.detach()))
    mean0, std0 = (model.margin.batch_mean.clone(), model.margin.batch_std.clone()) if head == "adaface" else (0, 0)
    logits = model(x, labels=y).detach()
    z, W, s = emb["z"], model.margin.weight.detach(), 16.0
    cos = (F.normalize(z, dim=1) @ F.normalize(W, dim=1).T).clamp(-1, 1)
    tgt = cos[torch.arange(8), y]
    if head == "arcface":  # s cos(theta + m), m = 0.5 (theta + m < pi here)
        assert (torch.acos(tgt) + 0.5 < math.pi).all()
        want_t = s * torch.cos(torch.acos(tgt) + 0.5)
    elif head == "cosface":  # s (cos theta - m), m = 0.35
        want_t = s * (tgt - 0.35)
    else:  # AdaFace: g from the norm standardised by the running stats (updated by this batch first)
        norms = z.norm(dim=1).clamp(1e-3, 100)
        mu, sd = 0.99 * mean0 + 0.01 * norms.mean(), 0.99 * std0 + 0.01 * norms.std()
        g = ((norms - mu) / (sd + 1e-3) * 0.333).clamp(-1, 1)
        theta = (torch.acos(tgt.clamp(-1 + 1e-3, 1 - 1e-3)) - 0.4 * g).clamp(1e-3, math.pi - 1e-3)
        want_t = s * (torch.cos(theta) - (0.4 + 0.4 * g))
    other = torch.ones_like(cos, dtype=torch.bool)
    other[torch.arange(8), y] = False
    torch.testing.assert_close(logits[torch.arange(8), y], want_t, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[other], s * cos[other], atol=1e-4, rtol=1e-4)  # non-targets untouched
    model.eval()
    torch.testing.assert_close(model(x).detach(), s * (F.normalize(model.fc(model.pool(model.stage4(model.stage3(
        model.stage2(model.stage1(x))))).flatten(1)), dim=1) @ F.normalize(W, dim=1).T), atol=1e-4, rtol=1e-4)


def test_sweep_iresnet_uses_zoo_heads_with_margin_scale(tmp_path, monkeypatch):
    """The loss factor on an IResNet trains the zoo's margin head with s = margin_scale (no SmallCNN wrapper), and
    the face model's quality is verification accuracy on its embeddings, also written as fr_verification_accuracy."""
    trained = []

    def spy(*args, **kw):
        model, info = train_audited(*args, **kw)
        trained.append((model, args))
        return model, info

    fac_sweep = importlib.import_module("mintkit.papers.factors.sweep")  # the package's `sweep` is the function
    train_audited = fac_sweep.train_audited
    monkeypatch.setattr(fac_sweep, "train_audited", spy)
    P = params(arch="iresnet18", losses="cosface", scenarios="loss", margin_scale=32.0, n_members=40, n_external=16,
               n_eval=16, audited_epochs=1, mint_epochs=1, mint_hidden1=8, mint_hidden2=4, device="cpu",
               out_dir=str(tmp_path / "run"))
    pool = synthetic_pool(n=96, num_classes=4, n_groups=12)  # 16 evaluation samples over 12 identities: pairs exist
    rows = fac.sweep(context(P, pool), "loss", P)
    (model, args), = trained
    recipe = args[2]
    assert recipe.build_fn is None and recipe.model_kw == {"s": 32.0} and recipe.head == "cosface"
    assert model.arch == "iresnet18" and isinstance(model.head, CosFaceHead) and model.head.s == 32.0
    assert set(rows.condition) == {"CosFace loss"} and set(rows.table) == {"Table 5"}
    fr = rows[rows.metric == "fr_verification_accuracy"].value
    assert len(fr) == len(fac.FEATURE_SETS) and ((fr >= 0) & (fr <= 1)).all()
    assert (fr.values == rows[rows.metric == "audited_accuracy"].value.values).all()


def test_sweep_dropout_toggle_changes_the_model_as_stated():
    pool = synthetic_pool(n=64, num_classes=4)
    P = params(dropout=0.5)
    ctx = common.Context(None, pool, torch.device("cpu"))
    split = fac.make_split(ctx, "dropout", P.replace(n_members=30, n_external=10, n_eval=5))
    assert P.values("dropout") == [0.5, 0.0]
    assert [fac.condition("dropout", v) for v in (0.5, 0.0)] == ["with dropout", "without dropout"]
    on, off = _built(P, "dropout", 0.5, split), _built(P, "dropout", 0.0, split)
    assert on.dropout.p == 0.5 and off.dropout.p == 0.0  # models.DROPOUT_MODULES["smallcnn"] == "dropout"
    x, _ = pool.batch(torch.arange(16))
    on.train(), off.train()
    torch.manual_seed(1)
    a = on(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, on(x))  # stochastic in training
    torch.manual_seed(1)
    b = off(x)
    torch.manual_seed(2)
    assert torch.allclose(b, off(x))  # no dropout: deterministic
    on.eval()
    assert torch.allclose(on(x), on(x))  # eval: dropout off
    assert fac.variant(split, "batch", 8, P)[0].dropout == 0.5  # other scenarios keep the base dropout


# ------------------------------------------------------------------------------- sweep rows


def test_sweep_rows_and_paper_table(tmp_path):
    P = params(n_members=120, n_external=60, n_eval=20, audited_epochs=1, fit_check=False, mint_epochs=2, mint_hidden1=16,
               mint_hidden2=8, losses="softmax,arcface", scenarios="loss", device="cpu", out_dir=str(tmp_path / "run"))
    ctx = fac.setup(P)
    rows = fac.sweep(ctx, "loss", P)
    assert list(rows.columns) == list(RESULT_COLUMNS)
    acc = rows[rows.metric == "accuracy"]
    assert set(acc.table) == {"Table 5"} and list(dict.fromkeys(acc.condition)) == ["Softmax loss", "ArcFace loss"]
    assert set(acc.feature) == {f"Vanilla MINT;{f}" for f in fac.FEATURE_SETS}
    assert set(rows.dataset) == {"digits"} and set(rows.model) == {"SmallCNN"}
    for m in ("audited_accuracy", "audited_train_accuracy", "n_eval_members", "n_eval_nonmembers"):
        assert len(rows[rows.metric == m]) == 12, m  # one per MINT result, under the same keys
    assert (rows[rows.metric == "n_eval_members"].value == 20).all()
    tab = fac.paper_table(rows, "loss")
    assert list(tab.index) == [*fac.FEATURE_SETS, "Audited quality"]
    assert tab.loc["Conv Layer #1", "ArcFace loss"].endswith("(0.67)")  # published beside ours
    assert tab.loc["Conv Layer #1", "CosFace loss"].startswith("-")  # not run: never filled from the paper
    assert len(ctx.run.rows) == len(rows) and (ctx.run.dir / "split.json").exists()
    assert {k.split("__")[0] for k in np.load(ctx.run.dir / "scores.npz")} == {"Table_5"}


def test_verification_accuracy_separates_identities():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(20, 16, generator=g)
    ident = np.repeat(np.arange(20), 5)
    emb = centers[ident] + 0.1 * torch.randn(100, 16, generator=g)
    assert verification_accuracy(emb.numpy(), ident, n_pairs=500) > 0.95
    assert 0.35 < verification_accuracy(torch.randn(100, 16, generator=g).numpy(), ident, n_pairs=500) < 0.65


# ------------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_mnist_exposure_x30_more_detectable_than_x1(mnist_root, tmp_path):
    """The paper (Tab. 2): the x30 quarter is more detectable than the x1 quarter, notably from layer #4, the
    outcome and all conv layers. One model on 400 MNIST test images, two halves seen x1 / x30 in one epoch."""
    P = params(dataset="mnist-test", data_root=str(mnist_root), exposures="1,30", exposure_members=400,
               exposure_epochs=1, n_external=300, n_eval=100, mint_epochs=20, seed=0, scenarios="exposure",
               device="cpu", out_dir=str(tmp_path / "run"))
    t0 = time.perf_counter()
    rows = fac.sweep(fac.setup(P), "exposure", P)
    acc = rows[rows.metric == "accuracy"].pivot(index="feature", columns="condition", values="value")
    print(f"\n{time.perf_counter() - t0:.0f} s\n{acc.round(3)}")
    deep = [f"Vanilla MINT;{f}" for f in ("Conv Layer #4", "Model Outcome", "All Conv Layers")]
    gain = acc.loc[deep, "x30"] - acc.loc[deep, "x1"]
    assert gain.mean() > 0.05, gain
    assert acc.loc["Vanilla MINT;Model Outcome", "x30"] > acc.loc["Vanilla MINT;Model Outcome", "x1"]
