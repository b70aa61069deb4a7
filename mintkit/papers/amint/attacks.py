"""Membership attacks on the passive audited model, beside Passive and Active MINT (aMINT Table 3).

The paper's Table 3 sets Active MINT beside five published attacks. Here they run (with LiRA and RMIA,
mintkit.attacks) on the **passive audited model**: the architecture trained plainly on D
(models.audited.train_audited, the model passive MINT reads), i.e. the model a developer would release
without aMINT. The split is the run's own; each protocol view is scored with the same reference models
(mintkit.attacks.pipeline.audit_attacks). Rows go to Table 3 with the attacks' labels, the published
``condition`` labels ("Salem et al." ... "Watson et al."), so `paper_tables` shows them beside Passive and
Active MINT and the published numbers. docs/amint.md, "Membership attacks".
"""
from __future__ import annotations

import pandas as pd

from mintkit.attacks import AttackAudit, add_attack_rows, audit_attacks, comparison_table
from mintkit.core.splits import Split
from mintkit.methods.mplus import MintPlus
from mintkit.models.audited import AuditedRecipe
from mintkit.papers.amint.params import YEOM, Params
from mintkit.papers.amint.splits import protocol_views
from mintkit.papers.common import Context

MINT_ROWS = {"Passive": "Passive MINT", "Active": "Active MINT (aMINT)"}


def membership_attacks(ctx: Context, split: Split, passive: tuple[MintPlus, dict], results: dict, P: Params
                       ) -> AttackAudit | None:
    """``P.attack_list`` on the passive audited model (``passive[0].audited``), every protocol view of the
    split, k = ``P.n_reference`` reference models per mode trained with the passive model's recipe (arch,
    ``P.audited_config``, cached in ``P.cache_dir``). Writes Table 3 rows per protocol (with the passive
    model's audited accuracies from ``results``), the per-sample scores and the time rows; None, with the
    reason printed, when ``n_reference`` is 0. Yeom et al. is not run again: the evaluation's loss-threshold
    attack (mintkit.methods.loss) on the same passive model is that row."""
    # Yeom et al. is the evaluation's loss-threshold attack (mintkit.methods.loss), already a Table 3 row
    names = tuple(a for a in P.attack_list if a != "yeom")
    if not names:
        print("attacks off (n_reference = 0, or yeom alone): Table 3 keeps the loss-threshold attack of the evaluation")
        return None
    audited = passive[0].audited.eval()
    recipe = AuditedRecipe(P.arch, P.audited_config)
    audit = audit_attacks(audited, ctx.pool, protocol_views(split), ctx.device, recipe, names, k=P.n_reference,
                          seed=P.seed, cache_dir=P.cache_dir or None, n_boot=P.n_boot)
    for protocol, res in audit.results.items():
        aud = results[(protocol, "Passive")].audited
        add_attack_rows(ctx.run, res, aud, table="Table 3", setup="", protocol=protocol,
                        scores_prefix=f"attack_{protocol}", **P.labels)
    for mode, refs in audit.refs.items():
        if refs is not None:
            ctx.run.time(f"references_{mode}", refs.seconds)
    ctx.run.time("attacks", audit.seconds())
    return audit


def attack_table(results: dict, audit: AttackAudit | None) -> pd.DataFrame:
    """Per protocol: Passive and Active MINT, Yeom et al. (the evaluation's loss attack on the passive model),
    then every other attack on it; accuracy at each method's own threshold, AUC, TPR at 1% / 0.1% FPR with 95%
    intervals, counts."""
    methods = {}
    for protocol in dict.fromkeys(p for p, _ in results):
        for cond, label in MINT_ROWS.items():
            if (protocol, cond) in results:
                methods[(protocol, label)] = results[(protocol, cond)].metrics
        if (protocol, "Passive") in results:
            methods[(protocol, YEOM)] = results[(protocol, "Passive")].loss.metrics
        for r in (audit.results.get(protocol, {}) if audit is not None else {}).values():
            methods[(protocol, r.label)] = r.metrics
    return comparison_table(methods, index=("protocol", "method"))
