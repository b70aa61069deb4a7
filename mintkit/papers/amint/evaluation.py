"""aMINT's evaluation: both protocols scored on ONE trained model, with the audited accuracies and the
loss-threshold attack on the same weights (docs/amint.md, "Protocols" and "Evaluation").

Per model: MINT scores of the validation slice (the calibrated threshold's data, never evaluation data),
of the evaluation non-members (shared by both protocols) and of each protocol's evaluated members; one
forward pass of the audited network gives the audited accuracies and the per-sample losses of both
protocols' loss attacks (mintkit.methods.loss: threshold calibrated on the MINT-training members that are not
evaluated and on E).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from torch import nn

from mintkit.attacks.report import INTERVAL_METRICS
from mintkit.core.fit import DID_NOT_TRAIN, check_classifier, check_head, require_fit
from mintkit.core.metrics import METRICS, membership_metrics
from mintkit.core.records import Run
from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split
from mintkit.core.train import predict, sample_losses, signal_precision
from mintkit.methods.loss import loss_attack, loss_sets
from mintkit.methods.mplus import MintPlus, mint_scores
from mintkit.papers.amint.params import YEOM, Params, setup_label
from mintkit.papers.amint.splits import protocol_views, training_sets
from mintkit.papers.common import Context


@dataclass
class MplusResult(MembershipResult):
    """M+'s MINT head under one protocol: the fields of every membership method (calibration = the validation
    slice) plus the audited accuracies {audited_train_accuracy, audited_accuracy}, the loss-threshold attack on
    the same audited weights and the oracle accuracy (optimistic, never reported). ``seconds`` is the whole
    evaluation, shared by the protocols."""

    audited: dict = field(default_factory=dict)
    loss: MembershipResult | None = None
    oracle_accuracy: float = float("nan")


def oracle_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Best accuracy over all thresholds ON THE EVALUATION DATA: optimistic, shown for contrast, never reported."""
    s, y = np.asarray(scores), np.asarray(labels).astype(bool)
    acc = [((s >= x) == y).mean() for x in np.unique(s)]
    return float(max(acc)) if acc else float("nan")


def _labelled(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.r_[pos, neg], np.r_[np.ones(len(pos)), np.zeros(len(neg))].astype(int)


def audited_pass(ctx: Context, audited: nn.Module, split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One eval-mode pass of the audited network over D, E and the evaluated non-members (every sample the
    audited accuracies and the loss attack of both protocols read): (pool indices [N] sorted, per-sample
    cross-entropy [N], correct top-1 [N] bool)."""
    idx = np.unique(np.concatenate([split["members"], split["external"], split["eval_nonmembers"]]))
    logits, y = predict(audited, ctx.pool, idx, ctx.device, precision=signal_precision(ctx.device))
    return idx, sample_losses(logits, y), (logits.argmax(1) == y).numpy()


def evaluate(ctx: Context, split: Split, model: MintPlus, P: Params) -> dict[str, MplusResult]:
    """{protocol: MplusResult} for every protocol of the split, all from `model`'s one set of weights.

    metrics: threshold 0.5 and the threshold calibrated on the validation slice; AUC, TPR at low FPR,
    intervals, counts. audited: train accuracy on D, test accuracy on the evaluation non-members.
    scores [n_mem + n_non] / labels (1 = member).
    """
    t0 = time.perf_counter()
    dev, pool = ctx.device, ctx.pool
    sets = training_sets(split)
    calib, calib_y = _labelled(mint_scores(model, pool, sets["val_members"], dev),
                               mint_scores(model, pool, sets["val_nonmembers"], dev))
    s_non = mint_scores(model, pool, split["eval_nonmembers"], dev)
    idx, loss, correct = audited_pass(ctx, model.audited, split)
    rows = lambda s: np.searchsorted(idx, s)  # noqa: E731 (pool indices -> positions in the pass)
    aud = {"audited_train_accuracy": float(correct[rows(split["members"])].mean()),
           "audited_accuracy": float(correct[rows(split["eval_nonmembers"])].mean())}
    if P.fit_check:  # the task half of M+ must have learned D, as any audited model (mintkit.core.fit)
        require_fit(check_classifier(aud["audited_train_accuracy"], pool.num_classes, [], "the active audited model"),
                    f"Recipe: lr {P.lr:g}, at most {P.audited_epochs} joint epochs: train longer or lower lr")
    # the fit guard reads the head on what its MINT loss trained on (mintkit.core.fit): the paper protocol's
    # evaluated members are among them, so a head at chance there did not train, whatever heldout reads
    fit = check_head(*_labelled(mint_scores(model, pool, sets["mint_members"], dev),
                                mint_scores(model, pool, sets["external"], dev)))
    if not fit.fitted:
        print(f"M+ MINT head ({P.setup}): {DID_NOT_TRAIN}: {fit.reason}")
    out = {}
    for protocol, view in protocol_views(split).items():
        s, y = _labelled(mint_scores(model, pool, view["eval_members"], dev), s_non)
        m = membership_metrics(s, y, calib, calib_y, n_boot=P.n_boot, seed=P.seed) | fit.metrics()
        base = loss_attack({k: loss[rows(i)] for k, i in loss_sets(view).items()}, n_boot=P.n_boot, seed=P.seed)
        out[protocol] = MplusResult("mplus", "M+ MINT head", s, y, calib, calib_y, m, audited=aud, loss=base,
                                    oracle_accuracy=oracle_accuracy(s, y))
    seconds = time.perf_counter() - t0
    for r in out.values():
        r.seconds = seconds
    return out


def record(run: Run, P: Params, protocol: str, condition: str, ev: MplusResult, seconds: dict[str, float]) -> None:
    """Rows of one (protocol, condition) result: Tables 1-3 keys, the audited accuracies, Yeom et al. (the one
    loss-threshold attack, mintkit.methods.loss: the attacks of mintkit.papers.amint.attacks leave it to this row),
    timings."""
    keys = dict(**P.labels, protocol=protocol)
    st = setup_label(P.setup)
    tables = ("Table 1", "Table 2", "Table 3") if condition == "Active" else ("Table 2", "Table 3")
    for t in tables:
        run.add_metrics(ev.metrics, ev.audited, table=t, setup=st, condition=condition, **keys)
    # the passive model is the same in every setup run (no setup: the report keeps one of the repeats); M+ is
    # trained per setup, so its own loss row carries the setup or the setups' rows would collide
    yeom, yeom_setup = (YEOM, "") if condition == "Passive" else (f"{YEOM} (on M+)", st)
    # the passive model's row stands among the attacks' rows of Table 3: with their bootstrap intervals too
    names = (*METRICS, *INTERVAL_METRICS) if condition == "Passive" else None
    run.add_metrics(ev.loss.metrics, ev.audited, metric_names=names, table="Table 3", setup=yeom_setup,
                    condition=yeom, **keys)
    tag = f"{condition.lower()}_{protocol}"
    run.save_scores(**{f"{tag}_scores": ev.scores, f"{tag}_labels": ev.labels, f"{tag}_loss_scores": ev.loss.scores})
    for stage, sec in seconds.items():
        run.add(f"time_{stage}", sec, table="", setup=st, condition=condition, protocol=protocol, **P.labels)


def evaluate_all(ctx: Context, split: Split, trained: dict[str, tuple[MintPlus, dict]], P: Params
                 ) -> dict[tuple[str, str], MplusResult]:
    """Score every trained model ({condition: (model, history)}) under every protocol, write rows and
    scores: {(protocol, condition): result}."""
    results = {}
    for cond, (model, hist) in trained.items():
        per_protocol = evaluate(ctx, split, model, P)
        for protocol, ev in per_protocol.items():
            secs = {f"train_{cond.lower()}": hist["seconds"], f"evaluate_{cond.lower()}": ev.seconds}
            if "seconds" in hist.get("audited", {}):
                secs["train_audited_alone"] = hist["audited"]["seconds"]
            record(ctx.run, P, protocol, cond, ev, secs)
            results[(protocol, cond)] = ev
    return results


def summary(results: dict) -> pd.DataFrame:
    """One row per (protocol, condition): MINT accuracy @0.5 / calibrated, AUC, Aud, train accuracy, gap,
    the loss attack and the oracle accuracy (optimistic, shown for contrast only)."""
    rows = []
    for (protocol, cond), ev in results.items():
        m, a = ev.metrics, ev.audited
        rows.append({"protocol": protocol, "condition": cond, "mint_acc@0.5": m["accuracy"],
                     "ci95": f"[{m['accuracy_ci_low']:.2f}, {m['accuracy_ci_high']:.2f}]",
                     "mint_acc_calibrated": m["accuracy_calibrated"], "auc": m["auc"],
                     "tpr@1%fpr": m["tpr_at_1pct_fpr"], "Aud (test acc)": a["audited_accuracy"],
                     "train acc": a["audited_train_accuracy"],
                     "gen. gap": a["audited_train_accuracy"] - a["audited_accuracy"],
                     "loss attack acc": ev.loss.metrics["accuracy"],
                     "n members/non": f"{m['n_eval_members']}/{m['n_eval_nonmembers']}",
                     "oracle acc (optimistic, not reported)": ev.oracle_accuracy})
    return pd.DataFrame(rows)


def verdict(results: dict) -> pd.DataFrame:
    """Active minus passive MINT accuracy@0.5 per protocol, with both 95% intervals: does active ≫ passive hold?

    'holds' needs the active interval's lower end above the passive interval's upper end; reported,
    never tuned towards."""
    rows = []
    for protocol in dict.fromkeys(p for p, _ in results):
        a, p = results.get((protocol, "Active")), results.get((protocol, "Passive"))
        if a is None or p is None:
            continue
        ma, mp = a.metrics, p.metrics
        rows.append({"protocol": protocol, "active": ma["accuracy"], "passive": mp["accuracy"],
                     "difference": ma["accuracy"] - mp["accuracy"],
                     "active > chance": ma["accuracy_ci_low"] > 0.5,
                     "active >> passive (CIs apart)": ma["accuracy_ci_low"] > mp["accuracy_ci_high"],
                     "Aud active / passive": f"{a.audited['audited_accuracy']:.3f} / "
                                             f"{p.audited['audited_accuracy']:.3f}"})
    return pd.DataFrame(rows)

