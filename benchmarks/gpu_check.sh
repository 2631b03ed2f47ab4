#!/usr/bin/env bash
# GPU check of pyrobust's CUDA kernels (issue 6), in one run on a machine with a GPU, most telling first:
#   1. build the extension with the CUDA kernels (pip install -e ., Hopper only unless TORCH_CUDA_ARCH_LIST
#      says otherwise) and require a GPU and pyrobust.backend("cuda") == "cuda";
#   2. run the CUDA tests: every device-parametrised test whose id names cuda (opcheck, gradcheck in
#      float64, torch.compile with aot_eager and inductor, autocast, values and gradients against the
#      reference, per dtype) and tests/kernels/test_cuda_kernels.py (every launch path of the kernels);
#   3. benchmark fwd+bwd of the fused losses against F.cross_entropy and the naive formulas (CSV), each
#      called from Python and replayed from a CUDA graph, and report each call's bandwidth as a share of
#      the GPU's peak, counting one read of the logits and one write of the gradient;
#   4. time one epoch of CIFAR-shaped ResNet-14 training (benchmarks/train_speed.py);
#   5. at one size, the fused losses against torch.compile of the log-space formulas;
#   6. the kernel tests again under compute-sanitizer: memcheck, and racecheck of the loss reductions.
# Needs torch with CUDA, nvcc, ninja, pytest, pandas; no internet. About 6-8 minutes on an H100.
#
# Usage: benchmarks/gpu_check.sh OUTDIR        (run from anywhere)
# Writes OUTDIR/gpu_check.log (everything), OUTDIR/build.log and OUTDIR/cuda.csv (the benchmark with the
# GPU's name and bandwidth columns: the table to commit as reports/bench/cuda.csv) and OUTDIR/cuda_compiled.csv
# (the fused ops against torch.compile of the formulas, one size). Each step has its own time limit, and
# all steps after the build share GPU_CHECK_BUDGET seconds (default 540, from the start): a step gets at
# most what is left, and one that cannot get 20 s is not run, so that the script ends, with its logs and
# CSVs, before a 10-minute limit on the command. Environment:
#   GPU_CHECK_SIZES="BxC ..."   benchmark sizes (default: 4096x10 8192x1000 8192x8192 4096x32000)
#   GPU_CHECK_SKIP="NAME ..."   steps not to run, for a rerun of what is missing: tests bench bandwidth
#                               train compiled memcheck racecheck
# Exit status: 0 only if every step ran and passed; later steps still run after a failed test or
# benchmark step.
set -uo pipefail

OUTDIR=${1:?usage: benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
cd "$(dirname "$0")/.."

export PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}  # one target keeps the build short
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
PYTHON=${PYTHON:-python3}  # the image's python3 is the one with CUDA torch
SIZES=${GPU_CHECK_SIZES:-"4096x10 8192x1000 8192x8192 4096x32000"}
# torch takes CUDA_HOME from the directory above the first nvcc on PATH, which is wrong where that nvcc
# is a wrapper script (/usr/local/bin/nvcc): name the toolkit that has the headers.
if [[ -z ${CUDA_HOME:-} ]]; then
    nvcc_dir=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
    for candidate in "$nvcc_dir" /usr/local/cuda /usr/local/cuda-*; do
        if [[ -f $candidate/include/cuda_runtime.h ]]; then
            export CUDA_HOME=$candidate
            break
        fi
    done
fi
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

exec > >(tee "$OUTDIR/gpu_check.log") 2>&1
failed=()

BUDGET=${GPU_CHECK_BUDGET:-540}
SKIP=" ${GPU_CHECK_SKIP:-} "
not_run=()

step() {  # step NAME TIMEOUT_S COMMAND...: run it within the budget, remember a failure
    local name=$1 limit=$2
    shift 2
    if [[ $SKIP == *" ${name%% *} "* ]]; then
        echo "=== $name: skipped (GPU_CHECK_SKIP)"
        return 0
    fi
    if [[ $name != build* ]]; then
        local left=$((BUDGET - SECONDS))
        if ((left < 20)); then
            echo "=== $name: not run, ${left}s of the ${BUDGET}s budget left"
            not_run+=("$name")
            return 1
        fi
        ((limit > left)) && limit=$left
    fi
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
    [[ $rc == 0 ]] || failed+=("$name (exit $rc)")
    return "$rc"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv || true
    "$PYTHON" -c 'import sys, torch; print("python", sys.version.split()[0], "| torch", torch.__version__,
"| CUDA", torch.version.cuda, "|", torch.cuda.get_device_name(), torch.cuda.get_device_capability())'
    nvcc --version | tail -n 2
    echo "CUDA_HOME=${CUDA_HOME:-unset} TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST MAX_JOBS=$MAX_JOBS"
    git rev-parse HEAD 2>/dev/null && git status --short | head -n 20
}

# 1. Build. Without the CUDA kernels nothing after this means anything: stop here. Where pip cannot make
#    an editable install (a setuptools without bdist_wheel, say), build the extension in place instead:
#    PYTHONPATH finds the package either way.
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ! step build 240 bash -c "'$PYTHON' -m pip install --no-deps --no-build-isolation -v -e . > '$OUTDIR/build.log' 2>&1"; then
    tail -n 20 "$OUTDIR/build.log"
    if ! step build_inplace 240 bash -c "'$PYTHON' setup.py build_ext --inplace >> '$OUTDIR/build.log' 2>&1"; then
        tail -n 60 "$OUTDIR/build.log"
        echo "gpu_check: the build failed; see $OUTDIR/build.log"
        exit 1
    fi
    failed=()  # the in-place build stands in for the editable install
fi
# Everything after the build needs the GPU itself: without one every CUDA test would be skipped, which
# must not read as a pass.
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: built, but torch sees no CUDA device: nothing else can run here"
    exit 1
fi
backend=$("$PYTHON" -c 'import pyrobust; print(pyrobust.backend("cuda"))' 2>&1 | tail -n 1)
echo "pyrobust.backend(\"cuda\") = $backend"
if [[ $backend != cuda ]]; then
    echo "gpu_check: expected the compiled CUDA kernels, got '$backend'"
    exit 1
fi

# 2. CUDA tests (the CPU half runs in CI). pytest exits 5 when nothing was selected: a failure here too.
tests=(tests/kernels/test_ops.py tests/kernels/test_cuda_kernels.py)
[[ -d tests/losses ]] && tests+=(tests/losses)
step tests 180 "$PYTHON" -m pytest -q -rs -k cuda "${tests[@]}"

# 3. Benchmark, one process per size so that a slow size costs only itself; then bandwidth against the
#    GPU's peak, merged into one CSV.
for size in $SIZES; do
    step "bench $size" 150 "$PYTHON" benchmarks/kernels.py --device cuda --dtype float32 bfloat16 \
        --sizes "$size" --no-compile --repeats 7 --warmup 0.25 --out "$SCRATCH/bench_$size.csv"
done
if compgen -G "$SCRATCH/bench_*.csv" > /dev/null; then
    step bandwidth 60 "$PYTHON" - "$OUTDIR/cuda.csv" "$SCRATCH"/bench_*.csv <<'EOF'
"""Bandwidth of each call: one read of the logits and one write of the gradient per fwd+bwd, from the time
replayed from a CUDA graph (the GPU's own time) and, for comparison, called from Python."""
import sys

import pandas as pd
import torch

# Peak DRAM bandwidth (bytes/s) from the vendors' data sheets, by a substring of the device name.
PEAK = [("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12),
        ("A100-SXM4-80GB", 2.039e12), ("A100 80GB PCIe", 1.935e12), ("A100", 1.555e12)]


def measured_copy_bandwidth() -> float:
    """Best device-to-device copy of 1 GiB: what a plain streaming kernel reaches on this GPU."""
    x = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    y = torch.empty_like(x)
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        y.copy_(x)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * x.numel() * x.element_size() / min(times)


dst, *sources = sys.argv[1:]
name = torch.cuda.get_device_name()
spec = next((bw for key, bw in PEAK if key in name), float("nan"))
copy = measured_copy_bandwidth()
df = pd.concat([pd.read_csv(src) for src in sources], ignore_index=True)
df = df.sort_values(["dtype", "C", "method"], kind="stable")
df.insert(0, "gpu", name)
itemsize = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
df["min_bytes"] = 2 * df.B * df.C * df.dtype.map(itemsize)  # read logits once, write the gradient once
df["GBps"] = df.min_bytes / (df.graph_ms / 1e3) / 1e9
df["pct_of_peak"] = 100 * df.GBps * 1e9 / spec
df["pct_of_copy"] = 100 * df.GBps * 1e9 / copy
df["eager_pct_of_peak"] = 100 * df.min_bytes / (df.median_ms / 1e3) / spec
df["copy_GBps"] = copy / 1e9
df.to_csv(dst, index=False)

print(f"{name}: data-sheet peak {spec / 1e9:.0f} GB/s, measured copy {copy / 1e9:.0f} GB/s")
cols = ["dtype", "B", "C", "method", "median_ms", "graph_ms", "GBps", "pct_of_peak", "pct_of_copy", "eager_pct_of_peak"]
print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
key = ["dtype", "B", "C"]
for column in ("graph_ms", "median_ms"):
    ms = df.pivot_table(index=key, columns="method", values=column)
    for fused in ("fused_forward", "fused_backward"):
        naive = fused.replace("fused", "naive")
        if fused in ms and "cross_entropy" in ms:
            ratio = (ms[fused] / ms.cross_entropy).round(3).to_string()
            print(f"\n{fused} / cross_entropy, {column} (target < 1):\n{ratio}")
        if fused in ms and naive in ms:
            ratio = (ms[naive] / ms[fused]).round(1).to_string()
            print(f"\n{naive} / {fused}, {column} (target >= 50 at C = 32000):\n{ratio}")
EOF
fi

# 4. Training speed (the trainer's benchmark).
if [[ -f benchmarks/train_speed.py ]]; then
    step train 180 "$PYTHON" benchmarks/train_speed.py --cuda-only
fi

# 5. The strongest thing a user would write instead: torch.compile (inductor) of the O(C) log-space
#     formulas, at one size (compiling every size would take most of the time budget).
step compiled 240 "$PYTHON" benchmarks/kernels.py --device cuda --dtype float32 --sizes 8192x1000 \
    --out "$OUTDIR/cuda_compiled.csv"
# 6. Every launch path once more under compute-sanitizer's memcheck (out-of-bounds or misaligned
#     accesses), with torch's caching allocator off so that each tensor is its own allocation.
SANITIZER=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
if [[ -x $SANITIZER ]]; then
    step memcheck 240 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool memcheck --error-exitcode 99 \
        --print-limit 20 "$PYTHON" -m pytest -q -x tests/kernels/test_cuda_kernels.py \
        -k "launch_paths or misaligned or scale_grad or reduc or no_rows"
    # shared-memory hazards of the block-wide reductions (a missing barrier shows here, not in memcheck)
    step racecheck 120 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool racecheck --error-exitcode 99 \
        --print-limit 20 "$PYTHON" -m pytest -q -x tests/kernels/test_cuda_kernels.py -k "many_blocks or no_rows"
else
    echo "=== memcheck: skipped, compute-sanitizer not found"
fi


echo
if ((${#not_run[@]})); then
    echo "gpu_check: NOT RUN for lack of time: ${not_run[*]} (rerun with GPU_CHECK_SKIP naming what passed)"
fi
if ((${#failed[@]} + ${#not_run[@]})); then
    echo "gpu_check: FAILED: ${failed[*]} (logs in $OUTDIR)"
    exit 1
fi
echo "gpu_check: all steps passed (logs and CSVs in $OUTDIR)"
