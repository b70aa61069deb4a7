"""The one registry of membership methods (mintkit/methods/registry.py): its names are the audit's, its table is
docs/audit.md's, and an unknown name is an error listing the valid ones before any work starts."""
from __future__ import annotations

from pathlib import Path

import pytest

from mintkit.audit import pipeline
from mintkit.audit.params import METHODS, AuditParams
from mintkit.batch.cli import main as mintkit_main
from mintkit.core.params import ParameterError
from mintkit.methods import registry

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_audit_names_exactly_the_registry_and_runs_every_method():
    assert METHODS == registry.names()
    for m in registry.METHODS.values():  # a MINT method, or a score method the audit knows how to run
        assert m.features is not None or m.name in pipeline.SCORE_METHODS, m.name
    assert set(pipeline.SCORE_METHODS) <= set(registry.names())
    assert registry.defaults(differentiable=False) == [m for m in registry.defaults() if not registry.get(m).gradients]


def test_docs_method_table_is_the_registry():
    page = (DOCS / "audit.md").read_text()
    assert registry.markdown_table() in page
    listed = {line.split("`")[1] for line in page.splitlines() if line.startswith("| `")
              and line.count("|") == 7}
    assert listed == set(registry.names())


def test_an_unknown_method_is_an_error_listing_the_valid_ones_before_any_work(tmp_path, capsys):
    with pytest.raises(ValueError, match=f"unknown method 'mintt'; valid: {', '.join(registry.names())}"):
        registry.get("mintt")
    with pytest.raises(ParameterError, match=f"valid: {', '.join(registry.names())}"):
        AuditParams.from_values({"methods": "mint,mintt"})
    # the CLI refuses it with status 2 before reading a folder (none of these exist)
    code = mintkit_main(["audit", "--model", str(tmp_path / "m.pt"), "--arch", "resnet18", "--members", str(tmp_path / "a"),
                       "--nonmembers", str(tmp_path / "b"), "--method", "mintt", "--out", str(tmp_path / "run")])
    assert code == 2 and "mintt" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_the_dispatch_never_runs_another_method_for_an_unknown_name():
    with pytest.raises(ValueError, match="unknown method 'gmintt'"):
        pipeline._method(None, None, "gmintt", {}, None, None, False)
