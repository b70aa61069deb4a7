"""Accuracy of face-recognition models from their embeddings: 1-NN identification and LFW-style verification.

An audited face model has no closed-set classifier to score (its margin head covers training identities only), so
its quality is measured on embeddings (docs/protocol.md §Metrics reported with every membership number).
"""
from __future__ import annotations

import numpy as np


def _unit_rows(emb) -> np.ndarray:
    e = np.asarray(emb, dtype=np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def identification_accuracy(emb, ident, chunk: int = 1024) -> float:
    """Leave-one-out 1-nearest-neighbour identification accuracy (cosine similarity).

    emb: [N, D] embeddings; ident: [N] identity of each. Each sample's nearest other sample must share its
    identity; only samples whose identity has a second sample count. NaN when no identity has two samples.
    """
    ident = np.asarray(ident)
    ids, counts = np.unique(ident, return_counts=True)
    keep = np.isin(ident, ids[counts > 1])
    if not keep.any():
        return float("nan")
    e = _unit_rows(emb)
    hits = []
    for s in range(0, len(e), chunk):
        sim = e[s:s + chunk] @ e.T
        sim[np.arange(len(sim)), np.arange(s, s + len(sim))] = -2.0  # a sample is not its own neighbour
        hits.append(ident[sim.argmax(1)] == ident[s:s + len(sim)])
    return float(np.concatenate(hits)[keep].mean())


def verification_accuracy(emb, ident, n_pairs: int = 3000, folds: int = 10, seed: int = 0) -> float:
    """Face verification accuracy as on LFW: `n_pairs` genuine and up to `n_pairs` impostor pairs drawn from
    emb [N, D] by identity ident [N], cosine similarity, in each of `folds` folds the threshold that is best on
    the other folds (400 quantiles of their similarities), accuracy averaged over folds. NaN when no identity
    has two samples.
    """
    rng = np.random.default_rng(seed)
    ident = np.asarray(ident)
    by_id = [ix for ix in (np.flatnonzero(ident == g) for g in np.unique(ident)) if len(ix) > 1]
    if not by_id:
        return float("nan")
    e = _unit_rows(emb)
    gen = np.array([rng.choice(by_id[k], 2, replace=False) for k in rng.integers(len(by_id), size=n_pairs)])
    imp = rng.integers(len(ident), size=(4 * n_pairs, 2))
    imp = imp[ident[imp[:, 0]] != ident[imp[:, 1]]][:n_pairs]
    pairs, same = np.r_[gen, imp], np.r_[np.ones(len(gen)), np.zeros(len(imp))].astype(bool)
    sim = (e[pairs[:, 0]] * e[pairs[:, 1]]).sum(1)
    fold = rng.permutation(len(sim)) % folds
    accs = []
    for f in range(folds):
        tr, te = fold != f, fold == f
        cand = np.quantile(sim[tr], np.linspace(0, 1, 401))
        best = cand[np.argmax([((sim[tr] >= t) == same[tr]).mean() for t in cand])]
        accs.append(((sim[te] >= best) == same[te]).mean())
    return float(np.mean(accs))
