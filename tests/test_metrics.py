"""mintkit.core.metrics against hand-computed values, brute force and sklearn."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mintkit.core import bootstrap as B
from mintkit.core import metrics as M
from mintkit.core import thresholds as T


# --------------------------------------------------------------------------- point values
def test_hand_computed_example():
    r = M.membership_metrics([0.9, 0.8, 0.3, 0.6], [1, 1, 0, 0], n_boot=0)
    # members 0.9, 0.8 >= 0.5 (right); non-members 0.3 (right), 0.6 (wrong)
    assert r["accuracy"] == pytest.approx(0.75)
    assert r["balanced_accuracy"] == pytest.approx(0.75)
    assert r["auc"] == pytest.approx(1.0)  # every member scores above every non-member
    assert r["n_eval_members"] == 2 and r["n_eval_nonmembers"] == 2
    assert r["fpr_resolution"] == pytest.approx(0.5)
    assert math.isnan(r["accuracy_calibrated"]) and math.isnan(r["threshold_calibrated"])
    # TPR = 1 at FPR 0 (threshold 0.8)
    assert r["tpr_at_1pct_fpr"] == 1.0 and r["tpr_at_0.1pct_fpr"] == 1.0
    assert r["tpr_at_1pct_fpr_max_fp"] == 0 and r["tpr_at_0.1pct_fpr_max_fp"] == 0
    assert set(M.METRICS) <= set(r)
    assert all(isinstance(r[k], int) for k in ("n_eval_members", "n_eval_nonmembers"))


def test_keys_are_regular():
    r = M.membership_metrics([0.9, 0.8, 0.3, 0.6], [1, 1, 0, 0], [0.7, 0.2], [1, 0], n_boot=10)
    for m in M.CI_METRICS:
        assert f"{m}_ci_low" in r and f"{m}_ci_high" in r
    for t in M.TPR_METRICS:
        for suffix in ("_cp_low", "_cp_high", "_max_fp"):
            assert t + suffix in r
    assert not any(isinstance(v, np.generic) for v in r.values())  # JSON-ready


def test_ties_auc_and_accuracy():
    s = [0.5, 0.5, 0.5, 0.2, 0.7]
    y = [1, 0, 0, 0, 1]
    r = M.membership_metrics(s, y, n_boot=0)
    # pairs (member, non-member): (0.5,0.5)x2 -> 1/2 each, (0.5,0.2) -> 1, (0.7, *) -> 3
    assert r["auc"] == pytest.approx((0.5 + 0.5 + 1 + 3) / 6)
    assert r["auc"] == pytest.approx(roc_auc_score(y, s))
    # score >= 0.5 is "member": members right 2/2, non-members right 1/3
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["balanced_accuracy"] == pytest.approx((1 + 1 / 3) / 2)


def test_tpr_at_fpr_constructed():
    # non-members 0.95, 0.5 x 99 ; members 0.99, 0.97, 0.9, 0.4
    s = np.r_[0.99, 0.97, 0.9, 0.4, 0.95, np.full(99, 0.5)]
    y = np.r_[np.ones(4), np.zeros(100)]
    # FPR 0 -> members above 0.95: 2 of 4
    assert T.tpr_at_fpr(s, y, 0.0) == pytest.approx(0.5)
    assert T.tpr_at_fpr(s, y, 0.001) == pytest.approx(0.5)
    # FPR 1% allows the 0.95 non-member: threshold 0.9 -> 3 of 4
    assert T.tpr_at_fpr(s, y, 0.01) == pytest.approx(0.75)
    # 0.5 ties pull in 99 false positives at once: nothing better until FPR 1
    assert T.tpr_at_fpr(s, y, 0.5) == pytest.approx(0.75)
    assert T.tpr_at_fpr(s, y, 1.0) == pytest.approx(1.0)
    # no member above every non-member -> 0 at FPR 0
    assert T.tpr_at_fpr([0.1, 0.9], [1, 0], 0.0) == 0.0
    r = M.membership_metrics(s, y, n_boot=0)
    assert r["tpr_at_1pct_fpr_max_fp"] == 1 and r["tpr_at_0.1pct_fpr_max_fp"] == 0


def test_calibrated_threshold_uses_calibration_data_only():
    # calibration: members around 0.8, non-members around 0.6 -> threshold 0.7
    cs = np.array([0.85, 0.8, 0.75, 0.65, 0.6, 0.55])
    cy = np.array([1, 1, 1, 0, 0, 0])
    assert T.calibrate_threshold(cs, cy) == pytest.approx(0.7)
    # evaluation: separable at 0.3, so the eval-optimal threshold would be ~0.3
    es = np.array([0.5, 0.45, 0.4, 0.2, 0.15, 0.1])
    ey = np.array([1, 1, 1, 0, 0, 0])
    assert T.calibrate_threshold(es, ey) == pytest.approx(0.3)
    r = M.membership_metrics(es, ey, cs, cy, n_boot=0)
    assert r["threshold_calibrated"] == pytest.approx(0.7)
    assert r["accuracy_calibrated"] == pytest.approx(0.5)  # not the eval-optimal 1.0
    # changing eval data never changes the calibrated threshold
    r2 = M.membership_metrics(es[::-1] + 0.01, ey[::-1], cs, cy, n_boot=0)
    assert r2["threshold_calibrated"] == r["threshold_calibrated"]


def test_calibrate_threshold_edge_cases():
    # inverted scores: no threshold beats chance -> predict nothing as member
    t = T.calibrate_threshold([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])
    assert t > 0.9
    # balanced, not plain, accuracy: 1 member among many non-members
    s = np.r_[0.6, np.linspace(0, 0.5, 50), 0.7]
    y = np.r_[1, np.zeros(50), 0]
    t = T.calibrate_threshold(s, y)
    assert 0.5 < t <= 0.6


def test_calibrated_matches_brute_force():
    rng = np.random.default_rng(3)
    s = np.round(rng.normal(size=200), 1)
    y = rng.integers(0, 2, 200)
    t = T.calibrate_threshold(s, y)

    def bacc(th):
        p = s >= th
        return (p[y == 1].mean() + (~p[y == 0]).mean()) / 2

    best = max(bacc(th) for th in np.r_[np.unique(s), np.inf])
    assert bacc(t) == pytest.approx(best)


def test_auc_matches_sklearn_random_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(y, 1), 1)
    r = M.membership_metrics(s, y, n_boot=0)
    assert r["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)


# --------------------------------------------------------------------------- bootstrap
def _data(n, seed=0, shift=0.8):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
    s = np.round(rng.normal(shift * y, 1.0), 2)  # rounded: ties on purpose
    return s, y


def test_bootstrap_matches_brute_force_resamples():
    """The vectorised resample statistics equal sklearn/tpr_at_fpr on each explicit resample."""
    s, y = _data(3000, seed=1)
    sm, sn = np.sort(s[y == 1]), np.sort(s[y == 0])
    boot = B.stratified_bootstrap(sm, sn, [0.5], (0.01, 0.001), 4, 7)
    seq_m, seq_n = np.random.SeedSequence(7).spawn(2)
    im = np.random.default_rng(seq_m).integers(0, len(sm), (4, len(sm)))
    jn = np.random.default_rng(seq_n).integers(0, len(sn), (4, len(sn)))
    for b in range(4):
        rs = np.r_[sm[im[b]], sn[jn[b]]]
        ry = np.r_[np.ones(len(sm)), np.zeros(len(sn))]
        assert boot["auc"][b] == pytest.approx(roc_auc_score(ry, rs), abs=1e-12)
        assert boot["tpr@0.01"][b] == pytest.approx(T.tpr_at_fpr(rs, ry, 0.01))
        assert boot["tpr@0.001"][b] == pytest.approx(T.tpr_at_fpr(rs, ry, 0.001))
        assert boot["acc@0"][b] == pytest.approx(((rs >= 0.5) == ry).mean())


def test_ci_contains_estimate_and_narrows_with_n():
    widths = []
    for n in (400, 6400):
        s, y = _data(n, seed=2)
        r = M.membership_metrics(s, y, s, y, n_boot=200, seed=0)
        for m in ("accuracy", "accuracy_calibrated", "balanced_accuracy", "auc",
                  "tpr_at_1pct_fpr"):
            assert r[f"{m}_ci_low"] <= r[m] <= r[f"{m}_ci_high"], m
        for t in M.TPR_METRICS:
            assert r[f"{t}_cp_low"] <= r[t] <= r[f"{t}_cp_high"]
        widths.append({m: r[f"{m}_ci_high"] - r[f"{m}_ci_low"] for m in ("accuracy", "auc")})
    for m in ("accuracy", "auc"):
        assert widths[1][m] < widths[0][m] / 2  # ~ 1/sqrt(16) = 1/4


def test_bootstrap_deterministic_and_seeded():
    s, y = _data(1000, seed=4)
    a = M.membership_metrics(s, y, n_boot=50, seed=1)
    b = M.membership_metrics(s, y, n_boot=50, seed=1)
    c = M.membership_metrics(s, y, n_boot=50, seed=2)
    assert a == b
    assert a["auc_ci_low"] != c["auc_ci_low"] or a["auc_ci_high"] != c["auc_ci_high"]
    assert a["auc"] == c["auc"]


def test_bootstrap_chunking_invariant(monkeypatch):
    s, y = _data(1000, seed=5)
    a = M.membership_metrics(s, y, n_boot=30, seed=0)
    monkeypatch.setattr(B, "BOOT_CHUNK_ELEMS", 2500)  # 2 resamples per chunk
    b = M.membership_metrics(s, y, n_boot=30, seed=0)
    assert a == b


def test_clopper_pearson_known_values():
    # x = 0 of n: upper = 1 - (alpha/2)^(1/n)
    low, high = T.clopper_pearson(0, 10, 0.95)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 10))
    low, high = T.clopper_pearson(10, 10, 0.95)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 10))


def test_no_bootstrap_gives_nan_intervals():
    r = M.membership_metrics([0.9, 0.8, 0.3, 0.6], [1, 1, 0, 0], n_boot=0)
    assert all(math.isnan(r[f"{m}_ci_low"]) for m in M.CI_METRICS)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "scores,labels,match",
    [
        ([0.1, 0.2], [1, 1], "both members"),
        ([0.1, 0.2], [0, 0], "both members"),
        ([0.1, 0.2, 0.3], [1, 0], "different lengths"),
        ([0.1, np.nan], [1, 0], "NaN"),
        ([0.1, 0.2], [1, 2], "0 .non-member. or 1"),
        ([[0.1, 0.2]], [1, 0], "one-dimensional"),
    ],
)
def test_bad_input_raises(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        M.membership_metrics(scores, labels)


def test_bad_calibration_raises():
    with pytest.raises(ValueError, match="calibration"):
        M.membership_metrics([0.1, 0.9], [0, 1], [0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="both calib"):
        M.membership_metrics([0.1, 0.9], [0, 1], [0.1, 0.2], None)


# --------------------------------------------------------------------------- seeds
def test_summarize_seeds():
    df = pd.DataFrame({
        "model": ["a", "a", "a", "b", "b"],
        "setup": [np.nan] * 5,
        "seed": [0, 1, 2, 0, 1],
        "value": [0.8, 0.9, 1.0, 0.5, np.nan],
    })
    out = M.summarize_seeds(df, ["model", "setup"])
    assert list(out.columns) == ["model", "setup", "mean", "sd", "n"]
    a = out[out.model == "a"].iloc[0]
    assert a["mean"] == pytest.approx(0.9) and a["sd"] == pytest.approx(0.1) and a["n"] == 3
    b = out[out.model == "b"].iloc[0]
    assert b["mean"] == pytest.approx(0.5) and math.isnan(b["sd"]) and b["n"] == 1
    with pytest.raises(ValueError, match="seed"):
        M.summarize_seeds(df, ["model", "seed"])
    with pytest.raises(ValueError, match="repeat"):
        M.summarize_seeds(pd.concat([df, df]), ["model", "setup"])
