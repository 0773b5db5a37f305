#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (AddressSanitizer, UndefinedBehaviorSanitizer, the
# library's internal assertions on) and fuzzes each for a while. Not part of CI, which replays the
# corpus instead (ctest -L fuzz-replay). See docs/reliability.md.
#
#   scripts/fuzz.sh [--build DIR] [--time SECONDS | --runs N] [--jobs N] [--merge] [TARGET...]
#
# TARGET: model_file npy npz image mvtec_layout (default: all; --time 60 by default). Each target reads
# fuzz/corpus/TARGET (never written) and what earlier runs found, kept in DIR/corpus/TARGET, where new
# inputs go; crashes, leaks, timeouts and out-of-memory inputs land in DIR/findings/TARGET/ and stop
# that target's run. With --merge, the run's inputs that add coverage are then folded into
# fuzz/corpus/TARGET (libFuzzer's -merge=1; check their size before committing them).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-fuzz
limit=(-max_total_time=60)
jobs=$(nproc)
merge=0
targets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --time) limit=(-max_total_time="$2"); shift 2 ;;
    --runs) limit=(-runs="$2"); shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(model_file npy npz image mvtec_layout)

# -O1 -g1 keeps the build short on small machines; assertions stay on (no -DNDEBUG).
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DFLOWAD_FUZZ=ON -DFLOWAD_BUILD_TESTS=OFF \
      -DFLOWAD_BUILD_BENCHMARKS=OFF -DFLOWAD_BUILD_EXAMPLES=OFF -DFLOWAD_BUILD_CLI=OFF
cmake --build "$build" -j "$jobs" --target "${targets[@]/#/fuzz_}"

# Scratch files of the targets (images, archives, folder trees) in memory when possible.
if [[ -d /dev/shm && -w /dev/shm ]]; then export TMPDIR=/dev/shm; fi
# One thread: fuzzing measures parsers, and oneDNN's threads only add noise.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# Leaks are findings too: with one OpenMP thread there is no thread pool for LeakSanitizer to report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

status=0
for target in "${targets[@]}"; do
  corpus=$build/corpus/$target findings=$build/findings/$target log=$build/fuzz_$target.log
  mkdir -p "$corpus" "$findings"
  echo "== fuzz_$target ${limit[*]}"
  # -rss_limit_mb and -malloc_limit_mb: an input that makes the library allocate more than 2 GB is a
  # finding (a size taken from a header before it was checked), not a machine problem.
  "$build/fuzz/fuzz_$target" "$corpus" "fuzz/corpus/$target" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=2048 -max_len=262144 -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1 || true
  grep -E "^#[0-9]+ +DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^SUMMARY|ERROR:" "$log" || true
  if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|^SUMMARY" "$log"; then
    echo "fuzz_$target: FOUND A PROBLEM, see $log and $findings/" >&2
    status=1
  fi
  if [[ $merge == 1 ]]; then
    "$build/fuzz/fuzz_$target" -merge=1 "fuzz/corpus/$target" "$corpus" -timeout=10 -rss_limit_mb=2048 >>"$log" 2>&1
    grep -E "MERGE-OUTER: [0-9]+ new files" "$log" | tail -1
  fi
done
exit $status
