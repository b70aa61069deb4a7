"""gMINT Weight Modifiers: the batched paths (hooks, vmap) vs the per-sample loop, in one process.

For the same samples and layers, the loops do forward / backward / optimizer.step() / weight
difference / restore one sample at a time: "literal" is Eq. 6 as written (an optimiser over all
parameters, the state dict saved and restored), "lean" steps only the chosen layers. The batched paths are
mintkit.methods.modifiers.weight_modifiers with engine "hooks" (the default: one batched forward, one
autograd.grad to the layers' outputs, per-sample products) and engine "vmap" (functional_call + vmap(grad)),
both chunked and reduced per filter inside the chunk; the speed ratios are the default (hooks) engine's. Printed per batch size: max |difference|, seconds of each (min over interleaved
repeats; loops timed on --loop-samples samples and scaled linearly), the speed ratios,
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

from mintkit.core.data import load_pool, synthetic_pool
from mintkit.core.train import pick_device
from mintkit.models.zoo import GMINT_LAYERS, build_model
from mintkit.methods.modifiers import weight_modifiers, weight_modifiers_loop


def setup(args):
    torch.manual_seed(0)
    if args.dataset == "digits":
        pool = load_pool("digits", image_size=args.image_size)
    else:
        pool = synthetic_pool(n=max(args.batch_sizes) + 8, num_classes=10, channels=args.channels,
                              size=args.image_size or 32)
    model = build_model(args.arch, pool.num_classes, pool.in_channels, pool.image_size).eval()
    layers = [GMINT_LAYERS[args.arch][s] for s in args.setups]
    return pool, model, layers


def batched(args, pool, model, layers, n, device, engine="hooks"):
    return weight_modifiers(model, pool, np.arange(n), layers, device, rules=(args.rule,), reductions=("mean",),
                            batch_size=n, chunk_size=args.chunk_size or None, engine=engine)


def _peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


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
    if _peak_rss_reset():  # Linux: peak RSS growth over the resting RSS, measured in this process
        base = _rss_kib("VmRSS")
        batched(args, pool, model, layers, n, device)
        return (_rss_kib("VmHWM") - base) / 1024
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
    ap.add_argument("--chunk-size", type=int, default=0, help="0: the kit's choice per engine and device")
    ap.add_argument("--loop-samples", type=int, default=64, help="samples timed in the loop (per-sample rate)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu = process CPU time (CPU device only): steadier on a shared machine")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--allow-tf32", action="store_true",
                    help="CUDA: keep TF32 convs/matmuls (then the loop's cuDNN convs and the batched matmuls round "
                         "differently and fresh-Adam modifiers, ~sign(g), differ where |g| ~ eps)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    device = pick_device(args.device)
    pool, model, layers = setup(args)
    model.to(device)
    weights = sum(model.get_submodule(l).weight.numel() for l in layers)
    print(f"{args.arch} on {args.dataset} {pool.image_size}x{pool.image_size}, layers {layers} "
          f"({weights:,} weights), rule {args.rule}, device {device}, chunk {args.chunk_size}, "
          f"threads {torch.get_num_threads()}, clock {args.clock}")
    batched(args, pool, model, layers, 8, device)  # warm-up
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    clock = time.process_time if (args.clock == "cpu" and device.type == "cpu") else time.perf_counter

    def timed(f):
        sync()
        t0 = clock()
        out = f()
        sync()
        return clock() - t0, out

    rows = []
    for n in args.batch_sizes:
        m = min(n, args.loop_samples)
        t = {"lean": [], "literal": [], "batched": [], "vmap": []}
        for _ in range(args.repeats):  # interleaved, min over repeats: robust to a busy, shared machine
            dt, loop = timed(lambda: weight_modifiers_loop(model, pool, np.arange(m), layers, device, rule=args.rule))
            t["lean"].append(dt * n / m)  # a loop's cost is linear in n
            dt, _ = timed(lambda: weight_modifiers_loop(model, pool, np.arange(m), layers, device, rule=args.rule,
                                                        literal=True))
            t["literal"].append(dt * n / m)
            dt, fast = timed(lambda: batched(args, pool, model, layers, n, device))
            t["batched"].append(dt)
            dt, vm = timed(lambda: batched(args, pool, model, layers, n, device, engine="vmap"))
            t["vmap"].append(dt)
        best = {k: min(v) for k, v in t.items()}
        diff = max(float((loop.features[k] - f.features[k][:m]).abs().max()) for k in loop.features for f in (fast, vm))
        scale = max(float(fast.features[k].abs().max()) for k in fast.features)
        mem = float("nan") if args.no_memory else peak_memory_mib(args, n, device, pool, model, layers)
        full = n * weights * 4 / 2 ** 20
        rows.append(dict(batch=n, loop_samples_timed=m, literal_loop_s=best["literal"], lean_loop_s=best["lean"],
                         batched_s=best["batched"], vmap_s=best["vmap"], engine=fast.meta["engine"],
                         ratio_vs_literal=best["literal"] / best["batched"], ratio_vs_vmap=best["vmap"] / best["batched"],
                         ratio_vs_lean=best["lean"] / best["batched"], max_abs_diff=diff, max_abs_value=scale,
                         peak_mib=mem, full_per_sample_grads_mib=full))
        print(f"batch {n:4d}: literal loop {best['literal']:7.3f} s, lean loop {best['lean']:7.3f} s "
              f"({m} timed), vmap {best['vmap']:7.3f} s, batched ({fast.meta['engine']}) {best['batched']:7.3f} s -> "
              f"{best['literal'] / best['batched']:5.1f}x vs literal, {best['lean'] / best['batched']:5.1f}x vs lean, "
              f"{best['vmap'] / best['batched']:4.1f}x vs vmap; max|diff| {diff:.1e} (values up to {scale:.1e}); "
              f"peak {mem:6.1f} MiB (full per-sample grads: {full:,.0f} MiB)")
    print(json.dumps(rows))
    return {"rows": rows}


if __name__ == "__main__":
    main()
