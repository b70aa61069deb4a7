"""Per paper, the figure that answers "does it reproduce?" first, and the reproduced cells as one compact table.

`<out>/<paper>/scatter.{pdf,png}` reads the table csvs the report wrote (`<paper>/<table>.csv`, reproduced rows,
n_seeds > 0, through `mintkit.batch.merge.read_table`) and draws one panel per kind of view (KINDS), then one:

- per kind, one point per accuracy cell (metric accuracy): x the published value, y the mean with its sd over
  seeds as an error bar. The kinds are never mixed in one panel: the definition first (the only cells called
  "reproduced"), then the protocol variants (other readings of the method), the null controls (`null=`: must read
  chance) and the positive controls (`control=leaky`: must read above chance), so the definition's cells are
  never hidden under the controls' and each panel's note gives its own median Δ and count. The diagonal y = x is
  "as published", the dotted line y = 0.5 is chance. Colour = the view (protocol, variant, and precision when the
  paper has two), marker = dataset.
- last, the audited model behind those cells: its test accuracy published (hollow) → reproduced (filled, ± sd),
  one row per distinct audited model, so a weaker (or stronger) target model than the paper's is seen next to
  the attack's number. A model the paper gives no accuracy for shows the reproduced one alone.

`<out>/<paper>/reproduced.{md,csv}` lists the same cells, every metric, and nothing of the 'no run' grid: table,
dataset / model, setup, condition / feature, protocol, variant, precision, published, reproduced mean ± sd (n
seeds), Δ, audited accuracy published → reproduced and the reason (short, in full under the table). The full-grid
heatmaps (`<table>.png`) stay the detail.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from mintkit.batch import merge
from mintkit.batch.cells import is_null, is_positive
from mintkit.batch.provenance import REASON_THRESHOLD
from mintkit.core.plots import colours, save_figure, use_style
from mintkit.core.records import DEFINITION

ACCURACY = ("accuracy",)
STEM, MD, CSV = "scatter", "reproduced.md", "reproduced.csv"
MARKERS = "osD^vPX*<>"
COLUMNS = ["paper", "table", "dataset", "model", "setup", "condition", "feature", "metric", "protocol", "variant",
           "kind", "precision", "published", "reproduced", "sd", "n_seeds", "difference",
           "audited_accuracy_published", "audited_accuracy_reproduced", "audited_accuracy_sd", "reason", "source"]
# kind of a view -> (panel title, y label): only the definition's cells are "reproduced"; a variant, a null or a
# positive control measures something else and is named so
KINDS = {
    "definition": ("the definition: reproduced", "reproduced (mean ± sd over seeds)"),
    "variant": ("protocol variants (not the definition)", "variant reading (mean ± sd over seeds)"),
    "null": ("null controls (null=): should read chance", "null control (mean ± sd over seeds)"),
    "positive": ("positive controls (control=leaky): should detect", "positive control (mean ± sd over seeds)"),
}
AUD_P, AUD_R, AUD_SD = "audited_accuracy_published", "audited_accuracy_reproduced", "audited_accuracy_sd"


def cells(pdir: Path) -> pd.DataFrame:
    """The reproduced cells of every table csv in a paper folder, COLUMNS (missing ones empty) plus `view`, the
    label of its (protocol, variant[, precision]); empty when there is none."""
    df = merge.read_tables(pdir)
    if not len(df):
        return pd.DataFrame(columns=COLUMNS + ["view"])
    df = df.reindex(columns=COLUMNS)
    for c in ("protocol", "variant", "precision", "reason", "source"):
        df[c] = df[c].fillna("").astype(str)
    df["variant"] = df["variant"].replace("", DEFINITION)
    df["kind"] = [kind(v) for v in df["variant"]]
    two = df["precision"].nunique() > 1  # a precision is named only when the paper's runs have two
    df["view"] = [p + (f", {v}" if v != DEFINITION else "") + (f", {q}" if two and q else "")
                  for p, v, q in zip(df["protocol"], df["variant"], df["precision"])]
    return df


def kind(variant: str) -> str:
    """The KINDS key of a view's variant: a null control (any reading's) and a positive control go apart from
    the readings they control."""
    if is_null(variant):
        return "null"
    if is_positive(variant):
        return "positive"
    return "definition" if variant in ("", DEFINITION) else "variant"


def kind_counts(df: pd.DataFrame) -> str:
    """'36 definition cell(s) reproduced; beside them 36 variant, 72 null-control view(s)': the definition's
    cells alone are counted as reproduced."""
    n = df["kind"].value_counts() if len(df) else pd.Series(dtype=int)
    beside = [f"{int(n[k])} {w}" for k, w in (("variant", "variant"), ("null", "null-control"),
                                                ("positive", "positive-control")) if n.get(k, 0)]
    return (f"{int(n.get('definition', 0))} definition cell(s) reproduced"
            + (f"; beside them {', '.join(beside)} view(s)" if beside else ""))


def _decimals(values: pd.Series) -> int:
    """Decimals of the published numbers (2-4), so a reproduced 0.5033 is not rounded against a published 0.9994."""
    s = [f"{v:.6f}".rstrip("0").split(".")[1] for v in values.dropna() if abs(v) < 10]
    return max([2] + [min(4, len(x)) for x in s])


def _f(v: float, d: int) -> str:
    return "–" if pd.isna(v) else f"{v:.{d}f}"


def _short(reason: str, n: int = 60) -> str:
    """The reason cut at a word boundary before n characters (the full text is a footnote)."""
    return reason if len(reason) <= n else reason[:n].rsplit(" ", 1)[0].rstrip(" ,;:(") + " …"


def write_table(df: pd.DataFrame, paper: str, pdir: Path) -> list[Path]:
    """reproduced.csv (COLUMNS, numbers) and reproduced.md (one row per reproduced cell, reasons as footnotes)."""
    df[COLUMNS].to_csv(pdir / CSV, index=False, float_format="%.6g")
    d = _decimals(df["published"])
    reasons = list(dict.fromkeys(r for r in df["reason"] if r))
    many = df["metric"].nunique() > 1
    head = (["table", "dataset / model", "setup", "condition / feature"] + (["metric"] if many else [])
            + ["protocol", "variant", "kind", "precision", "published", "mean ± sd (n seeds)", "Δ",
               "audited accuracy (published → reproduced)", "reason"])
    lines = [f"# {paper}: cells with a run only\n",
             f"{kind_counts(df)}, of the published tables; nothing of their 'no run' grid (the full tables "
             "are the `table*.md` beside this file). Only the definition's cells are reproductions: a variant reads "
             "the method another way, a null control must read chance, a positive control must detect. "
             "mean ± sd over seeds, "
             "Δ = reproduced − published; "
             "the reason of a cell is in full under the table.\n", f"![{paper}: published vs reproduced]({STEM}.png)\n",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in df.itertuples(index=False):
        rep = _f(r.reproduced, d) + (f" ± {_f(r.sd, d)}" if pd.notna(r.sd) else "") + f" ({int(r.n_seeds)})"
        aud = "" if pd.isna(r.audited_accuracy_published) and pd.isna(r.audited_accuracy_reproduced) else (
            f"{_f(r.audited_accuracy_published, d)} → {_f(r.audited_accuracy_reproduced, d)}")
        why = f"[{reasons.index(r.reason) + 1}] {_short(r.reason)}" if r.reason else ""
        row = ([r.table, f"{r.dataset} / {r.model}", r.setup, " / ".join(x for x in (r.condition, r.feature) if x)]
               + ([r.metric] if many else []) + [r.protocol, r.variant, r.kind, r.precision, _f(r.published, d), rep,
                                                 f"{r.difference:+.{d}f}" if pd.notna(r.difference) else "", aud, why])
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    if reasons:
        lines += ["", "Reasons:", ""] + [f"{i}. {t}" for i, t in enumerate(reasons, 1)]
    (pdir / MD).write_text("\n".join(lines) + "\n")
    return [pdir / CSV, pdir / MD]


def _limits(acc: pd.DataFrame) -> tuple[float, float]:
    """One range for every kind panel, so the panels compare at a glance."""
    if not len(acc):
        return 0.4, 1.02
    sd = acc["sd"].fillna(0)
    vals = pd.concat([acc["published"], acc["reproduced"] - sd, acc["reproduced"] + sd])
    return min(0.4, float(vals.min()) - 0.02), max(1.02, float(vals.max()) + 0.02)


def _kind_panel(ax, acc: pd.DataFrame, kind_: str, lim: tuple[float, float], colour: dict, marker: dict) -> None:
    """Published (x) vs mean ± sd (y) of one kind's accuracy cells, the diagonal and chance, its own median Δ
    and count."""
    lo, hi = lim
    ax.plot([lo, hi], [lo, hi], color="0.45", lw=0.8, ls="--", zorder=1)
    ax.axhline(0.5, color="0.45", lw=0.8, ls=":", zorder=1)
    for (view, ds), g in acc.groupby(["view", "dataset"], sort=False):
        ax.errorbar(g["published"], g["reproduced"], yerr=g["sd"].fillna(0).to_numpy(), fmt=marker[ds], ms=4,
                    color=colour[view], mec="white", mew=0.4, elinewidth=0.7, capsize=1.5, alpha=0.85, zorder=3)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    title, ylabel = KINDS[kind_]
    ax.set_title(f"{title} ({len(acc)})")
    ax.set_xlabel("published")
    ax.set_ylabel(ylabel)
    off = int((acc["difference"].abs() > REASON_THRESHOLD).sum())
    # upper left: above the diagonal, where a result far above the paper would be, so rarely a point
    ax.text(0.03, 0.97, f"median Δ {acc['difference'].median():+.2f}\n|Δ| > {REASON_THRESHOLD}: {off} of "
            f"{len(acc)}", transform=ax.transAxes, ha="left", va="top", fontsize=7)


def _audited(df: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct audited model (same dataset, model, variant, precision and accuracies), `label`
    naming it by the setup / condition / table that tell it from the others of its dataset and model."""
    a = df[df[AUD_P].notna() | df[AUD_R].notna()].assign(_p=lambda x: x[AUD_P].round(4), _r=lambda x: x[AUD_R].round(4))
    a = a.drop_duplicates(["dataset", "model", "variant", "precision", "_p", "_r"]).copy()
    label = a["dataset"] + " / " + a["model"]
    if a["variant"].nunique() > 1:
        label = label + " · " + a["variant"]
    if a["precision"].nunique() > 1:
        label = label + " · " + a["precision"]
    for k in ("setup", "condition", "table"):
        varies = a.groupby(label)[k].transform("nunique") > 1
        label = label.where(~varies, label + " · " + a[k])
    return a.assign(label=label).sort_values("label", kind="stable")


def _audited_panel(ax, df: pd.DataFrame, marker: dict) -> None:
    """The audited model's test accuracy, published (hollow) → reproduced (filled ± sd), one row per model."""
    a = _audited(df)
    if not len(a):
        ax.text(0.5, 0.5, "no audited accuracy recorded", transform=ax.transAxes, ha="center", fontsize=6)
        ax.set_yticks([])
        return
    y = np.arange(len(a))
    for yi, r in zip(y, a.itertuples(index=False)):
        m, p, q = marker[r.dataset], r.audited_accuracy_published, r.audited_accuracy_reproduced
        if pd.notna(p) and pd.notna(q):
            ax.plot([p, q], [yi, yi], color="0.6", lw=0.8, zorder=1)
        if pd.notna(p):
            ax.plot([p], [yi], marker=m, ms=4, mfc="white", mec="0.15", ls="none", zorder=2)
        if pd.notna(q):
            sd = r.audited_accuracy_sd if pd.notna(r.audited_accuracy_sd) else 0.0
            ax.errorbar([q], [yi], xerr=[sd], fmt=m, ms=4, color="0.15", elinewidth=0.7, capsize=1.5, zorder=3)
        note = f"Δ {q - p:+.3f}" if pd.notna(p) and pd.notna(q) else "not published" if pd.isna(p) else "no run"
        ax.annotate(note, (1, yi), xycoords=("axes fraction", "data"), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=5.5, color="0.3", annotation_clip=False)
        # the model's name above its row, inside the panel: long names (variants) as tick labels would squeeze
        # the main panel
        ax.annotate(r.label, (0, yi), xycoords=("axes fraction", "data"), xytext=(3, 5), textcoords="offset points",
                    va="bottom", fontsize=5.5)
    lo = float(np.nanmin(a[[AUD_P, AUD_R]].to_numpy(float)))
    ax.set_xlim(min(0.8, lo - 0.03), 1.005)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_ylim(len(a) - 0.5, -0.5)  # the first model on top
    ax.set_yticks(y, [""] * len(y))
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel("audited model, test accuracy")


def draw(df: pd.DataFrame, paper: str, pdir: Path) -> list[Path]:
    """scatter.pdf + scatter.png of one paper's cells (`cells` rows), drawn by `figure`."""
    fig = figure(df, paper)
    paths = save_figure(fig, pdir, STEM)
    plt.close(fig)
    return paths


def figure(df: pd.DataFrame, paper: str):
    """The scatter of one paper's cells (`cells` rows): one panel per kind of view present (the definition
    first), the audited models last, one legend below."""
    acc = df[df["metric"].isin(ACCURACY)]
    kinds = [k for k in KINDS if (acc["kind"] == k).any()]
    views = sorted(df["view"].unique(), key=lambda v: (list(KINDS).index(kind(_variant_of(df, v))),
                                                       not v.startswith("paper"), v))
    colour = colours(views)
    marker = {ds: MARKERS[i % len(MARKERS)] for i, ds in enumerate(dict.fromkeys(df["dataset"]))}
    models = acc if len(acc) else df  # the audited models behind the plotted cells
    n_aud = len(_audited(models))
    n = max(len(kinds), 1) + 1  # an empty first panel says so when no accuracy cell has a run
    ncols = 2 if n <= 4 else 3  # 2 x 2 for three kinds and the models: no panel alone on a row
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, max(3.3, 1.7 + 0.2 * n_aud) * nrows),
                             layout="constrained", squeeze=False)
    flat = list(axes.flat)
    lim = _limits(acc)
    for ax, k in zip(flat, kinds):
        _kind_panel(ax, acc[acc["kind"] == k], k, lim, colour, marker)
    if not kinds:
        flat[0].text(0.5, 0.5, "no accuracy cell with a run", transform=flat[0].transAxes, ha="center", fontsize=7)
    bx = flat[n - 1]
    _audited_panel(bx, models, marker)
    bx.set_title("audited model: published ○ → measured ●")
    for ax in flat[n:]:
        ax.set_visible(False)
    other = len(df) - len(acc)
    seeds = sorted({int(n) for n in df["n_seeds"]})
    fig.suptitle(f"{paper}: published vs measured — {kind_counts(df)}; "
                 f"{seeds[0] if len(seeds) == 1 else f'{seeds[0]}–{seeds[-1]}'} seed(s) per cell"
                 + (f" (+{other} other-metric, in {MD})" if other else ""))
    # colour swatches for the views, grey markers for the datasets: neither legend entry reads as the other
    handles = ([Patch(color=colour[v], label=v) for v in views]
               + [Line2D([], [], color="0.3", marker=m, ls="none", label=ds) for ds, m in marker.items()]
               + [Line2D([], [], color="0.45", ls="--", lw=0.8, label="as published"),
                  Line2D([], [], color="0.45", ls=":", lw=0.8, label="chance (0.5)")])
    fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)), fontsize=7)
    return fig


def _variant_of(df: pd.DataFrame, view: str) -> str:
    return str(df.loc[df["view"] == view, "variant"].iloc[0])


def write_paper(pdir: Path) -> list[Path]:
    """scatter.{pdf,png} and reproduced.{md,csv} of one paper folder; none (and stale ones removed) when it has
    no reproduced cell."""
    df = cells(pdir)
    if not len(df):
        for name in (f"{STEM}.pdf", f"{STEM}.png", MD, CSV):
            (pdir / name).unlink(missing_ok=True)
        return []
    use_style()
    return draw(df, pdir.name, pdir) + write_table(df, pdir.name, pdir)


def write(out: Path) -> list[Path]:
    """write_paper for every paper folder under `out`; the files written."""
    return [p for d in sorted(Path(out).iterdir()) if d.is_dir() for p in write_paper(d)]


def index_lines(paper: str) -> list[str]:
    """The index's lines that put a paper's scatter first, above its tables."""
    return [f"![{paper}: published vs measured, one panel per kind of view]({paper}/{STEM}.png)\n",
            f"Cells with a run only (the definition's reproduced cells; variants and controls beside, labelled): "
            f"[md]({paper}/{MD}) [csv]({paper}/{CSV}); scatter [pdf]({paper}/{STEM}.pdf) [png]({paper}/{STEM}.png). "
            "The full tables (every published cell, 'no run' included) follow.\n"]
