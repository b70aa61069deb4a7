"""The verdict: a one-sided rank test per method on held-out scores, Holm over methods, one sentence.

Null hypothesis H0: for this model, the candidate members and the non-members are exchangeable:
the model (and every score computed from it) treats a member no differently from a non-member.
Under H0 the held-out member and non-member scores of a method are exchangeable too, because the
MINT model that produced them never saw the held-out samples (``docs/audit.md``, "The test").
The test is scipy's one-sided Mann-Whitney U (alternative: members score higher), whose statistic
divided by n1 * n0 is the AUC. Several methods are several tests: their p-values are adjusted with
Holm's step-down procedure (family-wise error at ``alpha`` without assuming independence).

The blind baseline (``mintkit.audit.blind``) goes through the same test. When it separates the two sets,
a method counts only if its AUC exceeds every blind classifier's on the same held-out samples by DeLong's
paired test (one-sided; the largest p over the blind classifiers, an intersection-union test), Holm over
methods. `verdict` turns all of it into one of three headlines (``docs/audit.md``, "The verdict").

Power: "No evidence" at a small n is not "not trained on". Each such verdict names the smallest AUC the test would
detect at its n (`detectable_auc`: one-sided level alpha / k, Holm's first step over k methods, power 0.8, the
Hanley & McNeil (1982) standard error of the AUC) and, for an observed AUC above 0.5, the held-out samples that
AUC would need (`samples_needed`). A normal approximation, no simulation: a planning figure, not a second test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import mannwhitneyu, norm, rankdata

TEST_NAME = "one-sided Mann-Whitney U (members score higher), scipy.stats.mannwhitneyu"
PAIRED_NAME = "one-sided DeLong test of the AUC difference on the same held-out samples"
# Verdict.design: the owner's random split when --owner-split names its record; otherwise nothing was declared about
# how members and non-members were chosen (one source or two), and the verdict leans on the blind baseline
DESIGNS = ("random split by the owner", "undeclared (no --owner-split)")
POWER = 0.8  # the power at which the detectable AUC is stated


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


def auc_se(auc: float, n1: int, n0: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC from n1 members and n0 non-members (at 0.5 it is the
    Mann-Whitney null's, sqrt((n1 + n0 + 1) / (12 n1 n0)), up to the exact (n - 1) terms)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n0 - 1) * (q2 - auc * auc)) / (n1 * n0)
    return math.sqrt(max(var, 0.0))


def detectable_auc(n1: int, n0: int, alpha: float, power: float = POWER) -> float:
    """The smallest AUC a one-sided test at level `alpha` detects with probability `power` at n1 + n0 samples:
    the A with A - 0.5 = z(1 - alpha) SE(0.5) + z(power) SE(A) (Hanley-McNeil SE, found by bisection)."""
    za, zb = norm.ppf(1 - alpha), norm.ppf(power)
    lo, hi = 0.5, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if mid - 0.5 >= za * auc_se(0.5, n1, n0) + zb * auc_se(mid, n1, n0):
            hi = mid
        else:
            lo = mid
    return hi


def samples_needed(auc: float, alpha: float, power: float = POWER, limit: int = 10 ** 7) -> int | None:
    """Held-out members (and as many non-members) at which `auc` becomes detectable (`detectable_auc` <= auc);
    None for an AUC at or below 0.5, or beyond `limit`."""
    if not auc > 0.5 or detectable_auc(limit, limit, alpha, power) > auc:
        return None
    lo, hi = 1, 2
    while detectable_auc(hi, hi, alpha, power) > auc:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if detectable_auc(mid, mid, alpha, power) <= auc else (mid, hi)
    return hi


def power_note(auc: float, n1: int, n0: int, alpha: float, k: int) -> str:
    """The clause a "No evidence" verdict carries: what this n could detect, and what the observed AUC needs."""
    a = alpha / k  # Holm's first step: the strongest method is tested at alpha / k
    mde = detectable_auc(n1, n0, a)
    need = samples_needed(auc, a)
    text = (f"at {n1} + {n0} held-out samples this test detects, with power {POWER:g}, an AUC of {mde:.2f} or more "
            f"(one-sided level {a:.3g}; Hanley-McNeil)")
    if need is not None and need > max(n1, n0):
        text += f"; the observed AUC {auc:.2f} would need about {need:,} + {need:,}"
    elif need is None and auc > 0.5:
        text += f"; the observed AUC {auc:.2f} is too close to 0.5 to size"
    return text + ", so a smaller effect may be missed: this is not evidence of non-use"


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


def _placements(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each member the share of non-members it outscores [n1], and for
    each non-member the share of members that outscore it [n0] (ties count one half)."""
    s = np.asarray(scores, dtype=np.float64)
    pos, neg = s[labels == 1], s[labels == 0]
    r_all = rankdata(np.r_[pos, neg])
    v10 = (r_all[:len(pos)] - rankdata(pos)) / len(neg)
    v01 = 1.0 - (r_all[len(pos):] - rankdata(neg)) / len(pos)
    return v10, v01


def delong_greater(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(AUC(a) - AUC(b), one-sided p of H0: AUC(a) <= AUC(b)) for two score vectors [n] of the same samples
    with labels [n] (1 = member), by DeLong, DeLong & Clarke-Pearson's (1988) paired variance."""
    labels = np.asarray(labels).astype(int)
    (a10, a01), (b10, b01) = _placements(a, labels), _placements(b, labels)
    diff = float(a10.mean() - b10.mean())
    var = float(np.var(a10 - b10, ddof=1) / len(a10) + np.var(a01 - b01, ddof=1) / len(a01))
    if var <= 1e-15:  # both perfectly ranked, or identical rankings: no measurable difference beyond diff's sign
        return diff, 0.0 if diff > 0 else 1.0
    return diff, float(norm.sf(diff / math.sqrt(var)))


def beats_blind(scores: np.ndarray, labels: np.ndarray, blind: dict[str, np.ndarray]) -> tuple[float, str]:
    """(p, name): the largest one-sided DeLong p of `scores` beating each blind classifier's scores [n] on the
    same held-out samples, and the blind classifier it belongs to. Beating every one of them is the claim, so
    the largest p is its p-value (intersection-union) and needs no correction over the blind family."""
    ps = {k: delong_greater(scores, s, labels)[1] for k, s in blind.items()}
    worst = max(ps, key=ps.get)
    return ps[worst], worst


@dataclass(frozen=True)
class Verdict:
    """The audit's answer. kind: 'evidence', 'no evidence' or 'inconclusive' (the blind baseline separates
    the sets and no method beats it). evidence: kind == 'evidence'."""

    evidence: bool
    method: str
    p_adjusted: float
    alpha: float
    sentence: str
    kind: str = "no evidence"
    design: str = DESIGNS[1]
    blind_separates: bool = False
    blind_method: str = ""
    blind_p: float = float("nan")


def _ci(r: dict) -> str:
    return "" if math.isnan(r.get("auc_ci_low", math.nan)) else f" [{r['auc_ci_low']:.2f}, {r['auc_ci_high']:.2f}]"


def verdict(results: dict[str, dict], alpha: float, who: str = "the members", blind: dict[str, dict] | None = None,
            design: str = DESIGNS[1]) -> Verdict:
    """One sentence from {method: {'test': TestResult, 'p_holm', 'auc_ci_low', 'auc_ci_high', 'what'
    (, 'p_vs_blind': Holm-adjusted DeLong p of beating the blind baseline)}} and the blind baseline's
    {classifier: {'test', 'p_holm', 'auc_ci_low', 'auc_ci_high', 'what'}} (None: no blind baseline).

    Blind baseline not separating (its smallest Holm p >= alpha): "Evidence" when a method's Holm p is
    below alpha, else "No evidence". Separating: "Evidence ... beyond ..." when a method also beats it
    (p_vs_blind below alpha), else "Inconclusive". The design (DESIGNS) is named in every sentence.
    """
    if design not in DESIGNS:
        raise ValueError(f"design={design!r}; valid: {', '.join(DESIGNS)}")
    best = min(results, key=lambda k: results[k]["p_holm"])
    r = results[best]
    t: TestResult = r["test"]
    k = len(results)
    adj = f", Holm-adjusted over {k} methods" if k > 1 else ""
    tail = (f"AUC {t.auc:.2f}{_ci(r)}, one-sided p = {fmt_p(r['p_holm'])}{adj}, "
            f"{t.n_members} + {t.n_nonmembers} held-out samples, {r['what']}")
    where = f"design: {design}"
    if not blind:
        sep, bname, bp, btxt = False, "", math.nan, "no blind baseline"
    else:
        bname = min(blind, key=lambda b: blind[b]["p_holm"])
        b = blind[bname]
        sep, bp = b["p_holm"] < alpha, b["p_holm"]
        btxt = (f"blind baseline AUC {b['test'].auc:.2f}{_ci(b)}, p = {fmt_p(bp)} (Holm over {len(blind)}), "
                f"{bname}: {b['what']}")
    if not sep:
        if r["p_holm"] < alpha:
            s = f"Evidence that {who} were used in training: {tail}; {btxt} (no difference without the model); {where}."
            kind = "evidence"
        else:
            s = (f"No evidence that {who} were used in training at alpha = {alpha:g}: strongest method {tail}; "
                 f"{btxt}; {power_note(t.auc, t.n_members, t.n_nonmembers, alpha, k)}; {where}.")
            kind = "no evidence"
        return Verdict(kind == "evidence", best, r["p_holm"], alpha, s, kind, design, False, bname, bp)
    beat = {m: v["p_vs_blind"] for m, v in results.items() if v["p_holm"] < alpha and v["p_vs_blind"] < alpha}
    if beat:
        m = min(beat, key=beat.get)
        v = results[m]
        s = (f"Evidence that {who} were used in training, beyond a difference found without the model: "
             f"{v['what']} AUC {v['test'].auc:.2f}{_ci(v)} beats every blind classifier (one-sided paired DeLong "
             f"p = {fmt_p(beat[m])}{adj}; {btxt}); {where}.")
        return Verdict(True, m, beat[m], alpha, s, "evidence", design, True, bname, bp)
    s = (f"Inconclusive: members and non-members differ without the model ({btxt}), and no method beats the blind "
         f"baseline (strongest method {tail}); change the non-members (or the members) so both come from the same "
         f"source, capture and processing, ideally a random split by the owner; {where}.")
    return Verdict(False, best, r["p_holm"], alpha, s, "inconclusive", design, True, bname, bp)
