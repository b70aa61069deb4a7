"""gMINT's membership sets: D and E as two halves of the pool, 80/20 MINT train/evaluation, data fractions.

docs/gmint.md, "Membership sets": D trains the audited model, E never does; modifiers are computed for
all of D and E; ``eval_fraction`` of each half evaluates the MINT model (balanced, chance 50%), the rest
trains it. The evaluated members trained the audited model but were never seen by the MINT model.
"""
from __future__ import annotations

import numpy as np

from mintkit.core.splits import Split, build_split
from mintkit.papers.common import Context
from mintkit.papers.gmint.params import Params


def make_split(ctx: Context, P: Params) -> Split:
    """D and E = two equal halves of the pool (by default); ``eval_fraction`` of each evaluates the MINT model.

    members = D; mint_train_members = D minus the eval members; external = E minus the eval non-members.
    Saved as the run's split.json.
    """
    d, e, n_eval = P.split_sizes(len(ctx.pool))
    split = build_split(ctx.pool, n_members=d, n_external=e - n_eval, n_eval=n_eval, seed=P.seed,
                        n_mint_members=d - n_eval, overlap="none")
    split.meta.update(protocol="gmint: D/E halves, eval_fraction of each evaluates", eval_fraction=P.eval_fraction)
    ctx.run.save_split(split)
    return split


def random_subset(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` of `idx` drawn without replacement (all of them when n >= len(idx)), sorted: [min(n, len)]."""
    return np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))


def mint_sets(split: Split, f: float, seed: int) -> dict[str, np.ndarray]:
    """Pool indices of the four MINT sets, the training part cut to fraction `f` (D100 / D10 / D1).

    Members and non-members are cut alike (at least 2 of each), so every fraction stays balanced;
    the evaluation sets are never cut.
    """
    rng = np.random.default_rng([seed, int(round(f * 1e6))])
    pos, neg = split["mint_train_members"], split["external"]
    return {"mint_train_members": random_subset(pos, max(2, int(round(f * len(pos)))), rng),
            "external": random_subset(neg, max(2, int(round(f * len(neg)))), rng),
            "eval_members": split["eval_members"], "eval_nonmembers": split["eval_nonmembers"]}
