"""Why does aMINT's Output head not train? Epoch-by-epoch state of the MINT head under variants of the recipe.

The MNIST MobileNet runs of `figures/amint/` show the active MINT head on the Output taps (conv4.0 / conv4.1,
1024 x 4 x 4 at 28 px) at chance on its *own* training members (0.505 over 3 seeds; seed 0 one constant score),
while Entry reaches 0.84 (docs/amint.md, "Why the Output head does not train"). This script trains M+ with the
kit's `train_mplus` (the same code as the notebook) for a few epochs per variant and, after every epoch, reads
the head on fixed probe sets drawn from what it trained on (MINT-trained members vs training E):

    fit_bal_acc   balanced accuracy of logit > 0 (the fit guard's statistic, mintkit.core.fit)
    fit_auc       AUC of the logit on the same samples
    logit_sd      spread of the logit (0: one constant score)
    dead_branch   share of branch conv channels that are <= 0 at every position of every probe sample
    dead_fc       share of the hidden units of the head's first linear layer that are <= 0 for every sample
    tap_spread    mean over features of the across-sample sd of the tap maps, over their mean |value|:
                  how much the head's input tells samples apart
    tap_abs       mean |value| of the tap maps (the head's input scale in eval mode)

    python scripts/amint_head_diagnosis.py --data-root <root> --out figures/amint/diagnosis

Variants (name=overrides of aMINT's Params) default to the kit's recipe and one change each.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib import pyplot as plt
from sklearn.metrics import roc_auc_score

import mintkit.papers.amint as paper
from mintkit.core.plots import save_figure, use_style
from mintkit.core.records import cpu_name
from mintkit.models.audited import build_audited
from mintkit.methods.mplus import MintPlus

VARIANTS = {  # key: (label, overrides of the base recipe)
    "kit": ("output (kit: lr 1e-3, max pool, λ2/λ1 10)", {}),
    "lr1e-4": ("output, lr 1e-4 (preset)", {"lr": 1e-4}),
    "meanpool": ("output, mean pool", {"mint_pool": "mean"}),
    "lambda1": ("output, λ2/λ1 = 1", {"lambda_ratio": 1.0}),
    "headlr": ("output, lr 1e-3, head lr 1e-4", {"mint_lr": 1e-4}),
    "entry": ("entry (kit)", {"setup": "entry"}),
}
METRICS = ("fit_bal_acc", "fit_auc", "logit_sd", "dead_branch", "dead_fc", "tap_spread", "tap_abs")


@torch.no_grad()
def head_state(model: MintPlus, x_mem: torch.Tensor, x_non: torch.Tensor) -> dict[str, float]:
    """The head's state on probe members [n, C, H, W] and probe non-members [m, C, H, W] (eval mode)."""
    model.eval()
    x = torch.cat([x_mem, x_non])
    maps = model._run(x, stop=True)[1]
    branch_out = [b.net(a.float()) for b, a in zip(model.mint.branches, maps)]            # [B, C', H, W] each
    dead_branch = np.mean([float((o.amax(dim=(0, 2, 3)) <= 0).float().mean()) for o in branch_out])
    fused = torch.cat([b(a.float()) for b, a in zip(model.mint.branches, maps)], dim=1)   # [B, F]
    hidden = model.mint.fc[1](model.mint.fc[0](fused))                                   # [B, hidden]
    logit = model.mint.fc(fused).squeeze(1).numpy()
    y = np.r_[np.ones(len(x_mem)), np.zeros(len(x_non))]
    pred = logit > 0
    spread = np.mean([float(a.flatten(1).std(0).mean() / a.abs().mean().clamp_min(1e-12)) for a in maps])
    return {"fit_bal_acc": 0.5 * (pred[y == 1].mean() + (~pred[y == 0]).mean()),
            "fit_auc": roc_auc_score(y, logit) if np.ptp(logit) > 0 else 0.5,
            "logit_sd": float(logit.std()), "dead_branch": float(dead_branch),
            "dead_fc": float((hidden.amax(0) <= 0).float().mean()), "tap_spread": spread,
            "tap_abs": float(np.mean([float(a.abs().mean()) for a in maps]))}


def run_variant(name: str, overrides: dict, base: dict, n_probe: int) -> pd.DataFrame:
    P = paper.Params.from_values(base | overrides)
    ctx = paper.setup(P)
    split = paper.make_split(ctx, P)
    sets = paper.training_sets(split)
    rng = np.random.default_rng(P.seed)
    x_mem = ctx.pool.batch(torch.as_tensor(rng.choice(sets["mint_members"], n_probe, replace=False)))[0]
    x_non = ctx.pool.batch(torch.as_tensor(rng.choice(sets["external"], n_probe, replace=False)))[0]
    audited = build_audited(ctx.pool, P.arch, P.seed).to(ctx.device)
    model = paper.build_mplus(audited, P.setup, ctx.pool.image_size, ctx.pool.in_channels, **P.head_kw)
    start = head_state(model, x_mem, x_non)
    t0 = time.perf_counter()
    hist = paper.train_mplus(model, ctx.pool, sets, ctx.device, mode="active", progress=False,
                             probe=lambda m: head_state(m, x_mem, x_non),
                             **paper.mplus_training(P, P.audited_epochs))
    rows = [{"epoch": 0, **start}] + [
        {"epoch": e + 1, "mint_loss": hist["mint_loss"][e], "task_loss": hist["task_loss"][e],
         "val_task_acc": hist["val_task_acc"][e], **{k: hist[k][e] for k in METRICS}}
        for e in range(hist["epochs_run"])]
    df = pd.DataFrame(rows).assign(variant=name, seconds=time.perf_counter() - t0)
    print(df.tail(1).to_string(index=False), flush=True)
    return df


def plot(df: pd.DataFrame, out: Path, note: str) -> None:
    use_style()
    panels = [("mint_loss", "MINT BCE (training)"), ("fit_bal_acc", "head on its own training data\n(balanced acc.)"),
              ("logit_sd", "logit sd (0 = constant score)"), ("dead_branch", "dead branch channels (share)"),
              ("dead_fc", "dead hidden units (share)"), ("val_task_acc", "task accuracy (validation E)")]
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.4), constrained_layout=True)
    for ax, (col, title) in zip(axes.flat, panels):
        for name, g in df.groupby("variant", sort=False):
            ax.plot(g["epoch"], g[col], marker=".", label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(note, fontsize=7)
    save_figure(fig, out, "output_head_diagnosis")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--out", default="figures/amint/diagnosis")
    ap.add_argument("--scratch", default="runs/amint-diagnosis", help="run folders of the variants (not reported)")
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probe", type=int, default=256, help="probe members and as many probe non-members")
    ap.add_argument("--variants", default="", help=f"comma-separated keys of {', '.join(VARIANTS)} (default: all)")
    a = ap.parse_args()
    base = dict(dataset="mnist", data_root=a.data_root, arch="mobilenet", setup="output", n_members=a.members,
                n_external=a.members, n_eval=min(100, a.members // 4), audited_epochs=a.epochs, patience=0, lr=1e-3, mint_width=256,
                mint_convs=1, mint_dropout=0.4, weight_decay=1e-4, precision="fp32", threads=1, seed=a.seed,
                n_reference=0, out_dir=a.scratch, fit_check=False)
    chosen = a.variants.split(",") if a.variants else list(VARIANTS)
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for v in chosen:  # the csv after every variant: an interrupted diagnosis keeps the variants that ran
        frames.append(run_variant(*VARIANTS[v], base, a.probe))
        df = pd.concat(frames, ignore_index=True)
        df.to_csv(out / "output_head_diagnosis.csv", index=False)
    # locations (data root, output, scratch) are this machine's: the command keeps the settings only
    meta = {"command": "python scripts/amint_head_diagnosis.py --data-root <data_root> " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()
                if k not in ("data_root", "out", "scratch") and v != ""),
            "data": f"real MNIST, D {a.members} / E {a.members}, seed {a.seed}, fp32, 1 thread",
            "machine": torch.cuda.get_device_name() if torch.cuda.is_available() else
                       f"{cpu_name()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, no GPU",
            "base": {k: v for k, v in base.items() if k not in ("data_root", "out_dir")}}
    (out / "output_head_diagnosis.json").write_text(json.dumps(meta, indent=1) + "\n")
    plot(df, out, f"aMINT M+ MobileNet, {meta['data']}, active training (train_mplus), probe {a.probe}+{a.probe} "
                  "training samples")


if __name__ == "__main__":
    main()
