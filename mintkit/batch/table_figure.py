"""A report's cells as text and as a table figure: published → reproduced mean ± sd, the marks († stand-in data,
‡ a reason for |Δ| above the threshold) and the coloured grid of `figures/<paper>/<table>.png`."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mintkit.batch.index import NO_RUN
from mintkit.batch.provenance import AUDITED_THRESHOLD, REASON_THRESHOLD
from mintkit.core.plots import results_table, save_figure


def decimals(values: Iterable[float]) -> int:
    d = 2
    for v in values:
        if pd.notna(v) and abs(v) < 10:
            s = f"{v:.6f}".rstrip("0").split(".")
            d = max(d, min(4, len(s[1]) if len(s) > 1 else 0))
    return d


def num(v: float, d: int) -> str:
    if pd.isna(v):
        return ""
    return f"{v:.4g}" if abs(v) >= 10 else f"{v:.{d}f}"


def cell_text(pub: float, rep: float, sd: float, n: int, d: int, mark: str = "") -> str:
    """'0.86 → 0.84 ± 0.01 (Δ -0.02)'; a cell without runs: '0.86 → no run'; `mark` flags a note."""
    left = num(pub, d) if pd.notna(pub) else "–"
    if not n:
        return f"{left} → {NO_RUN}"
    right = num(rep, d) + (f" ± {num(sd, d)}" if pd.notna(sd) else "")
    diff = f" (Δ {rep - pub:+.{d}f})" if pd.notna(pub) and pd.notna(rep) else ""
    return f"{left} → {right}{diff}{mark}"


def mark(r) -> str:
    """† stand-in data, ‡ a reason for |Δ| or the audited accuracy beyond its threshold (both listed under the table)."""
    return ("†" if "stand-in" in str(r.data) else "") + ("‡" if r.reason else "")


def label(v) -> str:
    if isinstance(v, tuple):
        return " / ".join(str(x) or "–" for x in v)
    return str(v) if str(v) else "–"


def to_markdown(df: pd.DataFrame) -> str:
    """A small markdown table (no tabulate dependency); the index becomes the first column."""
    head = [" / ".join(n for n in df.index.names if n) or ""] + [label(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([label(idx)] + [str(v).replace("|", "\\|") for v in row]) + " |")
    return "\n".join(lines)


def draw_table(comp: pd.DataFrame, index, columns, d: int, out_dir: Path, stem: str, title: str,
               footer: str = "") -> list[Path]:
    """The table as a figure: colour = reproduced − published (colour bar), text = published over reproduced
    mean ± sd (or 'no run'); † stand-in data, ‡ a reason for |Δ| > the threshold (in the .md notes); `footer`
    says which runs made it (profile, seeds, data, machine)."""
    grid = lambda v: results_table(comp, index, columns, value=v, fmt=None)  # noqa: E731
    pub, rep, diff, sd = grid("published"), grid("reproduced"), grid("difference"), grid("sd")
    marks = results_table(comp.assign(_m=[mark(r) for r in comp.itertuples(index=False)]), index, columns,
                          value="_m", fmt="{}", na_rep="")
    nr, nc = pub.shape
    fig, ax = plt.subplots(figsize=(2.4 + 0.75 * nc, 0.9 + 0.3 * nr))
    lim = 0.2
    im = ax.imshow(np.ma.masked_invalid(diff.to_numpy(float)), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_facecolor("0.92")
    for i in range(nr):
        for j in range(nc):
            p, r, s = pub.iat[i, j], rep.iat[i, j], sd.iat[i, j]
            if pd.isna(p) and pd.isna(r):
                continue
            right = (num(r, d) + (f"±{num(s, d)}" if pd.notna(s) else "") + marks.iat[i, j]) if pd.notna(r) else NO_RUN
            dark = pd.notna(diff.iat[i, j]) and abs(diff.iat[i, j]) > 0.6 * lim
            ax.text(j, i, f"{num(p, d)}\n{right}", ha="center", va="center", fontsize=5,
                    color="white" if dark else ("0.45" if pd.isna(r) else "black"))
    ax.set_xticks(range(nc), [label(c) for c in pub.columns], rotation=45, ha="right", fontsize=5)
    ax.set_yticks(range(nr), [label(i) for i in pub.index], fontsize=5)
    ax.set_title(f"{title}\npublished over reproduced mean ± sd; † stand-in data, ‡ |Δ| > {REASON_THRESHOLD} "
                 f"or audited accuracy > {AUDITED_THRESHOLD} off (reason in the .md)", fontsize=6)
    bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, extend="both")
    bar.set_label("reproduced − published", fontsize=5)
    bar.ax.tick_params(labelsize=5)
    ax.grid(False)
    if footer:
        fig.text(0.01, 0.0, footer, fontsize=5, ha="left", va="bottom", color="0.3")
    paths = save_figure(fig, out_dir, stem)
    plt.close(fig)
    return paths
