"""MINT models fitted on the features: every feature set of every family, the size sweep, the control.

docs/mint.md, "MINT models" and "Amount of MINT-training data". Every fit goes through
`core.run_mint`: balanced batches, the calibrated threshold chosen on MINT-training scores, the
metrics on the held-out evaluation members and non-members.
"""
from __future__ import annotations

import torch
from torch import nn

from mintkit.core.splits import Split
from mintkit.methods.mint import MintData, MintResult, mint_data, run_mint
from mintkit.models.classifiers import CNNCombination
from mintkit.papers.common import Context
from mintkit.papers.mint.features import extract_features, taps_of
from mintkit.papers.mint.params import LAYERS, Params

HEADLINE = (("mlp", "combination"), ("cnn", "stage1"))  # the models of Tables 3/5 (and the control)
CONTROL_FITS = (("mlp", "combination"), ("mlp", "outcome"), ("cnn", "stage1"))


def subsample(d: MintData, fraction: float, seed: int) -> MintData:
    """Keep `fraction` of each class of the MINT-training data (at least 2 per class); evaluation untouched."""
    if fraction >= 1.0:
        return d
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in (0, 1):
        idx = torch.nonzero(d.y_train == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:max(2, round(len(idx) * fraction))]])
    k = torch.cat(keep).sort().values
    return MintData(d.x_train[k], d.y_train[k], d.x_eval, d.y_eval, dict(d.meta) | {"fraction": fraction})


def cnn_data(maps: dict, feature: str, combination: str) -> tuple[MintData, list[tuple[int, int, int]]]:
    """(MintData, shapes) for the CNN. One layer: its maps [N, C, H, W] (shapes empty). Combination 'branches':
    the four layers packed flat [N, sum C*H*W] with their (C, H, W) shapes for `CNNCombination`; 'stack': the
    maps resized (nearest) to the largest side and stacked on channels [N, sum C, S, S] (shapes empty)."""
    if feature != "combination":
        return mint_data(maps, [feature], flat=False), []
    shapes = [tuple(maps["eval_members"][t].shape[1:]) for t in LAYERS]
    if combination == "branches":
        return mint_data(maps, list(LAYERS), flat=True), shapes
    side = max(s[-1] for s in shapes)

    def stack(f: dict) -> dict:
        return {"stacked": torch.cat([nn.functional.interpolate(f[t].float(), size=(side, side), mode="nearest")
                                      .half() for t in LAYERS], 1)}
    return mint_data({s: stack(f) for s, f in maps.items()}, ["stacked"], flat=False), []


def cnn_layout(P: Params, channels: int) -> dict:
    """CNN MINT keywords: filters and dense width (C by default) scaled by sqrt(cnn_params_scale)."""
    w = P.cnn_width_scale
    return dict(filters=max(1, round(P.cnn_filters * w)), kernel=P.cnn_kernel, pool=P.cnn_pool,
                dense=max(1, round((P.cnn_dense or channels) * w)), dropout=P.mint_dropout,
                standardize=P.cnn_standardize)


def fit_one(device: torch.device, feats: dict, family: str, feature: str, P: Params, *,
            fraction: float | None = None) -> MintResult:
    """Train and evaluate one MINT model on `feats` (`extract_features`' dict): `run_mint`'s result, labelled
    with the paper's name of the fit (`P.fit_label`), its family and feature set.
    fraction: of the MINT-training data (default `P.data_fraction`).
    """
    fraction = P.data_fraction if fraction is None else fraction
    fit = dict(lr=P.mint_lr, batch_size=P.mint_batch_size, n_boot=P.n_boot)
    if family == "mlp":
        data = subsample(mint_data(feats["vec"], list(taps_of(feature))), fraction, P.seed)
        out = run_mint(data, "mlp", device, P.mint_epochs, P.seed, l1=P.mint_l1,
                       model_kw={"dropout": P.mint_dropout}, label=P.fit_label(family, feature), **fit)
    else:
        data, shapes = cnn_data(feats["maps"], feature, P.cnn_combination)
        data = subsample(data, fraction, P.seed)
        kw = cnn_layout(P, sum(s[0] for s in shapes) if shapes else int(data.x_train.shape[1]))
        model = CNNCombination(shapes, **kw) if shapes else None
        out = run_mint(data, "cnn", device, P.cnn_epochs, P.seed, model_kw=kw, model=model,
                       label=P.fit_label(family, feature), **(fit | {"lr": P.cnn_learning_rate}))
    out.family, out.feature = family, feature
    return out


def fit_all(ctx: Context, feats: dict, P: Params) -> dict:
    """{(family, feature): fit_one result} for every requested feature set of every family."""
    return {(fam, x): fit_one(ctx.device, feats, fam, x, P) for fam in P.families for x in P.feature_sets(fam)}


def size_sweep(ctx: Context, feats: dict, P: Params) -> dict:
    """Tables 3 and 5: {(family, feature, fraction): result} of the Vanilla Combination and the CNN on Conv
    Layer #1 at each fraction of `data_sweep` (times `data_fraction`; the full run comes from `fit_all`)."""
    which = [(f, x) for f, x in HEADLINE if P.fits(f, x)]
    return {(f, x, fr): fit_one(ctx.device, feats, f, x, P, fraction=fr * P.data_fraction)
            for fr in P.sweep_fractions for f, x in which}


def control_fits(P: Params) -> list[tuple[str, str]]:
    """(family, feature) pairs the control runs: the headline models and the outcome MLP (the MIA baseline), as
    far as this run fits them."""
    return [(f, x) for f, x in CONTROL_FITS if P.fits(f, x)]


def fit_control(ctx: Context, split: Split, cmodel: nn.Module | None, P: Params) -> dict:
    """{(family, feature): result} of the same MINT pipeline on the control model's activations ({} without one)."""
    if cmodel is None:
        return {}
    want = control_fits(P)
    sub = P.replace(mlp_features=",".join(x for f, x in want if f == "mlp"),
                    cnn_features=",".join(x for f, x in want if f == "cnn"))
    feats = extract_features(ctx, split, cmodel, sub)
    return {(f, x): fit_one(ctx.device, feats, f, x, sub) for f, x in want}
