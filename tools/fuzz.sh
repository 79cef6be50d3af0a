#!/usr/bin/env bash
# tools/fuzz.sh - build the libFuzzer harnesses (tests/fuzz) with clang and run each for a bounded
# time; exits non-zero on any finding (crash, sanitizer report, leak, timeout, out-of-memory, an
# escaped non-trm exception) and prints where the input that caused it was saved.
#
#   bash tools/fuzz.sh                                   # every harness, 60 s each (CI)
#   TRM_FUZZ_SECONDS=3600 bash tools/fuzz.sh             # the longer run: one hour each
#   TRM_FUZZ_HARNESSES="dataset npy" bash tools/fuzz.sh  # some of them
#   TRM_FUZZ_SECONDS=0 bash tools/fuzz.sh                # replay the committed corpora once, no fuzzing
#   build-fuzz/fuzz/fuzz_npy CRASH_FILE                  # re-run one saved input (after a run)
#
# Environment (defaults in brackets):
#   TRM_FUZZ_BUILD_DIR  clang build directory [build-fuzz]; relative paths are under the repository
#   TRM_FUZZ_SECONDS    fuzzing time per harness [60]
#   TRM_FUZZ_JOBS       harnesses run at once, and build jobs [nproc]
#   TRM_FUZZ_HARNESSES  which ones [safetensors npy dataset checkpoint cli_meta sudoku_csv maze arc]
#   TRM_FUZZ_MAX_LEN    largest input in bytes [4194304: a few MB, so size amplification shows]
#   TRM_FUZZ_RSS_MB     memory limit per harness process (also the malloc limit) [2048]
#   TRM_FUZZ_TIMEOUT    seconds one input may take before it counts as a hang [10]
#   TRM_FUZZ_WORK       where the scratch directory goes [/dev/shm if writable, else /tmp]
#   TRM_FUZZ_KEEP       1: keep the scratch directory (logs, new corpus) also after a clean run
#   CXX_FUZZ            the clang++ to build with [clang++]
#
# The committed corpora (tests/fuzz/corpus/<harness>) are copied to the scratch directory first and
# never modified; to keep new inputs the fuzzer found, merge them in by hand:
#   build-fuzz/fuzz/fuzz_npy -merge=1 tests/fuzz/corpus/npy <scratch>/npy/corpus
# The seeds named lib_* are written by the library itself: build-fuzz/fuzz/fuzz_make_seeds tests/fuzz/corpus
# Needs clang with libFuzzer (Debian: clang and libclang-rt-<version>-dev), cmake, Eigen and
# nlohmann-json (as the normal build). The build uses Eigen's GEMM (-DTRM_USE_OPENBLAS=OFF) so
# that every multiply is instrumented.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TRM_FUZZ_BUILD_DIR:-build-fuzz}
[[ $build = /* ]] || build=$root/$build
seconds=${TRM_FUZZ_SECONDS:-60}
jobs=${TRM_FUZZ_JOBS:-$(nproc)}
harnesses=${TRM_FUZZ_HARNESSES:-safetensors npy dataset checkpoint cli_meta sudoku_csv maze arc}
max_len=${TRM_FUZZ_MAX_LEN:-4194304}
rss_mb=${TRM_FUZZ_RSS_MB:-2048}
per_input=${TRM_FUZZ_TIMEOUT:-10}
cxx=${CXX_FUZZ:-clang++}
if [[ -n ${TRM_FUZZ_WORK:-} ]]; then work_base=$TRM_FUZZ_WORK
elif [[ -d /dev/shm && -w /dev/shm ]]; then work_base=/dev/shm  # fit's checkpoints fsync: cheap on tmpfs
else work_base=${TMPDIR:-/tmp}; fi

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "tools/fuzz.sh: $cxx not found; libFuzzer needs clang (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi

# Dictionaries per harness (libFuzzer takes one file: the parts are joined).
declare -A dicts=(
  [safetensors]="json safetensors" [npy]="npy" [dataset]="json npy dataset"
  [checkpoint]="json safetensors checkpoint" [cli_meta]="json safetensors checkpoint"
  [sudoku_csv]="csv" [maze]="csv" [arc]="json arc")

t0=$(date +%s)
cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug -DTRM_BUILD_FUZZERS=ON \
  -DTRM_BUILD_TESTS=OFF -DTRM_BUILD_EXAMPLES=OFF -DTRM_BUILD_BENCHMARKS=OFF -DTRM_USE_OPENBLAS=OFF >/dev/null
targets=()
for h in $harnesses; do targets+=("fuzz_$h"); done
# One make goal, so that the harnesses compile in parallel (several --target goals run one by one).
if [[ $harnesses = "safetensors npy dataset checkpoint cli_meta sudoku_csv maze arc" ]]; then
  cmake --build "$build" -j "$jobs" --target trm_fuzzers
else
  cmake --build "$build" -j "$jobs" --target "${targets[@]}"
fi
t1=$(date +%s)
echo "tools/fuzz.sh: built ${#targets[@]} harnesses in $((t1 - t0)) s"

work=$(mktemp -d "$work_base/trm-fuzz.XXXXXX")
run_one() {  # harness -> exit status of libFuzzer
  local h=$1 d=$work/$1
  mkdir -p "$d/corpus" "$d/artifacts" "$d/tmp"
  cp -r "$root/tests/fuzz/corpus/$h/." "$d/corpus/"
  chmod -R u+w "$d/corpus"
  : >"$d/dict"
  for part in ${dicts[$h]:-}; do cat "$root/tests/fuzz/$part.dict" >>"$d/dict"; done
  local args=(-max_len="$max_len" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" -timeout="$per_input"
              -artifact_prefix="$d/artifacts/" -print_final_stats=1)
  [[ -s $d/dict ]] && args+=(-dict="$d/dict")
  if [[ $seconds -gt 0 ]]; then
    args+=(-max_total_time="$seconds" "$d/corpus")
  else
    args+=(-runs=0 "$d/corpus")  # each committed input once
  fi
  # TMPDIR: the harness's scratch files (one directory per process) stay in the work directory.
  (cd "$d" && TMPDIR="$d/tmp" ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$build/fuzz/fuzz_$h" "${args[@]}" >"$d/log" 2>&1)
}

declare -A pid_of=()
status=0
for h in $harnesses; do
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
  run_one "$h" &
  pid_of[$h]=$!
done
declare -A rc=()
for h in $harnesses; do
  if wait "${pid_of[$h]}"; then rc[$h]=0; else rc[$h]=$?; fi
done
t2=$(date +%s)

printf '%-12s %-8s %12s %10s %10s\n' harness result executions exec/s corpus
for h in $harnesses; do
  log=$work/$h/log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(find "$work/$h/corpus" -type f | wc -l)
  if [[ ${rc[$h]} -eq 0 ]]; then result=ok; else result="FAIL(${rc[$h]})"; status=1; fi
  printf '%-12s %-8s %12s %10s %10s\n' "$h" "$result" "${execs:-?}" "${rate:-?}" "$units"
done
echo "tools/fuzz.sh: build $((t1 - t0)) s, runs $((t2 - t1)) s, total $((t2 - t0)) s ($seconds s per harness, $jobs at once)"

if [[ $status -ne 0 ]]; then
  for h in $harnesses; do
    [[ ${rc[$h]} -eq 0 ]] && continue
    echo "=== fuzz_$h failed (exit ${rc[$h]}); log: $work/$h/log"
    grep -E 'ERROR: |SUMMARY: |trm_fuzz: |Test unit written to|==[0-9]+== ?(ERROR|WARNING)' "$work/$h/log" | head -20 || true
    for f in "$work/$h"/artifacts/*; do
      [[ -e $f ]] && echo "  input: $f   (re-run: $build/fuzz/fuzz_$h $f)"
    done
  done
  echo "tools/fuzz.sh: FINDINGS; the scratch directory $work is kept"
  exit 1
fi
if [[ ${TRM_FUZZ_KEEP:-0} = 1 ]]; then echo "tools/fuzz.sh: scratch kept in $work"; else rm -rf "$work"; fi
