#!/usr/bin/env bash
# Make sure the Debian packages trm's build, tests, examples and demo need are
# installed. Installs only what is missing (checked with `dpkg -s`); needs root
# for that. Used by tools/test.sh and tools/demo.sh; can be run on its own.
set -euo pipefail

# clang, libclang-rt-dev (libFuzzer and the sanitizer runtimes) and llvm (llvm-symbolizer, for
# readable sanitizer stack traces): tools/fuzz.sh and tools/sanitize.sh, which tools/test.sh runs.
TRM_DEB_PACKAGES=(cmake g++ make libeigen3-dev doctest-dev libbenchmark-dev
                  libopenblas-dev libcli11-dev nlohmann-json3-dev pkg-config gnuplot-nox
                  clang libclang-rt-dev llvm)

if ! command -v dpkg >/dev/null 2>&1; then
    echo "trm: dpkg not found (not Debian/Ubuntu?): cannot check packages." >&2
    echo "trm: make sure the equivalents of these are installed: ${TRM_DEB_PACKAGES[*]}" >&2
    exit 0
fi

missing=()
for pkg in "${TRM_DEB_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "trm: all required Debian packages are installed."
    exit 0
fi

install_cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
echo "trm: missing Debian packages: ${missing[*]}"

if [ "$(id -u)" -ne 0 ]; then
    echo "trm: ERROR: not running as root, so they cannot be installed automatically." >&2
    echo "trm: run this as root (or with sudo), then re-run this script:" >&2
    echo "    $install_cmd" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "trm: ERROR: apt-get not found; install these packages by hand: ${missing[*]}" >&2
    exit 1
fi

echo "trm: installing: ${missing[*]}"
if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }; then
    echo "trm: ERROR: apt-get failed. Fix the problem above and run:" >&2
    echo "    $install_cmd" >&2
    exit 1
fi
echo "trm: packages installed."
