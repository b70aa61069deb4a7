"""Load a model that mintkit did not train: a state dict with its architecture, TorchScript, or torch.export.

Three ways in (``docs/audit.md``, "The model"):

| file | how the model is built | methods |
|---|---|---|
| state dict (``torch.save(model.state_dict())``) | ``arch`` (torchvision / timm name) or ``build`` | mint, gmint, loss |
| TorchScript (``torch.jit.save``) | loaded as it is (taps found in its graph, see ``taps``) | mint, loss |
| torch.export (``torch.export.save``) | loaded as it is, unflattened to its module tree | mint, loss |

State dicts are read with ``torch.load(weights_only=True)``: a pickled Python object (a whole model
saved with ``torch.save(model)``) is refused, since unpickling it could run any code. A state dict
that does not fit the named architecture is reported key by key; nothing is guessed.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import pickle
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mintkit.audit.data import AuditInputError

KINDS = ("python", "torchscript", "export")  # AuditedModel.kind
STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "model", "net")  # {"<key>": state dict, "epoch": ...}


class ModelLoadError(AuditInputError):
    """The model file cannot be loaded, or its weights do not fit the architecture."""


@dataclass
class AuditedModel:
    """The audited model as the audit runs it.

    module: the callable model (an nn.Module, a ScriptModule or an unflattened exported program).
    kind: one of KINDS. source: how it was built, for the report. input_shape: (C, H, W) an exported
    program was traced with (None: any). fixed_batch: the batch size an exported program only accepts
    (None: any); batches are padded to it and trimmed after.
    """

    module: nn.Module
    kind: str
    source: str
    path: str
    input_shape: tuple[int, int, int] | None = None
    fixed_batch: int | None = None
    notes: tuple[str, ...] = ()
    type_names: dict[str, str] = field(default_factory=dict)  # module name -> class name where the module hides it
    tappers: dict = field(default_factory=dict, repr=False)  # TorchScript: tap list -> rewritten graph

    @property
    def differentiable(self) -> bool:
        """Per-sample gradients (gMINT) need a Python nn.Module: torch.func cannot see inside the others."""
        return self.kind == "python"

    def to(self, device: torch.device) -> AuditedModel:
        self.module.to(device)
        return self


# ----------------------------------------------------------------------------------- file sniffing
def sniff(path: str | Path) -> str:
    """'torchscript', 'export' or 'torch' (a torch.save file: state dict or pickle) from the zip layout."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    if not zipfile.is_zipfile(path):
        return "torch"  # legacy (pre-1.6) torch.save format, or not a torch file: torch.load says which
    names = zipfile.ZipFile(path).namelist()
    if any("/code/__torch__/" in n for n in names) and any(n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith(("/models/model.json", "/archive_format")) for n in names):
        return "export"
    return "torch"


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A tensor state dict from `path` (weights_only) and notes on what was unwrapped."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        # torch's message opens with how to load it anyway; the line naming the refused object is the useful one
        first = next((ln for ln in lines if "Unsupported global" in ln or "Unpickler" in ln), lines[0] if lines else
                     type(e).__name__)
        raise ModelLoadError(
            f"{path}: refused by torch.load(weights_only=True): it holds pickled Python objects, not only tensors "
            "(e.g. a whole model saved with torch.save(model)), and unpickling could run any code. Save the "
            "weights with torch.save(model.state_dict(), path), or the model with torch.jit.save / "
            f"torch.export.save. torch said: {first}") from None
    notes = []
    if isinstance(obj, dict) and obj.get("format") == "mintkit-checkpoint-1":
        obj, notes = obj["state_dict"], ["mintkit checkpoint: its state_dict is used"]
    elif isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = [k for k in STATE_DICT_WRAPPERS if isinstance(obj.get(k), dict)
                 and obj[k] and all(isinstance(v, torch.Tensor) for v in obj[k].values())]
        if len(inner) != 1:
            raise ModelLoadError(f"{path}: a dict with keys {sorted(map(str, obj))[:10]} but no single state dict "
                                 f"under one of {', '.join(STATE_DICT_WRAPPERS)}; save model.state_dict() alone")
        obj, notes = obj[inner[0]], [f"the state dict under key {inner[0]!r} is used"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path}: holds {type(obj).__name__}, not a state dict (name -> tensor)")
    return obj, notes


# ----------------------------------------------------------------------------------- architectures
def build_architecture(arch: str, num_classes: int, in_channels: int) -> tuple[nn.Module, str]:
    """A fresh torchvision or timm model by name ('torchvision:NAME', 'timm:NAME' or a bare NAME,
    torchvision first) with `num_classes` outputs. timm models take `in_channels`; torchvision ones
    are 3-channel (convert grayscale images with channels 3)."""
    import timm
    import torchvision

    lib, _, name = arch.rpartition(":")
    if lib not in ("", "torchvision", "timm"):
        raise ModelLoadError(f"--arch {arch!r}: prefix {lib!r} unknown; use torchvision:NAME, timm:NAME or NAME")
    tv = set(torchvision.models.list_models())
    if lib in ("", "torchvision") and name in tv:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes), f"torchvision:{name}"
    if lib in ("", "timm") and timm.is_model(name):
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
        return model, f"timm:{name}"
    names = {"torchvision": sorted(tv), "timm": timm.list_models()}
    close = difflib.get_close_matches(name, names.get(lib) or names["torchvision"] + names["timm"], n=6)
    raise ModelLoadError(f"--arch {arch!r} is neither a torchvision nor a timm architecture"
                         + (f"; close names: {', '.join(close)}" if close else "")
                         + " (torchvision.models.list_models(), timm.list_models())")


def build_from_callable(spec: str) -> tuple[nn.Module, str]:
    """`module:callable` or `path/to/file.py:callable`, called with no arguments, returning an nn.Module."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ModelLoadError(f"--build {spec!r}: expected module:callable or path/to/file.py:callable")
    try:
        if target.endswith(".py"):
            file = Path(target)
            if not file.is_file():
                raise ModelLoadError(f"--build {spec!r}: {file} does not exist")
            mod_spec = importlib.util.spec_from_file_location(f"mintkit_audit_user_{file.stem}", file)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_spec.name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ImportError as e:
        raise ModelLoadError(f"--build {spec!r}: cannot import {target!r} ({e}); run from the folder that holds it "
                             "or put it on PYTHONPATH") from None
    fn: Callable | None = getattr(module, attr, None)
    if not callable(fn):
        raise ModelLoadError(f"--build {spec!r}: {target} has no callable {attr!r}")
    model = fn()
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"--build {spec!r} returned {type(model).__name__}, not an nn.Module")
    return model, f"build:{spec}"


def fit_state_dict(model: nn.Module, state: dict[str, torch.Tensor], what: str, path: str,
                   num_classes: int) -> list[str]:
    """Load `state` strictly; on any mismatch raise listing missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    notes = []
    if all(k.startswith("module.") for k in state) and not any(k.startswith("module.") for k in own):
        state = {k[len("module."):]: v for k, v in state.items()}  # saved from nn.DataParallel / DDP
        notes.append("keys carried the 'module.' prefix of nn.DataParallel; it was removed")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        lines = [f"{path}: the weights do not fit {what}:"]
        for title, keys in (("missing (in the model, not in the file)", missing),
                            ("unexpected (in the file, not in the model)", unexpected)):
            if keys:
                lines.append(f"  {len(keys)} {title}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}")
        if shapes:
            lines.append(f"  {len(shapes)} of other shape (file vs model): "
                         + ", ".join(f"{k} {a} vs {b}" for k, a, b in shapes[:8]))
            if all(len(a) == len(b) and a[0] != b[0] and a[1:] == b[1:] for _, a, b in shapes):
                k, a, b = shapes[0]  # only the output count differs: an output layer for another class count
                lines.append(f"  only the number of outputs differs: the file's {k} has {a[0]}, the model {b[0]}; the "
                             f"folders hold {num_classes} classes: the weights, the model and the folders must "
                             "agree on the number of classes")
        raise ModelLoadError("\n".join(lines))
    model.load_state_dict(state, strict=True)
    return notes


def _export_input(ep) -> tuple[tuple[int, int, int] | None, int | None]:
    """(C, H, W) and batch size of an exported program's one image input; None where dynamic."""
    from torch.export.graph_signature import InputKind
    user = [s.arg.name for s in ep.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]
    if len(user) != 1:
        raise ModelLoadError(f"the exported program takes {len(user)} inputs; the audit feeds one image batch")
    node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == user[0])
    shape = list(node.meta["val"].shape)
    if len(shape) != 4:
        raise ModelLoadError(f"the exported program's input has shape {shape}; the audit feeds [B, C, H, W] images")
    ints = [d if isinstance(d, int) else None for d in shape]
    chw = tuple(ints[1:]) if None not in ints[1:] else None
    return chw, ints[0]


# ----------------------------------------------------------------------------------- entry point
def load_audited_model(path: str, arch: str = "", build: str = "", num_classes: int = 0,
                       in_channels: int = 3) -> AuditedModel:
    """The audited model from `path`: a state dict with `arch` or `build`, or a TorchScript / exported file.

    num_classes and in_channels (from the class folders and the images) build `arch`; the class count
    is checked against the model's output later, on a probe batch (`mintkit.audit.checks`).
    """
    if arch and build:
        raise ModelLoadError("give --arch or --build, not both")
    kind = sniff(path)
    if kind in ("torchscript", "export") and (arch or build):
        raise ModelLoadError(f"{path} is a {kind} file: it holds its own architecture; drop --arch / --build")
    if kind == "torchscript":
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as e:
            raise ModelLoadError(f"{path}: not a loadable TorchScript file: {str(e).splitlines()[0]}") from None
        return AuditedModel(module.eval(), "torchscript", f"TorchScript {type(module).__name__}", str(path))
    if kind == "export":
        try:
            ep = torch.export.load(str(path))
        except Exception as e:  # noqa: BLE001 - any failure to deserialise becomes one clear error
            raise ModelLoadError(f"{path}: not a loadable torch.export file: {type(e).__name__}: {e}") from None
        chw, batch = _export_input(ep)
        # unflattened submodules are all InterpreterModules; the graph remembers the original classes
        types = {path: cls.rpartition(".")[2] for n in ep.graph.nodes
                 for path, cls in (n.meta.get("nn_module_stack") or {}).values()}
        return AuditedModel(torch.export.unflatten(ep), "export", "torch.export program", str(path), chw, batch,
                            type_names=types)
    state, notes = read_state_dict(path)
    if not (arch or build):
        raise ModelLoadError(f"{path} is a state dict (weights without their architecture): name the architecture "
                             "with --arch (a torchvision or timm name, e.g. resnet18 or timm:resnet18) or with --build "
                             "(module:callable returning the nn.Module), or give a TorchScript / torch.export file")
    model, what = build_architecture(arch, num_classes, in_channels) if arch else build_from_callable(build)
    notes += fit_state_dict(model, state, what, str(path), num_classes)
    return AuditedModel(model.eval(), "python", what, str(path), notes=tuple(notes))
