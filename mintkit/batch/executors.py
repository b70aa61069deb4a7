"""Where `reproduce` runs its runs: on this host (`--executor local`: `runner.reproduce`, `--jobs N` at once) or
as one cluster job per run through submitit (`--executor slurm`: one job array per batch).

A cluster job runs ONE planned run through `runner.execute`, so its run folder is the one a local run writes,
and resume, failure isolation and the report work unchanged. The batch folder records, per run, the job id
and its log (`<out>/batch.json`; submitit's scripts, pickles and logs under `<out>/slurm/<job id>/`), so
`reproduce --status` can tell queued / running / complete / failed from the folders and the scheduler, and a
Ctrl-C while waiting loses nothing: the jobs go on in Slurm and write their folders, which are the truth.
Rerunning the same command skips complete runs, waits again for the runs still queued or running (it does not
submit them twice) and submits the rest.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from mintkit.batch import provenance, runner, slurm
from mintkit.batch.plans import RunSpec
from mintkit.core.params import ParameterError

EXECUTORS = ("local", "slurm")
JOBS_DIR = "slurm"  # <out>/slurm/<job id>/: sbatch script, pickles, <job id>_0_log.out / _log.err

_pause = time.sleep  # the wait loop's sleep (a test replaces it to press Ctrl-C at a chosen moment)


@contextlib.contextmanager
def _ctrl_c_after():
    """Hold a Ctrl-C back until the block is done (submitting a job array and recording its job ids), so that
    no job runs in Slurm without the batch folder knowing it; outside the main thread, no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def run_one(spec: RunSpec, timeout: float | None, cwd: str) -> dict:
    """The job's callable: one planned run, exactly as `reproduce --executor local` runs it."""
    return runner.execute(spec, timeout, progress=False, cwd=cwd)


# --------------------------------------------------------------------------- schedulers
class SlurmScheduler:
    """Job states from squeue (queued/running) and sacct (how an ended job ended, where accounting is kept)."""

    kind = "slurm"
    grace_s = 60.0  # a job gone from the queue may take a moment to show its result file on a shared filesystem

    def active(self, job_ids: list[str], jobs: dict[str, Any]) -> dict[str, str]:
        return slurm.queue_states(job_ids)

    def ended(self, job_ids: list[str]) -> dict[str, str]:
        return slurm.accounting_states(job_ids)


class SubmititScheduler:
    """Any other submitit executor (e.g. `submitit.LocalExecutor`): the job objects of this process know."""

    kind = "submitit"
    grace_s = 0.0

    def active(self, job_ids: list[str], jobs: dict[str, Any]) -> dict[str, str]:
        return {j: jobs[j].state for j in job_ids if j in jobs and not jobs[j].done()}

    def ended(self, job_ids: list[str]) -> dict[str, str]:
        return {}


# --------------------------------------------------------------------------- one batch
def _failed(spec: RunSpec, error: str, job_id: str, log: str) -> dict:
    return {"name": spec.name, "folder": spec.folder, "status": "failed", "error": error, "seconds": 0.0,
            "executed": None, "job_id": job_id, "log": log}


def _outcome(spec: RunSpec, job, job_id: str) -> dict:
    """The run's result dict from the job's result file; a job whose python failed outside the notebook
    (import error, unpicklable input) is a failed run, recorded in its folder."""
    log = str(job.paths.stderr)
    try:
        res = dict(job.result())
    except Exception as exc:  # noqa: BLE001 - submitit's FailedJobError carries the job's traceback
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        error = f"job {job_id} failed outside the notebook: {lines[-1].strip() if lines else type(exc).__name__}"
        _mark_failed(spec, error, job_id, log)
        return _failed(spec, error, job_id, log)
    return res | {"job_id": job_id, "log": log}


def _mark_failed(spec: RunSpec, error: str, job_id: str, log: str) -> None:
    """status.json = failed unless the folder says complete (the folder is the truth)."""
    folder = Path(spec.folder)
    if runner.run_status(folder).get("status") != "complete":
        runner._write_json(folder / "status.json", {"status": "failed", "error": error, "end": runner._now(),
                                                     "job_id": job_id, "log": log})


def _lost(spec: RunSpec, job, job_id: str, final: str | None) -> dict:
    """A job that left the queue without a result file: killed (time limit, memory, scancel, node failure)."""
    log = str(job.paths.stderr)
    if runner.run_status(spec.folder).get("status") == "complete":  # finished its run, died after
        st = runner.run_status(spec.folder)
        return {"name": spec.name, "folder": spec.folder, "status": "complete", "error": None,
                "seconds": float(st.get("seconds") or 0.0), "executed": str(Path(spec.folder) / "executed.ipynb"),
                "job_id": job_id, "log": log}
    error = f"job {job_id} ended ({final or 'left the queue'}) before the run finished"
    _mark_failed(spec, error, job_id, log)
    return _failed(spec, error, job_id, log)


def _wait(jobs: dict[str, tuple[RunSpec, Any]], scheduler, finish: Callable[[RunSpec, dict], None],
          poll_s: float) -> None:
    """Call `finish(spec, result)` for each job as it ends; returns when none is left."""
    pending = dict(jobs)
    gone_since: dict[str, float] = {}
    while pending:
        try:
            active = scheduler.active(list(pending), {j: job for j, (_, job) in pending.items()})
        except RuntimeError as e:  # the controller did not answer this time: nothing is known to have ended
            print(f"note: {e}; asking again in {poll_s:g} s", file=sys.stderr)
            _pause(poll_s)
            continue
        gone = [j for j, (_, job) in pending.items() if j not in active and not job.paths.result_pickle.exists()]
        final = scheduler.ended(gone) if gone else {}
        for jid, (spec, job) in list(pending.items()):
            if job.paths.result_pickle.exists():
                res = _outcome(spec, job, jid)
            elif jid in active:
                continue
            elif time.monotonic() - gone_since.setdefault(jid, time.monotonic()) < scheduler.grace_s:
                continue
            else:
                res = _lost(spec, job, jid, final.get(jid))
            del pending[jid]
            finish(spec, res)
        if pending:
            _pause(poll_s)


def _submit(todo: list[RunSpec], executor, kind: str, timeout: float | None, manifest: runner.Manifest,
            log: Callable[[str], None]) -> dict[str, tuple[RunSpec, Any]]:
    """Submit `todo` as one job array and record each run's job id and log in the manifest (not saved)."""
    cwd = os.getcwd()
    with executor.batch():
        submitted = [executor.submit(run_one, spec, timeout, cwd) for spec in todo]
    for spec, job in zip(todo, submitted):
        manifest.update(spec, status="queued", executor=kind, job_id=job.job_id, log=str(job.paths.stderr),
                        error=None, seconds=None)
    ids = [job.job_id for job in submitted]
    log(f"submitted {len(todo)} job(s) ({ids[0]}{f' .. {ids[-1]}' if len(ids) > 1 else ''}); "
        f"logs under {Path(executor.folder).parent}/<job id>/")
    return {job.job_id: (spec, job) for spec, job in zip(todo, submitted)}


def _sort_runs(runs: list[RunSpec], manifest, executor, scheduler
               ) -> tuple[list[dict], list[RunSpec], dict[str, tuple[RunSpec, Any]]]:
    """(results of complete runs, marked skipped; runs to submit; {job id: (run, job)} of runs whose job of this
    scheduler is still queued or running, re-attached)."""
    results: list[dict] = []
    todo: list[RunSpec] = []
    earlier = {spec.name: manifest.data["runs"].get(manifest.key(spec), {}) for spec in runs}
    old_ids = [e["job_id"] for e in earlier.values() if e.get("executor") == scheduler.kind and e.get("job_id")]
    still = scheduler.active(old_ids, {}) if old_ids else {}
    jobs: dict[str, tuple[RunSpec, Any]] = {}
    for spec in runs:
        entry = earlier[spec.name]
        if runner.is_complete(spec):
            results.append({"name": spec.name, "folder": spec.folder, "status": "skipped", "error": None,
                            "seconds": 0.0, "executed": None})
            manifest.update(spec, status="complete")
        elif entry.get("job_id") in still and entry.get("executor") == scheduler.kind:
            jid = entry["job_id"]
            jobs[jid] = (spec, executor.job_class(folder=executor.folder, job_id=jid))
        else:
            todo.append(spec)
    return results, todo, jobs


def reproduce(runs: list[RunSpec], out: str | Path, profile: str, executor, scheduler, timeout: float | None = None,
              command: str = "", wait: bool = True, poll_s: float = 10.0,
              log: Callable[[str], None] = print) -> tuple[list[dict], bool]:
    """Submit the planned runs (complete ones skipped, ones still queued/running re-attached) as one job array
    of `executor` (a submitit executor), wait for them unless `wait` is False.

    Returns (one result dict per run, interrupted): a run not finished when waiting stopped (Ctrl-C, or
    `wait=False`) has status 'pending'; its job goes on and its folder will say how it ended.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = runner.Manifest(out, profile, command)
    results, todo, jobs = _sort_runs(runs, manifest, executor, scheduler)
    log(f"{profile}: {len(runs)} run(s), {len(results)} already complete, {len(jobs)} still queued or running "
        f"in {scheduler.kind}, {len(todo)} to submit")
    interrupted = False
    try:
        with _ctrl_c_after():
            if todo:
                jobs |= _submit(todo, executor, scheduler.kind, timeout, manifest, log)
            manifest.save()
    except KeyboardInterrupt:  # pressed while submitting: the jobs are submitted and recorded, not waited for
        interrupted = True

    def finish(spec: RunSpec, res: dict) -> None:
        results.append(res)
        manifest.update(spec, status=res["status"], error=res["error"], seconds=res["seconds"])
        manifest.save()
        log(f"{res['status']:>8}  {spec.name}  ({res['seconds']:.0f} s, job {res['job_id']})" +
            (f"  {res['error']}" if res["error"] else ""))

    if wait and jobs and not interrupted:
        try:
            _wait(jobs, scheduler, finish, poll_s)
        except KeyboardInterrupt:
            interrupted = True
    done = {r["name"] for r in results}
    left = [(jid, spec) for jid, (spec, _) in jobs.items() if spec.name not in done]
    for jid, spec in left:
        results.append({"name": spec.name, "folder": spec.folder, "status": "pending", "error": None,
                        "seconds": 0.0, "executed": None, "job_id": jid, "log": str(jobs[jid][1].paths.stderr)})
    manifest.save(finished=not left)
    if left:
        log(f"{'interrupted: ' if interrupted else ''}{len(left)} run(s) still queued or running; their jobs go on "
            f"and write their folders. Follow them: python -m mintkit reproduce --status --out {out}; "
            "the same reproduce command again waits for them (nothing is submitted twice).")
    return results, interrupted


# --------------------------------------------------------------------------- status
def batch_status(out: str | Path, scheduler=None) -> list[dict]:
    """One row per run recorded in <out>/batch.json: {'run', 'state' (queued|running|complete|failed|
    interrupted|not started|unknown), 'job_id', 'detail', 'log'}, from the run folders and the scheduler
    ('unknown': the scheduler could not be asked and the folder does not say how the run ended)."""
    out = Path(out)
    batch = runner._read_json(out / "batch.json")
    if batch is None:
        raise ParameterError(f"no batch.json under {out}: nothing was reproduced there (wrong --out?)")
    entries = batch.get("runs", {})
    scheduler = scheduler or SlurmScheduler()
    ids = [e["job_id"] for e in entries.values() if e.get("executor") == scheduler.kind and e.get("job_id")]
    unknown = None
    try:
        active = scheduler.active(ids, {}) if ids else {}
    except RuntimeError as e:  # e.g. --status on a machine without Slurm: the folders alone
        active, unknown = {}, str(e)
    rows = []
    for key, e in sorted(entries.items()):
        folder = Path(key) if Path(key).is_absolute() else out / key
        st = runner.run_status(folder)
        jid = e.get("job_id") if e.get("executor") == scheduler.kind else None
        row = {"run": key, "job_id": jid, "log": e.get("log") if jid else None, "detail": ""}
        if st.get("status") == "complete":
            row["state"] = "complete"
        elif jid in active:  # a queued or running job (a resubmission's folder may still hold the old failure)
            row["state"] = "queued" if active[jid] in slurm.QUEUED_STATES else "running"
            row["detail"] = active[jid]
        elif st.get("status") == "failed":
            row["state"], row["detail"] = "failed", st.get("error") or ""
        elif jid and unknown:
            row["state"], row["detail"] = "unknown", f"job state unknown: {unknown}"
        elif jid:
            row["state"] = "failed"
            row["detail"] = f"job ended ({scheduler.ended([jid]).get(jid) or 'left the queue'}) before the run finished"
        elif st.get("status") in ("running", "interrupted"):  # a local run: its status.json is all there is
            gone = provenance.run_state(st) == "stopped"
            row["state"] = "interrupted" if gone else st["status"]
            row["detail"] = f"local process {st.get('pid', '?')}" + (" (gone)" if gone else f" on {st['host']}"
                                                                      if st.get("host") else "")
        else:
            row["state"] = "not started"
        rows.append(row)
    return rows


def format_status(rows: list[dict], out: Path) -> str:
    states = ("queued", "running", "complete", "failed", "interrupted", "not started", "unknown")
    count = {s: sum(r["state"] == s for r in rows) for s in states}
    head = f"{out}: {len(rows)} run(s): " + ", ".join(f"{n} {s}" for s, n in count.items() if n or s in states[:4])
    width = max([len(r["job_id"] or "-") for r in rows] + [6])
    lines = [head, f"{'state':<11} {'job':<{width}}  run"]
    for r in rows:
        line = f"{r['state']:<11} {r['job_id'] or '-':<{width}}  {r['run']}"
        if r["detail"]:
            line += f"  ({r['detail']})"
        if r["state"] == "failed" and r["log"]:
            line += f"\n{'':<11} {'':<{width}}  log: {r['log']}"
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line (reproduce)
_METAVARS = {"partition": "NAME", "account": "NAME", "qos": "NAME", "mem_gb": "GB", "time_min": "MINUTES"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`reproduce` options for the executor, the Slurm resources and --status."""
    g = p.add_argument_group("executor (--executor slurm submits one job per run through submitit)")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: this host, --jobs at once (default); slurm: one Slurm job per run (a job array)")
    g.add_argument("--status", action="store_true",
                   help="print queued / running / complete / failed for every run of the batch folder --out, exit")
    g.add_argument("--no-wait", action="store_true", help="slurm: submit, print the job ids and return")
    g.add_argument("--poll", type=float, default=10.0, metavar="SECONDS",
                   help="slurm: seconds between two squeue checks while waiting (default 10)")
    g.add_argument("--slurm-config", type=Path, default=None, metavar="SLURM.yaml",
                   help="Slurm options as 'name: value' lines (names as below with _); command-line options win")
    for name in slurm.SlurmOptions.names():
        flag = "--" + name.replace("_", "-")
        if name == "sbatch":
            g.add_argument(flag, dest="slurm_sbatch", action="append", default=[], metavar="OPTION",
                           help=slurm.SlurmOptions.HELP[name] + " (write --sbatch=--constraint=a100 or "
                                "--sbatch constraint=a100)")
        else:
            g.add_argument(flag, dest=f"slurm_{name}", default=None, metavar=_METAVARS.get(name, "N"),
                           help=slurm.SlurmOptions.HELP[name])


def options_from_args(args: argparse.Namespace) -> slurm.SlurmOptions:
    names = slurm.SlurmOptions.names()
    return slurm.SlurmOptions.load(args.slurm_config, {n: getattr(args, f"slurm_{n}") for n in names})


def cmd_status(out: Path) -> int:
    rows = batch_status(out)
    print(format_status(rows, out))
    return 0


def cmd_reproduce(args: argparse.Namespace, runs: list[RunSpec], out: Path, command: str) -> int:
    """`reproduce --executor slurm`: exit 0 all complete (or submitted, with --no-wait), 1 some run failed,
    2 bad options or sbatch refused the batch, 130 interrupted while waiting (the jobs go on)."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError  # deferred: heavy, slurm only

    options = options_from_args(args)
    if args.jobs not in (0, 1):
        print("note: --jobs is for --executor local; Slurm runs as many jobs as it grants (see --array-parallelism)")
    executor = slurm.make_executor(Path(out).resolve() / JOBS_DIR, options, job_name=f"mintkit-{args.profile}")
    try:
        results, interrupted = reproduce(runs, out, args.profile, executor, SlurmScheduler(), timeout=args.timeout,
                                         command=command, wait=not args.no_wait, poll_s=args.poll)
    except (FailedJobError, FailedSubmissionError, OSError) as e:
        print(f"error: sbatch refused the batch: {str(e).strip()}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # squeue failed before submitting: which earlier jobs still run is unknown
        print(f"error: {e}; nothing submitted (a run still queued from an earlier call would run twice)",
              file=sys.stderr)
        return 1
    text, code = runner.summary(results)
    print(text)
    return 130 if interrupted else code
