#!/usr/bin/env bash
# Build trm and run the whole test suite:   bash tools/test.sh [extra cmake -D options]
#
# 1. installs missing Debian packages (as root; see tools/install_deps.sh),
# 2. configures build/ (Release, tests + examples; CUDA compile checks if nvcc is on PATH),
# 3. builds with all cores, 4. runs ctest --output-on-failure.
# Environment: TRM_BUILD_DIR (default: build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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
