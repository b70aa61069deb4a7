#!/usr/bin/env bash
# One seed of every cell of the `mnist` and `cifar10` profiles on one NVIDIA GPU: aMINT Table 1 on MNIST and
# CIFAR-10 (6 archs x entry/middle/output; the Entry runs give Table 2), gMINT Table 1 on MNIST and Table 2 on
# CIFAR-10 (6 archs; each run writes its Table 2-3 rows too), MINT on MNIST (Table 1 grid, Table 7's three CNN
# sizes) and its Appendix on CIFAR-10 (Table 8 MobileNet, Table 9 ResNet50 at 16/32/64 px), Factors on MNIST (all
# four factors in one run): 57 runs. The two profiles' batches share the card side by side, each paper's batch
# with --jobs N runs at once, through the exec engine (no Jupyter needed).
#
#     make setup && make gpu-check                      # first: torch sees the card (README, Install)
#     OUT=runs/gpu bash scripts/gpu_mnist.sh            # batches under $OUT/runs/<profile>, log $OUT/gpu_mnist.log
#     python -m mintkit report --runs runs/gpu/runs/mnist   # then the tables
#
# Data under <data> ($GPU_MNIST_DATA, else the kit's `data/`): torchvision's MNIST files in <data>/MNIST/raw
# (gzipped or not; the kit's first MNIST run downloads them) and torchvision's CIFAR-10 in
# <data>/cifar-10-batches-py, or CIFAR-10 re-encoded as JPEG in <data>/cifar10-jpeg/cifar10-jpeg.tar.gz.
# `bash scripts/gpu_mnist.sh prepare SRC` copies a smaller version of SRC's MNIST (gzipped) and the JPEG tarball
# into .gpu/data, for a GPU machine reached by copying the checkout (about 31 MB).
# Gzipped MNIST files are decompressed in place before the plan (torchvision reads them uncompressed). With only
# the MNIST test split there, the mnist profile uses the stand-in `mnist-test`; without torchvision's CIFAR-10
# files, the cifar10 profile uses the JPEG tarball `cifar10-jpeg` (the rows and the report say so).
# Runs: `python -m mintkit reproduce --profile P --seeds 1 --engine exec --jobs N -p threads 1` per profile; CUDA
# is picked by the presets' `device: auto`. Every pool the plans need is decoded into the data cache once, before
# the batches, not by each run. A run already complete in a batch folder is skipped (resume). The presets'
# recipes are not shortened unless GPU_MNIST_ARGS says so; the last section counts the complete runs of each
# profile, so a budget that did not fill every cell says how many are left (rerun to resume).
# Prints per-run wall time and a nominal images/s (|D| x audited_epochs / wall seconds: the wall time covers the
# whole run, and audited_epochs is the preset's maximum, which early stopping may cut), the time_* stages of
# each run's results.csv, and mean/max GPU utilisation sampled with nvidia-smi.
# Every part is guarded: a failing part prints its error and the script goes on. Environment:
#   PYTHON              the python to use (default: .venv/bin/python when there, else python3)
#   GPU_MNIST_PROFILES  comma-separated profiles (default mnist,cifar10)
#   GPU_MNIST_JOBS      runs at once on the card per profile (default 6, so 12 with both profiles)
#   GPU_MNIST_BUDGET_S  seconds for the batches, which run side by side (default 480); then each is stopped
#                       with Ctrl-C (runs in flight are recorded as interrupted, complete ones stay; rerun to resume)
#   GPU_MNIST_PAPERS    comma-separated papers (default amint,gmint,mint,factors; a profile runs those it plans,
#                       one paper's batch after the other, in this order)
#   GPU_MNIST_ARGS      extra `reproduce` arguments, e.g. "-p audited_epochs 10 -p mint_epochs 10"
#                       (recorded in each run's plan.json as a change of the preset's recipe)
#   GPU_MNIST_DATA      data root (default data/, then .gpu/data)
#   GPU_MNIST_SAMPLE_S  nvidia-smi sampling period in seconds (default 5)
#   GPU_MNIST_DEVICE=cpu  a tiny dry run of the script itself on a CPU machine: smallcnn, entry, 1 epoch,
#                       a few hundred images, 2 jobs per profile (no nvidia-smi)
set -u
cd "$(dirname "$0")/.."
MNIST_FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
CIFAR_TAR=cifar10-jpeg/cifar10-jpeg.tar.gz
if [ "${1:-}" = prepare ]; then  # the carried data folder: MNIST gzipped (55 MB -> 11 MB), the tarball as is
  SRC=${2:?usage: bash scripts/gpu_mnist.sh prepare SRC_DATA_ROOT}
  mkdir -p .gpu/data/MNIST/raw .gpu/data/cifar10-jpeg || exit 1
  for f in "${MNIST_FILES[@]}"; do
    if [ -f "$SRC/MNIST/raw/$f" ]; then gzip -c "$SRC/MNIST/raw/$f" > ".gpu/data/MNIST/raw/$f.gz" || exit 1; fi
  done
  if [ -f "$SRC/$CIFAR_TAR" ]; then cp "$SRC/$CIFAR_TAR" ".gpu/data/$CIFAR_TAR" || exit 1; fi
  du -sh .gpu/data && find .gpu/data -type f | sort
  exit 0
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg PYTHONUNBUFFERED=1
# `-p threads` only applies on CPU (papers/common.py); on CUDA this caps each run's CPU-side torch threads so
# the 2 x N runs of both profiles do not oversubscribe the machine's cores
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-}
[ -z "$PY" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python  # the venv `make setup` made, else the PATH's
PY=${PY:-python3}
WORK=${OUT:-$(mktemp -d)}
mkdir -p "$WORK"
if [ -n "${OUT:-}" ]; then exec > >(tee "$OUT/gpu_mnist.log") 2>&1; fi
DATA=${GPU_MNIST_DATA:-}
for d in data .gpu/data; do  # the kit's data_root, then a copy carried beside the checkout
  if [ -z "$DATA" ] && { [ -e "$d/MNIST/raw/t10k-images-idx3-ubyte.gz" ] || [ -e "$d/MNIST/raw/t10k-images-idx3-ubyte" ] \
                         || [ -f "$d/$CIFAR_TAR" ]; }; then DATA=$d; fi
done
DATA=${DATA:-.gpu/data}
DEVICE=${GPU_MNIST_DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then JOBS=${GPU_MNIST_JOBS:-2}; else JOBS=${GPU_MNIST_JOBS:-6}; fi
BUDGET=${GPU_MNIST_BUDGET_S:-480}
PAPERS=${GPU_MNIST_PAPERS:-amint,gmint,mint,factors}
IFS=, read -ra PROFILES <<< "${GPU_MNIST_PROFILES:-mnist,cifar10}"
SAMPLE=${GPU_MNIST_SAMPLE_S:-5}
SMI_LOG=$WORK/gpu_mnist_smi.csv
FAILED=()

papers_of() {  # papers_of PROFILE: the papers of $PAPERS that PROFILE plans, in $PAPERS' order, into PAPERS_OF
  read -ra PAPERS_OF <<< "$("$PY" -c 'import sys; from mintkit.batch.plans import PROFILE_SPECS
have = PROFILE_SPECS[sys.argv[1]].presets
print(" ".join(p for p in sys.argv[2].split(",") if p in have))' "$1" "$PAPERS")"
}

args_for() {  # args_for PROFILE PAPER: the `reproduce` arguments of that profile's batch of PAPER, into ARGS
  ARGS=(-m mintkit reproduce --profile "$1" --paper "$2" --seeds 1 --engine exec --jobs "$JOBS"
        --out "$WORK/runs/$1" --no-progress -p data_root "$DATA" -p threads 1)
  if [ "$DEVICE" = cpu ]; then  # dry run of this script: the smallest cell each paper's presets accept
    # 20 audited epochs: fewer (25 Adam steps at 5) leave smallcnn at one class on 300 images, which the fit guard
    # stops as DidNotFit
    ARGS+=(-p device cpu -p audited_epochs 20 -p mint_epochs 1 -p n_members 300 -p n_eval 100 -p n_boot 20)
    case "$2" in
      amint|gmint) ARGS+=(-p arch smallcnn -p setup entry -p n_external 300) ;;
      mint) ARGS+=(-p arch smallcnn -p cnn_epochs 1 -p n_external 200 -p control none) ;;
      factors) ARGS+=(-p n_external 300 -p exposure_members 800 -p exposure_epochs 1 -p batch_sizes 32,64) ;;
    esac
  fi
  # shellcheck disable=SC2206
  ARGS+=(${GPU_MNIST_ARGS:-})
}

echo "gpu_mnist $(date -u +%FT%TZ)  device=$DEVICE  profiles=${PROFILES[*]}  jobs=$JOBS per profile" \
     " budget=${BUDGET}s  data=$DATA  batches=$WORK/runs/<profile>"

# ---------------------------------------------------------------- device
if [ "$DEVICE" = cuda ]; then
  echo; echo "=== device ==="
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || FAILED+=("nvidia-smi")
  "$PY" -c 'import torch; assert torch.cuda.is_available(), "CUDA is not available to torch"; print("torch", torch.__version__, torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())' \
    || FAILED+=("torch sees no CUDA")
fi

# ---------------------------------------------------------------- data: MNIST decompressed, every pool decoded once
echo; echo "=== data ($DATA) ==="
for f in "${MNIST_FILES[@]}"; do
  if [ -f "$DATA/MNIST/raw/$f.gz" ] && [ ! -f "$DATA/MNIST/raw/$f" ]; then
    if gunzip -kf "$DATA/MNIST/raw/$f.gz"; then echo "decompressed MNIST/raw/$f"; else FAILED+=("gunzip $f"); fi
  fi
done
# the (dataset, size) pairs the plans ask for, one cache entry each: decoded here once, not by parallel runs at once
"$PY" - "$DATA" "$PAPERS" "${PROFILES[@]}" <<'PYEOF' || FAILED+=("data")
import sys, time
from mintkit.batch.plans import plan_batch
from mintkit.core.data import load_pool

data, papers, profiles = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
wanted = set()
for profile in profiles:
    runs, _ = plan_batch(profile, papers, overrides={"data_root": data})
    wanted |= {(r.params["dataset"], r.params.get("image_size") or None) for r in runs}
for name, size in sorted(wanted, key=lambda w: (w[0], w[1] or 0)):
    t0 = time.perf_counter()
    pool = load_pool(name, data, image_size=size)
    print(f"{name} at {size or 'native'}: {tuple(pool.x.shape)} in {time.perf_counter() - t0:.1f} s")
PYEOF

# ---------------------------------------------------------------- plan
PLANNED=()  # PROFILE:number of planned runs, for the count of filled cells at the end
for p in "${PROFILES[@]}"; do
  papers_of "$p"
  planned=0
  for paper in "${PAPERS_OF[@]}"; do
    echo; echo "=== plan: $p / $paper ==="
    args_for "$p" "$paper"
    "$PY" "${ARGS[@]}" --dry-run > "$WORK/plan.$p.$paper.txt" || FAILED+=("plan $p/$paper")
    cut -c1-160 "$WORK/plan.$p.$paper.txt"
    n=$(sed -n 's/^profile [^:]*: \([0-9][0-9]*\) run(s).*/\1/p' "$WORK/plan.$p.$paper.txt")
    planned=$((planned + ${n:-0}))
  done
  PLANNED+=("$p:$planned")
done

# ---------------------------------------------------------------- batches side by side, with the GPU sampled
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
PIDS=()
for p in "${PROFILES[@]}"; do
  papers_of "$p"
  rm -f "$WORK/batch_rc.$p"
  # a profile's papers one after the other (each batch --jobs N on the card), the profiles side by side, all
  # within the budget; SIGINT first: the runner records runs in flight as interrupted and stops their
  # processes; KILL 60 s later
  ( rc=0
    for paper in "${PAPERS_OF[@]}"; do
      left=$((t0 + BUDGET - SECONDS))
      if [ "$left" -le 0 ]; then rc=124; break; fi
      args_for "$p" "$paper"
      timeout --signal=INT --kill-after=60 "$left" "$PY" "${ARGS[@]}" 2>&1
      r=$?; [ "$r" != 0 ] && rc=$r
      [ "$r" = 124 ] && break
    done
    echo "$rc" > "$WORK/batch_rc.$p" ) | sed -u "s/^/[$p] /" &
  PIDS+=($!)
done
wait "${PIDS[@]}"
for p in "${PROFILES[@]}"; do
  rc=$(cat "$WORK/batch_rc.$p" 2>/dev/null || echo "?")
  echo "--- batch $p rc=$rc after $((SECONDS - t0)) s$([ "$rc" = 124 ] && echo " (budget of ${BUDGET}s reached; rerun to resume)")"
  [ "$rc" != 0 ] && FAILED+=("batch $p (rc=$rc)")
done
[ -n "$SMI_PID" ] && kill "$SMI_PID" 2>/dev/null

# ---------------------------------------------------------------- per-run wall time and throughput, cells filled
echo; echo "=== runs ==="
"$PY" - "$WORK/runs" "${PLANNED[@]}" <<'PYEOF' || FAILED+=("runs summary")
import csv, json, sys
from pathlib import Path

root = Path(sys.argv[1])
planned = dict(a.rsplit(":", 1) for a in sys.argv[2:])
def read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
print(f"{'run':<66} {'status':<11} {'wall s':>7} {'|D|':>6} {'epochs':>6} {'img/s':>8}  stages (s)")
counts = {}
for profile in planned:
    batch = root / profile
    manifest = read(batch / "batch.json").get("runs", {})
    folders = sorted(p for p in batch.glob("*/*") if p.is_dir())
    for folder in folders:
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
        name = f"{profile}/{key}"
        print(f"{name[:66]:<66} {status:<11} {wall if wall is not None else '-':>7} {members or '-':>6} "
              f"{epochs or '-':>6} {rate}  {text}")
    counts[profile] = sum(read(f / "status.json").get("status") == "complete" for f in folders)
print()
for profile, done in counts.items():
    print(f"{profile}: {done} of {planned[profile]} planned runs complete"
          + ("" if str(done) == planned[profile] else " (rerun to resume the others)"))
PYEOF

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
