"""Where a reproduced number came from, and why it may differ from the published one.

- `describe_data`: the data and sizes of a run folder, read off its ``params.json`` and ``split.json``
  ("MNIST test split as stand-in, 10,000 images: D 4,500, E 4,500, eval 500 + 500"), and the preset values the
  batch's ``-p`` overrides changed (from the runner's ``plan.json``).
- `STANDINS`: reproduced dataset labels placed beside a published dataset (the 10k MNIST test split beside
  MNIST), always with their ``data`` text saying so (docs/profiles.md §Stand-in data).
- `reason`: the short reason every cell with |Δ| above `REASON_THRESHOLD` (or an audited accuracy more than
  `AUDITED_THRESHOLD` from the published one) carries: a documented deviation
  or upstream bug (`mintkit/reference/deviations.csv`), a recipe shortened by overrides, stand-in data or scale,
  else "unexplained".
"""
from __future__ import annotations

import json
import os
import socket
from importlib import resources
from pathlib import Path

import pandas as pd

from mintkit.reference import label_dataset

REASON_THRESHOLD = 0.05
AUDITED_THRESHOLD = 0.03  # the audited model's test accuracy this far from the published one needs a reason too
# reproduced dataset label -> (published label it sits beside, the `data` text that names the stand-in)
STANDINS = {
    "MNIST (test split)": ("MNIST", "MNIST (stand-in: the 10k MNIST test split instead of the 70k of MNIST)"),
    "CIFAR-10 (JPEG q75 stand-in)": ("CIFAR-10", "CIFAR-10 (JPEG q75 stand-in): the 60k CIFAR-10 images re-encoded "
                                                 "as JPEG at quality 75, not CIFAR-10's pixels"),
}
SET_NAMES = (("members", "D"), ("external", "E"), ("eval_members", "eval members"),
             ("eval_nonmembers", "eval non-members"))
CHANGED = "not the preset's recipe: "  # describe_data's marker of a run whose -p overrides changed the preset
REDUCED = "reduced size"  # describe_data's marker of a run whose -p overrides shrank the preset's membership sets
SIZE_KEYS = ("n_members", "n_external", "n_eval")
DEVIATION_KEYS = ["paper", "table", "dataset", "model", "setup", "condition", "feature"]


def read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def describe_data(folder: Path) -> str:
    """One line: the dataset that ran (stand-in named), the pool size and the membership set sizes."""
    params = read_json(folder / "params.json")
    split = next((s for s in (read_json(p) for p in sorted(folder.glob("split*.json"))) if s), {})
    name = params.get("dataset") or split.get("pool", "")
    label = label_dataset(name) if name else "?"
    if label in STANDINS:
        label = STANDINS[label][1]
    parts = [label]
    if split.get("pool_size"):
        parts.append(f"{split['pool_size']:,} images")
    sizes = split.get("sizes", {})
    if sizes:
        parts.append(", ".join(f"{short} {sizes[k]:,}" for k, short in SET_NAMES if k in sizes))
    changed = read_json(folder / "plan.json").get("changed", {})
    if any(k in changed for k in SIZE_KEYS):
        parts.insert(1, f"{REDUCED} (real splits, sizes below)")
    if changed:
        parts.append(CHANGED + ", ".join(f"{k} {c['run']} (preset {c['preset']})" for k, c in sorted(changed.items())))
    seconds = read_json(folder / "status.json").get("seconds") or wall_seconds(folder)
    if seconds:  # the runner's wall time of the whole run (written on completion)
        parts.append(f"wall {float(seconds):,.0f} s")
    return "; ".join(parts)


def wall_seconds(folder: Path) -> float | None:
    """A run's wall time as its batch recorded it (batch.json beside the paper folders: runs/<paper>/<run>)."""
    runs = read_json(folder.parent.parent / "batch.json").get("runs", {})
    entry = runs.get(f"{folder.parent.name}/{folder.name}") if isinstance(runs, dict) else None
    return (entry or {}).get("seconds")


def place_standins(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of a stand-in dataset take the published label they sit beside (their ``data`` keeps the truth)."""
    out = rows.copy()
    out["dataset"] = [STANDINS[d][0] if d in STANDINS else d for d in out["dataset"]]
    return out


def deviations() -> pd.DataFrame:
    """Documented deviations and upstream bugs: key columns (empty = any) and a ``reason``."""
    with resources.files("mintkit").joinpath("reference/deviations.csv").open() as f:
        return pd.read_csv(f, keep_default_na=False, dtype=str, comment="#")


def reason(cell: dict, data: str, documented: pd.DataFrame) -> str:
    """Why a cell's reproduced mean differs from the published value by more than the threshold: the first
    documented row whose keys match (empty = any) and whose ``data`` text, when given, occurs in the cell's."""
    for dev in documented.itertuples(index=False):
        d = dev._asdict()
        if all(d[k] in ("", str(cell.get(k, ""))) for k in DEVIATION_KEYS) and d.get("data", "") in data:
            return d["reason"]
    if REDUCED in data:
        return f"{REDUCED} of the real data, preset recipe changed by overrides (see the data column)"
    if CHANGED in data:
        return "preset recipe changed by overrides" + (", stand-in data" if "stand-in" in data else "") + " (see the data column)"
    if "stand-in" in data:
        return "stand-in data and scale (see the data column)"
    return "unexplained"


def add_reasons(comp: pd.DataFrame, documented: pd.DataFrame | None = None) -> pd.DataFrame:
    """``reason`` for every reproduced cell with |Δ| > REASON_THRESHOLD, or whose audited model's test accuracy
    is more than AUDITED_THRESHOLD from the published one ("" elsewhere): a membership number is comparable only
    when the audited model is."""
    documented = deviations() if documented is None else documented
    reasons = []
    for r in comp.to_dict("records"):
        diff = r.get("difference")
        aud = float(r.get("audited_accuracy_reproduced", float("nan"))) - float(
            r.get("audited_accuracy_published", float("nan")))
        big = (pd.notna(diff) and abs(float(diff)) > REASON_THRESHOLD) or abs(aud) > AUDITED_THRESHOLD
        reasons.append(reason(r, str(r.get("data", "")), documented) if big else "")
    return comp.assign(reason=reasons)


def run_state(status: dict) -> str:
    """A run's state from its status.json: its `status`, except that a 'running' run whose process is gone (killed,
    or its machine stopped) is 'stopped'. The process is looked up only on the host that recorded it; a run
    recorded on another host stays 'running (on <host>)', as this machine cannot tell."""
    state = status.get("status", "unfinished")
    if state != "running" or "pid" not in status:
        return state
    host = status.get("host")
    if host and host != socket.gethostname():
        return f"running (on {host})"
    try:
        os.kill(int(status["pid"]), 0)
    except ProcessLookupError:
        return "stopped"
    except (PermissionError, ValueError, OverflowError):
        pass
    return state
