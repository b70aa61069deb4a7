"""aMINT's two trained models per run: the active M+ (task and MINT head jointly) and the passive baseline
(the same architecture trained alone, then the same head family on its frozen maps).

Each is trained ONCE per run and scored under both protocols (docs/amint.md, "Protocols").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from mintkit.core import null
from mintkit.core.splits import Split
from mintkit.core.train import seed_everything
from mintkit.models.audited import AuditedRecipe, build_audited, train_audited
from mintkit.methods.mplus import MintPlus, build_mplus, train_mplus
from mintkit.papers.amint.params import Params
from mintkit.papers.amint.splits import training_sets
from mintkit.papers.common import Context

CONDITIONS = ("Active", "Passive")


def mplus_training(P: Params, epochs: int) -> dict:
    """Keywords of mplus.train_mplus shared by the active and passive trainings."""
    return dict(epochs=epochs, batch_size=P.batch_size, lr=P.lr, head_lr=P.mint_lr or None, weight_decay=P.weight_decay,
                lambda_task=P.lambda_task, lambda_ratio=P.lambda_ratio, patience=P.patience, seed=P.seed,
                precision=P.precision)


def null_sets(ctx: Context, split: Split, P: Params) -> tuple[dict[str, np.ndarray], Split]:
    """What trains under ``P.null_model`` (mintkit.core.null): (training_sets, the passive model's split). Off:
    the split's own. other-data: every member in the task set, the MINT members and the validation members
    replaced by its stand-in, so D trains nothing; E and the validation non-members stay (they are non-members
    either way)."""
    sets = training_sets(split)
    if P.null_model == "off":
        return sets, split
    standins = null.stand_ins(ctx.pool, split, P.seed)
    swap = {k: null.substitute(v, split["members"], standins) for k, v in sets.items()
            if k in ("task", "mint_members", "val_members")}
    return sets | swap, null.training_split(split, standins)


def active_mint(ctx: Context, split: Split, P: Params, max_steps: int | None = None) -> tuple[MintPlus, dict]:
    """M+ around a fresh zoo model (models.audited.build_audited), task and MINT loss trained jointly:
    (model, history)."""
    audited = build_audited(ctx.pool, P.arch, P.seed).to(ctx.device)
    model = build_mplus(audited, P.setup, ctx.pool.image_size, ctx.pool.in_channels, **P.head_kw)
    hist = train_mplus(model, ctx.pool, null_sets(ctx, split, P)[0], ctx.device, mode="active", max_steps=max_steps,
                       **mplus_training(P, P.audited_epochs))
    return model, hist


def passive_mint(ctx: Context, split: Split, P: Params, max_steps: int | None = None) -> tuple[MintPlus, dict]:
    """The same architecture trained alone on D (models.audited.train_audited, cached; early stopping with
    ``P.patience`` on the validation non-members, as the active run's), then the same head family
    on its two frozen maps (the MINT members vs E): the passive MINT of the paper's Table 2. (model, history);
    history['audited'] holds the audited training's loss, seconds and cache hit."""
    sets, trained_on = null_sets(ctx, split, P)
    audited, info = train_audited(ctx.pool, trained_on, AuditedRecipe(P.arch, P.audited_config), ctx.device, P.seed,
                                  P.cache_dir or None, progress=False, val_indices=sets["val_nonmembers"])
    seed_everything(P.seed)  # the head's initialisation does not depend on a cache hit
    model = build_mplus(audited, P.setup, ctx.pool.image_size, ctx.pool.in_channels, **P.head_kw)
    hist = train_mplus(model, ctx.pool, sets, ctx.device, mode="passive", max_steps=max_steps,
                       **mplus_training(P, P.mint_epochs))
    hist["audited"] = {k: v for k, v in info.history.items() if k in ("loss", "seconds", "val_acc", "best_epoch",
                                                                     "epochs_run")}
    hist["audited"] |= {"cache_hit": info.cache_hit, "cache_key": info.cache_key}
    return model, hist


def describe_mplus(ctx: Context, P: Params) -> pd.DataFrame:
    """The two taps of the setup, their shapes, and the MINT head's layers and parameter count."""
    m = build_mplus(build_audited(ctx.pool, P.arch, P.seed), P.setup, ctx.pool.image_size, ctx.pool.in_channels,
                    **P.head_kw)
    n_head = sum(p.numel() for p in m.mint.parameters())
    n_aud = sum(p.numel() for p in m.audited.parameters())
    return pd.DataFrame({"tap": list(m.tap_names), "shape [C,H,W] / [T,D]": [str(list(s)) for s in m.tap_shapes],
                         "branch": [str(b.net).replace("\n", "") for b in m.mint.branches],
                         "head": [str(m.mint.fc).replace("\n", "")] * 2,
                         "params (head / audited)": [f"{n_head:,} / {n_aud:,}"] * 2})
