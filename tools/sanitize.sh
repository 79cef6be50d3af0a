#!/usr/bin/env bash
# Sanitizer builds of the test suite:   bash tools/sanitize.sh [asan|tsan ...]   (default: both)
#
# 1. asan: clang, -O1, AddressSanitizer + UndefinedBehaviorSanitizer with float-cast-overflow
#    (float-to-int conversions out of range; not part of GCC's -fsanitize=undefined), every report
#    fatal (-fno-sanitize-recover=all). Builds every doctest executable (tests/test_*.cpp) and the
#    docs/API.md tutorial and runs their CTest tests; with TRM_SAN_CLI=1 also the `trm` command line
#    and its CLI tests (apps/trm/tests.cmake).
#    Left out: the CLI by default (its 6 translation units took 650 s of CPU time to build, about
#    as much as the 17 doctest files; its 53 tests then run in 5 s and passed clean, 2026-12-02),
#    examples (smoke tests, 4 more TUs),
#    consumer_* (packaging: they build separate projects), compile_fail_* (clang -fsyntax-only,
#    nothing runs) and CUDA (ASan does not see device memory).
# 2. tsan: clang, -O1, ThreadSanitizer, on the tests that run threads: tests/test_cpu_parallel.cpp
#    (the CPU pool include/trm/backend/cpu_pool.hpp), the concurrent const-model solvers of
#    tests/test_model_values.cpp and the concurrent const-layer forwards of tests/test_nn_forward.cpp.
#    Built with -DTRM_USE_OPENBLAS=OFF: OpenBLAS is not instrumented, so TSan would not see its
#    memory accesses (and its own pthread pool synchronises through spin loops TSan cannot model);
#    with Eigen's GEMM every access the tests make is instrumented.
#
# Exits non-zero on any sanitizer report or test failure; prints the time of each phase.
# Environment: TRM_ASAN_BUILD_DIR (default build-asan), TRM_TSAN_BUILD_DIR (default build-tsan),
#              TRM_SAN_JOBS (parallel compile and ctest jobs, default nproc),
#              TRM_SAN_CLI=1: build the `trm` CLI under ASan + UBSan and run its tests too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

jobs="${TRM_SAN_JOBS:-$(nproc)}"
phases=("$@")
((${#phases[@]})) || phases=(asan tsan)

timed() {  # timed LABEL CMD...: runs CMD, prints its wall and CPU time (CPU time: on a shared
    # machine the wall time says little; on an idle one the build's wall time is about CPU/jobs)
    local label=$1 rc=0
    shift
    local TIMEFORMAT="trm-sanitize: $label: %0R s wall, %0U s user + %0S s sys"
    time { "$@" || rc=$?; }
    return $rc
}

# Every sanitizer writes its reports to files under the build directory (log_path) as well as
# failing the process: a CTest test that passes on a regular expression (the CLI tests) or expects
# a non-zero exit ignores the exit status, and a leak is reported only at exit, after the output a
# test checks. check_reports fails the phase when any report file exists.
check_reports() {  # check_reports DIR
    local files=("$1"/report.*)
    [[ -e ${files[0]} ]] || return 0
    echo "trm-sanitize: ${#files[@]} sanitizer report(s) in $1:" >&2
    for f in "${files[@]}"; do
        echo "---- $f" >&2
        head -n 60 "$f" >&2
    done
    return 1
}

# The tests left out of the asan phase (see the header), by name: not every example test has the
# label `example`.
san_ctest_exclude='example_|consumer_|compile_fail_'

asan() {
    local dir="${TRM_ASAN_BUILD_DIR:-build-asan}"
    # -O1: ASan's usual level (a fraction of -O0's run time, stack traces still readable).
    # -gline-tables-only: file:line in reports at a fraction of -g's compile and link time.
    # EIGEN_NO_DEBUG: Eigen's per-coefficient bounds asserts would double the run time; ASan checks
    # the same heap accesses. trm's own assert()s stay on (no NDEBUG).
    # TRM_NATIVE=OFF: otherwise the CLI gets -O3 -march=native after these flags.
    timed "asan configure" cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_COMPILER=clang++ -DTRM_BUILD_TESTS=ON -DTRM_BUILD_EXAMPLES=ON -DTRM_NATIVE=OFF \
        -DTRM_ENABLE_CUDA=OFF "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DEIGEN_NO_DEBUG" \
        "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer" \
        -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined || return 1
    # Only what the tests run: the doctest executables, the tutorial and the CLI (not the examples).
    local targets=(docs_api_tutorial) exclude=$san_ctest_exclude
    if [[ ${TRM_SAN_CLI:-0} == 1 ]]; then
        targets+=(trm_cli)
    else
        exclude+='|trm_cli_'
    fi
    for src in tests/test_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
    timed "asan build" cmake --build "$dir" -j"$jobs" --target "${targets[@]}" || return 1
    local logs="$PWD/$dir/sanitizer-reports"
    rm -rf "$logs" && mkdir -p "$logs"
    local rc=0
    # ASan: leaks at exit, initialisation-order bugs between translation units (strict: any
    # dynamic initialiser reading a global of a later one), use of a stack frame after its return.
    # UBSan: a stack trace for each report. Both stop at the first report.
    # TRM_GRADCHECK_STRIDE=8: the finite-difference gradient checks probe every 8th element
    # (tests/support/gradcheck.hpp); probing all of them takes test_nn_gradcheck over 14 minutes.
    ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:log_path=$logs/report" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1:log_path=$logs/report" \
    TRM_GRADCHECK_STRIDE=8 \
        timed "asan run" ctest --test-dir "$dir" -j"$jobs" -E "^($exclude)" \
        --output-on-failure || rc=1
    check_reports "$logs" || rc=1
    return $rc
}

# The threaded tests and, for the two files whose other tests are single-threaded, the doctest
# filter that picks the concurrent ones (TSan slows code down 5-15x; the rest adds nothing there).
tsan_tests=(
    "test_cpu_parallel"
    "test_model_values -tc=a const Model is shared by solvers*,solvers on three threads*"
    "test_nn_forward -tc=A const Block runs on two threads*"
)

tsan_run() {  # tsan_run BUILD_DIR REPORT_DIR
    local rc=0
    for t in "${tsan_tests[@]}"; do
        local exe=${t%% *} filter=
        [[ $t == *" "* ]] && filter=${t#* }
        echo "trm-sanitize: tsan: $exe ${filter}"
        # halt_on_error: the first race fails the test; second_deadlock_stack: both stacks of a
        # lock-order inversion.
        TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$2/report" \
            "$1/tests/$exe" ${filter:+"$filter"} || rc=1
    done
    return $rc
}

tsan() {
    local dir="${TRM_TSAN_BUILD_DIR:-build-tsan}"
    timed "tsan configure" cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_COMPILER=clang++ -DTRM_BUILD_TESTS=ON -DTRM_BUILD_EXAMPLES=OFF -DTRM_USE_OPENBLAS=OFF \
        -DTRM_ENABLE_CUDA=OFF "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DEIGEN_NO_DEBUG" \
        "-DCMAKE_CXX_FLAGS=-fsanitize=thread -fno-omit-frame-pointer" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread || return 1
    local targets=()
    for t in "${tsan_tests[@]}"; do targets+=("${t%% *}"); done
    timed "tsan build" cmake --build "$dir" -j"$jobs" --target "${targets[@]}" || return 1
    local logs="$PWD/$dir/sanitizer-reports"
    rm -rf "$logs" && mkdir -p "$logs"
    local rc=0
    timed "tsan run" tsan_run "$dir" "$logs" || rc=1
    check_reports "$logs" || rc=1
    return $rc
}

status=0
for phase in "${phases[@]}"; do
    case $phase in
        asan | tsan) "$phase" || { echo "trm-sanitize: $phase FAILED" >&2; status=1; } ;;
        *) echo "usage: bash tools/sanitize.sh [asan|tsan ...]" >&2; exit 2 ;;
    esac
done
((status == 0)) && echo "trm-sanitize: no sanitizer reports, all tests passed"
exit $status
