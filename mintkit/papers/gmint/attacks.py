"""Membership attacks on gMINT's audited model, beside gMINT and activation MINT (Table 3).

The published Table 3 has MINT, LOSS and gMINT rows; the attacks of mintkit.attacks (Salem, Yeom, Song &
Mittal, Ye, Watson, LiRA, RMIA) run on the same audited model and split and write their rows into Table 3
with their own labels, which the report lists as rows without a published cell. docs/gmint.md,
"Membership attacks".
"""
from __future__ import annotations

import pandas as pd
from torch import nn

from mintkit.attacks import AttackAudit, AttackResult, add_attack_rows, audit_attacks, comparison_table, skip_reason
from mintkit.attacks.stage import model_recipe
from mintkit.core.splits import Split
from mintkit.models.audited import AuditedInfo, AuditedRecipe
from mintkit.papers.common import Context
from mintkit.papers.gmint.params import Params

ROC_ATTACKS = ("lira-offline", "rmia-offline", "lira-online", "rmia-online")


def membership_attacks(ctx: Context, split: Split, model: nn.Module, info: AuditedInfo, P: Params
                       ) -> AttackAudit | None:
    """``P.attack_list`` on the audited ``model`` with the run's split; k = ``P.n_reference`` reference models
    per mode repeat its recipe (``P.arch`` and ``P.audited_config``; with a checkpoint, its own architecture
    and this run's training settings, since a checkpoint does not store how it was trained). Rows into
    Table 3 with ``info.accuracy``; None, with the reason printed, when off or not applicable."""
    if not P.attack_list:
        print("attacks off (n_reference = 0)")
        return None
    reason = skip_reason(model, ctx.pool)
    if reason:
        print(f"attacks skipped: {reason}")
        return None
    recipe = (model_recipe(model, P.arch, P.audited_config) if P.checkpoint
              else AuditedRecipe(P.arch, P.audited_config))
    if P.checkpoint:
        print(f"reference models: the checkpoint's {recipe.arch} trained with this run's audited_epochs, "
              "batch_size, lr and audited_optimizer (the checkpoint does not say how it was trained)")
    audit = audit_attacks(model, ctx.pool, {P.protocol: split}, ctx.device, recipe, P.attack_list, k=P.n_reference,
                          seed=P.seed, cache_dir=P.cache_dir or None, n_boot=P.n_boot)
    add_attack_rows(ctx.run, audit.results[P.protocol], info.accuracy, table="Table 3", setup="", **P.labels)
    for mode, refs in audit.refs.items():
        if refs is not None:
            ctx.run.time(f"references_{mode}", refs.seconds)
    ctx.run.time("attacks", audit.seconds())
    return audit


def attack_table(t3: dict, audit: AttackAudit | None, P: Params) -> pd.DataFrame:
    """Table 3's methods ({name: result} from ``table3``) and every attack: accuracy at each
    method's own threshold, AUC, TPR at 1% / 0.1% FPR with 95% intervals, counts."""
    methods = {(name,): r.metrics for name, r in t3.items()}
    if audit is not None:
        methods |= {(r.label,): r.metrics for r in audit.results[P.protocol].values()}
    return comparison_table(methods)


def attack_curves(audit: AttackAudit | None, P: Params) -> dict[str, AttackResult]:
    """{label: result} of LiRA and RMIA for the ROC figure ({} without attacks)."""
    return {} if audit is None else audit.curves(P.protocol, ROC_ATTACKS)
