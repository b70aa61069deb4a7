#!/usr/bin/env bash
# One seed of every MNIST cell of the `mnist` profile (aMINT Table 1 MNIST: 6 archs x entry/middle/output;
# gMINT Table 1: 6 archs) on one lent GPU, several runs sharing the card, through the exec engine (no Jupyter).
#
# For a GPU machine with no network and no papermill/jupyter: python3 with torch, torchvision, timm,
# scikit-learn, pandas, seaborn, tqdm. Data: MNIST in a carried, git-ignored folder (as scripts/gpu_check.sh):
#     mkdir -p .gpu/data && cp -r ../shared/data/MNIST .gpu/data/       # on the dev machine, then carry .gpu
#     OUT=/some/dir bash scripts/gpu_mnist.sh                            # batch under $OUT/runs/mnist
# With only the MNIST test split there, the profile uses the stand-in `mnist-test` (the rows say so).
# Runs: `python -m mintkit reproduce --profile mnist --seeds 1 --engine exec --jobs N -p threads 1`; CUDA is
# picked by the presets' `device: auto`. A run already complete in the batch folder is skipped (resume).
# Prints per-run wall time and a nominal images/s (|D| x audited_epochs / wall seconds: the wall time covers the
# whole run, and audited_epochs is the preset's maximum, which early stopping may cut), the time_* stages of
# each run's results.csv, and mean/max GPU utilisation sampled with nvidia-smi.
# Every part is guarded: a failing part prints its error and the script goes on. Output is also saved to
# $OUT/gpu_mnist.log when $OUT is set. Environment:
#   GPU_MNIST_JOBS      runs at once on the card (default 6)
#   GPU_MNIST_BUDGET_S  seconds for the whole batch (default 480); then the batch is stopped with Ctrl-C
#                       (runs in flight are recorded as interrupted, complete ones stay; rerun to resume)
#   GPU_MNIST_PAPERS    comma-separated papers (default amint,gmint)
#   GPU_MNIST_ARGS      extra `reproduce` arguments, e.g. "-p audited_epochs 10 -p mint_epochs 10"
#                       (recorded in each run's plan.json as a change of the preset's recipe)
#   GPU_MNIST_DATA      data root (default .gpu/data, then ../shared/data)
#   GPU_MNIST_SAMPLE_S  nvidia-smi sampling period in seconds (default 5)
#   GPU_MNIST_DEVICE=cpu  a tiny dry run of the script itself on a CPU machine: smallcnn, entry, 1 epoch,
#                       a few hundred images, 2 jobs (no nvidia-smi)
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
# `-p threads` only applies on CPU (papers/common.py); on CUDA this caps each run's CPU-side torch threads so
# N runs do not oversubscribe the 16 cores
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=${PYTHON:-python3}
WORK=${OUT:-$(mktemp -d)}
mkdir -p "$WORK"
if [ -n "${OUT:-}" ]; then exec > >(tee "$OUT/gpu_mnist.log") 2>&1; fi
DATA=${GPU_MNIST_DATA:-}
for d in .gpu/data ../shared/data; do
  [ -z "$DATA" ] && [ -f "$d/MNIST/raw/t10k-images-idx3-ubyte.gz" ] && DATA=$d
done
DATA=${DATA:-.gpu/data}
DEVICE=${GPU_MNIST_DEVICE:-cuda}
JOBS=${GPU_MNIST_JOBS:-6}
BUDGET=${GPU_MNIST_BUDGET_S:-480}
PAPERS=${GPU_MNIST_PAPERS:-amint,gmint}
SAMPLE=${GPU_MNIST_SAMPLE_S:-5}
BATCH=$WORK/runs/mnist
SMI_LOG=$WORK/gpu_mnist_smi.csv
FAILED=()

ARGS=(-m mintkit reproduce --profile mnist --paper "$PAPERS" --seeds 1 --engine exec --jobs "$JOBS"
      --out "$BATCH" --no-progress -p data_root "$DATA" -p threads 1)
if [ "$DEVICE" = cpu ]; then  # dry run of this script: the smallest cell the presets accept
  JOBS=${GPU_MNIST_JOBS:-2}
  ARGS=(-m mintkit reproduce --profile mnist --paper "$PAPERS" --seeds 1 --engine exec --jobs "$JOBS"
        --out "$BATCH" --no-progress -p data_root "$DATA" -p threads 1 -p device cpu -p arch smallcnn
        -p setup entry -p audited_epochs 1 -p mint_epochs 1 -p n_members 300 -p n_external 300 -p n_eval 100
        -p n_boot 20)
fi
# shellcheck disable=SC2206
ARGS+=(${GPU_MNIST_ARGS:-})

echo "gpu_mnist $(date -u +%FT%TZ)  device=$DEVICE  jobs=$JOBS  budget=${BUDGET}s  data=$DATA  batch=$BATCH"

# ---------------------------------------------------------------- device
if [ "$DEVICE" = cuda ]; then
  echo; echo "=== device ==="
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || FAILED+=("nvidia-smi")
  "$PY" -c 'import torch; assert torch.cuda.is_available(), "CUDA is not available to torch"; print("torch", torch.__version__, torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())' \
    || FAILED+=("torch sees no CUDA")
fi

# ---------------------------------------------------------------- plan
echo; echo "=== plan ==="
"$PY" "${ARGS[@]}" --dry-run | cut -c1-160 || FAILED+=("plan")

# ---------------------------------------------------------------- batch, with the GPU sampled
SMI_PID=
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "time,utilization.gpu [%],memory.used [MiB]" > "$SMI_LOG"
  ( while :; do
      echo "$(date +%s),$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits | head -1)"
      sleep "$SAMPLE"
    done >> "$SMI_LOG" ) &
  SMI_PID=$!
else
  echo "(no nvidia-smi: GPU utilisation not sampled)"
fi
echo; echo "=== batch ==="
t0=$SECONDS
# SIGINT first: the runner records runs in flight as interrupted and stops their processes; KILL 60 s later
timeout --signal=INT --kill-after=60 "$BUDGET" "$PY" "${ARGS[@]}"
rc=$?
echo "--- batch rc=$rc after $((SECONDS - t0)) s$([ $rc -eq 124 ] && echo " (budget of ${BUDGET}s reached; rerun to resume)")"
[ $rc -ne 0 ] && FAILED+=("batch (rc=$rc)")
[ -n "$SMI_PID" ] && kill "$SMI_PID" 2>/dev/null

# ---------------------------------------------------------------- per-run wall time and throughput
echo; echo "=== runs ==="
"$PY" - "$BATCH" <<'EOF' || FAILED+=("runs summary")
import csv, json, sys
from pathlib import Path

batch = Path(sys.argv[1])
def read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
manifest = read(batch / "batch.json").get("runs", {})
print(f"{'run':<58} {'status':<11} {'wall s':>7} {'|D|':>6} {'epochs':>6} {'img/s':>8}  stages (s)")
for folder in sorted(p for p in batch.glob("*/*") if p.is_dir()):
    key = str(folder.relative_to(batch))
    status = read(folder / "status.json").get("status", "?")
    params, split = read(folder / "params.json"), read(folder / "split.json")
    wall = manifest.get(key, {}).get("seconds")
    members = split.get("sizes", {}).get("members")
    epochs = params.get("audited_epochs")
    rate = f"{members * epochs / wall:8.0f}" if wall and members and epochs else f"{'-':>8}"
    stages = {}
    if (folder / "results.csv").exists():
        for r in csv.DictReader(open(folder / "results.csv")):
            if r["metric"].startswith("time_") and r["metric"] != "time_attack":
                stages.setdefault(r["metric"][5:], float(r["value"]))
    text = " ".join(f"{k}={v:.0f}" for k, v in stages.items())
    print(f"{key[:58]:<58} {status:<11} {wall if wall is not None else '-':>7} {members or '-':>6} "
          f"{epochs or '-':>6} {rate}  {text}")
EOF

# ---------------------------------------------------------------- GPU utilisation
if [ -n "$SMI_PID" ] && [ -s "$SMI_LOG" ]; then
  echo; echo "=== GPU utilisation ($SMI_LOG, every ${SAMPLE}s) ==="
  awk -F, 'NR > 1 && $2 != "" { n++; u += $2; if ($2 > um) um = $2; m += $3; if ($3 > mm) mm = $3 }
           END { if (n) printf "%d samples: utilisation mean %.0f%% max %d%%; memory mean %.0f MiB max %d MiB\n",
                 n, u / n, um, m / n, mm; else print "no samples" }' "$SMI_LOG"
fi

echo
if [ ${#FAILED[@]} -eq 0 ]; then
  echo "gpu_mnist: all parts passed"
else
  echo "gpu_mnist: ${#FAILED[@]} part(s) failed:"; printf '  - %s\n' "${FAILED[@]}"
fi
[ ${#FAILED[@]} -eq 0 ]
