"""Self-describing run folders: params.json, env.json, split.json, results.csv, scores.npz.

A number in results.csv can always be traced back: the folder holds the effective parameters,
the code version and environment, the hashes of every membership set, and per-sample scores.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from io import StringIO
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from mintkit import __version__
from mintkit.core.fit import FIT_METRICS
from mintkit.core.metrics import METRICS
from mintkit.core.paths import resolve as resolve_path, shareable

RESULT_COLUMNS = ("paper", "table", "dataset", "model", "setup", "condition", "feature", "metric", "value",
                  "protocol", "variant", "seed", "run_id")
KEY_COLUMNS = RESULT_COLUMNS[:8]
# `variant` names a protocol variant (a reading of what a paper leaves open, e.g. gMINT's optimiser state between
# samples); rows of the method as the kit defines it, and every run written before the column existed, say this
DEFINITION = "definition"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder + rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        shareable(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def notebook_code(text: str) -> tuple:
    """What of a notebook shapes a run: nbformat and each cell's type, source and tags (papermill finds the
    parameters cell by its tag). JupyterLab rewrites the kernelspec and language_info on open and save, and a
    browser session adds outputs, execution counts, cell ids and cell metadata: none of it changes a result."""
    nb = json.loads(text)
    src = lambda c: "".join(c.get("source", ""))  # noqa: E731 - a list of lines or one string
    return nb.get("nbformat"), [(c.get("cell_type"), src(c), sorted(c.get("metadata", {}).get("tags", [])))
                                for c in nb.get("cells", [])]


def _git(args: list[str], cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10).stdout


def _changed(cwd) -> list[tuple[str, str]]:
    """(status XY, path from the repository root) of every tracked file that differs from HEAD."""
    parts = _git(["status", "--porcelain=v1", "-z", "--untracked-files=no"], cwd).split("\0")
    out, skip = [], False
    for p in parts:
        if skip or len(p) < 4:  # a rename's or copy's second path, or the trailing empty part
            skip = False
            continue
        out.append((p[:2], p[3:]))
        skip = p[0] in "RC"
    return out


def _same_notebook(path: str, top: Path, cwd) -> bool:
    try:
        return notebook_code(_git(["show", f"HEAD:{path}"], cwd)) == notebook_code((top / path).read_text())
    except (OSError, ValueError):
        return False


def git_info(cwd: str | Path | None = None) -> dict:
    """Commit and dirty flag of the checkout holding mintkit (empty values outside git). A notebook whose cells
    are those of the commit is not dirty (see notebook_code; README, "Run folders")."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = _git(["rev-parse", "HEAD"], cwd).strip()
        top = Path(_git(["rev-parse", "--show-toplevel"], cwd).strip() or cwd)
        dirty = any(not (set(xy) <= {"M", " "} and path.endswith(".ipynb") and _same_notebook(path, top, cwd))
                    for xy, path in _changed(cwd))
        return {"git_commit": sha or None, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def cpu_name() -> str:
    """The processor's model name and core count ("AMD EPYC, 2 cores"), for env.json on CPU runs."""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def environment(device: torch.device | str | None = None) -> dict:
    """Versions and device facts that shape a result."""
    dev = torch.device(device) if device is not None else None
    info = {"mintkit": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "device": str(dev) if dev else None,
            "device_name": torch.cuda.get_device_name(dev) if dev is not None and dev.type == "cuda"
            else cpu_name(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "threads": torch.get_num_threads()}
    info.update(git_info())
    return info


def keep_earlier_run(folder: Path, log=print) -> Path | None:
    """Move the files of an earlier run in `folder` (it holds results.csv or status.json: a notebook run twice into
    its default out_dir, runs/scratch) into ``<name>-<their time>`` beside it, so that a new run never silently
    replaces them; returns that folder. Subfolders stay: they are inputs built there (the audit demo's trees and
    model), which the new run reuses. A folder the batch runner prepared for this run (status ``running``,
    mintkit.batch.runner) is left as is."""
    status = folder / "status.json"
    if not any((folder / f).exists() for f in ("status.json", "results.csv")):
        return None
    try:
        state = json.loads(status.read_text()) if status.exists() else {}
    except (OSError, ValueError):
        state = {}
    if state.get("status") == "running":
        return None
    files = [f for f in folder.iterdir() if f.is_file()]
    stamp = f"{_dt.datetime.fromtimestamp(max(f.stat().st_mtime for f in files), _dt.timezone.utc):%Y%m%dT%H%M%S}"
    dest = folder.with_name(f"{folder.name}-{stamp}")
    for i in range(1, 1000):  # two runs within one second: numbered
        if not dest.exists():
            break
        dest = folder.with_name(f"{folder.name}-{stamp}-{i}")
    dest.mkdir(parents=True)
    for f in files:
        f.rename(dest / f.name)
    log(f"note: {folder} held an earlier run; kept as {dest}")
    return dest


class Run:
    """One run folder. Rows accumulate in memory and are written on every `add_*` (crash-safe). A folder holding an
    earlier run is kept under another name first (`keep_earlier_run`)."""

    def __init__(self, out_dir: str | Path, paper: str, params: dict, seed: int = 0,
                 device: torch.device | str | None = None, protocol: str = "heldout",
                 variant: str = DEFINITION, precision: str | None = None) -> None:
        self.dir = resolve_path(out_dir)  # a relative out_dir (the notebook's default) as the CLI resolves it
        keep_earlier_run(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.paper, self.seed, self.protocol, self.variant = paper, seed, protocol, variant
        self.run_id = self.dir.name
        self.rows: list[dict] = []
        self.times: dict[str, float] = {}
        write_json(self.dir / "params.json", params)
        self.env = environment(device) | {"start": _now(), "end": None}
        if precision is not None:  # resolved (fp32 / bf16, mintkit.core.precision); runs before it: see precision_of
            self.env["precision"] = precision
        write_json(self.dir / "env.json", self.env)

    def save_split(self, split) -> None:
        split.save(self.dir / "split.json")

    def add(self, metric: str, value: float, *, table: str = "", dataset: str = "", model: str = "",
            setup: str = "", condition: str = "", feature: str = "", protocol: str | None = None) -> None:
        """Append one tidy row (schema RESULT_COLUMNS) and rewrite results.csv."""
        self.rows.append({"paper": self.paper, "table": table, "dataset": dataset, "model": model, "setup": setup,
                          "condition": condition, "feature": feature, "metric": metric, "value": float(value),
                          "protocol": protocol or self.protocol, "variant": self.variant, "seed": self.seed,
                          "run_id": self.run_id})
        self._write_results()

    def add_metrics(self, metrics: dict, audited: dict | None = None, metric_names: Iterable[str] | None = None,
                    **keys: str) -> None:
        """Rows for a membership result plus the audited model's accuracies (audited_accuracy, ...)."""
        for m in metric_names or (*METRICS, *FIT_METRICS):  # the fit guard's keys when the method has them
            if m in metrics:
                self.rows.append(self._row(m, metrics[m], keys))
        for m, v in (audited or {}).items():
            self.rows.append(self._row(m, v, keys))
        self._write_results()

    def _row(self, metric: str, value: float, keys: dict) -> dict:
        row = {c: "" for c in RESULT_COLUMNS} | {"paper": self.paper, "protocol": self.protocol,
                                                "variant": self.variant, "seed": self.seed, "run_id": self.run_id}
        row |= {k: v for k, v in keys.items()}
        row.update(metric=metric, value=float(value))
        return row

    def time(self, stage: str, seconds: float) -> None:
        """Record wall time of a stage as a `time_<stage>` row."""
        self.times[stage] = seconds
        self.add(f"time_{stage}", seconds)

    def _write_results(self) -> None:
        buf = StringIO()
        w = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_bytes(self.dir / "results.csv", buf.getvalue().encode())

    def save_scores(self, **arrays: np.ndarray) -> None:
        """scores.npz: e.g. name_scores=[N] float, name_labels=[N] int; merged with what is there."""
        path = self.dir / "scores.npz"
        old = dict(np.load(path)) if path.exists() else {}
        old.update({k: np.asarray(v) for k, v in arrays.items()})
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".npz")
        os.close(fd)
        np.savez_compressed(tmp, **old)
        shareable(tmp)
        os.replace(tmp, path)

    def finish(self) -> None:
        self.env["end"] = _now()
        write_json(self.dir / "env.json", self.env)
        write_json(self.dir / "status.json", {"status": "complete", "end": self.env["end"], "rows": len(self.rows)})


# Metric keys renamed since results were first written: old key -> current. A suffixed key follows its stem
# (mint_accuracy_calibrated -> accuracy_calibrated, mint_accuracy_ci_low -> accuracy_ci_low). Readers of files
# written by an earlier version (results.csv, the report's table csvs) map them with `current_metrics`, so old
# runs still pool and join the published tables.
RENAMED_METRICS = {"mint_accuracy": "accuracy"}


def current_metric(name: str) -> str:
    """The current name of a metric key (itself unless RENAMED_METRICS renamed its stem)."""
    for old, new in RENAMED_METRICS.items():
        if name == old or name.startswith(old + "_"):
            return new + name[len(old):]
    return name


def current_metrics(metrics: pd.Series) -> pd.Series:
    """A `metric` column with every renamed key mapped to its current name."""
    return metrics.astype(str).map(current_metric)


def read_results(paths: Iterable[str | Path]):
    """Concatenate results.csv files (paths to files or run folders) into one DataFrame; ``value`` is float
    (key columns stay strings, "" included; a metric without a value, e.g. an interval with n_boot = 0, is NaN).
    Files written before the ``variant`` column existed get ``DEFINITION`` there (no variant existed then), and
    renamed metric keys their current name (RENAMED_METRICS)."""
    frames = []
    for p in paths:
        p = Path(p)
        p = p / "results.csv" if p.is_dir() else p
        df = pd.read_csv(p, keep_default_na=False, dtype={c: str for c in (*KEY_COLUMNS, "variant")})
        if "variant" not in df.columns:
            df.insert(list(df.columns).index("protocol") + 1 if "protocol" in df.columns else len(df.columns),
                      "variant", DEFINITION)
        if "metric" in df.columns:
            df["metric"] = current_metrics(df["metric"])
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    return out.assign(value=pd.to_numeric(out["value"], errors="coerce"))
