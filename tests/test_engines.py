"""The exec engine (mintkit.batch.engines): notebooks run without Jupyter, bookkept like papermill runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mintkit.batch import runner

FIX = Path(__file__).parent / "fixtures" / "notebooks"
TOY = FIX / "toy.ipynb"
ROOT = Path(__file__).resolve().parents[1]
JUPYTER = ("papermill", "nbformat", "nbclient", "ipykernel", "IPython")

# a sitecustomize that makes every Jupyter package unimportable, as on a GPU machine without Jupyter
NO_JUPYTER = f"""
import sys
class _NoJupyter:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {JUPYTER!r}:
            raise ImportError(f"{{name}} is not installed here (test hook)")
        return None
sys.meta_path.insert(0, _NoJupyter())
for _m in [m for m in sys.modules if m.split(".")[0] in {JUPYTER!r}]:
    del sys.modules[_m]
"""


def _notebook(path: Path, *cells: str, parameters: str = 'seed = 0\nout_dir = "x"') -> Path:
    """A minimal .ipynb: a parameters cell, then the given code cells."""
    code = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": parameters.splitlines(True),
             "outputs": [], "execution_count": None}]
    code += [{"cell_type": "code", "metadata": {}, "source": textwrap.dedent(c), "outputs": [],
              "execution_count": None} for c in cells]
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# t"}] + code,
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def _cli_without_jupyter(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    hook = tmp_path / "nojupyter"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(NO_JUPYTER)
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)]), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "mintkit", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, check=False)


def test_cli_runs_reproduce_and_resume_without_jupyter(tmp_path):
    probe = _cli_without_jupyter(tmp_path, "--help")
    assert probe.returncode == 0, probe.stderr
    hook_env = os.environ | {"PYTHONPATH": str(tmp_path / "nojupyter")}
    for mod in JUPYTER[:2]:  # the hook really hides them (else this test would prove nothing)
        r = subprocess.run([sys.executable, "-c", f"import {mod}"], env=hook_env, capture_output=True, text=True,
                           check=False)
        assert r.returncode != 0 and "not installed here" in r.stderr

    out = tmp_path / "batch"
    argv = ["reproduce", "--profile", "paper", "--paper", "broken,toy", "--notebooks", str(FIX), "--out", str(out),
            "--engine", "exec", "--jobs", "2", "--no-progress"]
    r = _cli_without_jupyter(tmp_path, *argv)
    assert r.returncode == 1, r.stdout + r.stderr  # the broken run failed, the batch went on
    assert "2 run, 0 skipped (already complete), 1 failed" in r.stdout
    bad = next((out / "broken").iterdir())
    assert f"FAILED broken/{bad.name}: ValueError: deliberate failure (broken fixture) (cell 3)" in r.stdout
    status = json.loads((bad / "status.json").read_text())
    assert status["status"] == "failed" and status["executed"] == str(bad / "executed.log")
    assert '<broken.ipynb code cell 3>' in status["traceback"]  # the cell's own traceback is kept
    assert (bad / "partial.txt").exists() and not (bad / "executed.ipynb").exists()  # partial work kept
    assert 'raise ValueError("deliberate failure' in (bad / "executed.log").read_text()
    for toy in (out / "toy").iterdir():
        assert json.loads((toy / "status.json").read_text())["status"] == "complete"
        params = json.loads((toy / "params.json").read_text())
        assert params["out_dir"] == str(toy.resolve()) and params["lr"] == 1.0  # injected as papermill would
        log = (toy / "executed.log").read_text()
        assert "##### injected parameters" in log and (toy / "results.csv").exists()
    assert json.loads((out / "batch.json").read_text())["runs"][f"broken/{bad.name}"]["status"] == "failed"

    again = _cli_without_jupyter(tmp_path, *argv[:4], "toy", *argv[5:])  # resume: nothing runs again
    assert again.returncode == 0 and "0 run, 2 skipped" in again.stdout, again.stdout + again.stderr

    one = tmp_path / "one"
    r = _cli_without_jupyter(tmp_path, "run", str(TOY), "-p", "seed", "2", "--out", str(one), "--engine", "exec",
                             "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((one / "params.json").read_text())["seed"] == 2 and (one / "executed.log").exists()


@pytest.mark.parametrize("fail, error", [
    ("sleep", "CellTimeoutError: the cell ran longer than 15 s and was stopped (cell 4)"),
    ("exit", "DeadKernelError: the run's process exited with code 1 (cell 4)")])
def test_exec_timeout_and_dead_process_are_failures(tmp_path, fail, error):
    spec = runner.plan_run(runner.Notebook.load(TOY), overrides={"fail": fail}, out=tmp_path / fail)
    # the limit is per cell: generous enough for the fixture's imports on a loaded machine, below its 60 s sleep
    res = runner.execute(spec, timeout=15 if fail == "sleep" else 60, progress=False, engine="exec")
    assert res["status"] == "failed" and res["error"] == error
    status = json.loads((tmp_path / fail / "status.json").read_text())
    assert status["status"] == "failed" and status["executed"] == str(tmp_path / fail / "executed.log")
    if fail == "sleep":
        assert res["seconds"] < 58  # stopped at the cell's limit, not after the fixture's 60 s sleep


def test_exec_namespace_injection_display_and_magics(tmp_path):
    nb = _notebook(tmp_path / "nb.ipynb", """
        import pandas as pd, pathlib
        assert seed == 7 and out_dir.endswith("run")  # the injected values win over the parameters cell
        display(pd.DataFrame({"row": range(80)}), "plain text")
        pathlib.Path(out_dir, "status.json").write_text('{"status": "complete"}')
        """)
    folder = tmp_path / "run"
    folder.mkdir()
    path = runner.engines.run("exec", str(nb), folder, {"seed": 7, "out_dir": str(folder)}, progress=False)
    log = path.read_text()
    assert path.name == "executed.log" and "\n79   79\n" in log and "plain text" in log  # the whole frame, as text

    magic = _notebook(tmp_path / "magic.ipynb", 'open(out_dir + "/ran", "w").close()', "%matplotlib inline\nx = 1")
    with pytest.raises(runner.engines.ExecError, match=r"magic.ipynb code cell 3 uses IPython-only syntax "
                                                        r"\('%matplotlib inline'\)") as e:
        runner.engines.run("exec", str(magic), folder, {"out_dir": str(folder)}, progress=False)
    assert e.value.exec_count == 3 and not (folder / "ran").exists()  # refused before any cell ran
    with pytest.raises(ValueError, match="unknown engine 'jupyter'; valid: papermill, exec"):
        runner.engines.run("jupyter", str(nb), folder, {})
