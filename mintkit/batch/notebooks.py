"""A notebook and its parameters: where the notebooks are, the ``parameters`` cell (read, generated, written),
the paper's typed Params behind it, and the checks every value passes before any kernel starts."""
from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mintkit.batch.engines import is_parameters_cell, read_cells
from mintkit.core.params import ParameterError, Params, Spec, check, fields_of
from mintkit.core.paths import resolve as resolve_path
from mintkit.models.checkpoints import CheckpointError, load_checkpoint
from mintkit.reference import PAPERS

# The notebooks and presets ship inside the package (mintkit/notebooks links to the checkout's notebooks/,
# and a wheel holds a copy), so `reproduce` works from an installed package as from a checkout.
NOTEBOOKS = (Path(__file__).parents[1] / "notebooks").resolve()


def resolve_notebook(ref: str | Path, notebooks_dir: Path = NOTEBOOKS) -> tuple[str, Path]:
    """(paper, path) of a paper name (`mint`) or a notebook path; unknown names list the valid ones."""
    p = Path(ref)
    if p.suffix == ".ipynb" or p.exists():
        if not p.is_file():
            have = sorted(x.stem for x in Path(notebooks_dir).glob("*.ipynb"))
            raise ParameterError(f"notebook {str(p)!r} not found; valid: {', '.join(have or PAPERS)} "
                                 f"(paper names) or a path to an existing .ipynb")
        return p.stem, p
    nb = Path(notebooks_dir) / f"{ref}.ipynb"
    if not nb.is_file() and ref in PAPERS:
        raise ParameterError(f"paper {ref!r}: its notebook {nb} is missing")
    if not nb.is_file():
        have = sorted(x.stem for x in Path(notebooks_dir).glob("*.ipynb"))
        raise ParameterError(f"unknown notebook {str(ref)!r}; valid: {', '.join(have or PAPERS)} or a path to an .ipynb")
    return str(ref), nb


def parameters_cell(path: Path) -> dict[str, tuple[Any, str]]:
    """{name: (literal value, comment)} of the notebook's cell tagged `parameters` (error when there is none).

    Reads both ``name = value  # help`` and the generated ``name: type = value  # help`` lines.
    """
    src = parameters_cell_source(path)
    lines = src.splitlines()
    out = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value_node = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value_node = node.target.id, node.value
        else:
            continue
        try:
            value = ast.literal_eval(value_node)
        except ValueError:
            raise ParameterError(f"{path}: parameter {target!r} is not a literal") from None
        comment = lines[node.lineno - 1].partition("#")[2].strip()
        out[target] = (value, comment)
    return out


def parameters_cell_source(path: Path) -> str:
    """The source of the notebook's ``parameters`` cell (error when there is none)."""
    try:
        cells = read_cells(path)
    except ValueError as e:
        raise ParameterError(str(e)) from None
    for cell in cells:
        if is_parameters_cell(cell):
            return cell["source"]
    raise ParameterError(f"{path}: no code cell tagged 'parameters' (papermill cannot inject parameters)")


def write_parameters_cell(path: Path, source: str) -> bool:
    """Rewrite the notebook's ``parameters`` cell with `source` (generated from the paper's Params).

    Returns whether the file changed; everything else in the notebook is kept byte for byte.
    """
    import nbformat  # deferred: optional (absent on GPU machines without Jupyter); writing keeps its format

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            if cell.source == source:
                return False
            cell.source = source
            nbformat.write(nb, str(path))
            return True
    raise ParameterError(f"{path}: no code cell tagged 'parameters' (papermill cannot inject parameters)")


# notebooks of the package whose parameters cell is generated from a Params class, and where that class lives
TYPED_NOTEBOOKS = {**{p: f"mintkit.papers.{p}" for p in PAPERS}, "audit": "mintkit.audit"}


def params_class(paper: str) -> type[Params] | None:
    """The notebook's typed parameters (``mintkit.papers.<paper>.Params``, ``mintkit.audit.Params``); None for
    any other notebook."""
    if paper not in TYPED_NOTEBOOKS:
        return None
    return getattr(importlib.import_module(TYPED_NOTEBOOKS[paper]), "Params", None)


def schema_for(paper: str, path: Path) -> dict[str, Spec]:
    """{name: Spec}: the paper's Params fields; for any other notebook, read off its parameters cell."""
    cls = params_class(paper)
    if cls is not None:
        return fields_of(cls)
    return {k: Spec(k, type(v), v, c, None) for k, (v, c) in parameters_cell(path).items()}


@functools.lru_cache(maxsize=64)
def _checkpoint_error(path: str) -> str | None:
    try:
        load_checkpoint(path)
    except (OSError, CheckpointError) as e:
        return str(e)
    return None


def readable_checkpoint(path: str, where: str = "") -> None:
    """ParameterError unless `path` loads with ``torch.load(weights_only=True)`` as a checkpoint or state dict."""
    err = _checkpoint_error(str(path))
    if err:
        raise ParameterError(f"{where + ': ' if where else ''}checkpoint {path!r}: {err}")


@dataclass
class Notebook:
    """A notebook, its parameters (typed when the paper has a Params class) and its cell's defaults (checked)."""

    paper: str
    path: Path
    spec: dict[str, Spec]
    defaults: dict
    params_cls: type[Params] | None = None

    @classmethod
    def load(cls, ref: str | Path, notebooks_dir: Path = NOTEBOOKS) -> "Notebook":
        paper, path = resolve_notebook(ref, notebooks_dir)
        spec = schema_for(paper, path)
        pcls = params_class(paper)
        nb = cls(paper, path, spec, {}, pcls)
        cell = {k: v for k, (v, _c) in parameters_cell(path).items()}
        nb.defaults = nb.check(cell, f"{path} parameters cell")
        return nb

    def check(self, values: dict, where: str = "") -> dict:
        """Effective parameters: unknown names, types, choices, the paper's cross-field rules and a given
        ``checkpoint`` file checked - all before any kernel starts. A checkpoint that does not exist is an input
        the run needs (mintkit.batch.inputs: `run` refuses, `reproduce` marks the run 'needs input')."""
        if self.params_cls is not None:
            out = self.params_cls.from_values(self.defaults | values, where).as_dict()
            if out.get("checkpoint") and resolve_path(out["checkpoint"]).exists():
                readable_checkpoint(out["checkpoint"], where)
            return out
        try:  # a notebook without a Params class: the plain-mapping check of mintkit.core.params
            return check(self.defaults | values, {k: (s.type, s.default, s.help) for k, s in self.spec.items()})
        except ParameterError as e:
            raise ParameterError(f"{where}: {e}" if where else str(e)) from None

    def valid(self) -> str:
        return ", ".join(sorted(self.spec))
