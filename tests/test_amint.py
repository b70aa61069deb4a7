"""aMINT: M+ for every arch × setup, gradients of both losses, protocols, a real-MNIST run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mintkit.papers import amint
from mintkit.papers.amint.mplus import MintPlus, balanced_bce, build_mplus, train_mplus
from mintkit.core.data import synthetic_pool
from mintkit.models.zoo import build_model
from mintkit.core.params import check

ARCHS = ("smallcnn", "mobilenet", "resnet50", "resnet101", "densenet121", "xception", "vit")
SETUPS = ("entry", "middle", "output")



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


def test_unknown_setup_lists_valid():
    with pytest.raises(ValueError, match="entry"):
        MintPlus(build_model("smallcnn", 4, 1, 8), "nowhere", 8, 1)


def test_protocol_member_sets(digits_pool):
    """paper: every evaluated member trained the MINT head; heldout: none did (they trained the task)."""
    P = check({"n_members": 300, "n_external": 300, "n_eval": 100}, amint.PARAMS)
    for protocol, expected in (("paper", 100), ("heldout", 0)):
        split = amint.make_split(digits_pool, P, protocol)
        sets = amint.training_sets(split)
        in_mint = np.isin(split["eval_members"], sets["mint_members"]).sum()
        assert in_mint == expected
        assert np.isin(split["eval_members"], sets["task"]).all()
        assert not np.isin(split["eval_nonmembers"], np.r_[sets["task"], split["external"]]).any()
        assert not np.isin(sets["val_members"], split["eval_members"]).any()
        assert not np.isin(sets["val_nonmembers"], sets["external"]).any()


@pytest.mark.slow
def test_mnist_test_split_active_and_passive(mnist_root, tmp_path):
    """Real MNIST test split (no official test split: non-members from the pool), both protocols.

    Downscaled to 14x14 to fit the time budget on 2 shared CPU cores. The held-out protocol is run and
    reported but not asserted above chance: at this scale it is not (see the aMINT notebook / report)."""
    P = check({"dataset": "mnist-test", "data_root": str(mnist_root), "n_members": 300, "n_external": 300,
               "n_eval": 100, "image_size": 14, "audited_epochs": 20, "mint_epochs": 20, "mint_width": 32, "n_boot": 200,
               "cache_dir": "", "out_dir": str(tmp_path / "run")}, amint.PARAMS)
    run, pool, device = amint.setup(P)
    splits = amint.make_splits(pool, P, run)
    trained = {(p, "Active"): amint.active_mint(pool, s, P, device) for p, s in splits.items()}
    res = amint.evaluate_all(run, pool, splits, trained, P, device)
    for (p, _), ev in res.items():
        m = ev["metrics"]
        print(p, {k: round(m[k], 3) for k in ("mint_accuracy", "mint_accuracy_ci_low", "auc")}, ev["audited"])
        assert m["n_eval_members"] == m["n_eval_nonmembers"] == 100
        assert ev["audited"]["audited_accuracy"] > 0.8
    paper = res[("paper", "Active")]["metrics"]
    assert paper["mint_accuracy_ci_low"] > 0.5, "active MINT at chance under the paper protocol"
