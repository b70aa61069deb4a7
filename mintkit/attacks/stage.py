"""The attacks as a stage of a paper's notebook: two typed parameters, one call, rows and a table.

Every paper declares the same two parameters (help texts `ATTACKS_HELP`, `N_REFERENCE_HELP`; checked by
`check_attack_params`): ``attacks`` (``all`` = the seven offline attacks of aMINT's Table 3 family, or a
comma list of names) and ``n_reference`` (k reference models per mode; 0 = no attacks).

`audit_views` runs the attacks on one audited model for one or several *views* of one split (aMINT scores
the same weights under two protocols whose evaluated members differ). The reference models are planned
once, on the union of the views' evaluated members, so that offline models never train on any of them and
online models hold each of them IN for exactly k/2; they are trained once per mode (offline for the
offline attacks, online only when an online attack is asked for) and every view is scored with them.
docs/attacks.md, "In the notebooks".
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mintkit.attacks.pipeline import QUICK_K
from mintkit.attacks.references import ReferenceModels, plan_references, train_references
from mintkit.attacks.run import ATTACKS, OFFLINE_ATTACKS, ONLINE_ATTACKS, AttackResult, run_attacks
from mintkit.core.data import Pool
from mintkit.core.params import ParameterError, split_list
from mintkit.core.splits import Split
from mintkit.core.train import TrainConfig
from mintkit.methods.audited import DEFAULT_CACHE
from mintkit.models.iresnet import is_face_model

ALL = "all"
ATTACKS_HELP = ("membership attacks on the audited model: all (the seven offline ones) or a comma list of "
                f"{', '.join(ATTACKS)} (an online one trains n_reference more models)")
N_REFERENCE_HELP = (f"reference models per mode for the attacks, even (0: no attacks; the quick {QUICK_K} cost "
                    "about as many audited-model trainings)")
SPLIT_SETS = ("members", "external", "mint_train_members", "eval_nonmembers")


def attack_names(text: str) -> tuple[str, ...]:
    """'all' -> OFFLINE_ATTACKS; 'yeom, lira-online' -> ('yeom', 'lira-online'). Order kept, repeats dropped;
    names are not checked here (`check_attack_params` does)."""
    names = tuple(dict.fromkeys(split_list(text)))
    return OFFLINE_ATTACKS if names == (ALL,) else names


def check_attack_params(attacks: str, n_reference: int) -> None:
    """ParameterError naming the valid values: unknown attack names, an odd or negative n_reference, or
    online LiRA with fewer than 4 reference models."""
    names = attack_names(attacks)
    valid = f"valid: {ALL}, or a comma list of {', '.join(ATTACKS)}"
    bad = [a for a in names if a not in ATTACKS]
    if ALL in bad:
        raise ParameterError(f"attacks={attacks!r}: {ALL!r} stands alone; {valid}")
    if not names or bad:
        raise ParameterError(f"attacks={attacks!r}: {bad or 'empty'} not valid; {valid}")
    if n_reference < 0 or n_reference % 2:
        raise ParameterError(f"n_reference={n_reference}: 0 (no attacks) or an even count >= 2 (each reference "
                             "sample is IN for half of the models)")
    if 0 < n_reference < 4 and "lira-online" in names:
        raise ParameterError(f"n_reference={n_reference}: lira-online needs >= 4 (2 IN and 2 OUT models a sample)")


def modes_of(names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """{reference mode: the requested attacks that read it}, modes without a requested attack left out."""
    groups = {"offline": tuple(a for a in names if a in OFFLINE_ATTACKS),
              "online": tuple(a for a in names if a in ONLINE_ATTACKS)}
    return {m: g for m, g in groups.items() if g}


def skip_reason(model: nn.Module, pool: Pool) -> str | None:
    """Why the attacks cannot score ``model`` on ``pool``, or None: a face model has an identity head, not a
    posterior over the pool's labels; a classifier with another class count does not predict them."""
    if is_face_model(model):
        return "a face model: its head is fitted to identities, it gives no class posterior over the pool's labels"
    n = getattr(model, "config", {}).get("num_classes")
    if n is not None and int(n) != pool.num_classes:
        return f"the model predicts {n} classes, the pool has {pool.num_classes}: its losses are not defined"
    return None


def model_recipe(model: nn.Module, arch: str) -> dict:
    """arch, dropout and head of a loaded model (its ``config``), for reference models that repeat it;
    ``arch`` when the model does not say. The training settings of a user's checkpoint are not stored: the
    caller's TrainConfig stands in for them."""
    cfg = getattr(model, "config", {})
    return {"arch": cfg.get("arch", getattr(model, "arch", arch)), "dropout": float(cfg.get("dropout", 0.0)),
            "head": cfg.get("head", "softmax")}


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
    """Results of `audit_views`: {view: {attack: AttackResult}}, the reference models of each mode (None when
    only 'yeom' reads it), and the shared costs: {(view, mode): signal seconds} and the recipe used."""

    results: dict[str, dict[str, AttackResult]]
    refs: dict[str, ReferenceModels | None]
    signal_seconds: dict[tuple[str, str], dict[str, float]]
    recipe: dict = field(default_factory=dict)

    def mode_of(self, name: str) -> str:
        return "online" if name in ONLINE_ATTACKS else "offline"

    def reference_seconds(self) -> float:
        """Training (or loading) every reference model, all modes."""
        return sum(r.seconds for r in self.refs.values() if r is not None)

    def seconds(self) -> float:
        """Everything the attacks cost in this run: references, signals, fits and scores of every view."""
        per_view = sum(s["target_signals"] + s["reference_signals"] for s in self.signal_seconds.values())
        own = sum(r.seconds for res in self.results.values() for r in res.values())
        return self.reference_seconds() + per_view + own

    def curves(self, view: str, names: tuple[str, ...] | None = None) -> dict[str, dict]:
        """{label: {'scores', 'labels'}} of the attacks ``names`` (default all) on ``view``, for ROC plots."""
        res = self.results[view]
        return {res[a].label: {"scores": res[a].scores, "labels": res[a].labels}
                for a in (names or tuple(res)) if a in res}

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


def audit_views(model: nn.Module, pool: Pool, views: dict[str, Split], device: torch.device, arch: str,
                cfg: TrainConfig, attacks: tuple[str, ...], k: int = QUICK_K, seed: int = 0,
                cache_dir: str | Path | None = DEFAULT_CACHE, n_boot: int = 200, dropout: float = 0.0,
                head: str = "softmax", build_fn=None, model_kw: dict | None = None,
                max_calibration: int | None = 1000, n_population: int | None = 2000,
                progress: bool = False) -> AttackAudit:
    """Each of ``attacks`` on ``model`` for every view ({name: Split}, one split's views).

    arch / cfg / dropout / head / build_fn / model_kw: the audited model's recipe, which the k reference
    models of each mode repeat (mintkit.attacks.references). 'yeom' alone trains none.
    """
    names = tuple(attacks)
    bad = [a for a in names if a not in ATTACKS]
    if bad or not names:
        raise ValueError(f"attacks {list(bad) or '(none)'} not valid; valid: {', '.join(ATTACKS)}")
    plan_split = merged_split(views)
    results: dict[str, dict[str, AttackResult]] = {v: {} for v in views}
    refs: dict[str, ReferenceModels | None] = {}
    signals: dict[tuple[str, str], dict[str, float]] = {}
    for mode, group in modes_of(names).items():
        ref = None
        if group != ("yeom",):
            plan = plan_references(plan_split, k, mode, max_calibration=max_calibration, n_population=n_population,
                                   seed=seed)
            ref = train_references(pool, plan_split, plan, arch, cfg, device, seed, cache_dir, dropout, head,
                                   build_fn, model_kw, progress)
        refs[mode] = ref
        for view, split in views.items():
            t0 = time.perf_counter()
            res, data = run_attacks(model, pool, split, ref, device, group, max_calibration=max_calibration,
                                    n_boot=n_boot, seed=seed)
            signals[(view, mode)] = data.seconds | {"run_attacks": time.perf_counter() - t0}
            results[view].update(res)
    ordered = {v: {a: res[a] for a in names} for v, res in results.items()}
    recipe = {"arch": arch, "train": cfg.as_dict(), "dropout": dropout, "head": head, "k": k}
    return AttackAudit(ordered, refs, signals, recipe)
