"""Slurm options of `reproduce --executor slurm` and what the scheduler says about its jobs.

The submission itself is submitit's (`submitit.SlurmExecutor`): this module only turns the kit's options
(command line, or a YAML file of the same names) into submitit parameters, and asks `squeue` / `sacct`
which jobs are still queued or running. `mintkit.batch.executors` drives the batch; the README's
"Run on a cluster" section shows the workflow.
"""
from __future__ import annotations

import dataclasses
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

import mintkit
from mintkit.core.params import ParameterError

# squeue states (long form) of a job that has not started / is on a node; anything else has ended
QUEUED_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT"})
RUNNING_STATES = frozenset({"RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING",
                            "STAGE_OUT", "RESIZING"})


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of ONE run's job (every run of a batch gets the same); None leaves the cluster's default."""

    partition: str | None = None
    gpus_per_job: int | None = None
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    time_min: int = 720  # submitit's own default is 5 minutes, far too short for a training run
    array_parallelism: int | None = None  # at most this many jobs of the array run at once
    account: str | None = None
    qos: str | None = None
    sbatch: tuple[str, ...] = ()  # extra sbatch options, e.g. "--constraint=a100" or "#SBATCH --exclusive"

    HELP: ClassVar[dict[str, str]] = {
        "partition": "Slurm partition (default: the cluster's default partition)",
        "gpus_per_job": "GPUs per run (sbatch --gpus-per-node; default: none requested)",
        "cpus_per_job": "CPUs per run (sbatch --cpus-per-task; default: the cluster's)",
        "mem_gb": "memory per run in GB (sbatch --mem; default: the cluster's)",
        "time_min": "time limit per run in minutes (default 720)",
        "array_parallelism": "runs of the job array at once (default: as many as Slurm grants)",
        "account": "Slurm account to charge (sbatch --account)",
        "qos": "quality of service (sbatch --qos)",
        "sbatch": "extra sbatch option, e.g. --constraint=a100; repeatable",
    }

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> "SlurmOptions":
        """Options from a YAML file (keys as the field names), then `overrides` (None values ignored)."""
        values: dict[str, Any] = {}
        if path is not None:
            try:
                loaded = yaml.safe_load(Path(path).read_text()) or {}
            except OSError as e:
                raise ParameterError(f"slurm options file {path}: {e.strerror}") from None
            if not isinstance(loaded, dict):
                raise ParameterError(f"slurm options file {path}: expected 'name: value' lines")
            values |= {str(k).replace("-", "_"): v for k, v in loaded.items()}
        values |= {k: v for k, v in (overrides or {}).items() if v is not None and v != []}
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ParameterError(f"unknown slurm option(s) {unknown}; valid: {', '.join(cls.names())}")
        out = {}
        for f in dataclasses.fields(cls):
            if f.name in values:
                out[f.name] = _coerce_option(f.name, values[f.name])
        return cls(**out)

    def executor_parameters(self, job_name: str) -> dict[str, Any]:
        """Parameters of `submitit.SlurmExecutor.update_parameters` for these options."""
        params: dict[str, Any] = {"job_name": job_name, "time": self.time_min,
                                  # the job runs the same mintkit as the login node that submitted it
                                  "setup": [f"export PYTHONPATH={shlex.quote(str(package_root()))}"
                                            "${PYTHONPATH:+:$PYTHONPATH}"]}
        if self.gpus_per_job:  # 0 requests none, like leaving it out (a cluster without GPUs refuses the flag)
            params["gpus_per_node"] = self.gpus_per_job
        for mine, theirs in (("partition", "partition"),
                             ("cpus_per_job", "cpus_per_task"), ("account", "account"), ("qos", "qos"),
                             ("array_parallelism", "array_parallelism")):
            if getattr(self, mine) is not None:
                params[theirs] = getattr(self, mine)
        if self.mem_gb is not None:
            params["mem"] = f"{int(round(self.mem_gb * 1024))}M"
        if self.sbatch:
            params["additional_parameters"] = dict(parse_sbatch_option(s) for s in self.sbatch)
        return params


def _coerce_option(name: str, value: Any) -> Any:
    if name == "sbatch":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) for s in items):
            raise ParameterError("slurm option 'sbatch' must be a list of sbatch options like '--constraint=a100'")
        for s in items:
            parse_sbatch_option(s)  # fail now, not at submission
        return tuple(items)
    kind = {"gpus_per_job": int, "cpus_per_job": int, "time_min": int, "array_parallelism": int,
            "mem_gb": float}.get(name, str)
    if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
        raise ParameterError(f"slurm option {name!r} must be {kind.__name__}, got {value!r}")
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise ParameterError(f"slurm option {name!r} must be {kind.__name__}, got {value!r}") from None
    low = 0 if name == "gpus_per_job" else 1
    if kind in (int, float) and out < low:
        raise ParameterError(f"slurm option {name!r} must be at least {low}, got {value!r}")
    return out


def parse_sbatch_option(text: str) -> tuple[str, Any]:
    """'--constraint=a100' / 'constraint=a100' / '#SBATCH --exclusive' / '--mail-type END'
    -> ('constraint', 'a100') / ('exclusive', True) / ('mail-type', 'END'): long options only."""
    s = text.strip()
    if s.startswith("#SBATCH"):
        s = s[len("#SBATCH"):].strip()
    if s.startswith("-") and not s.startswith("--"):
        raise ParameterError(f"sbatch option {text!r}: expected the long form, e.g. --constraint=a100 or --exclusive")
    key, sep, value = s.removeprefix("--").partition("=")
    if not sep and " " in key:
        key, value = key.split(None, 1)
        sep = " "
    if not key or " " in key:
        raise ParameterError(f"sbatch option {text!r}: expected --name=value or --flag")
    return key, (value.strip() if sep else True)


def package_root() -> Path:
    """The folder that holds the `mintkit` package (put on the job's PYTHONPATH)."""
    return Path(mintkit.__file__).resolve().parents[1]


def make_executor(folder: str | Path, options: SlurmOptions, job_name: str):
    """A submitit SlurmExecutor writing scripts, pickles and logs under `folder/<job id>/`, running this python."""
    import submitit  # deferred: the CLI and the local executor do not need it

    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise ParameterError("--executor slurm: sbatch/srun not found on PATH; run this on a Slurm login node")
    ex = submitit.SlurmExecutor(folder=Path(folder) / "%j", python=shlex.quote(sys.executable))
    ex.update_parameters(**options.executor_parameters(job_name))
    return ex


# --------------------------------------------------------------------------- what the scheduler says
def queue_states(job_ids: list[str]) -> dict[str, str]:
    """{job id: squeue state} of the given jobs still known to squeue (array tasks as '<array>_<task>').

    A job missing from the answer has ended (or aged out of slurmctld's memory). Raises RuntimeError when
    squeue cannot tell (not installed, controller unreachable, any error but 'no such job').
    """
    bases = sorted({j.split("_")[0] for j in job_ids})
    if not bases:
        return {}
    try:
        proc = subprocess.run(["squeue", "--noheader", "--array", "--format=%i|%T", "--jobs", ",".join(bases)],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"squeue failed: {e}") from None
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:  # every job asked for has left the queue
            return {}
        raise RuntimeError(f"squeue failed (exit {proc.returncode}): {proc.stderr.strip()}")
    wanted = set(job_ids)
    out = {}
    for line in proc.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid in wanted:
            out[jid] = state.strip()
    return out


def accounting_states(job_ids: list[str]) -> dict[str, str]:
    """{job id: final sacct state} (COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED ...); {} where the
    cluster keeps no accounting (sacct then fails) - the run folders stay the truth either way."""
    bases = sorted({j.split("_")[0] for j in job_ids})
    if not bases or shutil.which("sacct") is None:
        return {}
    try:
        proc = subprocess.run(["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State",
                               "--jobs", ",".join(bases)], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0:
        return {}
    wanted = set(job_ids)
    out = {}
    for line in proc.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid in wanted:
            out[jid] = state.split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
    return out
