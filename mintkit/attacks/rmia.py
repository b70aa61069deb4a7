"""RMIA (Zarifzadeh et al., ICML 2024): the likelihood ratio of x compared with population samples z.

p(x) = p_θ(y|x) of the audited model, p_j(x) of reference model j, ``inside`` [k, N] as in LiRA.
Larger score = "member".

=================  ==========================================================================================
quantity           definition
=================  ==========================================================================================
Pr(x) online       mean_j p_j(x) over all k models (x IN for half of them)
Pr(x) offline      ½((1 + a)·mean_{j OUT} p_j(x) + (1 − a)): the OUT average, corrected by ``a`` for the
                   IN models one does not have (a = 1: the OUT average itself)
LR(x)              p(x) / Pr(x)
score(x)           share of the population samples z with LR(x) / LR(z) ≥ γ, i.e. LR(z) ≤ LR(x)/γ
queries            computed per query (the sample and its augmentations) and averaged over queries
=================  ==========================================================================================

The z are known non-members of the audited model that are not evaluated (``population_sample`` of the
reference plan); their Pr(z) follows the same rule as Pr(x) (online: the mean over all models, whether z
trained some of them or none). For a fixed set of z the score is a non-decreasing function of LR(x): the z
and γ set the scale (and the decision threshold), LR(x) alone the ranking. Defaults γ = 1 and a = 0.3 are our choice
(the paper treats both as hyper-parameters and tunes a with a reference model standing in for the target).
"""
from __future__ import annotations

import numpy as np

from mintkit.attacks.lira import reference_shapes


def marginal(p_ref: np.ndarray, inside: np.ndarray, online: bool, a: float = 0.3) -> np.ndarray:
    """Pr(x) [N, A] from reference probabilities [k, N, A] (see the module table)."""
    _, r, inside = reference_shapes(np.zeros(np.shape(p_ref)[1:]), p_ref, inside)
    if online:
        return r.mean(0)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"RMIA offline a must be in [0, 1], got {a}")
    out = ~inside[:, :, None]
    n_out = out.sum(0)
    if (n_out == 0).any():
        raise ValueError(f"offline RMIA needs OUT models for every sample; {int((n_out[:, 0] == 0).sum())} have none")
    pr_out = np.where(out, r, 0.0).sum(0) / n_out
    return 0.5 * ((1.0 + a) * pr_out + (1.0 - a))


def rmia_scores(p_x: np.ndarray, p_ref_x: np.ndarray, inside_x: np.ndarray, p_z: np.ndarray, p_ref_z: np.ndarray,
                inside_z: np.ndarray, online: bool, gamma: float = 1.0, a: float = 0.3) -> np.ndarray:
    """RMIA scores [N] of samples x against population samples z.

    p_x [N(, A)], p_ref_x [k, N(, A)], inside_x [k, N]; the same for z with M samples.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    px, rx, ix = reference_shapes(p_x, p_ref_x, inside_x)
    if online and (ix.all(0) | (~ix).all(0)).any():
        raise ValueError("online RMIA needs IN and OUT models for every scored sample (use the online reference mode)")
    pz, rz, iz = reference_shapes(p_z, p_ref_z, inside_z)
    if not len(pz):
        raise ValueError("RMIA needs population samples z (the reference plan's population_sample is empty)")
    if px.shape[1] != pz.shape[1]:
        raise ValueError(f"x has {px.shape[1]} queries, z has {pz.shape[1]}")
    lr_x = px / marginal(rx, ix, online, a)
    lr_z = pz / marginal(rz, iz, online, a)
    scores = np.empty_like(lr_x)
    for q in range(lr_x.shape[1]):
        z_sorted = np.sort(lr_z[:, q])
        scores[:, q] = np.searchsorted(z_sorted, lr_x[:, q] / gamma, side="right") / len(z_sorted)
    return scores.mean(1)
