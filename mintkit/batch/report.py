"""`python -m mintkit report`: run folders -> every paper table beside the published numbers, and an index.

For each paper, each published table (mintkit.reference.published) is written in the paper's layout as
`<out>/<paper>/<table>.{csv,md,png,pdf}`: published, reproduced (mean ± sd over seeds), difference, and the
audited model's accuracy. A published cell without a complete run says "no run"; nothing is filled in
from the paper. Reproduced rows whose setting the papers do not report (digits/SmallCNN in the quick profile)
go to `reproduced_no_published_counterpart.*`, labelled with their profile. Figures made by the runs are
copied to `<out>/<paper>/runs/<profile>/<run>/`. A paper with reproduced cells gets their published-vs-reproduced
scatter and a table of those cells only (`mintkit.batch.scatter`), which the index shows first;
`<out>/README.md` indexes it all with the commands.

Only runs whose status.json says complete count; failed and unfinished ones are listed in the index. Runs made
outside a batch (no batch.json above them: a notebook's runs/scratch, an audit) are left out unless
`--include-adhoc`: a report after a notebook run never rewrites the committed figures.
A report into a folder that holds an earlier one merges into it (`mintkit.batch.merge`): a cell these runs do
not give keeps what the folder showed, and the index says which runs folder made which cells.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Iterable

import matplotlib
import numpy as np
import pandas as pd

from mintkit.core.metrics import summarize_seeds
from mintkit.core.params import ParameterError
from mintkit.core.plots import published_vs_reproduced, results_table, use_style
from mintkit.batch import claims, glance, merge, scatter
from mintkit.batch.collect import KEYS, adhoc_note, collect
from mintkit.core.records import DEFINITION
from mintkit.batch.index import NO_RUN, index_header
from mintkit.batch.table_figure import (NO_COMPLETE_RUN, cell_text, decimals, draw_table, mark, num, provenance,
                                       to_markdown)
from mintkit.batch.provenance import AUDITED_THRESHOLD, REASON_THRESHOLD, add_reasons, read_json
from mintkit.reference import PAPERS, published

CELL = KEYS[:-1]  # a cell of a paper table, every metric of it
UNMATCHED_EXTRA = ("precision",)  # keys of a no-counterpart row besides CELL, protocol and variant
AUDITED = ("audited_accuracy", "audited_train_accuracy")
# per-cell columns beside the published metric: evaluated samples a seed (members + non-members) and the share of
# seeds whose MINT head trained (mintkit.core.fit)
SIDE_METRICS = {"n_eval": ("n_eval_members", "n_eval_nonmembers"), "head_fitted": ("head_fitted",)}
FIGURE_EXTS = (".png", ".pdf", ".svg")

# (paper label, table) -> (row keys, column keys) of the paper's layout; other varying keys join the rows.
LAYOUT = {
    ("mint", "Table 1"): (["feature"], ["dataset", "model"]),
    ("mint", "Table 2"): (["feature"], ["condition", "dataset", "model"]),
    ("mint", "Table 3"): (["condition"], ["dataset", "model"]),
    ("mint", "Table 4"): (["feature"], ["dataset", "model"]),
    ("mint", "Table 5"): (["condition"], ["dataset", "model"]),
    ("mint", "Table 6"): (["feature"], ["dataset", "model"]),
    ("mint", "Table 7"): (["feature"], ["dataset", "model"]),
    ("mint", "Fig. 5"): (["feature"], ["dataset", "model"]),
    ("mint", "Table 8"): (["model"], ["dataset"]),
    ("mint", "Table 9"): (["condition"], ["model"]),
    ("mint-demo", "Table 1"): (["feature"], ["condition"]),
    ("mint-demo", "Table 2"): (["feature"], ["condition"]),
    ("amint", "Table 1"): (["dataset", "model"], ["setup"]),
    ("amint", "Table 2"): (["dataset", "model"], ["condition"]),
    ("amint", "Table 3"): (["condition", "setup"], ["dataset"]),
    ("gmint", "Table 1"): (["condition", "model"], ["setup"]),
    ("gmint", "Table 2"): (["dataset", "model"], ["setup", "condition"]),
    ("gmint", "Table 3"): (["dataset", "model"], ["condition", "setup"]),
}
DEFAULT_COLUMNS = ["condition"]


def slug(label: str, table: str, paper: str) -> str:
    """File stem of a table: 'Table 1' -> table1, 'Fig. 5' -> fig5; mint-demo tables get a 'demo-' prefix."""
    s = re.sub(r"[^a-z0-9]+", "", table.lower())
    return f"{label.split('-', 1)[1]}-{s}" if label != paper and "-" in label else s


def reference_file(paper_label: str) -> str:
    """The reference file holding a results-row paper label: mint-demo -> mint."""
    return paper_label.split("-", 1)[0]


# --------------------------------------------------------------------------- tables
def layout(label: str, table: str, rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Row and column keys of a table; keys that vary but are not placed join the rows, metric last."""
    index, columns = LAYOUT.get((label, table), ([], DEFAULT_COLUMNS))
    index, columns = list(index), list(columns)
    for k in CELL[2:]:
        if k not in index + columns and rows[k].nunique() > 1:
            index.append(k)
    if rows["metric"].nunique() > 1:
        index.append("metric")
    if not index:
        index = ["dataset"]
    return index, columns


def compare(pub: pd.DataFrame, rep: pd.DataFrame) -> pd.DataFrame:
    """Every published cell (non-audited metrics) with reproduced mean/sd/n/difference and audited accuracies."""
    main = pub[~pub["metric"].isin(AUDITED)]
    out = published_vs_reproduced(rep, main, KEYS, how="left")
    for m in AUDITED:
        pa = pub[pub["metric"] == m][CELL + ["value"]].rename(columns={"value": f"{m}_published"})
        ra = rep[rep["metric"] == m]
        if len(ra):
                    ra = summarize_seeds(ra[CELL + ["seed", "value"]], CELL).rename(
                columns={"mean": f"{m}_reproduced", "sd": f"{m}_sd"}).drop(columns="n")
        else:
            ra = pd.DataFrame(columns=CELL + [f"{m}_reproduced", f"{m}_sd"])
        out = out.merge(pa, on=CELL, how="left").merge(ra.astype({c: str for c in CELL}), on=CELL, how="left")
    for m, parts in SIDE_METRICS.items():  # what the claims ledger reads beside the number (mintkit.batch.cells)
        ra = rep[rep["metric"].isin(parts)]
        if len(ra):
            ra = ra.groupby([*CELL, "seed"], as_index=False)["value"].sum()
            ra = summarize_seeds(ra, CELL).rename(columns={"mean": f"{m}_reproduced", "sd": f"{m}_sd"}).drop(
                columns="n")
            out = out.merge(ra.astype({c: str for c in CELL}), on=CELL, how="left")
    out["status"] = np.where(out["n_seeds"] > 0, "reproduced", NO_RUN)
    out = out.merge(merge.seeds_per_cell(rep[rep["metric"].isin(main["metric"].unique())]), on=KEYS, how="left")
    out["seeds"] = out["seeds"].fillna("")
    if len(rep) and "data" in rep.columns:
        data = rep.astype({k: str for k in KEYS}).groupby(KEYS)["data"].agg(lambda s: " | ".join(sorted(set(s))))
        out = out.merge(data.reset_index(), on=KEYS, how="left")
    else:
        out["data"] = ""
    out["data"] = out["data"].fillna("")
    return add_reasons(out)


def _layout_frame(comp: pd.DataFrame, index, columns, text) -> pd.DataFrame:
    rows = comp.assign(_text=[text(r) for r in comp.itertuples(index=False)])
    return results_table(rows, index, columns, value="_text", fmt="{}", na_rep="")


def table_outputs(label: str, table: str, pub: pd.DataFrame, rep: pd.DataFrame, out_dir: Path, stem: str,
                  paper: str, source: str = "") -> dict:
    """Write <stem>.csv/.md/.png/.pdf for one published table, keeping the reproduced cells an earlier
    <stem>.csv holds where `rep` has none; returns {'files', 'cells', 'views' (glance.view_counts), 'protocols',
    'sources'}.

    One view per (protocol, variant, precision): rows of different protocol variants, or of fp32 and bf16 runs,
    are never averaged into one cell (a precision is named only when there are two). Every view of the earlier
    table is kept: its cells fill the same view's 'no run' cells."""
    old = merge.read_table(out_dir / f"{stem}.csv")
    views = merge.views(rep) | merge.views(old)
    views = sorted(views, key=lambda g: (g[0] != "paper", g[0], g[1] != DEFINITION, g[1], g[2])) or [
        ("", DEFINITION, "")]
    main = pub[~pub["metric"].isin(AUDITED)]
    index, columns = layout(label, table, main)
    d = decimals(pub["value"])
    comps, md = [], [f"# {label} {table}: published → reproduced\n",
                     "Cells: published → reproduced mean ± sd over seeds (Δ = reproduced − published); "
                     f"'{NO_RUN}' where no complete run gives the cell. Nothing is filled in from the paper.\n"]
    files = []
    built = []
    for prot, var, precision in views:
        sub = rep[(rep["protocol"] == prot) & (rep["variant"] == var)
                  & (merge.text_column(rep, "precision") == precision)] if prot else rep.iloc[:0]
        comp = compare(pub, sub)
        comp.insert(len(KEYS), "protocol", prot)
        comp.insert(len(KEYS) + 1, "variant", var)
        comp.insert(len(KEYS) + 2, "precision", precision)
        built.append(((prot, var, precision), sub, merge.keep_earlier(comp, merge.view_of(old, var, precision), source)))
    # a view none of whose rows is a cell of this table (e.g. the quick profile's digits runs) is left out, unless
    # no view has a cell: then the first one shows the table with 'no run' everywhere
    filled = [b for b in built if (b[2]["n_seeds"] > 0).any()]
    built = filled or built[:1]
    precisions = sorted({q for (_, _, q), _, _ in built})
    for (prot, var, precision), sub, comp in built:
        comps.append(comp)
        files += _view_section(comp, sub, (prot, var, precision), len(precisions) > 1 and precision != precisions[0],
                               len(precisions) > 1, (label, table, stem), index, columns, d, out_dir, source, md)
    allc = pd.concat(comps, ignore_index=True)
    allc.to_csv(out_dir / f"{stem}.csv", index=False, float_format="%.6g")
    (out_dir / f"{stem}.md").write_text("\n".join(md) + "\n")
    files = [out_dir / f"{stem}.csv", out_dir / f"{stem}.md"] + files
    return {"files": files, "cells": int(len(main)), "views": glance.view_counts(allc),
            "protocols": sorted({p + (f" ({v})" if v != DEFINITION else "") for (p, v, _), _, _ in built if p}),
            "sources": merge.source_counts(allc)}


def _view_section(comp: pd.DataFrame, sub: pd.DataFrame, view: tuple[str, str, str], suffix_precision: bool,
                  name_precision: bool, where: tuple[str, str, str], index, columns, d: int, out_dir: Path,
                  source: str, md: list[str]) -> list[Path]:
    """One view (protocol, variant, precision) of a table: its markdown section appended to `md`, its figure
    drawn; returns the figure files. `suffix_precision` / `name_precision`: whether the precision goes into the
    file stem / the section's name (only when a table has two precisions)."""
    (prot, var, precision), (label, table, stem) = view, where
    name = (f"protocol `{prot}`" + (f", variant `{var}`" if var != DEFINITION else "")
            + (f", {precision}" if name_precision else "")) if prot else "no runs"
    md += [f"## {table} — {name}\n",
           to_markdown(_layout_frame(comp, index, columns,
                                     lambda r: cell_text(r.published, r.reproduced, r.sd, r.n_seeds, d, mark(r)))),
           ""]
    md += notes(comp)
    aud = comp[["audited_accuracy_published", "audited_accuracy_reproduced"]]
    if aud.notna().any().any():
        md += [f"Audited model, test accuracy (published → reproduced), {name}:\n",
               to_markdown(_layout_frame(comp, index, columns, lambda r: cell_text(
                   r.audited_accuracy_published, r.audited_accuracy_reproduced, r.audited_accuracy_sd,
                   int(pd.notna(r.audited_accuracy_reproduced)), d))), ""]
    fig_stem = (stem if prot in ("", "paper") else f"{stem}-{prot}") + (
        f"-{re.sub(r'[^a-z0-9]+', '-', var.lower())}" if var != DEFINITION else "") + (
        f"-{precision}" if suffix_precision else "")
    footer = provenance(sub, comp)
    kept = merge.kept_count(comp, source)
    if kept:
        footer = (footer + "; " if footer != NO_COMPLETE_RUN else "") + f"{kept} cell(s) kept from " + \
            ", ".join(s for s in merge.source_counts(comp) if s != source)
    return draw_table(comp, index, columns, d, out_dir, fig_stem, f"{label} {table} ({name.replace('`', '')})",
                      footer)


def notes(comp: pd.DataFrame) -> list[str]:
    """Markdown notes under a table: the data of its reproduced cells, and the reason of each cell with a large Δ."""
    out = []
    data = sorted({d for d in comp["data"] if d})
    if data:
        out += ["Data of the reproduced cells (†: stand-in data):\n"] + [f"- {d}" for d in data] + [""]
    big = comp[comp["reason"] != ""]
    if len(big):
        out.append(f"‡ Cells with |Δ| > {REASON_THRESHOLD}, or an audited accuracy more than {AUDITED_THRESHOLD} from "
                   "the published one, and their reason:\n")
        for r in big.itertuples(index=False):
            where = " / ".join(str(getattr(r, k)) for k in CELL[2:] if str(getattr(r, k)))
            aud = r.audited_accuracy_reproduced - r.audited_accuracy_published
            out.append(f"- {where}, {r.metric}: Δ {r.difference:+.3f}" + (
                f", audited accuracy Δ {aud:+.3f}" if pd.notna(aud) and abs(aud) > AUDITED_THRESHOLD else "")
                + f" — {r.reason}")
        out.append("")
    return out


def unmatched_outputs(rows: pd.DataFrame, pub: pd.DataFrame, out_dir: Path, paper: str,
                      source: str = "") -> tuple[list[Path], int]:
    """Reproduced cells with no published counterpart (e.g. the quick profile): metrics as columns; the settings
    an earlier file holds and `rows` does not give are kept."""
    csv = out_dir / "reproduced_no_published_counterpart.csv"
    published_cells = set(map(tuple, pub[CELL].to_numpy()))
    if len(rows):
        rows = rows[[tuple(r) not in published_cells for r in rows[CELL].to_numpy()]]
    if len(rows):
        rows = rows.assign(**{c: rows[c] if c in rows.columns else "" for c in UNMATCHED_EXTRA})
        keys = ["profile", *CELL, "protocol", "variant", *UNMATCHED_EXTRA]  # every key, empty or not
        s = summarize_seeds(rows[keys + ["metric", "seed", "value"]].fillna({k: "" for k in keys}), keys + ["metric"])
    elif csv.is_file():
        s, keys = pd.DataFrame(), []
    else:
        return [], 0
    s = merge.keep_unmatched(s, csv, source)
    if not len(s):
        return [], 0
    s["variant"] = s["variant"].fillna(DEFINITION) if "variant" in s.columns else DEFINITION  # older files: none
    for k in (*CELL, *UNMATCHED_EXTRA):  # the full key columns, so every reader finds them (claims ledger)
        s[k] = s[k].fillna("").astype(str) if k in s.columns else ""
    keys = ["profile", *CELL, "protocol", "variant", *UNMATCHED_EXTRA]
    shown = [k for k in keys if s[k].astype(str).str.len().gt(0).any()]  # the markdown shows the filled ones
    s["text"] = [f"{num(m, 3)}" + (f" ± {num(sd, 3)}" if pd.notna(sd) else "") for m, sd in zip(s["mean"], s["sd"])]
    n = s.groupby(shown, sort=False)["n"].max().rename("seeds")
    wide = results_table(s, shown, "metric", value="text", fmt="{}", na_rep="").join(n)
    s.to_csv(csv, index=False, float_format="%.6g")
    profiles = ", ".join(sorted(s["profile"].unique()))
    md = [f"# {paper}: reproduced (no published counterpart)\n",
          f"Profile(s): **{profiles}**. These settings (e.g. digits/SmallCNN in the quick profile) are not in the "
          "papers, so there is nothing to compare with: mean ± sd over seeds, `seeds` = number of seeds.\n",
          to_markdown(wide), ""]
    (out_dir / "reproduced_no_published_counterpart.md").write_text("\n".join(md))
    return [out_dir / "reproduced_no_published_counterpart.csv",
            out_dir / "reproduced_no_published_counterpart.md"], len(wide)


def copy_run_figures(runs: list[dict], paper: str, out_dir: Path) -> list[Path]:
    """Figures of complete runs of `paper` -> <out_dir>/runs/<profile>/<run>/."""
    copied = []
    for info in runs:
        if info["status"] != "complete" or info["paper"] != paper:
            continue
        for f in sorted(info["folder"].iterdir()):
            if f.suffix in FIGURE_EXTS and f.is_file():
                dest = out_dir / "runs" / info["profile"] / info["folder"].name / f.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
                copied.append(dest)
    return copied


def _paper_section(paper: str, rep: pd.DataFrame, runs: list[dict], out: Path, source: str
                   ) -> tuple[list[str], list[Path], dict[str, int], tuple[int, dict]]:
    """One paper's part of the report: its tables (published → reproduced), scatter, unmatched settings and the
    runs' own figures under out/<paper>/. Returns (index lines, files written, {runs folder: cells it made},
    (published cells, glance.view_counts summed over its tables))."""
    pdir = out / paper
    pdir.mkdir(parents=True, exist_ok=True)
    pub = published(paper)
    body = [f"\n## {paper}\n"]
    heading = len(body)  # the paper's scatter goes here, above its tables, once they are written
    body.append("| table | files | published cells | reproduced (definition) | beside (not reproductions) | "
                "protocols | made by (runs folder: cells, every view) |\n|---|---|---|---|---|---|---|")
    written: list[Path] = []
    counts: dict[str, int] = {}
    total, n_cells = {}, 0
    for (label, table), tpub in pub.groupby(["paper", "table"], sort=False):
        stem = slug(label, table, paper)
        trep = rep[(rep["paper"] == label) & (rep["table"] == table)]
        info = table_outputs(label, table, tpub, trep, pdir, stem, paper, source)
        written += info["files"]
        total, n_cells = glance.add(total, info["views"]), n_cells + info["cells"]
        for s, n in info["sources"].items():
            counts[s] = counts.get(s, 0) + n
        links = " ".join(f"[{p.suffix[1:]}]({p.relative_to(out).as_posix()})" for p in info["files"])
        made = "; ".join(f"`{s}`: {n}" for s, n in info["sources"].items()) or "–"
        body.append(f"| {label} {table} | {links} | {info['cells']} | {info['views']['definition']} | "
                    f"{glance.beside_text(info['views'])} | "
                    f"{', '.join(info['protocols']) or NO_RUN} | {made} |")
    plotted = scatter.write_paper(pdir)
    written += plotted
    if plotted:
        body[heading:heading] = scatter.index_lines(paper)
    files, n = unmatched_outputs(rep, pub, pdir, paper, source)
    written += files
    if files:
        body.append(f"\nReproduced (no published counterpart): {n} setting(s) — "
                    + " ".join(f"[{p.suffix[1:]}]({p.relative_to(out).as_posix()})" for p in files))
    figs = copy_run_figures(runs, paper, pdir)
    written += figs
    if figs:
        body.append(f"\nFigures made by the runs ({len(figs)}):\n")
        # a control's or a variant's figures are labelled in the list as in their own banner (core.plots)
        variant = {Path(d).name: v for d, v in rep[["run_dir", "variant"]].drop_duplicates().to_numpy()} if len(
            rep) and "variant" in rep.columns else {}
        body += [f"- [{p.relative_to(pdir).as_posix()}]({p.relative_to(out).as_posix()})"
                 + (f" — {scatter.kind(variant[p.parent.name])}: `{variant[p.parent.name]}`, not a reproduction"
                    if scatter.kind(variant.get(p.parent.name, DEFINITION)) != "definition" else "") for p in figs]
    return body, written, counts, (n_cells, total)


# --------------------------------------------------------------------------- the whole report
def build(runs_root: str | Path, out: str | Path, papers: Iterable[str] | None = None, command: str = "",
          include_adhoc: bool = False, log=print) -> list[Path]:
    """Write the report under `out`, merged into what `out` already shows (see mintkit.batch.merge), and return
    the files written. A missing runs folder, or one without any run folder in it, is a ParameterError.

    Runs made outside a batch (mintkit.batch.collect.adhoc_folders: a notebook's runs/scratch, an audit) are left
    out with one line through `log` unless `include_adhoc`; when nothing else is left the report writes nothing
    (a ParameterError), so `python -m mintkit report` after a notebook never rewrites the committed figures."""
    matplotlib.use("Agg")
    papers = list(papers or PAPERS)
    bad = [p for p in papers if p not in PAPERS]
    if bad:
        raise ParameterError(f"unknown paper(s) {bad}; valid: {', '.join(PAPERS)}")
    runs_root, out = Path(runs_root), Path(out)
    if not runs_root.is_dir():
        raise ParameterError(f"runs folder {runs_root} does not exist; give the folder `reproduce --out` or "
                             "`run --out` wrote (default runs/<profile>, e.g. --runs runs/quick)")
    adhoc = "" if include_adhoc else adhoc_note(runs_root, out)  # raises when nothing but ad hoc runs is there
    use_style()
    rows, runs = collect(runs_root, include_adhoc=include_adhoc)
    if not runs:
        raise ParameterError(f"runs folder {runs_root} holds no run folder (no status.json or results.csv under "
                             "it); run `python -m mintkit reproduce` first or give another --runs")
    if adhoc:
        log(adhoc)
    rows = rows.assign(ref=rows["paper"].map(reference_file))
    source = merge.source_name(runs_root)
    written: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    sources = merge.read_sources(out)
    header = index_header(Path(source), runs, rows, command)
    sources[source] = header[1:]
    body: list[str] = []
    counts: dict[str, int] = {}
    totals: dict[str, tuple[int, dict]] = {}
    for paper in papers:
        lines, files, made, totals[paper] = _paper_section(paper, rows[rows["ref"] == paper], runs, out, source)
        body += lines
        written += files
        for s, n in made.items():
            counts[s] = counts.get(s, 0) + n
    written += claims.write(out)
    body.append(f"\n## Claims\n\nEvery paper's headline claims tested on these runs: [{claims.MD}]({claims.MD})")
    kept = {s: n for s, n in counts.items() if s != source}
    for s, n in merge.unmatched_counts(out).items():  # settings without a published cell keep their provenance too
        if s != source:
            kept[s] = kept.get(s, 0) + n
    # the answer first (a line per paper, then the tables), what made it after them
    provenance_md = [merge.PROVENANCE, f"This report (runs folder `{source}`) merged into `{out.as_posix()}`: a "
                     "cell its runs do not give keeps what the folder showed; the last column of each table list says "
                     "which runs folder made its cells.\n"] + header[1:]
    index_md = (header[:1] + glance.paper_lines(out, totals) + body + provenance_md
                + merge.earlier_opening(sources, source, kept))
    (out / "README.md").write_text("\n".join(index_md) + "\n")
    written += [out / "README.md", merge.write_sources(out, {s: h for s, h in sources.items()
                                                              if s == source or kept.get(s)})]
    return written
