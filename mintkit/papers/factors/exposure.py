"""The exposure factor (Table 2): one audited model whose member quarters are seen k times per epoch.

docs/factors.md, "Exposure": each quarter has its own MINT-training and evaluation members; E and the
evaluation non-members are shared by the four MINT models.
"""
from __future__ import annotations

import numpy as np
import torch

from mintkit.core.data import Pool
from mintkit.core.splits import Split, SplitError, take_groups


def exposure_split(pool: Pool, n_members: int, n_external: int, n_eval: int, n_quarters: int = 4, seed: int = 0,
                   identity_disjoint: bool = False) -> Split:
    """D in `n_quarters` equal parts, each with `n_eval` evaluation members and the rest as MINT-training
    members; E and `n_eval` evaluation non-members shared by all quarters.

    split.meta['quarter'][i] is the quarter of split['members'][i] (sorted order, as train_audited uses).
    """
    rng = np.random.default_rng(seed)
    group = pool.group.cpu().numpy() if identity_disjoint else np.arange(len(pool))
    avail = rng.permutation(len(pool))
    members, avail = take_groups(avail, group, n_members, "members")
    external, avail = take_groups(avail, group, n_external, "external")
    eval_non, _ = take_groups(avail, group, n_eval, "eval_nonmembers")
    per = len(members) // n_quarters
    if per <= n_eval:
        raise SplitError(f"exposure: {per} members per quarter cannot hold n_eval={n_eval} evaluation members "
                         f"and MINT-training members; raise exposure_members or lower n_eval")
    quarter_of, mint, evals = {}, [], []
    rest = members
    for q in range(n_quarters):
        part, rest = (rest, rest[:0]) if q == n_quarters - 1 else take_groups(rest, group, per, f"quarter {q + 1}")
        ev, tr = take_groups(rng.permutation(part), group, n_eval, f"eval members of quarter {q + 1}")
        quarter_of |= {int(i): q for i in part}  # a group cut at a quarter's border is left out of D
        mint.append(tr)
        evals.append(ev)
    members = np.fromiter(quarter_of, dtype=np.int64)
    split = Split({"members": members, "external": external, "mint_train_members": np.concatenate(mint),
                   "eval_members": np.concatenate(evals), "eval_nonmembers": eval_non}, pool.name, len(pool), seed,
                  "none", {"nonmember_origin": "pool", "identity_disjoint": identity_disjoint,
                           "n_quarters": n_quarters})
    split.meta["quarter"] = [quarter_of[int(i)] for i in split["members"]]
    return split


def quarters(split: Split) -> np.ndarray:
    """Quarter [len(members)] of each member, aligned with split['members']."""
    return np.asarray(split.meta["quarter"], dtype=np.int64)


def exposure_repeats(split: Split, exposures: list[int]) -> torch.Tensor:
    """The exposure sampler's counts: [len(members)] int64, member i repeated exposures[quarter(i)] times per
    epoch (train.epoch_indices repeats and shuffles them within the epoch)."""
    q = quarters(split)
    if q.max() >= len(exposures):
        raise ValueError(f"{q.max() + 1} quarters but {len(exposures)} exposures")
    return torch.as_tensor(np.asarray(exposures, dtype=np.int64)[q])


def quarter_features(feats: dict, split: Split, q: int) -> dict:
    """Features {set: {tap: [n, ...]}} of the MINT sets with the member sets restricted to quarter q's members
    (non-member sets unchanged)."""
    qmap = dict(zip(split["members"].tolist(), quarters(split).tolist()))
    out = {}
    for s, taps in feats.items():
        if s in ("mint_train_members", "eval_members"):
            keep = torch.as_tensor([qmap[int(i)] == q for i in split[s]])
            out[s] = {t: v[keep] for t, v in taps.items()}
        else:
            out[s] = taps
    return out
