#!/usr/bin/env bash
# The main command:   bash tools/demo.sh
#
# Sets itself up (missing Debian packages, as root; see tools/install_deps.sh), builds the `trm`
# command line (Release), trains a small TRM (TRM-MLP, hidden 64, 2 layers, n=2, T=2, N_sup=4) on
# freshly generated 6x6 Sudoku puzzles on the CPU for a few minutes, evaluates it on 1,000
# generated puzzles it never trained on, solves a few on screen, and ends with the line
#   exact accuracy: X% (1000 puzzles)
# The whole command (set-up excluded) takes at most about 10 minutes on 2 cores: the training
# budget is what is left of 8.5 minutes after the build (at most 7 minutes, at least 2).
#
# Environment: TRM_BUILD_DIR (default: build), TRM_DEMO_DIR (default: <build>/demo),
# TRM_DEMO_SEED (default: 0), TRM_DEMO_MINUTES (training minutes; default: as above).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tools/install_deps.sh

start=$(date +%s)
build_dir="${TRM_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DTRM_BUILD_EXAMPLES=ON >/dev/null
echo "trm: building the trm command line in $build_dir (the first build takes a few minutes) ..."
cmake --build "$build_dir" --target trm_cli -j"$(nproc)"
trm="$build_dir/bin/trm"
if [ ! -x "$trm" ]; then
    echo "trm: ERROR: $trm was not produced by the build." >&2
    exit 1
fi

work="${TRM_DEMO_DIR:-$build_dir/demo}"
seed="${TRM_DEMO_SEED:-0}"
mkdir -p "$work"
rm -rf "$work/run"

if [ -n "${TRM_DEMO_MINUTES:-}" ]; then
    minutes="$TRM_DEMO_MINUTES"
else
    elapsed=$(( $(date +%s) - start ))
    minutes=$(awk -v e="$elapsed" 'BEGIN { m = 8.5 - e / 60; if (m > 7) m = 7; if (m < 2) m = 2; printf "%.1f", m }')
fi

echo
echo "== 1,000 test puzzles (6x6, 20 blanks), never used for training"
"$trm" sudoku generate --box 2x3 --count 1000 --blanks 20 --seed 20251001 --out "$work/test.csv"

echo
echo "== training for $minutes minutes on fresh puzzles (seed $seed)"
"$trm" sudoku train --box 2x3 --minutes "$minutes" --seed "$seed" --holdout "$work/test.csv" --out "$work/run"

echo
echo "== solving three of the test puzzles"
head -n 3 "$work/test.csv" > "$work/three.csv"
"$trm" sudoku solve --checkpoint "$work/run/model.safetensors" --input "$work/three.csv"

echo
echo "== evaluating on the 1,000 test puzzles"
"$trm" sudoku eval --checkpoint "$work/run/model.safetensors" --input "$work/test.csv"
