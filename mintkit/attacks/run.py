"""Per-sample scores and membership metrics of each requested attack on one split, given the reference models.

:func:`score_attacks` (called by the one entry point, :func:`mintkit.attacks.pipeline.audit_attacks`) scores
``split['eval_members']`` + ``split['eval_nonmembers']`` with each attack and
measures them with :func:`mintkit.core.metrics.membership_metrics`; every fitted part (Song & Mittal's
thresholds, Salem's classifier, LiRA's global σ, RMIA's population) and every calibrated threshold comes
from data that is not evaluated (see :mod:`mintkit.attacks.references` and docs/attacks.md).

==============  =====================  ==============  =====================================================
name            label (results rows)   references      decision threshold for ``accuracy``
==============  =====================  ==============  =====================================================
salem           Salem et al.           shadow = ref 0  0 (MLP probability 0.5)
yeom            Yeom et al.            none            calibrated on calibration data
song            Song et al.            shadow = ref 0  0 (each class's own τ)
ye              Ye et al.              OUT models      calibrated
watson          Watson et al.          OUT models      calibrated
lira-offline    LiRA (offline)         OUT models      calibrated
lira-online     LiRA (online)          IN and OUT      0 (likelihood ratio 1)
rmia-offline    RMIA (offline)         OUT models      calibrated
rmia-online     RMIA (online)          IN and OUT      calibrated
==============  =====================  ==============  =====================================================

``accuracy_calibrated`` is always at the threshold that maximises balanced accuracy on the
calibration data. With online reference models, the label of every attack that reads them and is not
online by design says "online refs" ("Watson et al. (online refs)", "LiRA (offline, online refs)"): its
shadow/OUT models were drawn from data holding the evaluated samples (each sample still only meets models
that are OUT for it).
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mintkit.attacks import calibrated, lira, rmia, shadow
from mintkit.attacks.references import ReferenceModels, calibration_sets
from mintkit.attacks.signals import Signals, check_queries, model_signals, p_true_from_phi
from mintkit.core.data import Pool
from mintkit.core.metrics import membership_metrics
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split
from mintkit.core.thresholds import calibrate_threshold
from mintkit.methods.loss import loss_scores

ATTACKS = ("salem", "yeom", "song", "ye", "watson", "lira-offline", "lira-online", "rmia-offline", "rmia-online")
OFFLINE_ATTACKS = ("salem", "yeom", "song", "ye", "watson", "lira-offline", "rmia-offline")
ONLINE_ATTACKS = ("lira-online", "rmia-online")
LABELS = {"salem": "Salem et al.", "yeom": "Yeom et al.", "song": "Song et al.", "ye": "Ye et al.",
          "watson": "Watson et al.", "lira-offline": "LiRA (offline)", "lira-online": "LiRA (online)",
          "rmia-offline": "RMIA (offline)", "rmia-online": "RMIA (online)"}
NATURAL_THRESHOLD = {"salem": 0.0, "song": 0.0, "lira-online": 0.0}
PARTS = ("eval_members", "eval_nonmembers", "calib_members", "calib_nonmembers", "population")


@dataclass
class AttackData:
    """Signals of the audited model and the reference models on the scored samples U [n] (pool indices),
    laid out as the contiguous parts of PARTS (``part(name)`` gives their positions)."""

    indices: np.ndarray
    sizes: dict[str, int]
    target: Signals
    refs: list[Signals]
    inside: np.ndarray                 # [k, n]
    mode: str | None
    num_classes: int
    seed: int
    seconds: dict[str, float] = field(default_factory=dict)

    def part(self, name: str) -> np.ndarray:
        """Positions [n_part] of one of PARTS, or of 'unevaluated' (calibration + population samples)."""
        if name == "unevaluated":
            return np.concatenate([self.part(p) for p in PARTS[2:]])
        start = sum(self.sizes[p] for p in PARTS[:PARTS.index(name)])
        return np.arange(start, start + self.sizes[name])

    @property
    def ref_phi(self) -> np.ndarray:
        return np.stack([r.phi for r in self.refs])           # [k, n, A]

    @property
    def ref_loss(self) -> np.ndarray:
        return np.stack([r.loss for r in self.refs])          # [k, n]


def collect_signals(model: nn.Module, pool: Pool, split: Split, refs: ReferenceModels | None, device: torch.device,
                    queries: tuple[str, ...] = ("identity",), top_k: int = 3, max_calibration: int | None = 1000,
                    seed: int = 0) -> AttackData:
    """Signals on eval members, eval non-members, calibration members / non-members and (with references)
    the plan's population sample, for the audited model and every reference model."""
    if refs is None:
        calib, population = calibration_sets(split, max_calibration, seed), np.empty(0, np.int64)
    else:
        refs.plan.check(split)
        calib, population = refs.plan.calibration, refs.plan.population_sample
    parts = {"eval_members": split["eval_members"], "eval_nonmembers": split["eval_nonmembers"],
             "calib_members": calib["members"], "calib_nonmembers": calib["nonmembers"], "population": population}
    idx = np.concatenate([parts[p] for p in PARTS]).astype(np.int64)
    if len(np.unique(idx)) != len(idx):
        raise ValueError("evaluated, calibration and population samples overlap; the split or plan is broken")
    t0 = time.perf_counter()
    target = model_signals(model, pool, idx, device, queries, top_k)
    t1 = time.perf_counter()
    ref_signals = [model_signals(m, pool, idx, device, queries, top_k) for m in (refs.models if refs else [])]
    inside = refs.plan.membership(idx) if refs else np.zeros((0, len(idx)), bool)
    return AttackData(idx, {p: len(parts[p]) for p in PARTS}, target, ref_signals, inside,
                      refs.mode if refs else None, pool.num_classes, seed,
                      {"target_signals": t1 - t0, "reference_signals": time.perf_counter() - t1})


# ------------------------------------------------------------------------------------------ attacks
# each takes the data and the positions to score, returns scores [len(at)]

def _yeom(d: AttackData, at: np.ndarray) -> np.ndarray:
    return loss_scores(d.target.loss[at])


def _song(d: AttackData, at: np.ndarray, fit_on: str = "shadow", shadow_model: int = 0,
          min_per_side: int = 5) -> np.ndarray:
    """fit_on: 'shadow' (τ from reference model ``shadow_model`` on its IN/OUT unevaluated samples, as the
    paper) or 'calibration' (τ from the audited model's own calibration members / non-members)."""
    if fit_on == "shadow":
        p = d.part("unevaluated")
        sig, is_in = d.refs[shadow_model], d.inside[shadow_model, p]
        tau = shadow.fit_class_thresholds(sig.mentr[p], sig.labels[p], is_in, d.num_classes, min_per_side)
    elif fit_on == "calibration":
        cm, cn = d.part("calib_members"), d.part("calib_nonmembers")
        c = np.concatenate([cm, cn])
        is_in = np.r_[np.ones(len(cm), bool), np.zeros(len(cn), bool)]
        tau = shadow.fit_class_thresholds(d.target.mentr[c], d.target.labels[c], is_in, d.num_classes, min_per_side)
    else:
        raise ValueError(f"song: unknown fit_on {fit_on!r}; valid: shadow, calibration")
    return shadow.song_scores(d.target.mentr[at], d.target.labels[at], tau)


def _salem(d: AttackData, at: np.ndarray, shadow_model: int = 0, hidden: int = 64, max_iter: int = 500) -> np.ndarray:
    p = d.part("unevaluated")
    clf = shadow.fit_salem(d.refs[shadow_model].top[p], d.inside[shadow_model, p], hidden, max_iter, d.seed)
    return shadow.salem_scores(clf, d.target.top[at])


def _watson(d: AttackData, at: np.ndarray) -> np.ndarray:
    return calibrated.watson_scores(d.target.loss[at], d.ref_loss[:, at], ~d.inside[:, at])


def _ye(d: AttackData, at: np.ndarray, interpolate: bool = False) -> np.ndarray:
    return calibrated.ye_scores(d.target.loss[at], d.ref_loss[:, at], ~d.inside[:, at], interpolate)


def _global_sd(d: AttackData) -> tuple[float, float]:
    p = d.part("unevaluated")
    return lira.pooled_sd(d.ref_phi[:, p], d.inside[:, p])


def _lira_online(d: AttackData, at: np.ndarray, min_per_sample: int = lira.MIN_PER_SAMPLE,
                 center: str = "mean") -> np.ndarray:
    """center: μ_in / μ_out as the mean (ours) or the median (Carlini et al.'s code), lira.CENTERS."""
    return lira.lira_online(d.target.phi[at], d.ref_phi[:, at], d.inside[:, at], _global_sd(d), min_per_sample,
                            center)


def _lira_offline(d: AttackData, at: np.ndarray, min_per_sample: int = lira.MIN_PER_SAMPLE,
                  center: str = "mean") -> np.ndarray:
    return lira.lira_offline(d.target.phi[at], d.ref_phi[:, at], d.inside[:, at], _global_sd(d)[1], min_per_sample,
                             center)


def _rmia(d: AttackData, at: np.ndarray, online: bool, gamma: float, a: float) -> np.ndarray:
    p = d.part("population")
    pt, pr = p_true_from_phi(d.target.phi), p_true_from_phi(d.ref_phi)
    return rmia.rmia_scores(pt[at], pr[:, at], d.inside[:, at], pt[p], pr[:, p], d.inside[:, p], online, gamma, a)


def _rmia_online(d: AttackData, at: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    return _rmia(d, at, True, gamma, 1.0)


def _rmia_offline(d: AttackData, at: np.ndarray, gamma: float = 1.0, a: float = 0.3) -> np.ndarray:
    return _rmia(d, at, False, gamma, a)


SCORERS = {"salem": _salem, "yeom": _yeom, "song": _song, "ye": _ye, "watson": _watson,
           "lira-offline": _lira_offline, "lira-online": _lira_online, "rmia-offline": _rmia_offline,
           "rmia-online": _rmia_online}


def attack_options(name: str) -> dict:
    """Keyword options of an attack and their defaults."""
    sig = inspect.signature(SCORERS[name])
    return {k: v.default for k, v in list(sig.parameters.items())[2:]}


def label_of(name: str, mode: str | None) -> str:
    """The results-row label; attacks reading online reference models that are not online by design say so."""
    label = LABELS[name]
    if mode == "online" and name != "yeom" and name not in ONLINE_ATTACKS:
        return f"{label[:-1]}, online refs)" if label.endswith(")") else f"{label} (online refs)"
    return label


def check_request(attacks: tuple[str, ...], refs: ReferenceModels | None, options: dict | None) -> None:
    """Clear errors for unknown attacks / options and for attacks the references cannot serve."""
    bad = [a for a in attacks if a not in ATTACKS]
    if bad:
        raise ValueError(f"unknown attack(s) {bad}; valid: {', '.join(ATTACKS)}")
    need = [a for a in attacks if a != "yeom"]
    if need and refs is None:
        raise ValueError(f"attacks {need} need reference models (mintkit.attacks.references); only 'yeom' runs without")
    online = [a for a in attacks if a in ONLINE_ATTACKS]
    if online and refs is not None and refs.mode != "online":
        raise ValueError(f"attacks {online} need online reference models (plan_references(mode='online')); "
                         f"these are {refs.mode}")
    for a, opts in (options or {}).items():
        if a not in attacks:
            raise ValueError(f"options given for {a!r}, which is not requested ({', '.join(attacks)})")
        unknown = [k for k in opts if k not in attack_options(a)]
        if unknown:
            raise ValueError(f"{a}: unknown option(s) {unknown}; valid: {attack_options(a)}")
    if "lira-online" in attacks and refs is not None and refs.plan.k < 4:
        raise ValueError(f"lira-online estimates σ from samples with >= 2 IN and 2 OUT models: k >= 4 (got {refs.plan.k})")
    for a in ("salem", "song"):
        j = (options or {}).get(a, {}).get("shadow_model", 0)
        if a in attacks and refs is not None and not 0 <= j < refs.plan.k:
            raise ValueError(f"{a}: shadow_model={j} but there are {refs.plan.k} reference models")


@dataclass
class AttackResult(MembershipResult):
    """One attack on one split: the fields of every membership method (seconds = fit + score; the shared signal
    costs are in AttackData) plus the reference mode it read and the options it ran with."""

    reference_mode: str | None = None
    options: dict = field(default_factory=dict)


def score_attack(d: AttackData, name: str, options: dict | None = None, n_boot: int = 200,
                 seed: int = 0) -> AttackResult:
    """Run one attack on prepared signals: score eval and calibration samples, then the metrics."""
    opts = attack_options(name) | dict(options or {})
    t0 = time.perf_counter()
    em, en = d.part("eval_members"), d.part("eval_nonmembers")
    cm, cn = d.part("calib_members"), d.part("calib_nonmembers")
    s = SCORERS[name](d, np.concatenate([em, en, cm, cn]), **opts)
    seconds = time.perf_counter() - t0
    n_eval = len(em) + len(en)
    scores, calib_scores = s[:n_eval], s[n_eval:]
    labels = np.r_[np.ones(len(em), int), np.zeros(len(en), int)]
    calib_labels = np.r_[np.ones(len(cm), int), np.zeros(len(cn), int)]
    thr = NATURAL_THRESHOLD.get(name)
    if thr is None:
        thr = calibrate_threshold(calib_scores, calib_labels)
    m = membership_metrics(scores, labels, calib_scores, calib_labels, threshold=thr, n_boot=n_boot, seed=seed)
    return AttackResult(name, label_of(name, d.mode), scores, labels, calib_scores, calib_labels, m, seconds,
                        d.mode, opts)


def score_attacks(model: nn.Module, pool: Pool, split: Split, refs: ReferenceModels | None, device: torch.device,
                attacks: tuple[str, ...] | None = None, options: dict[str, dict] | None = None,
                queries: tuple[str, ...] = ("identity",), top_k: int = 3, max_calibration: int | None = 1000,
                n_boot: int = 200, seed: int = 0) -> tuple[dict[str, AttackResult], AttackData]:
    """Score the split's evaluated samples with each attack; returns ({name: AttackResult}, AttackData).

    attacks: names from ATTACKS (default: OFFLINE_ATTACKS, plus ONLINE_ATTACKS with online references;
    only 'yeom' without references). options: {name: {option: value}} (see ``attack_options(name)``).
    queries: 'identity' first, then augmentations ('hflip'), averaged by LiRA and RMIA only.
    top_k: sorted posteriors Salem's classifier reads (the paper: 3).
    max_calibration: calibration members / non-members per class when no references fix them.
    """
    if attacks is None:
        attacks = ("yeom",) if refs is None else OFFLINE_ATTACKS + (ONLINE_ATTACKS if refs.mode == "online" else ())
    attacks = tuple(attacks)
    queries = check_queries(queries)
    check_request(attacks, refs, options)
    d = collect_signals(model, pool, split, refs, device, queries, top_k, max_calibration, seed)
    return {a: score_attack(d, a, (options or {}).get(a), n_boot, seed) for a in attacks}, d
