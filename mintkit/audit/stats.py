"""The verdict: a one-sided rank test per method on held-out scores, Holm over methods, one sentence.

Null hypothesis H0: for this model, the candidate members and the non-members are exchangeable:
the model (and every score computed from it) treats a member no differently from a non-member.
Under H0 the held-out member and non-member scores of a method are exchangeable too, because the
MINT model that produced them never saw the held-out samples (``docs/audit.md``, "The test").
The test is scipy's one-sided Mann-Whitney U (alternative: members score higher), whose statistic
divided by n1 * n0 is the AUC. Several methods are several tests: their p-values are adjusted with
Holm's step-down procedure (family-wise error at ``alpha`` without assuming independence).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import mannwhitneyu

TEST_NAME = "one-sided Mann-Whitney U (members score higher), scipy.stats.mannwhitneyu"


@dataclass(frozen=True)
class TestResult:
    """One method's test on held-out scores. auc = u / (n_members * n_nonmembers)."""

    u: float
    p: float
    auc: float
    n_members: int
    n_nonmembers: int


def rank_test(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> TestResult:
    """One-sided Mann-Whitney U of member [n1] vs non-member [n0] scores (higher = member).

    scipy picks the exact null distribution for small samples without ties and the normal
    approximation with tie correction otherwise.
    """
    m = np.asarray(member_scores, dtype=np.float64).ravel()
    n = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    if len(m) == 0 or len(n) == 0:
        raise ValueError(f"the test needs members and non-members; got {len(m)} and {len(n)}")
    res = mannwhitneyu(m, n, alternative="greater")
    return TestResult(float(res.statistic), float(res.pvalue), float(res.statistic) / (len(m) * len(n)), len(m), len(n))


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (monotone step-down, capped at 1), same keys."""
    order = sorted(pvalues, key=pvalues.get)
    k = len(order)
    out, running = {}, 0.0
    for i, name in enumerate(order):
        running = max(running, min(1.0, (k - i) * pvalues[name]))
        out[name] = running
    return out


def fmt_p(p: float) -> str:
    """p-values as people quote them: 3e-06, 0.012, 0.43."""
    if p < 1e-3:
        return f"{p:.0e}"
    return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


@dataclass(frozen=True)
class Verdict:
    """The audit's answer: evidence when the smallest Holm-adjusted p-value is below alpha."""

    evidence: bool
    method: str
    p_adjusted: float
    alpha: float
    sentence: str


def verdict(results: dict[str, dict], alpha: float, who: str = "the members") -> Verdict:
    """One sentence from {method label: {'test': TestResult, 'p_holm', 'auc_ci_low', 'auc_ci_high', 'what'}}.

    The method quoted is the one with the smallest adjusted p-value (ties: the first given).
    """
    best = min(results, key=lambda k: results[k]["p_holm"])
    r = results[best]
    t: TestResult = r["test"]
    k = len(results)
    ci = "" if math.isnan(r.get("auc_ci_low", math.nan)) else f" [{r['auc_ci_low']:.2f}, {r['auc_ci_high']:.2f}]"
    adj = f", Holm-adjusted over {k} methods" if k > 1 else ""
    tail = (f"AUC {t.auc:.2f}{ci}, one-sided p = {fmt_p(r['p_holm'])}{adj}, "
            f"{t.n_members} + {t.n_nonmembers} held-out samples, {r['what']}")
    if r["p_holm"] < alpha:
        s = f"Evidence that {who} were used in training: {tail}."
    else:
        s = f"No evidence that {who} were used in training at alpha = {alpha:g}: strongest method {tail}."
    return Verdict(r["p_holm"] < alpha, best, r["p_holm"], alpha, s)
