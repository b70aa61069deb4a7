"""Typed parameters: one frozen dataclass per paper on the common base `Params`.

One source for everything that reads a parameter:

| reader | what it gets from the dataclass |
|---|---|
| the notebook's ``parameters`` cell | *generated* by `parameters_source` (``python -m mintkit params --write``) |
| papermill (``--help-notebook``, injection) | one ``name: type = literal  # help`` line per field, all parseable |
| the validation cell after it | ``P = paper.Params.from_notebook(globals())``: the typed, checked instance |
| the runner (presets, ``-p``) | `from_values` before any kernel starts: names, types and choices |
| stage functions | attributes of ``P`` (``P.lr``) and properties for derived values |

A field is declared with `param(default, help, choices=..., bounds=..., items=...)`. ``choices`` is a tuple of
valid values or a zero-argument callable returning them (lazy, so that a paper's parameters can name the model zoo
without importing it at class creation). ``bounds`` is the interval a number must lie in, written as read:
``"[0, 1)"``, ``"(0, 1]"``, ``"[1, inf)"``. ``items`` marks a comma list held in a ``str`` (``"8, 64,256"``): the
type of each item, which `split_list` parses; ``choices`` and ``bounds`` then apply to each item, and
``nonempty=True`` refuses an empty list. Both are checked on construction, before the cross-field rules of a
subclass's ``check`` method; an edited copy is ``dataclasses.replace(P, lr=1e-4)`` and is checked again.
"""
from __future__ import annotations

import ast
import dataclasses
import math
import re
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


# ---------------------------------------------------------------------- which names the parameters cells set
def _literal(node: ast.AST) -> bool:
    """A value a parameters cell (or papermill's injected cell) can hold: a literal, float('inf'), inf or nan."""
    if isinstance(node, ast.Name):
        return node.id in ("inf", "nan", "True", "False", "None")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float" and not node.keywords:
        return all(_literal(a) for a in node.args)
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


def literal_assignments(source: str) -> list[str] | None:
    """The names a cell assigns when every statement is ``name[: type] = literal`` (a parameters cell, papermill's
    injected cell); None for any other cell."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    names = []
    for st in body:
        if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and st.value is not None \
                and _literal(st.value):
            names.append(st.target.id)
        elif isinstance(st, ast.Assign) and all(isinstance(t, ast.Name) for t in st.targets) and _literal(st.value):
            names += [t.id for t in st.targets]
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant) or isinstance(st, ast.Pass):
            continue
        else:
            return None
    return names


def parameters_cell_names(ns: Mapping[str, Any]) -> list[str] | None:
    """The names set by the parameters cell(s) run just before the current cell, read from the kernel's input
    history (``In``: IPython's, or the exec engine's copy of it): the run of literal-assignment cells (the
    ``parameters`` cell, papermill's injected cell) right before the cell calling the check. None without a
    history (a plain mapping): then every public scalar global is taken for a parameter."""
    history = ns.get("In")
    if not isinstance(history, list) or not history or not all(isinstance(h, str) for h in history):
        return None
    names: list[str] = []
    for source in reversed(history[:-1]):  # history[-1] is the cell running the check
        found = literal_assignments(source)
        if not found:
            break
        names += found
    return names


def unknown_names(ns: Mapping[str, Any], valid: Iterable[str]) -> list[str]:
    """Names the parameters cells set (see parameters_cell_names) that are not parameters. Without a history,
    every public scalar global that is not a parameter (a fresh namespace: what papermill or -p injected)."""
    valid = set(valid)
    names = parameters_cell_names(ns)
    if names is None:
        names = [k for k, v in ns.items() if not k.startswith("_") and k not in IPYTHON_NAMES
                 and not isinstance(v, types.ModuleType) and isinstance(v, SCALARS)]
    return sorted({k for k in names if k not in valid and not k.startswith("_")})


def unknown_error(unknown: list[str], valid: Iterable[str]) -> ParameterError:
    return ParameterError(
        f"unknown parameter(s) {unknown}; valid: {', '.join(sorted(valid))}. Correct the name in the parameters "
        "cell (or in the -p option / preset that injected it); in Jupyter, run the parameters cell again, then "
        "this one (Kernel > Restart and run all also clears names other cells left behind)")


def split_list(text: str, typ: type = str) -> tuple:
    """The one comma-list parser of the parameters: 'a, b,,c' -> ('a', 'b', 'c'); '8, 64' with typ=int -> (8, 64).

    Empty items are dropped (presets keep lists for grids, so a list parameter is a comma string); an item `typ`
    cannot read raises ValueError.
    """
    return tuple(typ(t.strip()) for t in text.split(",") if t.strip())


_INTERVAL = re.compile(r"^\s*([\[(])\s*(-?inf|[-+0-9.e]+)\s*,\s*(inf|[-+0-9.e]+)\s*([\])])\s*$")


@dataclass(frozen=True)
class Bounds:
    """A closed, open or half-open interval ``[lo, hi)`` a number must lie in, parsed from its text."""

    text: str

    def __post_init__(self) -> None:
        if not _INTERVAL.match(self.text):
            raise TypeError(f"bounds {self.text!r}: write an interval, e.g. '[0, 1)', '(0, 1]', '[1, inf)'")

    def holds(self, v: float) -> bool:
        left, lo, hi, right = _INTERVAL.match(self.text).groups()
        lo, hi = float(lo), float(hi)
        return (lo <= v if left == "[" else lo < v) and (v <= hi if right == "]" else v < hi)

    def __str__(self) -> str:
        """'>= 1' for [1, inf), '> 0' for (0, inf), else the interval: 'in [0, 1)'."""
        left, lo, hi, _ = _INTERVAL.match(self.text).groups()
        if math.isinf(float(hi)):
            return f"{'>=' if left == '[' else '>'} {lo}"
        return f"in {self.text.strip()}"


def param(default: Any, help: str, *, choices: Iterable | Callable[[], Iterable] | None = None,
          bounds: str | None = None, items: type | None = None, nonempty: bool = False) -> Any:
    """A dataclass field with its help text and (optionally) its valid values in the metadata.

    choices: the valid values (of each item, for a list); bounds: the interval a number lies in (each item's, for
    a list), e.g. ``"[0, 1)"``; items: the item type of a comma list held in a ``str`` field (`split_list`);
    nonempty: a list must name at least one item. The help text becomes the comment of the generated
    parameters-cell line, so it may hold neither ``=`` nor ``#`` (papermill's parser splits on both); `fields_of`
    asserts it.
    """
    return field(default=default, metadata={"help": help, "choices": choices,
                                            "bounds": Bounds(bounds) if bounds else None, "items": items,
                                            "nonempty": nonempty})


@dataclass(frozen=True)
class Spec:
    """One parameter as the runner and the generators see it."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None
    bounds: Bounds | None = None
    items: type | None = None  # a comma list of this type, held in a str
    nonempty: bool = False

    def validate(self, value: Any) -> None:
        """ParameterError unless `value` (already of `type`) meets the declared choices, bounds and items."""
        if self.items is not None:
            try:
                values = split_list(value, self.items)
            except ValueError:
                kind = {int: "whole numbers", float: "numbers"}.get(self.items, f"{self.items.__name__} values")
                raise ParameterError(f"{self.name}={value!r}: a comma list of {kind}") from None
            if self.nonempty and not values:
                raise ParameterError(f"{self.name}={value!r}: give at least one value")
        else:
            values = (value,)
        if self.choices is not None:
            bad = [v for v in values if v not in self.choices]
            if bad:
                what = f": unknown {bad}" if self.items is not None else " is not valid"
                raise ParameterError(f"{self.name}={value!r}{what}; valid: {', '.join(map(str, self.choices))}")
        if self.bounds is not None:
            bad = [v for v in values if not self.bounds.holds(v)]
            if bad:
                each = "each value " if self.items is not None else ""
                raise ParameterError(f"{self.name}={value!r}: {each}must be {self.bounds}")


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
        items = f.metadata.get("items")
        if items is not None and typ is not str:
            raise TypeError(f"{cls.__name__}.{f.name}: a comma list (items=...) is held in a str field")
        out[f.name] = Spec(f.name, typ, f.default, help_text, tuple(choices) if choices is not None else None,
                           f.metadata.get("bounds"), items, f.metadata.get("nonempty", False))
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
    threads: int = param(1, "torch CPU threads of this run (0: torch's default, every core; 1: one core, so a batch "
                            "with --jobs auto runs one run per core)")
    precision: str = param("auto", "audited models' training and extraction: auto (bf16 on CUDA, fp32 on a CPU), "
                                   "fp32, bf16 (on a CPU only where it has native bf16; docs/precision.md)",
                           choices=PRECISIONS)
    fit_check: bool = param(True, "stop the run when an audited model did not learn its own training set "
                                  "(mintkit.core.fit); false only for a smoke test of the plumbing with too few epochs")
    out_dir: str = param("runs/scratch", "run folder to write")

    def __post_init__(self) -> None:
        specs = fields_of(type(self))
        for name, spec in specs.items():
            value = coerce(name, getattr(self, name), spec.type)
            object.__setattr__(self, name, value)
            spec.validate(value)
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
        be ignored: a name the parameters cells set that is not a parameter is an error. Only those cells'
        names are read (`parameters_cell_names`, from the kernel's input history), so globals left by later
        cells (a loop's ``name``) never count, and running the cells again from the top after a whole pass
        works. Values are the parameters' current globals (defaults for any not set).
        """
        specs = fields_of(cls)
        unknown = unknown_names(ns, specs)
        if unknown:
            raise unknown_error(unknown, specs)
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
        extra += f" ({'each ' if s.items else ''}{s.bounds})" if s.bounds else ""
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
