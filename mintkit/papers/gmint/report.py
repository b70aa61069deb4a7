"""gMINT's tables and figures: the paper's Tables 1-2 layout beside the published block, accuracy vs
data fraction, the rule comparison, log-log ROC, and the per-sample scores (docs/gmint.md, "Tables").

Figures use the package style (mintkit/core/paper.mplstyle: saved with a tight bounding box), so
labels, legends and wide tables are never cut at the figure's edge.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from mintkit.core.plots import plot_table, roc_loglog, save_figure, use_style
from mintkit.core.records import DEFINITION, Run
from mintkit.core.result import MembershipResult
from mintkit.papers.gmint.params import Params, fraction_label
from mintkit.reference import published

TABLE_ROW_INCHES = 0.17   # height of one table row at fontsize 5-6
TABLE_COL_INCHES = 0.62   # width of one numeric column at fontsize 5-6


def paper_layout(df: pd.DataFrame, reductions: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Tables 1-2 layout of a grid() table: rows (reduction, setup), columns data fraction, cells % accuracy."""
    d = df if reductions is None else df[df["reduction"].isin([r.upper() for r in reductions])]
    t = d.pivot_table(index=["reduction", "setup"], columns="data", values="accuracy", sort=False)
    return (100 * t).round(2)


def published_layout(P: Params, table: str = "Table 2") -> tuple[pd.DataFrame, str]:
    """The published block for this dataset and model in % (Tab. 1: MNIST by reduction; Tab. 2: MEAN, all
    datasets), or, when the paper has no such setting, the MNIST block of every model as context."""
    pub = published("gmint")
    pub = pub[(pub["table"] == table) & (pub["metric"] == "accuracy")].copy()
    lab = P.labels
    sel = pub[(pub["dataset"] == lab["dataset"]) & (pub["model"] == lab["model"])]
    note = f"published, {lab['dataset']} / {lab['model']}"
    if sel.empty:
        sel = pub[pub["dataset"] == "MNIST"]
        note = f"published MNIST, all models (the paper has no {lab['dataset']} / {lab['model']} setting)"
    sel = sel.assign(reduction=sel["condition"].str.split(";").str[0], data=sel["condition"].str.split(";").str[1])
    t = sel.pivot_table(index=["reduction", "setup"], columns=["model", "data"], values="value", sort=False)
    return (100 * t).round(2), note


def figure_tables(run: Run, df: pd.DataFrame, P: Params):
    """Reproduced Tables 1-2 above the published block, as one figure (tables.png / .pdf)."""
    use_style()
    ours = paper_layout(df)
    pub, note = published_layout(P, "Table 1" if P.dataset in ("mnist", "mnist-test") else "Table 2")
    width = max(4.0, 1.2 + TABLE_COL_INCHES * max(ours.shape[1], pub.shape[1]))
    height = 1.0 + TABLE_ROW_INCHES * (len(ours) + len(pub) + 4)
    fig, axes = plt.subplots(2, 1, figsize=(width, height),
                             gridspec_kw={"height_ratios": [len(ours) + 2, len(pub) + 2]})
    plot_table(ours.map(lambda v: f"{v:.2f}"), axes[0], fontsize=6)
    lab = P.labels
    # only the definition is a reproduction; a control or a variant names itself (save_figure adds its banner)
    variant = getattr(run, "variant", DEFINITION)
    what = "reproduced" if variant in ("", DEFINITION) else f"measured ({variant})"
    axes[0].set_title(f"{what}: {lab['dataset']} / {lab['model']}, rule {P.rule} (accuracy %)", fontsize=7)
    plot_table(pub.map(lambda v: f"{v:g}"), axes[1], fontsize=5)
    axes[1].set_title(note, fontsize=7)
    save_figure(fig, run.dir, "tables", variant=getattr(run, "variant", None))
    return fig


def figure_fractions(run: Run, df: pd.DataFrame):
    """Accuracy vs the number of MINT-training samples, one panel per reduction, one line per setup."""
    use_style()
    reds = list(dict.fromkeys(df["reduction"]))
    fig, axes = plt.subplots(1, len(reds), figsize=(2.4 * len(reds), 2.4), sharey=True, squeeze=False)
    for ax, red in zip(axes[0], reds):
        for su, d in df[df["reduction"] == red].groupby("setup", sort=False):
            ax.plot(d["n_train"], 100 * d["accuracy"], marker="o", label=su)
        ax.set_xscale("log")
        ax.set_title(red)
        ax.set_xlabel("MINT-training samples")
        ax.axhline(50, ls="--", lw=0.8, color="0.5")
    axes[0][0].set_ylabel("MINT accuracy (%)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    save_figure(fig, run.dir, "fractions", variant=getattr(run, "variant", None))
    return fig


def figure_roc(run: Run, curves: dict[str, MembershipResult]):
    """Log-log ROC of several methods ({label: result}), TPR at 1% FPR marked; legend below."""
    use_style()
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    for name, r in curves.items():
        roc_loglog(ax, r.scores, r.labels, label=name, mark_fprs=(0.01,))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    save_figure(fig, run.dir, "roc", variant=getattr(run, "variant", None))
    return fig


def figure_rules(run: Run, rules: pd.DataFrame):
    """Combined / MEAN / D100 accuracy of each single-step rule, chance dashed."""
    use_style()
    fig, ax = plt.subplots(figsize=(3.4, 2.4))
    ax.bar(rules["rule"], 100 * rules["accuracy"])
    ax.axhline(50, ls="--", lw=0.8, color="0.5")
    ax.set_ylabel("MINT accuracy (%)")
    ax.set_xlabel("rule of the single step")
    ax.set_title("Combined, MEAN, D100")
    fig.tight_layout()
    save_figure(fig, run.dir, "rules", variant=getattr(run, "variant", None))
    return fig


def save_scores(run: Run, cells: dict, rules: pd.DataFrame, t3: dict) -> None:
    """Per-sample MINT scores and labels of every fit into scores.npz."""
    arr = {}
    for (su, red, f), r in cells.items():
        name = f"gmint_{su}_{red}_{fraction_label(f)}"
        arr[f"{name}_scores"], arr[f"{name}_labels"] = r.scores, r.labels
    for _, r in rules.iterrows():
        arr[f"rule_{r['rule']}_scores"], arr[f"rule_{r['rule']}_labels"] = r["scores"], r["labels"]
    for k, r in t3.items():
        name = "table3_" + "".join(c if c.isalnum() else "_" for c in k)
        arr[f"{name}_scores"], arr[f"{name}_labels"] = r.scores, r.labels
    run.save_scores(**arr)
