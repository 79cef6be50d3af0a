#!/usr/bin/env bash
# Everything that needs a GPU, in one run of at most ~8 minutes on a GPU machine (docs/CUDA.md):
#   1. the GPU binaries: test_backend_cuda, test_model_cuda (every op, layer and whole model on
#      trm::cuda against the CPU and the fixtures), cuda_nvcc_model_cuda (a training call and a solve),
#      bench_cuda (benchmarks/bench_cuda.cu), and the launcher; taken from $TRM_GPU_BIN (built on a CPU machine by `bash tools/gpu_check.sh
#      --build-only` and carried with the working tree) or configured and built here;
#   2. every GPU test (doctest), with a time limit each;
#   3. the GPU benchmarks (JSON);
#   4. the PyTorch reference on the same GPU in the same run (tools/bench_reference_gpu.py: bf16 as
#      the official recipe, eager and torch.compile);
#   5. one table last: ours (fp32, bf16 GEMMs) beside PyTorch (eager, compiled), sample-steps/s, the
#      speed-up over the faster PyTorch, and the fraction of the GPU's measured bf16 GEMM rate.
# Results go to $OUT (the device tool's output folder) or /tmp/gpu_check.
#
#   bash tools/gpu_check.sh --build-only     # on the CPU machine: build-gpu/bin (about 10 min on 2 cores, ~6 MB)
#   bash tools/gpu_check.sh                  # on the GPU machine
# Environment: TRM_GPU_BIN (default build-gpu/bin), TRM_GPU_ARCH (default 90), TRM_GPU_QUICK=1
# (the smaller benchmark set), TRM_GPU_SKIP_TORCH=1.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
bin=${TRM_GPU_BIN:-$root/build-gpu/bin}
targets=(trm_gpu_launcher test_backend_cuda test_model_cuda cuda_nvcc_model_cuda bench_cuda)

build() {
    local dir=$root/build-gpu
    cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DTRM_ENABLE_CUDA=ON -DTRM_BUILD_TESTS=ON \
          -DTRM_BUILD_BENCHMARKS=ON -DTRM_BUILD_EXAMPLES=OFF -DTRM_USE_OPENBLAS=OFF \
          -DCMAKE_CUDA_ARCHITECTURES="${TRM_GPU_ARCH:-90}" >"$out/configure.log" 2>&1 ||
        { tail -20 "$out/configure.log"; return 1; }
    cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}" >"$out/build.log" 2>&1 || { grep -m5 -A5 error "$out/build.log"; return 1; }
    mkdir -p "$dir/bin"
    cp "$dir/tests/trm_gpu_launcher" "$dir/tests/test_backend_cuda" "$dir/tests/test_model_cuda" "$dir/tests/cuda_nvcc_model_cuda" \
       "$dir/benchmarks/bench_cuda" "$dir/bin/"
    strip "$dir/bin/"* 2>/dev/null || true
    # Libraries a GPU machine may lack (not CUDA's, not the C/C++ runtime): carried beside the binaries.
    # (Without OpenBLAS: the CPU side of the comparisons uses Eigen's GEMM, and the carry stays small.)
    mkdir -p "$dir/bin/lib"
    for f in "$dir/bin/"*; do
        [[ -f $f ]] || continue
        ldd "$f" | awk '/=> \// {print $3}' | grep -Ev '/(libc|libm|libgcc_s|libstdc\+\+|libpthread|libdl|librt|ld-linux[^/]*)\.so|/libcu|/libnv' |
            xargs -r -I{} cp -L {} "$dir/bin/lib/"
    done
    echo "gpu_check: built ${targets[*]} into $dir/bin ($(du -sh "$dir/bin" | cut -f1))"
}

if [[ ${1:-} == --build-only ]]; then
    build
    exit $?
fi

start=$(date +%s)
status=0
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; nvcc --version | tail -1 || true; } | tee "$out/gpu.txt"

if [[ ! -x $bin/test_model_cuda ]]; then
    echo "gpu_check: no binaries in $bin: building (TRM_GPU_ARCH=${TRM_GPU_ARCH:-90})"
    build || exit 1
    bin=$root/build-gpu/bin
fi
echo "gpu_check: binaries from $bin ($(( $(date +%s) - start )) s)"

export TRM_TEST_DATA_DIR=$root/tests/data
export LD_LIBRARY_PATH=$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for t in cuda_nvcc_model_cuda test_backend_cuda test_model_cuda; do
    [[ -x $bin/$t ]] || { echo "gpu_check: no $bin/$t"; status=1; continue; }
    echo "=== $t"
    args=(--duration=true)
    [[ $t == cuda_* ]] && args=()
    timeout 180 "$bin/$t" "${args[@]}" >"$out/$t.log" 2>&1
    rc=$?
    tail -4 "$out/$t.log"
    grep -E "MESSAGE|vs CPU|bf16 GEMMs|worst" "$out/$t.log" | head -40 >"$out/$t.messages.txt" || true
    if ((rc != 0)); then
        echo "gpu_check: $t FAILED (exit $rc); see $out/$t.log"
        grep -B3 -A12 "ERROR" "$out/$t.log" | head -80
        status=1
    fi
done
echo "gpu_check: tests done ($(( $(date +%s) - start )) s)"

filter='.*'
[[ ${TRM_GPU_QUICK:-0} == 1 ]] && filter='gemm|train/mlp/cuda_bf16/batch:768|train/att/cuda_bf16/batch:64|infer/mlp/cuda_bf16'
echo "=== bench_cuda"
timeout 240 "$bin/bench_cuda" --benchmark_filter="$filter" --benchmark_format=json --benchmark_out="$out/bench_cuda.json" \
    --benchmark_out_format=json >"$out/bench_cuda.txt" 2>&1 || { echo "gpu_check: bench_cuda failed or timed out"; tail -5 "$out/bench_cuda.txt"; status=1; }
echo "gpu_check: benchmarks done ($(( $(date +%s) - start )) s)"

if [[ ${TRM_GPU_SKIP_TORCH:-0} != 1 ]]; then
    echo "=== PyTorch reference (bf16, eager and torch.compile)"
    timeout 300 python3 tools/bench_reference_gpu.py --cases train/mlp/768,train/att/64,infer/mlp/768,infer/att/64 \
        --compile both --iters 3 --timeout 150 | tee "$out/torch.jsonl" || status=1
fi
echo "gpu_check: PyTorch done ($(( $(date +%s) - start )) s)"

python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
ours = {}
try:
    for b in json.load(open(os.path.join(out, "bench_cuda.json")))["benchmarks"]:
        ours[b["name"].rsplit("/manual_time", 1)[0]] = b
except Exception as e:  # noqa: BLE001
    print("no bench_cuda.json:", e)
torch = {}
if os.path.exists(os.path.join(out, "torch.jsonl")):
    for line in open(os.path.join(out, "torch.jsonl")):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        torch[(r["case"], bool(r.get("compiled")))] = r
bf16 = next((b.get("FLOP/s") for n, b in ours.items() if n.startswith("gemm/bf16")), None)
fp32 = next((b.get("FLOP/s") for n, b in ours.items() if n.startswith("gemm/fp32")), None)
print()
if bf16: print(f"measured GEMM rates: bf16 {bf16 / 1e12:.0f} TFLOP/s, fp32 {fp32 / 1e12 if fp32 else 0:.0f} TFLOP/s (8192^3, cuBLAS)")
print(f"{'case':18s} {'ours fp32':>10s} {'ours bf16':>10s} {'torch':>10s} {'torch.comp':>10s} {'vs best torch':>13s} {'%bf16 peak':>10s}   (sample-steps/s)")
for case in ["train/mlp/256", "train/mlp/768", "train/att/64", "train/att/128", "infer/mlp/768", "infer/att/64"]:
    what, model, b = case.split("/")
    def rate(backend):
        r = ours.get(f"{what}/{model}/{backend}/batch:{b}")
        return (r.get("sample_steps/s"), r.get("pct_of_bf16")) if r and "error_occurred" not in r else (None, None)
    o32, _ = rate("cuda")
    o16, pct = rate("cuda_bf16")
    te = torch.get((case, False), {}).get("sample_steps_per_s")
    tc = torch.get((case, True), {}).get("sample_steps_per_s")
    best_t = max([x for x in (te, tc) if x] or [0])
    best_o = max([x for x in (o32, o16) if x] or [0])
    f = lambda x: f"{x:10.0f}" if x else f"{'-':>10s}"
    ratio = f"{best_o / best_t:12.2f}x" if best_t and best_o else f"{'-':>13s}"
    print(f"{case:18s} {f(o32)} {f(o16)} {f(te)} {f(tc)} {ratio} {pct if pct else 0:9.1f}%")
errors = [r for r in torch.values() if "error" in r]
for r in errors: print("torch error:", r["case"], "compiled" if r.get("compiled") else "eager", r["error"][:300])
EOF
echo "gpu_check: finished in $(( $(date +%s) - start )) s, status $status"
exit $status
