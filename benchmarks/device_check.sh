#!/usr/bin/env bash
# The device check (issue 14): one prepared command for the GPU machine, at most 8 minutes.
#
#     bash benchmarks/device_check.sh                                 # on the GPU machine
#     bash benchmarks/device_check.sh --accelerator cpu --quick --threads 1   # CPU dry run
#
# Before it, here: `bash benchmarks/device_wheels.sh` (fills the git-ignored .whl and .data);
# the device tool carries them with `carry: [".whl", ".data"]`. On the GPU machine (Python 3.12,
# torch, Lightning, pandas, ... but no SQLAlchemy, Alembic or Optuna, no internet) the carried
# wheels are installed into /tmp/site, which goes first on PYTHONPATH with the working tree.
#
# Parts (each bounded in time, each leaving its rows and logs under $OUT, or ./device-check-out):
#   1. every method's allocation on resnet18 on the device (benchmarks/device_allocation.py)
#   2. bench's step against a bare loop: resnet18 b128 and lenet5 b64, fp32 and bf16-mixed,
#      contiguous and channels-last (benchmarks/overhead.py)
#   3. a LeNet-5 grid on Fashion-MNIST with 1, 4 and 8 workers on GPU 0: runs per hour
#   4. every method on resnet18_w16, two epochs, run twice: outcomes and masks equal
#      (benchmarks/device_grids.py)
#   5. 30-run LeNet-5 and resnet18_w16 grids, --stack off against --stack auto: runs per hour
# then ONE summary table (benchmarks/device_report.py), printed and in $OUT/summary.md.
set -uo pipefail
cd "$(dirname "$0")/.."

ACCELERATOR=gpu
QUICK=0
THREADS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --accelerator) ACCELERATOR="$2"; shift 2 ;;
        --accelerator=*) ACCELERATOR="${1#*=}"; shift ;;
        --quick) QUICK=1; shift ;;
        --threads) THREADS="$2"; shift 2 ;;
        --threads=*) THREADS="${1#*=}"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "device_check.sh: unknown argument $1 (--accelerator cpu|gpu, --quick, --threads N)" >&2
           exit 2 ;;
    esac
done
case "$ACCELERATOR" in cpu|gpu) ;; *) echo "device_check.sh: --accelerator cpu|gpu" >&2; exit 2 ;; esac

OUT_DIR="${OUT:-$PWD/device-check-out}"
mkdir -p "$OUT_DIR/logs"
rm -f "$OUT_DIR"/{allocation.json,overhead.csv,workers.json,repeat.json,stacked.json,summary.md,header.txt}
START=$(date +%s)
# Seconds left of the whole check's budget (7 min 30 s; the report needs a few more).
left() { echo $(( 520 - ($(date +%s) - START) )); }
budget() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo $(( l > 1 ? l : 1 )); }

# Carried wheels: only where the packages are missing (the GPU machine), never over an install.
if ! python3 -c "import sqlalchemy, alembic, optuna" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "device_check.sh: SQLAlchemy/Alembic/Optuna missing and no wheels in .whl" \
             "(run benchmarks/device_wheels.sh and carry .whl)" >&2
        exit 2
    fi
    # A wheel is a zip of what goes into site-packages: unzipped, where pip itself fails.
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl > "$OUT_DIR/logs/wheels.log" 2>&1 \
        || for wheel in .whl/*.whl; do python3 -m zipfile -e "$wheel" /tmp/site; done \
        >> "$OUT_DIR/logs/wheels.log" 2>&1
    export PYTHONPATH=/tmp/site:$PWD
    python3 -c "import sqlalchemy, alembic, optuna" >> "$OUT_DIR/logs/wheels.log" 2>&1 \
        || { echo "device_check.sh: the wheels in .whl do not import (logs/wheels.log)" >&2
             exit 2; }
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
# cuBLAS's deterministic mode needs a fixed workspace, set before CUDA starts (as bench does).
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"
DATA=".data"
[ -d "$DATA/fashion-mnist" ] || DATA=""  # else bench's own search (Debian's package)
DATA_ARGS=()
[ -n "$DATA" ] && DATA_ARGS=(--data-dir "$DATA")
THREAD_ARGS=()
[ -n "$THREADS" ] && THREAD_ARGS=(--threads "$THREADS")

python3 - > "$OUT_DIR/header.txt" 2>"$OUT_DIR/logs/header.log" <<PY
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"device check, --accelerator $ACCELERATOR{' --quick' if $QUICK else ''}: {gpu}, "
      f"Python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"{torch.get_num_threads()} CPU threads")
PY
cat "$OUT_DIR/header.txt"
if [ "$ACCELERATOR" = gpu ] && ! python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "device_check.sh: --accelerator gpu but torch sees no CUDA device" >&2
    exit 2
fi

part() {  # part NAME SECONDS COMMAND...: run it under a time limit, logged
    local name="$1" seconds; seconds=$(budget "$2"); shift 2
    local t0; t0=$(date +%s)
    echo "== $name (at most ${seconds} s)"
    timeout --kill-after=10 "$seconds" "$@" > "$OUT_DIR/logs/$name.log" 2>&1
    local code=$?
    echo "   exit $code$([ $code = 124 ] && echo ' (out of time)'), $(( $(date +%s) - t0 )) s" \
         "(logs/$name.log)"
}

if [ "$QUICK" = 1 ]; then
    DEVICE=cpu; [ "$ACCELERATOR" = gpu ] && DEVICE=cuda
    part allocation 60 python3 benchmarks/device_allocation.py --device "$DEVICE" --quick \
        "${THREAD_ARGS[@]}" --json "$OUT_DIR/allocation.json"
    part overhead-lenet5 45 python3 benchmarks/overhead.py --accelerator "$ACCELERATOR" \
        --archs lenet5 --steps 8 --epochs 2 --rounds 1 --precision 32,bf16-mixed \
        --both-layouts "${THREAD_ARGS[@]}" --csv "$OUT_DIR/overhead.csv"
    part overhead-resnet 60 python3 benchmarks/overhead.py --accelerator "$ACCELERATOR" \
        --archs resnet18_w16 --steps 2 --epochs 2 --rounds 1 --precision 32,bf16-mixed \
        --both-layouts "${THREAD_ARGS[@]}" --csv "$OUT_DIR/overhead.csv"
    GRID=(--accelerator "$ACCELERATOR" "${DATA_ARGS[@]}" "${THREAD_ARGS[@]}" --out "$OUT_DIR"
          --train-subset 1000)
    part workers 120 python3 benchmarks/device_grids.py workers "${GRID[@]}" --budget 110 \
        --workers 1 2 --densities 0.1 0.01
    part repeat 210 python3 benchmarks/device_grids.py repeat "${GRID[@]}" --budget 200 \
        --epochs 1 --repeat-workers 2 --methods snip synflow:steps=10 force:steps=4 random dctps
    part stacked 90 python3 benchmarks/device_grids.py stacked "${GRID[@]}" --budget 85 \
        --archs mlp --densities 0.1 0.01 --epochs 1
else
    DEVICE=cpu; [ "$ACCELERATOR" = gpu ] && DEVICE=cuda
    part allocation 75 python3 benchmarks/device_allocation.py --device "$DEVICE" \
        --compare-cpu random,epl,epf,dctps,snip,grasp "${THREAD_ARGS[@]}" \
        --json "$OUT_DIR/allocation.json"
    part overhead-resnet18 95 python3 benchmarks/overhead.py --accelerator "$ACCELERATOR" \
        --archs resnet18 --steps 30 --epochs 3 --rounds 2 --precision 32,bf16-mixed \
        --both-layouts "${THREAD_ARGS[@]}" --csv "$OUT_DIR/overhead.csv"
    part overhead-lenet5 45 python3 benchmarks/overhead.py --accelerator "$ACCELERATOR" \
        --archs lenet5 --steps 100 --epochs 3 --rounds 2 --precision 32,bf16-mixed \
        --both-layouts "${THREAD_ARGS[@]}" --csv "$OUT_DIR/overhead.csv"
    GRID=(--accelerator "$ACCELERATOR" "${DATA_ARGS[@]}" "${THREAD_ARGS[@]}" --out "$OUT_DIR"
          --train-subset 5000)
    part workers 100 python3 benchmarks/device_grids.py workers "${GRID[@]}" --budget 95 \
        --workers 1 4 8
    part repeat 95 python3 benchmarks/device_grids.py repeat "${GRID[@]}" --budget 90 \
        --epochs 2 --repeat-workers 4 --methods all
    part stacked 100 python3 benchmarks/device_grids.py stacked "${GRID[@]}" --budget 95 \
        --seeds 0 1 2 --epochs 2
fi

echo "== summary ($(( $(date +%s) - START )) s in all)"
python3 benchmarks/device_report.py "$OUT_DIR"
echo "(also in $OUT_DIR/summary.md; logs in $OUT_DIR/logs)"
