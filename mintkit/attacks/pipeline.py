"""The one entry point of the attacks: plan, train (or reuse) the reference models and score every attack on one
split or on several views of one split, with quick defaults.

``audit_attacks(model, pool, split_or_views, device, recipe, attacks, k=..., mode=...)`` returns an
`AttackAudit`. Views (``{name: Split}``) are one split seen under several protocols (aMINT scores the same
weights with evaluated members outside and inside the MINT-training members): the reference models are planned
once, on the union of the views' evaluated members, so that offline models never train on any of them and online
models hold each of them IN for exactly k/2; they are trained once per mode and every view is scored with them.

The quick defaults (k = 4 reference models with the audited recipe, the identity query, the seven attacks of
``OFFLINE_ATTACKS``) are what the papers' notebooks add beside their own membership numbers; each reference model
costs about one audited-model training (none on a cache hit). docs/attacks.md.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mintkit.attacks.references import MODES, ReferenceModels, plan_references, train_references
from mintkit.attacks.run import ATTACKS, OFFLINE_ATTACKS, ONLINE_ATTACKS, AttackData, AttackResult, score_attacks
from mintkit.core.data import Pool
from mintkit.core.splits import Split
from mintkit.models.audited import DEFAULT_CACHE, AuditedRecipe

QUICK_K = 4
SPLIT = "split"  # the view name of a single split
SPLIT_SETS = ("members", "external", "mint_train_members", "eval_nonmembers")


def modes_of(names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """{reference mode: the requested attacks that read it}, modes without a requested attack left out."""
    groups = {"offline": tuple(a for a in names if a in OFFLINE_ATTACKS),
              "online": tuple(a for a in names if a in ONLINE_ATTACKS)}
    return {m: g for m, g in groups.items() if g}


def merged_split(views: dict[str, Split]) -> Split:
    """The views' common split with eval_members = the union of theirs (what a reference plan keeps apart).

    The views must share every other set (they are views of one split)."""
    if not views:
        raise ValueError("no split views given")
    first = next(iter(views.values()))
    for name, v in views.items():
        differ = [s for s in SPLIT_SETS if not np.array_equal(v[s], first[s])]
        if differ or v.pool != first.pool:
            raise ValueError(f"view {name!r} differs from the first in {differ or 'pool'}; views must come from "
                             "one split")
    if len(views) == 1:
        return first
    members = np.unique(np.concatenate([v["eval_members"] for v in views.values()]))
    return Split(dict(first.sets) | {"eval_members": members}, first.pool, first.pool_size, first.seed,
                 overlap="paper", meta=first.meta)


@dataclass
class AttackAudit:
    """Results of `audit_attacks`: {view: {attack: AttackResult}}, the reference models of each mode (None when
    only 'yeom' reads it), the signals of every (view, mode) and their shared costs, the mode each attack read,
    the recipe used and k. A single split is the view SPLIT."""

    results: dict[str, dict[str, AttackResult]]
    refs: dict[str, ReferenceModels | None]
    signal_seconds: dict[tuple[str, str], dict[str, float]]
    recipe: AuditedRecipe | None = None  # what the reference models repeat (None: 'yeom' alone, no references)
    k: int = QUICK_K
    modes: dict[str, str] = field(default_factory=dict)
    data: dict[tuple[str, str], AttackData] = field(default_factory=dict, repr=False)

    @property
    def only(self) -> dict[str, AttackResult]:
        """{attack: result} of the one view (an audit of a single split)."""
        if len(self.results) != 1:
            raise ValueError(f"{len(self.results)} views ({', '.join(self.results)}): name one")
        return next(iter(self.results.values()))

    def mode_of(self, name: str) -> str:
        return self.modes.get(name, "online" if name in ONLINE_ATTACKS else "offline")

    def reference_seconds(self) -> float:
        """Training (or loading) every reference model, all modes."""
        return sum(r.seconds for r in self.refs.values() if r is not None)

    def seconds(self) -> float:
        """Everything the attacks cost in this run: references, signals, fits and scores of every view."""
        per_view = sum(s["target_signals"] + s["reference_signals"] for s in self.signal_seconds.values())
        own = sum(r.seconds for res in self.results.values() for r in res.values())
        return self.reference_seconds() + per_view + own

    def curves(self, view: str, names: tuple[str, ...] | None = None) -> dict[str, AttackResult]:
        """{label: result} of the attacks ``names`` (default all) on ``view``, for ROC plots."""
        res = self.results[view]
        return {res[a].label: res[a] for a in (names or tuple(res)) if a in res}

    def adds(self, view: str, name: str) -> float:
        """Seconds attack ``name`` adds on ``view`` alone: its own fit and scores, the audited model's signals
        and, when it reads reference models, their training and signals (shared with the other attacks)."""
        mode = self.mode_of(name)
        sig = self.signal_seconds[(view, mode)]
        out = self.results[view][name].seconds + sig["target_signals"]
        ref = self.refs[mode]
        if name != "yeom" and ref is not None:
            out += ref.seconds + sig["reference_signals"]
        return out


def _groups(names: tuple[str, ...], mode: str | None, refs: ReferenceModels | None) -> dict[str, tuple[str, ...]]:
    """{reference mode: the attacks that read it}: each attack its own mode (mode None), or every attack the
    given mode / the given references' mode."""
    mode = refs.mode if refs is not None else mode
    if mode is None:
        return modes_of(names)
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; valid: {', '.join(MODES)} (or None: each attack its own)")
    return {mode: names}


def audit_attacks(model: nn.Module, pool: Pool, split: Split | dict[str, Split], device: torch.device,
                  recipe: AuditedRecipe | None = None, attacks: tuple[str, ...] | None = None, *,
                  k: int = QUICK_K, mode: str | None = None, refs: ReferenceModels | None = None, seed: int = 0,
                  cache_dir: str | Path | None = DEFAULT_CACHE, n_boot: int = 200,
                  options: dict[str, dict] | None = None, queries: tuple[str, ...] = ("identity",),
                  train_size: int | None = None, max_calibration: int | None = 1000,
                  n_population: int | None = 2000, progress: bool = False) -> AttackAudit:
    """Each of ``attacks`` on ``model`` for one split or every view of one ({name: Split}).

    attacks: names from ATTACKS (default OFFLINE_ATTACKS, plus ONLINE_ATTACKS when mode is 'online').
    mode: None = offline references for the offline attacks, online ones for the online attacks; 'offline' /
    'online' = every attack reads that mode's references (an offline attack on online references says so in
    its label). refs: reference models already trained for this split (their mode then applies); otherwise
    ``recipe`` is the audited model's (`mintkit.models.audited.AuditedRecipe`), which the k reference models
    repeat (mintkit.attacks.references; 'yeom' alone trains none). options: {attack: {option: value}}
    (``attack_options(name)``); queries: 'identity' first, then augmentations, averaged by LiRA and RMIA.
    """
    views = split if isinstance(split, dict) else {SPLIT: split}
    names = tuple(attacks) if attacks is not None else OFFLINE_ATTACKS + (ONLINE_ATTACKS if mode == "online" else ())
    bad = [a for a in names if a not in ATTACKS]
    if bad or not names:
        raise ValueError(f"attacks {list(bad) or '(none)'} not valid; valid: {', '.join(ATTACKS)}")
    plan_split = merged_split(views)
    results: dict[str, dict[str, AttackResult]] = {v: {} for v in views}
    used = refs.recipe if refs is not None else recipe
    out = AttackAudit(results, {}, {}, used, refs.plan.k if refs is not None else k)
    for group_mode, group in _groups(names, mode, refs).items():
        ref = refs
        if ref is None and group != ("yeom",):
            if recipe is None:
                raise ValueError(f"attacks {[a for a in group if a != 'yeom']} need reference models: give refs, or "
                                 "the audited recipe (AuditedRecipe) to train them")
            plan = plan_references(plan_split, k, group_mode, train_size, max_calibration=max_calibration,
                                   n_population=n_population, seed=seed)
            ref = train_references(pool, plan_split, plan, recipe, device, seed, cache_dir, progress)
        out.refs[group_mode] = ref
        for view, s in views.items():
            t0 = time.perf_counter()
            res, data = score_attacks(model, pool, s, ref, device, group, options, queries,
                                      max_calibration=max_calibration, n_boot=n_boot, seed=seed)
            data.seconds["score_attacks"] = time.perf_counter() - t0
            out.signal_seconds[(view, group_mode)], out.data[(view, group_mode)] = data.seconds, data
            results[view].update(res)
        out.modes |= {a: group_mode for a in group}
    out.results = {v: {a: res[a] for a in names} for v, res in results.items()}
    return out
