"""The rows of every complete run under a folder, with their profile and the data they came from."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mintkit.core.params import ParameterError
from mintkit.batch.provenance import describe_data, place_standins, read_json, run_state
from mintkit.core.records import read_results

KEYS = ["paper", "table", "dataset", "model", "setup", "condition", "feature", "metric"]


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame(columns=[*KEYS, "value", "protocol", "variant", "seed", "run_id", "run_dir", "profile",
                                 "precision"])


def precision_of(folder: Path) -> str:
    """The precision a run's audited models trained in: env.json's (mintkit.core.precision), else that of the kit
    before the policy existed (bf16 autocast on CUDA, fp32 on CPU)."""
    env = read_json(folder / "env.json")
    return env.get("precision") or ("bf16" if str(env.get("device", "")).startswith("cuda") else "fp32")


NOTE = "NOTE.md"
MPLUS_LOSS = "Yeom et al. (on M+)"


def profile_of(folder: Path, root: Path) -> tuple[str, dict]:
    """(profile, batch.json) of a run folder: the nearest batch.json up to `root`, else a folder name.

    A ``NOTE.md`` beside batch.json (what the batch left out and why, written by whoever ran it) comes back
    as the batch's ``note``; the report's index shows it with the batch's commands."""
    for parent in [*folder.parents]:
        batch = read_json(parent / "batch.json")
        if batch.get("profile"):
            note = parent / NOTE
            return batch["profile"], batch | ({"note": note.read_text().strip()} if note.is_file() else {})
        if parent == root:
            break
    names = [p.name for p in [folder, *folder.parents]]
    for n in names:
        if n in ("quick", "paper", "adhoc"):
            return n, {}
    return "unknown", {}


def mplus_loss_setup(df: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """aMINT runs made before the M+ loss row carried its setup wrote it with an empty one, so the Entry, Middle and
    Output runs' rows collided and only the newest survived; their ``params.json`` names the setup."""
    old = (df["paper"] == "amint") & (df["condition"] == MPLUS_LOSS) & (df["setup"].fillna("") == "")
    if not old.any():
        return df
    setup = str(read_json(folder / "params.json").get("setup", ""))
    return df.assign(setup=df["setup"].mask(old, setup.capitalize())) if setup else df


def run_folders(root: str | Path) -> list[Path]:
    """Every run folder under `root` (a folder holding status.json or results.csv)."""
    root = Path(root)
    return sorted({p.parent for p in root.rglob("status.json")} | {p.parent for p in root.rglob("results.csv")})


def adhoc_folders(root: str | Path) -> list[Path]:
    """The run folders under `root` made outside a batch: no batch.json with a profile above them (a notebook's
    default out_dir such as runs/scratch, `run` without a batch, an audit). The report leaves them out unless
    asked (`report --include-adhoc`), so a scratch run never lands in the committed figures."""
    return [f for f in run_folders(root) if not profile_of(f, Path(root))[1]]


def adhoc_note(root: str | Path, out: str | Path) -> str:
    """The one line saying which ad hoc runs the report leaves out ('' when none); a ParameterError when the
    folder holds nothing else (the report would write only what nobody asked for into `out`)."""
    adhoc = adhoc_folders(root)
    if not adhoc:
        return ""
    some = ", ".join(map(str, adhoc[:3])) + (f" and {len(adhoc) - 3} more" if len(adhoc) > 3 else "")
    if len(adhoc) == len(run_folders(root)):
        raise ParameterError(f"runs folder {root} holds only runs made outside a batch ({some}); nothing written "
                             f"to {out}. Report a batch (`python -m mintkit reproduce --profile quick`, then "
                             "`report --runs runs/quick`), or add --include-adhoc to report these runs")
    return f"note: left out {len(adhoc)} run(s) made outside a batch ({some}); --include-adhoc reports them"


def collect(root: str | Path, include_adhoc: bool = True) -> tuple[pd.DataFrame, list[dict]]:
    """(rows of every complete run with columns run_dir/profile/run_paper added, one info dict per run folder);
    without `include_adhoc` only the runs of a batch (see `adhoc_folders`)."""
    root = Path(root)
    runs, frames = [], []
    folders = run_folders(root)
    if not include_adhoc:
        left_out = set(adhoc_folders(root))
        folders = [f for f in folders if f not in left_out]
    for folder in folders:
        status = read_json(folder / "status.json")
        profile, batch = profile_of(folder, root)
        info = {"folder": folder, "status": run_state(status), "error": status.get("error"),
                "profile": profile, "batch": batch, "paper": folder.parent.name, "end": status.get("end", "")}
        runs.append(info)
        if info["status"] != "complete" or not (folder / "results.csv").exists():
            continue
        df = mplus_loss_setup(read_results([folder]), folder)
        df["run_dir"], df["profile"], df["data"] = str(folder), profile, describe_data(folder)
        df["precision"] = precision_of(folder)
        df["order"] = f"{info['end']}|{folder}"
        frames.append(df)
    if not frames:
        return empty_rows(), runs
    rows = place_standins(pd.concat(frames, ignore_index=True))
    rows = rows[~rows["metric"].str.startswith("time_")]
    rows["seed"] = pd.to_numeric(rows["seed"], errors="coerce")
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    # two runs giving the same cell for the same seed (a rerun under other parameters): the newest counts
    rows = rows.sort_values("order", kind="stable")
    # two variants (or precisions) of one cell are two results, never one rerun
    cell = [*KEYS, "protocol", "variant", "precision", "seed"]
    dup = rows.duplicated(subset=cell, keep="last")
    # a row that several runs share by design (the aMINT passive model's loss row, one per setup) repeats its value
    same = rows.duplicated(subset=[*cell, "value"], keep="last")
    rows.attrs["duplicates"] = int((dup & ~same).sum())
    rows.attrs["repeats"] = int(same.sum())
    return rows[~dup].drop(columns="order").reset_index(drop=True), runs
