"""Batch reproduction: notebooks x parameter grids -> one self-describing run folder per run.

Each run's notebook is executed by an engine (`mintkit.batch.engines`): papermill (the default, a Jupyter
kernel, executed.ipynb) or exec (plain Python in a subprocess, executed.log; for machines without Jupyter).

A run's effective parameters are, later ones winning: the paper's typed defaults (`mintkit.papers.<paper>.Params`),
the literals of the notebook's `parameters` cell, the preset YAML(s), the `-p` overrides. They are validated
with `mintkit.core.params.check` before any kernel starts, so a misspelt name or a wrong type fails in a second,
not after a model has trained. `out_dir` is always set by the runner.

Profiles (`reproduce --profile`):
  quick  each notebook's own defaults (bundled `digits` data, CPU minutes), `--seeds N` seeds (default 1)
  paper  every `notebooks/params/<paper>/*.yaml`; list values are grids, expanded as a cross product

Folders: `<out>/<paper>/<preset>[-<grid values>]-<hash8 of the effective parameters>`. A folder whose
status.json says complete and whose params.json equals the planned parameters is skipped, so an interrupted
batch resumes without losing a finished run. A failing run (exception, timeout, dead kernel) gets status.json
= failed with the error; its partial executed.ipynb (or executed.log) is kept and the batch goes on.
"""
from __future__ import annotations

import concurrent.futures as cf
import datetime as _dt
import json
import multiprocessing as mp
import os
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mintkit.core.params import ParameterError
from mintkit.batch import engines
from mintkit.batch.engines import ENGINES
from mintkit.batch.notebooks import NOTEBOOKS, Notebook, resolve_notebook  # noqa: F401 (re-exported)
from mintkit.batch.plans import (PRESETS, PROFILES, RUNNER_KEYS, RunSpec,  # noqa: F401 (re-exported)
                                 expand_grid, folder_name, load_preset, params_hash, parse_cli_value, plan_batch,
                                 plan_run, seed_list, validate)
from mintkit.reference import PAPERS  # noqa: F401 (re-exported)

RUN_FILES = ("status.json", "params.json", "executed.ipynb", "executed.log", "results.csv")  # what marks a runner-owned folder


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


def finished_elsewise(spec: RunSpec) -> str | None:
    """None unless spec.folder holds a complete run with other parameters than the plan; then the message
    `run` refuses with (the differing parameters, the way to replace the run or keep it)."""
    folder = Path(spec.folder)
    if run_status(folder).get("status") != "complete" or is_complete(spec):
        return None
    saved = {k: v for k, v in (_read_json(folder / "params.json") or {}).items() if k not in RUNNER_KEYS}
    planned = {k: v for k, v in spec.params.items() if k not in RUNNER_KEYS}
    diff = [f"{k} {saved.get(k, '(unset)')!r} -> {planned.get(k, '(unset)')!r}"
            for k in sorted(set(saved) | set(planned)) if json.dumps(saved.get(k), default=str)
            != json.dumps(planned.get(k), default=str)]
    return (f"{folder} holds a finished run with other parameters ({'; '.join(diff[:8]) or 'unreadable params.json'}"
            f"{f'; {len(diff) - 8} more' if len(diff) > 8 else ''}; its parameters: {folder / 'params.json'}): "
            "choose another --out, or add --force to replace it")


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
            start_timeout: float = 120, engine: str = "papermill") -> dict:
    """Run one notebook with `engine` (papermill or exec) into spec.folder; never raises for a failing notebook.

    Returns {'name', 'folder', 'status' (complete|failed), 'error', 'seconds', 'executed'}; 'executed' is the
    executed notebook (papermill) or the run's output log (exec).
    """
    if engine not in ENGINES:
        raise ParameterError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    folder = Path(spec.folder)
    _clear(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out_dir = str(folder.resolve())
    _write_json(folder / "params.json", spec.params | {"out_dir": out_dir})  # the notebook's Run rewrites it
    write_plan(spec)
    started = _now()
    _write_json(folder / "status.json", {"status": "running", "start": started, "pid": os.getpid(),
                                         "host": socket.gethostname(), "notebook": spec.notebook,
                                         "preset": spec.preset})
    executed = folder / engines.EXECUTED[engine]
    t0 = time.perf_counter()
    error, tb = None, None
    try:
        engines.run(engine, spec.notebook, folder, spec.inject | {"out_dir": out_dir}, timeout=timeout,
                    progress=progress, start_timeout=start_timeout, cwd=cwd)
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
        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        return []


RUN_MEMORY_GB = 2.5  # resident memory of one CPU run, measured: aMINT MobileNet on MNIST 1.7 GB (docs/profiles.md)


def _cores_and_threads(todo: list[RunSpec]) -> tuple[int, int]:
    """(usable cores, the most threads any run asks for; 0 = torch's default counts as every core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores, max(int(s.params.get("threads", 1)) or cores for s in todo)


def auto_jobs(todo: list[RunSpec]) -> tuple[int, str]:
    """(runs at once, why) for `--jobs auto`: one run per visible GPU; on CPU as many runs as the cores hold
    at each run's `threads` (0 = torch's default, every core), within the free memory. Several one-thread runs
    beat one run on several threads for a batch (benchmarks/bench_threads.py; docs/precision.md, "Threads")."""
    if not todo:
        return 1, "nothing to run"
    gpus = _visible_gpus()
    if gpus:
        return min(len(todo), len(gpus)), f"one run per visible GPU ({len(gpus)})"
    cores, threads = _cores_and_threads(todo)
    try:
        free_gb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        free_gb = float("inf")
    jobs = max(1, min(len(todo), cores // threads, int(free_gb // RUN_MEMORY_GB)))
    return jobs, f"{cores} core(s) / {threads} thread(s) per run, {free_gb:.0f} GB free"


def oversubscribed(todo: list[RunSpec], jobs: int) -> str:
    """A warning when `jobs` CPU runs at their `threads` ask for more threads than the cores: torch's threads then
    wait on each other and a run slows many times over (benchmarks/bench_threads.py)."""
    if _visible_gpus() or jobs <= 1 or not todo:
        return ""
    cores, threads = _cores_and_threads(todo)
    if jobs * threads <= cores:
        return ""
    return (f"warning: {jobs} runs × {threads} thread(s) on {cores} core(s): oversubscribed, every run slows; "
            f"use --jobs auto or -p threads {max(1, cores // jobs)}")


class Manifest:
    """runs/<profile>/batch.json: the profile, the commands, and one entry per run folder (merged over batches)."""

    def __init__(self, out: Path, profile: str, command: str) -> None:
        self.path = Path(out) / "batch.json"
        old = _read_json(self.path) or {}
        self.data = {"profile": profile, "commands": (old.get("commands", []) + [command])[-20:],
                     "started": _now(), "finished": None, "runs": old.get("runs", {})}
        self.touched: set[str] = set()

    def key(self, spec: RunSpec) -> str:
        """The run's entry name: its folder relative to the batch folder (absolute when outside it)."""
        folder = Path(spec.folder)
        return str(folder.relative_to(self.path.parent)) if folder.is_relative_to(self.path.parent) else spec.folder

    def update(self, spec: RunSpec, **info) -> None:
        key = self.key(spec)
        entry = self.data["runs"].get(key, {}) | {"paper": spec.paper, "preset": spec.preset, "grid": spec.point,
                                                  "notebook": spec.notebook} | info
        self.data["runs"][key] = entry
        self.touched.add(key)

    def save(self, finished: bool = False) -> None:
        """Write batch.json: this batch's entries over what the file holds now (another reproduce into the same
        folder, e.g. one paper per process, may have added entries since this one started)."""
        if finished:
            self.data["finished"] = _now()
        now = _read_json(self.path) or {}
        self.data["runs"] = now.get("runs", {}) | {k: self.data["runs"][k] for k in self.touched}
        self.data["commands"] = list(dict.fromkeys(now.get("commands", []) + self.data["commands"]))[-20:]
        _write_json(self.path, self.data)


def write_plan(spec: RunSpec) -> None:
    """plan.json: the preset, grid point and recipe overrides of the run (the notebook never touches it).

    A complete run that is skipped gets it refreshed: it is derived from the preset and the run's parameters,
    which the folder's hash fixes, so a later plan can only correct it (e.g. a folder from an older kit)."""
    plan = {"paper": spec.paper, "preset": spec.preset, "grid": spec.point, "changed": spec.changed}
    path = Path(spec.folder) / "plan.json"
    if _read_json(path) != plan:
        _write_json(path, plan)


def _skip_complete(runs: list[RunSpec], manifest: Manifest) -> tuple[list[dict], list[RunSpec]]:
    """(results of the complete runs, marked skipped; the runs still to do), the manifest updated."""
    results, todo = [], []
    for spec in runs:
        if is_complete(spec):
            results.append({"name": spec.name, "folder": spec.folder, "status": "skipped", "error": None,
                            "seconds": 0.0, "executed": None})
            manifest.update(spec, status="complete")
            write_plan(spec)
        else:
            todo.append(spec)
    return results, todo


def _run_serial(todo: list[RunSpec], manifest: Manifest, bar, done, timeout: float | None, progress: bool,
                engine: str) -> None:
    for spec in todo:
        bar.set_postfix_str(spec.name)
        try:
            res = execute(spec, timeout, progress=progress, engine=engine)
        except KeyboardInterrupt:
            manifest.update(spec, status="interrupted")
            raise
        done(spec, res)


def _run_parallel(todo: list[RunSpec], jobs: int, done, timeout: float | None, engine: str, log) -> None:
    """`jobs` worker processes (spawned), each claiming one visible GPU round-robin when there are GPUs."""
    gpus = _visible_gpus()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for i in range(jobs):
        queue.put(gpus[i % len(gpus)] if gpus else "")
    init = (_claim_gpu, (queue,)) if gpus else (None, ())
    if gpus and jobs > len(gpus):
        log(f"note: {jobs} jobs share {len(gpus)} GPU(s)")
    with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init[0], initargs=init[1]) as pool:
        futures = {pool.submit(execute, spec, timeout, False, engine=engine): spec for spec in todo}
        for fut in cf.as_completed(futures):
            spec = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died: record, go on
                res = {"name": spec.name, "folder": spec.folder, "status": "failed",
                       "error": _error_text(exc), "seconds": 0.0, "executed": None}
                _write_json(Path(spec.folder) / "status.json", {"status": "failed", "error": res["error"]})
            done(spec, res)


def reproduce(runs: list[RunSpec], out: str | Path, profile: str, jobs: int = 1, timeout: float | None = None,
              command: str = "", progress: bool = True, log=print, engine: str = "papermill") -> list[dict]:
    """Execute the planned runs (skipping complete ones); returns one result dict per run, skipped included.
    `jobs` 0 picks the count (:func:`auto_jobs`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, profile, command)
    results, todo = _skip_complete(runs, manifest)
    why = ""
    if jobs == 0:
        jobs, why = auto_jobs(todo)
        why = f"; --jobs auto: {why}"
    log(f"{profile}: {len(runs)} run(s), {len(runs) - len(todo)} already complete, {len(todo)} to run "
        f"({jobs} at a time{why})")
    warning = oversubscribed(todo, jobs)
    if warning:
        log(warning)
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
            _run_serial(todo, manifest, bar, done, timeout, progress, engine)
        else:
            _run_parallel(todo, jobs, done, timeout, engine, log)
    finally:
        bar.close()
        manifest.save(finished=True)
    return results

NEEDS_INPUT = "needs input"


def mark_needs_input(specs: list[RunSpec], out: str | Path, profile: str, command: str = "") -> list[dict]:
    """Record each run whose inputs are missing (mintkit.batch.inputs) as 'needs input' in its folder's
    status.json and in batch.json, naming the files; returns their result dicts. Nothing runs for them."""
    from mintkit.batch import inputs  # deferred: inputs imports plans, as this module does

    results = []
    manifest = Manifest(Path(out), profile, command) if specs else None
    for spec in specs:
        need = inputs.missing(spec)
        error = inputs.needs_input_error(need)
        folder = Path(spec.folder)
        if folder.exists() and any(folder.iterdir()) and not any((folder / f).exists() for f in RUN_FILES):
            raise ParameterError(f"{folder} exists and is not a run folder; choose another --out")
        _write_json(folder / "status.json", {"status": NEEDS_INPUT, "error": error, "end": _now(),
                                             "missing": [i.path for i in need]})
        write_plan(spec)
        manifest.update(spec, status=NEEDS_INPUT, error=error, seconds=None)
        results.append({"name": spec.name, "folder": spec.folder, "status": NEEDS_INPUT, "error": error,
                        "seconds": 0.0, "executed": None})
    if manifest is not None:
        manifest.save()
    return results


def summary(results: list[dict]) -> tuple[str, int]:
    """(text, exit code): counts, then every failure with its executed notebook or log (and its cluster job and log,
    for `--executor slurm`), then every run that needs input with the missing file; exit 1 when any failed or
    needs input. 'pending' runs are still queued or running in a scheduler."""
    count = {s: sum(r["status"] == s for r in results)
             for s in ("complete", "skipped", "failed", "pending", NEEDS_INPUT)}
    lines = [f"{count['complete']} run, {count['skipped']} skipped (already complete), {count['failed']} failed"
             + (f", {count['pending']} still queued or running" if count["pending"] else "")
             + (f", {count[NEEDS_INPUT]} not started: needs input" if count[NEEDS_INPUT] else "")]
    for r in results:
        if r["status"] == NEEDS_INPUT:
            lines.append(f"NEEDS INPUT {r['name']}: {r['error'].split(': ', 1)[1]}")
    for r in results:
        if r["status"] == "failed":
            lines.append(f"FAILED {r['name']}: {r['error']}\n       notebook: {r['executed'] or '(none written)'}"
                         f"\n       folder:   {r['folder']}")
            if r.get("job_id"):
                lines.append(f"       job:      {r['job_id']}\n       log:      {r['log']}")
    return "\n".join(lines), int(count["failed"] > 0 or count[NEEDS_INPUT] > 0)


__all__ = ["Notebook", "RunSpec", "plan_run", "plan_batch", "expand_grid", "parse_cli_value", "params_hash",
           "folder_name", "is_complete", "execute", "reproduce", "summary", "PROFILES"]
