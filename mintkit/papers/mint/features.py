"""Auxiliary Auditable Data: the audited model's activations at the four stages and its outcome.

docs/mint.md, "Auxiliary Auditable Data": the Vanilla model sees the per-channel spatial maximum of each
map, the CNN model the full maps of one layer (or of all four for its Combination).
"""
from __future__ import annotations

import pandas as pd
from torch import nn

from mintkit.core.splits import Split
from mintkit.methods.mint import set_features
from mintkit.papers.common import Context
from mintkit.papers.mint.params import LABELS, LAYERS, Params

TAP_ORDER = (*LAYERS, "outcome")


def taps_of(feature: str) -> tuple[str, ...]:
    """The taps a feature set reads: the four layers for 'combination', else the feature itself."""
    return LAYERS if feature == "combination" else (feature,)


def needed_taps(P: Params) -> tuple[list[str], list[str]]:
    """(taps reduced by max for the Vanilla model, taps kept as full maps for the CNN), in tap order.

    The outcome is always captured (one small vector per sample), whatever the feature sets.
    """
    vec = {t for f in P.feature_sets("mlp") for t in taps_of(f)} | {"outcome"}
    maps = {t for f in P.feature_sets("cnn") for t in taps_of(f)}
    return sorted(vec, key=TAP_ORDER.index), sorted(maps, key=TAP_ORDER.index)


def extract_features(ctx: Context, split: Split, model: nn.Module, P: Params) -> dict:
    """{'vec': {set: {tap: [n, C] float32}}, 'maps': {set: {tap: [n, C, H, W] float16}}} for the four MINT sets.

    One pass per set: taps the CNN needs are captured as full maps and their Vanilla maximum taken from them.
    """
    vec_taps, map_taps = needed_taps(P)
    taps = sorted(set(vec_taps) | set(map_taps), key=TAP_ORDER.index)
    reduce = {t: ("none" if t in map_taps else "max") for t in taps}
    raw = set_features(model, ctx.pool, split, taps, ctx.device, reduce=reduce)
    vec = {s: {t: (f[t].float().amax(dim=(2, 3)) if t in map_taps and f[t].ndim == 4 else f[t].float())
               for t in vec_taps} for s, f in raw.items()}
    maps = {s: {t: f[t] for t in map_taps} for s, f in raw.items()}
    return {"vec": vec, "maps": maps}


def feature_shapes(feats: dict) -> pd.DataFrame:
    """Tap -> shape of the captured features per sample, as each MINT model sees them."""
    s = "eval_members"
    rows = [{"tap": t, "label": LABELS[t], "vanilla (max per channel)": tuple(v.shape[1:])}
            for t, v in feats["vec"][s].items()]
    df = pd.DataFrame(rows).set_index("tap")
    df["cnn (full map)"] = [tuple(feats["maps"][s][t].shape[1:]) if t in feats["maps"][s] else "-" for t in df.index]
    return df
