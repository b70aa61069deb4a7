"""MINT paper module: parameters, MINT models, checkpoint loading, the face pipeline, a real-data run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mintkit.core.data import concat_pools, synthetic_pool
from mintkit.core.face_metrics import identification_accuracy
from mintkit.core.params import ParameterError
from mintkit.core.records import KEY_COLUMNS
from mintkit.methods.mint import MINT_SETS
from mintkit.models.checkpoints import CheckpointError, save_checkpoint
from mintkit.models.classifiers import ChannelStandardize, CNNCombination, CNNMint
from mintkit.models.insightface import is_insightface_state
from mintkit.models.iresnet import is_face_model
from mintkit.models.zoo import build_model
from mintkit.papers import mint

CPU = torch.device("cpu")


def P_(**kw) -> mint.Params:
    return mint.Params.from_values(kw)


# ---------------------------------------------------------------------------------------- parameters
def test_defaults_valid_and_bad_values_name_the_valid_ones():
    P = P_()
    assert P.dataset == "digits" and P.control == "other-data" and P.families == ("mlp", "cnn")
    for key, bad, word in [("arch", "resnet9", "iresnet100"), ("dataset", "digitz", "mnist-test"),
                           ("head", "sphereface", "adaface"), ("control", "random", "untrained"),
                           ("cnn_combination", "sum", "branches"), ("mint_models", "mlp,svm", "mlp, cnn"),
                           ("mlp_features", "stage9", "combination"), ("tables", "Table 10", "Fig. 5"),
                           ("external_root", "imagefolder:/x,ijbc", "imagefolder:<path>"),
                           ("vanilla_table", "Table 4", "Table 2"), ("data_sweep", "0.5,2", "(0, 1]"),
                           ("condition", "{size};{case}", "{size}"), ("attacks", "yeom,mentr", "rmia-online"),
                           ("n_reference", 5, "even")]:
        with pytest.raises(ParameterError, match=word.replace("(", r"\(").replace("]", r"\]")):
            P_(**{key: bad})
    with pytest.raises(ParameterError, match="unknown parameter.*protocol"):
        P_(protocol="paper")                                                   # removed: it only labelled rows
    with pytest.raises(ParameterError, match="margin heads need a face arch"):
        P_(head="arcface")                                                     # smallcnn takes softmax only
    with pytest.raises(ParameterError, match="control_checkpoint"):
        P_(control="untrained", control_checkpoint="x.pt")
    assert P_(head="arcface", checkpoint="backbone.pth").head == "arcface"     # the loaded model's fresh head


def test_condition_size_labels_and_cnn_family():
    assert [mint.size_label(n) for n in (100000, 50000, 1000, 900)] == ["100K", "50K", "1K", "900"]
    assert P_(condition="{size};Baseline Case").condition_label(100000) == "100K;Baseline Case"
    assert P_().condition_label(900) == "900;digits"
    assert P_(condition="{size};{image_size}x{image_size}", image_size=64).condition_label(80000) == "80K;64x64"
    assert P_().cnn_family_label == "CNN MINT"
    assert P_(cnn_params_scale=3.0).cnn_family_label == "CNN MINT x3 params"
    assert P_(cnn_params_scale=0.333).cnn_family_label == "CNN MINT /3 params"
    assert P_(mint_models="mlp").feature_sets("cnn") == () and P_().fits("cnn", "combination")


# --------------------------------------------------------------------------------------- MINT models
def _toy_feats(n: int = 48, seed: int = 0) -> dict:
    """Planted signal: members have activations larger by 1 (one noise sd) in every tap."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"stage1": (4, 6, 6), "stage2": (6, 3, 3), "stage3": (8, 2, 2), "stage4": (8, 2, 2)}
    maps, vec = {}, {}
    for s in MINT_SETS:
        member = s in ("mint_train_members", "eval_members")
        m = {t: (torch.randn(n, *sh, generator=g) + (1.0 if member else 0.0)).half() for t, sh in shapes.items()}
        maps[s] = m
        vec[s] = {t: v.float().amax(dim=(2, 3)) for t, v in m.items()}
        vec[s]["outcome"] = torch.randn(n, 3, generator=g) + (1.0 if member else 0.0)
    return {"vec": vec, "maps": maps}


@pytest.mark.parametrize("family,feature,how", [("mlp", "stage1", "branches"), ("mlp", "combination", "branches"),
                                                 ("mlp", "outcome", "branches"), ("cnn", "stage2", "branches"),
                                                 ("cnn", "combination", "branches"), ("cnn", "combination", "stack")])
def test_mint_models_find_the_planted_signal(family, feature, how):
    """48 + 48 evaluation samples: chance gives AUC 0.5 with sd about 0.06, so AUC >= 0.8 and a calibrated accuracy
    >= 0.7 (about 4 sd above chance) mean the model found the shift (the weakest set, 3 outcome values, allows
    AUC 0.89 at best). Accuracy at 0.5 is not asserted: an uncalibrated CNN may put every score on one side."""
    P = P_(mint_epochs=5, cnn_epochs=5, mint_batch_size=16, n_boot=0, cnn_combination=how, mint_l1=0.01)
    r = mint.fit_one(CPU, _toy_feats(), family, feature, P)
    assert r.scores.shape == (96,) and set(np.unique(r.labels)) == {0, 1}
    assert r.n_train == 96 and r.n_train_members == 48 and r.params > 0
    assert r.label == f"{mint.FAMILIES[family]};{mint.LABELS[feature]}"
    assert r.metrics["auc"] >= 0.8, r.metrics["auc"]
    assert r.metrics["accuracy_calibrated"] >= 0.7, r.metrics["accuracy_calibrated"]
    if family == "cnn" and feature == "combination":
        assert isinstance(r.model, CNNCombination) == (how == "branches")


def test_cnn_mint_standardises_each_channel_with_its_training_maps():
    """The chunked float64 moments equal torch's over N, H, W; after `prepare` each channel of the training maps
    reads mean 0, sd 1 (CNNMint and every branch of CNNCombination); `standardize=False` leaves the maps raw."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(50, 3, 4, 4, generator=g) * torch.tensor([0.1, 1.0, 8.0]).view(1, 3, 1, 1)
         + torch.tensor([5.0, 0.0, -2.0]).view(1, 3, 1, 1)).half()
    norm = ChannelStandardize(3).fit(x, chunk=7)
    ref = x.float().permute(1, 0, 2, 3).reshape(3, -1)
    torch.testing.assert_close(norm.mean.flatten(), ref.mean(1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm.std.flatten(), ref.std(1), rtol=1e-5, atol=1e-5)
    cnn = CNNMint(3, 4, filters=2, dense=2)
    cnn.prepare(x)
    z = cnn.norm(x.float()).permute(1, 0, 2, 3).reshape(3, -1)
    torch.testing.assert_close(z.mean(1), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(1), torch.ones(3), atol=1e-4, rtol=0)
    y = torch.randn(50, 2, 2, 2, generator=g) * 3 + 1
    combo = CNNCombination([(3, 4, 4), (2, 2, 2)], filters=2, dense=2)
    combo.prepare(torch.cat([x.float().flatten(1), y.flatten(1)], 1))
    torch.testing.assert_close(combo.norms[1].mean.flatten(), y.permute(1, 0, 2, 3).reshape(2, -1).mean(1))
    raw = CNNMint(3, 4, filters=2, dense=2, standardize=False)
    raw.prepare(x)
    assert torch.equal(raw.norm(x.float()), x.float())


def test_cnn_mint_has_its_own_learning_rate(monkeypatch):
    """cnn_lr 0 leaves the CNN at mint_lr (the paper's); a set cnn_lr reaches the CNN's fit and not the Vanilla's."""
    seen = []
    real = mint.fitting.run_mint
    monkeypatch.setattr(mint.fitting, "run_mint", lambda *a, **kw: seen.append((a[1], kw["lr"])) or real(*a, **kw))
    P = P_(mint_epochs=1, cnn_epochs=1, n_boot=0)
    assert P.cnn_learning_rate == P.mint_lr == 1e-3
    feats = _toy_feats(n=40)
    for p in (P, P.replace(cnn_lr=1e-4)):
        mint.fit_one(CPU, feats, "cnn", "stage1", p)
        mint.fit_one(CPU, feats, "mlp", "stage1", p)
    assert seen == [("cnn", 1e-3), ("mlp", 1e-3), ("cnn", 1e-4), ("mlp", 1e-3)]


def test_data_fraction_subsamples_both_classes_and_scales_cnn():
    feats = _toy_feats(n=40)
    P = P_(mint_epochs=1, cnn_epochs=1, n_boot=0)
    r = mint.fit_one(CPU, feats, "mlp", "stage1", P, fraction=0.25)
    assert r.n_train == 20 and r.n_train_members == 10
    base = mint.fit_one(CPU, feats, "cnn", "stage1", P)
    big = mint.fit_one(CPU, feats, "cnn", "stage1", P.replace(cnn_params_scale=4.0))
    assert big.label == "CNN MINT x4 params" + ";Conv Layer #1"
    assert 2.0 < big.params / base.params < 5.0   # conv part grows by 2, the dense part by 4


def test_identification_accuracy_separates_identities():
    g = torch.Generator().manual_seed(0)
    ident = np.repeat(np.arange(20), 5)
    tight = torch.randn(20, 16, generator=g)[ident] + 0.1 * torch.randn(100, 16, generator=g)
    assert identification_accuracy(tight.numpy(), ident) == 1.0
    assert identification_accuracy(torch.randn(100, 16, generator=g).numpy(), ident) < 0.25   # chance: 4/99
    assert np.isnan(identification_accuracy(np.eye(3), np.arange(3)))                         # no identity twice


# ------------------------------------------------------------------------------- face data on disk
def _write_identities(root: Path, n_ids: int, per_id: int, size: int = 16, seed: int = 0, prefix: str = "id") -> Path:
    """An imagefolder tree of `n_ids` identities, each a noisy variant of its own random face."""
    rng = np.random.default_rng(seed)
    for i in range(n_ids):
        d = root / f"{prefix}{i:03d}"
        d.mkdir(parents=True)
        base = rng.integers(0, 256, (size, size, 3))
        for j in range(per_id):
            img = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{j}.png")
    return root


def _face_P(tmp_path: Path, **kw) -> mint.Params:
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
    P = _face_P(tmp_path, external_root=f"imagefolder:{tmp_path / 'ext_a'},imagefolder:{tmp_path / 'ext_b'}",
                eval_nonmember_root=f"imagefolder:{tmp_path / 'evalnm'}")
    ctx = mint.setup(P)
    pool = ctx.pool
    assert len(pool) == 16 * 6 + 5 * 3 + 4 * 3 + 5 * 4 and pool.image_size == 16 and pool.in_channels == 3
    split = mint.make_split(ctx, P)
    assert (ctx.run.dir / "split.json").exists()
    src = pool.meta["source"]
    # sets come from the right trees, and no identity straddles two sets
    assert (src[split["members"]] == mint.SOURCE_MAIN).all()
    assert (src[split["external"]] == mint.SOURCE_EXTERNAL).all()
    assert (src[split["eval_nonmembers"]] == mint.SOURCE_EVAL).all()
    assert len(_groups(pool, split, "external")) >= 5
    for a, b in [("members", "external"), ("members", "eval_nonmembers"), ("external", "eval_nonmembers"),
                 ("mint_train_members", "eval_members")]:
        assert not _groups(pool, split, a) & _groups(pool, split, b), (a, b)
    assert set(mint.split_table(ctx, split)["from"]) == {"main pool", "external_root", "eval_nonmember_root"}

    model, info = mint.audited_model(ctx, split, P)
    assert is_face_model(model) and model.arch == "iresnet18"
    audited = mint.audited_quality(ctx, split, model)
    assert set(audited) == {"audited_accuracy", "audited_train_accuracy"}
    assert all(0.0 <= v <= 1.0 for v in audited.values())                    # identification on embeddings
    feats = mint.extract_features(ctx, split, model, P)
    assert feats["vec"]["eval_members"]["outcome"].shape == (10, 512)          # the embedding
    assert feats["maps"]["eval_members"]["stage1"].shape[1] == 64
    results = mint.fit_all(ctx, feats, P)
    sizes = mint.size_sweep(ctx, feats, P)
    assert mint.loss_baseline(ctx, split, model, P) is None                   # no labels for foreign faces
    assert mint.membership_attacks(ctx, split, model, audited, results, P) is None  # nor for the attacks
    cmodel, cinfo = mint.control_model(ctx, split, model, P)
    control = mint.fit_control(ctx, split, cmodel, P)
    assert set(control) == {("mlp", "combination"), ("mlp", "outcome"), ("cnn", "stage1")}
    assert mint.baselines(ctx, split, model, P) == {}
    mint.report.record(ctx.run, results, sizes, control, {}, audited, cinfo, P)
    mint.report.save_scores(ctx.run, results, control, {})
    ctx.run.finish()
    df = pd.read_csv(ctx.run.dir / "results.csv", keep_default_na=False)
    assert {"Table 1", "Table 3", "Table 4", "Table 5", "Table 6", "Fig. 5"} <= set(df["table"])
    assert (df["dataset"] == "Glint360K").all() and (df["model"] == "FR Model 2").all()
    assert set(df["protocol"]) == {"heldout"}
    acc = df[(df.metric == "accuracy") & (df.table == "Table 1")]
    assert set(acc["feature"]) >= {"Vanilla MINT;Conv Layer #1", "Vanilla MINT;Combination",
                                   "Domain control (untrained) Vanilla MINT;Combination"}
    assert set(acc["condition"]) == {"40;Baseline Case"}                       # 20 members + 20 external
    assert set(df[df.table == "Table 6"]["feature"]) >= {mint.MIA_FEATURE, "CNN MINT;Conv Layer #1"}
    assert {"audited_accuracy", "audited_train_accuracy", "n_eval_members", "n_eval_nonmembers"} <= set(df.metric)
    assert not df.duplicated(subset=[*KEY_COLUMNS, "seed"]).any()
    full = df[df.table.isin(["Table 1", "Table 4", "Table 6", "Fig. 5"])]
    joined = mint.report.compare_published(full.assign(condition="100K;Baseline Case"))  # as a 100K run writes it
    assert set(joined["table"]) >= {"Table 1", "Table 4", "Table 6", "Fig. 5"}
    assert joined["reproduced"].notna().all() and (joined["model"] == "FR Model 2").all()
    assert (ctx.run.dir / "scores.npz").exists() and (ctx.run.dir / "status.json").exists()


def test_baseline_attacks_on_a_classifier_beside_mint(tmp_path, capsys):
    """The attacks score MINT's evaluated samples on the audited classifier; Table 6 rows read
    '<attack>;Model Outcome'; their Yeom attack equals the loss baseline; off with n_reference = 0."""
    P = P_(audited_epochs=2, fit_check=False, mint_models="mlp", mlp_features="outcome", data_sweep="", control="none", n_boot=0,
           cache_dir="", attacks="yeom,ye", n_reference=2, out_dir=str(tmp_path / "run"))
    ctx = mint.setup(P)
    split = mint.make_split(ctx, P)
    model, _ = mint.audited_model(ctx, split, P)
    audited = mint.audited_quality(ctx, split, model)
    results = mint.fit_all(ctx, mint.extract_features(ctx, split, model, P), P)
    baselines = mint.baselines(ctx, split, model, P)
    loss = baselines[mint.LOSS_FEATURE]
    mia = mint.membership_attacks(ctx, split, model, audited, results, P)
    yeom = mia.results["heldout"]["yeom"].metrics
    assert yeom["auc"] == pytest.approx(loss.metrics["auc"]) and yeom["n_eval_members"] == P.n_eval
    rows = [r for r in ctx.run.rows if r["table"] == "Table 6" and r["metric"] == "accuracy"]
    assert {r["feature"] for r in rows} == {"Yeom et al.;Model Outcome", "Ye et al.;Model Outcome"}
    assert {r["condition"] for r in rows} == {P.condition_label(results[("mlp", "outcome")].n_train)}
    t = mint.attack_table(results, baselines, mia)
    assert list(t["method"]) == ["Vanilla MINT;Model Outcome", mint.LOSS_FEATURE, "Yeom et al.;Model Outcome",
                                 "Ye et al.;Model Outcome"]
    assert mint.membership_attacks(ctx, split, model, audited, results, P.replace(n_reference=0)) is None
    assert "attacks off" in capsys.readouterr().out


def test_face_pipeline_main_pool_only_other_data_control(tmp_path):
    _write_identities(tmp_path / "main", 30, 4, seed=5)
    P = _face_P(tmp_path, control="other-data", n_members=32, n_external=24, n_eval=12, mint_models="mlp",
                mlp_features="outcome,combination", data_sweep="")
    ctx = mint.setup(P)
    split = mint.make_split(ctx, P)
    for a, b in [("members", "external"), ("members", "eval_nonmembers"), ("external", "eval_nonmembers"),
                 ("mint_train_members", "eval_members")]:
        assert not _groups(ctx.pool, split, a) & _groups(ctx.pool, split, b), (a, b)
    model, _ = mint.audited_model(ctx, split, P)
    cmodel, cinfo = mint.control_model(ctx, split, model, P)
    used = set().union(*(_groups(ctx.pool, split, s) for s in ("members", "external", "eval_nonmembers")))
    ctrl_ids = set(ctx.pool.group.numpy()[cinfo.control_members].tolist())
    assert cinfo.n_control > 0 and not ctrl_ids & used                         # never saw any set's identity
    assert 0.0 <= cinfo.accuracy["audited_accuracy"] <= 1.0                    # on the never-seen identities
    assert len(mint.fit_control(ctx, split, cmodel, P)) == 2


def test_concat_pools_keeps_the_main_pool_and_separates_identities(tmp_path):
    main = synthetic_pool(n=20, num_classes=4, channels=1, size=8, n_groups=5)
    other = synthetic_pool(n=6, num_classes=3, channels=3, size=12, seed=1, n_groups=2)
    pool = concat_pools([main, other])
    assert pool.x.shape == (26, 1, 8, 8) and pool.num_classes == 4
    assert torch.equal(pool.x[:20], main.x) and torch.equal(pool.y[:20], main.y) and (pool.y[20:] == 0).all()
    assert not set(pool.group[:20].tolist()) & set(pool.group[20:].tolist())
    assert pool.meta["part"].tolist() == [0] * 20 + [1] * 6 and pool.meta["parts"] == ["synthetic", "synthetic"]
    assert concat_pools([main]) is main


# ----------------------------------------------------------------------------- InsightFace checkpoint
def test_insightface_layout_checkpoint_loads_as_audited_model(tmp_path):
    _write_identities(tmp_path / "main", 6, 3, size=32)
    torch.manual_seed(3)
    ref = build_model("iresnet18", num_classes=5, in_channels=3, image_size=32, head="arcface")
    ref.backbone.bn2.running_mean.uniform_()                                   # non-default buffers travel too
    sd = {k: v.clone() for k, v in ref.backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert not any(k.startswith("backbone.") for k in sd) and "layer4.1.conv2.weight" in sd   # InsightFace keys
    assert is_insightface_state(sd) and not is_insightface_state(ref.state_dict())
    path = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)                # DataParallel prefix as published
    P = P_(dataset=f"imagefolder:{tmp_path / 'main'}", image_size=32, checkpoint=str(path), arch="iresnet18",
           n_members=6, n_external=6, n_eval=3, mint_models="mlp", mlp_features="stage1,outcome", control="none",
           device="cpu", out_dir=str(tmp_path / "run"))
    ctx = mint.setup(P)
    split = mint.make_split(ctx, P)
    model, info = mint.audited_model(ctx, split, P)
    assert info.source == str(path) and model.arch == "iresnet18" and model.head.weight.shape[0] == 6
    for k, v in sd.items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    x, _ = ctx.pool.batch(torch.arange(4))
    ref.eval()
    assert torch.allclose(model.embed(x), ref.embed(x), atol=1e-5)
    feats = mint.extract_features(ctx, split, model, P)
    assert feats["vec"]["external"]["outcome"].shape == (6, 512)
    none, cinfo = mint.control_model(ctx, split, model, P)
    assert none is None and cinfo.control == "none" and cinfo.accuracy == {}
    # a foreign pickle is refused, a mintkit checkpoint still loads
    torch.save({"state_dict": sd, "evil": object()}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError):
        mint.load_audited(tmp_path / "bad.pth", ctx.pool)
    save_checkpoint(tmp_path / "own.pt", ref, {"model": ref.config})
    assert mint.load_audited(tmp_path / "own.pt", ctx.pool).config == ref.config


# ------------------------------------------------------------------------------ real MNIST test split
@pytest.mark.slow
def test_mnist_test_split_end_to_end(mnist_root, tmp_path):
    """An overfitted SmallCNN on 600 real MNIST digits: the best MINT feature set is far above chance, a control
    model trained on 300 other digits is not (it never saw the members)."""
    P = P_(dataset="mnist-test", data_root=str(mnist_root), n_members=600, n_external=450, n_eval=150,
           audited_epochs=20, batch_size=32, mint_models="mlp", mlp_features="stage3,stage4,outcome,combination",
           data_sweep="", control="other-data", n_control=300, n_boot=0, device="cpu",
           cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "run"))
    ctx = mint.setup(P)
    assert len(ctx.pool) == 10000 and ctx.pool.image_size == 28
    split = mint.make_split(ctx, P)
    model, _ = mint.audited_model(ctx, split, P)
    audited = mint.audited_quality(ctx, split, model)
    assert audited["audited_train_accuracy"] > 0.99 and audited["audited_accuracy"] < 0.97   # overfitted
    feats = mint.extract_features(ctx, split, model, P)
    results = mint.fit_all(ctx, feats, P)
    cmodel, cinfo = mint.control_model(ctx, split, model, P)
    control = mint.fit_control(ctx, split, cmodel, P)
    baselines = mint.baselines(ctx, split, model, P)
    loss = baselines[mint.LOSS_FEATURE]
    mint.report.record(ctx.run, results, {}, control, baselines, audited, cinfo, P)
    print(mint.report.summary(results, control, baselines, audited, cinfo, P).round(3).to_string())

    n = 2 * P.n_eval                                                           # 150 members + 150 non-members
    best = max(results.values(), key=lambda r: r.metrics["accuracy"])
    correct = round(best.metrics["accuracy"] * n)
    assert correct >= 186, (best.label, correct)                            # >= 62%: 4 sigma above chance
    assert best.metrics["auc"] >= 0.65
    for r in control.values():                                                 # control: within 3 sigma of chance
        c = round(r.metrics["accuracy"] * n)
        assert 124 <= c <= 176, (r.label, c)
        assert r.metrics["auc"] < 0.62
    assert best.metrics["accuracy"] - max(r.metrics["accuracy"] for r in control.values()) > 0.07
