"""gMINT (gradient-based MINT, CVPRW 2025): what its notebook calls, in the notebook's order.

``P = Params.from_notebook(globals())`` -> ``ctx = setup(P)`` -> ``make_split`` (D and E are two halves
of the pool; 80% of each trains the MINT model, 20% evaluates it) -> ``audited`` (trained once, cached,
with the Adam state of the gMINT layers) -> ``modifiers`` (one batched gradient pass gives every
layer x rule x reduction) -> ``grid`` (a MINT MLP per setup x reduction x data fraction) ->
``compare_rules`` / ``table3`` (activation MINT and the loss threshold on the same audited model) ->
``membership_attacks`` (the published attacks, LiRA and RMIA on the same model, rows into Table 3) ->
figures and the paper's tables beside the published numbers.

The method, the choices the paper leaves open and how this code makes them: docs/gmint.md.
"""
from mintkit.papers import common
from mintkit.papers.common import Context, null_check
from mintkit.papers.gmint.attacks import attack_curves, attack_table, membership_attacks
from mintkit.papers.gmint.audited import audited, modifiers
from mintkit.papers.gmint.evaluation import MINT_MLP, activation_features, compare_rules, fit_eval, grid, table3
from mintkit.papers.gmint.params import (FEATURE_SETUPS, FRACTIONS, SELECTIONS, Params, condition, fraction_label,
                                         setup_label)
from mintkit.papers.gmint.report import (figure_fractions, figure_roc, figure_rules, figure_tables, paper_layout,
                                         published_layout, save_scores)
from mintkit.papers.gmint.splits import make_split, mint_sets, random_subset

PAPER = Params.PAPER


def setup(P: Params) -> Context:
    """Seed, device, thread policy, the pool on the device (resized to ``P.image_size``) and the run
    folder, whose rows carry ``P.protocol`` and ``P.variant`` (mintkit.papers.common.setup)."""
    return common.setup(P, protocol=P.protocol, image_size=P.image_size, variant=P.variant)


__all__ = ["PAPER", "null_check", "Params", "Context", "setup", "make_split", "mint_sets", "random_subset", "audited", "modifiers",
           "fit_eval", "grid", "compare_rules", "table3", "activation_features", "MINT_MLP", "paper_layout",
           "published_layout", "figure_tables", "figure_fractions", "figure_roc", "figure_rules", "save_scores",
           "FEATURE_SETUPS", "FRACTIONS", "SELECTIONS", "condition", "fraction_label", "setup_label",
           "membership_attacks", "attack_table", "attack_curves"]
