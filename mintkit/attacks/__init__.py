"""Membership inference attacks on the audited models: Yeom, Salem, Song & Mittal, Ye, Watson, LiRA, RMIA.

See docs/attacks.md. ``references`` plans and trains reference models, ``signals`` turns model outputs into
per-sample signals, ``shadow`` / ``calibrated`` / ``lira`` / ``rmia`` hold the scores, ``run`` scores every
attack given the references, ``pipeline`` the one entry point (`audit_attacks`: plan, train, score one split or
its views), ``stage`` the notebooks' parameters, ``report`` tables and results rows.
"""
from mintkit.attacks.pipeline import QUICK_K, SPLIT, AttackAudit, audit_attacks
from mintkit.attacks.references import MODES, ReferenceModels, ReferencePlan, plan_references, train_references
from mintkit.attacks.report import add_attack_rows, comparison_table, metric_cells, results_table
from mintkit.attacks.run import (
                                        ATTACKS,
                                        LABELS,
                                        OFFLINE_ATTACKS,
                                        ONLINE_ATTACKS,
                                        AttackData,
                                        AttackResult,
                                        attack_options,
)
from mintkit.attacks.stage import (
                                        ATTACKS_HELP,
                                        N_REFERENCE_HELP,
                                        attack_names,
                                        check_attack_params,
                                        skip_reason,
)

__all__ = ["ATTACKS", "ATTACKS_HELP", "LABELS", "MODES", "N_REFERENCE_HELP", "OFFLINE_ATTACKS", "ONLINE_ATTACKS",
           "QUICK_K", "SPLIT", "AttackAudit", "AttackData", "AttackResult", "ReferenceModels", "ReferencePlan",
           "add_attack_rows", "attack_names", "attack_options", "audit_attacks", "check_attack_params",
           "comparison_table", "metric_cells", "plan_references", "results_table", "skip_reason",
           "train_references"]
