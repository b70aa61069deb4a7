"""The opening of the report's index (`<out>/README.md`): what made the figures, on which machines, and what was
left out. The per-paper table listing follows it (mintkit.batch.report.build)."""
from __future__ import annotations

import shlex
from pathlib import Path, PureWindowsPath

import pandas as pd

from mintkit.batch.provenance import read_json

NO_RUN = "no run"


def _is_machine_path(value: str) -> bool:
    return value.startswith(("/", "~")) or PureWindowsPath(value).drive != ""


def portable(command: str, runs: str, flag: str = "--out") -> str:
    """A recorded command as anyone can read and rerun it: the value of `flag` (a batch's ``--out``, the report's
    ``--runs``) becomes the runs folder as the report names it (`runs`), an absolute ``-p NAME VALUE`` becomes
    ``<NAME>`` (``<data_root>``, ``<cache_dir>``...), any other absolute path ``<path>``: the index names no
    folder of the machine that made it."""
    try:
        toks = shlex.split(command)
    except ValueError:
        return command
    out, i = [], 0
    while i < len(toks):
        t = toks[i]
        if t == flag and i + 1 < len(toks):
            out += [t, runs]
            i += 2
        elif t in ("-p", "--parameter") and i + 2 < len(toks):
            name, value = toks[i + 1], toks[i + 2]
            out += [t, name, f"<{name}>" if _is_machine_path(value) else value]
            i += 3
        else:
            out.append("<path>" if _is_machine_path(t) else t)
            i += 1
    return " ".join(shlex.quote(t) if not (t.startswith("<") and t.endswith(">")) else t for t in out)


def machines(runs: list[dict]) -> list[str]:
    """Index lines: per profile, the seeds, commits and machines (env.json) of its complete runs."""
    seen: dict[str, dict[str, set]] = {}
    for r in runs:
        if r["status"] != "complete":
            continue
        env, params = read_json(r["folder"] / "env.json"), read_json(r["folder"] / "params.json")
        entry = seen.setdefault(r["profile"], {"machine": set(), "commit": set(), "seed": set()})
        entry["machine"].add(f"{env.get('device', '?')} ({env.get('device_name') or '?'}, torch {env.get('torch', '?')}, "
                             f"{env.get('threads', '?')} thread(s))")
        entry["commit"].add(str(env.get("git_commit") or "?")[:10] + (" (dirty)" if env.get("git_dirty") else ""))
        entry["seed"].add(str(params.get("seed", "?")))
    return [f"Profile `{p}`: seeds {', '.join(sorted(e['seed']))}; commit(s) {', '.join(sorted(e['commit']))}; "
            f"machine(s): {'; '.join(sorted(e['machine']))}.\n" for p, e in sorted(seen.items())]


def index_header(root: Path, runs: list[dict], rows: pd.DataFrame, command: str) -> list[str]:
    """The index's opening lines: the command, profiles, machines, batch commands and notes, row counts, and the
    runs left out (not complete) with their error."""
    profiles = sorted({r["profile"] for r in runs if r["status"] == "complete"})
    lines = ["# Figures and tables (generated — do not edit)\n",
             f"Made by `{portable(command, str(root), '--runs') if command else 'python -m mintkit report'}` from the "
             f"run folders under `{root}`.",
             f"Profile(s) of the complete runs: **{', '.join(profiles) or 'none'}**. "
             "Regenerate: `make reproduce` (quick profile, then this report) or "
             "`python -m mintkit reproduce --profile paper` then `python -m mintkit report`.\n"]
    batches = {}
    for r in runs:
        if r["batch"]:
            batches[r["profile"]] = (r["batch"].get("commands", []), r["batch"].get("note", ""))
    lines += machines(runs)
    for prof, (cmds, note) in sorted(batches.items()):
        lines.append(f"Runs of profile `{prof}` were made by:\n")
        lines += [f"    {portable(c, str(root))}" for c in cmds] + [""]
        if note:  # the batch's NOTE.md: what it left out and why
            lines += [f"About the `{prof}` batch (its NOTE.md):\n", note, ""]
    n_ok = sum(r["status"] == "complete" for r in runs)
    lines.append(f"{n_ok} complete run(s) reported. A published cell without a complete run says '{NO_RUN}'; "
                 "nothing is filled in from the paper.")
    dups, repeats = (rows.attrs.get(k, 0) for k in ("duplicates", "repeats"))
    if dups:
        lines.append(f"{dups} row(s) gave another value for a (cell, seed) of a newer run and were left out.")
    if repeats:
        lines.append(f"{repeats} row(s) repeated a (cell, seed) with the same value (one model shared by several "
                     "runs, e.g. aMINT's passive model across setups) and were counted once.")
    bad = [r for r in runs if r["status"] != "complete"]
    if bad:
        lines.append("\nRuns left out (not complete):\n")
        for r in bad:
            nb = r["folder"] / "executed.ipynb"
            lines.append(f"- `{r['folder']}`: {r['status']}" + (f" — {r['error']}" if r["error"] else "")
                         + (f" (notebook `{nb}`)" if nb.exists() else ""))
    return lines
