"""Reference-model attacks in the audit: LiRA, RMIA, Watson, Ye, Salem and Song & Mittal beside MINT.

With ``n_reference`` = k > 0 the audit trains k **offline** reference models of the audited architecture
(the state dict's ``arch`` / ``build``) on known non-members only — E (the MINT model's non-members) and the
optional ``reference`` tree — never on a candidate member or a held-out image; :class:`ReferencePlan.check`
asserts it and ``references.json`` records every model's training images. Then each attack of
:mod:`mintkit.attacks` scores the held-out members and non-members of the audit's split, and joins the
audit's methods: its held-out scores go through the same rank test and the same Holm family.

What the audit cannot know is the audited model's training recipe: the reference models use
``reference_epochs`` / ``reference_lr`` / ``reference_batch_size`` / ``reference_optimizer``. Attacks that
calibrate against reference models are strongest when those match the audited model's recipe
(docs/audit.md, "Reference attacks").
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace

import numpy as np
from torch import nn

from mintkit.attacks.references import ReferenceModels, plan_references, train_references
from mintkit.attacks.pipeline import audit_attacks
from mintkit.attacks.run import LABELS, AttackResult
from mintkit.audit.data import AuditInputError, AuditPool
from mintkit.audit.models import AuditedModel, build_architecture, build_from_callable
from mintkit.core import precision as prec
from mintkit.core.records import Run, write_json
from mintkit.core.train import TrainConfig
from mintkit.models.audited import DEFAULT_CACHE, AuditedRecipe


def build_like(arch: str, num_classes: int, in_channels: int, image_size: int, dropout: float = 0.0,
               head: str = "softmax") -> nn.Module:
    """A fresh model of the audited architecture: ``arch`` is 'arch:NAME' (torchvision / timm) or
    'build:module:callable' (the user's builder). The build signature of
    :func:`mintkit.models.audited.build_audited`."""
    kind, _, spec = arch.partition(":")
    if kind == "arch":
        return build_architecture(spec, num_classes, in_channels)[0]
    if kind == "build":
        return build_from_callable(spec)[0]
    raise ValueError(f"build_like: arch {arch!r} must start with 'arch:' or 'build:'")


def pool_fingerprint(pool: AuditPool) -> str:
    """sha1 of the images, labels and normalisation: reference models are cached per data, not per folder name."""
    h = hashlib.sha1()
    for t in (pool.x, pool.y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps([list(pool.mean), list(pool.std)]).encode())
    return h.hexdigest()[:16]


def train_reference_models(A, progress: bool = False, cache_dir=DEFAULT_CACHE) -> ReferenceModels | None:
    """k offline reference models for audit ``A`` (None when ``n_reference`` is 0); also stored in ``A.refs``.
    They train in the audit's own ``precision``, whatever policy the kernel holds (docs/precision.md)."""
    P = A.P
    if not P.n_reference:
        return None
    arch = f"arch:{P.arch}" if P.arch else f"build:{P.build}"
    cfg = TrainConfig(epochs=P.reference_epochs, batch_size=P.reference_batch_size, lr=P.reference_lr,
                      optimizer=P.reference_optimizer, fit_check=P.fit_check, precision=P.precision)
    # the cache key holds split.pool: name it by the images' content, not by the members folder's name
    keyed = replace(A.split, pool=f"{A.split.pool}@{pool_fingerprint(A.pool)}")
    try:
        plan = plan_references(A.split, P.n_reference, "offline", seed=P.seed)
    except ValueError as e:  # too few non-members for calibration or for the reference models' training sets
        raise AuditInputError(f"reference attacks: {e}") from None
    with prec.using(P.precision):  # any pass below that reads the policy reads the audit's
        A.refs = train_references(A.pool, keyed, plan, AuditedRecipe(arch, cfg, build_fn=build_like), A.device,
                                  P.seed, cache_dir, progress=progress)
    return A.refs


def attack_methods(A, model: AuditedModel) -> dict[str, AttackResult]:
    """{attack: result} of ``model`` against A.refs on the held-out samples; the label says what it read and the
    seconds include its share of the signals."""
    if A.refs is None:
        raise AuditInputError("--n-reference > 0 but no reference models: call train_reference_models(A) first")
    t0 = time.perf_counter()
    results = audit_attacks(model.module, A.pool, A.split, A.device, attacks=A.P.attack_list, refs=A.refs,
                            n_boot=A.P.n_boot, seed=A.P.seed).only
    shared = time.perf_counter() - t0 - sum(r.seconds for r in results.values())
    k, n_train = A.refs.plan.k, int(A.refs.plan.inside.sum(1).mean())
    out = {}
    for name, r in results.items():
        what = f"{LABELS[name]}, {k} offline reference models (~{n_train} images each)"
        out[name] = replace(r, label=what, seconds=r.seconds + shared / len(results))
    return out


def record_references(run: Run, A) -> None:
    """references.json: the plan (every model's training pool indices and files), the recipe and the times."""
    if A.refs is None:
        return
    plan = A.refs.plan
    files = np.asarray(A.pool.files)
    write_json(run.dir / "references.json", {
        "mode": plan.mode, "k": plan.k, "recipe": A.refs.recipe.describe(), "seconds": A.refs.seconds,
        "cache_hits": [i.cache_hit for i in A.refs.infos],
        "train_indices": [plan.train_indices(j).tolist() for j in range(plan.k)],
        "train_files_first": [files[plan.train_indices(j)[:3]].tolist() for j in range(plan.k)],
        "calibration": {k: v.tolist() for k, v in plan.calibration.items()},
        "population_sample": plan.population_sample.tolist()})


def check_never_trained_on_candidates(references: dict, split_json: dict) -> None:
    """Raise AssertionError if a recorded reference model trained on a member or a held-out non-member
    (reads the run folder's references.json and split.json, as a reviewer would)."""
    forbidden = set()
    for s in ("members", "eval_members", "eval_nonmembers"):
        forbidden |= set(split_json["indices"][s])
    for j, idx in enumerate(references["train_indices"]):
        bad = forbidden & set(idx)
        assert not bad, f"reference model {j} trained on {len(bad)} members or held-out images"
