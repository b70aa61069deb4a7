"""The statistics of the claims ledger: a cell's interval, a claim's statistic, its rule and its verdict.

A reproduced cell is a mean accuracy over k seeds (sd s) on n evaluated samples a seed (members + non-members).
Its standard error takes the larger of the seed-to-seed spread and the binomial floor of its counts,

    SE² = max(s² / k, m (1 − m) / (n k)),

and its two-sided (1 − ALPHA) interval is m ± q · SE, q Student's t with k − 1 degrees of freedom where the seeds'
spread is the larger part (k ≥ 2), else the normal quantile (docs/protocol.md, "Claims ledger"). A claim's
statistic is one of

=================  ==============================================================================================
``cell``           one cell (e.g. the best setup's accuracy): its interval
``contrast``       Σ wᵢ mᵢ over cells (mean of group A − mean of group B), SE² = Σ wᵢ² SEᵢ², the fewest seeds' t
``best`` / ``worst``  the largest / smallest of several cells, each interval at ALPHA / m (Bonferroni)
``pooled``         a control's cell on its pooled counts (n × k samples, binomial SE): is a signal there at all
=================  ==============================================================================================

and its rule one of ``at least`` (statistic ≥ bound), ``at most`` (≤ bound) or ``within`` (|statistic| ≤ bound,
an equivalence test). The verdict: **holds** when the whole interval is on the claim's side, **does not hold**
when the whole interval is on the other side, **inconclusive** when it spans the bound (with the seeds that would
decide it at this effect); a rule applied to published point values (`holds_on_values`) has no interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.01
RULES = ("at least", "at most", "within")
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
ARTIFACT, UNTESTABLE, DID_NOT_TRAIN = "artifact", "not testable here", "did not train"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, ARTIFACT, UNTESTABLE, DID_NOT_TRAIN)


@dataclass(frozen=True)
class Estimate:
    """A statistic with its (1 − ALPHA) interval; seeds = the fewest seeds of its cells, n_eval = the fewest
    evaluated samples a seed (0: unknown), cells = how many cells it reads, sd1 = its per-seed spread."""

    value: float
    low: float
    high: float
    seeds: int
    n_eval: int
    cells: int
    sd1: float = math.nan

    def text(self) -> str:
        return f"{self.value:+.3f} [{self.low:+.3f}, {self.high:+.3f}]" if self.value < 0 or self.low < 0 else \
            f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def cell_se(mean: float, sd: float, seeds: int, n_eval: int) -> tuple[float, float]:
    """(SE, degrees of freedom) of one cell: the seeds' spread or the binomial floor, whichever is larger
    (inf degrees of freedom for the binomial part; NaN SE when neither is known)."""
    seed_var = sd * sd / seeds if seeds >= 2 and np.isfinite(sd) else math.nan
    binom_var = mean * (1 - mean) / (n_eval * seeds) if n_eval > 0 else math.nan
    if np.isnan(seed_var) and np.isnan(binom_var):
        return math.nan, math.inf
    if np.isnan(binom_var) or (not np.isnan(seed_var) and seed_var >= binom_var):
        return math.sqrt(seed_var), float(seeds - 1)
    return math.sqrt(max(binom_var, 1e-12)), math.inf


def quantile(alpha: float, df: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2) if not np.isfinite(df) else stats.t.ppf(1 - alpha / 2, df))


def contrast(means, sds, seeds, n_evals, weights, alpha: float = ALPHA) -> Estimate:
    """Σ wᵢ mᵢ with its interval (cells independent; the fewest degrees of freedom)."""
    means, weights = np.asarray(means, float), np.asarray(weights, float)
    parts = [cell_se(m, s, int(k), int(n)) for m, s, k, n in zip(means, sds, seeds, n_evals)]
    se = math.sqrt(sum((w * p[0]) ** 2 for w, p in zip(weights, parts)))
    df = min(p[1] for p in parts)
    value = float(weights @ means)
    half = quantile(alpha, df) * se if np.isfinite(se) else math.inf
    k = int(min(seeds))
    return Estimate(value, value - half, value + half, k, int(min(n_evals)), len(means), se * math.sqrt(max(k, 1)))


def single(mean: float, sd: float, seeds: int, n_eval: int, alpha: float = ALPHA) -> Estimate:
    """One cell's accuracy with its interval, clipped to [0, 1]."""
    e = contrast([mean], [sd], [seeds], [n_eval], [1.0], alpha)
    return Estimate(e.value, max(e.low, 0.0), min(e.high, 1.0), e.seeds, e.n_eval, 1, e.sd1)


def pooled(mean: float, seeds: int, n_eval: int, alpha: float = ALPHA) -> Estimate:
    """A cell read on its pooled counts (n_eval × seeds samples, the binomial SE, normal quantile), clipped to
    [0, 1]: "is there a signal in these samples?", the question a control asks (as the null control's binomial
    test), not "would another seed reproduce it?"."""
    k = max(int(n_eval) * int(seeds), 1)
    half = quantile(alpha, math.inf) * math.sqrt(max(mean * (1 - mean), 1e-12) / k) if n_eval > 0 else math.inf
    return Estimate(float(mean), max(mean - half, 0.0), min(mean + half, 1.0), int(seeds), int(n_eval), 1)


def extreme(means, sds, seeds, n_evals, which: str, alpha: float = ALPHA, on_counts: bool = False) -> Estimate:
    """The best (``max``) or worst (``min``) of several cells; each cell's interval at alpha / m (``on_counts``:
    read on its pooled counts, `pooled`)."""
    m = len(means)
    ests = [pooled(a, c, d, alpha / m) if on_counts else single(a, b, c, d, alpha / m)
            for a, b, c, d in zip(means, sds, seeds, n_evals)]
    pick = max if which == "max" else min
    i = int(np.argmax(means) if which == "max" else np.argmin(means))
    return Estimate(float(means[i]), pick(e.low for e in ests), pick(e.high for e in ests), int(min(seeds)),
                    int(min(n_evals)), m, ests[i].sd1)


def verdict(est: Estimate, rule: str, bound: float) -> str:
    """holds / does not hold / inconclusive of `est` under `rule` with `bound` (the module's table)."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; valid: {', '.join(RULES)}")
    lo, hi = est.low, est.high
    if rule == "at least":
        return HOLDS if lo >= bound else FAILS if hi < bound else INCONCLUSIVE
    if rule == "at most":
        return HOLDS if hi <= bound else FAILS if lo > bound else INCONCLUSIVE
    return HOLDS if -bound <= lo and hi <= bound else FAILS if lo > bound or hi < -bound else INCONCLUSIVE


def holds_on_values(value: float, rule: str, bound: float, tol: float = 1e-9) -> bool:
    """The rule on a published point value (no interval); `tol` absorbs float error of rounded numbers."""
    if rule == "at least":
        return value >= bound - tol
    if rule == "at most":
        return value <= bound + tol
    return abs(value) <= bound + tol


def seeds_to_decide(est: Estimate, rule: str, bound: float, alpha: float = ALPHA) -> str:
    """What would decide an inconclusive statistic: the seeds (at this n and this spread) for its interval to
    clear the bound, if the effect stays where it is."""
    if rule == "within":
        gap = bound - abs(est.value) if abs(est.value) < bound else abs(est.value) - bound
    else:
        gap = abs(est.value - bound)
    if not np.isfinite(est.sd1) or est.sd1 <= 0:
        return "more seeds with their evaluated counts recorded"
    if gap < 1e-6:
        return "no sample size: the effect sits on the bound"
    k = math.ceil((quantile(alpha, math.inf) * est.sd1 / gap) ** 2)
    return (f"≈ {max(k, est.seeds + 1)} seeds at this n would decide it if the effect stays at {est.value:.3f} "
            "(normal approximation)")
