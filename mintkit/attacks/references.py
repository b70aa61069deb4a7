"""Reference (shadow) models: which samples each one trains on, and their training (see docs/attacks.md).

Data roles, all pool indices and all fixed here, before any model is trained:

===================  =========================================================================================
evaluated            split['eval_members'] ∪ split['eval_nonmembers']: the samples every attack scores
calibration          ≤ ``max_calibration`` of split['mint_train_members'] \\ eval members (label 1) and of
                     split['external'] (label 0): thresholds are fitted on their scores, never on evaluated ones
population           known non-members that are not evaluated: split['external'] and/or the ``rest`` of the pool
                     (in no split set), per ``population``
population_sample    ≤ ``n_population`` population samples, not calibration ones (candidates first): RMIA's
                     comparison samples z; with the calibration samples, the "unevaluated" samples on which the
                     shadow IN/OUT data of Salem and Song & Mittal and LiRA's global variance are taken
candidates           the samples reference models may train on; ``inside`` [k, n_cand] says which model trains
                     on which candidate, each candidate being IN for exactly k/2 models
===================  =========================================================================================

Modes:

* ``offline``: candidates are population samples (minus calibration ones). No reference model ever trains
  on an evaluated sample, a calibration sample or a member of the audited model (checked by
  :meth:`ReferencePlan.check`).
* ``online``: candidates also hold every evaluated and calibration sample, so each is IN for k/2 models and
  OUT for the other k/2 (LiRA online, RMIA online). The evaluated members then train reference models.

Each model trains on about ``train_size`` samples (default |members|, the audited model's training-set size,
as many as the candidates allow) with the audited model's recipe (:func:`mintkit.models.audited.train_audited`),
and is cached like an audited model: the key holds its training indices, the recipe and its seed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mintkit.core.data import Pool
from mintkit.core.splits import SETS, Split
from mintkit.models.audited import DEFAULT_CACHE, AuditedInfo, AuditedRecipe, train_audited

MODES = ("offline", "online")
POPULATION_SETS = ("external", "rest")


def _pick(idx: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted random subset of at most n of idx (all when n is None)."""
    idx = np.asarray(idx, dtype=np.int64)
    if n is None or n >= len(idx):
        return np.sort(idx)
    return np.sort(rng.choice(idx, size=n, replace=False))


def population_indices(split: Split, sets: tuple[str, ...] = POPULATION_SETS) -> np.ndarray:
    """Known non-members that are not evaluated: split['external'] and/or the pool's rest (sorted)."""
    bad = [s for s in sets if s not in POPULATION_SETS]
    if bad or not sets:
        raise ValueError(f"population sets {list(sets)} invalid; choose from {', '.join(POPULATION_SETS)}")
    used = np.concatenate([split["members"], split["external"], split["eval_nonmembers"]])
    parts = []
    if "external" in sets:
        parts.append(split["external"])
    if "rest" in sets:
        parts.append(np.setdiff1d(np.arange(split.pool_size), used))
    return np.unique(np.concatenate(parts))


def calibration_sets(split: Split, max_calibration: int | None = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """{'members': ≤ max of mint_train_members \\ eval_members, 'nonmembers': ≤ max of external}."""
    rng = np.random.default_rng([seed, 3])
    mem = np.setdiff1d(split["mint_train_members"], split["eval_members"])
    if not len(mem) or not len(split["external"]):
        raise ValueError(f"calibration needs MINT-training members outside the evaluated ones ({len(mem)}) and "
                         f"external samples ({len(split['external'])}); the split offers too few")
    return {"members": _pick(mem, max_calibration, rng), "nonmembers": _pick(split["external"], max_calibration, rng)}


@dataclass
class ReferencePlan:
    """Training sets of k reference models over pool indices (see the module table)."""

    mode: str
    candidates: np.ndarray        # [n_cand] sorted pool indices
    inside: np.ndarray            # [k, n_cand] bool: model j trains on candidate i
    evaluated: np.ndarray         # [n_eval] eval members ∪ eval non-members
    calibration: dict[str, np.ndarray]
    population: np.ndarray        # [n_pop] known, not evaluated non-members
    population_sample: np.ndarray
    seed: int
    meta: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.inside.shape[0])

    def train_indices(self, j: int) -> np.ndarray:
        """Pool indices model j trains on (sorted)."""
        return self.candidates[self.inside[j]]

    def membership(self, indices: np.ndarray) -> np.ndarray:
        """[k, N] bool: model j trains on pool index indices[n] (False for non-candidates)."""
        indices = np.asarray(indices, dtype=np.int64)
        pos = np.searchsorted(self.candidates, indices)
        hit = (pos < len(self.candidates)) & (self.candidates[np.minimum(pos, len(self.candidates) - 1)] == indices)
        out = np.zeros((self.k, len(indices)), dtype=bool)
        out[:, hit] = self.inside[:, pos[hit]]
        return out

    def check(self, split: Split) -> None:
        """Raise ValueError if a training set breaks the mode (offline: never an evaluated, calibration or
        member sample; online: evaluated and calibration samples IN for exactly k/2 models)."""
        trained = np.unique(np.concatenate([self.train_indices(j) for j in range(self.k)]))
        calib = np.concatenate([self.calibration["members"], self.calibration["nonmembers"]])
        allowed = self.population if self.mode == "offline" else np.concatenate([self.population, self.evaluated,
                                                                                 calib])
        if self.mode == "offline":
            allowed = np.setdiff1d(allowed, calib)
        stray = np.setdiff1d(trained, allowed)
        if len(stray):
            raise ValueError(f"{self.mode} reference models train on {len(stray)} samples outside their allowed "
                             f"data (e.g. pool index {stray[0]})")
        if self.mode == "offline":
            for name, idx in (("evaluated", self.evaluated), ("calibration", calib), ("members", split["members"])):
                n = int(self.membership(idx).any(0).sum())
                if n:
                    raise ValueError(f"offline reference models train on {n} {name} samples")
        else:
            counts = self.membership(np.concatenate([self.evaluated, calib])).sum(0)
            if not (counts == self.k // 2).all():
                raise ValueError(f"online mode: evaluated/calibration samples are IN for {np.unique(counts)} "
                                 f"models, expected exactly {self.k // 2}")


def plan_references(split: Split, k: int, mode: str = "offline", train_size: int | None = None,
                    population: tuple[str, ...] = POPULATION_SETS, max_calibration: int | None = 1000,
                    n_population: int | None = 2000, seed: int = 0) -> ReferencePlan:
    """Choose the candidates and the [k, n_cand] IN matrix (each candidate IN for exactly k/2 models).

    k: even, >= 2. train_size: samples per model (default |members| when the candidates allow, else as many
    as they allow; an explicit value the data cannot meet raises). The plan is checked before it returns.
    """
    if mode not in MODES:
        raise ValueError(f"unknown reference mode {mode!r}; valid: {', '.join(MODES)}")
    if k < 2 or k % 2:
        raise ValueError(f"k must be even and >= 2 (each candidate is IN for k/2 models); got {k}")
    rng = np.random.default_rng([seed, 11])
    calib = calibration_sets(split, max_calibration, seed)
    calib_all = np.concatenate([calib["members"], calib["nonmembers"]])
    evaluated = np.union1d(split["eval_members"], split["eval_nonmembers"])
    pop = population_indices(split, population)
    pool_pop = np.setdiff1d(pop, calib["nonmembers"])  # calibration samples stay OUT of offline models
    required = np.empty(0, np.int64) if mode == "offline" else np.union1d(evaluated, calib_all)
    can = len(required) + len(pool_pop)
    want = len(split["members"]) if train_size is None else int(train_size)
    if train_size is not None and 2 * want > can:
        raise ValueError(f"train_size={want} needs {2 * want} candidates; the {mode} mode offers {can} "
                         f"({len(pool_pop)} population + {len(required)} evaluated/calibration samples)")
    n_cand = max(min(2 * want, can), len(required))
    fill = rng.permutation(pool_pop)[:n_cand - len(required)]
    candidates = np.sort(np.concatenate([required, fill]).astype(np.int64))
    # each column: k/2 models chosen at random (rank of uniform noise), so every candidate is IN and OUT
    inside = np.argsort(rng.random((k, len(candidates))), axis=0) < k // 2
    cand_pop = np.intersect1d(candidates, pool_pop)
    others = np.setdiff1d(pool_pop, candidates)
    order = np.concatenate([rng.permutation(cand_pop), rng.permutation(others)])
    sample = np.sort(order[:len(order) if n_population is None else n_population])
    plan = ReferencePlan(mode, candidates, inside, evaluated, calib, pop, sample, seed,
                         {"k": k, "train_size_mean": float(inside.sum(1).mean()), "population_sets": list(population),
                          "n_candidates": len(candidates), "n_population": len(pop)})
    plan.check(split)
    return plan


@dataclass
class ReferenceModels:
    """Trained reference models (eval mode) of a plan, with their training info and the recipe they repeat."""

    plan: ReferencePlan
    models: list[nn.Module]
    infos: list[AuditedInfo]
    recipe: AuditedRecipe
    seconds: float

    @property
    def mode(self) -> str:
        return self.plan.mode


def reference_seed(seed: int, j: int) -> int:
    """Seed of model j: distinct from the audited model's and from each other's."""
    return int(np.random.SeedSequence([seed, j, 7919]).generate_state(1)[0] % (2 ** 31))


def train_references(pool: Pool, split: Split, plan: ReferencePlan, recipe: AuditedRecipe, device: torch.device,
                     seed: int = 0, cache_dir: str | Path | None = DEFAULT_CACHE,
                     progress: bool = False) -> ReferenceModels:
    """Train (or load from the cache) the plan's k models with the audited `recipe` (what trained the audited
    model, :class:`mintkit.models.audited.AuditedRecipe`), one after another on ``device``. A recipe with early
    stopping is run without it (``patience=0``, all its epochs): a reference model has no validation set of
    its own, and one drawn from the population would leave fewer non-members for the attacks."""
    plan.check(split)
    if recipe.train.patience:
        recipe = recipe.with_train(patience=0)
    t0 = time.perf_counter()
    models, infos = [], []
    empty = np.empty(0, np.int64)
    for j in range(plan.k):
        # a Split whose members are model j's training set: train_audited's recipe and cache key apply as is
        ref_split = Split({s: empty for s in SETS} | {"members": plan.train_indices(j)}, split.pool,
                          split.pool_size, seed, meta={"reference": j, "mode": plan.mode})
        model, info = train_audited(pool, ref_split, recipe, device, reference_seed(seed, j), cache_dir,
                                    progress=progress)
        models.append(model.eval())
        infos.append(info)
    return ReferenceModels(plan, models, infos, recipe, time.perf_counter() - t0)
