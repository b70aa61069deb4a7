"""Figures and tables in the papers' conventions.

* :func:`use_style` applies ``mintkit/paper.mplstyle`` (TrueType fonts, single-column sizes,
  Okabe-Ito colours). On matplotlib >= 3.7 ``plt.style.use("mintkit.core.paper")`` does the same.
* :func:`roc_loglog` is the MIA figure of record (log-log ROC with TPR at 0.1% and 1% FPR);
  :func:`roc_linear` is the MINT paper's linear ROC; :func:`score_histogram` shows the
  member / non-member score distributions.
* :func:`results_table` and :func:`published_vs_reproduced` lay tidy rows out as the
  papers' tables; :func:`plot_table` draws a table into a figure.
* :func:`save_figure` writes ``name.pdf`` and ``name.png`` without timestamps, so a rerun
  gives the same bytes.

Plotting functions draw on an ``ax`` you pass and return it; they never create, show or
close figures. Scores follow :mod:`mintkit.core.metrics` (higher = member, labels 1 = member).
"""
from __future__ import annotations

import textwrap
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from sklearn.metrics import roc_curve

from mintkit.core.metrics import summarize_seeds
from mintkit.core.null import POSITIVE
from mintkit.core.records import DEFINITION
from mintkit.core.thresholds import auc_ranks, check_scores, tpr_at_fpr

__all__ = [
    "STYLE_NAME",
    "style_path",
    "use_style",
    "roc_loglog",
    "roc_linear",
    "score_histogram",
    "results_table",
    "published_vs_reproduced",
    "plot_table",
    "save_figure",
    "colours",
    "view_banner",
]

STYLE_NAME = "mintkit.core.paper"


# --------------------------------------------------------------------------- style
def style_path() -> Path:
    """Path of the packaged ``paper.mplstyle``."""
    return Path(str(resources.files("mintkit").joinpath("core/paper.mplstyle")))


def use_style() -> None:
    """Apply the mintkit paper style to the global rcParams."""
    plt.style.use(str(style_path()))


# --------------------------------------------------------------------------- helpers
def colours(names: Iterable[str]) -> dict[str, str]:
    """One distinct colour per name, in first-seen order: the style's Okabe-Ito cycle while it has enough
    colours, else tab20 (its ten dark hues, then their light partners), so up to 20 names never share a colour
    (a cycle would wrap: the 9th curve of an 8-colour cycle repeats the first). Build it once from every name a
    figure draws and pass it to each panel, so a name keeps its colour across panels."""
    names = list(dict.fromkeys(names))
    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", [])
    if len(names) > len(cycle):
        tab = [mcolors.to_hex(c) for c in plt.get_cmap("tab20").colors]
        cycle = tab[0::2] + tab[1::2]
    if len(names) > len(cycle):
        raise ValueError(f"colours: {len(names)} names, at most {len(cycle)} distinct colours")
    return {n: mcolors.to_hex(c) for n, c in zip(names, cycle)}


def _roc(scores, labels):
    s, y = check_scores(scores, labels)
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr, int(y.sum()), int((~y).sum()), s, y


def _fmt_pct(f: float) -> str:
    return f"{100 * f:g}%"


# --------------------------------------------------------------------------- ROC curves
def roc_loglog(ax, scores, labels, label: str | None = None,
               mark_fprs: Sequence[float] = (0.001, 0.01), color=None):
    """ROC on log-log axes, the chance diagonal, and TPR marked at ``mark_fprs``.

    The x axis runs from ``1/n_nonmembers`` (the smallest non-zero FPR the evaluation set
    can show) to 1; ROC points at FPR 0 are drawn on the left edge. Each marked FPR gets a
    marker and a "TPR@x% = ..." note; a level below ``1/n_nonmembers`` is noted as
    "0 FP", i.e. it is measured at zero false positives. The legend label carries the AUC.
    """
    fpr, tpr, n1, n0, s, y = _roc(scores, labels)
    auc = auc_ranks(s[y], s[~y])
    xmin = 1.0 / n0
    ymin = min(xmin, 1.0 / n1)
    text = f"AUC={auc:.3f}" if label is None else f"{label} (AUC={auc:.3f})"
    x = np.clip(fpr, xmin, 1.0)
    (line,) = ax.plot(x, np.clip(tpr, ymin, 1.0), label=text, color=color)
    ax.plot([xmin, 1], [xmin, 1], ls="--", lw=0.8, color="0.5", zorder=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xmin, 1.0)
    ax.set_ylim(ymin, 1.05)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    marked: set[float] = set()
    for f in sorted(mark_fprs, reverse=True):
        t = tpr_at_fpr(s, y, f)
        note = f"TPR@{_fmt_pct(f)}={t:.3f}"
        if f < xmin:
            note += " (0 FP)"
        fx = max(f, xmin)
        if fx in marked:  # below the set's FPR resolution several levels fall on one point: mark it once
            continue
        marked.add(fx)
        ty = max(t, ymin)
        ax.plot([fx], [ty], marker="o", ms=3.5, color=line.get_color(), ls="none")
        ax.annotate(note, (fx, ty), xytext=(4, -9), textcoords="offset points",
                    fontsize="x-small", color=line.get_color(),
                    bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.8))
    ax.legend(loc="lower right")
    return ax


def roc_linear(ax, scores, labels, label: str | None = None, color=None):
    """ROC on linear axes with the chance diagonal and the AUC in the legend (MINT Fig. 5)."""
    fpr, tpr, _, _, s, y = _roc(scores, labels)
    auc = auc_ranks(s[y], s[~y])
    text = f"AUC={auc:.3f}" if label is None else f"{label} (AUC={auc:.3f})"
    ax.plot(fpr, tpr, label=text, color=color)
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.5", zorder=0)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.legend(loc="lower right")
    return ax


def score_histogram(ax, scores, labels, bins: int = 40,
                    names: tuple[str, str] = ("members", "non-members")):
    """Member vs non-member score distributions: seaborn step histograms, each normalised to density on
    shared bins, so groups of different sizes compare; the legend gives each group's n."""
    s, y = check_scores(scores, labels)
    finite = s[np.isfinite(s)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    group = np.where(y, f"{names[0]} (n={int(y.sum())})", f"{names[1]} (n={int((~y).sum())})")
    frame = pd.DataFrame({"score": np.clip(s, lo, hi), "group": group})
    sns.histplot(frame, x="score", hue="group", hue_order=sorted(set(group), key=lambda g: not g.startswith(names[0])),
                 bins=np.linspace(lo, hi, int(bins) + 1), stat="density", common_norm=False, element="step",
                 fill=False, ax=ax)
    ax.get_legend().set_title(None)
    ax.set_xlabel("Membership score")
    ax.set_ylabel("Density")
    return ax


# --------------------------------------------------------------------------- tables
def _as_list(x) -> list:
    return [x] if isinstance(x, str) else list(x)


def _first_seen(df: pd.DataFrame, cols: list[str]):
    keys = df[cols].drop_duplicates()
    if len(cols) == 1:
        return pd.Index(keys[cols[0]], name=cols[0])
    return pd.MultiIndex.from_frame(keys)


def results_table(rows: pd.DataFrame, index, columns, value: str = "value",
                  fmt: str | None = "{:.2f}", sd: str | None = None,
                  na_rep: str = "-") -> pd.DataFrame:
    """Pivot tidy rows into a paper table layout.

    ``index`` / ``columns`` are column names (or lists of names); row and column order follow
    first appearance in ``rows`` (the paper's order when rows come from ``paper_tables``).
    Each (index, columns) cell must appear once: summarise seeds first
    (:func:`mintkit.core.metrics.summarize_seeds`, then ``value="mean", sd="sd"``).
    With ``fmt`` the cells are strings (``fmt.format(v)``, ``"v ± sd"`` when ``sd`` names a
    column, ``na_rep`` for missing cells); with ``fmt=None`` the numeric pivot is returned.
    """
    idx, col = _as_list(index), _as_list(columns)
    need = [*idx, *col, value] + ([sd] if sd else [])
    missing = [c for c in need if c not in rows.columns]
    if missing:
        raise ValueError(f"results_table: missing column(s) {missing}; have {list(rows.columns)}")
    dup = rows.duplicated(subset=idx + col)
    if dup.any():
        example = rows.loc[dup, idx + col].iloc[0].to_dict()
        raise ValueError(
            f"results_table: {int(dup.sum())} duplicate cell(s), e.g. {example}; "
            "summarise seeds first (mintkit.core.metrics.summarize_seeds)"
        )
    data = rows.copy()
    for c in idx + col:  # empty keys stay visible as "" instead of vanishing in the pivot
        data[c] = data[c].astype(object).where(data[c].notna(), "")
    row_order, col_order = _first_seen(data, idx), _first_seen(data, col)
    num = data.pivot(index=idx if len(idx) > 1 else idx[0],
                     columns=col if len(col) > 1 else col[0], values=value)
    num = num.reindex(index=row_order, columns=col_order)
    if fmt is None:
        return num
    if sd:
        sds = data.pivot(index=idx if len(idx) > 1 else idx[0],
                         columns=col if len(col) > 1 else col[0], values=sd)
        sds = sds.reindex(index=row_order, columns=col_order)
    out = pd.DataFrame(index=num.index, columns=num.columns, dtype=object)
    for i in range(num.shape[0]):
        for j in range(num.shape[1]):
            v = num.iat[i, j]
            if pd.isna(v):
                out.iat[i, j] = na_rep
                continue
            cell = fmt.format(v)
            if sd and not pd.isna(sds.iat[i, j]):
                cell += " ± " + fmt.format(sds.iat[i, j])
            out.iat[i, j] = cell
    return out


def _norm_keys(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    df = df.copy()
    for k in keys:
        df[k] = df[k].astype(object).where(df[k].notna(), "").astype(str)
    return df


def published_vs_reproduced(reproduced: pd.DataFrame, published: pd.DataFrame,
                            keys: list[str], how: str = "left") -> pd.DataFrame:
    """Join published numbers with reproduced ones (mean over seeds).

    ``reproduced``: tidy rows with ``value`` (and ``seed``; without it each row counts as one
    seed). ``published``: rows with ``value`` (e.g. ``paper_tables/*.csv``). ``keys``: the
    columns that identify a cell (e.g. ``["paper", "table", "dataset", "model", "setup",
    "condition", "feature", "metric"]``); missing keys (NaN) and "" match each other.

    Returns the key columns, then ``published``, ``reproduced`` (mean), ``sd`` (ddof=1),
    ``n_seeds`` and ``difference`` (= reproduced - published). ``how="left"`` keeps every
    published cell; a cell without reproduced rows has NaN ``reproduced``/``difference``
    and ``n_seeds`` 0 -- it is never filled from the paper. ``how="outer"`` also keeps
    reproduced cells that the paper does not report.
    """
    keys = _as_list(keys)
    for name, df in (("reproduced", reproduced), ("published", published)):
        missing = [c for c in [*keys, "value"] if c not in df.columns]
        if missing:
            raise ValueError(f"published_vs_reproduced: {name} lacks column(s) {missing}")
    rep = _norm_keys(reproduced, keys)
    pub = _norm_keys(published, keys)
    if pub.duplicated(subset=keys).any():
        raise ValueError("published_vs_reproduced: published has duplicate cells for keys "
                         f"{keys}")
    if "seed" not in rep.columns:
        rep = rep.assign(seed=np.arange(len(rep)))
    rep_sum = summarize_seeds(rep[[*keys, "seed", "value"]], keys).rename(
        columns={"mean": "reproduced", "n": "n_seeds"})
    pub = pub[[*keys, "value"]].rename(columns={"value": "published"})
    out = pub.merge(rep_sum, on=keys, how=how, sort=False)
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    out["difference"] = out["reproduced"] - out["published"]
    return out[[*keys, "published", "reproduced", "sd", "n_seeds", "difference"]]


def plot_table(df: pd.DataFrame, ax, fontsize: float = 7, col_width: float | None = None):
    """Draw ``df`` (index as row labels) as a matplotlib table filling ``ax``."""
    ax.axis("off")

    def lab(v):
        return " / ".join(map(str, v)) if isinstance(v, tuple) else str(v)

    cells = [["" if (not isinstance(v, str) and pd.isna(v)) else str(v) for v in row]
             for row in df.itertuples(index=False)]
    table = ax.table(
        cellText=cells or None,
        rowLabels=[lab(i) for i in df.index] if len(df.index) else None,
        colLabels=[lab(c) for c in df.columns],
        loc="center",
        cellLoc="center",
        colWidths=[col_width] * df.shape[1] if col_width else None,
    )
    table.auto_set_font_size(False)
    table.set_fontsize(fontsize)
    table.auto_set_column_width(list(range(df.shape[1])))
    return table


# --------------------------------------------------------------------------- saving
def view_banner(variant: str | None) -> str:
    """The line a run's figure carries when its results variant is not the definition: a null control, a
    positive control or a protocol variant is never a reproduction of the paper, and its figures say so (they
    are copied into figures/ beside the definition's). '' for the definition."""
    v = str(variant or "")
    if v in ("", DEFINITION):
        return ""
    if "null=" in v:
        return (f"NULL CONTROL ({v}): the audited model never trained on these members; should read chance. "
                "Not a reproduction.")
    if POSITIVE in v:
        return f"POSITIVE CONTROL ({v}): a deliberately leaky audited model; should detect. Not a reproduction."
    return f"PROTOCOL VARIANT ({v}): another reading of the method, not the paper's definition."


def save_figure(fig, out_dir, name: str, formats: Iterable[str] = ("pdf", "png"), variant: str | None = None
                ) -> list[Path]:
    """Write ``out_dir/name.pdf`` and ``out_dir/name.png``; rerunning gives identical bytes.

    Timestamps and the software tag are left out of the metadata. ``out_dir`` is created.
    The figure is not closed. Returns the written paths in ``formats`` order. A ``variant`` other than the
    definition puts :func:`view_banner` above the figure.
    """
    banner = view_banner(variant)
    if banner and not any(t.get_gid() == "view-banner" for t in fig.texts):
        # wrapped to the figure's width (~17 characters an inch at 7 pt), so the banner does not widen the figure
        text = textwrap.fill(banner, width=max(40, int(17 * fig.get_figwidth())), break_on_hyphens=False,
                             break_long_words=False)
        fig.text(0.5, 1.0, text, ha="center", va="bottom", fontsize=7, color="#b2182b", gid="view-banner")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {
        "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
        "png": {"Software": None},
        "svg": {"Date": None, "Creator": None},
    }
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        # tight whatever the rcParams in force: a legend or footer outside the axes is never cut off
        fig.savefig(path, format=fmt, metadata=metadata.get(fmt), bbox_inches="tight")
        paths.append(path)
    return paths
