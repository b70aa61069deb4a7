"""Membership inference attacks on the audited models: Yeom, Salem, Song & Mittal, Ye, Watson, LiRA, RMIA.

See docs/attacks.md. ``references`` plans and trains reference models, ``signals`` turns model outputs into
per-sample signals, ``shadow`` / ``calibrated`` / ``lira`` / ``rmia`` hold the scores, ``run`` the entry
point, ``pipeline`` the one-call version with quick defaults, ``stage`` the notebooks' parameters and their
call over one split's views, ``report`` tables and results rows.
"""
from mintkit.attacks.pipeline import QUICK_K, audit_attacks
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
                                        run_attacks,
)
from mintkit.attacks.stage import (
                                        ATTACKS_HELP,
                                        N_REFERENCE_HELP,
                                        AttackAudit,
                                        attack_names,
                                        audit_views,
                                        check_attack_params,
                                        skip_reason,
)

__all__ = ["ATTACKS", "ATTACKS_HELP", "LABELS", "MODES", "N_REFERENCE_HELP", "OFFLINE_ATTACKS", "ONLINE_ATTACKS",
           "QUICK_K", "AttackAudit", "AttackData", "AttackResult", "ReferenceModels", "ReferencePlan",
           "add_attack_rows", "attack_names", "attack_options", "audit_attacks", "audit_views", "check_attack_params",
           "comparison_table", "metric_cells", "plan_references", "results_table", "run_attacks", "skip_reason",
           "train_references"]
