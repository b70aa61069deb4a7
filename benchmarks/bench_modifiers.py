"""gMINT Weight Modifiers: batched torch.func path vs the per-sample loop, in one process.

For the same samples and layers, the loop does forward / backward / optimizer.step() / weight
difference / restore one sample at a time (the paper's literal Eq. 6); the batched path is
mintkit.modifiers.weight_modifiers (functional_call + vmap(grad), chunked, reduced per filter
inside the chunk). Printed per batch size: max |difference|, seconds of each, the speed ratio,
and the peak memory of the batched path (CUDA: torch.cuda.max_memory_allocated; CPU: growth of
the max RSS of a fresh child process, since ru_maxrss only ever grows) beside what full
per-sample gradients of the layers would take.

    .venv/bin/python benchmarks/bench_modifiers.py                    # smallcnn on digits, CPU
    .venv/bin/python benchmarks/bench_modifiers.py --device cuda --arch resnet50 --image-size 32
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time

import numpy as np
import torch


def setup(args):
    from mintkit.data import load_pool, synthetic_pool
    from mintkit.models import GMINT_LAYERS, build_model
    torch.manual_seed(0)
    if args.dataset == "digits":
        pool = load_pool("digits", image_size=args.image_size)
    else:
        pool = synthetic_pool(n=max(args.batch_sizes) + 8, num_classes=10, channels=args.channels,
                              size=args.image_size or 32)
    model = build_model(args.arch, pool.num_classes, pool.in_channels, pool.image_size).eval()
    layers = [GMINT_LAYERS[args.arch][s] for s in args.setups]
    return pool, model, layers


def batched(args, pool, model, layers, n, device):
    from mintkit.modifiers import weight_modifiers
    return weight_modifiers(model, pool, np.arange(n), layers, device, rules=(args.rule,), reductions=("mean",),
                            batch_size=n, chunk_size=args.chunk_size)


def _child_peak(args, n, q):
    """Peak RSS growth (MiB) of the batched path in a fresh process."""
    torch.set_num_threads(args.threads)
    pool, model, layers = setup(args)
    batched(args, pool, model, layers, 2, torch.device("cpu"))  # warm-up: imports, allocator
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    batched(args, pool, model, layers, n, torch.device("cpu"))
    q.put((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)


def peak_memory_mib(args, n, device, pool, model, layers) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        batched(args, pool, model, layers, n, device)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child_peak, args=(args, n, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", default="smallcnn")
    ap.add_argument("--dataset", default="digits", choices=["digits", "synthetic"])
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--setups", nargs="+", default=["entry", "middle", "output"])
    ap.add_argument("--rule", default="adam")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 256])
    ap.add_argument("--chunk-size", type=int, default=32)
    ap.add_argument("--loop-samples", type=int, default=64, help="samples timed in the loop (per-sample rate)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from mintkit.modifiers import weight_modifiers_loop
    from mintkit.train import pick_device
    device = pick_device(args.device)
    pool, model, layers = setup(args)
    model.to(device)
    weights = sum(model.get_submodule(l).weight.numel() for l in layers)
    print(f"{args.arch} on {args.dataset} {pool.image_size}x{pool.image_size}, layers {layers} "
          f"({weights:,} weights), rule {args.rule}, device {device}, chunk {args.chunk_size}, "
          f"threads {torch.get_num_threads()}")
    batched(args, pool, model, layers, 8, device)  # warm-up
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for n in args.batch_sizes:
        m = min(n, args.loop_samples)
        sync()
        t0 = time.perf_counter()
        loop = weight_modifiers_loop(model, pool, np.arange(m), layers, device, rule=args.rule)
        sync()
        t_loop = (time.perf_counter() - t0) * n / m  # the loop's cost is linear in n
        t0 = time.perf_counter()
        fast = batched(args, pool, model, layers, n, device)
        sync()
        t_fast = time.perf_counter() - t0
        diff = max(float((loop.features[k] - fast.features[k][:m]).abs().max()) for k in loop.features)
        scale = max(float(fast.features[k].abs().max()) for k in fast.features)
        mem = float("nan") if args.no_memory else peak_memory_mib(args, n, device, pool, model, layers)
        full = n * weights * 4 / 2 ** 20
        rows.append(dict(batch=n, loop_s=t_loop, batched_s=t_fast, ratio=t_loop / t_fast, max_abs_diff=diff,
                         max_abs_value=scale, peak_mib=mem, full_per_sample_grads_mib=full))
        print(f"batch {n:4d}: loop {t_loop:7.3f} s ({m} timed)  batched {t_fast:7.3f} s  ratio {t_loop / t_fast:6.1f}x"
              f"  max|diff| {diff:.2e} (values up to {scale:.1e})  peak {mem:7.1f} MiB"
              f"  (full per-sample grads would be {full:,.0f} MiB)")
    print(json.dumps(rows))
    return {"rows": rows}


if __name__ == "__main__":
    main()
