"""The audit's words: the power behind "No evidence" (the smallest AUC detectable at this n, the n the observed AUC
needs) and --out relative to the shell."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from scipy.stats import norm

from mintkit.audit import cli as audit_cli
from mintkit.audit.stats import TestResult as RankResult
from mintkit.audit.stats import auc_se, detectable_auc, samples_needed, verdict
from mintkit.batch.cli import build_parser


def test_no_evidence_states_the_smallest_detectable_auc_and_the_n_the_observed_auc_needs():
    """150 + 150 held-out samples, 3 methods: an AUC of 0.56 reads "No evidence", and the sentence says the test could
    only detect about 0.60 and that 0.56 would need about 400 + 400 (Hanley-McNeil, one-sided alpha / 3, power 0.8),
    so "too few samples" reads differently from "not trained on"."""
    def r(auc: float, p: float) -> dict:
        return {"test": RankResult(0, p, auc, 150, 150), "p_holm": p, "what": "m", "p_vs_blind": 1.0}
    v = verdict({"mint": r(0.56, 0.2), "gmint": r(0.52, 0.6), "loss": r(0.51, 0.7)}, 0.05)
    assert v.kind == "no evidence"
    assert "detects, with power 0.8, an AUC of 0.60 or more" in v.sentence
    assert "the observed AUC 0.56 would need about 407 + 407" in v.sentence
    assert "not evidence of non-use" in v.sentence and v.sentence.endswith("design: undeclared (no --owner-split).")
    # the formula: at the detectable AUC the one-sided z-test's power is 0.8 (SE at 0.5 under H0, at A under H1)
    a = detectable_auc(150, 150, 0.05 / 3)
    power = norm.sf((norm.ppf(1 - 0.05 / 3) * auc_se(0.5, 150, 150) - (a - 0.5)) / auc_se(a, 150, 150))
    assert power == pytest.approx(0.8, abs=1e-6)
    assert detectable_auc(1500, 1500, 0.05) < detectable_auc(150, 150, 0.05) < detectable_auc(15, 15, 0.05) < 1
    n = samples_needed(0.56, 0.05 / 3)
    assert detectable_auc(n, n, 0.05 / 3) <= 0.56 < detectable_auc(n - 1, n - 1, 0.05 / 3)
    assert samples_needed(0.5, 0.05) is None and samples_needed(0.45, 0.05) is None


def test_audit_out_is_relative_to_the_shell_folder(tmp_path, monkeypatch):
    """--out, like --model and --members, is a shell argument: relative to the working folder, not the repository."""
    monkeypatch.chdir(tmp_path)
    for out, want in (("audit1", tmp_path / "audit1"), ("", tmp_path / "runs" / "audit" / "m")):
        argv = ["audit", "--model", "m.pt", "--arch", "resnet18", "--members", "a", "--nonmembers", "b"]
        args = build_parser().parse_args(argv + (["--out", out] if out else []))
        assert audit_cli.params_from(args).out_dir == str(want)


OPTIONS = ("channels", "image_size", "n_eval", "normalize", "arch", "build", "members", "nonmembers", "external",
           "control", "n_reference", "owner_split", "methods", "attacks", "reference", "model", "taps")


def _raised_texts(path) -> list[str]:
    """The literal text of every `raise ...Error(...)` message in a module (f-string parts joined)."""
    texts = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            parts = [n.value for n in ast.walk(node.exc) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            texts.append("".join(parts))
    return texts


def test_every_audit_error_names_options_as_the_command_line_spells_them():
    """'set --channels 3', not 'set channels to 3'; '--n-reference 3:', not 'n_reference=3:'."""
    bare = re.compile(rf"(?<![-\w])(?:set|lower|drop|pass|with|give) ({'|'.join(OPTIONS)})\b|"
                      rf"(?<![-\w])({'|'.join(OPTIONS)})=")
    bad = [(p.name, t) for p in sorted(Path(audit_cli.__file__).parent.glob("*.py")) for t in _raised_texts(p)
           if bare.search(t)]
    assert not bad, bad
