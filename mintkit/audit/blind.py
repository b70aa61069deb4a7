"""The blind baseline: can members and non-members be told apart *without the audited model*?

Every audit runs it by default (``docs/audit.md``, "The blind baseline"). Three classifiers that never
touch the audited model are trained on the same MINT-training sets as the methods (``mint_train_members``
= 1, E = 0) and score the same held-out members and non-members, which go through the same rank test:

* ``blind-pixels``: per-image pixel statistics (per channel: mean, std, min, max, nine percentiles, a
  32-bin histogram, mean absolute gradient) -- what a second camera, scanner or codec changes first;
* ``blind-thumbnail``: the image averaged down to 8 x 8 per channel;
* ``blind-reference``: per-channel mean and std of the four stages of a torchvision resnet18 with fixed
  random weights (seed REFERENCE_SEED), on images resized to REFERENCE_SIDE. No weights can be downloaded
  where audits run offline, and a network that has seen no data encodes nothing about any member: its
  features are a fixed, generic map of local texture and contrast, independent of the audited model.

Each classifier is scikit-learn's logistic regression on standardised features (scaler fitted on the
MINT-training sets only). If any of them separates the held-out sets (Holm over the three below alpha),
the two sets differ without the model and the verdict cannot read a method's separation as training use
(``stats.verdict``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mintkit.audit.data import AuditPool
from mintkit.audit.stats import TestResult, holm, rank_test
from mintkit.core.metrics import membership_metrics
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split

BLIND = {"blind-pixels": "pixel statistics (mean, std, percentiles, histogram, gradient), logistic regression",
         "blind-thumbnail": "8x8 downsampled pixels, logistic regression",
         "blind-reference": "random-weight resnet18 (seed 0, 32x32 input) stage statistics, logistic regression"}
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
HIST_BINS = 32
THUMB_SIDE = 8
REFERENCE_SEED, REFERENCE_SIDE = 0, 32
CHUNK = 256  # images per feature pass
BLIND_SETS = ("mint_train_members", "external", "eval_members", "eval_nonmembers")


@dataclass
class BlindResult(MembershipResult):
    """One blind classifier, or one of the audit's methods: the fields of every membership method (held-out
    scores [n1 + n0], members high; calibration = its MINT-training scores) plus the rank test of its held-out
    scores and its Holm-adjusted p-value."""

    test: TestResult | None = None
    p_holm: float = float("nan")


def pixel_stat_names(channels: int) -> list[str]:
    """Names of the pixel_stats columns, in order."""
    per = (["mean", "std", "min", "max"] + [f"p{q}" for q in PERCENTILES]
           + [f"hist{b}" for b in range(HIST_BINS)] + ["gradient"])
    return [f"c{c}:{n}" for c in range(channels) for n in per]


def pixel_stats(x: torch.Tensor) -> np.ndarray:
    """x [N, C, H, W] uint8 -> [N, C * 46] float64: per channel mean, std, min, max, percentiles, histogram
    fractions (32 bins over 0..255) and mean absolute horizontal + vertical difference (sharpness, noise)."""
    v = x.double()
    n, c = v.shape[:2]
    flat = v.reshape(n, c, -1)
    q = torch.quantile(flat, torch.tensor(PERCENTILES, dtype=torch.float64) / 100, dim=2).permute(1, 2, 0)
    bins = (x.reshape(n, c, -1).long() * HIST_BINS) // 256
    hist = F.one_hot(bins, HIST_BINS).double().mean(2)
    grad = ((v[..., 1:, :] - v[..., :-1, :]).abs().mean((2, 3)) + (v[..., :, 1:] - v[..., :, :-1]).abs().mean((2, 3)))
    parts = [flat.mean(2, keepdim=True), flat.std(2, keepdim=True), flat.amin(2, keepdim=True),
             flat.amax(2, keepdim=True), q, hist, grad.unsqueeze(2)]
    return torch.cat(parts, dim=2).reshape(n, -1).numpy()


def thumbnails(x: torch.Tensor) -> np.ndarray:
    """x [N, C, H, W] uint8 -> [N, C * 64]: the mean of each cell of an 8 x 8 grid, on 0..1."""
    return F.adaptive_avg_pool2d(x.float() / 255.0, THUMB_SIDE).flatten(1).double().numpy()


def reference_network() -> torch.nn.Module:
    """torchvision resnet18 with the random weights torch draws at seed REFERENCE_SEED (eval mode)."""
    with torch.random.fork_rng(devices=[]):  # the audit's own random stream is left where it was
        torch.manual_seed(REFERENCE_SEED)
        net = torchvision.models.resnet18(num_classes=10)
    return net.eval()


@torch.no_grad()
def reference_features(x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """x [N, C, H, W] uint8 -> [N, 2 * (64 + 128 + 256 + 512)]: per-channel mean and std of each resnet18 stage
    on the images resized to 32 x 32, grey repeated to RGB, scaled to (x / 255 - 0.5) / 0.25."""
    net = reference_network()
    out = []
    for s in range(0, len(x), batch_size):
        b = x[s:s + batch_size].float().div(255.0)
        b = b.repeat(1, 3, 1, 1) if b.shape[1] == 1 else b
        b = F.interpolate(b, size=(REFERENCE_SIDE, REFERENCE_SIDE), mode="bilinear", align_corners=False)
        h = net.maxpool(net.relu(net.bn1(net.conv1((b - 0.5) / 0.25))))
        feats = []
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            h = stage(h)
            feats += [h.mean((2, 3)), h.flatten(2).std(2) if h.shape[2] * h.shape[3] > 1 else torch.zeros_like(
                h[:, :, 0, 0])]
        out.append(torch.cat(feats, 1))
    return torch.cat(out).double().numpy()


FEATURES = {"blind-pixels": pixel_stats, "blind-thumbnail": thumbnails, "blind-reference": reference_features}


def blind_features(pool: AuditPool, order: np.ndarray) -> dict[str, np.ndarray]:
    """{blind classifier: features [len(order), D]} of the pool's images (raw uint8, never normalised for the
    audited model: the baseline must not depend on anything the model's owner chose)."""
    x = pool.x[torch.as_tensor(order, device=pool.x.device)].cpu()
    # in chunks: pixel_stats holds float64 copies of every pixel (large images would not fit at once)
    return {k: np.concatenate([f(x[s:s + CHUNK]) for s in range(0, len(x), CHUNK)]) for k, f in FEATURES.items()}


def _fit_score(feats: np.ndarray, rows: dict[str, np.ndarray], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                    np.ndarray]:
    """Fit members (1) vs E (0) on the MINT-training rows; scores of the held-out and of the training rows."""
    xt = np.concatenate([feats[rows["mint_train_members"]], feats[rows["external"]]])
    yt = np.r_[np.ones(len(rows["mint_train_members"])), np.zeros(len(rows["external"]))]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000, random_state=seed))
    clf.fit(xt, yt)
    xe = np.concatenate([feats[rows["eval_members"]], feats[rows["eval_nonmembers"]]])
    ye = np.r_[np.ones(len(rows["eval_members"])), np.zeros(len(rows["eval_nonmembers"]))]
    return clf.decision_function(xe), ye.astype(int), clf.decision_function(xt), yt.astype(int)


def run_blind(pool: AuditPool, split: Split, n_boot: int = 200, seed: int = 0) -> dict[str, BlindResult]:
    """Every blind classifier on the audit's split: same training sets, same held-out sets, same rank test;
    p-values Holm-adjusted over the blind family."""
    order = np.unique(np.concatenate([split[s] for s in BLIND_SETS]))
    rows = {s: np.searchsorted(order, split[s]) for s in BLIND_SETS}
    t0 = time.perf_counter()
    feats = blind_features(pool, order)
    shared = (time.perf_counter() - t0) / len(feats)
    out = {}
    for name, f in feats.items():
        t0 = time.perf_counter()
        s, lab, st, yt = _fit_score(f, rows, seed)
        m = membership_metrics(s, lab, st, yt, threshold=0.0, n_boot=n_boot, seed=seed)
        out[name] = BlindResult(name, BLIND[name], s, lab, st, yt, m, time.perf_counter() - t0 + shared,
                                test=rank_test(s[lab == 1], s[lab == 0]))
    for k, p in holm({k: r.test.p for k, r in out.items()}).items():
        out[k].p_holm = p
    return out


def what_differs(pool: AuditPool, split: Split, top: int = 3) -> list[tuple[str, float, float, float]]:
    """The pixel statistics that differ most between held-out members and non-members:
    [(name, held-out AUC, member median, non-member median)], strongest (|AUC - 0.5|) first. For the report:
    it says *what* to look at in the two sets, not whether they differ (that is the test's job)."""
    f = {}
    for s in ("eval_members", "eval_nonmembers"):
        x = pool.x[torch.as_tensor(split[s], device=pool.x.device)].cpu()
        f[s] = np.concatenate([pixel_stats(x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)])
    names = pixel_stat_names(int(pool.x.shape[1]))
    a, b = f["eval_members"], f["eval_nonmembers"]
    aucs = [rank_test(a[:, j], b[:, j]).auc for j in range(a.shape[1])]
    order = sorted(range(len(names)), key=lambda j: -abs(aucs[j] - 0.5))[:top]
    return [(names[j], aucs[j], float(np.median(a[:, j])), float(np.median(b[:, j]))) for j in order]
