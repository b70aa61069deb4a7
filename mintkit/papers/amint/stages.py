"""aMINT (Active MINT, ICCV 2025): the notebook's parameters and stage functions.

Stages, one notebook cell each: ``setup`` (run folder, device, pool) -> ``make_splits`` (one
split per protocol) -> ``active_mint`` (M+ trained jointly) -> ``passive_mint`` (the same
arch trained alone, then the same head family on its two frozen maps) -> ``evaluate`` (MINT
scores, audited accuracy, the loss-threshold baseline; rows into results.csv) -> figures and
the paper's Tables 1-3 beside the published numbers.

Protocols (design.md): ``paper`` = members evaluated are D, which also trained the MINT head
(``overlap="paper"``); ``heldout`` = evaluated members trained the audited task but were kept out
of the MINT loss (``overlap="none"``). Non-members = the dataset's test split when the pool has
one, else pool samples never used. Thresholds: 0.5 (the paper's number) and one calibrated on
the validation slice of the MINT-training data (D and E held out of the training steps); never
on evaluation data (the oracle threshold is shown in the notebook as "optimistic, not reported").
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mintkit.core import params as _params
from mintkit.papers.amint.mplus import MintPlus, build_mplus, mint_scores, train_mplus
from mintkit.core.data import TEST, Pool, load_pool
from mintkit.core.splits import Split, build_split

PAPER = "amint"
PROTOCOLS = ("paper", "heldout")

PARAMS = _params.schema({
    "dataset": (str, "digits", "dataset name (mintkit.core.data.DATASETS); imagefolder:<path> for CASIA-WebFace"),
    "image_size": (int, 0, "resize images to this side (0 = native; the notebooks used 64 for GTSRB/Tiny/CASIA)"),
    "arch": (str, "smallcnn", "audited architecture: mobilenet resnet50 resnet101 densenet121 xception vit smallcnn"),
    "setup": (str, "entry", "where the two AAD maps are taken: entry, middle, output (models.AMINT_TAPS)"),
    "audited_epochs": (int, 25, "max epochs of the joint (active) training and of the passive audited model"),
    "mint_epochs": (int, 25, "max epochs of the passive MINT head on the frozen audited model"),
    "lr": (float, 1e-3, "Adam learning rate (paper E1: 1e-5, E2: 1e-4)"),
    "weight_decay": (float, 1e-4, "L2 regulariser R(w+) on every weight (paper E1: 1e-4, E2: 1e-5)"),
    "lambda_task": (float, 1.0, "λ1, weight of the normalised task loss"),
    "lambda_ratio": (float, 10.0, "λ2/λ1, weight of the normalised MINT loss relative to the task (E1: 10, E2: 1e4)"),
    "mint_width": (int, 64, "channels of the first conv (FC for ViT) of each MINT branch (E1: 256, E2: 1024)"),
    "mint_convs": (int, 1, "convs per branch; each doubles the width (E1: 1, E2: 2 = 1024 then 2048)"),
    "mint_hidden": (int, 0, "width of the first of the two linear layers (0 = the fused width, 2 x last branch)"),
    "mint_dropout": (float, 0.4, "dropout between the two linear layers (E1: 0.4, E2: 0.2)"),
    "mint_pool": (str, "max", "global pooling of each branch: max (released notebooks) or mean"),
    "patience": (int, 8, "early stopping: epochs without a better validation objective (0 = off)"),
    "val_fraction": (float, 0.15, "share of E (and as many members) held out of training for early stopping"),
    "n_members": (int, 300, "|D|: trains the audited task (0 = the paper: 50% of the training split)"),
    "n_external": (int, 300, "|E|: non-members of the MINT loss (0 = the paper: the other 50%)"),
    "n_eval": (int, 100, "evaluation members = evaluation non-members, balanced (0 = the whole test split)"),
    "protocol": (str, "both", "'paper', 'heldout' or 'both'"),
    "n_boot": (int, 200, "bootstrap resamples of the confidence intervals (0 = none)"),
    "cache_dir": (str, ".cache/mintkit/models", "cache of passive audited models ('' = no cache)"),
    "threads": (int, 1, "torch CPU threads (0 = torch's default; 1 is fastest on a shared 2-core machine)"),
    "out_dir": (str, "runs/amint-scratch", "run folder to write"),
})

SETUP_LABELS = {"entry": "Entry", "middle": "Middle", "output": "Output"}


def protocols(P: dict) -> tuple[str, ...]:
    if P["protocol"] == "both":
        return PROTOCOLS
    if P["protocol"] not in PROTOCOLS:
        raise _params.ParameterError(f"protocol {P['protocol']!r}; valid: paper, heldout, both")
    return (P["protocol"],)


def setup(P: dict, run_dir: str | None = None):
    """Seed, pick the device, load the pool (on the device) and open the run folder: (run, pool, device)."""
    from mintkit.core.records import Run
    from mintkit.core.train import pick_device, seed_everything
    protocols(P)
    seed_everything(P["seed"])
    device = pick_device(P["device"])
    if device.type == "cpu" and P["threads"] > 0:
        torch.set_num_threads(P["threads"])
    pool = load_pool(P["dataset"], P["data_root"], image_size=P["image_size"] or None).to(device)
    run = Run(run_dir or P["out_dir"], PAPER, P, seed=P["seed"], device=device, protocol=protocols(P)[0])
    return run, pool, device


# ---------------------------------------------------------------------------------- splits
def make_split(pool: Pool, P: dict, protocol: str) -> Split:
    """The protocol's split plus a validation slice (split.meta val_members / val_nonmembers).

    val_nonmembers: n_val samples of E, held out of every training step. val_members: n_val
    members that are disjoint from the evaluation members and, like them, trained the MINT loss
    (paper) or only the task (heldout). D, E and the evaluation non-members are the same sets
    under both protocols for one seed.
    """
    origin = "test" if (pool.origin == TEST).any() else "pool"
    P = P | paper_sizes(pool, P)
    n_val = max(2, int(round(P["val_fraction"] * P["n_external"])))
    kw = dict(n_members=P["n_members"], n_external=P["n_external"], n_eval=P["n_eval"], seed=P["seed"],
              nonmember_origin=origin)
    if protocol == "paper":
        split = build_split(pool, overlap="paper", **kw)
        candidates = np.setdiff1d(split["mint_train_members"], split["eval_members"])
    else:
        split = build_split(pool, overlap="none", n_mint_members=P["n_members"] - P["n_eval"] - n_val, **kw)
        candidates = np.setdiff1d(np.setdiff1d(split["members"], split["mint_train_members"]), split["eval_members"])
    rng = np.random.default_rng(P["seed"] + 1)
    if len(candidates) < n_val:
        raise ValueError(f"{protocol}: {len(candidates)} members left for validation, {n_val} needed; "
                         f"raise n_members or lower n_eval / val_fraction")
    split.meta.update(protocol=protocol, val_members=np.sort(rng.permutation(candidates)[:n_val]).tolist(),
                      val_nonmembers=np.sort(rng.permutation(split["external"])[:n_val]).tolist())
    check_validation(split)
    return split


def paper_sizes(pool: Pool, P: dict) -> dict:
    """Sizes left at 0 take the paper's split: D = E = 50% of the training split, evaluation
    non-members = the whole test split (capped by what D can match); a pool without a test split
    (imagefolder: CASIA-WebFace) keeps 10% for evaluation non-members, D = E = 45% each."""
    has_test = bool((pool.origin == TEST).any())
    n_train = int((pool.origin != TEST).sum())
    half = n_train // 2 if has_test else int(0.45 * len(pool))
    out = {k: P[k] or half for k in ("n_members", "n_external")}
    if not P["n_eval"]:
        n_non = int((pool.origin == TEST).sum()) if has_test else len(pool) - 2 * half
        out["n_eval"] = min(n_non, int(out["n_members"] * (1 - P["val_fraction"])) - 1)
    return out


def check_validation(split: Split) -> None:
    """Validation slices never touch evaluation data; val non-members ⊆ E, val members ⊆ D."""
    vm, vn = np.asarray(split.meta["val_members"]), np.asarray(split.meta["val_nonmembers"])
    for name, a, b in (("val_members", vm, split["eval_members"]), ("val_nonmembers", vn, split["eval_nonmembers"]),
                       ("val_members", vm, split["eval_nonmembers"])):
        n = len(np.intersect1d(a, b))
        assert n == 0, f"{name} overlaps evaluation data in {n} samples"
    assert np.isin(vn, split["external"]).all() and np.isin(vm, split["members"]).all()


def make_splits(pool: Pool, P: dict, run=None) -> dict[str, Split]:
    """{protocol: split}; saved as split.json (first protocol) and split_<protocol>.json."""
    out = {p: make_split(pool, P, p) for p in protocols(P)}
    if run is not None:
        for i, (p, s) in enumerate(out.items()):
            s.save(run.dir / f"split_{p}.json")
            if i == 0:
                run.save_split(s)
    return out


def split_table(splits: dict[str, Split]) -> pd.DataFrame:
    """Set sizes per protocol, plus how many evaluated members trained the MINT loss."""
    rows = {}
    for p, s in splits.items():
        sets = training_sets(s)
        rows[p] = s.sizes() | {"val_members": len(sets["val_members"]), "val_nonmembers": len(sets["val_nonmembers"]),
                               "E used in training": len(sets["external"]),
                               "eval members in MINT loss": int(np.isin(s["eval_members"], sets["mint_members"]).sum())}
    return pd.DataFrame(rows)


def training_sets(split: Split) -> dict[str, np.ndarray]:
    """What train_mplus needs: task (all D), mint_members, external (E minus validation), val slices."""
    vn = np.asarray(split.meta["val_nonmembers"], dtype=np.int64)
    return {"task": split["members"], "mint_members": split["mint_train_members"],
            "external": np.setdiff1d(split["external"], vn),
            "val_members": np.asarray(split.meta["val_members"], dtype=np.int64), "val_nonmembers": vn}


# -------------------------------------------------------------------------------- training
def _head_kw(P: dict) -> dict:
    return dict(width=P["mint_width"], n_convs=P["mint_convs"], hidden=P["mint_hidden"], dropout=P["mint_dropout"],
                pool=P["mint_pool"])


def _train_kw(P: dict, epochs: int) -> dict:
    return dict(epochs=epochs, batch_size=P["batch_size"], lr=P["lr"], weight_decay=P["weight_decay"],
                lambda_task=P["lambda_task"], lambda_ratio=P["lambda_ratio"], patience=P["patience"], seed=P["seed"])


def active_mint(pool: Pool, split: Split, P: dict, device: torch.device, max_steps: int | None = None
                ) -> tuple[MintPlus, dict]:
    """Build M+ from a fresh zoo model and train task + MINT jointly (paper protocol of training)."""
    from mintkit.models.zoo import build_model
    from mintkit.core.train import seed_everything
    seed_everything(P["seed"])
    audited = build_model(P["arch"], pool.num_classes, pool.in_channels, pool.image_size)
    model = build_mplus(audited.to(device), P["setup"], pool.image_size, pool.in_channels, **_head_kw(P))
    hist = train_mplus(model, pool, training_sets(split), device, mode="active",
                       max_steps=max_steps, **_train_kw(P, P["audited_epochs"]))
    return model, hist


def passive_mint(pool: Pool, split: Split, P: dict, device: torch.device, max_steps: int | None = None
                 ) -> tuple[MintPlus, dict]:
    """The same arch trained alone on D (pipeline.train_audited, cached), then the same head family
    trained on its two frozen maps (D MINT members vs E): the passive MINT of the paper's Tab. 2."""
    from mintkit.core.stages import train_audited
    from mintkit.core.train import TrainConfig, seed_everything
    cfg = TrainConfig(epochs=P["audited_epochs"], batch_size=P["batch_size"], lr=P["lr"],
                      weight_decay=P["weight_decay"])
    audited, info = train_audited(pool, split, P["arch"], cfg, device, P["seed"], cache_dir=P["cache_dir"] or None,
                                  progress=False)
    seed_everything(P["seed"])
    model = build_mplus(audited, P["setup"], pool.image_size, pool.in_channels, **_head_kw(P))
    hist = train_mplus(model, pool, training_sets(split), device, mode="passive",
                       max_steps=max_steps, **_train_kw(P, P["mint_epochs"]))
    hist["audited"] = {k: v for k, v in info.items() if k in ("loss", "seconds", "cache_hit", "cache_key")}
    return model, hist


# ------------------------------------------------------------------------------ evaluation
def oracle_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Best accuracy over all thresholds ON THE EVALUATION DATA: optimistic, never reported."""
    s, y = np.asarray(scores), np.asarray(labels).astype(bool)
    t = np.unique(s)
    acc = [((s >= x) == y).mean() for x in t]
    return float(max(acc)) if acc else float("nan")


def evaluate(model: MintPlus, pool: Pool, split: Split, device: torch.device, n_boot: int = 200,
             seed: int = 0) -> dict:
    """MINT metrics on the evaluation sets (threshold 0.5; calibrated on the validation slice of the
    MINT-training data), the audited model's accuracies ("Aud" = test/eval non-members), the
    loss-threshold baseline on the same audited weights, and the per-sample scores."""
    from mintkit.core.metrics import membership_metrics
    from mintkit.core.stages import audited_accuracy, loss_baseline
    t0 = time.perf_counter()
    sets = training_sets(split)
    s = np.r_[mint_scores(model, pool, split["eval_members"], device),
              mint_scores(model, pool, split["eval_nonmembers"], device)]
    y = np.r_[np.ones(len(split["eval_members"])), np.zeros(len(split["eval_nonmembers"]))].astype(int)
    cs = np.r_[mint_scores(model, pool, sets["val_members"], device),
               mint_scores(model, pool, sets["val_nonmembers"], device)]
    cy = np.r_[np.ones(len(sets["val_members"])), np.zeros(len(sets["val_nonmembers"]))].astype(int)
    m = membership_metrics(s, y, cs, cy, n_boot=n_boot, seed=seed)
    aud = audited_accuracy(model.audited, pool, split, device)
    base = loss_baseline(model.audited, pool, split, device, n_boot=n_boot)
    return {"metrics": m, "audited": aud, "scores": s, "labels": y, "oracle_accuracy": oracle_accuracy(s, y),
            "loss_baseline": base, "seconds": time.perf_counter() - t0}


def record(run, P: dict, protocol: str, condition: str, ev: dict, seconds: dict[str, float]) -> None:
    """Rows of one (protocol, condition) result: Tables 1-3 keys, the audited accuracies, Yeom et al."""
    from mintkit.reference import label_dataset, label_model
    keys = dict(dataset=label_dataset(P["dataset"]), model=label_model(P["arch"]), protocol=protocol)
    st = SETUP_LABELS[P["setup"]]
    tables = ("Table 1", "Table 2", "Table 3") if condition == "Active" else ("Table 2", "Table 3")
    for t in tables:
        run.add_metrics(ev["metrics"], ev["audited"], table=t, setup=st, condition=condition, **keys)
    yeom = "Yeom et al." if condition == "Passive" else "Yeom et al. (on M+)"
    run.add_metrics(ev["loss_baseline"], ev["audited"], table="Table 3", setup="", condition=yeom, **keys)
    tag = f"{condition.lower()}_{protocol}"
    run.save_scores(**{f"{tag}_scores": ev["scores"], f"{tag}_labels": ev["labels"],
                       f"{tag}_loss_scores": ev["loss_baseline"]["scores"]})
    for stage, sec in seconds.items():
        run.add(f"time_{stage}", sec, table="", setup=st, condition=condition, protocol=protocol, **{
            k: v for k, v in keys.items() if k != "protocol"})


def summary(results: dict) -> pd.DataFrame:
    """One row per (protocol, condition): MINT accuracy @0.5 / calibrated, AUC, Aud, train acc, gap,
    the loss baseline, and the oracle accuracy (optimistic, shown for contrast only)."""
    rows = []
    for (protocol, cond), ev in results.items():
        m, a = ev["metrics"], ev["audited"]
        rows.append({"protocol": protocol, "condition": cond, "mint_acc@0.5": m["mint_accuracy"],
                     "ci95": f"[{m['mint_accuracy_ci_low']:.2f}, {m['mint_accuracy_ci_high']:.2f}]",
                     "mint_acc_calibrated": m["mint_accuracy_calibrated"], "auc": m["auc"],
                     "tpr@1%fpr": m["tpr_at_1pct_fpr"], "Aud (test acc)": a["audited_accuracy"],
                     "train acc": a["audited_train_accuracy"],
                     "gen. gap": a["audited_train_accuracy"] - a["audited_accuracy"],
                     "loss attack acc": ev["loss_baseline"]["mint_accuracy"],
                     "n members/non": f"{m['n_eval_members']}/{m['n_eval_nonmembers']}",
                     "oracle acc (optimistic, not reported)": ev["oracle_accuracy"]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- figures
def plot_curves(histories: dict, out_dir: str | Path | None = None):
    """Training curves of both tasks per (protocol, condition): train losses, validation accuracies."""
    import matplotlib.pyplot as plt
    from mintkit.core.plots import save_figure, use_style
    use_style()
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    for (protocol, cond), h in histories.items():
        ep = np.arange(1, len(h["loss"]) + 1)
        lab = f"{cond}, {protocol}"
        if cond == "Active":
            axes[0].plot(ep, h["task_loss"], label=f"task CE ({lab})")
        axes[0].plot(ep, h["mint_loss"], ls="--", label=f"MINT BCE ({lab})")
        axes[1].plot(ep, h["val_task_acc"], label=lab)
        axes[2].plot(ep, h["val_mint_acc"], label=lab)
        if "best_epoch" in h:
            axes[2].axvline(h["best_epoch"], lw=0.6, color=axes[2].lines[-1].get_color())
    for ax, t in zip(axes, ("training losses", "task accuracy (validation E)", "MINT accuracy@0.5 (validation)")):
        ax.set_title(t)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize="xx-small")
    axes[2].legend(fontsize="xx-small")
    fig.tight_layout()
    if out_dir:
        save_figure(fig, out_dir, "amint_training_curves")
    return fig


def plot_scores(results: dict, out_dir: str | Path | None = None):
    """Score histograms (MINT, each result) and log-log ROC (MINT active/passive + loss attack)."""
    import matplotlib.pyplot as plt
    from mintkit.core.plots import roc_loglog, save_figure, score_histogram, use_style
    use_style()
    prots = list(dict.fromkeys(p for p, _ in results))
    n = len(results)
    fig, axes = plt.subplots(2, max(n, len(prots)), figsize=(2.6 * max(n, len(prots)), 5.2), squeeze=False)
    for j, ((protocol, cond), ev) in enumerate(results.items()):
        score_histogram(axes[0, j], ev["scores"], ev["labels"], bins=30)
        axes[0, j].set_title(f"{cond} MINT, {protocol}")
    for j, protocol in enumerate(prots):
        ax = axes[1, j]
        for (p, cond), ev in results.items():
            if p == protocol:
                roc_loglog(ax, ev["scores"], ev["labels"], label=f"{cond} MINT")
        ev = next(ev for (p, c), ev in results.items() if p == protocol and c == "Passive") \
            if (protocol, "Passive") in results else next(ev for (p, c), ev in results.items() if p == protocol)
        roc_loglog(ax, ev["loss_baseline"]["scores"], ev["loss_baseline"]["labels"], label="loss attack")
        ax.set_title(f"ROC, {protocol}")
    for ax in axes[1, len(prots):]:
        ax.axis("off")
    fig.tight_layout()
    if out_dir:
        save_figure(fig, out_dir, "amint_scores_roc")
    return fig


def paper_tables(run_rows: pd.DataFrame, P: dict, protocol: str = "paper") -> dict[str, pd.DataFrame]:
    """Tables 1-3 in the paper's layout, cells 'published | ours' (ours from `protocol`).

    Published rows of the run's dataset; a dataset the paper does not have (digits) is placed
    beside the MNIST rows, and each table's title (``.attrs["title"]``) says so.
    """
    from mintkit.core.plots import published_vs_reproduced
    from mintkit.reference import label_dataset, published
    pub = published(PAPER)
    ds = label_dataset(P["dataset"])
    ref = ds if (pub["dataset"] == ds).any() else "MNIST"
    keys = ["paper", "table", "dataset", "model", "setup", "condition", "feature", "metric"]
    rep = run_rows[(run_rows["protocol"] == protocol) & run_rows["metric"].isin(["mint_accuracy", "audited_accuracy"])]
    if ref != ds and len(rep):
        rep = rep.assign(dataset=np.where(rep["table"] == "Table 3", ds, ref))
    j = published_vs_reproduced(rep, pub, keys, how="outer")
    j = j.assign(cell=[("-" if pd.isna(p) else f"{p:.2f}") + ("" if pd.isna(r) else f" | {r:.2f}")
                       for p, r in zip(j["published"], j["reproduced"])],
                 col=j["model"] + " " + j["metric"].map({"mint_accuracy": "MINT", "audited_accuracy": "Aud"}))
    layouts = {"Table 1": ("setup", "col"), "Table 2": ("condition", "col"), "Table 3": ("condition", "dataset")}
    out = {}
    for table, (index, columns) in layouts.items():
        t = j[j["table"] == table]
        t = t[t["metric"] == "mint_accuracy"] if table == "Table 3" else t[t["dataset"] == ref]
        t = t.pivot_table(index=index, columns=columns, values="cell", aggfunc="first", sort=False).fillna("")
        t.attrs["title"] = (f"aMINT {table}, published | ours ({ds}, {label_protocol(protocol)}"
                            + ("" if ref == ds else f"; published cells are {ref}") + ")")
        out[table] = t
    return out


def label_protocol(protocol: str) -> str:
    return {"paper": "paper protocol", "heldout": "held-out protocol"}[protocol]


def save_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> None:
    """Each table as a figure (png + pdf) and as CSV."""
    import matplotlib.pyplot as plt
    from mintkit.core.plots import plot_table, save_figure, use_style
    use_style()
    for name, t in tables.items():
        slug = name.lower().replace(" ", "")
        t.to_csv(Path(out_dir) / f"amint_{slug}.csv")
        fig, ax = plt.subplots(figsize=(min(1.1 * t.shape[1] + 1.5, 16), 0.35 * t.shape[0] + 0.9))
        plot_table(t, ax, fontsize=6)
        ax.set_title(t.attrs.get("title", name), fontsize=7)
        save_figure(fig, out_dir, f"amint_{slug}")
        plt.close(fig)


# ------------------------------------------------------------------------- notebook helpers
def describe_mplus(pool: Pool, P: dict) -> pd.DataFrame:
    """The two taps of the setup, their shapes, and the MINT head's layers and parameter count."""
    from mintkit.models.zoo import build_model
    audited = build_model(P["arch"], pool.num_classes, pool.in_channels, pool.image_size)
    m = build_mplus(audited, P["setup"], pool.image_size, pool.in_channels, **_head_kw(P))
    n_head = sum(p.numel() for p in m.mint.parameters())
    n_aud = sum(p.numel() for p in m.audited.parameters())
    return pd.DataFrame({"tap": list(m.tap_names), "shape [C,H,W] / [T,D]": [str(list(s)) for s in m.tap_shapes],
                         "branch": [str(b.net) .replace("\n", "") for b in m.mint.branches],
                         "head": [str(m.mint.fc).replace("\n", "")] * 2,
                         "params (head / audited)": [f"{n_head:,} / {n_aud:,}"] * 2})


def evaluate_all(run, pool: Pool, splits: dict[str, Split], trained: dict, P: dict, device: torch.device) -> dict:
    """Evaluate every trained (protocol, condition) model, write its rows and scores; {(p, c): result}."""
    results = {}
    for (protocol, cond), (model, hist) in trained.items():
        ev = evaluate(model, pool, splits[protocol], device, n_boot=P["n_boot"], seed=P["seed"])
        secs = {f"train_{cond.lower()}": hist["seconds"], f"evaluate_{cond.lower()}": ev["seconds"]}
        if "audited" in hist and "seconds" in hist["audited"]:
            secs["train_audited_alone"] = hist["audited"]["seconds"]
        record(run, P, protocol, cond, ev, secs)
        results[(protocol, cond)] = ev
    return results


def verdict(results: dict) -> pd.DataFrame:
    """Active minus passive MINT accuracy@0.5 per protocol, with both 95% intervals: does active ≫ passive hold?

    'holds' needs the active interval's lower end above the passive interval's upper end; we
    report it, we never tune towards it."""
    rows = []
    for protocol in dict.fromkeys(p for p, _ in results):
        a, p = results.get((protocol, "Active")), results.get((protocol, "Passive"))
        if a is None or p is None:
            continue
        ma, mp = a["metrics"], p["metrics"]
        rows.append({"protocol": protocol, "active": ma["mint_accuracy"], "passive": mp["mint_accuracy"],
                     "difference": ma["mint_accuracy"] - mp["mint_accuracy"],
                     "active > chance": ma["mint_accuracy_ci_low"] > 0.5,
                     "active >> passive (CIs apart)": ma["mint_accuracy_ci_low"] > mp["mint_accuracy_ci_high"],
                     "Aud active / passive": f"{a['audited']['audited_accuracy']:.3f} / "
                                             f"{p['audited']['audited_accuracy']:.3f}"})
    return pd.DataFrame(rows)
