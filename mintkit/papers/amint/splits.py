"""aMINT's membership sets: one split whose trained models serve both protocols (docs/amint.md, "Protocols").

One split, one M+ (and one passive model), two sets of evaluated members:

| set (Split name or meta key)     | role                                                             |
|----------------------------------|------------------------------------------------------------------|
| members                          | D: trains the audited task                                       |
| mint_train_members               | D minus the held-out slice: MINT label 1 in training             |
| eval_members                     | ``paper`` protocol: evaluated members that trained the MINT loss |
| meta eval_members_heldout        | ``heldout`` protocol: D minus mint_train_members, never in the MINT loss |
| meta val_members                 | MINT-trained members kept for early stopping and calibration     |
| external                         | E: MINT label 0 (minus the validation non-members)               |
| meta val_nonmembers              | E held out of every training step                                |
| eval_nonmembers                  | the test split (or pool samples never used): both protocols      |

The saved ``split.json`` holds the ``paper`` view (overlap "paper") with both member sets; the
``heldout`` view is a `Split` with overlap "none", so `mintkit.core.splits` asserts that its evaluated
members never trained the MINT loss. `check_split` asserts the rest (validation slices are never
evaluation data, the two evaluated member sets are disjoint).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from mintkit.core.data import TEST
from mintkit.core.splits import Split, SplitError, build_split
from mintkit.papers.amint.params import PROTOCOLS, Params
from mintkit.papers.common import Context


def random_subset(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` of `idx` drawn without replacement, sorted: [n]; too few is an error naming the counts."""
    if n > len(idx):
        raise SplitError(f"{n} samples needed, {len(idx)} available")
    return np.sort(rng.choice(idx, size=n, replace=False))


def make_split(ctx: Context, P: Params) -> Split:
    """The split of docs/amint.md "Membership sets" for ``ctx.pool``, checked and saved (split.json holds the
    paper view and both member sets; split_<protocol>.json each protocol's view)."""
    S = P.sized_for(ctx.pool)
    S.check_sizes()
    pool = ctx.pool
    origin = "test" if bool((pool.origin == TEST).any()) else "pool"
    kw = dict(n_members=S.n_members, n_external=S.n_external, n_eval=S.n_eval, seed=P.seed, nonmember_origin=origin)
    if S.holds_out_members:  # build_split's eval members are then the held-out slice: D minus the MINT members
        base = build_split(pool, overlap="none", n_mint_members=S.n_members - S.n_eval, **kw)
        heldout = base["eval_members"]
    else:  # protocol 'paper' alone: all of D trains the MINT loss, as in the paper
        base = build_split(pool, overlap="paper", **kw)
        heldout = np.empty(0, dtype=np.int64)
    mint = base["mint_train_members"]
    rng = np.random.default_rng([P.seed, 1])
    paper_eval = base["eval_members"] if not S.holds_out_members else random_subset(mint, S.n_eval, rng)
    val_members = random_subset(np.setdiff1d(mint, paper_eval), S.n_val, rng)
    val_nonmembers = random_subset(base["external"], S.n_val, rng)
    split = Split({"members": base["members"], "external": base["external"], "mint_train_members": mint,
                   "eval_members": paper_eval, "eval_nonmembers": base["eval_nonmembers"]},
                  base.pool, base.pool_size, P.seed, overlap="paper",
                  meta=base.meta | {"protocols": list(P.protocols), "eval_members_heldout": heldout.tolist(),
                                    "val_members": val_members.tolist(), "val_nonmembers": val_nonmembers.tolist(),
                                    "sizes_resolved": {"n_members": S.n_members, "n_external": S.n_external,
                                                       "n_eval": S.n_eval, "n_val": S.n_val}})
    check_split(split)
    ctx.run.save_split(split)
    for p, view in protocol_views(split).items():
        view.save(ctx.run.dir / f"split_{p}.json")
    return split


def protocol_views(split: Split) -> dict[str, Split]:
    """{protocol: Split} for the protocols the split was made for; each view's eval_members are that
    protocol's evaluated members (heldout: overlap 'none', checked by mintkit.core.splits)."""
    out = {}
    for p in split.meta["protocols"]:
        if p == "paper":
            out[p] = split
        else:
            sets = dict(split.sets) | {"eval_members": np.asarray(split.meta["eval_members_heldout"], dtype=np.int64)}
            out[p] = Split(sets, split.pool, split.pool_size, split.seed, overlap="none", meta=split.meta)
    return out


def check_split(split: Split) -> None:
    """Assert what `mintkit.core.splits` cannot see: the paper view's members trained the MINT loss, the
    held-out ones did not and are the rest of D, validation slices are training data of the right kind
    and never evaluation data. Raises SplitError naming the sets."""
    sets = training_sets(split)
    mint, paper_eval = split["mint_train_members"], split["eval_members"]
    heldout = np.asarray(split.meta["eval_members_heldout"], dtype=np.int64)
    vm, vn = sets["val_members"], sets["val_nonmembers"]
    rules = [("paper eval members inside the MINT members", np.isin(paper_eval, mint).all()),
             ("validation members inside the MINT members", np.isin(vm, mint).all()),
             ("validation non-members inside E", np.isin(vn, split["external"]).all()),
             ("validation members disjoint from paper eval members", not np.isin(vm, paper_eval).any()),
             ("held-out members disjoint from the MINT members", not np.isin(heldout, mint).any()),
             ("held-out members and MINT members make up D",
              not len(heldout) or np.array_equal(np.union1d(heldout, mint), split["members"]))]
    broken = [name for name, ok in rules if not ok]
    if broken:
        raise SplitError(f"aMINT split broken: {'; '.join(broken)}")
    for view in protocol_views(split).values():
        view.check()


def training_sets(split: Split) -> dict[str, np.ndarray]:
    """What mplus.train_mplus reads: 'task' (all of D), 'mint_members', 'external' (E minus the validation
    non-members), 'val_members', 'val_nonmembers'."""
    vn = np.asarray(split.meta["val_nonmembers"], dtype=np.int64)
    return {"task": split["members"], "mint_members": split["mint_train_members"],
            "external": np.setdiff1d(split["external"], vn),
            "val_members": np.asarray(split.meta["val_members"], dtype=np.int64), "val_nonmembers": vn}


def split_table(ctx: Context, split: Split) -> pd.DataFrame:
    """Set sizes per protocol view, and how many of its evaluated members trained the MINT loss; `pool` is the
    number of images of ``ctx.pool`` the sets are drawn from."""
    sets = training_sets(split)
    rows = {}
    for p, view in protocol_views(split).items():
        rows[p] = {"pool": len(ctx.pool)} | view.sizes() | {"val_members": len(sets["val_members"]),
                                  "val_nonmembers": len(sets["val_nonmembers"]),
                                  "E used in training": len(sets["external"]),
                                  "eval members in MINT loss": int(np.isin(view["eval_members"],
                                                                           sets["mint_members"]).sum())}
    return pd.DataFrame(rows)


__all__ = ["PROTOCOLS", "make_split", "protocol_views", "check_split", "training_sets", "split_table",
           "random_subset"]
