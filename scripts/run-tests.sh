#!/usr/bin/env bash
# Builds flowad and runs every test (CI runs exactly this, through .ci/run):
#   1. a Release build with the allocation-counting, command-line, example, long-run, packaging,
#      corpus-replay and real-data tests (real data is read from FLOWAD_SHARED, default ../shared beside
#      the source root);
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build that runs the whole unit suite (among it
#      the tests of everything that parses untrusted files: model files of every detector truncated at
#      every offset and bit-flipped, .npy/.npz, images, datasets) and replays the fuzz corpus
#      (fuzz/corpus) through the fuzz targets;
#   3. a ThreadSanitizer build (of the library and the [concurrency] test file) that runs eight
#      application threads scoring one loaded model of every detector kind, and inspecting images.
# With --peer (after scripts/install-deps.sh --peer), also the cross-checks against NumPy,
# scikit-learn, SciPy and PyTorch (ctest label cross-check).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
start=$SECONDS
stage() { echo "== $* (at $((SECONDS - start)) s)"; }
cross_checks=OFF
# The unit suite runs in stage 2, under the sanitizers; the Release build runs everything else (with
# --peer it builds the unit tests too: the cross-checks are among them).
release_unit_tests=OFF
if [[ "${1:-}" == "--peer" ]]; then cross_checks=ON release_unit_tests=ON; fi

stage "Release build and tests"
# Every build here compiles the library as a unity build (FLOWAD_UNITY_BUILD: half the time); the
# packaging test that adds flowad with add_subdirectory compiles it file by file, as users do.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DFLOWAD_UNITY_BUILD=ON -DFLOWAD_BUILD_UNIT_TESTS=$release_unit_tests \
      -DFLOWAD_CROSS_CHECKS=$cross_checks
cmake --build build -j "$jobs"
# One test at a time: the library's OpenMP threads use every core, and two OpenMP programs sharing
# the cores wait for each other at every barrier (two at a time made the unit and CLI tests 11x slower).
ctest --test-dir build --output-on-failure --timeout 1800

stage "AddressSanitizer + UndefinedBehaviorSanitizer build: the unit suite"
# -O1 -g1 (line tables only): sanitizer reports keep file and line, and the build takes less than half
# the time of -O2 -g (measured per file: 2.3-2.6x); the test files themselves build at -O0
# (tests/CMakeLists.txt).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
      -DFLOWAD_UNITY_BUILD=ON -DFLOWAD_SANITIZE=ON -DFLOWAD_BUILD_BENCHMARKS=OFF -DFLOWAD_BUILD_EXAMPLES=OFF -DFLOWAD_BUILD_CLI=OFF
cmake --build build-asan -j "$jobs" --target flowad_unit_tests flowad_fuzz_replay
# Leak checking is off: libgomp keeps its thread pool alive to exit, which LeakSanitizer reports.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Every unit test, and the fuzz corpus (fuzz/corpus: seeds and every input fuzzing found worth keeping)
# replayed through the fuzz targets' entry points (docs/reliability.md). One OpenMP thread per test
# and as many tests at a time as there are cores: instrumented code runs 3-5 times slower, and this
# spends the cores on tests rather than on OpenMP's waiting.
OMP_NUM_THREADS=1 ctest --test-dir build-asan -L "unit|fuzz-replay" --output-on-failure --timeout 1800 -j "$jobs"
stage "ThreadSanitizer build: concurrent scoring"
# libgomp is not instrumented, so ThreadSanitizer cannot see its synchronisation and would report races
# inside every OpenMP region: OMP_NUM_THREADS=1 runs the library's own regions on the calling thread,
# while the test's eight std::threads are the concurrency under test (docs/reliability.md).
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
      -DFLOWAD_UNITY_BUILD=ON -DFLOWAD_TSAN=ON -DFLOWAD_BUILD_BENCHMARKS=OFF -DFLOWAD_BUILD_EXAMPLES=OFF -DFLOWAD_BUILD_CLI=OFF
cmake --build build-tsan -j "$jobs" --target flowad_unit_tests
OMP_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 build-tsan/tests/flowad_unit_tests "[concurrency]"
stage "all tests passed"
