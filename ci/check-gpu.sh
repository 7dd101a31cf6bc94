#!/usr/bin/env bash
# make check-gpu: on a machine with a CUDA GPU, builds with CUDA in its own folder and runs every
# GPU path once, each as a timed step with its own time limit, within one overall budget (8
# minutes by default). Writes one JSON summary and prints a table (ci/check_gpu_summary.py).
# Without a GPU it says so and exits 2 before building anything. See docs/benchmarks.md.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AUDIT_HOME=${AUDIT_HOME:-$HOME/.cache/audit}
VENV=$AUDIT_HOME/venv

# name|limit in seconds|what it runs. The order: short steps first, so that a slow one cannot
# use up the budget of the others.
STEPS=(
  "ctest-gpu|120|every GPU test: ctest -L gpu"
  "moe-gating-bench|60|the MoE gating CUDA kernel's bandwidth against the device's peak (audit_bench)"
  "replay-self-check|90|audit replay --self-check on CUDA: predicted vs measured training time"
  "bench-comm-nccl|120|audit bench comm --nproc 2 on NCCL: measured collectives vs the replay's model (two GPUs)"
  "bench-train|120|audit bench train on CUDA: the C++ trainer's tokens/s vs PyTorch eager"
  "replay-s1-8k|120|audit replay recipes/s1.toml at 8192 tokens on CUDA, with PyTorch eager"
  "replay-deepseek-v3|150|audit replay recipes/deepseek-v3.toml on CUDA (MLA + MoE layers)"
  "run-s1-mini|180|audit run recipes/s1-mini.toml on CUDA (the trainer), one eval seed"
)
BUILD_LIMIT=300
BUDGET=480

usage() {
  cat <<EOF
usage: ci/check-gpu.sh [--out PATH] [--build-dir DIR] [--only STEP[,STEP]] [--skip-build]
                       [--budget SECONDS] [--help]
On a machine with a CUDA GPU: build with CUDA (-DAUDIT_CUDA=ON, the GPU's compute capability)
in DIR, run every GPU path once as a timed step, write a JSON summary and print a table.
Exit 0 when every step passed, 1 when one failed or timed out, 2 without a GPU or on bad usage.

options:
  --out PATH          summary JSON (default: DIR/check-gpu.json)
  --build-dir DIR     build folder (default: build-gpu in the source folder)
  --only STEP[,STEP]  run only these steps (the others are reported as skipped)
  --skip-build        use the binaries already in DIR
  --budget SECONDS    overall time budget; a step's limit is cut to what is left (default $BUDGET)
  --help              this text

steps (limit in seconds):
  build               $BUILD_LIMIT  configure and build DIR with CUDA (unless --skip-build)
EOF
  local s name limit what
  for s in "${STEPS[@]}"; do
    IFS='|' read -r name limit what <<<"$s"
    printf '  %-19s %3s  %s\n' "$name" "$limit" "$what"
  done
}

die_usage() {
  echo "check-gpu: $1" >&2
  usage >&2
  exit 2
}

OUT=""
BUILD_DIR=$SRC/build-gpu
ONLY=""
SKIP_BUILD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --out) [ $# -ge 2 ] || die_usage "--out needs a path"; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --build-dir) [ $# -ge 2 ] || die_usage "--build-dir needs a folder"; BUILD_DIR=$2; shift 2 ;;
    --build-dir=*) BUILD_DIR=${1#*=}; shift ;;
    --only) [ $# -ge 2 ] || die_usage "--only needs step names"; ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#*=}; shift ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --budget) [ $# -ge 2 ] || die_usage "--budget needs seconds"; BUDGET=$2; shift 2 ;;
    --budget=*) BUDGET=${1#*=}; shift ;;
    *) die_usage "unknown option '$1'" ;;
  esac
done
[[ "$BUDGET" =~ ^[0-9]+$ ]] || die_usage "--budget takes whole seconds, not '$BUDGET'"
declare -A SELECTED=()
if [ -n "$ONLY" ]; then
  IFS=',' read -r -a only_list <<<"$ONLY"
  for want in "${only_list[@]}"; do
    found=0
    for s in "${STEPS[@]}"; do [ "${s%%|*}" = "$want" ] && found=1; done
    [ "$found" = 1 ] || die_usage "--only: no step named '$want'"
    SELECTED[$want]=1
  done
fi

# --- a GPU, or nothing ---
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "check-gpu: no CUDA GPU on this machine (no nvidia-smi): nothing was built or run." >&2
  exit 2
fi
GPU_LIST=$(nvidia-smi -L 2>/dev/null) || GPU_LIST=""
if ! grep -q '^GPU [0-9]' <<<"$GPU_LIST"; then
  echo "check-gpu: no CUDA GPU on this machine ('nvidia-smi -L' lists no device): nothing was built or run." >&2
  exit 2
fi

# --- where things go ---
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
[ -n "$OUT" ] || OUT=$BUILD_DIR/check-gpu.json
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
LOGS=$BUILD_DIR/check-gpu
rm -rf "$LOGS"
mkdir -p "$LOGS" || { echo "check-gpu: cannot create $LOGS" >&2; exit 1; }

PY=${AUDIT_PYTHON:-$VENV/bin/python3}
[ -x "$PY" ] || PY=$(command -v python3 || true)
[ -n "$PY" ] || { echo "check-gpu: no python3 (run make deps)" >&2; exit 1; }
export AUDIT_PYTHON=$PY
export CCACHE_DIR=${CCACHE_DIR:-$AUDIT_HOME/ccache}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
export CCACHE_NOHASHDIR=1
export CCACHE_BASEDIR=$SRC

# --- the machine, for the summary ---
first_line() { head -n 1 | sed 's/^[[:space:]]*//; s/[[:space:]]*$//'; }
query() { nvidia-smi --query-gpu="$1" --format=csv,noheader 2>/dev/null | first_line; }
GPU_NAME=$(query name)
[ -n "$GPU_NAME" ] || GPU_NAME=$(sed -n 's/^GPU 0: \(.*\) (UUID.*/\1/p' <<<"$GPU_LIST" | first_line)
DRIVER=$(query driver_version)
CC=$(query compute_cap)
[[ "$CC" =~ ^[0-9]+\.[0-9]+$ ]] || CC=""  # older drivers have no compute_cap: CMake's "native"
CUDA_VERSION=$(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: *[0-9.]*' | grep -o '[0-9.]*$' | first_line)
GPU_COUNT=$(grep -c '^GPU [0-9]' <<<"$GPU_LIST")
NVCC=${CUDACXX:-}
if [ -z "$NVCC" ]; then
  for c in "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc \
           "$VENV"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc \
           "$VENV"/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/nvcc; do
    if [ -n "$c" ] && [ -x "$c" ]; then NVCC=$c; break; fi
  done
fi
NVCC_VERSION=""
[ -n "$NVCC" ] && NVCC_VERSION=$("$NVCC" --version 2>/dev/null | grep -o 'release [0-9.]*' | grep -o '[0-9.]*$' | first_line)
# torch.version.cuda without importing torch (seconds): read from torch/version.py.
TORCH_CUDA=$("$PY" -c '
import importlib.util, os, re
spec = importlib.util.find_spec("torch")
text = open(os.path.join(os.path.dirname(spec.origin), "version.py")).read()
m = re.search(r"^cuda\b[^=\n]*=\s*.([0-9.]+)", text, re.M)
print(m.group(1) if m else "none")' 2>/dev/null | first_line)
COMMIT=$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=false
[ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ] && DIRTY=true
{
  echo "gpu_name=$GPU_NAME"
  echo "driver_version=$DRIVER"
  echo "cuda_version=$CUDA_VERSION"
  echo "nvcc_version=$NVCC_VERSION"
  echo "torch_cuda_version=$TORCH_CUDA"
  echo "compute_capability=$CC"
  echo "gpu_count=$GPU_COUNT"
  echo "git_commit=$COMMIT"
  echo "git_dirty=$DIRTY"
  echo "build_dir=$BUILD_DIR"
  echo "budget_s=$BUDGET"
} >"$LOGS/environment"
echo "check-gpu: $GPU_NAME (driver $DRIVER, CUDA $CUDA_VERSION, compute capability ${CC:-?}), commit ${COMMIT:0:12}; budget ${BUDGET} s"

# --- steps ---
T0=$EPOCHREALTIME
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", b - a }'; }
q() { printf '%q' "$1"; }

# run_step NAME LIMIT COMMAND: runs COMMAND (a bash command line) from the source folder with
# its output in LOGS/NAME/output.log, killed at min(LIMIT, what is left of the budget).
run_step() {
  local name=$1 cap=$2 cmd=$3 dir=$LOGS/$1
  mkdir -p "$dir"
  printf '%s\n' "$cmd" >"$dir/command"
  local left=$((BUDGET - $(elapsed)))
  local limit=$cap
  [ "$left" -lt "$limit" ] && limit=$left
  echo "$cap" >"$dir/limit_s"
  if [ "$limit" -lt 10 ]; then
    echo "not started: the check's ${BUDGET} s budget was spent" >"$dir/timed_out"
    printf 'check-gpu: %-19s not started (budget spent)\n' "$name"
    return
  fi
  echo "$limit" >"$dir/limit_s"
  printf 'check-gpu: %-19s limit %3d s: %s\n' "$name" "$limit" "$cmd"
  local t1=$EPOCHREALTIME
  (cd "$SRC" && timeout -k 10 "$limit" bash -c "$cmd") >"$dir/output.log" 2>&1 </dev/null
  local rc=$?
  echo "$rc" >"$dir/exit_code"
  awk -v a="$t1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f\n", b - a }' >"$dir/seconds"
  printf 'check-gpu: %-19s exit %d after %s s\n' "$name" "$rc" "$(cat "$dir/seconds")"
}

skip_step() {
  mkdir -p "$LOGS/$1"
  printf '%s\n' "$2" >"$LOGS/$1/skipped"
}

B=$BUILD_DIR
BUILD_OK=1
if [ "$SKIP_BUILD" = 1 ]; then
  skip_step build "--skip-build: the binaries already in $B"
else
  ARCH=native
  [ -n "$CC" ] && ARCH=${CC//./}
  PREFIX_PATH=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
  if [ -z "$NVCC" ]; then
    build_cmd="echo 'check-gpu: no nvcc (CUDA toolkit): put it on PATH or set CUDACXX' >&2; exit 1"
  elif [ -z "$PREFIX_PATH" ]; then
    build_cmd="echo 'check-gpu: $PY cannot import torch: run make deps' >&2; exit 1"
  else
    build_cmd="cmake -S . -B $(q "$B") -G Ninja -DCMAKE_PREFIX_PATH=$(q "$PREFIX_PATH")"
    build_cmd+=" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache"
    build_cmd+=" -DPython3_EXECUTABLE=$(q "$PY") -DAUDIT_CUDA=ON -DCMAKE_CUDA_COMPILER=$(q "$NVCC")"
    build_cmd+=" -DCMAKE_CUDA_ARCHITECTURES=$(q "$ARCH")"
    build_cmd+=" && grep -q '^CMAKE_CUDA_COMPILER:[A-Z]*=/' $(q "$B/CMakeCache.txt")"
    build_cmd+=" && cmake --build $(q "$B") -j $(nproc)"
  fi
  run_step build "$BUILD_LIMIT" "$build_cmd"
  [ "$(cat "$LOGS/build/exit_code" 2>/dev/null)" = 0 ] || BUILD_OK=0
fi

A=$(q "$B/audit")
for s in "${STEPS[@]}"; do
  IFS='|' read -r name cap _ <<<"$s"
  dir=$LOGS/$name
  D=$(q "$dir")
  if [ -n "$ONLY" ] && [ -z "${SELECTED[$name]:-}" ]; then
    skip_step "$name" "not selected (--only $ONLY)"
    continue
  fi
  if [ "$BUILD_OK" = 0 ]; then
    skip_step "$name" "the build failed: not run on stale binaries"
    continue
  fi
  case "$name" in
    ctest-gpu)
      cmd="ctest --test-dir $(q "$B") -L gpu --output-on-failure --timeout 100"
      if [ "$GPU_COUNT" -lt 2 ]; then
        # The 2-rank NCCL case needs a GPU per rank: left out here, not counted as skipped.
        cmd+=" -E '^BenchCommGpu[.]'"
        echo "check-gpu: this machine has $GPU_COUNT GPU: the 2-rank NCCL case (BenchCommGpu, bench-comm-nccl) needs two and is not run"
      fi ;;
    bench-comm-nccl)
      if [ "$GPU_COUNT" -lt 2 ]; then
        skip_step "$name" "this machine has $GPU_COUNT GPU: the 2-rank NCCL case needs two (one per rank)"
        printf 'check-gpu: %-19s skipped: this machine has %s GPU, the 2-rank NCCL case needs two\n' "$name" "$GPU_COUNT"
        continue
      fi
      cmd="$A bench comm --nproc 2 --device cuda --model large --json-out $D/comm.json" ;;
    moe-gating-bench)
      cmd="$(q "$B/bench/audit_bench") --benchmark_filter='^BM_MoeGatingCuda'"
      cmd+=" --benchmark_out=$D/bench.json --benchmark_out_format=json" ;;
    replay-self-check)
      cmd="$A replay --self-check --device cuda --ledger $D/audit.db --json-out $D/replay.json" ;;
    bench-train)
      cmd="$A bench train --device cuda --model both --repeats 3 --json-out $D/bench.json" ;;
    replay-s1-8k)
      # Two layers, not "fit memory" (up to 4): the eager peer runs while this process still holds
      # its cached GPU memory, and 4 + 4 Qwen2.5-32B layers at 8192 tokens come near 141 GB.
      cmd="$A replay recipes/s1.toml --device cuda --compare-eager --set 'replay.seq_lens=[8192]' --layers 2"
      cmd+=" --ledger $D/audit.db --json-out $D/replay.json" ;;
    replay-deepseek-v3)
      cmd="$A replay recipes/deepseek-v3.toml --device cuda --ledger $D/audit.db --json-out $D/replay.json" ;;
    run-s1-mini)
      cmd="$A run recipes/s1-mini.toml --device cuda --set eval.seeds=1 --ledger $D/audit.db"
      cmd+=" --work-dir $D/work" ;;
  esac
  run_step "$name" "$cap" "$cmd"
done

echo
"$PY" "$SRC/ci/check_gpu_summary.py" --steps-dir "$LOGS" --out "$OUT" --table-out "$LOGS/table.txt"
rc=$?
if [ "$rc" -gt 1 ]; then
  echo "check-gpu: the summary (ci/check_gpu_summary.py with $PY) failed with exit $rc" >&2
  rc=1
fi
echo "check-gpu: summary in $OUT, each step's output in $LOGS/<step>/output.log"
exit $rc
