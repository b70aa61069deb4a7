"""fp32 against bf16 on the real MNIST: the same gMINT run (its Table 3 holds gMINT, activation MINT and the loss
attack on one audited model) at each precision and seed; prints a markdown table of means ± sd and the
bf16 − fp32 differences next to the seed spread (docs/precision.md).

    python scripts/precision_numerics.py --data-root ../shared/data --out runs/precision --seeds 3

Each run is an ordinary ``python -m mintkit run gmint`` (exec engine) whose folder says how it was made; a run
already complete is reused. Only the audited model's training and extraction follow ``precision``: the weight
modifiers' gradient pass and the MINT heads stay fp32 (mintkit.core.precision).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from mintkit.batch.report import to_markdown

ROOT = Path(__file__).resolve().parents[1]
RECIPE = {"dataset": "mnist", "arch": "smallcnn", "n_members": 1000, "audited_epochs": 10, "lr": 0.001,
          "compare_rules": "false", "reduction": "mean", "data_fraction": 1, "mint_epochs": 30, "n_reference": 0,
          "threads": 1}
ROWS = {"gMINT;MEAN;D100": "gMINT (Combined, MEAN, D100)", "MINT": "activation MINT", "LOSS (Yeom et al.)": "loss"}


def run(precision: str, seed: int, out: Path, data_root: str) -> Path:
    folder = out / f"{precision}-seed{seed}"
    if not (folder / "status.json").exists() or '"complete"' not in (folder / "status.json").read_text():
        cmd = [sys.executable, "-m", "mintkit", "run", "gmint", "--engine", "exec", "--no-progress", "--out",
               str(folder), "-p", "data_root", data_root, "-p", "precision", precision, "-p", "seed", str(seed)]
        for k, v in RECIPE.items():
            cmd += ["-p", k, str(v)]
        subprocess.run(cmd, check=True, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)})
    return folder


def table(folders: dict[tuple[str, int], Path]) -> str:
    rows = []
    for (precision, seed), f in folders.items():
        df = pd.read_csv(f / "results.csv")
        df = df[df["table"] == "Table 3"]
        for cond, name in ROWS.items():
            d = df[df["condition"] == cond].set_index("metric")["value"]
            rows.append({"precision": precision, "seed": seed, "method": name, "auc": d["auc"],
                         "audited test accuracy": d["audited_accuracy"], "audited train accuracy":
                         d["audited_train_accuracy"], "n": f"{int(d['n_eval_members'])} + {int(d['n_eval_nonmembers'])}"})
    df = pd.DataFrame(rows)
    out = []
    for method, g in df.groupby("method", sort=False):
        for metric in ("auc",) if out else ("audited test accuracy", "auc"):  # one audited model for all three
            by = g.groupby("precision")[metric]
            m, s = by.mean(), by.std()
            out.append({"method": "audited model" if metric != "auc" else method, "metric": metric, "fp32": f"{m['fp32']:.3f} ± {s['fp32']:.3f}",
                        "bf16": f"{m['bf16']:.3f} ± {s['bf16']:.3f}", "bf16 − fp32": f"{m['bf16'] - m['fp32']:+.3f}",
                        "seed sd (pooled)": f"{((s['fp32'] ** 2 + s['bf16'] ** 2) / 2) ** 0.5:.3f}",
                        "n evaluated": g["n"].iloc[0]})
    return to_markdown(pd.DataFrame(out).set_index(["method", "metric"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--out", type=Path, default=Path("runs/precision"))
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    folders = {(p, s): run(p, s, a.out.resolve(), a.data_root) for s in range(a.seeds) for p in ("fp32", "bf16")}
    print(f"smallcnn on real MNIST, {RECIPE}\n")
    print(table(folders))


if __name__ == "__main__":
    main()
