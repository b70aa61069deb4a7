"""`reproduce --dry-run`: what a profile would run, in a screen: per paper and preset the number of runs
(complete / to run / needing input), the datasets and set sizes, stand-in data or not, an estimate of the time
from the wall times measured under the batch folder, then the table of inputs. `--verbose` adds one line per
run with its injected parameters."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from mintkit.batch import inputs
from mintkit.batch.plans import MNIST_PROFILE, RunSpec

SIZES = (("n_members", "D"), ("n_external", "E"), ("n_eval", "eval"))
STANDINS = {v: k for k, v in MNIST_PROFILE.standins.items()}  # stand-in dataset -> the one it stands for


def _read(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def measured_seconds(out: Path) -> dict[tuple[str, str], list[float]]:
    """{(paper, preset): wall seconds of each complete run} from <out>/batch.json (what `reproduce` measured)."""
    got: dict[tuple[str, str], list[float]] = {}
    for entry in _read(out / "batch.json").get("runs", {}).values():
        if entry.get("status") == "complete" and entry.get("seconds"):
            got.setdefault((entry.get("paper", ""), entry.get("preset", "")), []).append(float(entry["seconds"]))
    return got


def _hours(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min" if s >= 60 else f"{s:.0f} s"


def _sizes(spec: RunSpec) -> str:
    p = spec.params
    parts = [f"{label} {p[k] if p[k] else 'paper'}" for k, label in SIZES if k in p]
    return "/".join(parts)


def summary(runs: list[RunSpec], out: Path, profile: str, is_complete) -> list[str]:
    """The dry run's lines (see the module docstring)."""
    groups: dict[tuple[str, str], list[RunSpec]] = {}
    for s in runs:
        groups.setdefault((s.paper, s.preset), []).append(s)
    measured = measured_seconds(Path(out))
    lines = [f"profile {profile}: {len(runs)} run(s) into {out}",
             f"  {'paper/preset':<28} {'runs':>4} {'done':>4} {'todo':>4} {'input':>5}  datasets (sizes)  estimate"]
    total, unknown = 0.0, 0
    for (paper, preset), specs in groups.items():
        done = sum(bool(is_complete(s)) for s in specs)
        blocked = sum(bool(inputs.missing(s)) for s in specs if not is_complete(s))
        todo = len(specs) - done - blocked
        data = sorted({f"{s.params.get('dataset', '?')}"
                       + (f" (stand-in for {STANDINS[s.params['dataset']]})" if s.params.get("dataset") in STANDINS
                          else "") + (f" [{_sizes(s)}]" if _sizes(s) else "") for s in specs})
        secs = measured.get((paper, preset)) or []
        if todo and secs:
            est = todo * statistics.median(secs)
            total += est
            estimate = f"~{_hours(est)} (median {_hours(statistics.median(secs))} of {len(secs)} measured)"
        elif todo:
            unknown += todo
            estimate = "no measured run yet"
        else:
            estimate = "-"
        lines.append(f"  {paper + '/' + preset:<28} {len(specs):>4} {done:>4} {todo:>4} {blocked:>5}  "
                     f"{'; '.join(data)}  {estimate}")
    if total:
        lines.append(f"estimate: ~{_hours(total)} for the runs with a measured time under {out}"
                     + (f"; {unknown} run(s) without one" if unknown else "")
                     + " (one at a time, on the machine that measured them)")
    elif unknown:
        lines.append(f"estimate: none: no run of these presets has a measured time under {out} yet")
    return lines + inputs.input_table(runs)
