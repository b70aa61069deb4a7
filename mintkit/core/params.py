"""Parameter schemas of the four notebooks and the check that follows every parameters cell.

papermill injects `-p lr 1` as an int and passes unknown names silently; `check` raises on both
before any work starts, listing the valid names. A schema is {name: (type, default, help)}.
"""
from __future__ import annotations

from typing import Any

COMMON: dict[str, tuple[type, Any, str]] = {
    "dataset": (str, "digits", "dataset name (mintkit.core.data.DATASETS)"),
    "data_root": (str, "data", "folder with downloaded datasets"),
    "arch": (str, "smallcnn", "audited architecture (mintkit.models.zoo.ARCHS)"),
    "setup": (str, "entry", "tap setup: entry, middle, output (aMINT/gMINT), combined (gMINT)"),
    "seed": (int, 0, "seed of split, training and MINT model"),
    "device": (str, "auto", "'auto' picks CUDA when present"),
    "audited_epochs": (int, 30, "epochs of the audited model"),
    "mint_epochs": (int, 20, "epochs of the MINT model"),
    "batch_size": (int, 64, "batch size of the audited model"),
    "lr": (float, 1e-3, "learning rate of the audited model"),
    "n_members": (int, 600, "|D|: samples that train the audited model"),
    "n_external": (int, 400, "|E|: non-members that train the MINT model"),
    "n_eval": (int, 200, "evaluation members = evaluation non-members"),
    "protocol": (str, "heldout", "'paper' (the paper's evaluation) or 'heldout'"),
    "out_dir": (str, "runs/scratch", "run folder to write"),
}


class ParameterError(ValueError):
    """Unknown parameter name or wrong type."""


def schema(*extra: dict[str, tuple[type, Any, str]]) -> dict[str, tuple[type, Any, str]]:
    """COMMON plus paper-specific entries (later ones win)."""
    out = dict(COMMON)
    for e in extra:
        out.update(e)
    return out


def coerce(name: str, value: Any, typ: type) -> Any:
    """Accept int for float; reject anything else that is not `typ` (bool is not int)."""
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, bool):
        raise ParameterError(f"parameter {name!r} must be int, got bool {value!r}")
    if not isinstance(value, typ):
        raise ParameterError(f"parameter {name!r} must be {typ.__name__}, got {type(value).__name__} {value!r}")
    return value


def check(values: dict[str, Any], spec: dict[str, tuple[type, Any, str]]) -> dict[str, Any]:
    """Validate `values` (e.g. the notebook's globals() after the parameters cell) against `spec`.

    `values` (a preset, CLI parameters) must hold no other names. Returns the effective parameters
    with defaults filled in.
    """
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; valid: {', '.join(sorted(spec))}")
    out = {}
    for name, (typ, default, _help) in spec.items():
        out[name] = coerce(name, values.get(name, default), typ)
    return out


IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open", "display"}


def check_notebook(ns: dict[str, Any], spec: dict[str, tuple[type, Any, str]]) -> dict:
    """The cell after a notebook's parameters cell: validate `globals()` before anything else is defined.

    papermill adds injected parameters as plain assignments, so a misspelt name would otherwise be
    ignored silently: every public, non-module global that is not in `spec` is an error here.
    """
    import types
    unknown = sorted(k for k, v in ns.items() if not k.startswith("_") and k not in spec
                     and k not in IPYTHON_NAMES and not isinstance(v, types.ModuleType))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; valid: {', '.join(sorted(spec))}")
    return check({k: ns[k] for k in spec if k in ns}, spec)


def describe(spec: dict[str, tuple[type, Any, str]]) -> str:
    """One line per parameter: name, type, default, help."""
    return "\n".join(f"{k:<18} {t.__name__:<6} {d!r:<16} {h}" for k, (t, d, h) in spec.items())
