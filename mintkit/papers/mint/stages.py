"""MINT (IEEE Access 2025, "Is my Data in your AI Model?"): passive MINT on activations.

The stages `notebooks/mint.ipynb` calls, in order (methods.md section 2):

1. `load_data` / `make_split`: the data pool (plus optional external trees for E and for the
   evaluation non-members, the paper's Baseline Case / Case A / Case B) and the five sets.
2. `audited_model`: train the audited model on `members` (cached), or load a user's checkpoint:
   a mintkit checkpoint or an InsightFace ``arcface_torch`` IResNet backbone (``weights_only``).
3. `extract_features`: Auxiliary Auditable Data (AAD) at ``stage1..stage4`` ("Conv Layer #1..#4")
   and the outcome: per-channel spatial max for the Vanilla (MLP) model, full maps for the CNN.
4. `fit_all`: one MINT model per feature set: each layer alone, the outcome alone, the Combination.
5. `size_sweep`: accuracy vs amount of MINT training data (Tables 3 and 5).
6. `control_model` + `fit_control`: the same MINT pipeline on a reference model that never saw the
   members (the domain control; methods.md 7.1).
7. `mint_report.record` + `paper_tables` / figures: tidy rows, Tables 1/4/6-shaped views, ROC, histograms.

Choices the paper leaves open ([NF]/[INF] in methods.md), each a parameter:

* CNN pooling: `cnn_pool` (default 2, [INF] 2x2); CNN dense width `cnn_dense` (0 = C, the layer's channels).
* CNN "Combination" (Table 4): `cnn_combination` = ``branches`` (default: one conv branch per layer,
  flattened and concatenated, then Dense(sum of C) -> Dropout -> Dense(1)) or ``stack`` (maps resized
  to the largest resolution, concatenated along channels, one CNN).
* Vanilla "Combination" = the four layers concatenated; the paper says adding the outcome changes
  nothing, so it is left out (Factors does the same).
* L1 of the Vanilla model: `mint_l1` (paper: 0.1 Keras-style on the Dense(128) kernel, l1 * sum|W|).
  On small MINT-training sets 0.1 drives the kernel to zero and the model to chance, so the CPU
  default is 0; the paper presets use 0.1.
* MIA baseline (Table 6, Rezaei & Liu adapted): the paper's MIA row equals its Vanilla "Model
  Outcome" row, i.e. an MLP on the outcome trained with the real model; we report that model under
  both labels. The loss-threshold attack (Yeom et al.) is added as a baseline of our own.
* Threshold: 0.5 on the sigmoid (the paper's number) and a threshold calibrated on MINT-training
  scores; never on evaluation data.

Face models (`iresnet*` + margin head, ``imagefolder:`` data, identity-disjoint split): the audited
model's accuracy is a leave-one-out 1-nearest-neighbour identification accuracy on the embeddings
(members' eval images = train, never-seen identities = test), since a classifier's test accuracy is
undefined for identities it was never trained on.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mintkit.core import params as _params
from mintkit.core import stages as pl
from mintkit.core.data import TRAIN, Pool, _resize, load_pool
from mintkit.reference import label_dataset, label_model
from mintkit.core.splits import Split, SplitError, build_split

PAPER = "mint"
LAYERS = ("stage1", "stage2", "stage3", "stage4")
LABELS = {"stage1": "Conv Layer #1", "stage2": "Conv Layer #2", "stage3": "Conv Layer #3",
          "stage4": "Conv Layer #4", "outcome": "Model Outcome", "combination": "Combination"}
FAMILIES = {"mlp": "Vanilla MINT", "cnn": "CNN MINT"}
MIA_FEATURE = "MIA (Rezaei & Liu);Model Outcome"
LOSS_FEATURE = "Loss threshold (Yeom et al.);Model Outcome"
CONTROLS = ("other-data", "untrained", "none")
CNN_COMBINATIONS = ("branches", "stack")
SOURCE_MAIN, SOURCE_EXTERNAL, SOURCE_EVAL = 0, 1, 2

PARAMS = _params.schema({
    "n_members": (int, 320, "|D|: samples that train the audited model (digits has 1,797 in all)"),
    "n_external": (int, 240, "|E|: non-members that train the MINT model"),
    "n_eval": (int, 80, "evaluation members = evaluation non-members (balanced)"),
    "audited_epochs": (int, 30, "epochs of the audited model (enough to overfit: MINT needs a train/test gap)"),
    "batch_size": (int, 64, "batch size of the audited model"),
    "n_mint_members": (int, 0, "members that train the MINT model (0 = n_external, capped by what is left)"),
    "image_size": (int, 0, "resize images to this side (0 = native; imagefolder: 112 as the paper)"),
    "identity_disjoint": (bool, False, "whole identities (imagefolder folders) go to one set (paper: True)"),
    "external_root": (str, "", "comma list of other datasets for E: 'imagefolder:<path>' or a dataset name "
                      "(empty = E from the main pool). Paper Baseline Case: IJB-C, FDDB, GANDiffFace"),
    "eval_nonmember_root": (str, "", "comma list of other datasets for the evaluation non-members "
                            "(empty = from the main pool). Paper Baseline Case: Adience"),
    "checkpoint": (str, "", "audit this model instead of training one: a mintkit checkpoint or an "
                   "InsightFace arcface_torch IResNet backbone .pth (loaded with weights_only=True)"),
    "head": (str, "softmax", "head of the audited model: softmax, arcface, cosface, adaface (iresnet only)"),
    "dropout": (float, 0.0, "dropout in front of the audited model's output layer"),
    "mint_models": (str, "mlp,cnn", "MINT model families: mlp (Vanilla), cnn"),
    "mlp_features": (str, "stage1,stage2,stage3,stage4,outcome,combination",
                     "Vanilla MINT feature sets (Table 1 rows)"),
    "cnn_features": (str, "stage1,stage2,stage3,stage4,combination", "CNN MINT feature sets (Table 4 rows)"),
    "mint_epochs": (int, 20, "epochs of the Vanilla MINT model (paper: 20)"),
    "cnn_epochs": (int, 30, "epochs of the CNN MINT model (paper: 30)"),
    "mint_lr": (float, 1e-3, "Adam learning rate of the MINT models (paper: 1e-3)"),
    "mint_batch_size": (int, 128, "MINT batch size, half members half non-members (paper: 128)"),
    "mint_l1": (float, 0.0, "L1 on the Vanilla Dense(128) kernel, Keras-style l1*sum|W| (paper: 0.1)"),
    "mint_dropout": (float, 0.5, "dropout of the MINT models (paper: 0.5)"),
    "cnn_filters": (int, 64, "CNN MINT conv filters (paper: 64)"),
    "cnn_kernel": (int, 5, "CNN MINT conv kernel (paper: 5)"),
    "cnn_pool": (int, 2, "CNN MINT max-pool size (paper: not given; 2)"),
    "cnn_dense": (int, 0, "CNN MINT dense width (0 = C, the layer's channels, as the paper)"),
    "cnn_combination": (str, "branches", "CNN Combination: branches (one conv per layer, concatenated after "
                        "flattening) or stack (maps resized to one resolution, stacked on channels)"),
    "data_fraction": (float, 1.0, "fraction of the MINT-training data used (both classes)"),
    "data_sweep": (str, "0.1,0.3", "comma list of further fractions for Tables 3/5 (empty = none)"),
    "control": (str, "other-data", "domain control: other-data (same arch trained on pool data outside every "
                "set), untrained (random weights), none"),
    "control_checkpoint": (str, "", "control = other-data: load this checkpoint instead of training one"),
    "n_control": (int, 0, "samples that train the control model (0 = n_members, capped by what is left)"),
    "condition": (str, "{size};{dataset}", "condition label of the rows: {size} = MINT-training samples as the "
                  "paper writes them (100K), {dataset}, {image_size}; paper: '{size};Baseline Case', '{size}'"),
    "tables": (str, "", "comma list of tables to write rows for (empty = every table the run produces)"),
    "vanilla_table": (str, "Table 1", "table of the Vanilla per-feature rows (Table 2 for Case A / Case B)"),
    "cnn_table": (str, "Table 4", "table of the CNN per-feature rows (Table 7 complexity, Tables 8/9 appendix)"),
    "cnn_params_scale": (float, 1.0, "CNN MINT parameter multiplier (Table 7: 0.333, 1, 3, 10); filters and dense "
                         "width are each scaled by its square root"),
    "dataset_label": (str, "", "dataset label of the rows (empty = reference.label_dataset; e.g. Glint360K)"),
    "model_label": (str, "", "model label of the rows (empty = reference.label_model; e.g. FR Model 2)"),
    "n_boot": (int, 200, "bootstrap resamples for confidence intervals (0 = none)"),
    "threads": (int, 1, "CPU threads for torch (1: fastest for the small default models, whose ops are too small "
                "to share; 0 = torch's default)"),
    "cache_dir": (str, ".cache/mintkit/models", "audited-model cache (empty = no cache)"),
})


def as_list(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def check(P: dict) -> None:
    """Cross-parameter checks the schema cannot express; raise ValueError with the valid values."""
    bad = [m for m in as_list(P["mint_models"]) if m not in FAMILIES]
    if bad:
        raise ValueError(f"unknown mint_models {bad}; valid: {', '.join(FAMILIES)}")
    for key, valid in (("mlp_features", (*LAYERS, "outcome", "combination")),
                       ("cnn_features", (*LAYERS, "combination"))):
        bad = [f for f in as_list(P[key]) if f not in valid]
        if bad:
            raise ValueError(f"unknown {key} {bad}; valid: {', '.join(valid)}")
    if P["control"] not in CONTROLS:
        raise ValueError(f"unknown control {P['control']!r}; valid: {', '.join(CONTROLS)}")
    if P["cnn_combination"] not in CNN_COMBINATIONS:
        raise ValueError(f"unknown cnn_combination {P['cnn_combination']!r}; valid: {', '.join(CNN_COMBINATIONS)}")
    try:
        P["condition"].format(size="1K", dataset="d", image_size=0)
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"condition {P['condition']!r}: use only {{size}}, {{dataset}}, {{image_size}} ({e})") from e
    if P["cnn_params_scale"] <= 0:
        raise ValueError(f"cnn_params_scale must be > 0, got {P['cnn_params_scale']}")
    fr = [P["data_fraction"], *map(float, as_list(P["data_sweep"]))]
    if any(not 0 < f <= 1 for f in fr):
        raise ValueError(f"data_fraction / data_sweep must lie in (0, 1]; got {fr}")


def setup(P: dict):
    """(device, Run) after the parameter checks; the run folder holds params.json and env.json.

    Sets torch's CPU threads to P['threads'] (when > 0): the default models and every MINT model are so small
    that a second thread costs more in synchronisation than it saves (5-8x slower on a busy 2-core machine).
    """
    from mintkit.core.records import Run
    from mintkit.core.train import pick_device, seed_everything
    check(P)
    if P["threads"] > 0:
        torch.set_num_threads(P["threads"])
    seed_everything(P["seed"])
    device = pick_device(P["device"])
    return device, Run(P["out_dir"], PAPER, P, seed=P["seed"], device=device, protocol=P["protocol"])


# ------------------------------------------------------------------------------------------- data
def _conform(pool: Pool, channels: int, size: int) -> Pool:
    """Resize/convert a foreign pool to the main pool's channels and image size (uint8, [N, C, H, W])."""
    x = _resize(pool.x, size)
    if x.shape[1] != channels:
        x = x.float().mean(1, keepdim=True).round().to(torch.uint8) if channels == 1 else x[:, :1].repeat(1, channels, 1, 1)
    return Pool(pool.name, x, pool.y, pool.num_classes, pool.group, pool.origin, dict(pool.meta))


def _load_one(spec: str, data_root: str, image_size: int | None) -> Pool:
    """A dataset name, 'imagefolder:<path>', or a bare directory (read as an imagefolder tree)."""
    if not spec.startswith("imagefolder:") and Path(spec).is_dir():
        spec = f"imagefolder:{spec}"
    return load_pool(spec, data_root, image_size=image_size)


def load_data(P: dict) -> Pool:
    """The main pool, plus the `external_root` / `eval_nonmember_root` datasets appended to it.

    Appended samples keep their images (resized and converted to the main pool's format), get label 0
    (their labels are never used: they are only ever non-members) and identities offset past the main
    pool's; ``pool.meta['source']`` [N] says where each sample comes from (0 main, 1 E, 2 eval).
    """
    size = P["image_size"] or None
    main = _load_one(P["dataset"], P["data_root"], size)
    parts, sources = [main], [np.full(len(main), SOURCE_MAIN)]
    for key, code in (("external_root", SOURCE_EXTERNAL), ("eval_nonmember_root", SOURCE_EVAL)):
        for spec in as_list(P[key]):
            p = _conform(_load_one(spec, P["data_root"], main.image_size), main.in_channels, main.image_size)
            parts.append(p)
            sources.append(np.full(len(p), code))
    if len(parts) == 1:
        main.meta["source"] = sources[0]
        return main
    groups, offset = [], 0
    for p in parts:
        groups.append(p.group.cpu() + offset)
        offset = int(groups[-1].max()) + 1
    source = np.concatenate(sources)
    y = torch.cat([parts[0].y.cpu()] + [torch.zeros(len(p), dtype=torch.long) for p in parts[1:]])
    pool = Pool(main.name, torch.cat([p.x.cpu() for p in parts]), y, main.num_classes, torch.cat(groups),
                torch.full((len(source),), TRAIN, dtype=torch.long),
                dict(main.meta) | {"source": source, "parts": [p.name for p in parts]})
    return pool


def make_split(pool: Pool, P: dict) -> Split:
    """The five sets (`splits.build_split`): members from the main pool; E and the evaluation non-members
    from their `external_root` / `eval_nonmember_root` datasets when given, else from the main pool."""
    source = np.asarray(pool.meta.get("source", np.zeros(len(pool), int)))

    def only(code: int) -> np.ndarray | None:
        idx = np.flatnonzero(source == code)
        return idx if len(idx) else None

    split = build_split(pool, P["n_members"], P["n_external"], P["n_eval"], seed=P["seed"],
                        n_mint_members=P["n_mint_members"] or None, identity_disjoint=P["identity_disjoint"],
                        external_from=only(SOURCE_EXTERNAL), nonmembers_from=only(SOURCE_EVAL))
    split.meta["parts"] = pool.meta.get("parts", [pool.name])
    return split


def unused(pool: Pool, split: Split, identity_disjoint: bool = False) -> np.ndarray:
    """Main-pool indices in no set (nor sharing an identity with one when `identity_disjoint`)."""
    source = np.asarray(pool.meta.get("source", np.zeros(len(pool), int)))
    used = np.concatenate([split[s] for s in ("members", "external", "eval_nonmembers")])
    free = np.setdiff1d(np.flatnonzero(source == SOURCE_MAIN), used)
    if identity_disjoint:
        g = pool.group.cpu().numpy()
        free = free[~np.isin(g[free], g[used])]
    return free


def split_table(split: Split, pool: Pool) -> pd.DataFrame:
    """One row per set: samples, identities, and which dataset(s) it comes from."""
    source = np.asarray(pool.meta.get("source", np.zeros(len(pool), int)))
    names = {SOURCE_MAIN: "main pool", SOURCE_EXTERNAL: "external_root", SOURCE_EVAL: "eval_nonmember_root"}
    g = pool.group.cpu().numpy()
    return pd.DataFrame([{"set": s, "samples": len(split[s]), "identities": len(np.unique(g[split[s]])),
                          "from": ", ".join(names[c] for c in sorted(set(source[split[s]].tolist())))}
                         for s in ("members", "mint_train_members", "eval_members", "external", "eval_nonmembers")
                         ]).set_index("set")


# ---------------------------------------------------------------------------------- audited model
def is_insightface_state(sd: dict) -> bool:
    """A bare InsightFace IResNet state dict: keys conv1/bn1/prelu/layer1..4/fc/features, no 'backbone.'."""
    keys = {k[7:] if k.startswith("module.") else k for k in sd}
    return "conv1.weight" in keys and "fc.weight" in keys and any(k.startswith("layer4.") for k in keys) \
        and not any(k.startswith("backbone.") for k in keys)


def load_audited(path: str | Path, pool: Pool | None = None, head: str = "softmax") -> nn.Module:
    """A user's model from `path` (always ``torch.load(weights_only=True)``): a mintkit checkpoint
    (config inside), or an InsightFace ``arcface_torch`` backbone (r18/r50/r100, read off the keys) wrapped
    in a FaceModel with a fresh `head` over the pool's identities (the head is never used by MINT)."""
    from mintkit.core.checkpoints import load_checkpoint, load_model
    from mintkit.models.zoo import load_insightface_backbone
    sd = load_checkpoint(path)["state_dict"]
    if is_insightface_state(sd):
        n = pool.num_classes if pool is not None else 2
        size = pool.image_size if pool is not None else None
        return load_insightface_backbone(path, num_classes=n, head=head, image_size=size)
    return load_model(path)


def is_face(model: nn.Module) -> bool:
    return hasattr(model, "embed") and hasattr(model, "backbone")


def audited_model(pool: Pool, split: Split, P: dict, device: torch.device, progress: bool = False
                  ) -> tuple[nn.Module, dict]:
    """(model in eval mode, info): P['checkpoint'] loaded, else trained on members (cached by key)."""
    from mintkit.core.train import TrainConfig
    if P["checkpoint"]:
        model = load_audited(P["checkpoint"], pool, P["head"]).to(device).eval()
        return model, {"source": P["checkpoint"], "cache_hit": False, "seconds": 0.0}
    cfg = TrainConfig(epochs=P["audited_epochs"], batch_size=P["batch_size"], lr=P["lr"])
    t0 = time.perf_counter()
    model, info = pl.train_audited(pool, split, P["arch"], cfg, device, P["seed"], cache_dir=P["cache_dir"] or None,
                                   dropout=P["dropout"], head=P["head"], progress=progress)
    return model.eval(), info | {"seconds": time.perf_counter() - t0}


@torch.no_grad()
def identification_accuracy(model: nn.Module, pool: Pool, idx: np.ndarray, device: torch.device,
                            max_n: int = 4000, seed: int = 0) -> float:
    """Leave-one-out 1-NN identity accuracy (cosine of embeddings) over pool[idx] (at most `max_n` samples;
    only samples whose identity has another sample count). NaN when no identity has two samples."""
    from mintkit.core.extract import extract
    idx = np.random.default_rng(seed).permutation(np.asarray(idx))[:max_n]
    g = pool.group.cpu().numpy()[idx]
    keep = np.isin(g, np.unique(g)[np.unique(g, return_counts=True)[1] > 1])
    if not keep.any():
        return float("nan")
    e = torch.nn.functional.normalize(extract(model, pool, idx, ["outcome"], device)["outcome"].float(), dim=1)
    hits = []
    for s in range(0, len(e), 1024):
        sim = e[s:s + 1024] @ e.T
        sim[torch.arange(len(sim)), torch.arange(s, s + len(sim))] = -2.0
        hits.append(g[sim.argmax(1).numpy()] == g[s:s + len(sim)])
    return float(np.concatenate(hits)[keep].mean())


def audited_quality(model: nn.Module, pool: Pool, split: Split, device: torch.device) -> dict:
    """{'audited_train_accuracy', 'audited_accuracy'} of a model.

    Classifiers: top-1 on members / on never-seen main-pool samples (the eval non-members when they come
    from the main pool, else the unused rest of it). Face models: 1-NN identification on embeddings of
    eval members / eval non-members (see module docstring).
    """
    if is_face(model):
        return {"audited_train_accuracy": identification_accuracy(model, pool, split["eval_members"], device),
                "audited_accuracy": identification_accuracy(model, pool, split["eval_nonmembers"], device)}
    source = np.asarray(pool.meta.get("source", np.zeros(len(pool), int)))
    test = split["eval_nonmembers"]
    if (source[test] != SOURCE_MAIN).any():
        test = unused(pool, split)
    out = pl.audited_accuracy(model, pool, split, device, test_idx=test) if len(test) else \
        {"audited_train_accuracy": pl.audited_accuracy(model, pool, split, device)["audited_train_accuracy"],
         "audited_accuracy": float("nan")}
    return {k: float(v) for k, v in out.items()}


def control_model(pool: Pool, split: Split, P: dict, device: torch.device, progress: bool = False
                  ) -> tuple[nn.Module | None, dict]:
    """The domain control: same architecture, never saw the members (None when control = 'none').

    other-data: trained like the audited model on main-pool samples outside every set (whole identities when
    identity_disjoint), or loaded from `control_checkpoint`; untrained: the same initialisation, no training.
    """
    from mintkit.models.zoo import build_model
    from mintkit.core.train import TrainConfig, seed_everything
    how = P["control"]
    if how == "none":
        return None, {"control": "none"}
    like = load_audited(P["checkpoint"], pool, P["head"]) if P["checkpoint"] else None
    cfg = dict(like.config) if like is not None else dict(
        arch=P["arch"], num_classes=pool.num_classes, in_channels=pool.in_channels, image_size=pool.image_size,
        dropout=P["dropout"], head=P["head"])
    if how == "untrained":
        seed_everything(P["seed"] + 1)
        return build_model(**cfg).to(device).eval(), {"control": how, "n_control": 0}
    if P["control_checkpoint"]:
        m = load_audited(P["control_checkpoint"], pool, P["head"]).to(device).eval()
        return m, {"control": how, "source": P["control_checkpoint"], "n_control": float("nan")}
    free = unused(pool, split, P["identity_disjoint"])
    n = min(len(free), P["n_control"] or P["n_members"])
    if n < 20:
        raise SplitError(f"control='other-data' needs main-pool samples outside every set; only {len(free)} are "
                         f"left. Lower n_members/n_external/n_eval, pass control_checkpoint, or use control='untrained'")
    members = np.random.default_rng(P["seed"] + 1).permutation(free)[:n]
    empty = np.empty(0, dtype=np.int64)
    csplit = Split({"members": members, "external": empty, "mint_train_members": empty, "eval_members": empty,
                    "eval_nonmembers": empty}, pool.name, len(pool), P["seed"])
    tc = TrainConfig(epochs=P["audited_epochs"], batch_size=P["batch_size"], lr=P["lr"])
    t0 = time.perf_counter()
    m, info = pl.train_audited(pool, csplit, cfg["arch"], tc, device, P["seed"] + 1,
                               cache_dir=P["cache_dir"] or None, dropout=cfg["dropout"], head=cfg["head"],
                               progress=progress)
    q = pl.audited_accuracy(m, pool, csplit, device, test_idx=split["eval_nonmembers"]) if not is_face(m) else {}
    return m.eval(), info | {"control": how, "n_control": n, "control_members": members,
                             "seconds": time.perf_counter() - t0} | q


# --------------------------------------------------------------------------------------- features
def needed_taps(P: dict) -> tuple[list[str], list[str]]:
    """(taps reduced by max for the Vanilla model, taps kept as full maps for the CNN)."""
    fams = as_list(P["mint_models"])
    mlp = as_list(P["mlp_features"]) if "mlp" in fams else []
    cnn = as_list(P["cnn_features"]) if "cnn" in fams else []
    vec = sorted({t for f in mlp for t in (LAYERS if f == "combination" else [f])} | {"outcome"},
                 key=[*LAYERS, "outcome"].index)
    maps = sorted({t for f in cnn for t in (LAYERS if f == "combination" else [f])}, key=list(LAYERS).index)
    return vec, maps


def extract_features(model: nn.Module, pool: Pool, split: Split, P: dict, device: torch.device) -> dict:
    """{'vec': {set: {tap: [n, C]}}, 'maps': {set: {tap: [n, C, H, W] float16}}} in one pass per set.

    Vanilla features are the per-channel spatial max (the paper's choice; mean was worse); taps the CNN
    needs are captured as full maps and their max taken from them.
    """
    vec_taps, map_taps = needed_taps(P)
    taps = sorted(set(vec_taps) | set(map_taps), key=[*LAYERS, "outcome"].index)
    reduce = {t: ("none" if t in map_taps else "max") for t in taps}
    raw = pl.set_features(model, pool, split, taps, device, reduce=reduce)
    vec = {s: {t: (f[t].float().amax(dim=(2, 3)) if t in map_taps and f[t].ndim == 4 else f[t].float())
               for t in vec_taps} for s, f in raw.items()}
    maps = {s: {t: f[t] for t in map_taps} for s, f in raw.items()}
    return {"vec": vec, "maps": maps}


def feature_shapes(feats: dict) -> pd.DataFrame:
    """Tap -> shape of the captured features (per sample), for the notebook."""
    s = "eval_members"
    rows = [{"tap": t, "label": LABELS[t], "vanilla (max per channel)": tuple(v.shape[1:])}
            for t, v in feats["vec"][s].items()]
    df = pd.DataFrame(rows).set_index("tap")
    df["cnn (full map)"] = [tuple(feats["maps"][s][t].shape[1:]) if t in feats["maps"][s] else "-" for t in df.index]
    return df


# ------------------------------------------------------------------------------------- MINT models
class CNNCombination(nn.Module):
    """CNN MINT on several layers: one Conv(filters, k) -> ReLU -> MaxPool branch per layer, flattened and
    concatenated, then Dense(sum of C) -> ReLU -> Dropout -> Dense(1). Input: the layers' maps packed into one
    flat vector [N, sum C*H*W] (so the shared training loop indexes it like any tensor)."""

    def __init__(self, shapes: list[tuple[int, int, int]], filters: int = 64, kernel: int = 5, pool: int = 2,
                 dense: int | None = None, dropout: float = 0.5) -> None:
        super().__init__()
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.sizes = [c * h * w for c, h, w in self.shapes]
        self.branches = nn.ModuleList(nn.Sequential(nn.Conv2d(c, filters, kernel, padding=kernel // 2), nn.ReLU(),
                                                    nn.MaxPool2d(pool, ceil_mode=True), nn.Flatten())
                                      for c, _, _ in self.shapes)
        flat = sum(filters * math.ceil(h / pool) * math.ceil(w / pool) for _, h, w in self.shapes)
        width = dense or sum(c for c, _, _ in self.shapes)
        self.head = nn.Sequential(nn.Linear(flat, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, 1))

    def first_layer(self) -> nn.Conv2d:
        return self.branches[0][0]

    def prepare(self, x: torch.Tensor) -> None:
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x.float(), self.sizes, dim=1)
        z = [b(p.reshape(len(p), *s)) for b, p, s in zip(self.branches, parts, self.shapes)]
        return self.head(torch.cat(z, 1)).squeeze(1)


def _subsample(d: pl.MintData, fraction: float, seed: int) -> pl.MintData:
    """Keep `fraction` of each class of the MINT-training data (at least 2 per class); eval untouched."""
    if fraction >= 1.0:
        return d
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in (0, 1):
        idx = torch.nonzero(d.y_train == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:max(2, round(len(idx) * fraction))]])
    k = torch.cat(keep).sort().values
    return pl.MintData(d.x_train[k], d.y_train[k], d.x_eval, d.y_eval, dict(d.meta) | {"fraction": fraction})


def _cnn_data(feats: dict, feature: str, how: str) -> tuple[pl.MintData, list]:
    """MintData for the CNN: one layer's maps, or all layers packed (branches) / resized and stacked (stack)."""
    maps = feats["maps"]
    if feature != "combination":
        return pl.mint_data(maps, [feature], flat=False), []
    shapes = [tuple(maps["eval_members"][t].shape[1:]) for t in LAYERS]
    if how == "branches":
        return pl.mint_data(maps, list(LAYERS), flat=True), shapes
    side = max(s[-1] for s in shapes)

    def stack(f: dict) -> dict:
        return {"stacked": torch.cat([nn.functional.interpolate(f[t].float(), size=(side, side), mode="nearest")
                                      .half() for t in LAYERS], 1)}
    return pl.mint_data({s: stack(f) for s, f in maps.items()}, ["stacked"], flat=False), []


def fit_one(feats: dict, family: str, feature: str, P: dict, device: torch.device, fraction: float | None = None,
            seed_offset: int = 0) -> dict:
    """Train and evaluate one MINT model; returns pipeline.run_mint's dict plus n_train / params / labels."""
    fraction = P["data_fraction"] if fraction is None else fraction
    seed = P["seed"] + seed_offset
    common = dict(device=device, seed=seed, lr=P["mint_lr"], batch_size=P["mint_batch_size"], n_boot=P["n_boot"])
    if family == "mlp":
        taps = list(LAYERS) if feature == "combination" else [feature]
        data = _subsample(pl.mint_data(feats["vec"], taps), fraction, seed)
        out = pl.run_mint(data, "mlp", epochs=P["mint_epochs"], l1=P["mint_l1"],
                          model_kw={"dropout": P["mint_dropout"]}, **common)
    else:
        data, shapes = _cnn_data(feats, feature, P["cnn_combination"])
        data = _subsample(data, fraction, seed)
        w = math.sqrt(P["cnn_params_scale"])
        channels = sum(s[0] for s in shapes) if shapes else int(data.x_train.shape[1])
        kw = dict(filters=max(1, round(P["cnn_filters"] * w)), kernel=P["cnn_kernel"], pool=P["cnn_pool"],
                  dense=max(1, round((P["cnn_dense"] or channels) * w)), dropout=P["mint_dropout"])
        model = CNNCombination(shapes, **kw) if shapes else None
        out = pl.run_mint(data, "cnn", epochs=P["cnn_epochs"], model_kw=kw, model=model, **common)
    out["n_train"] = int(len(data.y_train))
    out["n_train_members"] = int(data.y_train.sum())
    out["params"] = sum(p.numel() for p in out["model"].parameters())
    out["family"], out["feature"] = family, feature
    out["label"] = f"{cnn_family(P) if family == 'cnn' else FAMILIES[family]};{LABELS[feature]}"
    return out


def fit_all(feats: dict, P: dict, device: torch.device, families: list[str] | None = None) -> dict:
    """{(family, feature): result} for every requested feature set of every family."""
    out = {}
    for fam in families or as_list(P["mint_models"]):
        for feature in as_list(P[f"{fam}_features"]):
            out[(fam, feature)] = fit_one(feats, fam, feature, P, device)
    return out


def size_sweep(feats: dict, P: dict, device: torch.device) -> dict:
    """Tables 3/5: {(family, feature, fraction): result} for Vanilla Combination and CNN Conv Layer #1 at each
    fraction of `data_sweep` (the full `data_fraction` run comes from `fit_all`)."""
    fams = as_list(P["mint_models"])
    which = [(f, x) for f, x in (("mlp", "combination"), ("cnn", "stage1")) if f in fams and x in as_list(P[f"{f}_features"])]
    out = {}
    for fr in map(float, as_list(P["data_sweep"])):
        for fam, feature in which:
            out[(fam, feature, fr)] = fit_one(feats, fam, feature, P, device, fraction=fr * P["data_fraction"])
    return out


def control_features(P: dict) -> list[tuple[str, str]]:
    """Feature sets the control runs: the paper's headline models (Vanilla Combination, CNN Conv Layer #1)
    and the outcome MLP (= the MIA baseline), as far as they were requested."""
    fams = as_list(P["mint_models"])
    want = [("mlp", "combination"), ("mlp", "outcome"), ("cnn", "stage1")]
    return [(f, x) for f, x in want if f in fams and x in as_list(P[f"{f}_features"])]


def fit_control(cmodel: nn.Module | None, pool: Pool, split: Split, P: dict, device: torch.device) -> dict:
    """{(family, feature): result} of the same MINT pipeline on the control model's activations."""
    if cmodel is None:
        return {}
    sub = dict(P) | {"mlp_features": ",".join(x for f, x in control_features(P) if f == "mlp"),
                     "cnn_features": ",".join(x for f, x in control_features(P) if f == "cnn")}
    feats = extract_features(cmodel, pool, split, sub, device)
    return {(f, x): fit_one(feats, f, x, sub, device) for f, x in control_features(P)}


def loss_baseline(model: nn.Module, pool: Pool, split: Split, P: dict, device: torch.device) -> dict | None:
    """Yeom et al.'s loss threshold (calibrated on the MINT-training sets), or None where the loss is undefined:
    face models (a fresh or identity-specific head) and non-members from other datasets (no labels)."""
    source = np.asarray(pool.meta.get("source", np.zeros(len(pool), int)))
    if is_face(model) or (source != SOURCE_MAIN).any():
        return None
    return pl.loss_baseline(model, pool, split, device, n_boot=P["n_boot"])


# ------------------------------------------------------------------------------------------ records
def size_label(n: int) -> str:
    """MINT-training size as the paper writes it: 100000 -> '100K', 1000 -> '1K', 900 -> '900'."""
    return f"{n // 1000}K" if n >= 1000 and n % 1000 == 0 else str(n)


def keys(P: dict, pool_name: str | None = None) -> dict:
    ds = P["dataset_label"] or label_dataset(pool_name or P["dataset"])
    return {"dataset": ds, "model": P["model_label"] or label_model(P["arch"])}


def condition(P: dict, n_train: int, ds_label: str) -> str:
    """The `condition` template filled in: e.g. '100K;Baseline Case' (paper), '900;digits' (ours)."""
    return P["condition"].format(size=size_label(n_train), dataset=ds_label, image_size=P["image_size"])


def cnn_family(P: dict) -> str:
    """'CNN MINT', or the Table 7 label of a scaled CNN ('CNN MINT x3 params', 'CNN MINT /3 params')."""
    s = P["cnn_params_scale"]
    if abs(s - 1) < 1e-6:
        return FAMILIES["cnn"]
    return f"CNN MINT /{round(1 / s):g} params" if s < 1 else f"CNN MINT x{s:g} params"
