"""Merging a report into a figures folder that already holds one: nothing a report has no run for is lost.

`python -m mintkit report --runs R --out figures` reads back what `figures/` already shows before writing:

- a table cell (`<paper>/<table>.csv`, one row per published cell and protocol) that R gives no complete run for
  keeps the reproduced values the folder held (mean, sd, seeds, audited accuracy, data); a cell R does give is
  replaced, unless R's seeds are others of the same settings (the same data text but for each run's wall time):
  then the two are pooled into one mean ± sd over all their seeds (:func:`pool`), so a batch whose seeds ran in
  separate sessions reads as one. The published value always comes from `mintkit.reference`, and Δ and the
  reason are recomputed.
- the `source` column says which runs folder made each reproduced cell (`earlier report` for a table written
  before the column existed), and the index lists, per table, how many cells each runs folder made;
- `reproduced_no_published_counterpart.csv` keeps the settings R does not give;
- `sources.json` keeps each runs folder's part of the index's opening (its command, profiles, machines, batch
  notes), so the index still says how the kept cells were made.

A report into a fresh folder merges nothing: it shows exactly the runs of R.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mintkit.batch.collect import KEYS
from mintkit.batch.index import NO_RUN
from mintkit.batch.provenance import add_reasons
from mintkit.core.records import DEFINITION, current_metrics

SOURCE = "source"
EARLIER = "earlier report"
SOURCES_FILE = "sources.json"
PUBLISHED_COLUMNS = ("published", "audited_accuracy_published", "audited_train_accuracy_published")
# (mean, sd) column pairs of a table csv, each over the cell's n_seeds seeds
POOLED = (("reproduced", "sd"), ("audited_accuracy_reproduced", "audited_accuracy_sd"),
          ("audited_train_accuracy_reproduced", "audited_train_accuracy_sd"), ("n_eval_reproduced", "n_eval_sd"),
          ("head_fitted_reproduced", "head_fitted_sd"))
WALL = re.compile(r";\s*wall [\d,]+ s$")
PROVENANCE = "\n## Provenance\n"  # the index's heading of what made it (mintkit.batch.report.build)
KEPT = "### Kept from the report of "


def source_name(runs_root: Path) -> str:
    """How the index names a runs folder: relative to the working folder (the repository) when inside it."""
    try:
        return Path(runs_root).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(runs_root)


def read_table(path: Path) -> pd.DataFrame:
    """The reproduced rows (n_seeds > 0) of a table csv the report wrote earlier; empty when there is none.
    Key columns come back as strings ("" for empty), the values as numbers, renamed metric keys under their
    current name (mintkit.core.records.RENAMED_METRICS)."""
    if not path.is_file():
        return pd.DataFrame()
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "n_seeds" not in df.columns or not set(KEYS) <= set(df.columns):
        return pd.DataFrame()
    df["n_seeds"] = pd.to_numeric(df["n_seeds"], errors="coerce").fillna(0)
    df = df[df["n_seeds"] > 0].copy()
    if "metric" in df.columns:
        df["metric"] = current_metrics(df["metric"])
    if SOURCE not in df.columns or not len(df):
        df[SOURCE] = EARLIER
    df[SOURCE] = df[SOURCE].replace("", EARLIER)
    for c in df.columns:
        if c not in KEYS and c not in ("protocol", "variant", "precision", "status", "data", "reason", "seeds", "parts",
                                           SOURCE):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


UNMATCHED = "reproduced_no_published_counterpart.csv"
NOT_TABLES = {UNMATCHED, "reproduced.csv"}  # csvs in a paper folder that hold no published grid


def table_csvs(paper_dir: Path) -> list[Path]:
    """The table csvs the report wrote into one paper's folder (table1.csv, table2.csv, ... in natural order)."""
    def natural(p: Path) -> list:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)]
    return sorted((f for f in Path(paper_dir).glob("*.csv") if f.name not in NOT_TABLES), key=natural)


def read_tables(paper_dir: Path) -> pd.DataFrame:
    """The reproduced rows of every table csv of a paper folder (:func:`read_table` each), one frame; the reader
    the claims ledger and the scatter figures share."""
    parts = [t for t in (read_table(f) for f in table_csvs(paper_dir)) if len(t)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def seeds_per_cell(rep: pd.DataFrame) -> pd.DataFrame:
    """KEYS and `seeds` ("0,1,2") of every cell of result rows: which seeds a mean is over, so a later report of
    other seeds of the same settings can pool with it (mintkit.batch.merge.pool)."""
    if not len(rep) or "seed" not in rep.columns:
        return pd.DataFrame(columns=[*KEYS, "seeds"])
    rows = rep[rep["value"].notna()].astype({k: str for k in KEYS})
    seeds = rows.groupby(KEYS)["seed"].agg(lambda s: ",".join(str(int(v)) for v in sorted(set(s))))
    return seeds.rename("seeds").reset_index()


def text_column(rows: pd.DataFrame, name: str) -> pd.Series:
    """Column `name` of rows as strings, "" where missing (runs written before the column existed have none)."""
    return rows[name].astype(object).fillna("").astype(str) if name in rows.columns else pd.Series(
        "", index=rows.index)


def views(rows: pd.DataFrame) -> set[tuple[str, str, str]]:
    """The (protocol, variant, precision) views that rows (run rows, or a table csv's reproduced rows) give."""
    if not len(rows):
        return set()
    cols = [text_column(rows, c) for c in ("protocol", "variant", "precision")]
    cols[1] = cols[1].replace("", DEFINITION)
    return {(str(p), str(v), str(q)) for p, v, q in zip(*cols) if p}


def view_of(old: pd.DataFrame, variant: str, precision: str) -> pd.DataFrame:
    """The rows of an earlier table csv that belong to one (variant, precision) view."""
    if not len(old):
        return old
    var = old["variant"].replace("", DEFINITION) if "variant" in old.columns else DEFINITION
    prec = old["precision"] if "precision" in old.columns else ""
    return old[(var == variant) & (prec == precision)]


def settings_of(data: str) -> frozenset[str]:
    """The settings a cell's data text names (one part per distinct run text, joined by ' | '), without each
    run's wall time: cells with equal settings were made by one recipe on one data, only their seeds differ."""
    return frozenset(WALL.sub("", p.strip()) for p in str(data).split(" | ") if p.strip())


def seeds_of(seeds: str, n_seeds: float) -> set[int]:
    """A cell's seeds; a table written before the `seeds` column gives 0..n-1, what `--seeds N` runs."""
    text = str(seeds or "").strip()
    return {int(s) for s in text.split(",")} if text else set(range(int(n_seeds or 0)))


def pool(a: tuple[float, float, int], b: tuple[float, float, int]) -> tuple[float, float, int]:
    """(mean, sd, n) of two groups of seeds from their own (mean, sd with ddof=1, n): exactly what
    summarize_seeds gives over the union (a one-seed group's sd is NaN and adds no within-group spread)."""
    (ma, sa, na), (mb, sb, nb) = a, b
    if not (na and np.isfinite(ma)) or not (nb and np.isfinite(mb)):  # a group without the value adds nothing
        return b if not (na and np.isfinite(ma)) else a
    n = na + nb
    mean = (na * ma + nb * mb) / n
    within = sum((k - 1) * s * s for s, k in ((sa, na), (sb, nb)) if k > 1 and np.isfinite(s))
    between = na * (ma - mean) ** 2 + nb * (mb - mean) ** 2
    return mean, float(np.sqrt((within + between) / (n - 1))) if n > 1 else float("nan"), n


def source_parts(source: str) -> list[str]:
    """The runs folders a cell's source names (a pooled cell names each)."""
    return [s for s in str(source).split(", ") if s]


def _part(row, seeds: set[int]) -> dict:
    """One runs folder's share of a cell: its seeds, data text and (mean, sd) of every POOLED column, n."""
    out = {"seeds": sorted(seeds), "data": str(row.get("data", "")), "n": int(row["n_seeds"])}
    for m, sd in POOLED:
        if m in row.index:
            out[m], out[sd] = float(row[m]), float(row[sd])
    return out


def parts_of(row) -> dict[str, dict]:
    """{runs folder: its share} of an earlier table row: the `parts` column a pooled cell keeps, or the whole row
    as its source's share (a cell made by one runs folder, or written before the column existed)."""
    text = str(row.get("parts", "") or "")
    if text:
        return json.loads(text)
    return {str(row[SOURCE]): _part(row, seeds_of(row.get("seeds", ""), row["n_seeds"]))}


def _pool_rows(comp: pd.DataFrame, old: pd.DataFrame, idx, source: str) -> list[bool]:
    """Pool in place every cell `comp` reproduced with the earlier row's shares from other runs folders that have
    the same settings and other seeds. The share of `source` itself in the earlier row is replaced by `comp`'s, so
    reporting a folder again never counts its seeds twice nor drops its partners'."""
    pooled = []
    for i, k in enumerate(idx):
        row = comp.iloc[i]
        if row["n_seeds"] == 0 or k not in old.index:
            pooled.append(False)
            continue
        new_seeds = seeds_of(row["seeds"], row["n_seeds"])
        mine = _part(row, new_seeds)
        others = {s: p for s, p in parts_of(old.loc[k]).items() if s != source}
        fits = bool(others) and all(settings_of(p["data"]) == settings_of(mine["data"])
                                    and not (set(p["seeds"]) & new_seeds) for p in others.values())
        pooled.append(fits)
        if not fits:
            continue
        every = {**others, source: mine}
        for m, sd in POOLED:
            if m in comp.columns:
                acc = (float("nan"), float("nan"), 0)
                for p in every.values():
                    acc = pool(acc, (p.get(m, float("nan")), p.get(sd, float("nan")), p["n"]))
                comp.iat[i, comp.columns.get_loc(m)], comp.iat[i, comp.columns.get_loc(sd)] = acc[0], acc[1]
        seeds = sorted({s for p in every.values() for s in p["seeds"]})
        texts = {t.strip() for p in every.values() for t in p["data"].split(" | ") if t.strip()}
        for col, value in (("n_seeds", sum(p["n"] for p in every.values())), ("seeds", ",".join(map(str, seeds))),
                           ("data", " | ".join(sorted(texts))), (SOURCE, ", ".join(sorted(every))),
                           ("parts", json.dumps(every, sort_keys=True))):
            comp.iat[i, comp.columns.get_loc(col)] = value
    return pooled


def keep_earlier(comp: pd.DataFrame, old: pd.DataFrame, source: str) -> pd.DataFrame:
    """`comp` (one protocol of a table, from compare()) with its 'no run' cells filled from `old` where `old`
    has them for the same cell and protocol, and its cells pooled with `old`'s where both hold other seeds of
    the same settings; `source` labels the cells `comp` reproduced itself."""
    comp = comp.copy()
    comp[SOURCE] = np.where(comp["n_seeds"] > 0, source, "")
    for c in ("seeds", "parts"):
        if c not in comp.columns:
            comp[c] = ""
    if not len(old):
        return comp
    for pair in POOLED:  # a side column (n_eval, head_fitted) this report's runs did not write stays with its cells
        for c in pair:
            if c not in comp.columns and c in old.columns:
                comp[c] = np.nan
    key = KEYS + ["protocol"]
    old = old.drop_duplicates(subset=key, keep="last").set_index(key)
    idx = pd.MultiIndex.from_frame(comp[key].astype(str))
    for c in ("seeds", "data", "parts", SOURCE):
        comp[c] = comp[c].astype(object)
    pooled = _pool_rows(comp, old, idx, source)
    take = [(comp["n_seeds"].iat[i] == 0) and (k in old.index) for i, k in enumerate(idx)]
    if not any(take) and not any(pooled):
        return comp
    carried = [c for c in comp.columns if c not in key and c not in PUBLISHED_COLUMNS
               and c not in ("difference", "status", "reason") and c in old.columns]
    rows = old.loc[[k for k, t in zip(idx, take) if t], carried]
    mask = np.array(take)
    for c in carried:
        comp[c] = comp[c].astype(object)
        comp.loc[mask, c] = rows[c].to_numpy()
    comp["n_seeds"] = pd.to_numeric(comp["n_seeds"]).astype(int)
    comp["reproduced"] = pd.to_numeric(comp["reproduced"], errors="coerce")
    comp["difference"] = comp["reproduced"] - pd.to_numeric(comp["published"], errors="coerce")
    comp["status"] = np.where(comp["n_seeds"] > 0, "reproduced", NO_RUN)
    comp["data"] = comp["data"].fillna("").astype(str)
    return add_reasons(comp)


def unmatched_counts(out: Path) -> dict[str, int]:
    """{runs folder: rows} of every paper's reproduced_no_published_counterpart.csv under `out`."""
    counts: dict[str, int] = {}
    for path in sorted(out.glob("*/reproduced_no_published_counterpart.csv")):
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        for s, n in (df[SOURCE].value_counts().items() if SOURCE in df.columns else []):
            counts[s] = counts.get(s, 0) + int(n)
    return counts


def kept_count(comp: pd.DataFrame, source: str) -> int:
    """Reproduced cells of `comp` that only other runs folders made (kept from the folder's earlier report)."""
    return int(sum(n > 0 and source not in source_parts(s) for n, s in zip(comp["n_seeds"], comp[SOURCE])))


def source_counts(comp: pd.DataFrame) -> dict[str, int]:
    """{runs folder: reproduced cells it made or took part in (a pooled cell counts for each)}."""
    counts: dict[str, int] = {}
    for s in comp.loc[comp["n_seeds"] > 0, SOURCE]:
        for p in source_parts(s):
            counts[p] = counts.get(p, 0) + 1
    return dict(sorted(counts.items()))


def keep_unmatched(new: pd.DataFrame, path: Path, source: str) -> pd.DataFrame:
    """The no-published-counterpart summary (one row per setting and metric) with the earlier file's settings
    that `new` does not give kept; `source` labels the new rows."""
    new = new.assign(**{SOURCE: source})
    if not path.is_file():
        return new
    old = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "metric" not in old.columns or "mean" not in old.columns:
        return new
    if SOURCE not in old.columns:
        old[SOURCE] = EARLIER
    old["metric"] = current_metrics(old["metric"])
    for c in ("mean", "sd", "n"):
        old[c] = pd.to_numeric(old[c], errors="coerce")
    if not len(new):
        return old
    key = [c for c in new.columns if c not in ("mean", "sd", "n", "text", SOURCE)]
    if not set(key) <= set(old.columns):  # another layout of keys: the old rows are kept with theirs
        key = [c for c in key if c in old.columns]
    both = pd.concat([old, new.astype({k: str for k in key})], ignore_index=True)
    for c in key:
        both[c] = both[c].fillna("").astype(str)
    return both.drop_duplicates(subset=key, keep="last").reset_index(drop=True)


# --------------------------------------------------------------------------- the index's opening per runs folder
def read_sources(out: Path) -> dict[str, list[str]]:
    """{runs folder: its lines of the index's opening} kept beside the index; a folder holding an index from
    before sources.json existed gives its whole opening under 'earlier report'."""
    path = out / SOURCES_FILE
    if path.is_file():
        try:
            return {str(k): list(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, AttributeError):
            pass
    index = out / "README.md"
    if not index.is_file():
        return {}
    text = index.read_text()
    if PROVENANCE in text:  # the index puts its answer first and what made it after the tables
        head = text.split(PROVENANCE, 1)[1].split(KEPT, 1)[0].splitlines()
    else:
        head = text.split("\n## ", 1)[0].splitlines()
    return {EARLIER: [ln for ln in head if not ln.startswith("# ")]}


def write_sources(out: Path, sources: dict[str, list[str]]) -> Path:
    path = out / SOURCES_FILE
    path.write_text(json.dumps(sources, indent=1) + "\n")
    return path


def earlier_opening(sources: dict[str, list[str]], source: str, counts: dict[str, int]) -> list[str]:
    """Index lines for every other runs folder whose cells the folder still shows (their own opening lines)."""
    lines = []
    for s, head in sources.items():
        if s == source or not counts.get(s):
            continue
        # every view is counted here (variants and controls too): not a count of reproduced cells
        lines += [f"\n{KEPT}`{s}` ({counts[s]} cell(s) or setting(s) with a run, every view)\n",
                  "These cells had no run under this report's runs folder, so they keep what that report wrote:\n"]
        lines += head
    return lines
