"""Baselines: the membership inference attacks of mintkit.attacks on the audited model (docs/mint.md,
"Baselines").

Salem, Yeom, Song & Mittal, Ye, Watson, LiRA and RMIA score the same evaluated samples as the MINT models,
from the audited model's outputs only. They need a class posterior over the pool's labels: face models
(an identity head) and non-members from other databases (no labels in the audited model's classes) are
skipped with the reason printed, as the loss baseline is. Rows go to Table 6 (the paper's comparison with
an MIA) with the feature "<attack>;Model Outcome".
"""
from __future__ import annotations

import pandas as pd
from torch import nn

from mintkit.attacks import AttackAudit, add_attack_rows, audit_attacks, comparison_table, skip_reason
from mintkit.attacks.stage import model_recipe
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split
from mintkit.models.audited import AuditedRecipe
from mintkit.papers.common import Context
from mintkit.papers.mint.data import SOURCE_MAIN, sources
from mintkit.papers.mint.params import Params
from mintkit.papers.mint.report import AUDITED_KEYS

VIEW = "heldout"  # MINT's evaluated members never train a MINT model
OUTCOME = ";Model Outcome"


def membership_attacks(ctx: Context, split: Split, model: nn.Module, audited: dict, results: dict, P: Params
                       ) -> AttackAudit | None:
    """``P.attack_list`` on the audited ``model`` with the run's split; k = ``P.n_reference`` reference models
    per mode repeat its recipe (``P.arch``, ``P.dropout``, ``P.head``, ``P.audited_config``; with a checkpoint,
    its own architecture and this run's training settings, since a checkpoint does not store how it was
    trained). Rows into Table 6 (unless ``P.tables`` leaves it out) with ``audited``'s accuracies, under the
    condition of the MINT rows in ``results``. None, with the reason printed, when off or not applicable."""
    if not P.attack_list:
        print("attacks off (n_reference = 0)")
        return None
    reason = skip_reason(model, ctx.pool)
    if reason is None and (sources(ctx.pool) != SOURCE_MAIN).any():
        reason = "samples from other databases carry no labels in the audited model's classes"
    if reason:
        print(f"attacks skipped: {reason}")
        return None
    recipe = (model_recipe(model, P.arch, P.audited_config) if P.checkpoint
              else AuditedRecipe(P.arch, P.audited_config, dropout=P.dropout, head=P.head))
    if P.checkpoint:
        print(f"reference models: the checkpoint's {recipe.arch} trained with this run's audited_epochs, "
              "batch_size and lr (the checkpoint does not say how it was trained)")
    audit = audit_attacks(model, ctx.pool, {VIEW: split}, ctx.device, recipe, P.attack_list, k=P.n_reference,
                          seed=P.seed, cache_dir=P.cache_dir or None, n_boot=P.n_boot)
    if results and (not P.table_filter or "Table 6" in P.table_filter):
        n_train = next(iter(results.values())).n_train
        aud = {m: audited[m] for m in AUDITED_KEYS}
        add_attack_rows(ctx.run, audit.results[VIEW], aud, label_column="feature", label_suffix=OUTCOME,
                        table="Table 6", condition=P.condition_label(n_train), dataset=P.dataset_row_label,
                        model=P.model_row_label)
    for mode, refs in audit.refs.items():
        if refs is not None:
            ctx.run.time(f"references_{mode}", refs.seconds)
    ctx.run.time("attacks", audit.seconds())
    return audit


def attack_table(results: dict, baselines: dict[str, MembershipResult], audit: AttackAudit | None) -> pd.DataFrame:
    """The MINT models of ``results`` ({(family, feature): fit}), the baselines ({feature: result}) and every
    attack: accuracy at each method's own threshold, AUC, TPR at 1% / 0.1% FPR with 95% intervals, counts."""
    methods = {(r.label,): r.metrics for r in results.values()}
    methods |= {(feature,): b.metrics for feature, b in baselines.items()}
    if audit is not None:
        methods |= {(r.label + OUTCOME,): r.metrics for r in audit.results[VIEW].values()}
    return comparison_table(methods)
