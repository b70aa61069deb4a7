"""The one result type of every membership method: MINT, the loss attack, aMINT's M+, gMINT, every attack of
`mintkit.attacks`, the audit's methods and its blind baseline.

A method scores the evaluated samples (members and non-members it never trained on) and is measured by
`mintkit.core.metrics.membership_metrics`; its calibrated threshold comes from *calibration* scores, never from
the evaluated ones (docs/protocol.md). Methods with more to say subclass it (the MINT head's training history,
an attack's reference mode, the audit's rank test) and keep these fields, so a table, a ROC figure or a
results row reads any of them the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MembershipResult:
    """One membership method on one split.

    name: the method's key (``"mint"``, ``"loss"``, ``"lira-online"``, ...); label: how tables and rows name it.
    scores [n_eval] (higher = member) and labels [n_eval] (1 = member) of the evaluated samples;
    calib_scores [n_calib] / calib_labels [n_calib]: the samples its calibrated threshold was chosen on (empty
    when it has none); metrics: `membership_metrics`' keys; seconds: its own fit + score time.
    """

    name: str
    label: str
    scores: np.ndarray
    labels: np.ndarray
    calib_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    calib_labels: np.ndarray = field(default_factory=lambda: np.empty(0, int))
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores).reshape(-1)  # dtype kept: float32 MINT scores stay float32 in scores.npz
        self.labels = np.asarray(self.labels).astype(int).reshape(-1)
        self.calib_scores = np.asarray(self.calib_scores).reshape(-1)
        self.calib_labels = np.asarray(self.calib_labels).astype(int).reshape(-1)
        if len(self.scores) != len(self.labels) or len(self.calib_scores) != len(self.calib_labels):
            raise ValueError(f"{self.name}: {len(self.scores)} scores for {len(self.labels)} labels, "
                             f"{len(self.calib_scores)} calibration scores for {len(self.calib_labels)} labels")

    @property
    def members(self) -> np.ndarray:
        """Scores [n_members] of the evaluated members."""
        return self.scores[self.labels == 1]

    @property
    def nonmembers(self) -> np.ndarray:
        """Scores [n_nonmembers] of the evaluated non-members."""
        return self.scores[self.labels == 0]
