"""The reproduced cells the claims ledger reads: every table csv and no-counterpart csv under `figures/`, one line
per (paper, scope, cell) with its mean, sd, seeds, evaluated samples a seed and whether its MINT head trained.

Scope = dataset, model, protocol, precision, variant (docs/protocol.md, "Claims ledger"). Controls live in the
variant: ``null=other-data`` (mintkit.core.null, must read chance), ``control=leaky`` (a positive control: a
deliberately leaky audited model, must be detected).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from mintkit.batch import merge
from mintkit.core.null import ACCURACY_KEYS, CHANCE_ALPHA, POSITIVE
from mintkit.core.records import DEFINITION, current_metric

SCOPE = ["dataset", "model", "protocol", "precision", "variant"]
CELL_KEYS = ["table", "setup", "condition", "feature"]
NULL_PART = "null=other-data"
ORDER_FIRST, ORDER_SHUFFLED = "order=members_first", "order=shuffled"
PAPERS = ("gmint", "amint", "mint", "factors")
EVAL_TEXT = re.compile(r"eval members ([\d,]+), eval non-members ([\d,]+)")
COUNT_METRICS = ("n_eval_members", "n_eval_nonmembers")
FIT_METRIC = "head_fitted"
COLUMNS = ["ref", *SCOPE, *CELL_KEYS, "mean", "sd", "n", "n_eval", "fitted", "audited", "audited_train", "source"]


def _n_eval_from_text(text: str) -> int:
    """Evaluated samples a seed named in a table's `data` text (the fewest over its parts; 0 when none)."""
    found = [int(a.replace(",", "")) + int(b.replace(",", "")) for a, b in EVAL_TEXT.findall(str(text))]
    return min(found) if found else 0


def _numeric(df: pd.DataFrame, *names: str) -> pd.Series:
    """The first of `names` that `df` has, as numbers (NaN where none)."""
    name = next((n for n in names if n in df.columns), None)
    return pd.to_numeric(df[name], errors="coerce") if name else pd.Series(np.nan, index=df.index)


def _frame(df: pd.DataFrame, ref: str) -> pd.DataFrame:
    """One paper's csv (a table or the no-counterpart file) as wide cells: the accuracy with its counts."""
    df = df.rename(columns={"reproduced": "mean", "n_seeds": "n"})
    for c in (*SCOPE, *CELL_KEYS, "source", "sd", "data", "audited_accuracy_reproduced",
              "audited_train_accuracy_reproduced"):
        df[c] = df[c] if c in df.columns else ""
    df["metric"] = df["metric"].map(current_metric)
    for c in ("mean", "sd", "n"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in (*SCOPE, *CELL_KEYS, "source"):
        df[c] = df[c].fillna("").astype(str)
    df.loc[df["variant"] == "", "variant"] = DEFINITION
    key = [*SCOPE, *CELL_KEYS]
    acc = df[df["metric"].isin(ACCURACY_KEYS) & (df["n"] > 0)].copy()
    if acc.empty:
        return pd.DataFrame(columns=COLUMNS)
    wide = df[df["metric"].isin([*COUNT_METRICS, FIT_METRIC, "audited_accuracy", "audited_train_accuracy"])]
    side = wide.pivot_table(index=key, columns="metric", values="mean", aggfunc="first") if len(wide) else None
    acc = acc.set_index(key)
    if side is not None:
        acc = acc.join(side, how="left")
    if "n_eval_reproduced" in acc.columns:  # a table csv: the report's per-cell column
        counts = _numeric(acc, "n_eval_reproduced").fillna(0)
    else:  # a no-counterpart csv: the counts are metrics of the cell
        counts = sum(_numeric(acc, c).fillna(0) for c in COUNT_METRICS)
    acc["n_eval"] = counts.where(counts > 0, acc["data"].map(_n_eval_from_text))
    acc["fitted"] = _numeric(acc, FIT_METRIC, "head_fitted_reproduced")
    acc["audited"] = _numeric(acc, "audited_accuracy", "audited_accuracy_reproduced")
    acc["audited_train"] = _numeric(acc, "audited_train_accuracy", "audited_train_accuracy_reproduced")
    return acc.reset_index().assign(ref=ref)[COLUMNS]


def merged_cells(out: Path) -> pd.DataFrame:
    """Every reproduced accuracy cell under `out` (columns COLUMNS; n = seeds, n_eval = evaluated samples a seed,
    fitted = the share of seeds whose MINT head trained, NaN where the run did not record it)."""
    frames = []
    for ref in PAPERS:
        tables = merge.read_tables(out / ref)
        unmatched = out / ref / merge.UNMATCHED
        extra = pd.read_csv(unmatched, dtype=str, keep_default_na=False) if unmatched.is_file() else pd.DataFrame()
        for df in (tables, extra):
            if len(df) and "metric" in df.columns and ({"mean", "reproduced"} & set(df.columns)):
                frames.append(_frame(df.copy(), ref))
    frames = [f for f in frames if len(f)]
    cells = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    cells["n_eval"] = pd.to_numeric(cells["n_eval"], errors="coerce").fillna(0).astype(int)
    cells = inherit_precision(cells)
    cells = cells.drop_duplicates(["ref", *SCOPE, *CELL_KEYS], keep="first").reset_index(drop=True)
    return infer_amint_fit(cells)


def inherit_precision(cells: pd.DataFrame) -> pd.DataFrame:
    """A no-counterpart file written before it had a precision column: its cells take the precision that the
    table cells of the same paper, data, model and variant record, when they record only one."""
    cells = cells.copy()
    group = ["ref", "dataset", "model", "variant"]
    known = cells[cells["precision"] != ""].groupby(group)["precision"].agg(lambda s: ",".join(sorted(set(s))))
    missing = cells["precision"] == ""
    for i in cells.index[missing]:
        got = known.get(tuple(cells.loc[i, group]), "")
        if got and "," not in got:
            cells.loc[i, "precision"] = got
    return cells


def infer_amint_fit(cells: pd.DataFrame, alpha: float = CHANCE_ALPHA) -> pd.DataFrame:
    """aMINT heads of runs that did not record ``head_fitted``: under the ``paper`` protocol a head is scored on
    members its MINT loss trained on, so when the paper-protocol accuracy of its best-evidenced cell (most seeds) is
    not beyond 0.5 on its pooled counts (two-sided binomial test, p ≥ alpha, as the null control's cells), the head
    did not separate its own training members; every cell of that head, both protocols, is marked fitted = 0."""
    cells = cells.copy()
    head = ["dataset", "model", "precision", "variant", "setup", "condition"]
    amint = (cells["ref"] == "amint") & cells["fitted"].isna() & cells["condition"].isin(["Active", "Passive"])
    paper = cells[amint & (cells["protocol"] == "paper") & (cells["n_eval"] > 0)]
    for _, r in paper.sort_values(["n", "sd"], ascending=[False, True]).drop_duplicates(head).iterrows():
        k = int(r["n_eval"] * r["n"])
        if binomtest(int(round(float(r["mean"]) * k)), k, 0.5).pvalue >= alpha:
            same = amint.copy()
            for key in head:
                same &= cells[key] == r[key]
            cells.loc[same, "fitted"] = 0.0
    return cells


def is_null(variant: str) -> bool:
    return "null=" in str(variant)


def is_positive(variant: str) -> bool:
    return POSITIVE in str(variant)


def is_order_control(variant: str) -> bool:
    """gMINT's carried-state reading over a shuffled order: the control of its members-first reading
    (mintkit.batch.controls), read beside it, never a claim's reading of its own."""
    return ORDER_SHUFFLED in str(variant)


def base_variant(variant: str) -> str:
    """The reading a control belongs to: 'optim_state=carried,null=other-data' -> 'optim_state=carried'."""
    parts = [p for p in str(variant).split(",") if p and not p.startswith("null=") and p != POSITIVE]
    return ",".join(parts) or DEFINITION


def control_variant(variant: str, part: str) -> str:
    """The variant label of `variant`'s control `part` (NULL_PART or POSITIVE), as mintkit.core.null joins it."""
    parts = [p for p in str(variant).split(",") if p and p != DEFINITION]
    return ",".join([*parts, part])
