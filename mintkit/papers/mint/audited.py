"""The audited model (trained, cached or loaded), its quality, the domain-control model and the baselines.

docs/mint.md, "Audited model", "Audited quality", "Domain control" and "Baselines".
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from torch import nn

from mintkit.core.data import Pool
from mintkit.core.null import null_training
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split, SplitError
from mintkit.core.train import seed_everything
from mintkit.models import audited as shared
from mintkit.methods import loss
from mintkit.models.audited import AuditedInfo, AuditedRecipe, train_audited
from mintkit.models.checkpoints import load_checkpoint, load_model
from mintkit.models.insightface import is_insightface_state, load_insightface_backbone
from mintkit.models.iresnet import is_face_model
from mintkit.models.zoo import build_model
from mintkit.papers.common import Context
from mintkit.papers.mint.data import SOURCE_MAIN, labelled_never_seen, sources, unused
from mintkit.papers.mint.params import LOSS_FEATURE, Params

MIN_CONTROL_MEMBERS = 20


def load_audited(path: str | Path, pool: Pool | None = None, head: str = "softmax") -> nn.Module:
    """A user's model from `path`, always read with ``torch.load(weights_only=True)``: a mintkit checkpoint
    (its config inside), or an InsightFace ``arcface_torch`` IResNet backbone (r18/r50/r100, read off the keys)
    wrapped in a FaceModel with a fresh `head` over the pool's identities (MINT never uses the head)."""
    if is_insightface_state(load_checkpoint(path)["state_dict"]):
        n = pool.num_classes if pool is not None else 2
        size = pool.image_size if pool is not None else None
        return load_insightface_backbone(path, num_classes=n, head=head, image_size=size)
    return load_model(path)


def audited_model(ctx: Context, split: Split, P: Params) -> tuple[nn.Module, AuditedInfo]:
    """(model in eval mode, info): `P.checkpoint` loaded, else trained on the members (cached by key).

    info (`mintkit.models.audited.AuditedInfo`): seconds (wall time), cache_hit, and the training history when
    trained. ``P.null_model`` (mintkit.core.null): trained on stand-ins for the members, or not at all.
    """
    if P.checkpoint:
        model = load_audited(P.checkpoint, ctx.pool, P.head).to(ctx.device).eval()
        return model, AuditedInfo(source=P.checkpoint)
    trained_on, cfg = null_training(ctx.pool, split, P.null_model, P.seed, P.audited_config)
    recipe = AuditedRecipe(P.arch, cfg, dropout=P.dropout, head=P.head)
    model, info = train_audited(ctx.pool, trained_on, recipe, ctx.device, P.seed, P.cache_dir or None, progress=False)
    return model.eval(), replace(info, null_model=P.null_model)


def audited_quality(ctx: Context, split: Split, model: nn.Module) -> dict[str, float]:
    """`models.audited.audited_quality` with MINT's never-seen samples: a classifier is scored on the evaluation
    non-members when they come from the main pool, else on the unused rest of it (NaN when none is left);
    a face model by 1-NN identification on the embeddings of evaluation members and non-members."""
    return shared.audited_quality(model, ctx.pool, split, ctx.device, test_idx=labelled_never_seen(ctx.pool, split))


@dataclass
class ControlInfo(AuditedInfo):
    """The domain control's info: an audited model's (accuracy = its own audited accuracies, measured on the
    audited model's never-seen samples) plus which control it is, how many samples trained it and which."""

    control: str = "none"
    n_control: float = 0
    control_members: np.ndarray | None = None


def control_model(ctx: Context, split: Split, model: nn.Module, P: Params) -> tuple[nn.Module | None, ControlInfo]:
    """The domain control: a model built like the audited `model` (its ``config``) that never saw the members;
    (None, info) when ``P.control == 'none'``.

    other-data: trained like the audited model on main-pool samples outside every set (whole identities when
    identity_disjoint), or loaded from `control_checkpoint`; its audited accuracies are measured on the
    audited model's never-seen samples. untrained: the same architecture with fresh weights.
    """
    if P.control == "none":
        return None, ControlInfo(control="none")
    cfg = dict(model.config)
    if P.control == "untrained":
        seed_everything(P.seed + 1)
        return build_model(**cfg).to(ctx.device).eval(), ControlInfo(control=P.control, n_control=0)
    if P.control_checkpoint:
        m = load_audited(P.control_checkpoint, ctx.pool, P.head).to(ctx.device).eval()
        return m, ControlInfo(source=P.control_checkpoint, control=P.control, n_control=float("nan"))
    free = unused(ctx.pool, split, P.identity_disjoint)
    n = min(len(free), P.n_control or P.n_members)
    if n < MIN_CONTROL_MEMBERS:
        raise SplitError(f"control='other-data' needs main-pool samples outside every set; only {len(free)} are "
                         f"left. Lower n_members/n_external/n_eval, pass control_checkpoint, or use control='untrained'")
    members = np.random.default_rng(P.seed + 1).permutation(free)[:n]
    empty = np.empty(0, dtype=np.int64)
    test = np.setdiff1d(labelled_never_seen(ctx.pool, split), members)
    # the control's own split: its members, and the audited model's evaluation non-members to score it on
    csplit = Split({"members": members, "external": empty, "mint_train_members": empty, "eval_members": empty,
                    "eval_nonmembers": split["eval_nonmembers"]}, ctx.pool.name, len(ctx.pool), P.seed)
    recipe = AuditedRecipe(cfg["arch"], P.audited_config, dropout=cfg["dropout"], head=cfg["head"])
    m, info = train_audited(ctx.pool, csplit, recipe, ctx.device, P.seed + 1, P.cache_dir or None, progress=False)
    quality = shared.audited_quality(m, ctx.pool, csplit, ctx.device, test_idx=test)
    return m.eval(), ControlInfo(**vars(info) | {"accuracy": quality}, control=P.control, n_control=n,
                                 control_members=members)


def loss_baseline(ctx: Context, split: Split, model: nn.Module, P: Params) -> MembershipResult | None:
    """Yeom et al.'s loss threshold (calibrated on the MINT-training sets), or None where the loss is undefined:
    face models (a fresh or identity-specific head) and non-members from other datasets (no labels)."""
    if is_face_model(model) or (sources(ctx.pool) != SOURCE_MAIN).any():
        return None
    return loss.loss_baseline(model, ctx.pool, split, ctx.device, n_boot=P.n_boot)


def baselines(ctx: Context, split: Split, model: nn.Module, P: Params) -> dict[str, MembershipResult]:
    """{Table 6 feature: result} of every baseline the report sets beside MINT: the loss threshold where it is
    defined (`loss_baseline`), else none. A second baseline joins this mapping; no report signature changes."""
    res = loss_baseline(ctx, split, model, P)
    return {} if res is None else {LOSS_FEATURE: res}
