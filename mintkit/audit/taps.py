"""Taps by module name: the output of any named module of the audited model, on any of the three kinds.

* Python modules and unflattened exported programs: a forward hook on ``model.get_submodule(name)``
  (``mintkit.models.hooks.forward_hooks``, the one hook primitive).
* TorchScript: ScriptModules refuse Python hooks, so the tap is found in the model's inlined graph:
  every graph node records the module it was inlined from (``Node.getModuleHierarchy``); the value
  a module hands to the rest of the graph (the last tensor produced inside it and used outside it)
  is added to the graph's outputs, and that graph is run as a function of the same weights. A module
  called more than once is tapped at its last call; one fused away by TorchScript has no tap.

The name ``""`` is the model's own output (logits). Reduction as the MINT paper's Vanilla model:
per-channel maximum of [B, C, H, W] maps, [B, T, D] tokens reduced over T (``mintkit.models.extract``).
See ``docs/audit.md``, "Taps".
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mintkit.audit.data import AuditInputError, AuditPool
from mintkit.audit.models import AuditedModel
from mintkit.core.data import iterate_batches
from mintkit.models.extract import reduce_activation
from mintkit.models.hooks import first_tensor, forward_hooks

OUTPUT = ""  # tap name of the model output


@dataclass(frozen=True)
class TapInfo:
    """One tappable module: its dotted name, type and output shape [C, ...] (batch dimension left out)."""

    name: str
    type: str
    shape: tuple[int, ...]

    @property
    def top_level(self) -> bool:
        return "." not in self.name


# ------------------------------------------------------------------------------------ TorchScript graphs
def _hierarchy(node) -> str:
    """Dotted module name a graph node was inlined from ('' = the top-level forward)."""
    parts = []
    for p in node.getModuleHierarchy().split("."):
        m = re.match(r"^(.*)\((.*)\)$", p)
        name = m.group(1) if m else p
        if name and name not in ("SELF", "UNKNOWN_INSTANCE"):
            parts.append(name)
    return ".".join(parts)


def _script_output_value(graph, name: str):
    """The last tensor produced inside module `name` and used outside it, or None."""
    prefix = name + "."

    def inside(n) -> bool:
        return (_hierarchy(n) + ".").startswith(prefix)

    found = None
    for n in graph.nodes():
        if not inside(n):
            continue
        for o in n.outputs():
            if isinstance(o.type(), torch._C.TensorType) and any(not inside(u.user) for u in o.uses()):
                found = o
    return found


def script_module_names(module: torch.jit.ScriptModule) -> list[str]:
    """Module names that leave a trace in the inlined graph (the ones a tap can read)."""
    names = {_hierarchy(n) for n in module.inlined_graph.nodes()}
    full = set()
    for n in names:  # parents of a traced node are modules too
        parts = n.split(".")
        full.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    declared = [n for n, _ in module.named_modules() if n]
    return [n for n in declared if n in full]


class ScriptTapper:
    """x -> (logits, {tap: tensor}) for a ScriptModule, through its rewritten inlined graph."""

    def __init__(self, module: torch.jit.ScriptModule, taps: list[str]) -> None:
        self.module, self.taps = module, [t for t in taps if t != OUTPUT]
        graph = module.inlined_graph
        values = [graph.return_node().inputsAt(0)]
        for t in self.taps:
            v = _script_output_value(graph, t)
            if v is None:
                raise AuditInputError(f"--taps {t!r}: the TorchScript graph holds no output of this module (it may be "
                                      "inlined away or fused); choose another from the tap list")
            values.append(v)
        tup = graph.create("prim::TupleConstruct", values)
        tup.output().setType(torch._C.TupleType([v.type() for v in values]))
        tup.insertBefore(graph.return_node())
        graph.eraseOutput(0)
        graph.registerOutput(tup.output())
        self.fn = torch._C._create_function_from_graph("mintkit_audit_taps", graph)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.fn(self.module._c, x)
        return out[0], dict(zip(self.taps, out[1:]))


# ------------------------------------------------------------------------------------ one forward pass
def as_audited(model: AuditedModel | nn.Module) -> AuditedModel:
    """Any nn.Module (or ScriptModule) as an AuditedModel, so that the tap functions take plain models too."""
    if isinstance(model, AuditedModel):
        return model
    kind = "torchscript" if isinstance(model, torch.jit.ScriptModule) else "python"
    return AuditedModel(model, kind, type(model).__name__, "")


def _pad(model: AuditedModel, x: torch.Tensor) -> torch.Tensor:
    """x [B, ...] padded with copies of its last sample to an exported program's static batch size."""
    n = len(x)
    if not model.fixed_batch or n == model.fixed_batch:
        return x
    if n > model.fixed_batch:
        raise ValueError(f"batch of {n} exceeds the exported program's batch size {model.fixed_batch}")
    return torch.cat([x, x[-1:].expand(model.fixed_batch - n, *x.shape[1:])])


def module_names(model: AuditedModel) -> list[str]:
    """Dotted names of every module a tap can name."""
    if model.kind == "torchscript":
        return script_module_names(model.module)
    return [n for n, _ in model.module.named_modules() if n]


def run_with_taps(model: AuditedModel | nn.Module, x: torch.Tensor,
                  taps: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward of x [B, C, H, W]: logits [B, K] and {tap: output [B, ...]} (``""`` = logits).

    `model`: an AuditedModel or any nn.Module / ScriptModule; taps are dotted module names.
    """
    model = as_audited(model)
    n = len(x)
    x = _pad(model, x)
    inner = [t for t in taps if t != OUTPUT]
    if model.kind == "torchscript":
        if inner and tuple(inner) not in model.tappers:  # rewriting the graph costs ms: once per tap list
            model.tappers[tuple(inner)] = ScriptTapper(model.module, inner)
        logits, got = model.tappers[tuple(inner)](x) if inner else (model.module(x), {})
    else:
        got: dict[str, torch.Tensor | None] = {}
        known = set(module_names(model))
        for t in inner:
            if t not in known:
                close = [m for m in known if m.endswith(t) or t in m][:8]
                raise AuditInputError(f"--taps {t!r} is not a module of the model"
                                      + (f"; similar: {', '.join(sorted(close))}" if close else "")
                                      + " (list them with --list-taps)")
        with forward_hooks({t: model.module.get_submodule(t) for t in inner}, got.setdefault):  # first call kept
            logits = model.module(x)
        missing = [t for t in inner if got.get(t) is None]
        if missing:
            raise AuditInputError(f"tap(s) {missing} never ran or returned no tensor in the forward pass")
    logits = first_tensor(logits)
    got[OUTPUT] = logits
    return logits[:n], {t: got[t][:n] for t in taps}


@torch.no_grad()
def list_taps(model: AuditedModel | nn.Module, x: torch.Tensor) -> list[TapInfo]:
    """Every tappable module with its output shape on the probe batch x [B, C, H, W], in forward order
    where hooks can see it (TorchScript: declaration order); the model output ``""`` comes last."""
    model = as_audited(model)
    names = module_names(model)
    if model.kind == "torchscript":
        # one tapper per name: a module that TorchScript fused away is left out, not an error
        infos = []
        types = dict(model.module.named_modules())
        for n in names:
            try:
                _, got = run_with_taps(model, x, [n])
            except AuditInputError:
                continue
            infos.append(TapInfo(n, types[n].original_name, tuple(got[n].shape[1:])))
    else:
        order: dict[str, TapInfo] = {}
        modules = {n: model.module.get_submodule(n) for n in names}

        def seen(n: str, t: torch.Tensor | None) -> None:
            if t is not None and n not in order:
                order[n] = TapInfo(n, model.type_names.get(n, type(modules[n]).__name__), tuple(t.shape[1:]))

        with forward_hooks(modules, seen):
            model.module(_pad(model, x))
        infos = list(order.values())
    logits, _ = run_with_taps(model, x, [])
    return infos + [TapInfo(OUTPUT, "output", tuple(logits.shape[1:]))]


def default_taps(infos: list[TapInfo]) -> list[str]:
    """The last two top-level modules with [C, H, W] maps (pooling layers left out), and the output.

    A small, late, model-independent choice; for a model with no maps (a ViT) only the output.
    """
    maps = [i.name for i in infos if i.top_level and i.name and len(i.shape) == 3 and "Pool" not in i.type]
    return maps[-2:] + [OUTPUT]


def tap_label(tap: str) -> str:
    return "output" if tap == OUTPUT else tap


# ------------------------------------------------------------------------------------ features of a set
@torch.no_grad()
def extract(model: AuditedModel | nn.Module, pool: AuditPool, indices: np.ndarray, taps: list[str], device: torch.device,
            batch_size: int = 128) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Reduced features {tap: [N, C]} and logits [N, K] (float32, cpu) of pool[indices], one pass."""
    model = as_audited(model).to(device)
    model.module.eval()
    bs = model.fixed_batch or batch_size
    feats: dict[str, list[torch.Tensor]] = {t: [] for t in taps}
    logits = []
    for b in iterate_batches(np.asarray(indices), bs):
        x, _ = pool.batch(b)
        out, got = run_with_taps(model, x.to(device), taps)
        logits.append(out.float().cpu())
        for t in taps:
            feats[t].append(reduce_activation(got[t].float(), "max").flatten(1).cpu())
    return {t: torch.cat(v) for t, v in feats.items()}, torch.cat(logits)


def gmint_default_layers(model: AuditedModel) -> list[str]:
    """The last nn.Conv2d and the last nn.Linear of the model (a late layer and the classifier)."""
    convs = [n for n, m in model.module.named_modules() if isinstance(m, nn.Conv2d)]
    linears = [n for n, m in model.module.named_modules() if isinstance(m, nn.Linear)]
    return convs[-1:] + linears[-1:]
