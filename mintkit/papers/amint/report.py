"""aMINT's figures and the paper's Tables 1-3 beside the published numbers (docs/amint.md, "Tables").

Figures use the package style (mintkit/core/paper.mplstyle: saved with a tight bounding box).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from mintkit.core.plots import (plot_table, published_vs_reproduced, roc_loglog, save_figure, score_histogram,
                                use_style)
from mintkit.core.records import Run, read_results
from mintkit.papers.amint.params import Params
from mintkit.reference import STANDIN_FOR, label_dataset, published

PROTOCOL_LABELS = {"paper": "paper protocol", "heldout": "held-out protocol"}


def plot_curves(run: Run, histories: dict[str, dict]):
    """Training curves of each model ({condition: history}): training losses, validation task accuracy,
    validation MINT accuracy (vertical line: the kept epoch)."""
    use_style()
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    for cond, h in histories.items():
        ep = np.arange(1, len(h["loss"]) + 1)
        if cond == "Active":
            axes[0].plot(ep, h["task_loss"], label=f"task CE ({cond})")
        axes[0].plot(ep, h["mint_loss"], ls="--", label=f"MINT BCE ({cond})")
        axes[1].plot(ep, h["val_task_acc"], label=cond)
        axes[2].plot(ep, h["val_mint_acc"], label=cond)
        axes[2].axvline(h["kept_epoch"], lw=0.6, color=axes[2].lines[-1].get_color())
    for ax, t in zip(axes, ("training losses", "task accuracy (validation E)", "MINT accuracy@0.5 (validation)")):
        ax.set_title(t)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize="x-small")
    axes[2].legend(fontsize="x-small")
    fig.tight_layout()
    save_figure(fig, run.dir, "amint_training_curves", variant=getattr(run, "variant", None))
    return fig


def plot_scores(run: Run, results: dict):
    """Score histograms of every (protocol, condition) result and, per protocol, the log-log ROC of
    active and passive MINT beside the loss attack on the passive (plainly trained) model."""
    use_style()
    prots = list(dict.fromkeys(p for p, _ in results))
    n = max(len(results), len(prots))
    fig, axes = plt.subplots(2, n, figsize=(2.8 * n, 6.4), squeeze=False)
    for j, ((protocol, cond), ev) in enumerate(results.items()):
        score_histogram(axes[0, j], ev.scores, ev.labels, bins=30)
        # move seaborn's hue legend below the axes: a fresh ax.legend() finds no labelled artists in a seaborn
        # histogram, warns and drops the members / non-members key
        sns.move_legend(axes[0, j], "upper center", bbox_to_anchor=(0.5, -0.25), ncol=1, title=None)
        axes[0, j].set_title(f"{cond} MINT, {protocol}")
    for j, protocol in enumerate(prots):
        ax = axes[1, j]
        for (p, cond), ev in results.items():
            if p == protocol:
                roc_loglog(ax, ev.scores, ev.labels, label=f"{cond} MINT")
        ev = results.get((protocol, "Passive")) or next(ev for (p, _), ev in results.items() if p == protocol)
        roc_loglog(ax, ev.loss.scores, ev.loss.labels, label="loss attack")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25))  # below the axes: curves stay visible
        ax.set_title(f"ROC, {protocol}")
    for ax in axes[1, len(prots):]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, run.dir, "amint_scores_roc", variant=getattr(run, "variant", None))
    return fig


def paper_tables(run: Run, P: Params, protocol: str = "paper") -> dict[str, pd.DataFrame]:
    """Tables 1-3 in the paper's layout from the run's results.csv, cells 'published | ours' (ours from
    `protocol`). A stand-in is placed beside the dataset it stands in for (cifar10-jpeg beside CIFAR-10), any
    other dataset the paper does not have (digits) beside the MNIST rows, and each table's title
    (``.attrs["title"]``) says so."""
    rows = read_results([run.dir])
    pub = published(P.PAPER)
    ds = label_dataset(P.dataset)
    # a stand-in sits beside the dataset it stands in for (cifar10-jpeg -> CIFAR-10), anything else beside MNIST
    ref = next((d for d in (ds, label_dataset(STANDIN_FOR.get(P.dataset, ""))) if (pub["dataset"] == d).any()),
               "MNIST")
    keys = ["paper", "table", "dataset", "model", "setup", "condition", "feature", "metric"]
    rep = rows[(rows["protocol"] == protocol) & rows["metric"].isin(["accuracy", "audited_accuracy"])]
    if ref != ds and len(rep):
        rep = rep.assign(dataset=np.where(rep["table"] == "Table 3", ds, ref))
    j = published_vs_reproduced(rep, pub, keys, how="outer")
    j = j.assign(cell=[("-" if pd.isna(p) else f"{p:.2f}") + ("" if pd.isna(r) else f" | {r:.2f}")
                       for p, r in zip(j["published"], j["reproduced"])],
                 col=j["model"] + " " + j["metric"].map({"accuracy": "MINT", "audited_accuracy": "Aud"}))
    layouts = {"Table 1": ("setup", "col"), "Table 2": ("condition", "col"), "Table 3": ("condition", "dataset")}
    out = {}
    for table, (index, columns) in layouts.items():
        t = j[j["table"] == table]
        t = t[t["metric"] == "accuracy"] if table == "Table 3" else t[t["dataset"] == ref]
        t = t.pivot_table(index=index, columns=columns, values="cell", aggfunc="first", sort=False).fillna("")
        t.attrs["title"] = (f"aMINT {table}, published | ours ({ds}, {PROTOCOL_LABELS[protocol]}"
                            + ("" if ref == ds else f"; published cells are {ref}") + ")")
        out[table] = t
    return out


def save_tables(run: Run, tables: dict[str, pd.DataFrame]) -> None:
    """Each table as a figure (png + pdf) and as CSV in the run folder."""
    use_style()
    for name, t in tables.items():
        slug = name.lower().replace(" ", "")
        t.to_csv(Path(run.dir) / f"amint_{slug}.csv")
        fig, ax = plt.subplots(figsize=(min(1.1 * t.shape[1] + 1.5, 16), 0.35 * t.shape[0] + 0.9))
        plot_table(t, ax, fontsize=6)
        ax.set_title(t.attrs.get("title", name), fontsize=7)
        save_figure(fig, run.dir, f"amint_{slug}", variant=getattr(run, "variant", None))
        plt.close(fig)
