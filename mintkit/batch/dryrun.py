"""`reproduce --dry-run`: what a profile would run, in a screen: first the device the runs will use (and why
the batch would be refused, e.g. `--profile paper` without CUDA) and a data_root that does not exist, said once;
then per paper and preset the number of runs (complete / to run / needing input), the datasets and the set sizes
each run will use (D / E / eval, as the notebook computes them: mintkit.batch.estimate), stand-in data or not,
an estimate of the time (the wall times measured under the batch folder, else a stated rate with its source),
then the table of inputs. `--verbose` adds one line per run with its injected parameters."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from mintkit.batch import estimate, inputs
from mintkit.batch.plans import MNIST_PROFILE, RunSpec

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


def _estimate(todo: list[RunSpec], secs: list[float]) -> tuple[float, int, str]:
    """(seconds, runs without an estimate, text) for the runs still to do: the median of the preset's measured
    runs, else the stated rates (mintkit.batch.estimate.RATES) of the runs that have one."""
    if not todo:
        return 0.0, 0, "-"
    if secs:
        med = statistics.median(secs)
        return len(todo) * med, 0, f"~{_hours(len(todo) * med)} (median {_hours(med)} of {len(secs)} measured)"
    stated = [t for t in map(estimate.stated_seconds, todo) if t]
    if not stated:
        return 0.0, len(todo), "no measured run yet; no stated rate"
    total, left = sum(t for t, _ in stated), len(todo) - len(stated)
    return total, left, (f"~{_hours(total)} for {len(stated)} run(s) at a stated rate ({stated[0][1]})"
                         + (f"; {left} without one" if left else ""))


def summary(runs: list[RunSpec], out: Path, profile: str, is_complete) -> list[str]:
    """The dry run's lines (see the module docstring)."""
    groups: dict[tuple[str, str], list[RunSpec]] = {}
    for s in runs:
        groups.setdefault((s.paper, s.preset), []).append(s)
    measured = measured_seconds(Path(out))
    lines = [f"profile {profile}: {len(runs)} run(s) into {out}", estimate.device_line(runs)]
    refusal = estimate.cuda_refusal(runs, profile)
    if refusal:
        lines.append(f"WARNING: reproduce would refuse to start: {refusal}")
    lines += inputs.missing_roots_lines(runs)
    lines.append(f"  {'paper/preset':<28} {'runs':>4} {'done':>4} {'todo':>4} {'input':>5}  datasets (sizes)  estimate")
    total, unknown = 0.0, 0
    for (paper, preset), specs in groups.items():
        done = sum(bool(is_complete(s)) for s in specs)
        blocked = sum(bool(inputs.missing(s)) for s in specs if not is_complete(s))
        todo = len(specs) - done - blocked
        data = sorted({f"{s.params.get('dataset', '?')}"
                       + (f" (stand-in for {STANDINS[s.params['dataset']]})" if s.params.get("dataset") in STANDINS
                          else "") + (f" [{estimate.sizes_text(s)}]" if estimate.sizes_text(s) else "")
                       for s in specs})
        pending = [s for s in specs if not is_complete(s) and not inputs.missing(s)]
        secs, left, text = _estimate(pending, measured.get((paper, preset)) or [])
        total += secs
        unknown += left
        lines.append(f"  {paper + '/' + preset:<28} {len(specs):>4} {done:>4} {todo:>4} {blocked:>5}  "
                     f"{'; '.join(data)}  {text}")
    if total:
        lines.append(f"estimate: ~{_hours(total)} for the runs with a measured time under {out} or a stated rate"
                     + (f"; {unknown} run(s) without either" if unknown else "")
                     + " (one at a time, on the machine that measured them)")
    elif unknown:
        lines.append(f"estimate: none: no run of these presets has a measured time under {out} and no rate is "
                     "stated for their architecture and device (mintkit.batch.estimate.RATES)")
    return lines + inputs.input_table(runs)
