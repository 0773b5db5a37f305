#!/usr/bin/env bash
# Runs every layer microbenchmark (bench_<layer>) with 5 repetitions and prints a Markdown table of the
# medians: time per call and GFLOP/s (compute layers) or GB/s (data movement), at 1 and 2 threads.
#   benchmarks/run_layer_benchmarks.sh [build dir] [min time per repetition, s]
set -euo pipefail
build=${1:-build}
min_time=${2:-0.3}
echo "| benchmark | shape | threads | median ms | rate |"
echo "|---|---|---:|---:|---:|"
for name in permute actnorm invertible_1x1 affine_coupling split_merge; do
  bin="$build/benchmarks/bench_$name"
  [[ -x $bin ]] || { echo "missing $bin (build with FLOWAD_BUILD_BENCHMARKS=ON)" >&2; exit 1; }
  "$bin" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
         --benchmark_min_time="$min_time" --benchmark_format=csv 2>/dev/null |
    awk -F, '
      NR == 1 { for (i = 1; i <= NF; ++i) col[$i] = i; next }
      $1 ~ /_median"?$/ {
        name = $1; gsub(/"/, "", name); sub(/_median$/, "", name)
        split(name, part, "/")
        shape = part[2]; sub(/shape:/, "", shape)
        threads = part[3]; sub(/threads:/, "", threads)
        shapes[0] = "1x304x24x24"; shapes[1] = "16x304x24x24"; shapes[2] = "8x256x64x64"
        time = $col["real_time"]; unit = $col["time_unit"]; gsub(/"/, "", unit)
        ms = unit == "ms" ? time : (unit == "us" ? time / 1000 : (unit == "ns" ? time / 1e6 : time * 1000))
        rate = ""
        if ("GFLOP" in col && $col["GFLOP"] != "") rate = sprintf("%.1f GFLOP/s", $col["GFLOP"])
        else if ("GB" in col && $col["GB"] != "") rate = sprintf("%.1f GB/s", $col["GB"])
        printf "| %s | %s | %s | %.3f | %s |\n", part[1], shapes[shape], threads, ms, rate
      }'
done
