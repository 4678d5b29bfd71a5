#!/usr/bin/env bash
# The GPU check of the ILGPU backend (issue 21, docs/accelerators.md), in two halves:
#
#   scripts/gpu-check.sh --prepare   on a build machine (has the .NET SDK): publishes signal-edge for linux-x64 and packs
#                                     it, with the .NET runtime that runs it, into .gpu/ (ignored by git, ~45 MB).
#   scripts/gpu-check.sh             on the GPU machine (no SDK there; the project's tree with .gpu/ copied over):
#                                     unpacks, then runs, each step bounded by a timeout, writing logs and JSON to
#                                     ${OUT:-./gpu-check-out}:
#                                       1. nvidia-smi and `signal-edge info` (the devices ILGPU finds);
#                                       2. `selftest --accelerator cuda`: the golden PyTorch models batched on the GPU, and
#                                          every supported model kind against the SIMD path within 1e-5;
#                                       3. `bench models --accelerator cuda --json`: a one-layer LSTM at batches 1k-256k and
#                                          hidden 128-1,024 on the GPU and on every core (SIMD) in the same run;
#                                       4. the same at small batches (128-2,048 streams, hidden 64 and 128): the crossover
#                                          behind `auto`;
#                                       5. `bench train --accelerator cuda --json`: one training epoch, GPU vs CPU trainer.
# The whole run took 1.5 minutes on an H200 with 16 cores (docs/accelerators.md has its figures). Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=.gpu

if [[ "${1:-}" == "--prepare" ]]; then
    set -e
    rm -rf "$GPU_DIR" /tmp/signal-gpu-publish /tmp/signal-gpu-dotnet
    mkdir -p "$GPU_DIR"
    dotnet publish src/Signal.Edge/Signal.Edge.csproj -c Release -r linux-x64 --self-contained false -o /tmp/signal-gpu-publish -v quiet
    root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
    mkdir -p /tmp/signal-gpu-dotnet/shared
    cp -a "$root/dotnet" "$root/host" /tmp/signal-gpu-dotnet/
    cp -a "$root/shared/Microsoft.NETCore.App" "$root/shared/Microsoft.AspNetCore.App" /tmp/signal-gpu-dotnet/shared/
    tar -C /tmp -cJf "$GPU_DIR/dotnet.tar.xz" --transform 's,^signal-gpu-dotnet,dotnet,' signal-gpu-dotnet
    tar -C /tmp -cJf "$GPU_DIR/app.tar.xz" --transform 's,^signal-gpu-publish,app,' signal-gpu-publish
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    du -sh "$GPU_DIR"/*
    echo "prepared: copy the tree with $GPU_DIR/ to the GPU machine and run scripts/gpu-check.sh there"
    exit 0
fi

OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
[[ -f "$GPU_DIR/app.tar.xz" && -f "$GPU_DIR/dotnet.tar.xz" ]] || { echo "error: $GPU_DIR/ is missing; run scripts/gpu-check.sh --prepare on a build machine first"; exit 2; }
work=/tmp/signal-gpu
rm -rf "$work"; mkdir -p "$work"
tar -C "$work" -xJf "$GPU_DIR/dotnet.tar.xz"
tar -C "$work" -xJf "$GPU_DIR/app.tar.xz"
export DOTNET_ROOT="$work/dotnet" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
EDGE=("$work/dotnet/dotnet" "$work/app/signal-edge.dll")

failed=0
step() { # step NAME SECONDS COMMAND...
    local name="$1" limit="$2"; shift 2
    echo "=== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    tail -n "${TAIL:-40}" "$OUT/$name.log"
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
    [[ $rc -eq 0 ]] || failed=1
}

step gpu 20 nvidia-smi
step info 60 "${EDGE[@]}" info
step selftest 240 "${EDGE[@]}" selftest --accelerator cuda --golden tests/reference/golden
step bench-models 300 "${EDGE[@]}" bench models --accelerator cuda --json --seconds "${BENCH_SECONDS:-0.5}" ${BENCH_ARGS:-}
TAIL=20 step bench-crossover 120 "${EDGE[@]}" bench models --accelerator cuda --batches 128,256,512,1024,2048 --hidden 64,128 --seconds "${BENCH_SECONDS:-0.5}"
if "${EDGE[@]}" bench --help 2>&1 | grep -q '^ *train'; then
    step bench-train 300 "${EDGE[@]}" bench train --accelerator cuda --json ${TRAIN_ARGS:-}
fi
echo "gpu-check: $([[ $failed -eq 0 ]] && echo passed || echo FAILED)"
exit $failed
