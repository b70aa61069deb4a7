"""The dry run before a batch: the device each run will use, a refusal of --profile paper without CUDA, a missing
data_root said once, the set sizes each run will use, and an estimate from a stated rate."""
from __future__ import annotations

import pytest
import torch

from mintkit.batch import cli, estimate, runner
from mintkit.core.params import fields_of
from mintkit.papers.amint import Params as AmintParams
from mintkit.papers.gmint import Params as GmintParams


def _plan(profile, papers, tmp_path, **overrides):
    runs, _ = runner.plan_batch(profile, papers, tmp_path / "runs", {k: str(v) for k, v in overrides.items()})
    return runs


def _fields(spec, cls) -> dict:
    return {k: v for k, v in spec.params.items() if k in fields_of(cls)}


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_sizes_are_what_the_notebook_computes_never_paper(tmp_path):
    """gMINT Table 1 on MNIST leaves D, E and eval at 0: the dry run resolves them with gMINT's own split_sizes over
    the 70,000 MNIST images, aMINT's with sized_for; a preset with sizes shows them."""
    g = next(s for s in _plan("paper", ["gmint"], tmp_path) if s.preset == "table1")
    assert (g.params["n_members"], g.params["n_external"], g.params["n_eval"]) == (0, 0, 0)
    want = GmintParams.from_values(_fields(g, GmintParams)).split_sizes(70000)
    assert estimate.run_sizes(g) == want
    assert estimate.sizes_text(g) == f"D {want[0]:,} / E {want[1]:,} / eval {want[2]:,}"
    a = next(s for s in _plan("paper", ["amint"], tmp_path) if s.params["dataset"] == "cifar10")
    S = AmintParams.from_values(_fields(a, AmintParams)).sized_for(estimate._Pool(50000, 10000))
    assert estimate.run_sizes(a) == (S.n_members, S.n_external, S.n_eval) and S.n_members == 25000
    q = _plan("quick", ["gmint"], tmp_path)[0]  # the quick default: D given, E and eval at 0 (E = D, eval a share)
    d, e, n = GmintParams.from_values(_fields(q, GmintParams)).split_sizes(1797)
    assert q.params["n_external"] == 0 and estimate.sizes_text(q) == f"D {d:,} / E {e:,} / eval {n:,}"
    assert e == d > 0 and n > 0


def test_dry_run_names_the_device_refuses_paper_without_cuda_and_says_a_missing_data_root_once(
        tmp_path, no_cuda, capsys):
    root = tmp_path / "nowhere"
    argv = ["reproduce", "--profile", "paper", "--paper", "gmint", "--out", str(tmp_path / "b"),
            "-p", "data_root", str(root)]
    assert cli.main(argv + ["--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "device on this machine: cpu for 54 run(s) (54 with device auto; torch" in text
    assert "WARNING: reproduce would refuse to start: --profile paper" in text and "-p device cpu" in text
    assert sum(f"{root} does not exist" in line for line in text.splitlines()) == 1
    assert text.index(f"data_root {root} does not exist") < text.index("paper/preset")
    assert "[D paper" not in text and "E paper" not in text
    # the batch itself refuses before anything is written, naming the way out
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--profile paper" in err and "-p device cpu" in err and not (tmp_path / "b").exists()
    assert cli.main(argv + ["-p", "device", "cpu", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "WARNING" not in text and "device on this machine: cpu for 54 run(s)" in text


def test_device_line_resolves_auto_with_cuda(tmp_path, monkeypatch):
    runs = _plan("quick", ["gmint", "amint"], tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "NVIDIA H100")
    assert estimate.device_line(runs).startswith("device on this machine: cuda for 2 run(s)")
    assert "NVIDIA H100" in estimate.device_line(runs) and estimate.cuda_refusal(runs, "paper") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    asks = _plan("quick", ["gmint"], tmp_path, device="cuda")
    assert "ask for device cuda" in estimate.cuda_refusal(asks, "quick")
    assert estimate.cuda_refusal(runs, "quick") is None  # quick is sized for a CPU


def test_estimate_from_a_stated_rate_names_its_source(tmp_path, no_cuda, capsys):
    argv = ["reproduce", "--profile", "quick", "--paper", "gmint", "--out", str(tmp_path / "b"), "--dry-run",
            "-p", "arch", "mobilenet", "-p", "n_members", "1000", "-p", "n_external", "1000", "-p", "audited_epochs",
            "30"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "[D 1,000 / E 1,000 / eval" in text
    assert "~12 min for 1 run(s) at a stated rate (gMINT MobileNet" in text and "721 s wall" in text
    assert "estimate: ~12 min" in text
