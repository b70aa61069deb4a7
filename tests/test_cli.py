"""The command line a newcomer meets first: `mintkit --version`, a usage line naming every command, the audit demo
without a warning, and the Makefile's setup and gpu-check using the venv."""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mintkit import audit
from mintkit.batch import cli

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("run", "reproduce", "params", "report", "audit")


def test_version_comes_from_the_distribution(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"mintkit {importlib.metadata.version('mintkit')}"


def test_usage_names_mintkit_and_every_command():
    usage = cli.build_parser().format_usage()
    assert usage.startswith("usage: mintkit ") and "python -m" not in usage
    assert "{" + ",".join(COMMANDS) + "}" in usage
    helptext = cli.build_parser().format_help()
    assert all(f"    {c} " in helptext for c in COMMANDS)


def test_audit_demo_starts_without_a_runtime_warning():
    """runpy warns when `python -m mintkit.audit.demo` finds the module imported by its package's __init__."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="default")
    got = subprocess.run([sys.executable, "-m", "mintkit.audit.demo", "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert got.returncode == 0 and got.stdout.startswith("usage: python -m mintkit.audit.demo")
    assert "RuntimeWarning" not in got.stderr, got.stderr
    # the package still offers the demo's functions, imported on first use
    assert callable(audit.demo_params) and callable(audit.make_demo)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_gpu_check_uses_the_venv_and_setup_takes_a_torch_index(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".installed").touch()  # newer than pyproject.toml: setup counts as done
    got = subprocess.run(["make", "-n", "gpu-check", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True)
    assert f"PYTHON={venv}/bin/python bash scripts/gpu_check.sh" in got.stdout, got.stdout + got.stderr
    cpu = "https://download.pytorch.org/whl/cpu"
    got = subprocess.run(["make", "-n", "setup", f"VENV={tmp_path / 'fresh'}", f"TORCH_INDEX={cpu}"], cwd=ROOT,
                         capture_output=True, text=True)
    assert f"pip install --index-url {cpu} \"torch>=2.2\"" in got.stdout, got.stdout + got.stderr
    got = subprocess.run(["make", "-n", "setup", f"VENV={tmp_path / 'fresh'}"], cwd=ROOT, capture_output=True,
                         text=True)
    assert "--index-url" not in got.stdout  # PyPI by default


def test_readme_top_block_sets_up_activates_then_opens_jupyter():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert lines[:3] == ["make setup", ". .venv/bin/activate", "jupyter lab notebooks/"]
    assert "https://download.pytorch.org/whl/cpu" in readme  # the CPU wheels are offered before a 6 GB CUDA venv
