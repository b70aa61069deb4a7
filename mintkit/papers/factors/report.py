"""Factors: the paper's table of one factor (ours beside the published number) and the figure of all factors.

docs/factors.md, "Results".
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mintkit.core.plots import published_vs_reproduced, save_figure, use_style
from mintkit.core.records import Run
from mintkit.papers.factors.params import SCENARIOS, Params
from mintkit.papers.factors.sweep import FEATURE_SETS, MINT_LABEL
from mintkit.reference import published

QUALITY_ROW = "Audited quality"


def paper_table(rows: pd.DataFrame, scenario: str, metric: str = "accuracy") -> pd.DataFrame:
    """The paper's layout of one factor: auditable data x condition, cells 'reproduced (published)'; a last row
    gives the audited model's quality (paper: FR verification accuracy). Cells of conditions not run stay '-'."""
    table = SCENARIOS[scenario]
    keys = ["table", "condition", "feature", "metric"]
    pub = published(Params.PAPER)
    mine = rows[rows["metric"] == metric]
    both = published_vs_reproduced(mine, pub[(pub.table == table) & (pub.metric == metric)], keys, how="outer")
    aud = rows[rows["metric"] == "audited_accuracy"].drop_duplicates("condition")
    conds = list(dict.fromkeys(list(mine["condition"]) + list(both["condition"])))
    fr = pub[(pub.table == table) & (pub.metric == "fr_verification_accuracy")].set_index("condition")["value"]

    def cell(ours, paper) -> str:
        a = "-" if pd.isna(ours) else f"{ours:.2f}"
        return a if pd.isna(paper) else f"{a} ({paper:.2f})"

    out = {c: {r.feature.split(";", 1)[1]: cell(r.reproduced, r.published) for r in both[both.condition == c].itertuples()}
           for c in conds}
    for c in conds:
        ours = aud.loc[aud.condition == c, "value"]
        out[c][QUALITY_ROW] = cell(ours.iloc[0] if len(ours) else np.nan, fr.get(c, fr.get("all quarters")))
    df = pd.DataFrame(out).reindex([*FEATURE_SETS, QUALITY_ROW])
    df.index.name = f"{table}: ours (paper)"
    return df.fillna("-")


def save_tables(run: Run, results: dict[str, pd.DataFrame]) -> None:
    """table_<n>_<factor>.csv in the run folder for every factor run."""
    for scenario, rows in results.items():
        paper_table(rows, scenario).to_csv(run.dir / f"table_{SCENARIOS[scenario][-1]}_{scenario}.csv")


def plot_factor(rows: pd.DataFrame, scenario: str, ax, metric: str = "accuracy"):
    """MINT accuracy of each feature set against the factor's values; audited accuracy on a second axis."""
    mine = rows[rows["metric"] == metric]
    conds = list(dict.fromkeys(mine["condition"]))
    x = np.arange(len(conds))
    for name in FEATURE_SETS:
        v = mine[mine.feature == f"{MINT_LABEL};{name}"].set_index("condition")["value"].reindex(conds)
        ax.plot(x, v.values, marker="o", label=name)
    aud = rows[rows.metric == "audited_accuracy"].drop_duplicates("condition").set_index("condition")["value"]
    ax2 = ax.twinx()
    ax2.plot(x, aud.reindex(conds).values, "k--", marker="s", label="audited accuracy")
    ax2.set_ylabel("audited accuracy")
    ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    ax.set_xticks(x, conds)
    ax.set_ylabel("MINT accuracy")
    ax.set_title(f"{SCENARIOS[scenario]}: {scenario}")
    return ax, ax2


def figure(results: dict[str, pd.DataFrame], out_dir: str | Path | None = None):
    """One panel per factor (`plot_factor`; the baseline alone when no factor ran), a shared legend; saved as
    factors_scenarios.pdf/.png in `out_dir` when given."""
    use_style()
    names = [s for s in results if s != "baseline"] or list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.0), squeeze=False, constrained_layout=True)
    for s, ax in zip(names, axes[0]):
        plot_factor(results[s], s, ax)
    h1, l1 = axes[0][0].get_legend_handles_labels()
    fig.legend(h1 + [plt.Line2D([], [], color="k", ls="--", marker="s")], l1 + ["audited accuracy"],
               loc="outside lower center", ncol=7, fontsize=7)
    if out_dir:
        save_figure(fig, out_dir, "factors_scenarios")
    return fig
