"""gMINT's MINT model (MLP 128-128-64-1) on modifier features: the grid of Tables 1-2, the rule
comparison, and Table 3 (gMINT vs activation MINT vs the loss threshold on the same audited model).

docs/gmint.md, "The MINT model and epoch selection" and "Tables".
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from mintkit.core.result import MembershipResult
from mintkit.core.splits import Split
from mintkit.methods import registry
from mintkit.methods.loss import loss_baseline
from mintkit.methods.mint import MINT_SETS, MintData, MintResult, run_mint, set_features
from mintkit.methods.modifiers import Modifiers
from mintkit.models.audited import AuditedInfo
from mintkit.models.classifiers import GMINT_MLP
from mintkit.papers.common import Context
from mintkit.papers.gmint.params import Params, condition, fraction_label, setup_label
from mintkit.papers.gmint.splits import mint_sets

MINT_MLP = GMINT_MLP  # the paper's FC 128-128-64-1 (mintkit.models.classifiers, shared with the audit)
ACTIVATION_TAPS = ["entry", "middle", "output"]  # Table 3's activation MINT: the three stage taps, max-reduced

Features = Callable[[np.ndarray], torch.Tensor]  # pool indices [n] -> features [n, D]


def _xy(get: Features, pos: np.ndarray, neg: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([get(pos), get(neg)]), torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).long()


def fit_eval(device: torch.device, get: Features, sets: dict[str, np.ndarray], P: Params,
             seed: int | None = None, name: str = "gmint", label: str = "gMINT") -> MintResult:
    """Fit the MINT MLP on features ``get(indices)`` of the MINT-training sets and score the evaluation sets,
    through the one MINT fit (`mintkit.methods.mint.run_mint`).

    The kept epoch follows ``P.selection``: 'val' = best accuracy on a stratified slice (``val_fraction``)
    of the MINT-training sets, which then do not train; 'paper' = best on the evaluation set (the paper's
    choice, optimistic); 'last'. The calibrated threshold comes from the validation slice ('val') or the
    training data, never from evaluation data. The result's scores are [n_eval]; n_train counts the samples
    that trained (the validation slice left out).
    """
    x, y = _xy(get, sets["mint_train_members"], sets["external"])  # members first, each side sorted
    xe, ye = _xy(get, sets["eval_members"], sets["eval_nonmembers"])
    return run_mint(MintData(x, y, xe, ye), "mlp", device, P.mint_epochs, P.seed if seed is None else seed,
                    lr=P.mint_lr, batch_size=P.mint_batch_size, n_boot=P.n_boot, model_kw=MINT_MLP,
                    selection=P.selection, val_fraction=P.val_fraction, name=name, label=label)


def _add(ctx: Context, res: MembershipResult, info: AuditedInfo, P: Params, **keys: str) -> None:
    ctx.run.add_metrics(res.metrics, audited=info.accuracy, **P.labels, **keys)


def _summary_row(res: MembershipResult) -> dict:
    m = res.metrics
    return {"accuracy": m["accuracy"], "auc": m["auc"],
            "acc_ci": f"[{m['accuracy_ci_low']:.3f}, {m['accuracy_ci_high']:.3f}]",
            "tpr@1%fpr": m["tpr_at_1pct_fpr"]}


def grid(ctx: Context, split: Split, mods: Modifiers, info: AuditedInfo, P: Params
         ) -> tuple[pd.DataFrame, dict]:
    """A MINT MLP per setup x reduction x fraction for ``P.rule``: (tidy table, {(setup, reduction, f): fit}).

    Rows go to the run: Table 1 (every reduction; Combined labelled "All" as printed there) and Table 2 (MEAN).
    """
    out, rows = {}, []
    for f in P.fractions:
        sets = mint_sets(split, f, P.seed)
        for su in P.setups:
            layers = P.setup_layers(su)
            for red in P.reductions:
                res = fit_eval(ctx.device, lambda i: mods.get(layers, P.rule, red, i), sets, P)
                out[(su, red, f)] = res
                rows.append({"setup": setup_label(su), "reduction": red.upper(), "data": fraction_label(f),
                             "n_train": res.n_train, **_summary_row(res),
                             "best_epoch": res.history.get("best_epoch"), "seconds": res.seconds})
                label = "All" if su == "combined" else setup_label(su)
                _add(ctx, res, info, P, table="Table 1", setup=label, condition=condition(red, f))
                if red == "mean":
                    _add(ctx, res, info, P, table="Table 2", setup=setup_label(su), condition=condition(red, f))
    return pd.DataFrame(rows), out


def compare_rules(ctx: Context, split: Split, mods: Modifiers, info: AuditedInfo, P: Params) -> pd.DataFrame:
    """Combined / MEAN / D100 for every rule computed: the effect of the paper's open choice of optimiser.

    One row per rule (accuracy, AUC, interval, TPR at 1% FPR, scores, labels); empty when ``P.compare_rules``
    is off (the notebook then has a frame, not None, to show).
    """
    if not P.compare_rules:
        return pd.DataFrame(columns=["rule", "accuracy", "auc", "acc_ci", "tpr@1%fpr", "scores", "labels"])
    sets = mint_sets(split, 1.0, P.seed)
    layers = P.setup_layers("combined")
    rows = []
    for r in mods.rules:
        res = fit_eval(ctx.device, lambda i: mods.get(layers, r, "mean", i), sets, P)
        rows.append({"rule": r, **_summary_row(res), "scores": res.scores, "labels": res.labels})
        _add(ctx, res, info, P, table="Rules", setup="Combined", condition="MEAN;D100", feature=f"rule={r}")
    return pd.DataFrame(rows)


def activation_features(ctx: Context, split: Split, model: nn.Module) -> Features:
    """Per-channel max of the entry/middle/output activations of every sample of the four MINT sets,
    from one extraction pass: a lookup pool indices [n] -> [n, C_entry + C_middle + C_output]."""
    feats = set_features(model, ctx.pool, split, ACTIVATION_TAPS, ctx.device, reduce="max")
    order = np.concatenate([split[s] for s in feats])
    table = torch.cat([torch.cat([feats[s][t].flatten(1).float() for t in ACTIVATION_TAPS], 1) for s in feats])
    return _lookup(order, table, len(ctx.pool))


def _lookup(order: np.ndarray, table: torch.Tensor, n_pool: int) -> Features:
    """pool indices [n] -> rows [n, D] of `table`, whose row r holds pool index order[r]."""
    row = np.full(n_pool, -1)
    row[order] = np.arange(len(order))
    return lambda idx: table[torch.as_tensor(row[np.asarray(idx)], dtype=torch.long)]


def gradnorm_features(ctx: Context, split: Split, model: nn.Module, P: Params) -> Features:
    """The gradient-norm MINT's features (mintkit.methods.registry 'gradnorm', docs/gradnorm.md) of every sample of
    the four MINT sets: ‖∂CE/∂W‖₂ at the entry, middle and output layers, a lookup pool indices [n] -> [n, 3]."""
    order = np.unique(np.concatenate([split[s] for s in MINT_SETS]))
    x = registry.get("gradnorm").features(registry.Inputs(model, ctx.pool, order, list(P.layers.values()),
                                                          ctx.device))
    return _lookup(order, x, len(ctx.pool))


def table3(ctx: Context, split: Split, model: nn.Module, info: AuditedInfo, cells: dict, P: Params
           ) -> tuple[pd.DataFrame, dict]:
    """gMINT (Combined, MEAN, smallest fraction run) vs activation MINT (the same MLP on the per-channel max
    of three stage taps, D100) vs the loss-threshold attack, on the same audited model and split; with
    ``P.gradnorm`` also the gradient-norm MINT (the same MLP on one gradient norm per gMINT layer, D100)."""
    act = fit_eval(ctx.device, activation_features(ctx, split, model), mint_sets(split, 1.0, P.seed), P,
                   name="mint", label="MINT (activations)")
    loss = loss_baseline(model, ctx.pool, split, ctx.device, n_boot=P.n_boot)
    f = min(P.fractions)
    red = "mean" if "mean" in P.reductions else P.reductions[0]
    g = cells.get(("combined", red, f))
    out = {"MINT (activations)": act, "LOSS (Yeom et al.)": loss}
    if g is not None:
        out[f"gMINT;{condition(red, f)}"] = g
    if P.gradnorm:  # after the other fits, so turning it on leaves their numbers as they were
        gn = registry.get("gradnorm")
        out["gradient-norm MINT"] = fit_eval(ctx.device, gradnorm_features(ctx, split, model, P),
                                             mint_sets(split, 1.0, P.seed), P, name=gn.name,
                                             label=gn.describe(list(P.layers.values())))
        _add(ctx, out["gradient-norm MINT"], info, P, table="Table 3", setup="", condition="gradient-norm MINT")
    _add(ctx, act, info, P, table="Table 3", setup="", condition="MINT")
    _add(ctx, out["LOSS (Yeom et al.)"], info, P, table="Table 3", setup="", condition="LOSS (Yeom et al.)")
    if g is not None:
        _add(ctx, g, info, P, table="Table 3", setup="Combined", condition=f"gMINT;{condition(red, f)}")
    rows = [{"method": k, "accuracy": v.metrics["accuracy"], "auc": v.metrics["auc"],
             "tpr@1%fpr": v.metrics["tpr_at_1pct_fpr"], **info.accuracy} for k, v in out.items()]
    return pd.DataFrame(rows), out
