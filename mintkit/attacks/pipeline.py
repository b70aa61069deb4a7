"""Plan, train (or load) the reference models and run the attacks in one call, with quick defaults.

The quick defaults (k = 4 offline reference models with the audited recipe, the identity query, the seven
attacks of ``OFFLINE_ATTACKS``) are what the papers' notebooks can add beside their own membership numbers;
each reference model costs about one audited-model training (none on a cache hit).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from mintkit.attacks.references import ReferenceModels, plan_references, train_references
from mintkit.attacks.run import AttackData, AttackResult, run_attacks
from mintkit.core.data import Pool
from mintkit.core.splits import Split
from mintkit.core.train import TrainConfig
from mintkit.methods.audited import DEFAULT_CACHE

QUICK_K = 4


def audit_attacks(model: nn.Module, pool: Pool, split: Split, device: torch.device, arch: str, cfg: TrainConfig,
                  seed: int = 0, k: int = QUICK_K, mode: str = "offline", train_size: int | None = None,
                  cache_dir: str | Path | None = DEFAULT_CACHE, dropout: float = 0.0, head: str = "softmax",
                  build_fn=None, model_kw: dict | None = None, attacks: tuple[str, ...] | None = None,
                  options: dict[str, dict] | None = None, queries: tuple[str, ...] = ("identity",),
                  max_calibration: int | None = 1000, n_population: int | None = 2000, n_boot: int = 200,
                  progress: bool = False) -> tuple[dict[str, AttackResult], AttackData, ReferenceModels]:
    """Reference models of ``mode`` trained like the audited model (``arch``, ``cfg``, ``dropout``, ``head``,
    ``build_fn``, ``model_kw`` as passed to train_audited), then :func:`mintkit.attacks.run.run_attacks`.

    Returns (results, data, refs); ``data.seconds`` and ``refs.seconds`` hold the shared costs.
    """
    plan = plan_references(split, k, mode, train_size, max_calibration=max_calibration, n_population=n_population,
                           seed=seed)
    refs = train_references(pool, split, plan, arch, cfg, device, seed, cache_dir, dropout, head, build_fn, model_kw,
                            progress)
    t0 = time.perf_counter()
    results, data = run_attacks(model, pool, split, refs, device, attacks, options, queries,
                                max_calibration=max_calibration, n_boot=n_boot, seed=seed)
    data.seconds["run_attacks"] = time.perf_counter() - t0
    return results, data, refs
