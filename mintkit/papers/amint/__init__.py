"""aMINT (Active MINT, ICCV 2025): what its notebook calls, in the notebook's order.

``P = Params.from_notebook(globals())`` -> ``ctx = setup(P)`` -> ``make_split`` (one split: a slice of D
is left out of the MINT loss, so one trained model serves both protocols) -> ``active_mint`` (M+ trained
jointly) -> ``passive_mint`` (the same architecture trained alone, then the same head family on its
frozen maps) -> ``evaluate_all`` (both protocols on each model; MINT scores, audited accuracy, the
loss-threshold attack; rows into results.csv) -> ``membership_attacks`` (the published attacks, LiRA and
RMIA on the passive audited model, rows into Table 3) -> figures and the paper's Tables 1-3 beside the
published numbers.

The method, the protocols, the choices the paper leaves open and how this code makes them: docs/amint.md.
"""
from mintkit.methods.mplus import MintPlus, build_mplus, mint_scores, train_mplus
from mintkit.papers import common
from mintkit.papers.amint.attacks import attack_table, membership_attacks
from mintkit.papers.amint.evaluation import evaluate, evaluate_all, oracle_accuracy, record, summary, verdict
from mintkit.papers.amint.params import BOTH, PROTOCOLS, Params, setup_label
from mintkit.papers.amint.report import PROTOCOL_LABELS, paper_tables, plot_curves, plot_scores, save_tables
from mintkit.papers.amint.splits import check_split, make_split, protocol_views, split_table, training_sets
from mintkit.papers.amint.training import CONDITIONS, active_mint, describe_mplus, mplus_training, passive_mint
from mintkit.papers.common import Context, null_check

PAPER = Params.PAPER


def setup(P: Params) -> Context:
    """Seed, device, thread policy, the pool on the device (resized to ``P.image_size``) and the run folder
    (mintkit.papers.common.setup); rows carry their protocol explicitly."""
    return common.setup(P, protocol=P.protocols[0], image_size=P.image_size)


__all__ = ["PAPER", "null_check", "Params", "Context", "setup", "PROTOCOLS", "BOTH", "CONDITIONS", "PROTOCOL_LABELS", "setup_label",
           "make_split", "protocol_views", "check_split", "split_table", "training_sets", "MintPlus", "build_mplus",
           "mint_scores", "train_mplus", "mplus_training", "active_mint", "passive_mint", "describe_mplus",
           "evaluate", "evaluate_all", "record", "summary", "verdict", "oracle_accuracy", "plot_curves",
           "plot_scores", "paper_tables", "save_tables", "membership_attacks", "attack_table"]
