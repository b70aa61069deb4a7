"""MINT's data: the main pool plus other databases for the non-members, and the five membership sets.

docs/mint.md, "Data and splits": members always come from the main pool; E and the evaluation
non-members come from `external_root` / `eval_nonmember_root` when given (the paper's Baseline Case,
Case A, Case B), else from the main pool.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from mintkit.core.data import Pool, concat_pools, load_pool
from mintkit.core.splits import Split, build_split
from mintkit.papers import common
from mintkit.papers.common import Context
from mintkit.papers.mint.params import Params

SOURCE_MAIN, SOURCE_EXTERNAL, SOURCE_EVAL = 0, 1, 2  # values of pool.meta["source"]
SOURCE_NAMES = {SOURCE_MAIN: "main pool", SOURCE_EXTERNAL: "external_root", SOURCE_EVAL: "eval_nonmember_root"}
SET_ORDER = ("members", "mint_train_members", "eval_members", "external", "eval_nonmembers")


def load_data(P: Params) -> Pool:
    """The main pool with the `external_root` and `eval_nonmember_root` datasets appended (`core.data.concat_pools`:
    resized to the main pool's format, label 0, identities of their own). ``pool.meta['source']`` [N] says where
    each sample comes from: SOURCE_MAIN, SOURCE_EXTERNAL or SOURCE_EVAL."""
    main = load_pool(P.dataset, P.data_root, image_size=P.image_size or None)
    parts, codes = [main], [SOURCE_MAIN]
    for specs, code in ((P.external_specs, SOURCE_EXTERNAL), (P.eval_nonmember_specs, SOURCE_EVAL)):
        for spec in specs:
            parts.append(load_pool(spec, P.data_root, image_size=main.image_size))
            codes.append(code)
    pool = concat_pools(parts)
    pool.meta["source"] = np.asarray(codes)[pool.meta["part"]] if len(parts) > 1 else np.zeros(len(main), int)
    return pool


def setup(P: Params) -> Context:
    """`papers.common.setup` with MINT's own pool (`load_data`): seed, device, threads, run folder."""
    return common.setup(P, load_data(P))


def sources(pool: Pool) -> np.ndarray:
    """Source code [N] of every pool sample (all SOURCE_MAIN for a pool `load_data` did not build)."""
    return np.asarray(pool.meta.get("source", np.zeros(len(pool), int)))


def make_split(ctx: Context, P: Params) -> Split:
    """The five sets (`core.splits.build_split`), saved to the run folder as split.json: members from the main
    pool; E and the evaluation non-members from their own databases when the pool has them."""
    source = sources(ctx.pool)

    def only(code: int) -> np.ndarray | None:
        idx = np.flatnonzero(source == code)
        return idx if len(idx) else None

    split = build_split(ctx.pool, P.n_members, P.n_external, P.n_eval, seed=P.seed,
                        n_mint_members=P.n_mint_members or None, identity_disjoint=P.identity_disjoint,
                        external_from=only(SOURCE_EXTERNAL), nonmembers_from=only(SOURCE_EVAL))
    split.meta["parts"] = ctx.pool.meta.get("parts", [ctx.pool.name])
    ctx.run.save_split(split)
    return split


def unused(pool: Pool, split: Split, identity_disjoint: bool = False) -> np.ndarray:
    """Main-pool indices [M] in no set (nor sharing an identity with one when `identity_disjoint`)."""
    used = np.concatenate([split[s] for s in ("members", "external", "eval_nonmembers")])
    free = np.setdiff1d(np.flatnonzero(sources(pool) == SOURCE_MAIN), used)
    if identity_disjoint:
        g = pool.group.cpu().numpy()
        free = free[~np.isin(g[free], g[used])]
    return free


def labelled_never_seen(pool: Pool, split: Split) -> np.ndarray:
    """Samples [n] the audited model never saw whose labels are its classes: the evaluation non-members when
    they come from the main pool, else the unused rest of it (other databases carry label 0)."""
    test = split["eval_nonmembers"]
    return unused(pool, split) if (sources(pool)[test] != SOURCE_MAIN).any() else test


def split_table(ctx: Context, split: Split) -> pd.DataFrame:
    """One row per set: samples, identities, and which dataset(s) it comes from."""
    source, g = sources(ctx.pool), ctx.pool.group.cpu().numpy()
    return pd.DataFrame([{"set": s, "samples": len(split[s]), "identities": len(np.unique(g[split[s]])),
                          "from": ", ".join(SOURCE_NAMES[c] for c in sorted(set(source[split[s]].tolist())))}
                         for s in SET_ORDER]).set_index("set")
