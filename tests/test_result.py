"""The one result type: every membership method returns a MembershipResult whose metrics are those of its own
scores and calibration (mintkit.core.result, CONTRIBUTING.md "Adding a fifth method")."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mintkit.attacks import AttackResult, audit_attacks
from mintkit.audit.blind import BlindResult
from mintkit.core.data import load_pool
from mintkit.core.metrics import membership_metrics
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split, build_split
from mintkit.methods.loss import loss_attack, loss_sets
from mintkit.methods.mint import MINT_SETS, MintData, MintResult, run_mint
from mintkit.models.zoo import build_model
from mintkit.papers.amint.evaluation import MplusResult

CPU = torch.device("cpu")


def test_a_result_checks_its_arrays_and_splits_members_from_nonmembers():
    r = MembershipResult("m", "M", [0.9, 0.2, 0.7], [1, 0, 0])
    assert r.members.tolist() == [0.9] and r.nonmembers.tolist() == [0.2, 0.7]
    assert r.calib_scores.shape == (0,) and r.seconds == 0.0
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        MembershipResult("m", "M", [0.9, 0.2, 0.7], [1, 0])
    for cls in (MintResult, AttackResult, BlindResult, MplusResult):
        assert issubclass(cls, MembershipResult)


def test_mint_and_the_loss_attack_measure_their_own_scores_against_their_calibration():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 6, generator=g), (torch.arange(120) % 2)
    x[y == 1] += 0.8
    data = MintData(x[:80], y[:80], x[80:], y[80:])
    r = run_mint(data, "mlp", CPU, epochs=3, seed=0, n_boot=0, label="MINT on x")
    assert isinstance(r, MintResult) and (r.name, r.label) == ("mint", "MINT on x")
    assert len(r.scores) == 40 and r.n_train == 80 and len(r.calib_scores) == 80 and r.params > 0
    again = membership_metrics(r.scores, r.labels, r.calib_scores, r.calib_labels, n_boot=0)
    assert again["accuracy_calibrated"] == r.metrics["accuracy_calibrated"] and again["auc"] == r.metrics["auc"]
    rng = np.random.default_rng(0)
    losses = {s: rng.random(20) + (0.0 if s in ("eval_members", "mint_train_members") else 0.3) for s in MINT_SETS}
    loss = loss_attack(losses, n_boot=0)
    assert (loss.name, loss.label) == ("loss", "Loss attack (Yeom et al.)")
    assert np.array_equal(loss.scores, -np.r_[losses["eval_members"], losses["eval_nonmembers"]])
    assert loss.labels.tolist() == [1] * 20 + [0] * 20 and loss.calib_labels.sum() == 20
    assert loss.metrics["auc"] == membership_metrics(loss.scores, loss.labels, n_boot=0)["auc"]


def test_every_attack_result_is_a_membership_result_under_the_one_entry_point():
    pool = load_pool("digits")
    split = build_split(pool, n_members=300, n_external=300, n_eval=100, seed=0)
    torch.manual_seed(0)
    model = build_model("smallcnn", pool.num_classes, pool.in_channels, pool.image_size).eval()
    audit = audit_attacks(model, pool, split, CPU, attacks=("yeom",), n_boot=0)
    r = audit.only["yeom"]
    assert isinstance(r, AttackResult) and isinstance(r, MembershipResult)
    assert len(r.scores) == 200 and len(r.calib_scores) == len(r.calib_labels) > 0
    assert audit.modes == {"yeom": "offline"} and audit.refs == {"offline": None}
    with pytest.raises(ValueError, match="need reference models"):
        audit_attacks(model, pool, split, CPU, attacks=("watson",))


def test_loss_attack_by_hand_and_its_calibration_never_holds_evaluated_members():
    """The one loss-threshold attack (methods.loss): separable losses, the threshold halfway between the
    calibration sets on -loss; `loss_sets` leaves evaluated members out of the calibration members."""
    L = {"eval_members": np.array([0.01, 0.02, 0.05]), "eval_nonmembers": np.array([1.0, 2.0, 0.9]),
         "mint_train_members": np.array([0.03, 0.04]), "external": np.array([1.5, 0.8])}
    m = loss_attack(L, n_boot=20).metrics
    assert m["accuracy"] == m["accuracy_calibrated"] == m["auc"] == 1.0
    assert m["loss_threshold"] == pytest.approx(0.42) and m["threshold"] == pytest.approx(-0.42)
    split = Split({"members": np.arange(10), "external": np.arange(10, 20), "mint_train_members": np.arange(10),
                   "eval_members": np.arange(6, 10), "eval_nonmembers": np.arange(20, 24)}, "toy", 30, 0,
                  overlap="paper")
    sets = loss_sets(split)
    assert sets["mint_train_members"].tolist() == list(range(6)) and sets["eval_members"].tolist() == [6, 7, 8, 9]
