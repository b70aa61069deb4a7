"""LiRA (Carlini et al., S&P 2022): a per-sample Gaussian likelihood ratio on the logit-scaled confidence.

φ = log(p_y / (1 − p_y)) of the audited model [N, A] (A queries: the sample and its augmentations);
φ_j of reference model j [k, N, A]; ``inside`` [k, N] marks the models that trained on the sample.
Per sample and query, μ is the centre of φ_j over the IN or the OUT models and σ their standard deviation
(ddof = 1). Larger score = "member".

Centre (``center``): the *mean* by default, where Carlini et al.'s reference code takes the *median* of the
IN and OUT statistics; ``center="median"`` follows the reference. The default stays the mean so that the
numbers of earlier runs do not move (docs/attacks.md, "LiRA's centre"); σ is the same either way.

=========  ========================================================================  ======================
mode       score s(x, y)                                                             models per sample
=========  ========================================================================  ======================
online     mean_a [ log N(φ_a; μ_in,a, σ_in,a) − log N(φ_a; μ_out,a, σ_out,a) ]       IN and OUT
offline    mean_a log Φ((φ_a − μ_out,a) / σ_out,a)                                    OUT only
=========  ========================================================================  ======================

Offline is the one-sided test "φ is larger than the OUT models predict"; log Φ (``scipy.special.log_ndtr``)
keeps the ranking of the most confident samples that Φ itself would round to 1.

Variance: per-sample σ needs many models; ``global_sd`` = (σ_in, σ_out) replaces them by one value for
all samples (Carlini et al. do so with few models). :func:`pooled_sd` estimates it from samples that are
not evaluated: the pooled within-sample variance Σ(n_i − 1)s_i² / Σ(n_i − 1) over those samples. By
default the global value is used when a side has fewer than ``MIN_PER_SAMPLE`` models (our choice).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.special import log_ndtr

MIN_PER_SAMPLE = 32
CENTERS = ("mean", "median")  # μ of the IN / OUT statistics: ours (default) / Carlini et al.'s reference code
_TINY = 1e-12  # floor of σ: a constant reference φ (e.g. identical models) must not divide by zero


def _masked_stats(ref_phi: np.ndarray, mask: np.ndarray, center: str = "mean"
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre [N, A] (mean or median, `CENTERS`), unbiased variance [N, A] about the mean (NaN with < 2 models)
    and count [N] of ref_phi [k, N, A] over mask [k, N]."""
    if center not in CENTERS:
        raise ValueError(f"unknown center {center!r}; valid: {', '.join(CENTERS)}")
    m = np.asarray(mask, dtype=bool)[:, :, None]
    n = m.sum(0)  # [N, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(m, ref_phi, 0.0).sum(0) / n
        var = np.where(m, (ref_phi - mean[None]) ** 2, 0.0).sum(0) / (n - 1)
    var = np.where(n >= 2, var, np.nan)
    if center == "median":
        with warnings.catch_warnings():  # a sample with no model on this side: NaN, refused by the callers
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmedian(np.where(m, ref_phi, np.nan), axis=0)
    return mean, var, n[:, 0]


def reference_shapes(phi: np.ndarray, ref_phi: np.ndarray, inside: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A target statistic [N] or [N, A], the reference models' [k, N] or [k, N, A] and the IN mask [k, N], as
    float64 [N, A], [k, N, A] and bool [k, N] (A = augmented queries); ValueError when the shapes disagree."""
    phi = np.asarray(phi, dtype=np.float64)
    phi = phi[:, None] if phi.ndim == 1 else phi
    ref_phi = np.asarray(ref_phi, dtype=np.float64)
    ref_phi = ref_phi[:, :, None] if ref_phi.ndim == 2 else ref_phi
    inside = np.asarray(inside, dtype=bool)
    if ref_phi.shape[1:] != phi.shape or inside.shape != ref_phi.shape[:2]:
        raise ValueError(f"shapes disagree: phi {phi.shape}, ref_phi {ref_phi.shape}, inside {inside.shape}; "
                         f"expected [N, A], [k, N, A], [k, N]")
    return phi, ref_phi, inside


def pooled_sd(ref_phi: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """(σ_in, σ_out): pooled standard deviations of φ_j [k, M(, A)] over IN / OUT models of M samples
    (NaN for a side with no sample holding two models of that side)."""
    _, ref_phi, inside = reference_shapes(np.zeros(np.shape(ref_phi)[1:]), ref_phi, inside)
    out = []
    for mask in (inside, ~inside):
        _, var, n = _masked_stats(ref_phi, mask)
        df = np.broadcast_to((n - 1)[:, None], var.shape)
        ok = np.isfinite(var)
        out.append(float(np.sqrt((var[ok] * df[ok]).sum() / df[ok].sum())) if ok.any() else float("nan"))
    return out[0], out[1]


def _sd(var: np.ndarray, n: np.ndarray, glob: float | None, min_per_sample: int) -> np.ndarray:
    use_global = glob is not None and (min_per_sample <= 0 or (n < min_per_sample).any())
    if use_global and not np.isfinite(glob):
        raise ValueError("the global σ is NaN: no unevaluated sample has two reference models on that side "
                         "(use more reference models, k >= 4)")
    if not use_global and np.isnan(var).any():
        raise ValueError(f"per-sample σ needs >= 2 models per side; {int(np.isnan(var).any(1).sum())} samples "
                         f"have fewer: pass global_sd")
    sd = np.full_like(var, glob) if use_global else np.sqrt(var)
    return np.maximum(sd, _TINY)


def _log_normal(x, mu, sd):
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def lira_online(phi: np.ndarray, ref_phi: np.ndarray, inside: np.ndarray,
                global_sd: tuple[float, float] | None = None, min_per_sample: int = MIN_PER_SAMPLE,
                center: str = "mean") -> np.ndarray:
    """Online LiRA scores [N]. phi [N(, A)], ref_phi [k, N(, A)], inside [k, N]; every sample needs IN and
    OUT models. global_sd = (σ_in, σ_out) is used when a sample has fewer than min_per_sample models on a
    side (min_per_sample <= 0: always); without it per-sample σ are used (needs >= 2 models per side).
    center: μ_in, μ_out as the mean (default) or the median (Carlini et al.'s code) of the IN / OUT φ_j."""
    phi, ref_phi, inside = reference_shapes(phi, ref_phi, inside)
    mu_in, var_in, n_in = _masked_stats(ref_phi, inside, center)
    mu_out, var_out, n_out = _masked_stats(ref_phi, ~inside, center)
    if (n_in == 0).any() or (n_out == 0).any():
        raise ValueError(f"online LiRA needs IN and OUT models for every sample; {int((n_in == 0).sum())} have no "
                         f"IN model and {int((n_out == 0).sum())} no OUT model (use the online reference mode)")
    g_in, g_out = global_sd if global_sd is not None else (None, None)
    sd_in, sd_out = _sd(var_in, n_in, g_in, min_per_sample), _sd(var_out, n_out, g_out, min_per_sample)
    return (_log_normal(phi, mu_in, sd_in) - _log_normal(phi, mu_out, sd_out)).mean(1)


def lira_offline(phi: np.ndarray, ref_phi: np.ndarray, inside: np.ndarray, global_sd: float | None = None,
                 min_per_sample: int = MIN_PER_SAMPLE, center: str = "mean") -> np.ndarray:
    """Offline LiRA scores [N] from the OUT models only (IN models of a sample are ignored); global_sd = σ_out;
    center: μ_out as the mean (default) or the median (Carlini et al.'s code) of the OUT φ_j."""
    phi, ref_phi, inside = reference_shapes(phi, ref_phi, inside)
    mu_out, var_out, n_out = _masked_stats(ref_phi, ~inside, center)
    if (n_out == 0).any():
        raise ValueError(f"offline LiRA needs OUT models for every sample; {int((n_out == 0).sum())} have none")
    sd = _sd(var_out, n_out, global_sd, min_per_sample)
    return log_ndtr((phi - mu_out) / sd).mean(1)
