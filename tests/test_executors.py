"""`reproduce`'s cluster path without a cluster: Slurm options and the sbatch script they make, and the whole
submit / wait / resume / Ctrl-C / status flow through submitit's LocalExecutor (tests/test_slurm.py runs it
against a real Slurm)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import submitit
from submitit.slurm.slurm import _make_sbatch_string

from mintkit.batch import cli, executors, runner
from mintkit.batch.slurm import SlurmOptions, package_root, parse_sbatch_option
from mintkit.core.params import ParameterError

FIX = Path(__file__).parent / "fixtures" / "notebooks"


def test_options_from_yaml_then_command_line_make_the_sbatch_script(tmp_path):
    cfg = tmp_path / "slurm.yaml"
    cfg.write_text("partition: gpu\ngpus_per_job: 1\ncpus-per-job: 8\nmem_gb: 32\ntime_min: 90\n"
                   "array_parallelism: 4\naccount: proj\nqos: normal\n"
                   "sbatch: ['--constraint=a100', '#SBATCH --exclusive']\n")
    opts = SlurmOptions.load(cfg, {"partition": "a100", "time_min": "120", "qos": None})
    got = (opts.partition, opts.gpus_per_job, opts.cpus_per_job, opts.mem_gb, opts.time_min)
    assert got == ("a100", 1, 8, 32.0, 120)
    script = _make_sbatch_string(command="python -m x", folder=tmp_path / "%j", map_count=10,
                                 **opts.executor_parameters("mintkit-paper"))
    for line in ("--partition=a100", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32768M", "--time=120",
                 "--account=proj", "--qos=normal", "--constraint=a100", "--exclusive", "--array=0-9%4",
                 "--job-name=mintkit-paper"):
        assert f"#SBATCH {line}\n" in script, (line, script)
    assert f"export PYTHONPATH={package_root()}" in script  # the job imports the submitting checkout's mintkit


def test_default_options_request_nothing_but_a_time_limit(tmp_path):
    script = _make_sbatch_string(command="x", folder=tmp_path, **SlurmOptions.load().executor_parameters("j"))
    assert "#SBATCH --time=720\n" in script
    assert not any(f"--{k}=" in script for k in ("partition", "gpus-per-node", "cpus-per-task", "mem", "account"))


@pytest.mark.parametrize("values, match", [
    ({"gpus": 1}, r"unknown slurm option\(s\) \['gpus'\]; valid: partition, gpus_per_job, cpus_per_job"),
    ({"time_min": "1h"}, "'time_min' must be int"),
    ({"cpus_per_job": 0}, "'cpus_per_job' must be at least 1"),
    ({"mem_gb": True}, "'mem_gb' must be float"),
    ({"sbatch": ["-C a100"]}, "long form"),
])
def test_bad_options_are_refused_with_the_valid_names(values, match):
    with pytest.raises(ParameterError, match=match):
        SlurmOptions.load(None, values)


def test_sbatch_option_forms():
    assert parse_sbatch_option("--constraint=a100") == ("constraint", "a100")
    assert parse_sbatch_option("constraint=a100") == ("constraint", "a100")
    assert parse_sbatch_option("#SBATCH --exclusive") == ("exclusive", True)
    assert parse_sbatch_option("--mail-type END") == ("mail-type", "END")


def test_cli_refuses_bad_slurm_input_before_submitting(tmp_path, monkeypatch, capsys):
    base = ["reproduce", "--profile", "paper", "--paper", "toy", "--notebooks", str(FIX),
            "--out", str(tmp_path / "r"), "--executor", "slurm"]
    assert cli.main(base + ["--time-min", "soon"]) == 2
    assert "'time_min' must be int" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch: not a login node
    assert cli.main(base) == 2
    assert "sbatch/srun not found on PATH" in capsys.readouterr().err
    assert cli.main(["reproduce", "--status", "--out", str(tmp_path / "nothing")]) == 2
    assert "no batch.json under" in capsys.readouterr().err


def _plan(out: Path, papers: list[str]):
    runs, _ = runner.plan_batch("paper", papers, out, notebooks_dir=FIX, params_dir=FIX / "params")
    return runs


def _local(out: Path) -> submitit.LocalExecutor:
    ex = submitit.LocalExecutor(folder=out / executors.JOBS_DIR / "%j")
    ex.update_parameters(timeout_min=5)
    return ex


def test_local_submitit_batch_ctrl_c_status_resume_and_failures(tmp_path, monkeypatch):
    out = tmp_path / "runs" / "paper"
    runs = _plan(out, ["broken", "toy"])
    assert len(runs) == 3
    sched = executors.SubmititScheduler()

    # Ctrl-C at the first wait: every run pending, its job id recorded; the jobs run on and write their folders
    def ctrl_c(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "_pause", ctrl_c)
    logs = []
    results, interrupted = executors.reproduce(runs, out, "paper", _local(out), sched, poll_s=0.2, log=logs.append)
    assert interrupted and [r["status"] for r in results] == ["pending"] * 3
    assert any("interrupted: 3 run(s) still queued or running" in line for line in logs)
    entries = json.loads((out / "batch.json").read_text())["runs"]
    assert len(entries) == 3 and all(e["executor"] == "submitit" and e["job_id"] for e in entries.values())
    deadline = time.monotonic() + 120
    while any(runner.run_status(s.folder).get("status") not in ("complete", "failed") for s in runs):
        assert time.monotonic() < deadline, "the local jobs did not finish within 120 s"
        time.sleep(0.5)
    rows = {r["run"]: r for r in executors.batch_status(out, sched)}
    assert sorted(r["state"] for r in rows.values()) == ["complete", "complete", "failed"]
    bad = next(r for r in rows.values() if r["run"].startswith("broken/"))
    assert "deliberate failure" in bad["detail"]
    monkeypatch.setattr(executors, "_pause", time.sleep)

    # again: the two complete runs are skipped, the broken one is resubmitted and fails, listed with job and log
    results, interrupted = executors.reproduce(runs, out, "paper", _local(out), sched, poll_s=0.2, log=logs.append)
    assert not interrupted
    assert sorted(r["status"] for r in results) == ["failed", "skipped", "skipped"]
    failed = next(r for r in results if r["status"] == "failed")
    text, code = runner.summary(results)
    assert code == 1 and "0 run, 2 skipped (already complete), 1 failed" in text
    assert f"job:      {failed['job_id']}" in text and f"log:      {failed['log']}" in text
    assert Path(failed["log"]).exists() and "ValueError" in failed["error"]
    entry = json.loads((out / "batch.json").read_text())["runs"][failed["folder"].split(str(out) + "/")[1]]
    assert entry["job_id"] == failed["job_id"] and entry["status"] == "failed"
    # the run folder is the one a local (papermill) run writes
    toy = next(Path(s.folder) for s in runs if s.paper == "toy")
    assert {p.name for p in toy.iterdir()} >= {"status.json", "params.json", "plan.json", "executed.ipynb", "results.csv"}


def test_status_without_a_scheduler_to_ask_reads_the_folders(tmp_path, monkeypatch, capsys):
    out = tmp_path / "b"
    for name, status in (("done", {"status": "complete"}), ("broke", {"status": "failed", "error": "boom"}),
                         ("queued", None)):
        (out / "toy" / name).mkdir(parents=True)
        if status:
            (out / "toy" / name / "status.json").write_text(json.dumps(status))
    (out / "batch.json").write_text(json.dumps({"runs": {
        f"toy/{n}": {"executor": "slurm", "job_id": f"7_{i}", "log": f"/logs/7_{i}_0_log.err"}
        for i, n in enumerate(("done", "broke", "queued"))}}))
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue here
    assert cli.main(["reproduce", "--status", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 run(s): 0 queued, 0 running, 1 complete, 1 failed, 1 unknown" in text, text
    assert re.search(r"\nfailed +7_1 +toy/broke  \(boom\)\n +log: /logs/7_1_0_log.err\n", text), text
    assert re.search(r"\nunknown +7_2 +toy/queued  \(job state unknown: squeue failed", text), text
