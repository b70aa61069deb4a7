"""Membership attacks beside aMINT and gMINT on the real MNIST test split, in one process, one markdown table.

* aMINT (mintkit.papers.amint): one split (D, E, a held-out slice of D), the active M+ and the passive
  model (smallcnn trained plainly on D, then the MINT head on its frozen maps), both scored under the
  paper and the held-out protocol.
* The attacks (mintkit.attacks): Salem, Yeom, Song & Mittal, Ye, Watson, LiRA and RMIA offline on k
  offline reference models, LiRA and RMIA online on k online ones, all on the **passive audited model**
  with the aMINT split, under both protocols' evaluated members.
* gMINT (mintkit.papers.gmint) on its own audited model and split (D and E halves, 20% of each
  evaluated): gMINT (Combined, MEAN, D100), activation MINT and the loss threshold on that model.

Every model is a smallcnn trained with Adam (lr 1e-3, batch 64) for ``--epochs`` epochs. The table gives AUC
and TPR at 1% / 0.1% FPR with 95% bootstrap intervals and the seconds each method adds to a run that has
the audited model already: a MINT head's training and scoring, the modifiers and the gMINT fit, an
attack's own fit and scores plus the reference models it reads (shared by every attack of that mode, so
their seconds are not additive). Active MINT's seconds are its whole joint training (it replaces the
audited training). Results rows and scores go to the run folders under ``--out``.

    PYTHONPATH=$PWD python scripts/attacks_vs_mint.py --data-root ../shared/data --out runs/attacks-vs-mint
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from mintkit.attacks import ATTACKS, metric_cells
from mintkit.methods.loss import loss_baseline
from mintkit.papers import amint, gmint
from mintkit.papers.gmint.evaluation import activation_features, fit_eval
from mintkit.papers.gmint.splits import mint_sets


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default="../shared/data", help="folder holding MNIST/raw/t10k-*")
    p.add_argument("--members", type=int, default=2000, help="aMINT |D|")
    p.add_argument("--external", type=int, default=2000, help="aMINT |E|")
    p.add_argument("--eval", type=int, default=800, help="aMINT evaluated members per protocol = non-members")
    p.add_argument("--gmint-members", type=int, default=2000, help="gMINT |D| (= |E|, 20%% of each evaluated)")
    p.add_argument("--epochs", type=int, default=12, help="epochs of every audited, reference and MINT training")
    p.add_argument("--k", type=int, default=4, help="reference models per mode (offline, online)")
    p.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples of the intervals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    p.add_argument("--cache-dir", default=".cache/mintkit/models", help="model cache (empty: none)")
    p.add_argument("--out", default="runs/attacks-vs-mint", help="folder of the two run folders")
    return p.parse_args()


def timed(f, *args, **kw):
    t0 = time.perf_counter()
    out = f(*args, **kw)
    return out, time.perf_counter() - t0


def run_amint(a: argparse.Namespace) -> tuple[list[dict], str]:
    P = amint.Params.from_values({
        "dataset": "mnist-test", "data_root": a.data_root, "n_members": a.members, "n_external": a.external,
        "n_eval": a.eval, "audited_epochs": a.epochs, "mint_epochs": a.epochs, "protocol": "both",
        "n_boot": a.n_boot, "attacks": ",".join(ATTACKS), "n_reference": a.k, "seed": a.seed, "device": a.device,
        "threads": a.threads, "cache_dir": a.cache_dir, "out_dir": f"{a.out}/amint"})
    ctx = amint.setup(P)
    split = amint.make_split(ctx, P)
    active, t_active = timed(amint.active_mint, ctx, split, P)
    passive = amint.passive_mint(ctx, split, P)
    results = amint.evaluate_all(ctx, split, {"Active": active, "Passive": passive}, P)
    mia, t_attacks = timed(amint.membership_attacks, ctx, split, passive, results, P)
    ctx.run.finish()
    aud = results[("heldout", "Passive")]["audited"]
    act_aud = results[("heldout", "Active")]["audited"]
    refs = {m: r for m, r in mia.refs.items() if r is not None}
    note = (f"aMINT: mnist-test 28x28, |D| = {a.members}, |E| = {a.external}, {P.n_val} validation members and "
            f"non-members, {a.eval} + {a.eval} evaluated per protocol; smallcnn, {a.epochs} epochs. Passive audited "
            f"model: train acc {aud['audited_train_accuracy']:.3f}, held-out {aud['audited_accuracy']:.3f} "
            f"(trained in {passive[1]['audited']['seconds']:.0f} s, cache hit {passive[1]['audited']['cache_hit']}). "
            f"M+: train acc {act_aud['audited_train_accuracy']:.3f}, held-out {act_aud['audited_accuracy']:.3f}, "
            f"kept epoch {active[1]['kept_epoch']} of {active[1]['epochs_run']}. Reference models: "
            + ", ".join(f"{m} k = {r.plan.k}, {r.plan.meta['train_size_mean']:.0f} samples each, {r.seconds:.0f} s"
                        for m, r in refs.items())
            + f"; attacks stage {t_attacks:.0f} s in all. Run folder {ctx.run.dir}.")
    rows = []
    for protocol in P.protocols:
        ev_p, ev_a = results[(protocol, "Passive")], results[(protocol, "Active")]
        rows.append({"protocol": protocol, "method": "Passive MINT", "metrics": ev_p["metrics"],
                     "adds": passive[1]["seconds"] + ev_p["seconds"]})
        rows.append({"protocol": protocol, "method": "Active MINT (M+, its own model)", "metrics": ev_a["metrics"],
                     "adds": t_active + ev_a["seconds"]})
        for name, r in mia.results[protocol].items():
            rows.append({"protocol": protocol, "method": r.label, "metrics": r.metrics, "adds": mia.adds(protocol, name)})
    return rows, note


def run_gmint(a: argparse.Namespace) -> tuple[list[dict], str]:
    P = gmint.Params.from_values({
        "dataset": "mnist-test", "data_root": a.data_root, "n_members": a.gmint_members, "audited_epochs": a.epochs,
        "setup": "combined", "reduction": "mean", "data_fraction": 1.0, "compare_rules": False, "n_reference": 0,
        "n_boot": a.n_boot, "seed": a.seed, "device": a.device, "threads": a.threads, "cache_dir": a.cache_dir,
        "out_dir": f"{a.out}/gmint"})
    ctx = gmint.setup(P)
    split = gmint.make_split(ctx, P)
    (model, info), t_model = timed(gmint.audited, ctx, split, P, progress=False)
    mods = gmint.modifiers(ctx, split, model, info, P, progress=False)
    ctx.run.time("modifiers", mods.seconds)
    _, cells = gmint.grid(ctx, split, mods, info, P)
    g = cells[("combined", "mean", 1.0)]
    get, t_feats = timed(activation_features, ctx, model, split)
    act = fit_eval(ctx.device, get, mint_sets(split, 1.0, P.seed), P)
    loss, t_loss = timed(loss_baseline, model, ctx.pool, split, ctx.device, n_boot=P.n_boot)
    ctx.run.finish()
    acc = info.accuracy
    note = (f"gMINT: its own smallcnn ({a.epochs} epochs) on mnist-test, |D| = |E| = {a.gmint_members}, "
            f"{split.sizes()['eval_members']} + {split.sizes()['eval_nonmembers']} evaluated; train acc "
            f"{acc['audited_train_accuracy']:.3f}, held-out {acc['audited_accuracy']:.3f} (trained in {t_model:.0f} s, "
            f"cache hit {info.cache_hit}). Run folder {ctx.run.dir}.")
    rows = [{"protocol": "gMINT split", "method": "gMINT (Combined, MEAN, D100)", "metrics": g["metrics"],
             "adds": mods.seconds + g["seconds"]},
            {"protocol": "gMINT split", "method": "activation MINT (entry/middle/output max)", "metrics": act["metrics"],
             "adds": t_feats + act["seconds"]},
            {"protocol": "gMINT split", "method": "Yeom et al. (loss threshold)", "metrics": loss, "adds": t_loss}]
    return rows, note


def markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    a = parse()
    t0 = time.perf_counter()
    rows, notes = [], []
    for f in (run_amint, run_gmint):
        r, n = f(a)
        rows += r
        notes.append(n)
        print(n, flush=True)
    table = pd.DataFrame([{"protocol": r["protocol"], "method": r["method"],
                           **{k: v for k, v in metric_cells(r["metrics"]).items()},
                           "adds (s)": f"{r['adds']:.0f}"} for r in rows])
    print()
    print(markdown(table))
    print(f"\nTPR at 0.1% FPR allows {int(np.floor(0.001 * a.eval))} false positive(s) with {a.eval} aMINT non-members. "
          f"Total {time.perf_counter() - t0:.0f} s.")


if __name__ == "__main__":
    main()
