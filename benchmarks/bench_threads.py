"""How a batch should use the cores: J runs at once × T torch threads each, timed as real concurrent processes.

Each configuration starts J worker processes (spawned, each with T intra-op threads), lets them warm up, lines them
up at a barrier and times the same number of Adam train steps in every one (MobileNet and smallcnn at 28×28, batch
64: what a run of the mnist profile spends its time on). Printed per configuration: the aggregate images/s of all
workers, the ratio to one run on one thread, and what one run's step rate is. A batch of many runs finishes
soonest with the configuration of highest aggregate rate; a single run with the highest per-run rate. This is
what the runner's `--jobs auto` and the notebooks' `threads` default are set from (docs/precision.md, "Threads").

    python benchmarks/bench_threads.py [--archs mobilenet,smallcnn] [--steps 20] [--batch 64]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mintkit.core.records import cpu_name  # noqa: E402
from mintkit.models.zoo import build_model  # noqa: E402


def worker(arch: str, threads: int, steps: int, batch: int, barrier, out) -> None:
    """One run's stand-in: T threads, `steps` timed Adam steps after a warm-up; puts its images/s on `out`."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(arch, 10, 1, 28).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # oneDNN picks its kernels on the first calls
        step()
    barrier.wait()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    out.put(steps * batch / (time.perf_counter() - t))


def measure(arch: str, jobs: int, threads: int, steps: int, batch: int) -> list[float]:
    """Images/s of each of `jobs` concurrent workers of `threads` threads."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(jobs), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(arch, threads, steps, batch, barrier, out)) for _ in range(jobs)]
    for p in procs:
        p.start()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return rates


def configurations(cores: int) -> list[tuple[int, int]]:
    """(jobs, threads): one run on one thread, one run on every core, one run per core, and halves between."""
    out = {(1, 1), (1, cores), (cores, 1)}
    if cores >= 4:
        out.add((cores // 2, 2))
    return sorted(out, key=lambda c: (c[0] * c[1], c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="mobilenet,smallcnn")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"{cpu_name()}; {cores} cores usable; torch {torch.__version__}; batch {a.batch}, {a.steps} timed steps")
    for arch in a.archs.split(","):
        base = None
        for jobs, threads in configurations(cores):
            rates = measure(arch, jobs, threads, a.steps, a.batch)
            total = sum(rates)
            base = base or total
            print(f"{arch:10s} {jobs} job(s) × {threads} thread(s): {total:8.1f} img/s in all "
                  f"({total / base:4.2f}× one run on one thread); one run {min(rates):7.1f} img/s")


if __name__ == "__main__":
    main()
