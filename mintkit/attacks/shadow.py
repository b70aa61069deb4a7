"""Attacks on the audited model's outputs alone, with thresholds or a classifier fitted elsewhere.

Larger score = "member" (see docs/attacks.md). N samples, K classes.

==================  ==================================================  ==========================================
attack              score s(x, y)                                       fitted on (never evaluation data)
==================  ==================================================  ==========================================
Yeom et al.         −ℓ(θ; x, y) (mintkit.methods.loss.loss_scores)      nothing (threshold: calibration data)
Song & Mittal       τ_y − Mentr(θ; x, y)                                τ_c per class: shadow IN vs OUT samples
Salem et al.        logit of an MLP on the top-k sorted posteriors      the MLP: shadow IN vs OUT samples
==================  ==================================================  ==========================================

Song & Mittal decide "member" when Mentr ≤ τ_y; the score τ_y − Mentr keeps that rule at threshold 0 and
ranks samples by their margin to their class's threshold (our choice: the paper gives decisions, not a
score). τ_c maximises balanced accuracy on the shadow model's class-c samples (IN = its training samples,
OUT = the others); a class with too few shadow samples of either kind takes the all-class threshold.

Salem et al. (ML-Leaks, adversary 1): one shadow model trained on half of a shadow set; an MLP with one
hidden layer of ``hidden`` ReLU units (Adam, scikit-learn) learns IN vs OUT from the shadow model's
sorted top-3 posteriors on balanced IN/OUT samples. The score is the MLP's output logit (monotone in its
probability; threshold 0 = probability 0.5), which does not saturate at 1 the way the probability does.
"""
from __future__ import annotations

import numpy as np
from sklearn.neural_network import MLPClassifier

from mintkit.core.thresholds import calibrate_threshold


def fit_class_thresholds(mentr: np.ndarray, labels: np.ndarray, is_in: np.ndarray, num_classes: int,
                         min_per_side: int = 5) -> np.ndarray:
    """τ [num_classes]: per class, the Mentr threshold maximising balanced accuracy of "IN when Mentr ≤ τ".

    mentr, labels, is_in: [M] shadow-model modified entropies, class labels and IN flags (bool).
    Classes with fewer than ``min_per_side`` IN or OUT samples take the threshold fitted on all classes.
    """
    mentr = np.asarray(mentr, dtype=np.float64)
    labels = np.asarray(labels)
    is_in = np.asarray(is_in, dtype=bool)
    # calibrate_threshold works on "member when score >= t"; with score = −Mentr, τ = −t
    overall = -calibrate_threshold(-mentr, is_in)
    tau = np.full(num_classes, overall)
    for c in range(num_classes):
        m = labels == c
        if min(int(is_in[m].sum()), int((~is_in[m]).sum())) >= min_per_side:
            tau[c] = -calibrate_threshold(-mentr[m], is_in[m])
    return tau


def song_scores(mentr: np.ndarray, labels: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """τ_y − Mentr [N] from Mentr [N], labels [N] and per-class thresholds τ [K]."""
    return np.asarray(tau, dtype=np.float64)[np.asarray(labels)] - np.asarray(mentr, dtype=np.float64)


def balanced_subsample(is_in: np.ndarray, seed: int) -> np.ndarray:
    """Positions [2m] of m IN and m OUT entries of is_in [M] (m = the smaller count), at random."""
    rng = np.random.default_rng(seed)
    pos_in, pos_out = np.flatnonzero(is_in), np.flatnonzero(~np.asarray(is_in, dtype=bool))
    m = min(len(pos_in), len(pos_out))
    if m == 0:
        raise ValueError(f"the shadow data hold {len(pos_in)} IN and {len(pos_out)} OUT samples; need both")
    return np.sort(np.concatenate([rng.choice(pos_in, m, replace=False), rng.choice(pos_out, m, replace=False)]))


def fit_salem(top: np.ndarray, is_in: np.ndarray, hidden: int = 64, max_iter: int = 500,
              seed: int = 0) -> MLPClassifier:
    """The attack MLP on shadow top-k posteriors [M, k] with IN flags [M], on a balanced subsample."""
    keep = balanced_subsample(is_in, seed)
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", max_iter=max_iter, random_state=seed)
    return clf.fit(np.asarray(top, dtype=np.float64)[keep], np.asarray(is_in, dtype=int)[keep])


def salem_scores(clf: MLPClassifier, top: np.ndarray) -> np.ndarray:
    """The MLP's output logit [N] on top-k posteriors [N, k] (forward pass from its public weights)."""
    if clf.activation != "relu" or clf.out_activation_ != "logistic":
        raise ValueError(f"salem_scores expects a binary relu MLP (fit_salem); got activation {clf.activation!r}")
    h = np.asarray(top, dtype=np.float64)
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        h = h @ w + b
        if i < len(clf.coefs_) - 1:
            h = np.maximum(h, 0.0)  # MLPClassifier's default activation 'relu'
    return h[:, 0]
