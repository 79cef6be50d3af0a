#!/usr/bin/env bash
# Build trm (Release) and run the quickstart example:   bash tools/demo.sh [quickstart args]
# Installs missing Debian packages first (as root; see tools/install_deps.sh).
# Environment: TRM_BUILD_DIR (default: build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tools/install_deps.sh

build_dir="${TRM_BUILD_DIR:-build}"
if [ ! -f examples/quickstart.cpp ]; then
    echo "trm: ERROR: examples/quickstart.cpp does not exist (yet), so there is no quickstart demo to build." >&2
    exit 1
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DTRM_BUILD_EXAMPLES=ON
cmake --build "$build_dir" --target quickstart -j"$(nproc)"

exe="$build_dir/examples/quickstart"
if [ ! -x "$exe" ]; then
    echo "trm: ERROR: $exe was not produced by the build." >&2
    exit 1
fi
echo "trm: running $exe $*"
exec "$exe" "$@"
