"""Checkpoints as plain state dicts with their config, and a cache of trained audited models.

Loading uses `torch.load(weights_only=True)`: a pickle from a stranger cannot run code. The cache
key hashes everything that shapes a model; entries are written atomically and carry a marker that
is written last, so an interrupted run never leaves an entry a later run would trust.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from mintkit import __version__
from mintkit.core.paths import resolve as resolve_path
from mintkit.core.records import atomic_write_bytes
from mintkit.models.zoo import build_model


class CheckpointError(RuntimeError):
    """A checkpoint is corrupt, foreign, or unsafe to load."""


def save_checkpoint(path: str | Path, model: nn.Module, config: dict, extra: dict | None = None) -> Path:
    """Write {'state_dict', 'config' (JSON text), 'extra' (tensors/plain values)} atomically."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": "mintkit-checkpoint-1", "state_dict": state, "config": json.dumps(config, sort_keys=True),
                "extra": extra or {}}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint safely. Returns {'state_dict', 'config': dict, 'extra'}.

    A bare state dict (e.g. someone's own model) is accepted with config = {}. A relative path resolves
    against the mintkit home (mintkit.core.paths), as from the CLI so from Jupyter.
    """
    path = resolve_path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load raises KeyError, UnpicklingError, ... on foreign files
        raise CheckpointError(f"{path}: not a PyTorch checkpoint or not a safe one (refused by torch.load(weights_only=True)): "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    if isinstance(obj, dict) and obj.get("format") == "mintkit-checkpoint-1":
        return {"state_dict": obj["state_dict"], "config": json.loads(obj["config"]), "extra": obj.get("extra", {})}
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"state_dict": obj, "config": {}, "extra": {}}
    raise CheckpointError(f"{path}: holds {type(obj).__name__}, expected a mintkit checkpoint or a state dict")


def load_model(path: str | Path, build: Callable[..., nn.Module] | None = None, **overrides) -> nn.Module:
    """Rebuild a zoo model from a checkpoint's config (or `build(**config)`) and load its weights strictly."""
    ck = load_checkpoint(path)
    cfg = ck["config"].get("model", ck["config"]) | overrides
    if not cfg and build is None:
        raise CheckpointError(f"{path}: a bare state dict; pass build=... or the model config as keywords")
    model = (build or build_model)(**cfg)
    try:
        model.load_state_dict(ck["state_dict"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {cfg}: {str(e).splitlines()[0]}") from e
    return model


def cache_key(parts: dict) -> str:
    """Hash of everything that shapes a trained model (plus the mintkit version)."""
    blob = json.dumps(parts | {"mintkit_version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class ModelCache:
    """Trained-model cache: `<dir>/<key>.pt` + `<key>.json` (written last = the entry is complete)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = resolve_path(directory)  # one cache for the CLI and Jupyter (mintkit.core.paths)

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.dir / f"{key}.pt", self.dir / f"{key}.json"

    def state_file(self, key: str) -> Path:
        """Where a training in progress keeps its per-epoch state (`mintkit.core.train_state`)."""
        return self.dir / f"{key}.train-state.pt"

    def has(self, key: str) -> bool:
        ck, marker = self.paths(key)
        return ck.exists() and marker.exists()

    def get_or_train(self, parts: dict, build: Callable[[], nn.Module], train: Callable[..., dict],
                     resumable: bool = False) -> tuple[nn.Module, dict, bool]:
        """Return (model, info, hit). On a miss: build, train (returns info, e.g. history), save atomically.

        `train` may return tensors under info['extra'] (e.g. an optimiser state): they are saved in the
        checkpoint, not in the JSON marker, and come back as info['extra'] on a hit and on a miss alike.
        resumable: `train` is called as train(model, state_file) with the key's `state_file`, where it keeps its
        per-epoch state; the file is deleted once the entry is complete.
        """
        model = build()
        # the architecture's parameter names and shapes join the key: a changed model class never loads stale weights
        shapes = sorted((k, tuple(v.shape)) for k, v in model.state_dict().items())
        key = cache_key(parts | {"state_shapes": hashlib.sha256(repr(shapes).encode()).hexdigest()[:16]})
        ck, marker = self.paths(key)
        if self.has(key):
            loaded = load_checkpoint(ck)
            model.load_state_dict(loaded["state_dict"], strict=True)
            info = json.loads(marker.read_text()).get("info", {})
            return model, info | {"cache_key": key, "extra": loaded["extra"]}, True
        info = dict(train(model, self.state_file(key)) if resumable else train(model))
        extra = info.pop("extra", None) or {}
        save_checkpoint(ck, model, {"model": getattr(model, "config", {}), "key_parts": parts}, extra=extra)
        atomic_write_bytes(marker, json.dumps({"key": key, "parts": parts, "info": info}, default=str).encode())
        self.state_file(key).unlink(missing_ok=True)  # after the marker: a stop in between resumes, never retrains
        return model, info | {"cache_key": key, "extra": extra}, False

