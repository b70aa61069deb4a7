"""The audited model every method audits: built from a seed, trained (or loaded) through the model cache, its quality.

`train_audited` is the one way a paper or an attack's reference model gets trained weights; the cache key holds
everything that shapes the model (docs/mint.md, "Audited model"; docs/attacks.md for the reference models).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

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


def _tensor_hash(t) -> str:
    """sha256 of an integer tensor's values (list objects have no hash)."""
    return hashlib.sha256(np.ascontiguousarray(torch.as_tensor(t).cpu().numpy().astype(np.int64)).tobytes()).hexdigest()[:16]


def build_audited(pool: Pool, arch: str, seed: int, dropout: float = 0.0, head: str = "softmax", build_fn=None,
                  model_kw: dict | None = None) -> nn.Module:
    """A fresh audited model for `pool` (zoo `arch`, or `build_fn` with the same signature), initialised
    from `seed`: the same arguments give the same initial weights (on cpu)."""
    seed_everything(seed)
    return (build_fn or build_model)(arch, num_classes=pool.num_classes, in_channels=pool.in_channels,
                                     image_size=pool.image_size, dropout=dropout, head=head, **(model_kw or {}))


def train_audited(pool: Pool, split: Split, arch: str, cfg: TrainConfig, device: torch.device, seed: int,
                  cache_dir: str | Path | None = DEFAULT_CACHE, dropout: float = 0.0, head: str = "softmax",
                  repeats: torch.Tensor | None = None, progress: bool = True, checkpoint: str | None = None,
                  build_fn=None, model_kw: dict | None = None,
                  optimizer_state_of: list[str] | tuple[str, ...] | None = None,
                  val_indices: np.ndarray | None = None) -> tuple[nn.Module, dict]:
    """Audited model trained on split['members'] (or loaded from `checkpoint` / the cache); info has history.

    val_indices: validation samples of early stopping (``cfg.patience > 0``; never members, never evaluated);
    they and the patience join the cache key only when stopping is on, so older cache entries stay valid.

    The cache key holds the dataset, the members' hash, arch, head, dropout, every training
    parameter, exposure repeats and seed: any change retrains, a rerun reuses.
    build_fn: builds the model instead of models.build_model, same signature (e.g. factors' margin-head
    SmallCNN); model_kw: extra build keywords (e.g. margin s, m). Both join the key only when given.
    optimizer_state_of: parameter names whose end-of-training optimiser state is saved beside the cached
    checkpoint (`extra`) and returned as info['optimizer_state'] (gMINT); joins the key only when given.
    """
    if checkpoint:
        return load_model(checkpoint).to(device).eval(), {"source": checkpoint, "cache_hit": False}

    def build() -> nn.Module:  # same init for the same key, hit or miss
        return build_audited(pool, arch, seed, dropout, head, build_fn, model_kw)

    def train(model: nn.Module) -> dict:
        return train_classifier(model, pool, split["members"], cfg, device, seed=seed, repeats=repeats,
                                progress=progress, keep_optimizer_state=optimizer_state_of,
                                val_indices=val_indices if cfg.patience else None)

    parts = {"dataset": split.pool, "pool_size": len(pool), "image_size": pool.image_size,
             "members": split.hashes()["members"], "arch": arch, "head": head, "dropout": dropout,
             "train": cfg.as_dict(), "seed": seed,
             "repeats": None if repeats is None else _tensor_hash(repeats)}
    if build_fn is not None:
        parts["build_fn"] = f"{build_fn.__module__}.{build_fn.__qualname__}"
    if model_kw:
        parts["model_kw"] = dict(model_kw)
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
        info = train(model)
        if optimizer_state_of:
            info["optimizer_state"] = info.pop("extra", {})
        return model.to(device), info | {"cache_hit": False}
    model, info, hit = ModelCache(cache_dir).get_or_train(parts, build, train)
    extra = info.pop("extra", {})
    if optimizer_state_of:  # saved beside the cached weights as the checkpoint's `extra`
        info["optimizer_state"] = extra
    return model.to(device).eval(), info | {"cache_hit": hit}


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
