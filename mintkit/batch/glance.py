"""What the report's index (`<out>/README.md`) says first: one line per paper, and the counts of its table list.

Only the definition's cells count as "reproduced": a protocol variant reads the method another way, a null control
(`null=`) must read chance and a positive control (`control=leaky`) must detect, so they are counted beside the
definition's cells, each by its kind, never added to them (a table with 36 definition cells and 108 other views
reads "36", not "144"). The one line per paper puts the claims ledger's verdicts (`<out>/claims.csv`), the cells
and the seeds above the tables; what made them (commands, machines, batch notes) follows the tables.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mintkit.batch.claims import CSV as CLAIMS_CSV, MD as CLAIMS_MD
from mintkit.batch.collect import KEYS
from mintkit.batch.scatter import kind
from mintkit.core.records import DEFINITION

BESIDE = (("variant", "variant"), ("null", "null-control"), ("positive", "positive-control"))


def view_counts(comp: pd.DataFrame) -> dict:
    """Of one table's rows (every view, `n_seeds` > 0 where it has a run): the published cells reproduced under
    the definition (each once, whatever its protocols), the views of each other kind, and the definition's
    seeds."""
    ran = comp[comp["n_seeds"] > 0]
    kinds = ran["variant"].fillna(DEFINITION).astype(str).map(kind)
    definition = ran[kinds == "definition"]
    seeds = {s for text in definition.get("seeds", pd.Series(dtype=str)).fillna("").astype(str)
             for s in text.split(",") if s.strip()}
    # tables written before the `seeds` column give only each cell's number of seeds
    per_cell = {int(n) for n in pd.to_numeric(definition["n_seeds"], errors="coerce").dropna()}
    return {"definition": int(len(definition[KEYS].drop_duplicates())),
            **{k: int((kinds == k).sum()) for k, _ in BESIDE}, "seeds": {s.strip() for s in seeds},
            "n_seeds": per_cell}


def beside_text(counts: dict) -> str:
    """'36 variant, 72 null-control' (the views beside the definition's cells), '–' when none."""
    return ", ".join(f"{counts[k]} {w}" for k, w in BESIDE if counts.get(k)) or "–"


def add(total: dict, counts: dict) -> dict:
    """Sum two view_counts (the seeds joined)."""
    out = {k: total.get(k, 0) + counts.get(k, 0) for k in ("definition", *(k for k, _ in BESIDE))}
    return {**out, **{k: set(total.get(k, set())) | set(counts.get(k, set())) for k in ("seeds", "n_seeds")}}


def _seeds(counts: dict) -> str:
    """'seed(s) 0, 1, 2', or '1-3 seed(s) per cell' when the tables name no seed."""
    s = sorted(counts.get("seeds", set()), key=lambda x: (not x.isdigit(), int(x) if x.isdigit() else 0, x))
    n = sorted(counts.get("n_seeds", set()))
    if s:
        return f"seed(s) {', '.join(s)}"
    return (f"{n[0]}" + (f"-{n[-1]}" if n[-1] != n[0] else "") + " seed(s) per cell") if n else "no seed"


def verdicts(out: Path, paper: str) -> str:
    """'4 verdict(s) over 3 claim(s) under the definition: does not hold 3, inconclusive 1 (scope: …)' from the
    ledger's csv; the verdicts of other readings are counted apart."""
    path = out / CLAIMS_CSV
    ev = pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else pd.DataFrame()
    if not {"claim", "paper", "verdict", "scope"} <= set(ev.columns):
        return "no claims ledger"
    sub = ev[ev["paper"] == paper]
    if sub.empty:
        return "no claim of this paper in the ledger"
    var = sub["variant"].replace("", DEFINITION) if "variant" in sub.columns else pd.Series(DEFINITION, sub.index)
    dfn, other = sub[var == DEFINITION], sub[var != DEFINITION]
    counts = ", ".join(f"{v} {n}" for v, n in dfn["verdict"].value_counts().items())
    scopes = "; ".join(s for s in dict.fromkeys(dfn["scope"]) if s)
    text = (f"{len(dfn)} verdict(s) over {dfn['claim'].nunique()} claim(s) under the definition: {counts or 'none'}"
            + (f" (scope: {scopes})" if scopes else ""))
    if len(other):
        text += f"; {len(other)} more under variants or controls"
    return text


def paper_lines(out: Path, totals: dict[str, tuple[int, dict]]) -> list[str]:
    """The index's opening: one line per paper ({paper: (published cells, summed view_counts)}), verdicts first."""
    lines = ["One line per paper: the claims ledger's verdicts ([" + CLAIMS_MD + "](" + CLAIMS_MD + ")), the "
             "published cells reproduced under the definition (variants and controls counted beside, never as "
             "reproduced) and their seeds. The tables follow; what made them (commands, machines, notes) is under "
             "\"Provenance\" at the end.\n"]
    for paper, (cells, c) in totals.items():
        beside = beside_text(c)
        lines.append(f"- **{paper}** — {verdicts(out, paper)}. Cells: {c.get('definition', 0)} of {cells} published "
                     f"reproduced under the definition" + (f" (beside: {beside} view(s))" if beside != "–" else "")
                     + f", {_seeds(c)}. [tables](#{paper})")
    return lines + [""]
