#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU: does torch see CUDA, does mintkit pick it for `device: auto`, how
# fast are the hot paths, and does one reduced paper cell per paper run on the card?
#
#     make setup && make gpu-check                        # the venv's python (make setup: README, Install)
#     PYTHON=/path/to/python bash scripts/gpu_check.sh    # any python with mintkit's dependencies
#
# If the first part says "CUDA is not available to torch", torch was built for a newer CUDA than the driver
# supports (nvidia-smi prints the driver's CUDA version) or it is a CPU-only build: reinstall torch from the
# matching index (README, Install: `make setup TORCH_INDEX=https://download.pytorch.org/whl/cu126`).
# Data: the MNIST test split, t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] under
# <data>/MNIST/raw, where <data> is $GPU_CHECK_DATA or the kit's data folder `data/` (the first MNIST run of the
# kit downloads it there, or `python -c "import torchvision; torchvision.datasets.MNIST('data', download=True)"`);
# without it the timings use scikit-learn's digits. Jupyter is not needed (the cells run in a plain python). About
# 5 minutes on one H100. The gpu-marked tests (tests/test_gpu.py) run first, where pytest is installed. Every part
# is guarded: a failing part prints its error and the script goes on; the exit status says whether all passed.
# Environment: OUT (also write $OUT/gpu_check.log; work files under $OUT), GPU_CHECK_DATA, GPU_CHECK_PART_TIMEOUT
# (seconds per part, default 120), GPU_CHECK_DEVICE=cpu (a tiny dry run of the script itself on a CPU machine:
# smallcnn only, small cells, no CUDA asserts).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
PY=${PYTHON:-}
[ -z "$PY" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python  # the venv `make setup` made, else the PATH's
PY=${PY:-python3}
WORK=${OUT:-$(mktemp -d)}
mkdir -p "$WORK"
if [ -n "${OUT:-}" ]; then exec > >(tee "$OUT/gpu_check.log") 2>&1; fi
DATA=${GPU_CHECK_DATA:-}
for d in data .gpu/data; do  # the kit's data_root, then a copy carried beside the checkout
  [ -z "$DATA" ] && [ -f "$d/MNIST/raw/t10k-images-idx3-ubyte.gz" ] && DATA=$d
done
export GPU_CHECK_DATA=${DATA:-.gpu/data} GPU_CHECK_WORK=$WORK GPU_CHECK_DEVICE=${GPU_CHECK_DEVICE:-cuda}
LIMIT=${GPU_CHECK_PART_TIMEOUT:-120}
FAILED=()

part() {  # part NAME COMMAND...: run guarded with a time limit, report and go on
  local name=$1; shift
  echo; echo "=== $name ==="
  local t0=$SECONDS
  timeout --kill-after=10 "$LIMIT" "$@"
  local rc=$?
  if [ $rc -ne 0 ]; then
    FAILED+=("$name (rc=$rc$([ $rc -eq 124 ] && echo ", timed out after ${LIMIT}s"))")
    echo "--- $name FAILED (rc=$rc) after $((SECONDS - t0)) s"
  else
    echo "--- $name ok in $((SECONDS - t0)) s"
  fi
}

echo "gpu_check $(date -u +%FT%TZ)  data=$GPU_CHECK_DATA  work=$WORK"
[ "$GPU_CHECK_DEVICE" = cuda ] && part "device" bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
'"$PY"' - <<"EOF"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
assert torch.cuda.is_available(), "CUDA is not available to torch"
from mintkit.core.train import pick_device
dev = pick_device("auto")
assert dev.type == "cuda", f"pick_device('auto') chose {dev}"
x = torch.randn(1024, 1024, device=dev)
assert (x @ x).is_cuda
print("device", dev, torch.cuda.get_device_name(dev), "bf16", torch.cuda.is_bf16_supported())
EOF'

# ---------------------------------------------------------------- the gpu-marked tests (tests/test_gpu.py)
# bf16 extraction against fp32, the batched weight modifiers against the literal loop, a training step per trainer;
# they skip without CUDA, so the CPU dry run only checks that they are collected (tests/conftest.py)
if "$PY" -c "import pytest" 2>/dev/null; then
  part "gpu tests" "$PY" -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_gpu.py
else
  echo; echo "=== gpu tests ==="; echo "--- gpu tests skipped: pytest is not installed for $PY"
fi

# ---------------------------------------------------------------- throughput (package code paths, bf16 autocast)
part "throughput" "$PY" - <<'EOF'
import os, time, torch
from mintkit.core.data import load_pool
from mintkit.models.zoo import build_model, tap_modules
from mintkit.core.train import TrainConfig, train_classifier, pick_device
from mintkit.models.extract import extract

dev = pick_device(os.environ["GPU_CHECK_DEVICE"])
cpu = dev.type == "cpu"
torch.backends.cudnn.benchmark = True
root = os.environ["GPU_CHECK_DATA"]
try:
    pool = load_pool("mnist-test", root)
    what = "MNIST test split"
except Exception as e:  # noqa: BLE001
    print(f"MNIST not found under {root} ({e}); timing on digits resized to 28x28")
    pool = load_pool("digits", image_size=28)
    what = "digits 28x28"
pool = pool.to(dev)
idx = torch.arange(len(pool)).numpy()
print(f"pool: {what}, {len(pool)} images {tuple(pool.x.shape[1:])}")

def sync():
    if not cpu:
        torch.cuda.synchronize()

if cpu:
    idx = idx[:1024]
for arch, bs in (("smallcnn", 256),) + ((("resnet50", 256),) if not cpu else ()):
    try:
        model = build_model(arch, pool.num_classes, pool.in_channels, pool.image_size).to(dev)
        assert cpu or next(model.parameters()).is_cuda
        cfg = TrainConfig(epochs=1, batch_size=bs, lr=1e-3, amp=True)
        train_classifier(model, pool, idx, cfg, dev, progress=False)  # warm-up (cudnn autotune)
        sync(); t = time.perf_counter()
        cfg2 = TrainConfig(epochs=2, batch_size=bs, lr=1e-3, amp=True)
        train_classifier(model, pool, idx, cfg2, dev, progress=False)
        sync(); dt = time.perf_counter() - t
        print(f"train   {arch:<9} bs={bs}: {2 * len(idx) / dt:10.0f} images/s  (2 epochs, {dt:.2f} s)")
        taps = [t for t in tap_modules(model) if t.startswith("stage")] or list(tap_modules(model))[:4]
        extract(model, pool, idx[:2048], taps, dev, reduce="max", batch_size=1024)
        sync(); t = time.perf_counter()
        feats = extract(model, pool, idx, taps, dev, reduce="max", batch_size=1024)
        sync(); dt = time.perf_counter() - t
        dims = {k: tuple(v.shape[1:]) for k, v in feats.items()}
        print(f"extract {arch:<9} taps={taps}: {len(idx) / dt:10.0f} images/s  {dims}")
    except Exception as e:  # noqa: BLE001
        print(f"{arch}: FAILED {type(e).__name__}: {e}")
        raise
EOF

# ---------------------------------------------------------------- one reduced paper-profile cell per paper
# The notebook's code cells executed in order with the typed parameters injected after the `parameters` cell
# (no jupyter needed on the GPU machine). Rows of the cell's results.csv printed.
CELLS_OK=()
for paper in mint amint gmint factors; do
  n_failed=${#FAILED[@]}
  part "cell $paper" "$PY" - "$paper" <<'EOF'
import csv, importlib, json, os, sys, time
from pathlib import Path
from mintkit.core.params import fields_of

paper = sys.argv[1]
root, work = os.environ["GPU_CHECK_DATA"], Path(os.environ["GPU_CHECK_WORK"])
out = work / "runs" / "gpu-check" / paper / "reduced"
cls = importlib.import_module(f"mintkit.papers.{paper}").Params
# A reduced version of a paper setting (MNIST, ResNet50, entry/stage taps): few epochs, a few thousand samples.
want = {"dataset": "mnist-test", "data_root": root, "arch": "resnet50", "device": "cuda", "seed": 0,
        "audited_epochs": 3, "mint_epochs": 5, "batch_size": 128, "n_members": 3000, "n_external": 3000,
        "n_eval": 1000, "protocol": "paper", "n_boot": 50, "out_dir": str(out)}
if paper == "factors":  # n_eval counts per member quarter of the exposure model
    want |= {"exposure_members": 4000, "n_eval": 250}
if os.environ["GPU_CHECK_DEVICE"] == "cpu":  # dry run of this script on a CPU machine
    want |= {"arch": "smallcnn", "device": "cpu", "audited_epochs": 1, "mint_epochs": 1, "n_members": 300,
             "n_external": 300, "n_eval": 100}
    if paper == "factors":
        want |= {"exposure_members": 400, "n_eval": 25}
P = cls.from_values({k: v for k, v in want.items() if k in fields_of(cls)}).as_dict()
print("parameters:", {k: P[k] for k in want if k in P})
t0 = time.perf_counter()
nb = Path("notebooks") / f"{paper}.ipynb"
print(f"executing the code cells of {nb} (parameters injected after the parameters cell)")
cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
ns = {"__name__": "__main__", "display": print}
for i, c in enumerate(cells):
    src = "".join(c["source"])
    src = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
    exec(compile(src, f"{nb}[cell {i}]", "exec"), ns)
    if "parameters" in c.get("metadata", {}).get("tags", []):
        ns.update(P)
print(f"cell finished in {time.perf_counter() - t0:.1f} s")
env = json.loads((out / "env.json").read_text()) if (out / "env.json").exists() else {}
print("env.json device:", env.get("device"), env.get("device_name"))
assert str(env.get("device", "cuda")).startswith(P.get("device", "cuda").replace("auto", "cuda")), \
    "the cell did not run on the device asked for"
show = ("accuracy", "accuracy_calibrated", "auc", "tpr_at_1pct_fpr", "audited_accuracy",
        "audited_train_accuracy")
if (out / "results.csv").exists():
    for r in csv.DictReader(open(out / "results.csv")):
        if r["metric"] in show or r["metric"].startswith("time_"):
            keys = "/".join(x for x in (r["table"], r["dataset"], r["model"], r["setup"], r["condition"],
                                        r["feature"], r["protocol"]) if x)
            print(f"  {keys:<60} {r['metric']:<26} {float(r['value']):.4f}")
else:
    print("no results.csv written")
EOF
  [ ${#FAILED[@]} -eq "$n_failed" ] && CELLS_OK+=("$paper")
done
if [ ${#CELLS_OK[@]} -gt 0 ]; then
  papers=$(IFS=,; echo "${CELLS_OK[*]}")
  part "report of the cells" "$PY" -m mintkit report --runs "$WORK/runs" --out "$WORK/figures" --paper "$papers"
  grep -h " → [0-9]" "$WORK"/figures/*/*.md 2>/dev/null | head -20
fi

# ---------------------------------------------------------------- benchmarks that take --device
for b in benchmarks/*.py; do
  case "$(basename "$b")" in _*) continue ;; esac
  if grep -q -- '"--device"' "$b"; then
    part "benchmark $(basename "$b")" "$PY" "$b" --device "$GPU_CHECK_DEVICE"
  fi
done

echo
if [ ${#FAILED[@]} -eq 0 ]; then
  echo "gpu_check: all parts passed"
else
  echo "gpu_check: ${#FAILED[@]} part(s) failed:"; printf '  - %s\n' "${FAILED[@]}"
fi
[ ${#FAILED[@]} -eq 0 ]
