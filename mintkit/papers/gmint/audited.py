"""gMINT's audited model (trained once, cached, with the Adam state of its gMINT layers) and its modifiers.

docs/gmint.md, "The audited model" and "Weight modifiers".
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from torch import nn

from mintkit.core import null
from mintkit.core.splits import Split
from mintkit.methods.modifier_variants import protocol_modifiers
from mintkit.methods.modifiers import FILTER_REDUCTIONS, Modifiers, Optimiser, adam_state_of
from mintkit.models.audited import AuditedInfo, AuditedRecipe, audited_accuracy, train_audited
from mintkit.models.checkpoints import load_checkpoint
from mintkit.papers.common import Context
from mintkit.papers.gmint.params import Params


def audited(ctx: Context, split: Split, P: Params, progress: bool = True) -> tuple[nn.Module, AuditedInfo]:
    """The audited model trained on D (cached; or loaded from ``P.checkpoint``) and info.

    info.adam_state = {layer: {exp_avg, exp_avg_sq, step}} of the three gMINT layers when the
    training kept it (Adam) or the checkpoint holds it, else None; info.accuracy = train accuracy on
    D and test accuracy on every non-member (E and the evaluation non-members). With ``P.patience`` the
    epoch is chosen on split.meta['audited_val'] (splits.audited_validation); info.history['best_epoch'] says
    which.
    ``P.null_model`` (mintkit.core.null): the model trains on stand-ins for D, or not at all; info says which.
    """
    layers = list(P.layers.values())
    keep = [f"{n}.weight" for n in layers] if P.keep_adam_state else None
    val = np.asarray(split.meta.get("audited_val", []), dtype=np.int64)
    trained_on, cfg = null.null_training(ctx.pool, split, P.null_model, P.seed, P.audited_config, exclude=val)
    model, info = train_audited(ctx.pool, trained_on, AuditedRecipe(P.arch, cfg), ctx.device, P.seed,
                                P.cache_dir or None, progress=progress, checkpoint=P.checkpoint or None,
                                optimizer_state_of=keep, val_indices=val)
    extra = load_checkpoint(P.checkpoint)["extra"] if P.checkpoint else info.optimizer_state
    try:
        adam = adam_state_of(extra or {}, layers)
    except KeyError:
        adam = None
    nonmembers = np.concatenate([split["external"], split["eval_nonmembers"]])
    return model, replace(info, null_model=P.null_model, adam_state=adam, optimizer_state=None,
                          accuracy=audited_accuracy(model, ctx.pool, split, ctx.device, test_idx=nonmembers))


def modifiers(ctx: Context, split: Split, model: nn.Module, info: AuditedInfo, P: Params,
              progress: bool = True) -> Modifiers:
    """Reduced weight modifiers [N, F_out] of every sample of D and E, for the three layers, every rule
    of ``P.rules`` the model allows and every filter reduction, from one batched gradient pass (the definition)
    or, for a protocol variant (``P.step_protocol``), one sequential pass per rule (variants.protocol_modifiers).

    'adam-state' is dropped from the comparison when the model has no saved Adam state; asking for it
    as ``P.rule`` then is an error.
    """
    rules = tuple(r for r in P.rules if r != "adam-state" or info.adam_state)
    if P.rule not in rules:
        raise ValueError("rule='adam-state' but the audited model has no saved Adam state for its gMINT layers")
    nonmembers = np.concatenate([split["external"], split["eval_nonmembers"]])
    return protocol_modifiers(model, ctx.pool, split["members"], nonmembers, list(P.layers.values()), ctx.device,
                              P.step_protocol, P.seed, rules=rules, reductions=FILTER_REDUCTIONS,
                              opt=Optimiser(lr=P.lr), state=info.adam_state, chunk_size=P.chunk_size or None,
                              progress=progress)
