"""fp32 (the old path) against the precision policy's fast path on CPU: a train step, an extraction pass and the
gMINT gradient pass, for MobileNet and ResNet50 at 28×28, at 1 and 2 threads, timed alternately in one process.

Prints images/s, the ratio fast / fp32, the achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode) and its
share of an estimated CPU peak (cores × clock × FLOP per cycle from the vector flags; an estimate, said so).
Targets on a CPU with native bf16: train step ≥ 1.3× (MobileNet) and ≥ 2.5× (ResNet50), extraction ≥ 2×
(ResNet50), no slower anywhere. The gradient pass stays fp32 by design (docs/precision.md): its row shows what
bf16 would give.
Each timed call of the fast path converts the model's layout in and out (a real run converts once per training
or extraction), so its ratios are lower bounds. The peak is an upper estimate (CPUs that split 512-bit FMAs into
two 256-bit halves reach half of it).

    python benchmarks/bench_precision.py [--archs mobilenet,resnet50] [--threads 1,2] [--batch 64] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved  # noqa: E402

from mintkit.core import precision as prec  # noqa: E402
from mintkit.core.records import cpu_name  # noqa: E402
from mintkit.models.zoo import build_model, gmint_layer  # noqa: E402

CPU = torch.device("cpu")


def peak_gflops(threads: int, bf16: bool) -> tuple[float, str]:
    """Estimated peak GFLOP/s of `threads` cores: clock × FLOP/cycle of the unit the pass can use. fp32: 2 FMA pipes
    × vector lanes × 2. bf16: AMX-BF16 tiles where the CPU has them (1,024 FLOP/cycle/core, oneDNN's bf16 matmul and
    convolution unit on such CPUs), else AVX512_BF16 dot products (2× the fp32 rate). The clock is /proc/cpuinfo's
    current MHz."""
    flags, mhz = prec.cpu_flags(), 0.0
    try:
        mhz = max(float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        pass
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    if bf16 and "amx_bf16" in flags:
        per_cycle, unit = 1024, "AMX-BF16"
    elif bf16 and prec.cpu_has_native_bf16():
        per_cycle, unit = 2 * lanes * 2 * 2, "AVX512_BF16"
    else:
        per_cycle, unit = 2 * lanes * 2, "AVX-512 FMA" if lanes == 16 else "AVX2 FMA" if lanes == 8 else "SSE"
    return threads * mhz / 1e3 * per_cycle, f"{mhz / 1e3:.2f} GHz × {per_cycle} FLOP/cycle/core, {unit}"


def onednn_isa() -> str:
    """The instruction set oneDNN dispatches to on this CPU, from its verbose line (``isa:...``) of one small
    convolution run in a child process (ONEDNN_VERBOSE is read once at start-up)."""
    code = ("import torch; c = torch.nn.Conv2d(8, 8, 3).to(memory_format=torch.channels_last); "
            "x = torch.zeros(2, 8, 16, 16).to(memory_format=torch.channels_last); c(x)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=os.environ | {"ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1"}, timeout=120)
    isa = [line.split("isa:", 1)[1].split(",")[0] for line in out.stdout.splitlines() if "isa:" in line]
    return isa[0].strip() if isa else "not reported (oneDNN printed no isa line)"


def flops(fn) -> float:
    """FLOPs of one call of a pass, counted on the pass itself: the gradient pass stops at its layer's weight, so
    a forward + full backward (3 × forward) would overstate its work and its share of the peak."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def paths(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: str):
    """{name: callable} of the three passes at a precision: a train step, an extraction, a per-sample gradient."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    w = dict(model.named_parameters())[f"{layer}.weight"]

    def make(precision: str):
        fmt = prec.memory_format(model, CPU, precision)

        def step():
            model.train()
            with prec.in_layout(model, CPU, precision):
                with prec.autocast(CPU, precision):
                    loss = loss_fn(model(prec.layout(x, fmt)).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        @torch.no_grad()
        def extract():
            model.eval()
            with prec.in_layout(model, CPU, precision), prec.autocast(CPU, precision):
                model(prec.layout(x, fmt))

        def gradient():  # the gMINT pass's cost: a backward to one layer's weight for a batch of samples
            model.eval()
            with prec.in_layout(model, CPU, precision), prec.autocast(CPU, precision):
                loss = loss_fn(model(prec.layout(x, fmt)).float(), y)
            torch.autograd.grad(loss, [w])

        return {"train step": step, "extraction": extract, "gradient pass": gradient}

    return make


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="mobilenet,resnet50")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    # the fast path is bf16 where the CPU has it natively (an explicit choice: `auto` is fp32 on every CPU)
    fast = "bf16" if prec.cpu_has_native_bf16() else "fp32"
    print(f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}; oneDNN ISA: {onednn_isa()}")
    print(f"{cpu_name()}; torch {torch.__version__}; native bf16: {prec.cpu_has_native_bf16()}; "
          f"the policy picks {fast}{' + channels-last' if fast == 'bf16' else ''} on this CPU")
    if fast == "fp32":
        print("no native bf16 here: the fast path is the fp32 path, every ratio is 1 by construction")
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.uniform(-1, 1, (a.batch, 1, 28, 28)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 10, a.batch))
    for arch in a.archs.split(","):
        torch.manual_seed(0)
        model = build_model(arch, 10, 1, 28)
        layer = next(n for n, m in model.named_modules() if m is gmint_layer(model, "output"))
        make = paths(model, x, y, layer)
        work = {name: flops(fn) for name, fn in make("fp32").items()}
        for threads in map(int, a.threads.split(",")):
            torch.set_num_threads(threads)
            old, new = make("fp32"), make(fast)
            for name in old:
                fns = {"fp32": old[name], fast: new[name]} if fast != "fp32" else {"fp32": old[name]}
                old[name]()
                new[name]()  # warm-up: oneDNN picks its kernels on the first call
                t = interleaved(fns, repeats=a.repeats)
                t_fast = t.get(fast, t["fp32"])
                peak, how = peak_gflops(threads, fast == "bf16")
                g = work[name] / t_fast / 1e9
                print(f"{arch:10s} {threads} thr  {name:13s}  fp32 {a.batch / t['fp32']:8.1f} img/s  "
                      f"{fast} {a.batch / t_fast:8.1f} img/s  ratio {t['fp32'] / t_fast:5.2f}x  "
                      f"{g:6.1f} GFLOP/s = {100 * g / peak:4.1f}% of ~{peak:.0f} ({how})")
    print("gradient pass: mintkit keeps it fp32 (docs/precision.md); its ratio is what bf16 would give, unused")


if __name__ == "__main__":
    main()
