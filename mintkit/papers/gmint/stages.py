"""gMINT (gradient-based MINT, CVPRW 2025): the notebook's parameters and stage functions.

Stages, one notebook cell each: ``setup`` (run folder, device, pool) -> ``make_split`` (D and E are
the two halves of the pool; 80% of each trains the MINT model, 20% evaluates it) -> ``audited``
(trained once, cached, with the Adam state of the gMINT layers kept) -> ``modifiers`` (one batched
pass gives every setup × rule × reduction, ``mintkit.papers.gmint.modifiers``) -> ``grid`` (a MINT MLP per setup ×
reduction × data fraction) -> ``compare_rules`` / ``table3`` (activation MINT and the loss baseline on
the same audited model) -> the paper's tables beside the published numbers, figures.

Choices where the paper is silent ([NF] in methods.md 4.1-4.2), each a parameter:

* ``rule``: the optimiser of the single step (sgd, adam with a fresh state, adam continued from the
  audited model's end-of-training state, or the raw gradient). η = the audited model's ``lr``; it only
  scales the features, which the MINT model standardises.
* the layers of each setup: ``models.GMINT_LAYERS``; Combined = the three vectors concatenated.
* the audited model is in eval mode for the step (BatchNorm running statistics, no dropout).
* ``selection``: the paper keeps the MINT epoch with the best *evaluation* accuracy (``"paper"``,
  optimistic: model selection on test data, rows get protocol ``paper``). The default ``"val"`` keeps
  the best epoch on a stratified validation slice of the MINT-training part (protocol ``heldout``);
  ``"last"`` keeps the last epoch.
* data fractions D100/D10/D1 subsample members and non-members of the MINT-training part alike.

Two observations from the small runs: fresh Adam turns each gradient entry into ≈ its sign, which drops the
magnitude (a member's small loss gradient and a non-member's large one look alike) — on the real MNIST test
split sgd / grad / adam-state beat fresh adam for the single-layer setups; and the audited model needs enough
optimiser steps for BatchNorm's running statistics, or the eval-mode model that gMINT steps is near chance.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from mintkit.core import params as _params
from mintkit.core.data import Pool, load_pool
from mintkit.papers.gmint.modifiers import REDUCTIONS, RULES, Modifiers, Optimiser, adam_state_of, weight_modifiers
from mintkit.core.splits import Split, build_split

PAPER = "gmint"
SETUPS = ("entry", "middle", "output", "combined")
SETUP_LABELS = {"entry": "Entry", "middle": "Middle", "output": "Output", "combined": "Combined"}
FRACTIONS = (1.0, 0.1, 0.01)
SELECTIONS = ("val", "paper", "last")
MLP = dict(hidden=(128, 128, 64), batchnorm=False, dropout=0.0)  # the paper's FC 128-128-64-1

PARAMS = _params.schema({
    "dataset": (str, "digits", "dataset name (mintkit.core.data.DATASETS): mnist, cifar10, gtsrb, tinyimagenet, ..."),
    "image_size": (int, 0, "resize images to this side (0 = native; 64 for GTSRB as in the aMINT code)"),
    "arch": (str, "smallcnn", "audited architecture: mobilenet resnet50 resnet101 densenet121 xception vit smallcnn"),
    "setup": (str, "all", "entry, middle, output, combined, or all (one gradient pass serves all four)"),
    "rule": (str, "adam", "weight-modifier optimiser: adam (fresh state), adam-state (end-of-training), sgd, grad"),
    "reduction": (str, "all", "per-filter reduction: mean, min, max, or all"),
    "data_fraction": (float, 0.0, "share of the MINT-training part used (D100 = 1, D10 = 0.1, D1 = 0.01; 0 = all three)"),
    "compare_rules": (bool, True, "also fit Combined/MEAN/D100 for every rule (same gradient pass)"),
    "audited_epochs": (int, 8, "epochs of the audited model (paper: 50 with early stopping)"),
    "audited_optimizer": (str, "adam", "optimiser of the audited model: adam or sgd"),
    "batch_size": (int, 64, "batch size of the audited model"),
    "lr": (float, 1e-3, "learning rate of the audited model; also η of the weight modifier"),
    "mint_epochs": (int, 20, "epochs of the MINT MLP (paper: 100)"),
    "mint_lr": (float, 1e-3, "Adam learning rate of the MINT MLP"),
    "mint_batch_size": (int, 128, "balanced batch size of the MINT MLP"),
    "selection": (str, "val", "MINT epoch kept: val (validation slice), paper (best on evaluation: optimistic), last"),
    "val_fraction": (float, 0.1, "share of the MINT-training part held out for selection='val'"),
    "n_members": (int, 300, "|D| (0 = half the pool, as the paper; the quick default uses 300)"),
    "n_external": (int, 0, "|E|, non-members incl. evaluation ones (0 = |D|: equal halves)"),
    "n_eval": (int, 0, "evaluation members = evaluation non-members (0 = eval_fraction × |D|)"),
    "eval_fraction": (float, 0.2, "share of D and of E that evaluates the MINT model (paper: 20%)"),
    "chunk_size": (int, 32, "samples per vmap chunk of the modifiers (memory ∝ chunk × layer weights)"),
    "n_boot": (int, 200, "bootstrap resamples of the confidence intervals (0 = none)"),
    "protocol": (str, "heldout", "results label, set from selection (paper -> 'paper', else 'heldout')"),
    "cache_dir": (str, ".cache/mintkit/models", "cache of audited models ('' = no cache)"),
    "checkpoint": (str, "", "audit your own model: a mintkit checkpoint (its 'extra' may hold the Adam state)"),
    "out_dir": (str, "runs/gmint-scratch", "run folder to write"),
})


def _choice(P: dict, name: str, valid: tuple, allow_all: bool = True) -> tuple:
    v = P[name]
    if allow_all and v == "all":
        return valid
    if v not in valid:
        raise _params.ParameterError(f"{name}={v!r}; valid: {', '.join(valid)}" + (", all" if allow_all else ""))
    return (v,)


def settings(P: dict) -> dict:
    """Resolved grid and labels of a parameter set; raises ParameterError on a bad value."""
    if P["selection"] not in SELECTIONS:
        raise _params.ParameterError(f"selection={P['selection']!r}; valid: {', '.join(SELECTIONS)}")
    if P["audited_optimizer"] not in ("adam", "sgd"):
        raise _params.ParameterError(f"audited_optimizer={P['audited_optimizer']!r}; valid: adam, sgd")
    rule = _choice(P, "rule", RULES, allow_all=False)[0]
    if rule == "adam-state" and P["audited_optimizer"] != "adam" and not P["checkpoint"]:
        raise _params.ParameterError("rule='adam-state' needs audited_optimizer='adam' (it continues that state)")
    fr = FRACTIONS if P["data_fraction"] == 0 else (P["data_fraction"],)
    if any(not 0 < f <= 1 for f in fr):
        raise _params.ParameterError(f"data_fraction={P['data_fraction']}: must be in (0, 1], or 0 for all three")
    rules = tuple(r for r in RULES if P["compare_rules"] and (r != "adam-state" or P["audited_optimizer"] == "adam"))
    return {"setups": _choice(P, "setup", SETUPS), "reductions": _choice(P, "reduction", REDUCTIONS),
            "fractions": fr, "rule": rule, "rules": tuple(dict.fromkeys((rule, *rules))),
            "protocol": "paper" if P["selection"] == "paper" else "heldout"}


def fraction_label(f: float) -> str:
    """1 -> D100, 0.1 -> D10, 0.01 -> D1 (the paper's labels)."""
    return f"D{100 * f:g}"


def condition(reduction: str, f: float) -> str:
    return f"{reduction.upper()};{fraction_label(f)}"


def setup(P: dict, run_dir: str | None = None):
    """Seed, pick the device, load the pool (on the device), open the run folder: (run, pool, device)."""
    from mintkit.core.records import Run
    from mintkit.core.train import pick_device, seed_everything
    S = settings(P)
    seed_everything(P["seed"])
    device = pick_device(P["device"])
    pool = load_pool(P["dataset"], P["data_root"], image_size=P["image_size"] or None).to(device)
    run = Run(run_dir or P["out_dir"], PAPER, P | {"protocol": S["protocol"]}, seed=P["seed"], device=device,
              protocol=S["protocol"])
    return run, pool, device


def make_split(pool: Pool, P: dict, run=None) -> Split:
    """D and E = two equal halves of the pool (by default); eval_fraction of each evaluates the MINT model.

    members = D; mint_train_members = D minus eval members; external = E minus eval non-members.
    """
    d = P["n_members"] or len(pool) // 2
    e = P["n_external"] or d
    n_eval = P["n_eval"] or int(round(P["eval_fraction"] * min(d, e)))
    if n_eval >= min(d, e):
        raise _params.ParameterError(f"n_eval={n_eval} leaves no MINT-training data (|D|={d}, |E|={e})")
    split = build_split(pool, n_members=d, n_external=e - n_eval, n_eval=n_eval, seed=P["seed"],
                        n_mint_members=d - n_eval, overlap="none")
    split.meta.update(protocol="gmint: D/E halves, eval_fraction of each evaluates", eval_fraction=P["eval_fraction"])
    if run is not None:
        run.save_split(split)
    return split


def audited(pool: Pool, split: Split, P: dict, device: torch.device, progress: bool = True):
    """The audited model (cached) and info; info['adam_state'] = {layer: Adam state} when it was kept."""
    from mintkit.core.checkpoints import load_checkpoint
    from mintkit.models.zoo import GMINT_LAYERS
    from mintkit.core.stages import audited_accuracy, train_audited
    from mintkit.core.train import TrainConfig
    layers = layer_names(P["arch"])
    params_of = [f"{n}.weight" for n in layers.values()]
    cfg = TrainConfig(epochs=P["audited_epochs"], batch_size=P["batch_size"], lr=P["lr"],
                      optimizer=P["audited_optimizer"])
    keep = params_of if P["audited_optimizer"] == "adam" and not P["checkpoint"] else None
    model, info = train_audited(pool, split, P["arch"], cfg, device, P["seed"], cache_dir=P["cache_dir"] or None,
                                progress=progress, checkpoint=P["checkpoint"] or None, optimizer_state_of=keep)
    extra = info.pop("optimizer_state", None)
    if P["checkpoint"]:
        extra = load_checkpoint(P["checkpoint"])["extra"]
    try:
        info["adam_state"] = adam_state_of(extra or {}, list(layers.values()))
    except KeyError:
        info["adam_state"] = None
    nonmembers = np.concatenate([split["external"], split["eval_nonmembers"]])
    info["accuracy"] = audited_accuracy(model, pool, split, device, test_idx=nonmembers)
    assert set(GMINT_LAYERS[P["arch"]]) >= {"entry", "middle", "output"}
    return model, info


def layer_names(arch: str) -> dict[str, str]:
    """{entry, middle, output: dotted layer name} of models.GMINT_LAYERS."""
    from mintkit.models.zoo import GMINT_LAYERS
    if arch not in GMINT_LAYERS:
        raise _params.ParameterError(f"arch={arch!r} has no gMINT layers; valid: {', '.join(GMINT_LAYERS)}")
    return {s: GMINT_LAYERS[arch][s] for s in ("entry", "middle", "output")}


def setup_layers(arch: str, setup_name: str) -> list[str]:
    """Layers whose vectors form a setup's feature (combined = the three, concatenated)."""
    names = layer_names(arch)
    return list(names.values()) if setup_name == "combined" else [names[setup_name]]


def modifiers(model, pool: Pool, split: Split, P: dict, info: dict, device: torch.device,
              progress: bool = True) -> Modifiers:
    """Weight modifiers of every sample of D ∪ E for all three layers, every rule asked, every reduction."""
    S = settings(P)
    rules = tuple(r for r in S["rules"] if r != "adam-state" or info.get("adam_state"))
    if S["rule"] not in rules:
        raise ValueError("rule='adam-state' but the audited model has no saved Adam state for its gMINT layers")
    idx = np.concatenate([split["members"], split["external"], split["eval_nonmembers"]])
    return weight_modifiers(model, pool, idx, list(layer_names(P["arch"]).values()), device, rules=rules,
                            reductions=REDUCTIONS, opt=Optimiser(lr=P["lr"]), state=info.get("adam_state"),
                            chunk_size=P["chunk_size"] or None, progress=progress)


def _subsample(idx: np.ndarray, f: float, rng: np.random.Generator) -> np.ndarray:
    k = max(2, int(round(f * len(idx))))
    return np.sort(rng.choice(idx, size=min(k, len(idx)), replace=False))


def mint_sets(split: Split, f: float, seed: int) -> dict[str, np.ndarray]:
    """Pool indices of the four MINT sets with the training part cut to fraction f (members and
    non-members alike, so every fraction stays balanced)."""
    rng = np.random.default_rng([seed, int(round(f * 1e6))])
    return {"mint_train_members": _subsample(split["mint_train_members"], f, rng),
            "external": _subsample(split["external"], f, rng),
            "eval_members": split["eval_members"], "eval_nonmembers": split["eval_nonmembers"]}


@contextmanager
def one_thread(device: torch.device):
    """A tiny MLP on the CPU runs faster on one thread (no intra-op sync); restored afterwards."""
    n = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _xy(get, pos: np.ndarray, neg: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([get(pos), get(neg)]), torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).long()


def fit_eval(get, sets: dict[str, np.ndarray], P: dict, device: torch.device, seed: int | None = None) -> dict:
    """Fit the gMINT MLP on features get(indices) of the MINT-training sets and score the evaluation sets.

    Selection per P['selection'] (module docstring); the calibrated threshold comes from the validation
    slice (selection='val') or the training data, never from evaluation data.
    """
    from mintkit.core.metrics import membership_metrics
    from mintkit.models.classifiers import VanillaMLP, fit_mint, score
    seed = P["seed"] if seed is None else seed
    t0 = time.perf_counter()
    pos, neg = sets["mint_train_members"], sets["external"]
    val = None
    if P["selection"] == "val":
        rng = np.random.default_rng(seed)
        vp = rng.choice(pos, max(1, int(round(P["val_fraction"] * len(pos)))), replace=False)
        vn = rng.choice(neg, max(1, int(round(P["val_fraction"] * len(neg)))), replace=False)
        pos, neg = np.setdiff1d(pos, vp), np.setdiff1d(neg, vn)
        val = _xy(get, vp, vn)
    x, y = _xy(get, pos, neg)
    xe, ye = _xy(get, sets["eval_members"], sets["eval_nonmembers"])
    if P["selection"] == "paper":
        val = (xe, ye)  # the paper's choice: best epoch on the evaluation set (optimistic)
    model = VanillaMLP(x.shape[1], **MLP)
    with one_thread(device):
        hist = fit_mint(model, x, y, device, epochs=P["mint_epochs"], lr=P["mint_lr"],
                        batch_size=P["mint_batch_size"], val=val, seed=seed)
        cx, cy = (x, y) if P["selection"] != "val" else val
        s = score(model, xe, device)
        calib = score(model, cx, device)
    m = membership_metrics(s, ye.numpy(), calib, cy.numpy(), n_boot=P["n_boot"], seed=seed)
    return {"metrics": m, "scores": s, "labels": ye.numpy(), "history": hist, "n_train": int(len(y)),
            "seconds": time.perf_counter() - t0}


def _labels(P: dict) -> dict:
    from mintkit.reference import label_dataset, label_model
    return {"dataset": label_dataset(P["dataset"]), "model": label_model(P["arch"])}


def _add(run, res: dict, info: dict, **keys) -> None:
    run.add_metrics(res["metrics"], audited=info["accuracy"], **keys)


def grid(mods: Modifiers, split: Split, P: dict, info: dict, device: torch.device, run=None) -> tuple[pd.DataFrame, dict]:
    """MINT MLP per setup × reduction × fraction for P['rule']: (tidy table, {cell: fit result}).

    Rows go to the run: Table 1 (every reduction; Combined is labelled "All" as printed there) and
    Table 2 (MEAN).
    """
    S = settings(P)
    lab = _labels(P)
    out, rows = {}, []
    for f in S["fractions"]:
        sets = mint_sets(split, f, P["seed"])
        for su in S["setups"]:
            layers = setup_layers(P["arch"], su)
            for red in S["reductions"]:
                res = fit_eval(lambda i: mods.get(layers, S["rule"], red, i), sets, P, device)
                out[(su, red, f)] = res
                m = res["metrics"]
                rows.append({"setup": SETUP_LABELS[su], "reduction": red.upper(), "data": fraction_label(f),
                             "n_train": res["n_train"], "accuracy": m["mint_accuracy"], "auc": m["auc"],
                             "acc_ci": f"[{m['mint_accuracy_ci_low']:.3f}, {m['mint_accuracy_ci_high']:.3f}]",
                             "tpr@1%fpr": m["tpr_at_1pct_fpr"], "best_epoch": res["history"].get("best_epoch"),
                             "seconds": res["seconds"]})
                if run is not None:
                    label = "All" if su == "combined" else SETUP_LABELS[su]
                    _add(run, res, info, table="Table 1", setup=label, condition=condition(red, f), **lab)
                    if red == "mean":
                        _add(run, res, info, table="Table 2", setup=SETUP_LABELS[su], condition=condition(red, f),
                             **lab)
    return pd.DataFrame(rows), out


def compare_rules(mods: Modifiers, split: Split, P: dict, info: dict, device: torch.device, run=None) -> pd.DataFrame:
    """Combined / MEAN / D100 for every rule computed: the effect of the paper's open choice."""
    sets = mint_sets(split, 1.0, P["seed"])
    layers = setup_layers(P["arch"], "combined")
    rows = []
    for r in mods.rules:
        res = fit_eval(lambda i: mods.get(layers, r, "mean", i), sets, P, device)
        m = res["metrics"]
        rows.append({"rule": r, "accuracy": m["mint_accuracy"], "auc": m["auc"],
                     "acc_ci": f"[{m['mint_accuracy_ci_low']:.3f}, {m['mint_accuracy_ci_high']:.3f}]",
                     "tpr@1%fpr": m["tpr_at_1pct_fpr"], "scores": res["scores"], "labels": res["labels"]})
        if run is not None:
            _add(run, res, info, table="Rules", setup="Combined", condition="MEAN;D100", feature=f"rule={r}",
                 **_labels(P))
    return pd.DataFrame(rows)


def table3(model, pool: Pool, split: Split, P: dict, info: dict, cells: dict, device: torch.device,
           run=None) -> tuple[pd.DataFrame, dict]:
    """gMINT (Combined, MEAN, smallest fraction) vs activation MINT (entry/middle/output taps, per-channel
    max, same MLP, D100) vs the loss-threshold baseline, on the same audited model and split."""
    from mintkit.core.stages import loss_baseline, set_features
    S = settings(P)
    lab = _labels(P)
    taps = ["entry", "middle", "output"]
    feats = set_features(model, pool, split, taps, device, reduce="max")
    order = np.concatenate([split[s] for s in feats])
    table = torch.cat([torch.cat([feats[s][t].flatten(1).float() for t in taps], 1) for s in feats])
    row = np.full(len(pool), -1)
    row[order] = np.arange(len(order))

    def get(idx):  # features of pool indices, whichever MINT set they are in
        return table[torch.as_tensor(row[np.asarray(idx)], dtype=torch.long)]

    act = fit_eval(get, mint_sets(split, 1.0, P["seed"]), P, device)
    loss = loss_baseline(model, pool, split, device, n_boot=P["n_boot"])
    f = min(S["fractions"])
    red = "mean" if "mean" in S["reductions"] else S["reductions"][0]
    g = cells.get(("combined", red, f))
    out = {"MINT (activations)": act, "LOSS (Yeom et al.)": {"metrics": loss, "scores": loss["scores"],
                                                             "labels": loss["labels"]}}
    if g is not None:
        out[f"gMINT;{red.upper()};{fraction_label(f)}"] = g
    if run is not None:
        _add(run, act, info, table="Table 3", setup="", condition="MINT", **lab)
        _add(run, out["LOSS (Yeom et al.)"], info, table="Table 3", setup="", condition="LOSS (Yeom et al.)", **lab)
        if g is not None:
            _add(run, g, info, table="Table 3", setup="Combined", condition=f"gMINT;{red.upper()};{fraction_label(f)}",
                 **lab)
    rows = [{"method": k, "accuracy": v["metrics"]["mint_accuracy"], "auc": v["metrics"]["auc"],
             "tpr@1%fpr": v["metrics"]["tpr_at_1pct_fpr"], **info["accuracy"]} for k, v in out.items()]
    return pd.DataFrame(rows), out


# ------------------------------------------------------------------------------ tables and figures
def paper_layout(df: pd.DataFrame, reductions: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Tables 1-2 layout of a grid() table: rows (reduction, setup), columns data fraction, cells % accuracy."""
    d = df if reductions is None else df[df["reduction"].isin([r.upper() for r in reductions])]
    t = d.pivot_table(index=["reduction", "setup"], columns="data", values="accuracy", sort=False)
    return (100 * t).round(2)


def published_layout(P: dict, table: str = "Table 2") -> tuple[pd.DataFrame, str]:
    """The published block for this dataset and model (Tab. 1: MNIST, by reduction; Tab. 2: MEAN, all datasets)
    in % — or, when the paper has no such setting, the MNIST block of every model, as context."""
    from mintkit.reference import published
    pub = published("gmint")
    pub = pub[(pub["table"] == table) & (pub["metric"] == "mint_accuracy")].copy()
    lab = _labels(P)
    sel = pub[(pub["dataset"] == lab["dataset"]) & (pub["model"] == lab["model"])]
    note = f"published, {lab['dataset']} / {lab['model']}"
    if sel.empty:
        sel = pub[pub["dataset"] == "MNIST"]
        note = f"published MNIST, all models (the paper has no {lab['dataset']} / {lab['model']} setting)"
    sel = sel.assign(reduction=sel["condition"].str.split(";").str[0], data=sel["condition"].str.split(";").str[1])
    t = sel.pivot_table(index=["reduction", "setup"], columns=["model", "data"], values="value", sort=False)
    return (100 * t).round(2), note


def figure_tables(df: pd.DataFrame, P: dict, run) -> "object":
    """Reproduced Tables 1-2 beside the published block, as one figure (saved as tables.png/pdf)."""
    import matplotlib.pyplot as plt
    from mintkit.core.plots import plot_table, save_figure
    ours = paper_layout(df)
    pub, note = published_layout(P, "Table 1" if P["dataset"] in ("mnist", "mnist-test") else "Table 2")
    fig, axes = plt.subplots(2, 1, figsize=(7.0, 1.2 + 0.22 * (len(ours) + len(pub))),
                             gridspec_kw={"height_ratios": [len(ours) + 1, len(pub) + 1]})
    plot_table(ours.map(lambda v: f"{v:.2f}"), axes[0], fontsize=6)
    axes[0].set_title(f"reproduced: {_labels(P)['dataset']} / {_labels(P)['model']}, rule {P['rule']} (accuracy %)",
                      fontsize=7)
    plot_table(pub.map(lambda v: f"{v:g}"), axes[1], fontsize=5)
    axes[1].set_title(note, fontsize=7)
    save_figure(fig, run.dir, "tables")
    return fig


def figure_fractions(df: pd.DataFrame, P: dict, run):
    """Accuracy vs data fraction, one panel per reduction, one line per setup."""
    import matplotlib.pyplot as plt
    from mintkit.core.plots import save_figure
    reds = list(dict.fromkeys(df["reduction"]))
    fig, axes = plt.subplots(1, len(reds), figsize=(2.4 * len(reds), 2.2), sharey=True, squeeze=False)
    for ax, red in zip(axes[0], reds):
        for su, d in df[df["reduction"] == red].groupby("setup", sort=False):
            ax.plot(d["n_train"], 100 * d["accuracy"], marker="o", label=su)
        ax.set_xscale("log")
        ax.set_title(red)
        ax.set_xlabel("MINT-training samples")
        ax.axhline(50, ls="--", lw=0.8, color="0.5")
    axes[0][0].set_ylabel("MINT accuracy (%)")
    axes[0][-1].legend(fontsize="x-small")
    save_figure(fig, run.dir, "fractions")
    return fig


def figure_roc(curves: dict[str, dict], run):
    """Log-log ROC of several methods (each {'scores', 'labels'})."""
    import matplotlib.pyplot as plt
    from mintkit.core.plots import roc_loglog, save_figure
    fig, ax = plt.subplots(figsize=(3.4, 3.0))
    for name, r in curves.items():
        roc_loglog(ax, r["scores"], r["labels"], label=name, mark_fprs=(0.01,))
    save_figure(fig, run.dir, "roc")
    return fig


def figure_rules(rules: pd.DataFrame, run):
    import matplotlib.pyplot as plt
    from mintkit.core.plots import save_figure
    fig, ax = plt.subplots(figsize=(3.2, 2.2))
    ax.bar(rules["rule"], 100 * rules["accuracy"])
    ax.axhline(50, ls="--", lw=0.8, color="0.5")
    ax.set_ylabel("MINT accuracy (%)")
    ax.set_title("Combined, MEAN, D100", fontsize="small")
    save_figure(fig, run.dir, "rules")
    return fig


def save_scores(run, cells: dict, rules: pd.DataFrame | None, t3: dict) -> None:
    """Per-sample MINT scores and labels of every fit into scores.npz."""
    arr = {}
    for (su, red, f), r in cells.items():
        name = f"gmint_{su}_{red}_{fraction_label(f)}"
        arr[f"{name}_scores"], arr[f"{name}_labels"] = r["scores"], r["labels"]
    for _, r in (rules.iterrows() if rules is not None else []):
        arr[f"rule_{r['rule']}_scores"], arr[f"rule_{r['rule']}_labels"] = r["scores"], r["labels"]
    for k, r in t3.items():
        name = "table3_" + "".join(c if c.isalnum() else "_" for c in k)
        arr[f"{name}_scores"], arr[f"{name}_labels"] = r["scores"], r["labels"]
    run.save_scores(**arr)
