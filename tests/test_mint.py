"""MINT paper module: parameters, MINT models, checkpoint loading, the face pipeline, a real-data run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mintkit.papers import mint
from mintkit.papers.mint import report as mint_report
from mintkit.core import params



def P_(**kw) -> dict:
    P = params.check({}, mint.PARAMS)
    P.update(kw)
    return P


# ---------------------------------------------------------------------------------------- parameters
def test_defaults_valid_and_checks_name_the_valid_values():
    P = P_()
    mint.check(P)
    assert P["dataset"] == "digits" and P["control"] == "other-data"
    for key, bad, word in [("mint_models", "mlp,svm", "mlp, cnn"), ("control", "random", "untrained"),
                           ("cnn_combination", "sum", "branches"), ("mlp_features", "stage9", "combination"),
                           ("data_sweep", "0.5,2", "(0, 1]"), ("condition", "{size};{case}", "{size}")]:
        with pytest.raises(ValueError, match=word.replace("(", r"\(").replace("]", r"\]")):
            mint.check(P_(**{key: bad}))


def test_condition_size_labels_and_cnn_family():
    assert [mint.size_label(n) for n in (100000, 50000, 1000, 900)] == ["100K", "50K", "1K", "900"]
    assert mint.condition(P_(condition="{size};Baseline Case"), 100000, "x") == "100K;Baseline Case"
    assert mint.condition(P_(), 900, "digits") == "900;digits"
    assert mint.condition(P_(condition="{size};{image_size}x{image_size}", image_size=64), 80000, "x") == "80K;64x64"
    assert mint.cnn_family(P_()) == "CNN MINT"
    assert mint.cnn_family(P_(cnn_params_scale=3.0)) == "CNN MINT x3 params"
    assert mint.cnn_family(P_(cnn_params_scale=0.333)) == "CNN MINT /3 params"


# --------------------------------------------------------------------------------------- MINT models
def _toy_feats(n: int = 48, seed: int = 0) -> dict:
    """Planted signal: members have larger activations in every tap."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"stage1": (4, 6, 6), "stage2": (6, 3, 3), "stage3": (8, 2, 2), "stage4": (8, 2, 2)}
    maps, vec = {}, {}
    for s in mint.pl.MINT_SETS:
        member = s in ("mint_train_members", "eval_members")
        m = {t: (torch.randn(n, *sh, generator=g) + (1.0 if member else 0.0)).half() for t, sh in shapes.items()}
        maps[s] = m
        vec[s] = {t: v.float().amax(dim=(2, 3)) for t, v in m.items()}
        vec[s]["outcome"] = torch.randn(n, 3, generator=g) + (1.0 if member else 0.0)
    return {"vec": vec, "maps": maps}


@pytest.mark.parametrize("family,feature,how", [("mlp", "stage1", "branches"), ("mlp", "combination", "branches"),
                                                 ("mlp", "outcome", "branches"), ("cnn", "stage2", "branches"),
                                                 ("cnn", "combination", "branches"), ("cnn", "combination", "stack")])
def test_mint_models_train_on_tiny_inputs(family, feature, how):
    P = P_(mint_epochs=3, cnn_epochs=3, mint_batch_size=16, n_boot=0, cnn_combination=how, mint_l1=0.01)
    r = mint.fit_one(_toy_feats(), family, feature, P, torch.device("cpu"))
    assert r["scores"].shape == (96,) and set(np.unique(r["labels"])) == {0, 1}
    assert r["n_train"] == 96 and r["n_train_members"] == 48 and r["params"] > 0
    assert r["label"] == f"{mint.FAMILIES[family]};{mint.LABELS[feature]}"
    assert 0.0 <= r["metrics"]["mint_accuracy"] <= 1.0 and np.isfinite(r["scores"]).all()
    if family == "cnn" and feature == "combination":
        assert isinstance(r["model"], mint.CNNCombination) == (how == "branches")


def test_data_fraction_subsamples_both_classes_and_scales_cnn():
    feats = _toy_feats(n=40)
    P = P_(mint_epochs=1, cnn_epochs=1, n_boot=0)
    r = mint.fit_one(feats, "mlp", "stage1", P, torch.device("cpu"), fraction=0.25)
    assert r["n_train"] == 20 and r["n_train_members"] == 10
    base = mint.fit_one(feats, "cnn", "stage1", P, torch.device("cpu"))
    big = mint.fit_one(feats, "cnn", "stage1", P_(mint_epochs=1, cnn_epochs=1, n_boot=0, cnn_params_scale=4.0),
                       torch.device("cpu"))
    assert big["label"] == "CNN MINT x4 params" + ";Conv Layer #1"
    assert 2.0 < big["params"] / base["params"] < 5.0   # conv part grows by 2, the dense part by 4


# ------------------------------------------------------------------------------- face data on disk
def _write_identities(root: Path, n_ids: int, per_id: int, size: int = 16, seed: int = 0, prefix: str = "id") -> Path:
    """An imagefolder tree of `n_ids` identities, each a noisy variant of its own random face."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for i in range(n_ids):
        d = root / f"{prefix}{i:03d}"
        d.mkdir(parents=True)
        base = rng.integers(0, 256, (size, size, 3))
        for j in range(per_id):
            img = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{j}.png")
    return root


def _face_P(tmp_path: Path, **kw) -> dict:
    return P_(**dict(dataset=f"imagefolder:{tmp_path / 'main'}", arch="iresnet18", head="arcface", image_size=16,
                     identity_disjoint=True, n_members=40, n_external=20, n_eval=10, audited_epochs=1, batch_size=16,
                     mint_epochs=2, cnn_epochs=1, mint_batch_size=16, n_boot=0, data_sweep="0.5", control="untrained",
                     cnn_features="stage1,combination", out_dir=str(tmp_path / "run"), cache_dir="", device="cpu",
                     condition="{size};Baseline Case", dataset_label="Glint360K", model_label="FR Model 2") | kw)


def _groups(pool, split, name):
    return set(pool.group.numpy()[split[name]].tolist())


def test_face_pipeline_identity_disjoint_with_external_trees(tmp_path):
    _write_identities(tmp_path / "main", 16, 6, seed=0)
    _write_identities(tmp_path / "ext_a", 5, 3, seed=1)
    _write_identities(tmp_path / "ext_b", 4, 3, seed=2)
    _write_identities(tmp_path / "evalnm", 5, 4, seed=3)
    P = _face_P(tmp_path, external_root=f"imagefolder:{tmp_path / 'ext_a'},{tmp_path / 'ext_b'}",
                eval_nonmember_root=f"imagefolder:{tmp_path / 'evalnm'}")
    device, run = mint.setup(P)
    pool = mint.load_data(P)
    assert len(pool) == 16 * 6 + 5 * 3 + 4 * 3 + 5 * 4 and pool.image_size == 16 and pool.in_channels == 3
    split = mint.make_split(pool, P)
    src = pool.meta["source"]
    # sets come from the right trees, and no identity straddles two sets
    assert (src[split["members"]] == mint.SOURCE_MAIN).all()
    assert (src[split["external"]] == mint.SOURCE_EXTERNAL).all()
    assert (src[split["eval_nonmembers"]] == mint.SOURCE_EVAL).all()
    assert set(src[split["external"]].tolist()) == {1} and len(_groups(pool, split, "external")) >= 5
    for a, b in [("members", "external"), ("members", "eval_nonmembers"), ("external", "eval_nonmembers"),
                 ("mint_train_members", "eval_members")]:
        assert not _groups(pool, split, a) & _groups(pool, split, b), (a, b)
    assert set(mint.split_table(split, pool)["from"]) == {"main pool", "external_root", "eval_nonmember_root"}

    model, info = mint.audited_model(pool, split, P, device)
    assert mint.is_face(model) and model.arch == "iresnet18"
    audited = mint.audited_quality(model, pool, split, device)
    assert set(audited) == {"audited_accuracy", "audited_train_accuracy"}
    feats = mint.extract_features(model, pool, split, P, device)
    assert feats["vec"]["eval_members"]["outcome"].shape == (10, 512)          # the embedding
    assert feats["maps"]["eval_members"]["stage1"].shape[1] == 64
    results = mint.fit_all(feats, P, device)
    sweep = mint.size_sweep(feats, P, device)
    assert mint.loss_baseline(model, pool, split, P, device) is None          # no labels for foreign faces
    cmodel, cinfo = mint.control_model(pool, split, P, device)
    control = mint.fit_control(cmodel, pool, split, P, device)
    assert set(control) == {("mlp", "combination"), ("mlp", "outcome"), ("cnn", "stage1")}
    mint_report.record(run, P, results, sweep, control, None, audited, cinfo)
    mint_report.save_scores(run, results, control, None)
    run.finish()
    df = pd.read_csv(run.dir / "results.csv", keep_default_na=False)
    assert {"Table 1", "Table 3", "Table 4", "Table 5", "Table 6", "Fig. 5"} <= set(df["table"])
    assert (df["dataset"] == "Glint360K").all() and (df["model"] == "FR Model 2").all()
    acc = df[(df.metric == "mint_accuracy") & (df.table == "Table 1")]
    assert set(acc["feature"]) >= {"Vanilla MINT;Conv Layer #1", "Vanilla MINT;Combination",
                                   "Domain control (untrained) Vanilla MINT;Combination"}
    assert set(acc["condition"]) == {"40;Baseline Case"}                       # 20 members + 20 external
    assert set(df[df.table == "Table 6"]["feature"]) >= {mint.MIA_FEATURE, "CNN MINT;Conv Layer #1"}
    assert {"audited_accuracy", "audited_train_accuracy", "n_eval_members", "n_eval_nonmembers"} <= set(df.metric)
    assert not df.duplicated(subset=[*mint_report.KEY_COLUMNS, "seed"]).any()
    full = df[df.table.isin(["Table 1", "Table 4", "Table 6", "Fig. 5"])]
    joined = mint_report.compare_published(full.assign(condition="100K;Baseline Case"))  # as a 100K run would write it
    assert set(joined["table"]) >= {"Table 1", "Table 4", "Table 6", "Fig. 5"}
    assert joined["reproduced"].notna().all() and (joined["model"] == "FR Model 2").all()
    assert (run.dir / "scores.npz").exists() and (run.dir / "status.json").exists()


def test_face_pipeline_main_pool_only_other_data_control(tmp_path):
    _write_identities(tmp_path / "main", 30, 4, seed=5)
    P = _face_P(tmp_path, control="other-data", n_members=32, n_external=24, n_eval=12, mint_models="mlp",
                mlp_features="outcome,combination", data_sweep="")
    device, run = mint.setup(P)
    pool = mint.load_data(P)
    split = mint.make_split(pool, P)
    for a, b in [("members", "external"), ("members", "eval_nonmembers"), ("external", "eval_nonmembers"),
                 ("mint_train_members", "eval_members")]:
        assert not _groups(pool, split, a) & _groups(pool, split, b), (a, b)
    cmodel, cinfo = mint.control_model(pool, split, P, device)
    used = set().union(*(_groups(pool, split, s) for s in ("members", "external", "eval_nonmembers")))
    ctrl_ids = set(pool.group.numpy()[cinfo["control_members"]].tolist())
    assert cinfo["n_control"] > 0 and not ctrl_ids & used                      # never saw any set's identity
    assert len(mint.fit_control(cmodel, pool, split, P, device)) == 2


# ----------------------------------------------------------------------------- InsightFace checkpoint
def test_insightface_layout_checkpoint_loads_as_audited_model(tmp_path):
    from mintkit.models.zoo import build_model
    _write_identities(tmp_path / "main", 6, 3, size=32)
    torch.manual_seed(3)
    ref = build_model("iresnet18", num_classes=5, in_channels=3, image_size=32, head="arcface")
    ref.backbone.bn2.running_mean.uniform_()                                   # non-default buffers travel too
    sd = {k: v.clone() for k, v in ref.backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert not any(k.startswith("backbone.") for k in sd) and "layer4.1.conv2.weight" in sd   # InsightFace keys
    path = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)                # DataParallel prefix as published
    P = P_(dataset=f"imagefolder:{tmp_path / 'main'}", image_size=32, checkpoint=str(path), arch="iresnet18",
           n_members=6, n_external=6, n_eval=3, mint_models="mlp", mlp_features="stage1,outcome", control="none")
    pool = mint.load_data(P)
    split = mint.make_split(pool, P)
    model, info = mint.audited_model(pool, split, P, torch.device("cpu"))
    assert info["source"] == str(path) and model.arch == "iresnet18" and model.head.weight.shape[0] == 6
    for k, v in sd.items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    x, _ = pool.batch(torch.arange(4))
    ref.eval()
    assert torch.allclose(model.embed(x), ref.embed(x), atol=1e-5)
    feats = mint.extract_features(model, pool, split, P, torch.device("cpu"))
    assert feats["vec"]["external"]["outcome"].shape == (6, 512)
    # a foreign pickle is refused, a mintkit checkpoint still loads
    from mintkit.core.checkpoints import CheckpointError, save_checkpoint
    torch.save({"state_dict": sd, "evil": object()}, tmp_path / "bad.pth")
    with pytest.raises((CheckpointError, Exception)):
        mint.load_audited(tmp_path / "bad.pth", pool)
    save_checkpoint(tmp_path / "own.pt", ref, {"model": ref.config})
    assert mint.load_audited(tmp_path / "own.pt", pool).config == ref.config


# ------------------------------------------------------------------------------ real MNIST test split
@pytest.mark.slow
def test_mnist_test_split_end_to_end(mnist_root, tmp_path):
    """An overfitted SmallCNN on 600 real MNIST digits: the best MINT feature set is far above chance, a control
    model trained on 300 other digits is not (it never saw the members)."""
    P = P_(dataset="mnist-test", data_root=str(mnist_root), n_members=600, n_external=450, n_eval=150,
           audited_epochs=20, batch_size=32, mint_models="mlp", mlp_features="stage3,stage4,outcome,combination",
           data_sweep="", control="other-data", n_control=300, n_boot=0, device="cpu",
           cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "run"))
    device, run = mint.setup(P)
    pool = mint.load_data(P)
    assert len(pool) == 10000 and pool.image_size == 28
    split = mint.make_split(pool, P)
    model, _ = mint.audited_model(pool, split, P, device)
    audited = mint.audited_quality(model, pool, split, device)
    assert audited["audited_train_accuracy"] > 0.99 and audited["audited_accuracy"] < 0.97   # overfitted
    feats = mint.extract_features(model, pool, split, P, device)
    results = mint.fit_all(feats, P, device)
    cmodel, cinfo = mint.control_model(pool, split, P, device)
    control = mint.fit_control(cmodel, pool, split, P, device)
    loss = mint.loss_baseline(model, pool, split, P, device)
    mint_report.record(run, P, results, {}, control, loss, audited, cinfo)
    print(mint_report.summary(results, control, loss, audited, cinfo, P).round(3).to_string())

    n = 2 * P["n_eval"]                                                        # 150 members + 150 non-members
    best = max(results.values(), key=lambda r: r["metrics"]["mint_accuracy"])
    correct = round(best["metrics"]["mint_accuracy"] * n)
    assert correct >= 186, (best["label"], correct)                            # >= 62%: 4 sigma above chance
    assert best["metrics"]["auc"] >= 0.65
    for r in control.values():                                                 # control: within 3 sigma of chance
        c = round(r["metrics"]["mint_accuracy"] * n)
        assert 124 <= c <= 176, (r["label"], c)
        assert r["metrics"]["auc"] < 0.62
    assert best["metrics"]["mint_accuracy"] - max(r["metrics"]["mint_accuracy"] for r in control.values()) > 0.07
