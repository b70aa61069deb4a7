"""One table of membership inference attacks on one audited model of the real MNIST test split.

Trains (or loads from the model cache) one audited model and k offline reference models with the same
recipe, runs the seven attacks of aMINT's Table 3 family plus LiRA and RMIA (offline), and prints AUC and
TPR at 1% / 0.1% FPR with 95% bootstrap intervals and the time each attack adds. ``--online`` adds k
online reference models (each evaluated sample IN for half of them) and the online LiRA / RMIA.

    PYTHONPATH=$PWD python scripts/attacks_table.py --data-root ../shared/data --out runs/attacks-table

See docs/attacks.md for each attack and its choices.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from mintkit.attacks import ONLINE_ATTACKS, SPLIT, add_attack_rows, audit_attacks, results_table
from mintkit.core.data import load_pool
from mintkit.core.records import Run
from mintkit.core.splits import build_split
from mintkit.core.train import TrainConfig, pick_device, seed_everything
from mintkit.models.audited import AuditedRecipe, audited_accuracy, train_audited
from mintkit.models.zoo import ARCHS


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="../shared/data", help="folder holding MNIST/raw/t10k-*")
    p.add_argument("--arch", default="smallcnn", choices=ARCHS, help="audited (and reference) architecture")
    p.add_argument("--members", type=int, default=2000, help="|D|, the audited model's training set")
    p.add_argument("--external", type=int, default=2000, help="|E|, known non-members (calibration, population)")
    p.add_argument("--eval", type=int, default=1000, help="evaluated members = evaluated non-members")
    p.add_argument("--epochs", type=int, default=15, help="training epochs of every model (Adam, lr 1e-3)")
    p.add_argument("--k", type=int, default=8, help="reference models per mode (even)")
    p.add_argument("--online", action="store_true", help="also k online reference models and online LiRA/RMIA")
    p.add_argument("--queries", default="identity", help="comma-separated: identity[,hflip] (LiRA and RMIA)")
    p.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples of the intervals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--cache-dir", default=".cache/mintkit/models", help="model cache ('' = none)")
    p.add_argument("--out", default="", help="run folder for results rows and scores ('' = print only)")
    return p.parse_args()


def main() -> None:
    a = parse()
    seed_everything(a.seed)
    device = pick_device(a.device)
    if device.type == "cpu" and a.threads > 0:
        torch.set_num_threads(a.threads)
    cache = a.cache_dir or None
    pool = load_pool("mnist-test", a.data_root).to(device)
    split = build_split(pool, n_members=a.members, n_external=a.external, n_eval=a.eval, seed=a.seed)
    cfg = TrainConfig(epochs=a.epochs, batch_size=64, lr=1e-3)
    t0 = time.perf_counter()
    recipe = AuditedRecipe(a.arch, cfg)
    model, info = train_audited(pool, split, recipe, device, a.seed, cache_dir=cache, progress=False)
    t_model = time.perf_counter() - t0
    acc = audited_accuracy(model, pool, split, device)
    print(f"pool mnist-test ({len(pool)} images, {pool.image_size}x{pool.image_size}); split sizes {split.sizes()}")
    print(f"audited {a.arch}: {a.epochs} epochs Adam lr 1e-3 batch 64 on {a.members} members, "
          f"train acc {acc['audited_train_accuracy']:.3f}, held-out acc {acc['audited_accuracy']:.3f} "
          f"({t_model:.0f} s, cache hit {info.cache_hit}); device {device}")
    queries = tuple(q.strip() for q in a.queries.split(","))
    run = Run(a.out, "attacks", vars(a), seed=a.seed, device=device) if a.out else None
    for mode in ("offline", "online") if a.online else ("offline",):
        attacks = ONLINE_ATTACKS if mode == "online" else None
        audit = audit_attacks(model, pool, split, device, recipe, attacks, k=a.k, mode=mode, seed=a.seed,
                              cache_dir=cache, queries=queries, n_boot=a.n_boot)
        results, data, refs = audit.only, audit.data[(SPLIT, mode)], audit.refs[mode]
        hits = sum(i.cache_hit for i in refs.infos)
        print(f"\n{mode} reference models: k={a.k}, {refs.plan.meta['train_size_mean']:.0f} training samples each "
              f"on average, trained in {refs.seconds:.0f} s ({hits} cache hits); signals: audited "
              f"{data.seconds['target_signals']:.1f} s, references {data.seconds['reference_signals']:.1f} s; "
              f"calibration {len(refs.plan.calibration['members'])}+{len(refs.plan.calibration['nonmembers'])}, "
              f"population sample {len(refs.plan.population_sample)}; queries {', '.join(queries)}")
        table = results_table(results)
        table["adds (s)"] = [round(audit.adds(SPLIT, n), 1) for n in results]
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.to_string(index=False))
        if run is not None:
            add_attack_rows(run, results, acc, dataset="mnist-test", model=a.arch)
    if run is not None:
        run.save_split(split)
        run.finish()
        print(f"\nrows: {a.out}/results.csv")


if __name__ == "__main__":
    main()
