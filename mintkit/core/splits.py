"""Membership splits: the five named index sets over one pool, built, checked and saved.

| set                | role                                                         |
|--------------------|--------------------------------------------------------------|
| members            | D: trains the audited model                                  |
| external           | E: non-members that train the MINT model                     |
| mint_train_members | members that train the MINT model (subset of D)              |
| eval_members       | members scored at evaluation (subset of D)                   |
| eval_nonmembers    | never seen by the audited model nor by the MINT model        |

`overlap="none"` (held-out protocol) requires eval_members ∩ mint_train_members = ∅;
`overlap="paper"` allows it (aMINT evaluates on the very members that trained its MINT head).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mintkit.core.data import TEST, Pool

SETS = ("members", "external", "mint_train_members", "eval_members", "eval_nonmembers")
OVERLAPS = ("none", "paper")


class SplitError(ValueError):
    """A split breaks the protocol (overlapping sets, wrong subsets, too few samples)."""


def set_hash(idx: np.ndarray) -> str:
    """sha256 of the sorted int64 indices: identifies a set independent of order."""
    return hashlib.sha256(np.sort(np.asarray(idx, dtype=np.int64)).tobytes()).hexdigest()[:16]


@dataclass
class Split:
    """Named index sets [n_set] into a pool of `pool_size` samples."""

    sets: dict[str, np.ndarray]
    pool: str
    pool_size: int
    seed: int
    overlap: str = "none"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sets = {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in self.sets.items()}
        self.check()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.sets:
            raise KeyError(f"unknown set {name!r}; valid: {', '.join(SETS)}")
        return self.sets[name]

    def sizes(self) -> dict[str, int]:
        return {k: int(len(v)) for k, v in self.sets.items()}

    def hashes(self) -> dict[str, str]:
        return {k: set_hash(v) for k, v in self.sets.items()}

    def check(self) -> None:
        """Raise SplitError naming the sets and counts if the protocol is broken."""
        missing = [s for s in SETS if s not in self.sets]
        if missing:
            raise SplitError(f"split lacks sets {missing}")
        if self.overlap not in OVERLAPS:
            raise SplitError(f"unknown overlap {self.overlap!r}; valid: {OVERLAPS}")
        s = {k: set(v.tolist()) for k, v in self.sets.items()}
        for k, v in self.sets.items():
            if len(v) and (v.min() < 0 or v.max() >= self.pool_size):
                raise SplitError(f"set {k} has indices outside the pool [0, {self.pool_size})")
            if len(s[k]) != len(v):
                raise SplitError(f"set {k} holds {len(v) - len(s[k])} duplicate indices")
        disjoint = [("members", "external"), ("members", "eval_nonmembers"), ("external", "eval_nonmembers")]
        if self.overlap == "none":
            disjoint.append(("mint_train_members", "eval_members"))
        for a, b in disjoint:
            n = len(s[a] & s[b])
            if n:
                raise SplitError(f"sets {a} and {b} overlap in {n} samples")
        for sub in ("mint_train_members", "eval_members"):
            n = len(s[sub] - s["members"])
            if n:
                raise SplitError(f"{n} samples of {sub} are not in members")

    def to_json(self) -> dict:
        return {"pool": self.pool, "pool_size": self.pool_size, "seed": self.seed, "overlap": self.overlap,
                "sizes": self.sizes(), "hashes": self.hashes(), "meta": self.meta,
                "indices": {k: v.tolist() for k, v in self.sets.items()}}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / "split.json"
        path.write_text(json.dumps(self.to_json()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        """Load and re-check a saved split; hashes must match the stored indices."""
        path = Path(path)
        if path.is_dir():
            path = path / "split.json"
        d = json.loads(path.read_text())
        split = cls({k: np.asarray(v) for k, v in d["indices"].items()}, d["pool"], d["pool_size"], d["seed"],
                    d.get("overlap", "none"), d.get("meta", {}))
        bad = [k for k, h in d["hashes"].items() if split.hashes()[k] != h]
        if bad:
            raise SplitError(f"{path}: indices of {bad} do not match their stored hashes")
        return split


def take_groups(order: np.ndarray, group: np.ndarray, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Take whole groups from `order` (sample indices) until n samples are reached; return (taken, rest).

    taken: the first n samples of the groups taken (a group cut at the n-th sample leaves its tail out);
    rest: `order` without any sample of a taken group. Raises SplitError when `order` holds fewer than n.
    """
    taken, used = [], set()
    count = 0
    for g in dict.fromkeys(group[order].tolist()):  # groups in the shuffled order of first appearance
        if count >= n:
            break
        members = order[group[order] == g]
        taken.append(members)
        used.add(g)
        count += len(members)
    if count < n:
        raise SplitError(f"not enough samples for {what}: need {n}, the pool offers {count}")
    taken = np.concatenate(taken)[:n] if taken else np.empty(0, np.int64)
    rest = order[~np.isin(group[order], list(used))]
    return taken, rest


def build_split(pool: Pool, n_members: int, n_external: int, n_eval: int, seed: int = 0,
                n_mint_members: int | None = None, overlap: str = "none", nonmember_origin: str = "pool",
                identity_disjoint: bool = False, external_from: np.ndarray | None = None,
                nonmembers_from: np.ndarray | None = None, members_from: np.ndarray | None = None) -> Split:
    """Draw the five sets from `pool` with `seed`.

    n_members: |D|; n_external: |E|; n_eval: eval members = eval non-members (balanced).
    n_mint_members: members that train the MINT model (default: n_external, capped by what is left).
    overlap: "none" (eval members held out of MINT training) or "paper" (eval members ⊆ MINT-train members).
    nonmember_origin: "pool" (eval non-members drawn like E) or "test" (from the official test split only).
    identity_disjoint: whole identities (pool.group) go to one set: no identity straddles D/E/eval or
    MINT-train/eval members.
    external_from / nonmembers_from: pool indices E / the eval non-members must come from (other databases
    appended to the pool, as the MINT paper's external face sets); members never come from them.
    members_from: pool indices D must come from (default: every index not reserved by the two above).
    """
    if overlap not in OVERLAPS:
        raise ValueError(f"unknown overlap {overlap!r}; valid: {OVERLAPS}")
    if nonmember_origin not in ("pool", "test"):
        raise ValueError(f"unknown nonmember_origin {nonmember_origin!r}; valid: pool, test")
    rng = np.random.default_rng(seed)
    group = pool.group.cpu().numpy() if identity_disjoint else np.arange(len(pool))
    if nonmember_origin == "test":
        if nonmembers_from is not None:
            raise ValueError("nonmember_origin='test' and nonmembers_from both choose the eval non-members")
        nonmembers_from = np.flatnonzero(pool.origin.cpu().numpy() == TEST)
    reserved = [np.asarray(a) for a in (external_from, nonmembers_from) if a is not None]
    if nonmembers_from is not None:
        source = rng.permutation(nonmembers_from)
        if len(source) < n_eval:
            raise SplitError(f"{pool.name}: {len(source)} samples can be eval non-members, n_eval={n_eval} needed")
        eval_non, _ = take_groups(source, group, n_eval, "eval_nonmembers")
    avail = np.arange(len(pool)) if members_from is None else np.asarray(members_from, dtype=np.int64)
    avail = rng.permutation(np.setdiff1d(avail, np.concatenate(reserved)) if reserved else avail)
    members, avail = take_groups(avail, group, n_members, "members")
    external, rest = take_groups(avail if external_from is None else rng.permutation(external_from), group,
                                  n_external, "external")
    if external_from is None:
        avail = rest
    if nonmembers_from is None:
        eval_non, avail = take_groups(avail, group, n_eval, "eval_nonmembers")
    if overlap == "none":
        eval_mem, rest = take_groups(rng.permutation(members), group, n_eval, "eval_members")
        k = len(rest) if n_mint_members is None else n_mint_members
        if k > len(rest):
            raise SplitError(f"n_mint_members={k} but only {len(rest)} members remain after {n_eval} eval members")
        mint_mem = rest[:k] if n_mint_members is not None else rest[:min(len(rest), max(n_external, 1))]
    else:
        k = len(members) if n_mint_members is None else n_mint_members
        mint_mem = rng.permutation(members)[:k]
        if n_eval > len(mint_mem):
            raise SplitError(f"n_eval={n_eval} exceeds the {len(mint_mem)} MINT-training members")
        eval_mem = rng.permutation(mint_mem)[:n_eval]
    return Split({"members": members, "external": external, "mint_train_members": mint_mem,
                  "eval_members": eval_mem, "eval_nonmembers": eval_non}, pool.name, len(pool), seed, overlap,
                 {"nonmember_origin": nonmember_origin, "identity_disjoint": identity_disjoint,
                  "external_from": None if external_from is None else len(external_from),
                  "nonmembers_from": None if nonmembers_from is None else len(nonmembers_from)})
