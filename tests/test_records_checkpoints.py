"""Run folders, atomic writes, safe checkpoints and the trained-model cache (both directions)."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mintkit.core.records import RESULT_COLUMNS, Run, atomic_write_bytes, read_results
from mintkit.models.checkpoints import (CheckpointError, ModelCache, cache_key, load_checkpoint, load_model,
                                        save_checkpoint)


def test_run_folder_describes_itself(tmp_path, digits_pool):
    from mintkit.core.splits import build_split
    run = Run(tmp_path / "r1", "mint", {"seed": 0, "lr": 1e-3}, seed=0)
    run.save_split(build_split(digits_pool, 500, 300, 100))
    run.add_metrics({"accuracy": 0.8, "auc": 0.9, "n_eval_members": 100},
                    {"audited_accuracy": 0.95, "audited_train_accuracy": 1.0}, table="Table 1", feature="x")
    run.time("mint", 1.5)
    run.save_scores(a_scores=np.r_[0.1, 0.9], a_labels=np.r_[0, 1])
    run.finish()
    names = {p.name for p in (tmp_path / "r1").iterdir()}
    assert {"params.json", "env.json", "split.json", "results.csv", "scores.npz", "status.json"} <= names
    env = json.loads((tmp_path / "r1" / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["end"] is not None and "git_commit" in env
    df = read_results([tmp_path / "r1"])
    assert tuple(df.columns) == RESULT_COLUMNS
    assert set(df.metric) == {"accuracy", "auc", "n_eval_members", "audited_accuracy",
                              "audited_train_accuracy", "time_mint"}
    assert (df.run_id == "r1").all()


def test_results_of_earlier_versions_are_read_under_the_current_metric_names(tmp_path):
    """Files written while every method's accuracy was keyed `mint_accuracy` (results.csv, the committed report
    tables) read as `accuracy`, its suffixed keys too; other keys are left alone."""
    from pathlib import Path
    from mintkit.batch.merge import read_table
    old = pd.DataFrame({c: "" for c in RESULT_COLUMNS}, index=range(4))
    old["metric"] = ["mint_accuracy", "mint_accuracy_calibrated", "mint_accuracy_ci_low", "audited_accuracy"]
    old["value"] = [0.6, 0.61, 0.55, 0.9]
    old.to_csv(tmp_path / "results.csv", index=False)
    assert list(read_results([tmp_path]).metric) == ["accuracy", "accuracy_calibrated", "accuracy_ci_low",
                                                     "audited_accuracy"]
    committed = Path(__file__).parents[1] / "figures" / "gmint" / "table1.csv"
    if committed.is_file():
        raw = pd.read_csv(committed, dtype=str, keep_default_na=False)
        table = read_table(committed)
        assert "mint_accuracy" not in set(table.metric)
        assert (table.metric == "accuracy").sum() == ((raw.metric.isin(["mint_accuracy", "accuracy"]))
                                                      & (pd.to_numeric(raw.n_seeds) > 0)).sum() > 0


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.json"
    atomic_write_bytes(p, b"old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"old" and [q.name for q in tmp_path.iterdir()] == ["f.json"]


class Tiny(nn.Module):
    def __init__(self, width: int = 3):
        super().__init__()
        self.fc = nn.Linear(2, width)
        self.config = {"width": width}

    def forward(self, x):
        return self.fc(x)


def test_checkpoint_roundtrip_with_config(tmp_path):
    m = Tiny()
    save_checkpoint(tmp_path / "m.pt", m, {"model": {"width": 3}}, extra={"step": torch.tensor(5)})
    ck = load_checkpoint(tmp_path / "m.pt")
    assert ck["config"] == {"model": {"width": 3}} and int(ck["extra"]["step"]) == 5
    m2 = load_model(tmp_path / "m.pt", build=Tiny)
    assert torch.equal(m2.fc.weight, m.fc.weight)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_without_running_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "PWNED").exists()


def test_corrupt_and_foreign_checkpoints(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="expected a mintkit checkpoint"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save(Tiny(width=4).state_dict(), tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "other.pt", build=Tiny, width=3)


def _cached(cache, parts, calls):
    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.fc.weight.add_(1.0)
        return {"epochs": 1}
    return cache.get_or_train(parts, lambda: Tiny(), train)


def test_cache_reused_on_rerun_and_invalidated_on_change(tmp_path):
    cache, calls = ModelCache(tmp_path), []
    m1, info1, hit1 = _cached(cache, {"lr": 1e-3, "seed": 0}, calls)
    m2, info2, hit2 = _cached(cache, {"lr": 1e-3, "seed": 0}, calls)
    assert (hit1, hit2, len(calls)) == (False, True, 1) and torch.equal(m1.fc.weight, m2.fc.weight)
    _, _, hit3 = _cached(cache, {"lr": 2e-3, "seed": 0}, calls)
    assert not hit3 and len(calls) == 2
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1}) != cache_key({"a": 1, "b": 3})


def test_interrupted_cache_write_leaves_no_trusted_entry(tmp_path, monkeypatch):
    import mintkit.models.checkpoints as ck
    cache, parts = ModelCache(tmp_path), {"seed": 1}

    def boom(*a, **k):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(ck, "save_checkpoint", boom)
    with pytest.raises(KeyboardInterrupt):
        _cached(cache, parts, [])
    assert not list(tmp_path.glob("*.json"))
    monkeypatch.undo()
    # killed between the checkpoint and its marker: the checkpoint alone is not trusted
    real_write = ck.atomic_write_bytes
    monkeypatch.setattr(ck, "atomic_write_bytes",
                        lambda p, b: boom() if str(p).endswith(".json") else real_write(p, b))
    with pytest.raises(KeyboardInterrupt):
        _cached(cache, parts, [])
    monkeypatch.undo()
    assert list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.json"))
    calls = []
    _, _, hit = _cached(cache, parts, calls)
    assert not hit and calls == [1]
    _, _, hit = _cached(cache, parts, calls)
    assert hit and calls == [1]


def test_results_schema_matches_published_tables():
    from mintkit.reference import published
    assert list(published("mint").columns) == list(RESULT_COLUMNS[:9])
    assert isinstance(published(), pd.DataFrame)
