"""The batch runner on fixture notebooks (tests/fixtures/notebooks: toy writes a run folder, broken raises)."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mintkit.batch import cli
from mintkit.batch import notebooks, runner
from mintkit.batch.plans import load_preset
from mintkit.batch.collect import collect
from mintkit.batch.provenance import add_reasons, describe_data, deviations, reason, run_state
from mintkit.core.params import ParameterError, Params, param

REPO = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures" / "notebooks"
TOY = FIX / "toy.ipynb"


@pytest.fixture(scope="module")
def toy():
    return runner.Notebook.load(TOY)


def test_parse_cli_value_types_like_yaml_then_coerces(toy):
    assert runner.parse_cli_value("lr", "1", toy.spec) == 1.0
    assert isinstance(runner.parse_cli_value("lr", "1", toy.spec), float)
    assert runner.parse_cli_value("lr", "1e-3", toy.spec) == 1e-3
    assert runner.parse_cli_value("seed", "3", toy.spec) == 3
    assert runner.parse_cli_value("dataset", "123", toy.spec) == "123"  # a str parameter keeps the text
    with pytest.raises(ParameterError, match="must be int"):
        runner.parse_cli_value("seed", "1.5", toy.spec)
    with pytest.raises(ParameterError, match="must be float"):
        runner.parse_cli_value("lr", "fast", toy.spec)
    with pytest.raises(ParameterError, match=r"unknown parameter 'lrr'; valid: dataset, fail, lr"):
        runner.parse_cli_value("lrr", "1", toy.spec)


def test_schema_of_a_paper_comes_from_its_module(monkeypatch, tmp_path):
    import sys
    import types
    nb = tmp_path / "mint.ipynb"
    shutil.copy(TOY, nb)
    fake = types.ModuleType("mintkit.papers.mint")

    @dataclasses.dataclass(frozen=True)
    class FakeParams(Params):
        PAPER = "mint"
        model: str = param("m", "model label")
        lr: float = param(0.1, "learning rate")
        fail: str = param("", "how to fail")
        extra: int = param(2, "a parameter the cell does not hold")

    fake.Params = FakeParams
    monkeypatch.setitem(sys.modules, "mintkit.papers.mint", fake)
    assert "extra" in notebooks.schema_for("mint", nb) and notebooks.params_class("mint") is FakeParams
    # the cell's defaults are checked by the paper's Params on load: the toy's label "MNIST" is no dataset
    with pytest.raises(ParameterError, match=r"parameters cell: unknown dataset 'MNIST'; valid: digits"):
        runner.Notebook.load("mint", tmp_path)


def test_grid_expansion_cross_product_and_stable_names(toy):
    runs = runner.expand_grid({"seed": [0, 1, 2], "lr": [1, 0.5], "dataset": "CIFAR-10"}, toy, "t")
    assert len(runs) == 6
    assert [p for _, p in runs][:2] == [{"seed": 0, "lr": 1}, {"seed": 0, "lr": 0.5}]
    params = [r for r, _ in runs]
    assert all(isinstance(p["lr"], float) and p["dataset"] == "CIFAR-10" and p["model"] == "ResNet50"
               for p in params)
    names = [runner.folder_name("table2", p, pt) for p, pt in runs]
    assert len(set(names)) == 6 and names[0].startswith("table2-seed=0-lr=1-")
    again = runner.expand_grid({"seed": [0, 1, 2], "lr": [1, 0.5], "dataset": "CIFAR-10"}, toy, "t")
    assert names == [runner.folder_name("table2", p, pt) for p, pt in again]
    assert runner.params_hash(params[0]) == runner.params_hash(params[0] | {"out_dir": "elsewhere"})
    assert runner.params_hash(params[0]) != runner.params_hash(params[1])


def _presets(tmp_path, text: str) -> Path:
    d = tmp_path / "nbs"
    (d / "params" / "toy").mkdir(parents=True)
    shutil.copy(TOY, d / "toy.ipynb")
    (d / "params" / "toy" / "table1.yaml").write_text(text)
    return d


@pytest.mark.parametrize("text, match", [
    ("seeed: [0, 1]\n", r"toy/table1: unknown parameter\(s\) \['seeed'\]; valid: dataset, fail, lr, model, out_dir"),
    ("seed: [0, 'one']\n", "parameter 'seed' must be int"),
    ("lr: fast\n", "parameter 'lr' must be float"),
    ("out_dir: x\n", "set by the runner"),
])
def test_bad_preset_fails_before_any_kernel(tmp_path, monkeypatch, text, match):
    d = _presets(tmp_path, text)
    monkeypatch.setattr(runner, "execute", lambda *a, **k: pytest.fail("a kernel was started"))
    with pytest.raises(ParameterError, match=match):
        runner.plan_batch("paper", ["toy"], tmp_path / "runs", notebooks_dir=d, params_dir=d / "params")
    code = cli.main(["reproduce", "--profile", "paper", "--paper", "toy", "--notebooks", str(d),
                     "--out", str(tmp_path / "runs")])
    assert code == 2 and not (tmp_path / "runs").exists()


def test_bad_cli_input_exits_2_listing_valid_names(tmp_path, capsys):
    assert cli.main(["run", "nosuchpaper"]) == 2
    err = capsys.readouterr().err
    assert "unknown notebook 'nosuchpaper'; valid:" in err and all(p in err for p in ("mint", "amint", "gmint", "factors"))
    assert cli.main(["run", str(TOY), "-p", "lrr", "1", "--out", str(tmp_path / "r")]) == 2
    assert "valid: dataset, fail, lr, model, out_dir, seed" in capsys.readouterr().err
    assert cli.main(["run", str(TOY), "-p", "seed", "x", "--out", str(tmp_path / "r")]) == 2
    assert cli.main(["run", str(TOY), "-f", str(FIX / "params" / "toy" / "table1.yaml")]) == 2  # a grid
    assert "grids" in capsys.readouterr().err
    assert cli.main(["reproduce", "--paper", "toy,nope", "--notebooks", str(FIX)]) == 2
    assert not (tmp_path / "r").exists()


def test_is_complete_needs_status_and_equal_params(tmp_path, toy):
    spec = runner.plan_run(toy, overrides={"seed": 1}, out=tmp_path / "r")
    folder = Path(spec.folder)
    folder.mkdir()
    (folder / "params.json").write_text(json.dumps(spec.params | {"out_dir": "/moved/elsewhere"}))
    (folder / "status.json").write_text(json.dumps({"status": "running"}))  # killed mid-run
    assert not runner.is_complete(spec)
    (folder / "status.json").write_text(json.dumps({"status": "complete"}))
    assert runner.is_complete(spec)
    (folder / "params.json").write_text(json.dumps(spec.params | {"lr": 0.5}))
    assert not runner.is_complete(spec)



def test_run_state_tells_a_killed_run_from_a_running_one(tmp_path):
    """A run killed without a chance to write its status (SIGKILL, the machine stopped) keeps 'running' in
    status.json; the report and `--status` read it as stopped once its process is gone on the host that wrote it."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = socket.gethostname()
    assert run_state({"status": "running", "pid": gone.pid, "host": here}) == "stopped"
    assert run_state({"status": "running", "pid": gone.pid}) == "stopped"  # folders written before hosts were kept
    assert run_state({"status": "running", "pid": os.getpid(), "host": here}) == "running"
    assert run_state({"status": "running", "pid": gone.pid, "host": here + "-elsewhere"}) == \
        f"running (on {here}-elsewhere)"
    assert run_state({"status": "complete", "pid": gone.pid}) == "complete"
    assert run_state({}) == "unfinished"
    folder = tmp_path / "runs" / "toy" / "killed"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"status": "running", "pid": gone.pid, "host": here}))
    _, runs = collect(tmp_path / "runs")
    assert [r["status"] for r in runs] == ["stopped"]

def test_cli_run_coerces_and_writes_run_folder(tmp_path):
    out = tmp_path / "one"
    assert cli.main(["run", str(TOY), "-p", "lr", "1", "-p", "seed", "2", "--out", str(out), "--no-progress"]) == 0
    params = json.loads((out / "params.json").read_text())
    assert params["lr"] == 1.0 and isinstance(params["lr"], float) and params["seed"] == 2
    assert params["out_dir"] == str(out.resolve())
    assert json.loads((out / "status.json").read_text())["status"] == "complete"
    assert (out / "executed.ipynb").exists() and (out / "results.csv").exists()


def test_run_into_a_finished_folder_skips_or_refuses_never_wipes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "one"
    argv = ["run", str(TOY), "-p", "seed", "0", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    results = (out / "results.csv").read_text()
    with monkeypatch.context() as m:
        m.setattr(runner, "execute", lambda *a, **k: pytest.fail("a finished run was run again"))
        capsys.readouterr()
        assert cli.main(argv) == 0  # same parameters: skipped
        assert "already holds this run (same parameters); skipped" in capsys.readouterr().out
        assert cli.main(argv[:4] + ["1"] + argv[5:]) == 2  # other parameters: refused, naming them and --force
        err = capsys.readouterr().err
        assert "holds a finished run with other parameters (seed 0 -> 1" in err and "--force" in err
        assert str(out / "params.json") in err
    assert (out / "results.csv").read_text() == results and json.loads((out / "params.json").read_text())["seed"] == 0
    assert cli.main(argv[:4] + ["1"] + argv[5:] + ["--force"]) == 0
    assert json.loads((out / "params.json").read_text())["seed"] == 1


def _interrupt(argv: list[str], results: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI and press Ctrl-C (SIGINT to its process group, as a terminal does) once a file matching the
    glob `results` exists under `cwd` (the fixture then sleeps 60 s in its next cell)."""
    env = os.environ | {"PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    p = subprocess.Popen([sys.executable, "-m", "mintkit", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, env=env, cwd=cwd)
    t0 = time.monotonic()
    while not list(cwd.glob(results)) and time.monotonic() - t0 < 240 and p.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.mark.parametrize("command, engine", [("run", "papermill"), ("reproduce", "exec")])
def test_ctrl_c_prints_one_line_exits_130_and_marks_the_run(tmp_path, command, engine):
    """No papermill / asyncio / zmq traceback (the kernel's stderr goes to the run folder's kernel.log)."""
    if command == "run":
        argv = ["run", str(TOY), "-p", "fail", "sleep", "--out", "one"]
    else:
        argv = ["reproduce", "--profile", "quick", "--paper", "toy", "--notebooks", str(FIX), "-p", "fail", "sleep",
                "--out", "batch"]
    res = _interrupt(argv + ["--no-progress", "--engine", engine], "**/results.csv", tmp_path)
    assert res.returncode == 130, res.stdout + res.stderr
    assert res.stderr.strip() == "interrupted: rerun the same command to resume", res.stderr
    folder = next(tmp_path.glob("**/results.csv")).parent
    assert json.loads((folder / "status.json").read_text())["status"] == "interrupted"
    if command == "reproduce":
        batch = json.loads((tmp_path / "batch" / "batch.json").read_text())
        assert [e["status"] for e in batch["runs"].values()] == ["interrupted"]


def test_reproduce_records_failure_continues_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs" / "paper"
    argv = ["reproduce", "--profile", "paper", "--paper", "broken,toy", "--notebooks", str(FIX),
            "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 1  # the broken run failed, the batch went on
    text = capsys.readouterr().out
    assert "2 run, 0 skipped (already complete), 1 failed" in text
    bad = next((out / "broken").iterdir())
    assert f"FAILED broken/{bad.name}: ValueError: deliberate failure" in text
    assert str(bad / "executed.ipynb") in text
    status = json.loads((bad / "status.json").read_text())
    assert status["status"] == "failed" and "deliberate failure" in status["error"]
    assert (bad / "executed.ipynb").exists() and (bad / "partial.txt").exists()  # partial work kept
    toys = sorted(p.name for p in (out / "toy").iterdir())
    assert len(toys) == 2 and toys[0].startswith("table1-seed=0-")
    assert all(json.loads((out / "toy" / t / "params.json").read_text())["lr"] == 1.0 for t in toys)
    batch = json.loads((out / "batch.json").read_text())
    assert batch["profile"] == "paper" and batch["runs"][f"broken/{bad.name}"]["status"] == "failed"

    # second call: the complete runs are skipped, nothing runs
    monkeypatch.setattr(runner, "execute", lambda *a, **k: pytest.fail("a complete run was run again"))
    assert cli.main(argv[:4] + ["toy"] + argv[5:]) == 0
    assert "0 run, 2 skipped" in capsys.readouterr().out


@pytest.mark.parametrize("fail, error", [("sleep", "CellTimeoutError"), ("exit", "DeadKernelError")])
def test_timeout_and_dead_kernel_are_failures(tmp_path, toy, fail, error):
    spec = runner.plan_run(toy, overrides={"fail": fail}, out=tmp_path / fail)
    # a dying kernel must be noticed before the cell timeout, even on a loaded machine: a long timeout there
    res = runner.execute(spec, timeout=3 if fail == "sleep" else 60, progress=False)
    assert res["status"] == "failed" and error in res["error"]
    status = json.loads((tmp_path / fail / "status.json").read_text())
    assert status["status"] == "failed" and (tmp_path / fail / "executed.ipynb").exists()


def test_presets_layer_over_a_base_and_bases_never_run(tmp_path):
    (tmp_path / "_face.yaml").write_text("lr: 0.1\nseed: 1\nbatch_size: 32\n")
    (tmp_path / "_big.yaml").write_text("include: _face.yaml\nbatch_size: 256\n")
    (tmp_path / "table9.yaml").write_text("include: [_big.yaml]\nseed: 7\n")
    assert load_preset(tmp_path / "table9.yaml") == {"lr": 0.1, "seed": 7, "batch_size": 256}
    (tmp_path / "_loop.yaml").write_text("include: loop2.yaml\n")
    (tmp_path / "loop2.yaml").write_text("include: _loop.yaml\n")
    with pytest.raises(ParameterError, match="include cycle"):
        load_preset(tmp_path / "loop2.yaml")


def test_overrides_that_change_the_preset_recipe_are_recorded_and_reported(tmp_path):
    """A -p value that changes a preset's recipe goes to the run's plan.json and into the report's data text;
    picking one value of a grid axis or pointing at the data is not a change."""
    runs, _ = runner.plan_batch("paper", ["toy"], tmp_path / "runs", overrides={"lr": "0.5", "seed": "1"},
                                notebooks_dir=FIX, params_dir=FIX / "params")
    assert [r.changed for r in runs] == [{"lr": {"preset": 1, "run": 0.5}}]
    res = runner.execute(runs[0], progress=False)
    assert res["status"] == "complete"
    folder = Path(res["folder"])
    assert json.loads((folder / "plan.json").read_text())["changed"] == {"lr": {"preset": 1, "run": 0.5}}
    data = describe_data(folder)
    assert "not the preset's recipe: lr 0.5 (preset 1)" in data
    assert reason({}, data, deviations().iloc[:0]).startswith("preset recipe changed by overrides")
    (folder / "plan.json").write_text(json.dumps({"changed": {}}))  # e.g. written by an older kit
    runner.reproduce(runs, tmp_path / "runs", "paper", progress=False, log=lambda *a: None)  # skips the run
    assert json.loads((folder / "plan.json").read_text())["changed"] == {"lr": {"preset": 1, "run": 0.5}}


def test_the_mnist_profile_records_recipe_overrides_too(tmp_path):
    """Profiles that build their own preset values (mnist) still record what the -p overrides changed."""
    runs, _ = runner.plan_batch("mnist", ["amint"], tmp_path / "runs", seeds=1,
                                overrides={"audited_epochs": "8", "arch": "mobilenet", "data_root": str(tmp_path)})
    assert len(runs) == 3 and all(r.params["arch"] == "mobilenet" for r in runs)
    assert all(r.changed == {"audited_epochs": {"preset": 100, "run": 8}} for r in runs)


def test_a_run_whose_overrides_shrink_the_sets_says_reduced_size(tmp_path):
    """-p n_members below the preset's is a reduced-size run of the real data: its data text and reason say so
    (never 'stand-in', never unlabelled)."""
    (tmp_path / "plan.json").write_text(json.dumps({"changed": {"n_members": {"preset": 0, "run": 5000},
                                                               "lr": {"preset": 0.0001, "run": 0.001}}}))
    (tmp_path / "params.json").write_text(json.dumps({"dataset": "mnist"}))
    (tmp_path / "status.json").write_text(json.dumps({"status": "complete", "seconds": 3761.4}))
    data = describe_data(tmp_path)
    assert "reduced size" in data and "stand-in" not in data and "n_members 5000 (preset 0)" in data
    assert data.endswith("wall 3,761 s")  # the run's wall time travels with its cells
    assert reason({}, data, deviations().iloc[:0]).startswith("reduced size of the real data")



def test_an_audited_model_far_from_the_published_accuracy_needs_a_reason_too():
    """|Δ| 0.01 on the membership number, but the audited model 0.04 more accurate than the paper's: not
    comparable as it stands, so the cell carries its reason; 0.02 off does not."""
    cell = {"difference": 0.01, "audited_accuracy_published": 0.90, "data": "MNIST, reduced size"}
    none = deviations().iloc[:0]
    rows = pd.DataFrame([cell | {"audited_accuracy_reproduced": 0.94}, cell | {"audited_accuracy_reproduced": 0.92},
                         cell | {"audited_accuracy_reproduced": float("nan")}])
    assert [r.startswith("reduced size") for r in add_reasons(rows, none)["reason"]] == [True, False, False]

def test_two_batches_into_one_folder_keep_each_others_entries(tmp_path):
    """batch.json is merged on every save: a second reproduce process writing into the same folder (one paper
    per process) does not erase what the first recorded since it started."""
    first = runner.Manifest(tmp_path, "mnist", "reproduce --paper amint")
    second = runner.Manifest(tmp_path, "mnist", "reproduce --paper gmint")
    a = runner.RunSpec("amint", "nb", "t1", str(tmp_path / "amint" / "r1"), {}, {})
    g = runner.RunSpec("gmint", "nb", "t1", str(tmp_path / "gmint" / "r1"), {}, {})
    first.update(a, status="complete", seconds=10.0)
    first.save()
    second.update(g, status="complete", seconds=20.0)
    second.save()
    data = json.loads((tmp_path / "batch.json").read_text())
    assert data["runs"]["amint/r1"]["seconds"] == 10.0 and data["runs"]["gmint/r1"]["seconds"] == 20.0
    assert data["commands"] == ["reproduce --paper amint", "reproduce --paper gmint"]


@pytest.fixture
def toyck(tmp_path):
    """The toy notebook with a `checkpoint` parameter, and a preset whose grid names one file that exists and
    one that does not."""
    nb = json.loads(TOY.read_text())
    nb["cells"][1]["source"] = "".join(nb["cells"][1]["source"]) + '\ncheckpoint = ""  # a model file (not read)\n'
    nb["cells"][2]["source"] = "".join(nb["cells"][2]["source"]).replace(
        '"fail": (str, "", ""),', '"fail": (str, "", ""), "checkpoint": (str, "", ""),')
    d = tmp_path / "nbs"
    (d / "params" / "toyck").mkdir(parents=True)
    (d / "toyck.ipynb").write_text(json.dumps(nb))
    (tmp_path / "model.pt").write_bytes(b"weights")
    (d / "params" / "toyck" / "table1.yaml").write_text(
        f"checkpoint: [{tmp_path / 'model.pt'}, {tmp_path / 'absent.pt'}]\n")
    return d


def test_a_missing_input_marks_its_run_needs_input_and_the_batch_goes_on(tmp_path, toyck, capsys):
    out = tmp_path / "batch"
    argv = ["reproduce", "--profile", "paper", "--paper", "toyck", "--notebooks", str(toyck), "--out", str(out),
            "--engine", "exec", "--no-progress"]
    assert cli.main(argv + ["--dry-run"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"toyck/table1 +2 +0 +1 +1  MNIST  no measured run yet", text), text
    assert re.search(rf"MISSING \(needs input\) +checkpoint +1  {tmp_path / 'absent.pt'}  \(a file", text)
    assert re.search(rf"exists +checkpoint +1  {tmp_path / 'model.pt'}", text)
    assert "{" not in text  # no parameter dicts without --verbose
    assert cli.main(argv + ["--dry-run", "--verbose"]) == 0 and "'checkpoint':" in capsys.readouterr().out

    assert cli.main(argv) == 1  # one run needs input: not everything was reproduced
    text = capsys.readouterr().out
    assert "1 run, 0 skipped (already complete), 0 failed, 1 not started: needs input" in text
    assert "NEEDS INPUT toyck/" in text and f"checkpoint '{tmp_path / 'absent.pt'}'" in text
    states = {json.loads((f / "params.json").read_text())["checkpoint"] if (f / "params.json").exists() else
              "absent": json.loads((f / "status.json").read_text()) for f in (out / "toyck").iterdir()}
    assert states[str(tmp_path / "model.pt")]["status"] == "complete"
    assert states["absent"]["status"] == "needs input" and states["absent"]["missing"] == [str(tmp_path / "absent.pt")]
    batch = json.loads((out / "batch.json").read_text())
    assert sorted(e["status"] for e in batch["runs"].values()) == ["complete", "needs input"]

    # the dry run now estimates from the measured time when the finished run must run again
    done = next(f for f in (out / "toyck").iterdir() if (f / "params.json").exists())
    (done / "status.json").unlink()
    assert cli.main(argv + ["--dry-run"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"toyck/table1 +2 +0 +1 +1  MNIST  ~\d+ s \(median \d+ s of 1 measured\)", text), text
    assert "estimate: ~" in text

    figures = tmp_path / "figures"
    assert cli.main(["report", "--runs", str(out), "--out", str(figures), "--paper", "amint"]) == 0
    assert f"needs input — needs input: checkpoint '{tmp_path / 'absent.pt'}'" in (figures / "README.md").read_text()


def test_run_with_a_missing_checkpoint_exits_2_naming_it(tmp_path, toyck, capsys):
    assert cli.main(["run", str(toyck / "toyck.ipynb"), "-p", "checkpoint", str(tmp_path / "gone.pt"),
                     "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"needs input: checkpoint '{tmp_path / 'gone.pt'}'" in err and "is missing" in err
    assert not (tmp_path / "r").exists()


def test_seeds_take_a_count_or_a_list(tmp_path):
    """--seeds 3 runs 0..2; --seeds 1,2 (or 1-2) runs only those: the rest of a batch whose seed 0 ran earlier.
    A malformed list is refused before any run is planned."""
    assert runner.seed_list(None, 3) == [0, 1, 2] and runner.seed_list(2, 3) == [0, 1]
    assert runner.seed_list("3", 1) == [0, 1, 2] and runner.seed_list("1,2", 1) == runner.seed_list("1-2", 1) == [1, 2]
    runs, _ = runner.plan_batch("mnist", ["amint"], tmp_path / "runs", seeds="1,2",
                                overrides={"arch": "mobilenet", "data_root": str(tmp_path)})
    assert sorted({r.params["seed"] for r in runs}) == [1, 2] and len(runs) == 6
    for bad in ("1,x", "2-1", ",", 0):
        with pytest.raises(ParameterError, match="--seeds"):
            runner.seed_list(bad, 1)


def test_jobs_auto_fills_the_cores_at_each_runs_threads(tmp_path, monkeypatch):
    """--jobs auto (the default): one run per GPU; on CPU as many one-thread runs as cores (fewer when runs ask
    for more threads, torch's default of every core for threads 0 as the presets have, or there are fewer runs);
    an explicit count that oversubscribes the cores is warned about."""
    spec = runner.plan_batch("mnist", ["amint"], tmp_path / "runs", seeds=2,
                             overrides={"arch": "mobilenet", "data_root": str(tmp_path), "threads": "1"})[0]
    two = [dataclasses.replace(s, params=s.params | {"threads": 2}) for s in spec]
    every = [dataclasses.replace(s, params=s.params | {"threads": 0}) for s in spec]
    monkeypatch.setattr(runner, "_visible_gpus", lambda: [])
    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda _pid: set(range(4)))
    assert runner.auto_jobs(spec)[0] == 4 and runner.auto_jobs(spec[:3])[0] == 3
    assert runner.auto_jobs(two)[0] == 2 and runner.auto_jobs(every)[0] == 1 and runner.auto_jobs([])[0] == 1
    assert runner.oversubscribed(spec, 4) == "" and "oversubscribed" in runner.oversubscribed(two, 4)
    monkeypatch.setattr(runner, "_visible_gpus", lambda: ["0", "1"])
    assert runner.auto_jobs(spec) == (2, "one run per visible GPU (2)")
    assert cli.build_parser().parse_args(["reproduce"]).jobs == 0
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["reproduce", "--jobs", "0"])


def test_the_mnist_profile_plans_mint_and_factors(tmp_path):
    """--profile mnist plans the MINT cells (Table 1 grid, Table 7's CNN sizes) and every Factors scenario on real
    MNIST at a data root that holds it (docs/profiles.md)."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"")
    runs, _ = runner.plan_batch("mnist", ["mint", "factors"], tmp_path / "runs", seeds=1,
                                overrides={"data_root": str(tmp_path)})
    by_paper = {p: [r for r in runs if r.paper == p] for p in ("mint", "factors")}
    assert {r.preset for r in by_paper["mint"]} == {"table1_mnist", "table7_mnist"}
    assert sorted(r.params["cnn_params_scale"] for r in by_paper["mint"] if r.preset == "table7_mnist") == [
        0.333, 3.0, 10.0]
    assert by_paper["factors"] and all(r.params["dataset"] == "mnist" for r in runs)
    assert all(r.params["data_root"] == str(tmp_path) for r in runs)


def test_the_cifar10_profile_plans_mint_appendix_cells_on_the_stand_in(tmp_path):
    """--profile cifar10 plans MINT Table 8 (MobileNet) and Table 9's resolutions (ResNet50, 16/32/64 px) on the
    JPEG stand-in when the data root holds only it, each run saying so (docs/profiles.md)."""
    (tmp_path / "cifar10-jpeg").mkdir()
    (tmp_path / "cifar10-jpeg" / "cifar10-jpeg.tar.gz").write_bytes(b"")
    runs, _ = runner.plan_batch("cifar10", ["mint"], tmp_path / "runs", seeds=1,
                                overrides={"data_root": str(tmp_path)})
    assert {(r.preset, r.params["arch"], r.params["image_size"]) for r in runs} == {
        ("table8_cifar10", "mobilenet", 0), ("table9_cifar10", "resnet50", 16), ("table9_cifar10", "resnet50", 32),
        ("table9_cifar10", "resnet50", 64)}
    assert all(r.params["dataset"] == "cifar10-jpeg" for r in runs)
