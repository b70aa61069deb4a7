"""aMINT: M+ for every arch × setup, gradients of both losses, the one-split protocols, stopping, a real-MNIST run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mintkit.papers.amint as amint
from mintkit.core.data import synthetic_pool
from mintkit.core.params import ParameterError
from mintkit.core.splits import Split, SplitError
from mintkit.methods import mplus
from mintkit.models.audited import audited_accuracy
from mintkit.methods.loss import loss_baseline
from mintkit.methods.mplus import MintPlus, balanced_bce, build_mplus, train_mplus
from mintkit.models.zoo import SETUPS, build_model

ARCHS = ("smallcnn", "mobilenet", "resnet50", "resnet101", "densenet121", "xception", "vit")
CPU = torch.device("cpu")


def _first_conv(model: torch.nn.Module) -> torch.nn.Parameter:
    """An early shared parameter: the first convolution's weight (ViT: its patch embedding)."""
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).weight


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("setup", SETUPS)
def test_mplus_builds_steps_and_both_losses_reach_shared_layers(arch, setup):
    torch.manual_seed(0)
    m = build_mplus(build_model(arch, 4, 1, 8), setup, 8, 1, width=8, n_convs=1, dropout=0.4)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    m.train()
    logits, mint = m(x)
    assert logits.shape == (4, 4) and mint.shape == (4,)
    assert m.mint_logit(x).shape == (4,)
    early, head = _first_conv(m.audited), next(m.mint.parameters())
    g_task = torch.autograd.grad(F.cross_entropy(logits, y), [early], retain_graph=True)[0]
    g_mint, g_head = torch.autograd.grad(balanced_bce(mint[:2], mint[2:]), [early, head])
    assert g_task.abs().sum() > 0, "task loss does not reach the shared layers"
    assert g_mint.abs().sum() > 0, "MINT loss does not reach the shared layers"
    assert g_head.abs().sum() > 0
    pool = synthetic_pool(n=24, num_classes=4, size=8)
    sets = {"task": np.arange(8), "mint_members": np.arange(8), "external": np.arange(8, 16),
            "val_members": np.arange(4), "val_nonmembers": np.arange(16, 20)}
    before = _first_conv(m.audited).detach().clone()
    h = train_mplus(m, pool, sets, torch.device("cpu"), epochs=1, batch_size=4, max_steps=1)
    assert h["steps"] == 1 and np.isfinite(h["loss"][0])
    assert not torch.equal(before, _first_conv(m.audited).detach()), "joint step did not move the shared layers"


def test_vit_branch_is_fully_connected_and_conv_branch_is_3x3():
    vit = build_mplus(build_model("vit", 4, 1, 8), "entry", 8, 1, width=8)
    assert all(b.kind == "tokens" for b in vit.mint.branches)
    assert not any(isinstance(l, torch.nn.Conv2d) for l in vit.mint.modules())
    cnn = build_mplus(build_model("smallcnn", 4, 1, 8), "entry", 8, 1, width=256)
    convs = [l for l in cnn.mint.modules() if isinstance(l, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 2 and all(c.stride == (1, 1) for c in convs)
    assert cnn.mint.fc[0].in_features == 512  # paper E1: global pooling + concat -> 512
    assert isinstance(cnn.mint.fc[2], torch.nn.Dropout) and cnn.mint.fc[2].p == 0.4


def test_passive_keeps_audited_frozen():
    torch.manual_seed(0)
    m = build_mplus(build_model("smallcnn", 4, 1, 8), "entry", 8, 1, width=8)
    pool = synthetic_pool(n=24, num_classes=4, size=8)
    sets = {"task": np.arange(8), "mint_members": np.arange(8), "external": np.arange(8, 16),
            "val_members": np.arange(4), "val_nonmembers": np.arange(16, 20)}
    before = {k: v.clone() for k, v in m.audited.state_dict().items()}
    train_mplus(m, pool, sets, torch.device("cpu"), mode="passive", epochs=2, batch_size=4)
    assert all(torch.equal(before[k], v) for k, v in m.audited.state_dict().items())


def test_the_head_learns_at_its_own_rate_and_without_it_nothing_changes():
    """head_lr gives the MINT head its own Adam rate (docs/amint.md, "Why the Output head does not train"); left
    unset, one step is the same as before, bit for bit; a head_lr of 0 leaves the head where it started."""
    pool = synthetic_pool(n=24, num_classes=4, size=8)
    sets = {"task": np.arange(8), "mint_members": np.arange(8), "external": np.arange(8, 16),
            "val_members": np.arange(4), "val_nonmembers": np.arange(16, 20)}

    def one_step(**kw):
        torch.manual_seed(0)
        m = build_mplus(build_model("smallcnn", 4, 1, 8), "output", 8, 1, width=8)
        start = {k: v.clone() for k, v in m.state_dict().items()}
        train_mplus(m, pool, sets, CPU, epochs=1, batch_size=4, max_steps=1, lr=1e-2, **kw)
        return start, m.state_dict()

    s0, plain = one_step()
    _, same = one_step(head_lr=1e-2)
    assert all(torch.equal(plain[k], same[k]) for k in plain)
    _, tiny = one_step(head_lr=1e-12)
    head = [k for k in plain if k.startswith("mint.") and k.endswith("weight")]
    body = [k for k in plain if k.startswith("audited.") and k.endswith("conv.weight")]
    assert head and all(torch.allclose(tiny[k], s0[k], atol=1e-9) for k in head)
    assert all(torch.equal(tiny[k], plain[k]) for k in body)


def test_a_probe_reads_the_model_after_every_epoch():
    """train_mplus(probe=...) adds the probe's values to the history, one per epoch run, with the model in eval mode
    (scripts/amint_head_diagnosis.py reads the head this way)."""
    pool = synthetic_pool(n=24, num_classes=4, size=8)
    sets = {"task": np.arange(8), "mint_members": np.arange(8), "external": np.arange(8, 16),
            "val_members": np.arange(4), "val_nonmembers": np.arange(16, 20)}
    torch.manual_seed(0)
    m = build_mplus(build_model("smallcnn", 4, 1, 8), "output", 8, 1, width=8)
    seen = []
    h = train_mplus(m, pool, sets, CPU, epochs=3, batch_size=4, patience=0,
                    probe=lambda model: seen.append(model.training) or {"calls": len(seen)})
    assert h["calls"] == [1, 2, 3] and seen == [False, False, False] and h["epochs_run"] == 3


def test_unknown_setup_lists_valid():
    with pytest.raises(ValueError, match="entry"):
        MintPlus(build_model("smallcnn", 4, 1, 8), "nowhere", 8, 1)


# ------------------------------------------------------------------------------ early stopping
TINY_SETS = {"task": np.arange(8), "mint_members": np.arange(8), "external": np.arange(8, 16),
             "val_members": np.arange(4), "val_nonmembers": np.arange(16, 20)}


def _train_with_rising_validation(monkeypatch, epochs: int, patience: int):
    """Train a tiny M+ while the validation objective gets worse every epoch (epoch 1 is the best on it)."""
    epoch = iter(range(100))

    def rising(*_a, **_k):
        i = next(epoch)
        return {"task_loss": 1.0 + i, "task_acc": 0.5, "mint_loss": 1.0 + i, "mint_acc": 0.5}

    monkeypatch.setattr(mplus, "validation_losses", rising)
    torch.manual_seed(0)
    m = build_mplus(build_model("smallcnn", 4, 1, 8), "entry", 8, 1, width=8)
    h = train_mplus(m, synthetic_pool(n=24, num_classes=4, size=8), TINY_SETS, CPU, epochs=epochs, batch_size=4,
                    patience=patience)
    return {k: v.clone() for k, v in m.state_dict().items()}, h


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stopping_off_keeps_last_epoch(monkeypatch):
    first, h1 = _train_with_rising_validation(monkeypatch, epochs=1, patience=0)
    last, h3 = _train_with_rising_validation(monkeypatch, epochs=3, patience=0)
    assert h3["epochs_run"] == 3 and h3["best_val_epoch"] == 1
    assert h3["kept_epoch"] == 3 and not _same(first, last), "patience=0 restored the best-validation epoch"
    stopped, hs = _train_with_rising_validation(monkeypatch, epochs=3, patience=1)
    assert hs["epochs_run"] == 2 and hs["kept_epoch"] == 1 and _same(stopped, first), \
        "early stopping must restore the best-validation epoch"


# ------------------------------------------------------------------------------ one split, two protocols
def test_one_split_records_both_member_sets(tmp_path):
    P = amint.Params.from_values({"out_dir": str(tmp_path / "both")})
    ctx = amint.setup(P)
    split = amint.make_split(ctx, P)
    views = amint.protocol_views(split)
    sets = amint.training_sets(split)
    paper_eval, heldout = views["paper"]["eval_members"], views["heldout"]["eval_members"]
    assert len(paper_eval) == len(heldout) == 100 and len(sets["val_members"]) == len(sets["val_nonmembers"]) == 45
    assert np.isin(paper_eval, sets["mint_members"]).all()
    assert not np.isin(heldout, sets["mint_members"]).any()
    assert np.array_equal(np.union1d(heldout, sets["mint_members"]), split["members"])
    assert np.isin(sets["val_members"], sets["mint_members"]).all()
    assert not np.isin(sets["val_members"], np.r_[paper_eval, heldout]).any()
    assert not np.isin(sets["val_nonmembers"], np.r_[sets["external"], split["eval_nonmembers"]]).any()
    assert views["heldout"].overlap == "none" and views["paper"].overlap == "paper"
    saved = Split.load(tmp_path / "both")
    assert saved.meta["eval_members_heldout"] == heldout.tolist()
    assert Split.load(tmp_path / "both" / "split_heldout.json").overlap == "none"
    # 'heldout' alone trains on the same sets; 'paper' alone puts all of D into the MINT loss, as the paper
    alone = amint.make_split(amint.setup(P.replace(protocol="heldout", out_dir=str(tmp_path / "h"))), P)
    np.testing.assert_array_equal(alone["mint_train_members"], split["mint_train_members"])
    Pp = P.replace(protocol="paper", out_dir=str(tmp_path / "p"))
    paper_only = amint.make_split(amint.setup(Pp), Pp)
    np.testing.assert_array_equal(paper_only["mint_train_members"], paper_only["members"])
    assert list(amint.protocol_views(paper_only)) == ["paper"]
    # broken splits are caught
    for bad in ({"eval_members_heldout": paper_eval.tolist()}, {"val_members": paper_eval[:45].tolist()},
                {"val_nonmembers": split["eval_nonmembers"][:45].tolist()}):
        broken = Split(split.sets, split.pool, split.pool_size, split.seed, "paper", split.meta | bad)
        with pytest.raises(SplitError):
            amint.check_split(broken)


def test_one_trained_model_yields_both_protocols(tmp_path, monkeypatch):
    P = amint.Params.from_values({"n_members": 120, "n_external": 120, "n_eval": 30, "audited_epochs": 1, "fit_check": False,
                                  "mint_width": 8, "n_boot": 0, "cache_dir": "", "out_dir": str(tmp_path / "run")})
    ctx = amint.setup(P)
    split = amint.make_split(ctx, P)
    trainings = []
    real = amint.training.train_mplus
    monkeypatch.setattr(amint.training, "train_mplus", lambda *a, **k: trainings.append(k["mode"]) or real(*a, **k))
    active = amint.active_mint(ctx, split, P, max_steps=2)
    results = amint.evaluate_all(ctx, split, {"Active": active}, P)
    assert trainings == ["active"] and set(results) == {("paper", "Active"), ("heldout", "Active")}
    for protocol, view in amint.protocol_views(split).items():
        ev = results[(protocol, "Active")]
        assert ev.metrics["n_eval_members"] == ev.metrics["n_eval_nonmembers"] == 30
        np.testing.assert_array_equal(ev.scores[:30],
                                      amint.mint_scores(active[0], ctx.pool, view["eval_members"], ctx.device))
    np.testing.assert_array_equal(results[("paper", "Active")].scores[30:],
                                  results[("heldout", "Active")].scores[30:])
    # the one audited pass gives what the per-set helpers give
    for protocol, view in amint.protocol_views(split).items():
        ev = results[(protocol, "Active")]
        ref = audited_accuracy(active[0].audited, ctx.pool, view, ctx.device)
        assert ev.audited == pytest.approx(ref, abs=1e-6)
        base = loss_baseline(active[0].audited, ctx.pool, view, ctx.device)
        np.testing.assert_allclose(ev.loss.scores, base.scores, rtol=1e-5, atol=1e-6)
    rows = ctx.run.rows
    got = {(r["protocol"], r["table"]) for r in rows if r["metric"] == "accuracy"}
    assert {("paper", "Table 1"), ("heldout", "Table 1")} <= got


def test_attacks_join_table3_beside_passive_and_active(tmp_path):
    """The attacks run on the passive audited model under both protocols; their rows carry Table 3's published
    labels, once per protocol; "Yeom et al." is the evaluation's loss attack (one home), never run twice."""
    P = amint.Params.from_values({"n_members": 120, "n_external": 120, "n_eval": 30, "audited_epochs": 1, "fit_check": False,
                                  "mint_width": 8, "n_boot": 0, "cache_dir": "", "attacks": "salem,yeom,watson",
                                  "n_reference": 2, "out_dir": str(tmp_path / "run")})
    ctx = amint.setup(P)
    split = amint.make_split(ctx, P)
    trained = {"Active": amint.active_mint(ctx, split, P, max_steps=2),
               "Passive": amint.passive_mint(ctx, split, P, max_steps=2)}
    results = amint.evaluate_all(ctx, split, trained, P)
    mia = amint.membership_attacks(ctx, split, trained["Passive"], results, P)
    for protocol, view in amint.protocol_views(split).items():
        res = mia.results[protocol]
        assert [r.label for r in res.values()] == ["Salem et al.", "Watson et al."]  # yeom: the loss row
        assert all(r.metrics["n_eval_members"] == r.metrics["n_eval_nonmembers"] == 30 for r in res.values())
        assert np.array_equal(res["salem"].labels, results[(protocol, "Passive")].loss.labels)
        rows = [r for r in ctx.run.rows if r["table"] == "Table 3" and r["protocol"] == protocol
                and r["metric"] == "accuracy"]
        conds = [r["condition"] for r in rows]
        assert sorted(conds) == sorted(["Salem et al.", "Yeom et al.", "Watson et al.", "Passive", "Active",
                                        "Yeom et al. (on M+)"])
        # M+ is trained per setup, so its loss row says which; the passive model's rows need no setup
        assert {r["setup"] for r in rows if r["condition"] == "Yeom et al. (on M+)"} == {P.setup.capitalize()}
    table3 = amint.paper_tables(ctx.run, P, protocol="heldout")["Table 3"]
    assert table3.loc["Salem et al.", "CIFAR-10"] == "0.61" and table3.loc["Salem et al.", "digits"].startswith("- | ")
    t = amint.attack_table(results, mia)
    assert list(t["method"][:5]) == ["Passive MINT", "Active MINT (aMINT)", "Yeom et al.", "Salem et al.",
                                     "Watson et al."]
    assert list(t["protocol"].unique()) == ["paper", "heldout"] and len(t) == 10
    # n_reference = 0: no attacks, and the evaluation's loss row is Table 3's "Yeom et al." again
    P0 = P.replace(n_reference=0, out_dir=str(tmp_path / "off"))
    ctx0 = amint.setup(P0)
    results0 = amint.evaluate_all(ctx0, split, {"Passive": trained["Passive"]}, P0)
    assert amint.membership_attacks(ctx0, split, trained["Passive"], results0, P0) is None
    assert {r["condition"] for r in ctx0.run.rows if r["table"] == "Table 3"} == {"Passive", "Yeom et al."}
    assert len(amint.attack_table(results0, None)) == 4  # Passive MINT and Yeom et al., per protocol


# ------------------------------------------------------------------------------ parameters and presets
def test_params_choices_and_sizes():
    P = amint.Params()
    assert P.protocols == ("paper", "heldout") and P.n_val == 45 and P.holds_out_members
    assert amint.Params(protocol="paper").protocols == ("paper",) and not amint.Params(protocol="paper").holds_out_members
    for bad in ({"arch": "lenet"}, {"setup": "combined"}, {"protocol": "all"}, {"mint_pool": "sum"},
                {"val_fraction": 0.0}, {"patience": -1}, {"attacks": "lira"}, {"n_reference": 3}):
        with pytest.raises(ParameterError, match="valid|must|even"):
            amint.Params.from_values(bad)
    with pytest.raises(ParameterError, match="too small for n_eval"):  # 200 - 100 held out < 100 + 45
        amint.Params.from_values({"n_members": 200, "n_eval": 100})
    assert amint.Params.from_values({"n_members": 200, "n_eval": 100, "protocol": "paper"}).n_eval == 100


@pytest.mark.slow
def test_mnist_test_split_active_one_model(mnist_root, tmp_path):
    """Real MNIST test split (no official test split: non-members from the pool), one M+ scored under both
    protocols. Downscaled to 14x14 to fit the time budget on 2 shared CPU cores. The held-out protocol is
    reported, not asserted above chance: at this scale it is not (docs/amint.md, "What the quick runs show")."""
    P = amint.Params.from_values({
        "dataset": "mnist-test", "data_root": str(mnist_root), "n_members": 300, "n_external": 300, "n_eval": 100,
        "image_size": 14, "audited_epochs": 20, "mint_epochs": 20, "mint_width": 32, "n_boot": 200, "cache_dir": "",
        "device": "cpu", "out_dir": str(tmp_path / "run")})
    ctx = amint.setup(P)
    split = amint.make_split(ctx, P)
    active = amint.active_mint(ctx, split, P)
    res = amint.evaluate_all(ctx, split, {"Active": active}, P)
    for (p, _), ev in res.items():
        m = ev.metrics
        print(p, {k: round(m[k], 3) for k in ("accuracy", "accuracy_ci_low", "auc")}, ev.audited,
              "kept epoch", active[1]["kept_epoch"], "of", active[1]["epochs_run"])
        assert m["n_eval_members"] == m["n_eval_nonmembers"] == 100
        assert ev.audited["audited_accuracy"] > 0.8
    paper = res[("paper", "Active")].metrics
    assert paper["accuracy_ci_low"] > 0.5, "active MINT at chance under the paper protocol"
