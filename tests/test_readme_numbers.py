"""README's quick-profile numbers are the committed quick run's: a number README quotes that `figures/` does not
hold, or a commit it names that did not make `figures/`'s quick cells, fails here (docs/profiles.md)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PAPERS = {"MINT": "mint", "aMINT": "amint", "gMINT": "gmint", "Factors": "factors"}
NUMBER = re.compile(r"(?<![\d.])0\.\d{3}(?!\d)")


def quick_section() -> tuple[str, list[str]]:
    """(the sentence introducing README's quick-profile table, the table's body rows)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("Quick profile (`python -m mintkit reproduce --profile quick`")
    block = text[start:].split("\n\n")
    intro, table = block[0], next(b for b in block[1:] if b.lstrip().startswith("|"))
    return intro, [ln for ln in table.splitlines()[2:] if ln.startswith("|")]


def quick_values(paper: str) -> set[str]:
    """Every value of the quick-profile rows figures/<paper>/ holds, as the report prints it (3 decimals)."""
    df = pd.read_csv(ROOT / "figures" / paper / "reproduced_no_published_counterpart.csv", dtype=str,
                     keep_default_na=False)
    quick = df[df["profile"] == "quick"]
    return {f"{float(v):.3f}" for v in quick["text"] if NUMBER.fullmatch(v) or v.replace(".", "", 1).isdigit()}


def test_readme_quick_numbers_come_from_the_committed_quick_run():
    intro, rows = quick_section()
    assert rows, "README has no quick-profile table"
    for row in rows:
        name = row.split("|")[1].strip()
        assert name in PAPERS, f"README quick table row {name!r}: not one of {sorted(PAPERS)}"
        values = quick_values(PAPERS[name])
        quoted = NUMBER.findall(row)
        missing = [q for q in quoted if q not in values]
        assert quoted and not missing, (f"README quotes {missing} for {name}, which figures/{PAPERS[name]}/ does not "
                                        "hold for the quick profile: rerun `make reproduce` and copy the numbers")


def test_readme_names_the_commit_and_machine_that_made_the_quick_cells():
    intro, _ = quick_section()
    sources = json.loads((ROOT / "figures" / "sources.json").read_text())
    quick = next((lines for name, lines in sources.items() if name.rstrip("/").endswith("quick")), None)
    assert quick, "figures/sources.json has no quick runs folder"
    made = next(ln for ln in quick if ln.startswith("Profile `quick`"))
    commits = re.search(r"commit\(s\) ([0-9a-f]{7,10})", made)
    assert commits and f"commit {commits.group(1)[:7]}" in intro, (made, intro)
    assert "AMD EPYC" in made and "AMD EPYC" in intro
