"""The audited model every method audits: its recipe, built from a seed, trained (or loaded) through the model
cache, its quality.

`AuditedRecipe` is what shapes the model besides its data and seed (architecture, head, dropout, training
hyper-parameters), passed whole. `train_audited` is the one way a paper or an attack's reference model gets
trained weights; the cache key holds the recipe and everything else that shapes the model (docs/mint.md,
"Audited model"; docs/attacks.md for the reference models). It is the methods' subject, not a method: it lives
beside the models it trains.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from mintkit.core import precision as prec
from mintkit.core.data import Pool
from mintkit.core.face_metrics import identification_accuracy, verification_accuracy
from mintkit.core.splits import Split
from mintkit.core.train import TrainConfig, accuracy, seed_everything, train_classifier
from mintkit.models.checkpoints import ModelCache, load_model
from mintkit.models.extract import extract
from mintkit.models.iresnet import is_face_model
from mintkit.models.zoo import build_model

DEFAULT_CACHE = Path(".cache") / "mintkit" / "models"


@dataclass(frozen=True)
class AuditedRecipe:
    """How an audited model is built and trained, passed whole (papers, reference models, the audit).

    arch: a zoo name (`mintkit.models.zoo.build_model`), or what `build_fn` reads; train: the training
    hyper-parameters (epochs, batch size, lr, optimizer, weight decay, momentum, precision, patience, fit guard);
    dropout, head: of the built model; build_fn: builds the model instead of build_model, same signature (e.g.
    factors' margin-head SmallCNN); model_kw: extra build keywords (e.g. margin s, m). build_fn and model_kw
    join the cache key only when given, so keys of recipes without them never changed.
    """

    arch: str
    train: TrainConfig = field(default_factory=TrainConfig)
    dropout: float = 0.0
    head: str = "softmax"
    build_fn: Callable[..., nn.Module] | None = None
    model_kw: dict | None = None

    def replace(self, **changes) -> AuditedRecipe:
        return replace(self, **changes)

    def with_train(self, **changes) -> AuditedRecipe:
        """The recipe with some training hyper-parameters changed (e.g. ``patience=0``)."""
        return replace(self, train=replace(self.train, **changes))

    @property
    def build_name(self) -> str | None:
        """module.qualname of `build_fn` (as the cache key and the reference models' record spell it)."""
        return None if self.build_fn is None else f"{self.build_fn.__module__}.{self.build_fn.__qualname__}"

    def build(self, pool: Pool, seed: int) -> nn.Module:
        """A fresh model for `pool` initialised from `seed`: the same arguments give the same weights (on cpu)."""
        seed_everything(seed)
        return (self.build_fn or build_model)(self.arch, num_classes=pool.num_classes, in_channels=pool.in_channels,
                                              image_size=pool.image_size, dropout=self.dropout, head=self.head,
                                              **(self.model_kw or {}))

    def key_parts(self) -> dict:
        """The recipe's part of the cache key: arch, head, dropout, train (TrainConfig.as_dict), build_fn and
        model_kw when given. Unchanged since the recipe travelled as keywords (tests/test_train_extract.py checks
        two known keys)."""
        parts = {"arch": self.arch, "head": self.head, "dropout": self.dropout, "train": self.train.as_dict()}
        if self.build_fn is not None:
            parts["build_fn"] = self.build_name
        if self.model_kw:
            parts["model_kw"] = dict(self.model_kw)
        return parts

    def describe(self) -> dict:
        """A JSON-able record of the recipe (reference models, attack audits)."""
        return {"arch": self.arch, "train": self.train.as_dict(), "dropout": self.dropout, "head": self.head,
                "build_fn": self.build_name, "model_kw": dict(self.model_kw or {})}


@dataclass
class AuditedInfo:
    """What is known of an audited model beside its weights; typed, read by attribute (the history stays a dict).

    From `train_audited`: source (the checkpoint read; "" when trained or taken from the cache), cache_hit,
    cache_key ("" without a cache), history (train_classifier's record: loss, val_acc, best_epoch, epochs_run,
    seconds, ...), optimizer_state ({parameter name: tensors} of ``optimizer_state_of``, else None), seconds
    (wall time of the call: training, or loading). Filled by the papers' stages: null_model (mintkit.core.null),
    accuracy ({audited_train_accuracy, audited_accuracy}: reported beside every number), adam_state (gMINT's
    {layer: {exp_avg, exp_avg_sq, step}} for rule adam-state, None when not kept).
    """

    source: str = ""
    cache_hit: bool = False
    cache_key: str = ""
    history: dict = field(default_factory=dict)
    optimizer_state: dict | None = None
    seconds: float = 0.0
    null_model: str = "off"
    accuracy: dict[str, float] = field(default_factory=dict)
    adam_state: dict | None = None

    @property
    def train_seconds(self) -> float:
        """Seconds the training took when it ran (on a cache hit: the first training's, from the cache's record)."""
        return float(self.history.get("seconds", 0.0))


def _tensor_hash(t) -> str:
    """sha256 of an integer tensor's values (list objects have no hash)."""
    return hashlib.sha256(np.ascontiguousarray(torch.as_tensor(t).cpu().numpy().astype(np.int64)).tobytes()).hexdigest()[:16]


def build_audited(pool: Pool, arch: str, seed: int) -> nn.Module:
    """A fresh zoo model `arch` for `pool` with the default head and no dropout, initialised from `seed`
    (`AuditedRecipe.build` for any other recipe)."""
    return AuditedRecipe(arch).build(pool, seed)


def train_audited(pool: Pool, split: Split, recipe: AuditedRecipe, device: torch.device, seed: int,
                  cache_dir: str | Path | None = DEFAULT_CACHE, *, repeats: torch.Tensor | None = None,
                  progress: bool = True, checkpoint: str | None = None,
                  optimizer_state_of: list[str] | tuple[str, ...] | None = None,
                  val_indices: np.ndarray | None = None) -> tuple[nn.Module, AuditedInfo]:
    """Audited model trained on split['members'] with `recipe` (or loaded from `checkpoint` / the cache).

    val_indices: validation samples of early stopping (``recipe.train.patience > 0``; never members, never
    evaluated); they and the patience join the cache key only when stopping is on, so older entries stay valid.

    The cache key holds the dataset, the members' hash, the recipe (`AuditedRecipe.key_parts`), exposure
    repeats and seed: any change retrains, a rerun reuses, a run stopped mid-training resumes at its last
    finished epoch (the cache keeps the training state per epoch; without a cache nothing is kept).
    optimizer_state_of: parameter names whose end-of-training optimiser state is saved beside the cached
    checkpoint (`extra`) and returned as info.optimizer_state (gMINT); joins the key only when given.
    """
    t0 = time.perf_counter()
    if checkpoint:
        model = load_model(checkpoint).to(device).eval()
        return model, AuditedInfo(source=checkpoint, seconds=time.perf_counter() - t0)
    cfg = recipe.train

    def build() -> nn.Module:  # same init for the same key, hit or miss
        return recipe.build(pool, seed)

    def train(model: nn.Module, state_file: Path | None = None) -> dict:
        return train_classifier(model, pool, split["members"], cfg, device, seed=seed, repeats=repeats,
                                progress=progress, keep_optimizer_state=optimizer_state_of,
                                val_indices=val_indices if cfg.patience else None, state_file=state_file)

    base = recipe.key_parts()
    # the order of the parts is the old keyword order (json sorts the keys, but keep the record readable)
    parts = {"dataset": split.pool, "pool_size": len(pool), "image_size": pool.image_size,
             "members": split.hashes()["members"], "arch": base.pop("arch"), "head": base.pop("head"),
             "dropout": base.pop("dropout"), "train": base.pop("train"), "seed": seed,
             "repeats": None if repeats is None else _tensor_hash(repeats)} | base
    if optimizer_state_of:
        parts["optimizer_state_of"] = sorted(optimizer_state_of)
    trained_in = prec.effective(device, cfg.precision) if cfg.amp else "fp32"
    if trained_in != ("bf16" if device.type == "cuda" else "fp32"):  # keys of the old default paths unchanged
        parts["precision"] = trained_in
    if cfg.patience:
        if val_indices is None or not len(val_indices):
            raise ValueError(f"patience={cfg.patience} needs validation samples (val_indices)")
        if np.isin(val_indices, split["members"]).any():
            raise ValueError("validation samples of early stopping overlap the members")
        parts["val"] = _tensor_hash(np.sort(np.asarray(val_indices)))
    if cache_dir is None:
        model = build()
        history = train(model)
        extra = history.pop("extra", {})
        return model.to(device), AuditedInfo(history=history, optimizer_state=extra if optimizer_state_of else None,
                                             seconds=time.perf_counter() - t0)
    # resumable: a stopped run goes on at its last finished epoch (mintkit.core.train_state)
    model, history, hit = ModelCache(cache_dir).get_or_train(parts, build, train, resumable=True)
    extra = history.pop("extra", {})
    key = history.pop("cache_key")
    # saved beside the cached weights as the checkpoint's `extra`
    return model.to(device).eval(), AuditedInfo(cache_hit=hit, cache_key=key, history=history,
                                                optimizer_state=extra if optimizer_state_of else None,
                                                seconds=time.perf_counter() - t0)


def audited_accuracy(model: nn.Module, pool: Pool, split: Split, device: torch.device,
                     test_idx: np.ndarray | None = None) -> dict:
    """{'audited_train_accuracy': on members, 'audited_accuracy': on `test_idx` (default: eval non-members)}."""
    test_idx = split["eval_nonmembers"] if test_idx is None else test_idx
    return {"audited_train_accuracy": accuracy(model, pool, split["members"], device),
            "audited_accuracy": accuracy(model, pool, test_idx, device)}


FACE_METRICS = {"identification": identification_accuracy, "verification": verification_accuracy}


def audited_quality(model: nn.Module, pool: Pool, split: Split, device: torch.device,
                    test_idx: np.ndarray | None = None, face_metric: str = "identification",
                    max_face: int = 4000, seed: int = 0) -> dict[str, float]:
    """How well the audited model does its own task: {'audited_train_accuracy', 'audited_accuracy'}.

    Classifiers: top-1 accuracy on the members and on never-seen samples `test_idx` [n] (default: the
    evaluation non-members; NaN when empty). Face models (`models.iresnet.is_face_model`): a classifier's
    accuracy is undefined on identities it never trained on, and a loaded backbone's head is untrained, so
    both numbers come from the embeddings (the ``outcome`` tap) with `face_metric` (``identification``:
    leave-one-out 1-NN; ``verification``: LFW-style pairs) over at most `max_face` samples of the evaluation
    members and of the evaluation non-members. See docs/mint.md, "Audited quality".
    """
    if face_metric not in FACE_METRICS:
        raise ValueError(f"unknown face_metric {face_metric!r}; valid: {', '.join(FACE_METRICS)}")
    if is_face_model(model):
        group = pool.group.cpu().numpy()

        def on(idx: np.ndarray) -> float:
            idx = np.random.default_rng(seed).permutation(np.asarray(idx))[:max_face]
            if not len(idx):
                return float("nan")
            emb = extract(model, pool, idx, ["outcome"], device)["outcome"].float().numpy()
            return FACE_METRICS[face_metric](emb, group[idx])

        return {"audited_train_accuracy": on(split["eval_members"]), "audited_accuracy": on(split["eval_nonmembers"])}
    test = split["eval_nonmembers"] if test_idx is None else np.asarray(test_idx)
    return {"audited_train_accuracy": accuracy(model, pool, split["members"], device),
            "audited_accuracy": accuracy(model, pool, test, device) if len(test) else float("nan")}
