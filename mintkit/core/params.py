"""Typed parameters: one frozen dataclass per paper on the common base `Params`.

One source for everything that reads a parameter:

| reader | what it gets from the dataclass |
|---|---|
| the notebook's ``parameters`` cell | *generated* by `parameters_source` (``python -m mintkit params --write``) |
| papermill (``--help-notebook``, injection) | one ``name: type = literal  # help`` line per field, all parseable |
| the validation cell after it | ``P = paper.Params.from_notebook(globals())``: the typed, checked instance |
| the runner (presets, ``-p``) | `from_values` before any kernel starts: names, types and choices |
| stage functions | attributes of ``P`` (``P.lr``) and properties for derived values |

A field is declared with `param(default, help, choices=...)`. ``choices`` is a tuple of valid values
or a zero-argument callable returning them (lazy, so that a paper's parameters can name the model zoo
without importing it at class creation). Cross-field rules live in a subclass's ``check`` method; an
edited copy is ``dataclasses.replace(P, lr=1e-4)`` and is checked again.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Mapping

from mintkit.core.data import DATASETS, is_dataset_name
from mintkit.core.precision import PRECISIONS

SCALARS = (str, int, float, bool)
IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open", "display"}


class ParameterError(ValueError):
    """Unknown parameter name, wrong type or a value outside its choices."""


def param(default: Any, help: str, *, choices: Iterable | Callable[[], Iterable] | None = None) -> Any:
    """A dataclass field with its help text and (optionally) its valid values in the metadata.

    The help text becomes the comment of the generated parameters-cell line, so it may hold neither
    ``=`` nor ``#`` (papermill's parser splits on both); `fields_of` asserts it.
    """
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Spec:
    """One parameter as the runner and the generators see it."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None


def fields_of(cls: type) -> dict[str, Spec]:
    """{name: Spec} of a parameters dataclass, in declaration order (choices resolved)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        typ = hints[f.name]
        if typ not in SCALARS:
            raise TypeError(f"{cls.__name__}.{f.name}: parameters are scalars (str, int, float, bool), not {typ}")
        help_text = f.metadata.get("help", "")
        if "=" in help_text or "#" in help_text or "\n" in help_text:
            raise TypeError(f"{cls.__name__}.{f.name}: help text may not hold '=', '#' or a newline "
                            f"(papermill's parameter parser splits on them): {help_text!r}")
        choices = f.metadata.get("choices")
        if callable(choices):
            choices = choices()
        out[f.name] = Spec(f.name, typ, f.default, help_text, tuple(choices) if choices is not None else None)
    return out


def coerce(name: str, value: Any, typ: type) -> Any:
    """Accept an int for a float; reject anything else that is not `typ` (a bool is not an int)."""
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, bool):
        raise ParameterError(f"parameter {name!r} must be int, got bool {value!r}")
    if not isinstance(value, typ):
        raise ParameterError(f"parameter {name!r} must be {typ.__name__}, got {type(value).__name__} {value!r}")
    return value


@dataclass(frozen=True)
class Params:
    """What every notebook reads. Subclasses add their paper's fields (all with defaults)."""

    PAPER: ClassVar[str] = ""
    READS_DATASET: ClassVar[bool] = True  # False: `dataset` is not read (the audit names its data otherwise)

    seed: int = param(0, "seed of the split, the audited model and the MINT model")
    device: str = param("auto", "cpu, cuda, cuda:N or auto (CUDA when present)")
    dataset: str = param("digits", "dataset name (mintkit.core.data.DATASETS) or imagefolder:PATH")
    data_root: str = param("data", "folder with downloaded datasets")
    threads: int = param(1, "torch CPU threads (0 keeps torch's default; 1 is fastest for these small models)")
    precision: str = param("auto", "audited models' training and extraction: auto (bf16 on CUDA and on CPUs with "
                                   "native bf16, else fp32), fp32, bf16 (docs/precision.md)", choices=PRECISIONS)
    out_dir: str = param("runs/scratch", "run folder to write")

    def __post_init__(self) -> None:
        specs = fields_of(type(self))
        for name, spec in specs.items():
            value = coerce(name, getattr(self, name), spec.type)
            object.__setattr__(self, name, value)
            if spec.choices is not None and value not in spec.choices:
                raise ParameterError(f"{name}={value!r} is not valid; valid: {', '.join(map(str, spec.choices))}")
        if self.READS_DATASET and not is_dataset_name(self.dataset):
            raise ParameterError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if self.threads < 0:
            raise ParameterError(f"threads={self.threads}: use 0 (torch's default) or a positive count")
        self.check()

    def check(self) -> None:
        """Cross-field rules of a paper (raise ParameterError); the base has none."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_values(cls, values: Mapping[str, Any], where: str = "") -> "Params":
        """The checked instance from a mapping (a preset, ``-p`` values); unknown names list the valid ones."""
        specs = fields_of(cls)
        unknown = sorted(set(values) - set(specs))
        prefix = f"{where}: " if where else ""
        if unknown:
            raise ParameterError(f"{prefix}unknown parameter(s) {unknown}; valid: {', '.join(sorted(specs))}")
        try:
            return cls(**dict(values))
        except ParameterError as e:
            raise ParameterError(f"{prefix}{e}") from None

    @classmethod
    def from_notebook(cls, ns: Mapping[str, Any]) -> "Params":
        """The cell after the parameters cell: ``P = paper.Params.from_notebook(globals())``.

        papermill injects parameters as plain assignments, so a misspelt injected name would otherwise
        be ignored: every public global holding a plain literal that is not a parameter is an error.
        Objects the later cells create (``P``, ``run``, figures, frames) are not literals, so running
        this cell again in JupyterLab, after edits or after the whole notebook, works.
        """
        specs = fields_of(cls)
        unknown = sorted(k for k, v in ns.items() if not k.startswith("_") and k not in specs
                         and k not in IPYTHON_NAMES and not isinstance(v, types.ModuleType)
                         and isinstance(v, SCALARS))
        if unknown:
            raise ParameterError(f"unknown parameter(s) {unknown}; valid: {', '.join(sorted(specs))}")
        return cls.from_values({k: ns[k] for k in specs if k in ns})

    def replace(self, **changes: Any) -> "Params":
        """`dataclasses.replace`, checked again."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------- generated parameters cell
def parameters_source(cls: type) -> str:
    """The notebook's ``parameters`` cell: one ``name: type = literal  # help`` line per field."""
    lines = []
    for s in fields_of(cls).values():
        lines.append(f"{s.name}: {s.type.__name__} = {s.default!r}  # {s.help}".rstrip())
    return "\n".join(lines)


def describe(cls: type | dict[str, Spec]) -> str:
    """One line per parameter: name, type, default, help (and the choices when fixed)."""
    specs = cls if isinstance(cls, dict) else fields_of(cls)
    rows = []
    for s in specs.values():
        extra = f" [{', '.join(map(str, s.choices))}]" if s.choices else ""
        rows.append(f"{s.name:<20} {s.type.__name__:<6} {s.default!r:<18} {s.help}{extra}")
    return "\n".join(rows)


# ---------------------------------------------------------------------- notebooks without a Params class
# A user's own notebook (or the runner's test fixture) may validate against a plain {name: (type, default, help)}
# mapping instead of a dataclass: the same rules, without choices or cross-field checks.
def check(values: dict[str, Any], spec: dict[str, tuple[type, Any, str]]) -> dict[str, Any]:
    """Effective values of `spec` (defaults filled in); unknown names and wrong types raise ParameterError."""
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; valid: {', '.join(sorted(spec))}")
    return {name: coerce(name, values.get(name, default), typ) for name, (typ, default, _h) in spec.items()}


def check_notebook(ns: Mapping[str, Any], spec: dict[str, tuple[type, Any, str]]) -> dict[str, Any]:
    """`Params.from_notebook` for a plain mapping spec: literal globals that are not parameters are errors."""
    unknown = sorted(k for k, v in ns.items() if not k.startswith("_") and k not in spec
                     and k not in IPYTHON_NAMES and not isinstance(v, types.ModuleType) and isinstance(v, SCALARS))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; valid: {', '.join(sorted(spec))}")
    return check({k: ns[k] for k in spec if k in ns}, spec)
