"""The fit guard: no membership number from a model that did not learn its own task.

A failed fit reads like a finding: an audited model that diverged scores every sample alike and every method
"reads chance"; a MINT head stuck at one constant score reads 0.50 and looks like "no membership signal". So
every trainer checks what its task makes trivial, on its own training data (docs/protocol.md, "Fit guard"):

=======================  ====================================================================================
who                      fitted when
=======================  ====================================================================================
audited model (and any   training accuracy ≥ chance + ``AUDITED_MIN_GAIN`` × (1 − chance), chance = 1/K, on its
classifier trained by    own training samples in eval mode; and, over ≥ 2 epochs, its last epoch's mean loss
``core.train``)          below its first's (a run that diverged late ends above where it started)
MINT head (every MINT    its scores are not constant (sd > ``CONSTANT_SD``) and its accuracy at 0.5 on its own
model, aMINT's M+ head)  MINT-training samples is beyond 0.5 at a one-sided binomial p < ``HEAD_ALPHA``
=======================  ====================================================================================

The audited model's check raises `DidNotFit` (nothing is cached, no row is written: a later run retrains);
a MINT head's check returns a `FitCheck` whose ``fitted`` joins the results rows as the metric
``head_fitted`` (1/0) beside ``head_train_accuracy``, and the report and the claims ledger mark its cells
"did not train" instead of reading them as a finding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

AUDITED_MIN_GAIN = 0.5  # halfway from chance to perfect on the training set: any real fit of these tasks passes
CONSTANT_SD = 1e-6
HEAD_ALPHA = 1e-3
DID_NOT_TRAIN = "did not train"
FIT_METRICS = ("head_train_accuracy", "head_fitted")  # results-row keys of a head's fit


class DidNotFit(RuntimeError):
    """A model did not learn its own training task; the message says what was measured and what to change."""


@dataclass(frozen=True)
class FitCheck:
    fitted: bool
    reason: str  # empty when fitted
    train_accuracy: float

    def metrics(self) -> dict[str, float]:
        """The results-row keys of a head's fit: head_train_accuracy, head_fitted (1.0 / 0.0)."""
        return {"head_train_accuracy": self.train_accuracy, "head_fitted": float(self.fitted)}


def audited_threshold(num_classes: int, min_gain: float = AUDITED_MIN_GAIN) -> float:
    chance = 1.0 / max(num_classes, 1)
    return chance + min_gain * (1.0 - chance)


def check_classifier(train_accuracy: float, num_classes: int, losses: list[float], what: str,
                     min_gain: float = AUDITED_MIN_GAIN) -> FitCheck:
    """A classifier's fit from its training accuracy (eval mode, own training samples) and per-epoch mean
    losses [epochs]; `what` names the model in the reason."""
    need = audited_threshold(num_classes, min_gain)
    if not math.isfinite(train_accuracy) or train_accuracy < need:
        return FitCheck(False, f"{what}: training accuracy {train_accuracy:.3f} on its own training samples, below "
                               f"{need:.3f} (chance {1 / max(num_classes, 1):.3f} + {min_gain:g} of the way to 1)",
                        train_accuracy)
    if len(losses) >= 2 and not losses[-1] < losses[0]:
        return FitCheck(False, f"{what}: last epoch's mean loss {losses[-1]:.4g} is not below the first's "
                               f"{losses[0]:.4g} (training diverged)", train_accuracy)
    return FitCheck(True, "", train_accuracy)


def require_fit(check: FitCheck, hint: str) -> None:
    """Raise DidNotFit with `check`'s reason and `hint` (what to change) unless it fitted."""
    if not check.fitted:
        raise DidNotFit(f"{check.reason}; no membership number is computed from it. {hint}")


def check_head(train_scores: np.ndarray, train_labels: np.ndarray, threshold: float = 0.5,
               alpha: float = HEAD_ALPHA) -> FitCheck:
    """A MINT head's fit from its scores [n] on its own training samples (labels [n], 1 = member)."""
    s = np.asarray(train_scores, dtype=np.float64).reshape(-1)
    y = np.asarray(train_labels).astype(int).reshape(-1)
    if not len(s):
        return FitCheck(False, "no training scores", float("nan"))
    pred = s >= threshold
    bal = 0.5 * (pred[y == 1].mean() + (~pred[y == 0]).mean()) if (y == 1).any() and (y == 0).any() \
        else float((pred == y.astype(bool)).mean())
    if float(s.std()) <= CONSTANT_SD:
        return FitCheck(False, f"constant scores ({s.mean():.4g}) on its own training samples", float(bal))
    correct = int(round(bal * len(s)))
    p = binomtest(correct, len(s), 0.5, alternative="greater").pvalue
    if p >= alpha:
        return FitCheck(False, f"balanced accuracy {bal:.3f} on its own {len(s)} training samples is not beyond "
                               f"0.5 (one-sided binomial p {p:.2g} ≥ {alpha:g})", float(bal))
    return FitCheck(True, "", float(bal))
