"""`reproduce --executor slurm` against a real one-node Slurm on 127.0.0.1 (tests/slurm_cluster.py).

Installs Debian's slurm-wlm and munge when missing (root and apt-get needed), starts munged, slurmctld and
slurmd in a temp folder, runs the toy notebook's two-run batch through the kit, and stops the daemons. Where
Slurm cannot be installed or started the tests skip with the reason (MINTKIT_REQUIRE_SLURM=1 makes that a
failure); tests/test_executors.py covers the same code path with submitit's LocalExecutor.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import slurm_cluster
from mintkit.batch import cli, executors, runner, slurm

FIX = Path(__file__).parent / "fixtures" / "notebooks"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster():
    t0 = time.perf_counter()
    c = None
    try:
        installed_s = slurm_cluster.ensure_installed()
        t1 = time.perf_counter()
        c = slurm_cluster.Cluster()
        c.start()
    except slurm_cluster.Unavailable as e:
        if c is not None:
            c.cleanup()
        print(f"\nSlurm unavailable: {e}")
        if os.environ.get("MINTKIT_REQUIRE_SLURM"):
            pytest.fail(f"Slurm unavailable (MINTKIT_REQUIRE_SLURM is set): {e}")
        pytest.skip(f"Slurm unavailable: {e}")  # the reason carries the daemons' log tails
    print(f"\nslurm test cluster: apt install {installed_s:.1f} s (0 = already installed), daemons up in "
          f"{time.perf_counter() - t1:.1f} s, total {time.perf_counter() - t0:.1f} s; packages "
          + ", ".join(f"{k} {v}" for k, v in sorted(slurm_cluster.package_versions().items())))
    try:
        yield c
    finally:
        c.cleanup()


@pytest.fixture
def slurm_env(cluster, monkeypatch):
    """Clients (sbatch, squeue, scontrol in this process and in the jobs) talk to the test cluster."""
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    return cluster


def _argv(out: Path, *extra: str) -> list[str]:
    return ["reproduce", "--profile", "paper", "--paper", "toy", "--notebooks", str(FIX), "--out", str(out),
            "--no-progress", "--executor", "slurm", "--poll", "0.5", "--cpus-per-job", "1", "--time-min", "10",
            *extra]


def _jobs(out: Path) -> dict[str, str]:
    return {k: e["job_id"] for k, e in json.loads((out / "batch.json").read_text())["runs"].items()
            if e.get("executor") == "slurm"}


def _interrupt(seconds: float) -> None:
    raise KeyboardInterrupt


def test_batch_on_slurm_submits_waits_resumes_and_skips(slurm_env, tmp_path, monkeypatch, capsys):
    t0 = time.perf_counter()
    out = tmp_path / "runs" / "paper"
    try:
        # held jobs stay queued: submit without waiting, --status says queued for both, with their job ids
        assert cli.main(_argv(out, "--sbatch", "hold", "--no-wait")) == 0
        text = capsys.readouterr().out
        assert "2 to submit" in text and "submitted 2 job(s)" in text, text
        ids = _jobs(out)
        assert len(ids) == 2 and len(set(ids.values())) == 2
        assert all(j.split("_")[0] == next(iter(ids.values())).split("_")[0] for j in ids.values())  # one array
        assert cli.main(["reproduce", "--status", "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert "2 run(s): 2 queued, 0 running, 0 complete, 0 failed" in text, text
        assert all(j in text for j in ids.values())

        # released; Ctrl-C while waiting: exit 130, the jobs go on in Slurm, the job ids stay in batch.json
        subprocess.run(["scontrol", "release", next(iter(ids.values())).split("_")[0]], check=True, timeout=30)
        monkeypatch.setattr(executors, "_pause", _interrupt)
        assert cli.main(_argv(out)) == 130
        text = capsys.readouterr().out
        assert "0 to submit" in text and "interrupted: 2 run(s) still queued or running" in text, text
        assert _jobs(out) == ids
        left = slurm.queue_states(list(ids.values()))
        assert all(runner.run_status(out / k).get("status") == "complete" or ids[k] in left for k in ids), left
        monkeypatch.setattr(executors, "_pause", time.sleep)

        # the same command again waits for those jobs (nothing submitted twice) until both runs are complete
        assert cli.main(_argv(out)) == 0
        text = capsys.readouterr().out
        assert "2 still queued or running in slurm, 0 to submit" in text, text
        assert "2 run, 0 skipped (already complete), 0 failed" in text, text
        assert _jobs(out) == ids
        seeds = set()
        for key, jid in ids.items():
            folder = out / key
            assert json.loads((folder / "status.json").read_text())["status"] == "complete"
            assert (folder / "executed.ipynb").exists() and (folder / "results.csv").exists()
            seeds.add(json.loads((folder / "params.json").read_text())["seed"])
            log = out / executors.JOBS_DIR / jid / f"{jid}_0_log.err"
            assert log.exists(), f"no job log {log}"
        assert seeds == {0, 1}

        # resubmitted: both skipped, no job submitted
        before = sorted(p.name for p in (out / executors.JOBS_DIR).iterdir())
        assert cli.main(_argv(out)) == 0
        text = capsys.readouterr().out
        assert "0 run, 2 skipped (already complete), 0 failed" in text and "submitted" not in text, text
        assert sorted(p.name for p in (out / executors.JOBS_DIR).iterdir()) == before

        assert cli.main(["reproduce", "--status", "--out", str(out)]) == 0
        assert "2 run(s): 0 queued, 0 running, 2 complete, 0 failed" in capsys.readouterr().out
    except BaseException:
        print(f"squeue:\n{slurm_env.squeue()}\n{slurm_env.logs()}")
        raise
    print(f"\nslurm batch test: {time.perf_counter() - t0:.1f} s")


def test_a_job_killed_in_slurm_is_a_failure_with_its_job_id_and_log(slurm_env, tmp_path, monkeypatch, capsys):
    out = tmp_path / "lost"
    argv = _argv(out, "-p", "seed", "7")
    assert cli.main(argv + ["--sbatch", "hold", "--no-wait"]) == 0
    capsys.readouterr()
    (key, jid), = _jobs(out).items()

    def cancel_then_wait(seconds: float) -> None:  # scancel while the kit waits: the job leaves the queue
        subprocess.run(["scancel", jid.split("_")[0]], check=True, timeout=30)
        time.sleep(seconds)

    monkeypatch.setattr(executors, "_pause", cancel_then_wait)
    monkeypatch.setattr(executors.SlurmScheduler, "grace_s", 0.0)
    assert cli.main(argv) == 1
    text = capsys.readouterr().out
    log = out / executors.JOBS_DIR / jid / f"{jid}_0_log.err"
    assert f"FAILED {key}: job {jid} ended (left the queue) before the run finished" in text, text
    assert f"job:      {jid}" in text and f"log:      {log}" in text, text
    status = json.loads((out / key / "status.json").read_text())
    assert status["status"] == "failed" and status["job_id"] == jid
    assert cli.main(["reproduce", "--status", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0 complete, 1 failed" in text and f"log: {log}" in text, text


def test_sbatch_refusing_the_batch_is_a_clear_error(slurm_env, tmp_path, capsys):
    out = tmp_path / "refused"
    assert cli.main(_argv(out, "--partition", "nosuch")) == 2
    err = capsys.readouterr().err
    assert "sbatch refused the batch" in err and "invalid partition" in err, err
    assert not (out / "batch.json").exists()  # nothing was submitted, nothing recorded
