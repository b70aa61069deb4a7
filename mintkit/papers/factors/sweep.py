"""One factor at a time: retrain the audited model per value, fit Vanilla MINT on every feature set, write rows.

docs/factors.md, "Pipeline". Every value of a factor is a full training of the audited model (cached
under a key of everything that shapes it, so values equal to the base setting reuse the base model).
"""
from __future__ import annotations

import time

import pandas as pd
import torch

from mintkit.core.metrics import METRICS
from mintkit.core.null import null_training
from mintkit.core.records import RESULT_COLUMNS
from mintkit.core.splits import Split, build_split
from mintkit.core.train import TrainConfig
from mintkit.methods.mint import mint_data, run_mint, set_features
from mintkit.models import audited as shared
from mintkit.models.audited import AuditedRecipe, train_audited
from mintkit.models.iresnet import is_face_model
from mintkit.papers import common
from mintkit.papers.common import Context
from mintkit.papers.factors.exposure import exposure_repeats, exposure_split, quarter_features
from mintkit.papers.factors.models import builder
from mintkit.papers.factors.params import SCENARIOS, Params

TAPS = ("stage1", "stage2", "stage3", "stage4", "outcome")
FEATURE_SETS = {"Conv Layer #1": ["stage1"], "Conv Layer #2": ["stage2"], "Conv Layer #3": ["stage3"],
                "Conv Layer #4": ["stage4"], "Model Outcome": ["outcome"],
                "All Conv Layers": ["stage1", "stage2", "stage3", "stage4"]}  # paper: outcome kept apart
MINT_LABEL = "Vanilla MINT"
MINT_LR = 1e-3  # the paper's Adam learning rate of the MINT model
LOSS_LABELS = {"adaface": "AdaFace loss", "cosface": "CosFace loss", "arcface": "ArcFace loss",
               "softmax": "Softmax loss"}


def setup(P: Params) -> Context:
    """`papers.common.setup`: seed, device, threads, the pool (resized to `image_size`), the run folder."""
    return common.setup(P, image_size=P.image_size)


def condition(scenario: str, value) -> str:
    """The paper's column label of one value of a factor."""
    if scenario == "exposure":
        return f"x{value}"
    if scenario == "batch":
        return f"batch {value}"
    if scenario == "dropout":
        return "with dropout" if value > 0 else "without dropout"
    if scenario == "loss":
        return LOSS_LABELS.get(value, f"{value} loss")
    return "Baseline"


def make_split(ctx: Context, scenario: str, P: Params) -> Split:
    """The exposure split (quarters) or the split every other factor shares (so their base value is one model)."""
    pool = ctx.pool
    if scenario == "exposure":
        return exposure_split(pool, P.exposure_members, P.n_external, P.n_eval, len(P.exposure_list), P.seed,
                              P.identity_disjoint)
    return build_split(pool, P.n_members, P.n_external, P.n_eval, seed=P.seed, identity_disjoint=P.identity_disjoint)


def variant(split: Split, scenario: str, value, P: Params) -> tuple[AuditedRecipe, torch.Tensor | None]:
    """The audited recipe and the exposure repeats (None outside the exposure factor) for one value of a factor
    (the others at their base), as `models.audited.train_audited` takes them."""
    head = value if scenario == "loss" else P.loss
    build_fn, model_kw = builder(head, P)
    epochs = P.exposure_training_epochs if scenario == "exposure" else P.audited_epochs
    cfg = TrainConfig(epochs=epochs, batch_size=value if scenario == "batch" else P.batch_size, lr=P.lr,
                      optimizer=P.optimizer, weight_decay=P.weight_decay, fit_check=P.fit_check)
    recipe = AuditedRecipe(P.arch, cfg, dropout=value if scenario == "dropout" else P.dropout, head=head,
                           build_fn=build_fn, model_kw=model_kw)
    return recipe, exposure_repeats(split, value) if scenario == "exposure" else None


def audited_quality(ctx: Context, split: Split, model: torch.nn.Module) -> dict[str, float]:
    """`models.audited.audited_quality`; a face model is scored by verification accuracy (the paper's FR number),
    also written as fr_verification_accuracy."""
    out = shared.audited_quality(model, ctx.pool, split, ctx.device, face_metric="verification")
    if is_face_model(model):
        out["fr_verification_accuracy"] = out["audited_accuracy"]
    return out


def score_key(table: str, cond: str, feature: str, kind: str) -> str:
    """Name of a score array in scores.npz, e.g. Table_2__x10__Conv_Layer_1__scores."""
    return f"{table}|{cond}|{feature}".replace(" ", "_").replace("|", "__").replace("#", "").replace(";", "_") \
        + f"__{kind}"


def mint_rows(device: torch.device, feats: dict, keys: dict, P: Params) -> tuple[list, dict]:
    """Vanilla MINT on each feature set: (rows [(metric, value, keys)], scores {score_key: array})."""
    rows, scores = [], {}
    for name, taps in FEATURE_SETS.items():
        res = run_mint(mint_data(feats, taps), "mlp", device, P.mint_epochs, P.seed, lr=MINT_LR,
                       n_boot=P.n_boot, model_kw={"hidden": P.mint_hidden, "dropout": P.mint_dropout},
                       label=f"{MINT_LABEL};{name}")
        k = keys | {"feature": res.label}
        rows += [(m, res.metrics[m], k) for m in METRICS if m in res.metrics]
        scores[score_key(keys["table"], keys["condition"], name, "scores")] = res.scores
        scores[score_key(keys["table"], keys["condition"], name, "labels")] = res.labels
    return rows, scores


def sweep(ctx: Context, scenario: str, P: Params, *, progress: bool = False) -> pd.DataFrame:
    """Train (or load cached) one audited model per value of `scenario` (`P.values`), run Vanilla MINT on every
    feature set, write the rows to ``ctx.run`` (results.csv, scores.npz) and return them (RESULT_COLUMNS).

    exposure: one model; each quarter's MINT model gets its own condition (x1, x10, ...).
    """
    split = make_split(ctx, scenario, P)
    if scenario == "exposure":
        split.save(ctx.run.dir / "split_exposure.json")
    elif not (ctx.run.dir / "split.json").exists():
        ctx.run.save_split(split)
    base = {"table": SCENARIOS[scenario], "dataset": P.dataset_row_label, "model": P.model_row_label}
    records, scores = [], {}
    for value in P.values(scenario):
        t0 = time.perf_counter()
        recipe, repeats = variant(split, scenario, value, P)
        trained_on, cfg = null_training(ctx.pool, split, P.null_model, P.seed, recipe.train)  # mintkit.core.null
        model, info = train_audited(ctx.pool, trained_on, recipe.replace(train=cfg), ctx.device, P.seed,
                                    P.cache_dir or None, repeats=repeats, progress=progress)
        t_train = 0.0 if info.cache_hit else info.train_seconds
        audited = audited_quality(ctx, split, model)
        t1 = time.perf_counter()
        feats = set_features(model, ctx.pool, split, list(TAPS), ctx.device)
        t_feat = time.perf_counter() - t1
        parts = ([(condition(scenario, v), quarter_features(feats, split, q)) for q, v in enumerate(value)]
                 if scenario == "exposure" else [(condition(scenario, value), feats)])
        for cond, f in parts:
            t2 = time.perf_counter()
            keys = base | {"condition": cond}
            rows, sc = mint_rows(ctx.device, f, keys, P)
            for name in FEATURE_SETS:  # the audited model's quality under the keys of every MINT result
                rows += [(m, v, keys | {"feature": f"{MINT_LABEL};{name}"}) for m, v in audited.items()]
            rows += [("time_mint", time.perf_counter() - t2, keys | {"feature": ""}),
                     ("time_train", t_train, keys | {"feature": ""}),
                     ("time_features", t_feat, keys | {"feature": ""}),
                     ("time_total", time.perf_counter() - t0, keys | {"feature": ""})]
            records += rows
            scores |= sc
    n0 = len(ctx.run.rows)
    for metric, value, keys in records:
        ctx.run.add(metric, value, **keys)
    ctx.run.save_scores(**scores)
    return pd.DataFrame(ctx.run.rows[n0:], columns=list(RESULT_COLUMNS))

