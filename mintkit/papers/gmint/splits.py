"""gMINT's membership sets: D and E as two halves of the pool, 80/20 MINT train/evaluation, data fractions.

docs/gmint.md, "Membership sets": D trains the audited model, E never does; modifiers are computed for
all of D and E; ``eval_fraction`` of each half evaluates the MINT model (balanced, chance 50%), the rest
trains it. The evaluated members trained the audited model but were never seen by the MINT model.
"""
from __future__ import annotations

import numpy as np

from mintkit.core.splits import Split, SplitError, build_split
from mintkit.papers.common import Context
from mintkit.papers.gmint.params import Params


def make_split(ctx: Context, P: Params) -> Split:
    """D and E = two equal halves of the pool (by default); ``eval_fraction`` of each evaluates the MINT model.

    members = D; mint_train_members = D minus the eval members; external = E minus the eval non-members.
    With early stopping (``P.patience > 0``) meta['audited_val'] holds ``P.n_val`` validation samples of the
    audited model (:func:`audited_validation`). Saved as the run's split.json.
    """
    d, e, n_eval = P.split_sizes(len(ctx.pool))
    split = build_split(ctx.pool, n_members=d, n_external=e - n_eval, n_eval=n_eval, seed=P.seed,
                        n_mint_members=d - n_eval, overlap="none")
    split.meta.update(protocol="gmint: D/E halves, eval_fraction of each evaluates", eval_fraction=P.eval_fraction)
    if P.patience:
        split = audited_validation(split, P.n_val, P.seed)
    ctx.run.save_split(split)
    return split


def audited_validation(split: Split, n: int, seed: int) -> Split:
    """`split` with meta['audited_val'] = `n` samples that choose the audited model's epoch (our choice: the
    paper's "early stopping" names no data, docs/gmint.md "The audited model").

    Taken from pool samples in no set when the pool has `n` of them (a reduced-size run); otherwise (the
    paper's equal halves use the whole pool) carved out of E's MINT-training part, which then loses them, so
    they never train or evaluate the MINT model. Raises SplitError when neither has `n` samples.
    """
    used = np.concatenate([split[s] for s in ("members", "external", "eval_members", "eval_nonmembers")])
    free = np.setdiff1d(np.arange(split.pool_size), used)
    rng = np.random.default_rng([seed, 2])
    sets = dict(split.sets)
    if len(free) >= n:
        val, source = random_subset(free, n, rng), "pool samples outside D and E"
    elif len(split["external"]) > n + 1:
        val, source = random_subset(split["external"], n, rng), "carved out of E's MINT-training part"
        sets["external"] = np.setdiff1d(split["external"], val)
    else:
        raise SplitError(f"n_val={n} validation samples for early stopping: the pool has {len(free)} unused and "
                         f"E's MINT-training part {len(split['external'])}; lower n_val or the set sizes")
    out = Split(sets, split.pool, split.pool_size, split.seed, split.overlap,
                split.meta | {"audited_val": val.tolist(), "audited_val_source": source})
    if np.isin(val, used if source.startswith("pool") else np.concatenate(
            [out[s] for s in ("members", "external", "eval_members", "eval_nonmembers")])).any():
        raise SplitError("audited validation samples overlap a membership set")
    return out


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
