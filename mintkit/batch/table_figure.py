"""A report's cells as text and as a table figure: published → reproduced mean ± sd, the marks († stand-in data,
‡ a reason for |Δ| above the threshold) and the coloured grid of `figures/<paper>/<table>.png`."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mintkit.batch.collect import KEYS
from mintkit.batch.index import NO_RUN
from mintkit.batch.provenance import AUDITED_THRESHOLD, REASON_THRESHOLD, read_json
from mintkit.core.plots import results_table, save_figure

NO_COMPLETE_RUN = "no complete run: every cell shows the published value only"
CELL = KEYS[:-1]  # a cell of a paper table, every metric of it


def _seed_list(comp: pd.DataFrame, rep: pd.DataFrame) -> str:
    """The seeds behind the filled cells: the cells' own `seeds` (pooled across runs folders, so 3-seed means
    say 0, 1, 2 even when this report's runs gave seeds 1, 2), else the runs' seeds; 'k-m per cell' when the
    cells differ in their number of seeds."""
    filled = comp[comp["n_seeds"] > 0]
    per_cell = [sorted({s.strip() for s in str(t).split(",") if s.strip()}) for t in filled.get("seeds", [])]
    per_cell = [c for c in per_cell if c]
    if not per_cell:
        return ", ".join(map(str, sorted(rep["seed"].unique())))
    seeds = sorted({s for c in per_cell for s in c}, key=lambda x: (not x.isdigit(), int(x) if x.isdigit() else 0, x))
    counts = sorted({len(c) for c in per_cell})
    return ", ".join(seeds) + ("" if len(counts) == 1 else f" ({counts[0]}-{counts[-1]} per cell)")


def provenance(rep: pd.DataFrame, comp: pd.DataFrame) -> str:
    """One footer line for a table figure: the profiles, seeds, data and machines of the runs that filled its
    cells (a run whose rows sit in no published cell, e.g. the quick profile's digits, is not named)."""
    filled = comp.loc[comp["n_seeds"] > 0, CELL].drop_duplicates()
    rep = rep.merge(filled, on=CELL) if len(rep) else rep
    if not len(rep):
        return NO_COMPLETE_RUN
    envs = [read_json(Path(d) / "env.json") for d in sorted(rep["run_dir"].unique())]
    machines = sorted({f"{e.get('device', '?')} ({e.get('device_name') or '?'})" for e in envs})
    data = sorted({t.split(";")[0] for t in comp["data"] if t})
    precisions = sorted(rep["precision"].unique()) if "precision" in rep.columns else []
    return (f"profile {', '.join(sorted(rep['profile'].unique()))}; seeds {_seed_list(comp, rep)}"
            f"; data {', '.join(data) or 'see the csv'}; precision {', '.join(precisions) or 'not recorded'}"
            f"; machine {', '.join(machines)}")


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
