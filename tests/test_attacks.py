"""mintkit.attacks: score functions against hand-computed values, reference-model data roles, chance on an
untrained model, LiRA/RMIA beating the loss attack at low FPR on a memorising MNIST model, results rows."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from mintkit.attacks import (
    ATTACKS,
    LABELS,
    OFFLINE_ATTACKS,
    add_attack_rows,
    audit_attacks,
    plan_references,
    pipeline,
    results_table,
    stage,
    train_references,
)
from mintkit.attacks.calibrated import watson_scores, ye_scores
from mintkit.attacks.lira import lira_offline, lira_online, pooled_sd
from mintkit.attacks.rmia import marginal, rmia_scores
from mintkit.attacks.shadow import fit_class_thresholds, fit_salem, salem_scores, song_scores
from mintkit.attacks.signals import check_queries, logit_confidence, loss_from_phi, modified_entropy, top_probabilities
from mintkit.core.data import load_pool, synthetic_pool
from mintkit.core.params import ParameterError
from mintkit.core.records import Run
from mintkit.core.splits import Split, build_split
from mintkit.core.train import TrainConfig, accuracy, seed_everything
from mintkit.models.audited import AuditedRecipe, train_audited
from mintkit.methods.loss import loss_baseline, loss_scores
from mintkit.models.zoo import build_model

CPU = torch.device("cpu")
REFERENCE_CSV = Path(__file__).resolve().parents[1] / "mintkit" / "reference" / "amint.csv"


def mlp(arch, num_classes, in_channels, image_size, dropout=0.0, head="softmax", width=256):
    """A one-hidden-layer MLP with train_audited's build signature: fast on CPU, memorises small sets."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, width), nn.ReLU(),
                          nn.Linear(width, num_classes))
    model.config = {"width": width}
    return model


# ------------------------------------------------------------------------------ signals, by hand

def test_signals_by_hand():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 50.0, 0.0]])
    y = np.array([0, 1])
    phi = logit_confidence(logits, y)
    assert phi[0] == pytest.approx(2 - math.log(2))
    assert phi[1] == pytest.approx(50 - math.log(2))
    # loss = softplus(−φ) is the cross-entropy, and stays resolved where p_y rounds to 1 in float32
    assert loss_from_phi(phi)[0] == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 2)))
    assert loss_from_phi(phi)[1] == pytest.approx(2 * math.exp(-50), rel=1e-9)
    p = np.log(np.array([[0.5, 0.25, 0.25]]))
    # −(1 − 0.5)·log 0.5 − 2 · 0.25·log(1 − 0.25)
    assert modified_entropy(p, np.array([0]))[0] == pytest.approx(0.5 * math.log(2) - 0.5 * math.log(0.75))
    # true class 1: −0.75·log 0.25 − 0.5·log 0.5 − 0.25·log 0.75
    assert modified_entropy(p, np.array([1]))[0] == pytest.approx(
        -0.75 * math.log(0.25) - 0.5 * math.log(0.5) - 0.25 * math.log(0.75))
    np.testing.assert_allclose(top_probabilities(np.log([[0.1, 0.6, 0.3]]), 2), [[0.6, 0.3]])
    with pytest.raises(ValueError, match="valid: identity, hflip"):
        check_queries(("identity", "rotate"))


# ------------------------------------------------------------------------------ scores, by hand

def test_yeom_and_song_by_hand():
    np.testing.assert_array_equal(loss_scores([0.1, 2.0]), [-0.1, -2.0])  # the one home of −loss
    # class 0: IN Mentr 0.1, 0.2 / OUT 0.5, 0.6 -> τ0 halfway, 0.35; class 1: too few -> all-class threshold
    mentr = np.array([0.1, 0.2, 0.5, 0.6, 0.3])
    labels = np.array([0, 0, 0, 0, 1])
    is_in = np.array([1, 1, 0, 0, 1], bool)
    tau = fit_class_thresholds(mentr, labels, is_in, num_classes=2, min_per_side=2)
    assert tau[0] == pytest.approx(0.35)
    assert tau[1] == pytest.approx(0.4)  # all classes: IN {0.1, 0.2, 0.3}, OUT {0.5, 0.6} -> (0.3 + 0.5) / 2
    np.testing.assert_allclose(song_scores([0.3, 0.3], [0, 1], tau), [0.05, 0.1])


def test_salem_score_is_the_classifier_logit():
    rng = np.random.default_rng(0)
    top_in = np.sort(rng.dirichlet([8, 1, 1], 200), axis=1)[:, ::-1]
    top_out = np.sort(rng.dirichlet([2, 1, 1], 300), axis=1)[:, ::-1]
    is_in = np.r_[np.ones(200, bool), np.zeros(300, bool)]
    clf = fit_salem(np.r_[top_in, top_out], is_in, hidden=16, seed=0)
    x = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25]])
    s = salem_scores(clf, x)
    np.testing.assert_allclose(1 / (1 + np.exp(-s)), clf.predict_proba(x)[:, 1], rtol=1e-9)
    assert s[0] > 0 > s[1]  # confident posteriors look like the shadow model's training samples
    # by hand: one hidden unit relu(p1 − 0.5), output 2·h − 1
    clf.coefs_ = [np.array([[1.0], [0.0], [0.0]]), np.array([[2.0]])]
    clf.intercepts_ = [np.array([-0.5]), np.array([-1.0])]
    np.testing.assert_allclose(salem_scores(clf, np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3]])), [-0.2, -1.0])


def test_watson_and_ye_by_hand():
    loss = np.array([1.0])
    ref = np.array([[2.0], [4.0], [100.0]])
    out = np.array([[True], [True], [False]])  # the IN model's 100 is ignored
    assert watson_scores(loss, ref, out)[0] == pytest.approx(-(1.0 - 3.0))
    ref = np.array([[0.5], [2.0], [3.0], [0.1]])
    out = np.array([[True], [True], [True], [False]])
    assert ye_scores(loss, ref, out)[0] == pytest.approx(2 / 3)
    # piecewise-linear CDF through (0.5, 1/6), (2, 1/2), (3, 5/6): F(1) = 1/6 + (0.5 / 1.5)·(1/3)
    assert ye_scores(loss, ref, out, interpolate=True)[0] == pytest.approx(1 - (1 / 6 + 1 / 9))


def test_lira_by_hand():
    phi = np.array([2.0])
    ref = np.array([[2.0], [4.0], [0.0], [-2.0]])
    inside = np.array([[True], [True], [False], [False]])
    # per-sample: μ_in = 3, μ_out = −1, σ² = 2 on both sides: −(2−3)²/4 + (2+1)²/4 = 2
    assert lira_online(phi, ref, inside, global_sd=None)[0] == pytest.approx(2.0)
    # global σ_in = 1, σ_out = 2: −½·1 + ½·(9/4) + log 2
    assert lira_online(phi, ref, inside, global_sd=(1.0, 2.0))[0] == pytest.approx(-0.5 + 9 / 8 + math.log(2))
    # offline: OUT φ = 0, −2 -> μ = −1, σ = √2, log Φ(3/√2)
    assert lira_offline(phi, ref, inside, global_sd=None)[0] == pytest.approx(norm.logcdf(3 / math.sqrt(2)))
    assert lira_offline(np.array([-1.0]), ref, inside, global_sd=None)[0] == pytest.approx(math.log(0.5))
    # two queries are averaged
    two = lira_online(np.array([[2.0, 3.0]]), np.repeat(ref[:, :, None], 2, 2), inside, global_sd=None)
    assert two[0] == pytest.approx((2.0 + (-0.0 / 4 + 16 / 4)) / 2)
    # pooled σ: sample 1 OUT {0, 2} (s² = 2, df 1), sample 2 OUT {0, 0, 6} (s² = 12, df 2) -> (2 + 24) / 3
    ref2 = np.array([[0.0, 0.0], [2.0, 0.0], [9.0, 6.0], [9.0, 9.0]])
    ins2 = np.array([[False, False], [False, False], [True, False], [True, True]])
    assert pooled_sd(ref2, ins2)[1] == pytest.approx(math.sqrt(26 / 3))
    with pytest.raises(ValueError, match="IN and OUT"):
        lira_online(phi, ref, np.zeros((4, 1), bool))


def test_lira_center_median_follows_the_reference_code_and_mean_stays_the_default():
    phi = np.array([1.0])
    # OUT φ = 0, 0, 9: mean 3, median 0; σ = √27 about the mean, either centre
    ref = np.array([[0.0], [0.0], [9.0], [5.0], [6.0], [10.0]])
    inside = np.array([[False], [False], [False], [True], [True], [True]])
    sd_out = math.sqrt(27.0)
    assert lira_offline(phi, ref, inside)[0] == pytest.approx(norm.logcdf((1 - 3) / sd_out))
    assert lira_offline(phi, ref, inside, center="mean")[0] == lira_offline(phi, ref, inside)[0]
    assert lira_offline(phi, ref, inside, center="median")[0] == pytest.approx(norm.logcdf((1 - 0) / sd_out))
    # online: IN φ = 5, 6, 10 -> median 6 (mean 7), σ_in² = 7
    got = lira_online(phi, ref, inside, global_sd=None, center="median")[0]
    want = norm.logpdf(1, 6, math.sqrt(7.0)) - norm.logpdf(1, 0, sd_out)
    assert got == pytest.approx(want)
    with pytest.raises(ValueError, match="valid: mean, median"):
        lira_online(phi, ref, inside, center="mode")


def test_rmia_by_hand():
    p_ref = np.array([[0.6], [0.2]])
    inside = np.array([[True], [False]])
    assert marginal(p_ref, inside, online=True)[0, 0] == pytest.approx(0.4)
    assert marginal(p_ref, inside, online=False, a=0.5)[0, 0] == pytest.approx(0.5 * (1.5 * 0.2 + 0.5))
    # x: LR = 0.8 / 0.4 = 2; z: LR = 0.5/0.5 = 1, 0.9/0.3 = 3, 0.1/0.2 = 0.5 -> with γ = 1: 2 of 3 z below
    z_ref = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    z_in = np.array([[True, True, False], [False, False, True]])
    args = ([0.8], p_ref, inside, [0.5, 0.9, 0.1], z_ref, z_in)
    assert rmia_scores(*args, online=True, gamma=1.0)[0] == pytest.approx(2 / 3)
    assert rmia_scores(*args, online=True, gamma=2.5)[0] == pytest.approx(1 / 3)  # only LR(z) ≤ 0.8
    with pytest.raises(ValueError, match="gamma"):
        rmia_scores(*args, online=True, gamma=0.0)


# ------------------------------------------------------------------------------ reference data roles

def _digits_split():
    pool = load_pool("digits")
    return pool, build_split(pool, n_members=600, n_external=300, n_eval=300, seed=0)


def test_offline_references_never_see_an_evaluated_sample_or_a_member():
    _, split = _digits_split()
    plan = plan_references(split, k=4, mode="offline", seed=0)
    evaluated = np.union1d(split["eval_members"], split["eval_nonmembers"])
    for j in range(4):
        train = plan.train_indices(j)
        assert len(train) > 0
        assert not np.isin(train, evaluated).any()
        assert not np.isin(train, split["members"]).any()
        assert not np.isin(train, plan.calibration["nonmembers"]).any()
    # every candidate trains exactly two of the four models
    counts = np.zeros(split.pool_size, int)
    for j in range(4):
        counts[plan.train_indices(j)] += 1
    assert set(counts[plan.candidates]) == {2}


def test_online_references_hold_each_evaluated_sample_in_half():
    _, split = _digits_split()
    plan = plan_references(split, k=6, mode="online", seed=0)
    counts = np.zeros(split.pool_size, int)
    for j in range(6):
        counts[plan.train_indices(j)] += 1
    evaluated = np.union1d(split["eval_members"], split["eval_nonmembers"])
    assert (counts[evaluated] == 3).all()
    # members that are neither evaluated nor calibration never train a reference model
    hidden = np.setdiff1d(split["members"], np.concatenate([evaluated, plan.calibration["members"]]))
    assert (counts[hidden] == 0).all()


def test_a_plan_that_breaks_its_mode_is_refused():
    pool, split = _digits_split()
    plan = plan_references(split, k=2, mode="offline", seed=0)
    leak = split["eval_members"][0]
    cand, inside = np.r_[plan.candidates, leak], np.c_[plan.inside, [True, False]]  # model 0 trains on it
    order = np.argsort(cand)
    plan.candidates, plan.inside = cand[order], inside[:, order]
    with pytest.raises(ValueError, match="outside their allowed data|evaluated"):
        plan.check(split)
    with pytest.raises(ValueError):
        train_references(pool, split, plan, AuditedRecipe("smallcnn", TrainConfig(epochs=1)), CPU, cache_dir=None)


def test_bad_requests_fail_before_training():
    _, split = _digits_split()
    with pytest.raises(ValueError, match="even"):
        plan_references(split, k=3)
    with pytest.raises(ValueError, match="valid: offline, online"):
        plan_references(split, k=2, mode="shadow")
    with pytest.raises(ValueError, match="train_size"):
        plan_references(split, k=2, train_size=10_000)
    pool = load_pool("digits")
    model = mlp("mlp", 10, 1, 8)
    with pytest.raises(ValueError, match="valid: salem"):
        audit_attacks(model, pool, split, CPU, attacks=("loss",))
    with pytest.raises(ValueError, match="need reference models"):
        audit_attacks(model, pool, split, CPU, attacks=("yeom", "lira-offline"))
    with pytest.raises(ValueError, match="valid: offline, online"):
        audit_attacks(model, pool, split, CPU, attacks=("yeom",), mode="shadow")


# ------------------------------------------------------------------------------ models

def test_references_are_cached_and_reused(tmp_path):
    pool = synthetic_pool(n=256)
    split = build_split(pool, n_members=64, n_external=64, n_eval=32, seed=0)
    plan = plan_references(split, k=2, mode="offline", seed=0)
    cfg = TrainConfig(epochs=1, batch_size=32, fit_check=False)
    first = train_references(pool, split, plan, AuditedRecipe("smallcnn", cfg), CPU, cache_dir=tmp_path)
    again = train_references(pool, split, plan, AuditedRecipe("smallcnn", cfg), CPU, cache_dir=tmp_path)
    assert [i.cache_hit for i in first.infos] == [False, False]
    assert [i.cache_hit for i in again.infos] == [True, True]
    assert first.infos[0].cache_key != first.infos[1].cache_key
    for a, b in zip(first.models, again.models):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_every_attack_is_at_chance_on_an_untrained_model():
    pool, split = _digits_split()
    cfg = TrainConfig(epochs=10, batch_size=64)
    seed_everything(0)
    untrained = mlp("mlp", pool.num_classes, pool.in_channels, pool.image_size).eval()
    for mode, attacks in (("offline", OFFLINE_ATTACKS), ("online", ATTACKS)):
        audit = audit_attacks(untrained, pool, split, CPU, AuditedRecipe("mlp", cfg, build_fn=mlp), seed=0, k=4,
                              mode=mode, cache_dir=None, n_boot=0)
        results, data, refs = audit.only, audit.data[(pipeline.SPLIT, mode)], audit.refs[mode]
        assert set(audit.modes.values()) == {mode}
        assert set(results) == set(attacks)
        assert accuracy(refs.models[0], pool, split["eval_nonmembers"], CPU) > 0.5  # the references did learn (chance 0.1)
        evaluated = np.r_[split["eval_members"], split["eval_nonmembers"]]
        assert not np.isin(data.indices[data.part("unevaluated")], evaluated).any()
        print(mode, {name: round(r.metrics["auc"], 3) for name, r in results.items()})
        for name, r in results.items():
            assert r.metrics["n_eval_members"] == r.metrics["n_eval_nonmembers"] == 300
            assert abs(r.metrics["auc"] - 0.5) < 0.08, (mode, name, r.metrics["auc"])


def test_lira_and_rmia_beat_the_loss_attack_at_low_fpr(mnist_root):
    """A one-hidden-layer MLP memorises 500 images of the real MNIST test split (30 epochs, train accuracy 1.0,
    held-out 0.86); 16 online reference models, 300 + 300 evaluated. Measured (CPU, seed 0): TPR at 1% FPR
    Yeom (loss) 2.3%, LiRA online 16.7%, RMIA online 18.3%, LiRA offline 14.7%, RMIA offline 16.7%
    (the offline attacks read each sample's 8 OUT models only)."""
    pool = load_pool("mnist-test", mnist_root)
    split = build_split(pool, n_members=500, n_external=500, n_eval=300, seed=0)
    cfg = TrainConfig(epochs=30, batch_size=64)
    recipe = AuditedRecipe("mlp", cfg, build_fn=mlp)
    model, _ = train_audited(pool, split, recipe, CPU, seed=0, cache_dir=None, progress=False)
    assert accuracy(model, pool, split["members"], CPU) == 1.0
    results = audit_attacks(model, pool, split, CPU, recipe, seed=0, k=16, mode="online", cache_dir=None, n_boot=0,
                            attacks=("yeom", "lira-online", "rmia-online", "lira-offline", "rmia-offline")).only
    tpr = {n: r.metrics["tpr_at_1pct_fpr"] for n, r in results.items()}
    print("TPR at 1% FPR:", {n: round(v, 3) for n, v in tpr.items()})
    for name in ("lira-online", "rmia-online", "lira-offline", "rmia-offline"):
        assert tpr[name] > tpr["yeom"] + 0.05, (name, tpr)


# ------------------------------------------------------------------------------ rows and table

def test_rows_use_the_published_table3_labels(tmp_path):
    published = set()
    with open(REFERENCE_CSV) as f:
        for row in csv.DictReader(f):
            if row["paper"] == "amint" and row["table"] == "Table 3" and row["condition"].endswith("et al."):
                published.add(row["condition"])
    assert {LABELS[a] for a in ("salem", "yeom", "song", "ye", "watson")} == published
    pool, split = _digits_split()
    model = mlp("mlp", 10, 1, 8).eval()
    results = audit_attacks(model, pool, split, CPU, attacks=("yeom",), n_boot=20).only
    run = Run(tmp_path / "run", "amint", {}, seed=0)
    add_attack_rows(run, results, {"audited_accuracy": 0.1}, table="Table 3", dataset="digits", model="mlp")
    with open(tmp_path / "run" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    auc = [r for r in rows if r["metric"] == "auc"]
    assert len(auc) == 1 and auc[0]["condition"] == "Yeom et al." and auc[0]["table"] == "Table 3"
    assert {"auc_ci_low", "tpr_at_1pct_fpr", "time_attack", "audited_accuracy"} <= {r["metric"] for r in rows}
    assert "attack_yeom_scores" in np.load(tmp_path / "run" / "scores.npz")
    table = results_table(results)
    assert list(table["attack"]) == ["Yeom et al."] and "[" in table.loc[0, "AUC"]
    with pytest.raises(ValueError, match="set by each attack"):
        add_attack_rows(run, results, condition="x")


# ------------------------------------------------------------------------------ the notebooks' stage

def test_notebook_parameters_name_the_valid_values():
    assert stage.attack_names("all") == OFFLINE_ATTACKS
    assert stage.attack_names(" yeom, lira-online,yeom ") == ("yeom", "lira-online")
    stage.check_attack_params("all", 4)
    stage.check_attack_params("yeom", 0)
    for attacks, k, match in (("lira", 4, "valid: all, or a comma list of salem"), ("", 4, "empty"),
                              ("all,yeom", 4, "stands alone"), ("all", 3, "even"), ("all", -2, "even"),
                              ("lira-online", 2, ">= 4")):
        with pytest.raises(ParameterError, match=match):
            stage.check_attack_params(attacks, k)


def test_views_of_one_split_share_one_plan_per_mode(tmp_path, monkeypatch):
    """Two views of one split (evaluated members outside / inside the MINT-training members, as aMINT's two
    protocols): references are trained once per mode, planned on both views' evaluated samples, and every
    view is scored with them; the Yeom attack equals the kit's loss baseline on the same samples."""
    pool = load_pool("digits")
    a = build_split(pool, n_members=400, n_external=300, n_eval=150, seed=0)
    inside = np.random.default_rng(0).choice(a["mint_train_members"], 80, replace=False)
    b = Split(dict(a.sets) | {"eval_members": inside}, a.pool, a.pool_size, a.seed, overlap="paper")
    trainings = []
    real = pipeline.train_references
    monkeypatch.setattr(pipeline, "train_references", lambda *x, **kw: trainings.append(x[2].mode) or real(*x, **kw))
    seed_everything(0)
    model = mlp("mlp", pool.num_classes, pool.in_channels, pool.image_size).eval()
    names = ("yeom", "watson", "lira-online")
    audit = audit_attacks(model, pool, {"a": a, "b": b}, CPU,
                          AuditedRecipe("mlp", TrainConfig(epochs=3, batch_size=64), build_fn=mlp), names, k=4,
                          cache_dir=None, n_boot=50)
    assert trainings == ["offline", "online"]
    evaluated = np.concatenate([a["eval_members"], b["eval_members"], a["eval_nonmembers"]])
    assert not audit.refs["offline"].plan.membership(evaluated).any()
    assert (audit.refs["online"].plan.membership(evaluated).sum(0) == 2).all()
    for view, split in (("a", a), ("b", b)):
        res = audit.results[view]
        assert tuple(res) == names and res["lira-online"].label == "LiRA (online)"
        assert res["watson"].label == "Watson et al." and res["watson"].reference_mode == "offline"
        assert res["yeom"].metrics["n_eval_members"] == len(split["eval_members"])
        sig = audit.signal_seconds[(view, "offline")]
        assert audit.adds(view, "yeom") == pytest.approx(res["yeom"].seconds + sig["target_signals"])
        assert audit.adds(view, "watson") > audit.refs["offline"].seconds
    base = loss_baseline(model, pool, a, CPU, n_boot=50)  # the same scores and resamples: the same AUC interval
    yeom = audit.results["a"]["yeom"].metrics
    for key in ("auc", "auc_ci_low", "auc_ci_high", "tpr_at_1pct_fpr"):
        assert yeom[key] == pytest.approx(base.metrics[key], abs=1e-9), key
    curves = audit.curves("b", ("lira-online", "salem"))
    assert list(curves) == ["LiRA (online)"] and len(curves["LiRA (online)"].scores) == 80 + 150
    run = Run(tmp_path / "run", "mint", {}, seed=0)
    add_attack_rows(run, audit.results["b"], label_column="feature", label_suffix=";Model Outcome",
                    scores_prefix="attack_b", table="Table 6")
    with open(tmp_path / "run" / "results.csv") as f:
        features = {r["feature"] for r in csv.DictReader(f)}
    assert features == {"Yeom et al.;Model Outcome", "Watson et al.;Model Outcome", "LiRA (online);Model Outcome"}
    assert "attack_b_lira_online_scores" in np.load(tmp_path / "run" / "scores.npz")
    with pytest.raises(ValueError, match="views must come from one split"):
        pipeline.merged_split({"a": a, "c": build_split(pool, n_members=400, n_external=300, n_eval=150, seed=1)})


def test_face_models_and_other_class_counts_are_skipped():
    pool = load_pool("digits")
    assert stage.skip_reason(build_model("smallcnn", 10, 1, 8), pool) is None
    assert "10" in stage.skip_reason(build_model("smallcnn", 7, 1, 8), pool)
    assert "face model" in stage.skip_reason(build_model("iresnet18", 10, 1, 8), pool)
