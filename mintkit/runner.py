"""Batch reproduction: notebooks x parameter grids -> one self-describing run folder per run (papermill).

A run's effective parameters are, later ones winning: the paper's schema defaults (`mintkit.<paper>.PARAMS`),
the literals of the notebook's `parameters` cell, the preset YAML(s), the `-p` overrides. They are validated
with `mintkit.params.check` before any kernel starts, so a misspelt name or a wrong type fails in a second,
not after a model has trained. `out_dir` is always set by the runner.

Profiles (`reproduce --profile`):
  quick  each notebook's own defaults (bundled `digits` data, CPU minutes), `--seeds N` seeds (default 1)
  paper  every `notebooks/params/<paper>/*.yaml`; list values are grids, expanded as a cross product

Folders: `<out>/<paper>/<preset>[-<grid values>]-<hash8 of the effective parameters>`. A folder whose
status.json says complete and whose params.json equals the planned parameters is skipped, so an interrupted
batch resumes without losing a finished run. A failing run (exception, timeout, dead kernel) gets status.json
= failed with the error; its partial executed.ipynb is kept and the batch goes on.
"""
from __future__ import annotations

import ast
import concurrent.futures as cf
import datetime as _dt
import hashlib
import itertools
import json
import os
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .params import ParameterError, check, coerce
from .reference import PAPERS

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
PRESETS = NOTEBOOKS / "params"
PROFILES = ("quick", "paper")
RUNNER_KEYS = ("out_dir",)  # set by the runner, never by a preset; left out of the hash and of resume checks
RUN_FILES = ("status.json", "params.json", "executed.ipynb", "results.csv")  # what marks a runner-owned folder


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, obj: Any) -> None:
    """Atomic (temp file + rename), like records.write_json, without importing torch into the CLI."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- notebooks and schemas
def resolve_notebook(ref: str | Path, notebooks_dir: Path = NOTEBOOKS) -> tuple[str, Path]:
    """(paper, path) of a paper name (`mint`) or a notebook path; unknown names list the valid ones."""
    p = Path(ref)
    if p.suffix == ".ipynb" or p.exists():
        if not p.is_file():
            raise ParameterError(f"notebook {str(p)!r} not found")
        return p.stem, p
    nb = Path(notebooks_dir) / f"{ref}.ipynb"
    if not nb.is_file() and ref in PAPERS:
        raise ParameterError(f"paper {ref!r}: its notebook {nb} is missing")
    if not nb.is_file():
        have = sorted(x.stem for x in Path(notebooks_dir).glob("*.ipynb"))
        raise ParameterError(f"unknown notebook {str(ref)!r}; valid: {', '.join(have or PAPERS)} or a path to an .ipynb")
    return str(ref), nb


def parameters_cell(path: Path) -> dict[str, tuple[Any, str]]:
    """{name: (literal value, comment)} of the notebook's cell tagged `parameters` (error when there is none)."""
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            src = cell.source
            break
    else:
        raise ParameterError(f"{path}: no code cell tagged 'parameters' (papermill cannot inject parameters)")
    lines = src.splitlines()
    out = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                raise ParameterError(f"{path}: parameter {node.targets[0].id!r} is not a literal") from None
            comment = lines[node.lineno - 1].partition("#")[2].strip()
            out[node.targets[0].id] = (value, comment)
    return out


def schema_for(paper: str, path: Path) -> dict[str, tuple[type, Any, str]]:
    """The paper module's PARAMS (mintkit.<paper>) for the four papers; else a schema read off the parameters cell."""
    if paper in PAPERS:
        import importlib
        module = importlib.import_module(f"mintkit.{paper}")
        return dict(module.PARAMS)
    return {k: (type(v), v, c) for k, (v, c) in parameters_cell(path).items()}


@dataclass
class Notebook:
    """A notebook, its schema and the defaults of its parameters cell (validated)."""

    paper: str
    path: Path
    spec: dict
    defaults: dict

    @classmethod
    def load(cls, ref: str | Path, notebooks_dir: Path = NOTEBOOKS) -> "Notebook":
        paper, path = resolve_notebook(ref, notebooks_dir)
        spec = schema_for(paper, path)
        cell = {k: v for k, (v, _c) in parameters_cell(path).items()}
        try:
            defaults = check(cell, spec)
        except ParameterError as e:
            raise ParameterError(f"{path} parameters cell: {e}") from None
        return cls(paper, path, spec, defaults)

    def valid(self) -> str:
        return ", ".join(sorted(self.spec))


# --------------------------------------------------------------------------- parameter values
def parse_cli_value(name: str, text: str, spec: dict) -> Any:
    """A `-p NAME VALUE` string, typed as YAML would, then coerced to the schema type ("-p lr 1" -> 1.0)."""
    import yaml
    if name not in spec:
        raise ParameterError(f"unknown parameter {name!r}; valid: {', '.join(sorted(spec))}")
    typ = spec[name][0]
    if typ is str:
        return text
    if typ in (int, float):
        try:  # plain Python literals first: YAML reads "1e3" as a string
            value = typ(text) if typ is float else int(text)
        except ValueError:
            value = yaml.safe_load(text)
            if typ is int and isinstance(value, float) and value.is_integer():
                value = int(value)
    else:
        value = yaml.safe_load(text)
    return coerce(name, value, typ)


def load_preset(path: str | Path) -> dict:
    """A preset YAML: a flat mapping of parameter names (an empty file is {})."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"preset {str(path)!r} not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ParameterError(f"preset {path}: expected 'name: value' pairs, got {type(data).__name__}")
    return data


def _is_grid(name: str, value: Any, spec: dict) -> bool:
    typ = spec[name][0] if name in spec else None
    if typ in (list, tuple):  # a list-typed parameter is a grid only as a list of lists
        return isinstance(value, list) and bool(value) and all(isinstance(v, (list, tuple)) for v in value)
    return isinstance(value, list)


def validate(values: dict, nb: Notebook, where: str = "") -> dict:
    """Validated effective parameters (defaults of the cell filled in); `values` must be grid-free."""
    bad = [k for k in values if k in RUNNER_KEYS]
    if bad:
        raise ParameterError(f"{where or 'parameters'}: {bad} are set by the runner (use --out)")
    try:
        return check(nb.defaults | values, nb.spec)
    except ParameterError as e:
        raise ParameterError(f"{where + ': ' if where else ''}{e}") from None


def expand_grid(values: dict, nb: Notebook, where: str = "") -> list[tuple[dict, dict]]:
    """[(validated params, grid point)] for the cross product of list values (order: keys as written)."""
    unknown = sorted(set(values) - set(nb.spec))
    if unknown:
        raise ParameterError(f"{where + ': ' if where else ''}unknown parameter(s) {unknown}; valid: {nb.valid()}")
    axes = {k: v for k, v in values.items() if _is_grid(k, v, nb.spec)}
    for k, v in axes.items():
        if not v:
            raise ParameterError(f"{where}: grid {k!r} is an empty list")
    out = []
    for combo in itertools.product(*axes.values()):
        point = dict(zip(axes, combo))
        out.append((validate(values | point, nb, where), point))
    return out


def params_hash(params: dict) -> str:
    """8 hex digits of the effective parameters (runner keys left out): same parameters, same folder."""
    core = {k: v for k, v in sorted(params.items()) if k not in RUNNER_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.=+_-]+", "_", str(text)).strip("_")


def folder_name(preset: str, params: dict, point: dict | None = None) -> str:
    """`<preset>[-k=v...]-<hash8>`: readable (the grid point) and stable (the hash of every parameter)."""
    parts = [_slug(preset)] + [_slug(f"{k}={v}") for k, v in (point or {}).items()]
    name = "-".join(parts)[:80]
    return f"{name}-{params_hash(params)}"


# --------------------------------------------------------------------------- plans
@dataclass
class RunSpec:
    """One planned run: what to inject, where it goes."""

    paper: str
    notebook: str
    preset: str
    folder: str
    params: dict  # effective, validated (without out_dir)
    inject: dict  # what papermill injects (without out_dir)
    point: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.paper}/{Path(self.folder).name}"


def plan_run(nb: Notebook, presets: Iterable[str | Path] = (), overrides: dict | None = None,
             out: str | Path | None = None, preset_name: str | None = None) -> RunSpec:
    """One run of `nb` with layered presets and overrides (no grids); folder `out` or runs/adhoc/<paper>/<name>."""
    values: dict = {}
    names = []
    for f in presets:
        values |= load_preset(f)
        names.append(Path(f).stem)
    values |= overrides or {}
    grids = [k for k, v in values.items() if k in nb.spec and _is_grid(k, v, nb.spec)]
    if grids:
        raise ParameterError(f"{grids} are grids (list values); pick one value with -p or use `reproduce`")
    params = validate(values, nb, "+".join(names) or "parameters")
    name = preset_name or "+".join(names) or "defaults"
    folder = Path(out) if out else Path("runs") / "adhoc" / nb.paper / folder_name(name, params)
    return RunSpec(nb.paper, str(nb.path), name, str(folder), params, {k: params[k] for k in values})


def plan_batch(profile: str, papers: Iterable[str] | None = None, out: str | Path | None = None,
               overrides: dict | None = None, seeds: int | None = None, presets: str | None = None,
               notebooks_dir: Path = NOTEBOOKS, params_dir: Path = PRESETS) -> tuple[list[RunSpec], list[str]]:
    """(runs, notes) of a profile. Everything is validated here, before any kernel starts."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    out = Path(out or Path("runs") / profile)
    papers = list(papers or PAPERS)
    notes: list[str] = []
    runs: list[RunSpec] = []
    for paper in papers:
        nb = Notebook.load(paper, notebooks_dir)
        extra = {}
        for k, v in (overrides or {}).items():
            extra[k] = parse_cli_value(k, v, nb.spec) if isinstance(v, str) else v
        if profile == "quick":
            n = seeds or 1
            sources = [("quick", {"seed": list(range(n))} if n > 1 else {})]
        else:
            files = sorted(Path(params_dir, paper).glob("*.yaml"))
            if presets:
                files = [f for f in files if re.fullmatch(presets.replace("*", ".*"), f.stem)]
            if not files:
                notes.append(f"{paper}: no presets in {Path(params_dir, paper)}"
                             + (f" matching {presets!r}" if presets else ""))
            sources = [(f.stem, load_preset(f)) for f in files]
            if seeds:
                sources = [(s, v | {"seed": list(range(seeds))}) for s, v in sources]
        for preset, values in sources:
            values = values | extra
            where = f"{paper}/{preset}"
            for params, point in expand_grid(values, nb, where):
                folder = out / paper / folder_name(preset, params, point)
                inject = {k: params[k] for k in values}
                runs.append(RunSpec(paper, str(nb.path), preset, str(folder), params, inject, point))
    return runs, notes


# --------------------------------------------------------------------------- one run
def run_status(folder: str | Path) -> dict:
    return _read_json(Path(folder) / "status.json") or {}


def is_complete(spec: RunSpec) -> bool:
    """status.json complete and params.json equal to the plan (runner keys aside)."""
    folder = Path(spec.folder)
    if run_status(folder).get("status") != "complete":
        return False
    saved = _read_json(folder / "params.json")
    if saved is None:
        return False
    strip = lambda d: {k: v for k, v in d.items() if k not in RUNNER_KEYS}  # noqa: E731
    return json.loads(json.dumps(strip(saved), default=str)) == json.loads(json.dumps(strip(spec.params), default=str))


def _clear(folder: Path) -> None:
    """Empty a runner-owned run folder before a fresh attempt (refuses a folder the runner did not make)."""
    if not folder.exists():
        return
    if not folder.is_dir() or (any(folder.iterdir()) and not any((folder / f).exists() for f in RUN_FILES)):
        raise ParameterError(f"{folder} exists and is not a run folder; choose another --out")
    shutil.rmtree(folder)


def _error_text(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        return f"{ename}: {evalue}" + (f" (cell {cell})" if cell is not None else "")
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def execute(spec: RunSpec, timeout: float | None = None, progress: bool = True, cwd: str | None = None,
            start_timeout: float = 120) -> dict:
    """Run one notebook with papermill into spec.folder; never raises for a failing notebook.

    Returns {'name', 'folder', 'status' (complete|failed), 'error', 'seconds', 'executed'}.
    """
    import logging

    import papermill as pm
    # papermill re-parses the parameters cell for its metadata and warns on every comment holding '=' ("0 = none");
    # the runner validated the parameters against the schema already, so those warnings say nothing
    logging.getLogger("papermill.translators").setLevel(logging.ERROR)
    folder = Path(spec.folder)
    _clear(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out_dir = str(folder.resolve())
    _write_json(folder / "params.json", spec.params | {"out_dir": out_dir})  # the notebook's Run rewrites it
    started = _now()
    _write_json(folder / "status.json", {"status": "running", "start": started, "pid": os.getpid(),
                                         "notebook": spec.notebook, "preset": spec.preset})
    executed = folder / "executed.ipynb"
    t0 = time.perf_counter()
    error, tb = None, None
    try:
        pm.execute_notebook(spec.notebook, str(executed), parameters=spec.inject | {"out_dir": out_dir},
                            kernel_name="python3", progress_bar=progress, execution_timeout=timeout,
                            start_timeout=start_timeout, cwd=cwd or os.getcwd())
    except KeyboardInterrupt:
        _write_json(folder / "status.json", {"status": "interrupted", "start": started, "end": _now()})
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the notebook is recorded, the batch goes on
        error, tb = _error_text(exc), traceback.format_exc(limit=3)[-4000:]
    seconds = round(time.perf_counter() - t0, 1)
    st = run_status(folder)
    if error is None and st.get("status") != "complete":
        error = "notebook finished without calling run.finish() (status.json not complete)"
    if error is not None:
        _write_json(folder / "status.json", {"status": "failed", "error": error, "traceback": tb, "start": started,
                                             "end": _now(), "seconds": seconds,
                                             "executed": str(executed) if executed.exists() else None})
    return {"name": spec.name, "folder": str(folder), "status": "failed" if error else "complete", "error": error,
            "seconds": seconds, "executed": str(executed) if executed.exists() else None}


# --------------------------------------------------------------------------- batches
def _claim_gpu(queue) -> None:
    """Worker initializer: this worker process (and every kernel it starts) sees one GPU."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(queue.get())


def _visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        return []


class Manifest:
    """runs/<profile>/batch.json: the profile, the commands, and one entry per run folder (merged over batches)."""

    def __init__(self, out: Path, profile: str, command: str) -> None:
        self.path = Path(out) / "batch.json"
        old = _read_json(self.path) or {}
        self.data = {"profile": profile, "commands": (old.get("commands", []) + [command])[-20:],
                     "started": _now(), "finished": None, "runs": old.get("runs", {})}

    def update(self, spec: RunSpec, **info) -> None:
        key = str(Path(spec.folder).relative_to(self.path.parent)) if Path(spec.folder).is_relative_to(
            self.path.parent) else spec.folder
        entry = self.data["runs"].get(key, {}) | {"paper": spec.paper, "preset": spec.preset, "grid": spec.point,
                                                  "notebook": spec.notebook} | info
        self.data["runs"][key] = entry

    def save(self, finished: bool = False) -> None:
        if finished:
            self.data["finished"] = _now()
        _write_json(self.path, self.data)


def reproduce(runs: list[RunSpec], out: str | Path, profile: str, jobs: int = 1, timeout: float | None = None,
              command: str = "", progress: bool = True, log=print) -> list[dict]:
    """Execute the planned runs (skipping complete ones); returns one result dict per run, skipped included."""
    from tqdm.auto import tqdm
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, profile, command)
    results, todo = [], []
    for spec in runs:
        if is_complete(spec):
            results.append({"name": spec.name, "folder": spec.folder, "status": "skipped", "error": None,
                            "seconds": 0.0, "executed": None})
            manifest.update(spec, status="complete")
        else:
            todo.append(spec)
    log(f"{profile}: {len(runs)} run(s), {len(runs) - len(todo)} already complete, {len(todo)} to run "
        f"({jobs} at a time)")
    manifest.save()
    bar = tqdm(total=len(todo), desc=f"reproduce {profile}", unit="run", disable=not progress or not todo)

    def done(spec: RunSpec, res: dict) -> None:
        results.append(res)
        manifest.update(spec, status=res["status"], error=res["error"], seconds=res["seconds"])
        manifest.save()
        bar.update(1)
        bar.write(f"{res['status']:>8}  {spec.name}  ({res['seconds']:.0f} s)" +
                  (f"  {res['error']}" if res["error"] else ""))

    try:
        if jobs <= 1:
            for spec in todo:
                bar.set_postfix_str(spec.name)
                done(spec, execute(spec, timeout, progress=progress))
        else:
            import multiprocessing as mp
            gpus = _visible_gpus()
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            for i in range(jobs):
                queue.put(gpus[i % len(gpus)] if gpus else "")
            init = (_claim_gpu, (queue,)) if gpus else (None, ())
            if gpus and jobs > len(gpus):
                log(f"note: {jobs} jobs share {len(gpus)} GPU(s)")
            with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init[0], initargs=init[1]) as pool:
                futures = {pool.submit(execute, spec, timeout, False): spec for spec in todo}
                for fut in cf.as_completed(futures):
                    spec = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a worker died: record, go on
                        res = {"name": spec.name, "folder": spec.folder, "status": "failed",
                               "error": _error_text(exc), "seconds": 0.0, "executed": None}
                        _write_json(Path(spec.folder) / "status.json", {"status": "failed", "error": res["error"]})
                    done(spec, res)
    finally:
        bar.close()
        manifest.save(finished=True)
    return results


def summary(results: list[dict]) -> tuple[str, int]:
    """(text, exit code): counts, then every failure with its executed notebook; exit 1 when any failed."""
    count = {s: sum(r["status"] == s for r in results) for s in ("complete", "skipped", "failed")}
    lines = [f"{count['complete']} run, {count['skipped']} skipped (already complete), {count['failed']} failed"]
    for r in results:
        if r["status"] == "failed":
            lines.append(f"FAILED {r['name']}: {r['error']}\n       notebook: {r['executed'] or '(none written)'}"
                         f"\n       folder:   {r['folder']}")
    return "\n".join(lines), int(count["failed"] > 0)


__all__ = ["Notebook", "RunSpec", "plan_run", "plan_batch", "expand_grid", "parse_cli_value", "params_hash",
           "folder_name", "is_complete", "execute", "reproduce", "summary", "PROFILES"]
