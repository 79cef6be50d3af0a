#!/usr/bin/env bash
# Build trm and run the whole test suite:   bash tools/test.sh [extra cmake -D options]
#
# 1. installs missing Debian packages (as root; see tools/install_deps.sh),
# 2. configures build/ (Release, tests + examples; CUDA compile checks if nvcc is on PATH),
# 3. builds with all cores, 4. runs ctest --output-on-failure (every test, once),
# 5. when built with OpenBLAS on x86-64: runs the parity, trajectory and resume tests
#    (test_trm_parity, test_hrm_parity, test_trm_train; ~5-10 s each time) once more under each
#    OpenBLAS kernel set this CPU can execute: OPENBLAS_CORETYPE=Prescott (generic SSE), Haswell
#    (flags avx2 + fma in /proc/cpuinfo) and SkylakeX (avx512f + avx512bw). The GEMMs' summation
#    order depends on the kernel set, and the optimisers amplify last-bit differences of single
#    elements (tests/support/tolerances.hpp), so an AVX-512 CI machine also checks what an AVX2
#    laptop or a CPU that OpenBLAS does not know would compute. test_trm_parity fails if the kernels
#    in use are not the ones OPENBLAS_CORETYPE names (the tests never re-execute themselves).
# 6. the hardening checks (docs/RELIABILITY.md): tools/fuzz.sh (every libFuzzer harness, 60 s each,
#    in build-fuzz/) and tools/sanitize.sh (the doctests under ASan + UBSan, the threaded tests
#    under TSan, in build-asan/ and build-tsan/); clang comes from tools/install_deps.sh.
# Environment: TRM_BUILD_DIR (default: build); TRM_SKIP_FUZZ=1, TRM_SKIP_SANITIZE=1 leave step 6's
# parts out of a local run (CI runs both).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root=$(pwd)

bash tools/install_deps.sh

build_dir="${TRM_BUILD_DIR:-build}"
cuda_flag=-DTRM_ENABLE_CUDA=OFF
if command -v nvcc >/dev/null 2>&1; then
    echo "trm: nvcc found ($(command -v nvcc)): configuring with -DTRM_ENABLE_CUDA=ON (CUDA code is compiled; GPU tests are skipped without a GPU)."
    cuda_flag=-DTRM_ENABLE_CUDA=ON
else
    echo "trm: nvcc not on PATH: CUDA compile checks are skipped (-DTRM_ENABLE_CUDA=OFF)."
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
      -DTRM_BUILD_TESTS=ON -DTRM_BUILD_EXAMPLES=ON "$cuda_flag" "$@"
cmake --build "$build_dir" -j"$(nproc)"
cd "$build_dir"
ctest --output-on-failure

if grep -Eqi '^TRM_USE_OPENBLAS:BOOL=(ON|1|TRUE|YES|Y)$' CMakeCache.txt && [[ $(uname -m) == x86_64 ]]; then
    flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2 || true) "
    cores=(Prescott)
    [[ $flags == *" avx2 "* && $flags == *" fma "* ]] && cores+=(Haswell)
    [[ $flags == *" avx512f "* && $flags == *" avx512bw "* ]] && cores+=(SkylakeX)
    failed=()
    for core in "${cores[@]}"; do
        echo "trm: parity, trajectory and resume tests with OPENBLAS_CORETYPE=$core"
        OPENBLAS_CORETYPE=$core ctest -R '^(test_trm_parity|test_hrm_parity|test_trm_train|test_fit|test_crash_safety)$' --output-on-failure ||
            failed+=("$core")
    done
    if ((${#failed[@]})); then
        echo "trm: tests failed with OPENBLAS_CORETYPE=${failed[*]}" >&2
        exit 1
    fi
fi

cd "$repo_root"
if [[ ${TRM_SKIP_FUZZ:-0} != 1 ]]; then
    echo "trm: fuzzing every reader of untrusted input (tools/fuzz.sh)"
    bash tools/fuzz.sh
fi
if [[ ${TRM_SKIP_SANITIZE:-0} != 1 ]]; then
    echo "trm: the test suite under ASan + UBSan and the threaded tests under TSan (tools/sanitize.sh)"
    bash tools/sanitize.sh
fi
