"""Paths and state of a run folder: files readable by the group, an earlier run never silently replaced, and
git_dirty blind to the metadata JupyterLab writes into a notebook."""
from __future__ import annotations

import json
import os
import stat
import subprocess

import numpy as np
import pytest

from mintkit.core.data import _cached
from mintkit.core.records import Run, atomic_write_bytes, git_info, keep_earlier_run


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_result_files_get_the_mode_of_an_ordinary_file(tmp_path, umask_022):
    """tempfile makes 0600 files: results must be readable by a group sharing the filesystem, as figures are."""
    run = Run(tmp_path / "r", "mint", {"seed": 0})
    run.add_metrics({"accuracy": 0.6}, {}, table="Table 1")
    run.save_scores(a_scores=np.r_[0.1, 0.9], a_labels=np.r_[0, 1])
    run.finish()
    for name in ("params.json", "env.json", "results.csv", "scores.npz", "status.json"):
        assert _mode(tmp_path / "r" / name) == 0o644, name
    atomic_write_bytes(tmp_path / "x.bin", b"x")
    assert _mode(tmp_path / "x.bin") == 0o644
    _cached(tmp_path / "cache" / "pool.pt", lambda: {"x": np.zeros(2)})
    assert _mode(tmp_path / "cache" / "pool.pt") == 0o644
    os.umask(0o077)  # a user who wants private files gets them
    atomic_write_bytes(tmp_path / "y.bin", b"y")
    assert _mode(tmp_path / "y.bin") == 0o600


def test_a_second_run_into_the_same_folder_keeps_the_first(tmp_path, capsys):
    """A notebook run twice with its default out_dir (runs/scratch): the first run's files move beside it, with one
    line; a subfolder (an input built there, e.g. the audit demo's trees) stays for the new run."""
    folder = tmp_path / "runs" / "scratch"
    first = Run(folder, "mint", {"seed": 0})
    first.add_metrics({"accuracy": 0.6}, {}, table="Table 1")
    first.finish()
    (folder / "demo").mkdir()
    (folder / "demo" / "model.pt").write_bytes(b"weights")
    second = Run(folder, "mint", {"seed": 1})
    kept = [p for p in folder.parent.iterdir() if p.name.startswith("scratch-")]
    assert len(kept) == 1 and f"kept as {kept[0]}" in capsys.readouterr().out
    assert json.loads((kept[0] / "params.json").read_text()) == {"seed": 0}
    assert (kept[0] / "status.json").exists() and (kept[0] / "results.csv").exists()
    assert json.loads((folder / "params.json").read_text()) == {"seed": 1} and second.dir == folder
    assert not (folder / "results.csv").exists() and (folder / "demo" / "model.pt").read_bytes() == b"weights"
    # a third run within the same second gets its own name
    second.finish()
    Run(folder, "mint", {"seed": 2})
    assert len([p for p in folder.parent.iterdir() if p.name.startswith("scratch-")]) == 2


def test_a_folder_the_batch_runner_prepared_is_not_moved(tmp_path):
    """The runner writes status 'running' and params.json before the kernel starts; the notebook's Run is its own."""
    folder = tmp_path / "batch" / "mint" / "run-1"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"status": "running"}))
    (folder / "params.json").write_text("{}")
    assert keep_earlier_run(folder) is None
    Run(folder, "mint", {"seed": 0})
    assert [p.name for p in folder.parent.iterdir()] == ["run-1"]
    assert keep_earlier_run(tmp_path / "fresh") is None  # nothing there: nothing to keep


def _git(repo, *args) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_git_dirty_ignores_what_jupyterlab_writes_into_a_notebook(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    nb = {"cells": [{"cell_type": "code", "source": ["x = 1\n", "print(x)"], "metadata": {"tags": ["parameters"]},
                     "outputs": [], "execution_count": None}],
          "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    path = repo / "a.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    (repo / "code.py").write_text("y = 2\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "init")
    assert git_info(repo)["git_dirty"] is False
    # JupyterLab: another kernelspec, language_info, an execution count, outputs, a cell id, cell metadata
    lab = json.loads(json.dumps(nb))
    lab["metadata"] = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)"},
                       "language_info": {"name": "python", "version": "3.12.3"}}
    lab["cells"][0] |= {"id": "abc", "execution_count": 3, "outputs": [{"output_type": "stream", "text": "1"}]}
    lab["cells"][0]["metadata"] |= {"scrolled": True}
    lab["cells"][0]["source"] = "x = 1\nprint(x)"  # one string instead of lines: the same code
    path.write_text(json.dumps(lab, indent=2))
    info = git_info(repo)
    assert info["git_dirty"] is False and len(info["git_commit"]) == 40
    _git(repo, "add", "a.ipynb")  # staged as well: still the commit's code
    assert git_info(repo)["git_dirty"] is False
    lab["cells"][0]["source"] = "x = 2\nprint(x)"  # the code changed
    path.write_text(json.dumps(lab))
    assert git_info(repo)["git_dirty"] is True
    lab["cells"][0]["source"] = "x = 1\nprint(x)"
    lab["cells"][0]["metadata"]["tags"] = []  # papermill would no longer find the parameters cell
    path.write_text(json.dumps(lab))
    assert git_info(repo)["git_dirty"] is True
    path.write_text(json.dumps(nb, indent=1))
    (repo / "code.py").write_text("y = 3\n")  # any other tracked file
    assert git_info(repo)["git_dirty"] is True
