"""Membership inference attacks on the audited models: Yeom, Salem, Song & Mittal, Ye, Watson, LiRA, RMIA.

See docs/attacks.md. ``references`` plans and trains reference models, ``signals`` turns model outputs into
per-sample signals, ``shadow`` / ``calibrated`` / ``lira`` / ``rmia`` hold the scores, ``run`` the entry
point, ``pipeline`` the one-call version with quick defaults, ``report`` tables and results rows.
"""
from mintkit.attacks.pipeline import QUICK_K, audit_attacks
from mintkit.attacks.references import MODES, ReferenceModels, ReferencePlan, plan_references, train_references
from mintkit.attacks.report import add_attack_rows, results_table
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

__all__ = ["ATTACKS", "LABELS", "MODES", "OFFLINE_ATTACKS", "ONLINE_ATTACKS", "QUICK_K", "AttackData", "AttackResult",
           "ReferenceModels", "ReferencePlan", "add_attack_rows", "attack_options", "audit_attacks",
           "plan_references", "results_table", "run_attacks", "train_references"]
