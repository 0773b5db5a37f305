#!/usr/bin/env bash
# Runs the layer microbenchmarks (bench_<layer>; every layer unless some are named) with 5 repetitions
# and prints a Markdown table of the medians: time per call and GFLOP/s (compute layers) or GB/s (data
# movement), at 1 and 2 threads.
#   benchmarks/run_layer_benchmarks.sh [build dir] [min time per repetition, s] [layer ...]
set -euo pipefail
build=${1:-build}
min_time=${2:-0.3}
layers=("${@:3}")
(( ${#layers[@]} )) || layers=(permute actnorm invertible_1x1 affine_coupling all_in_one_block split_merge layer_norm)
echo "| benchmark | shape | threads | median ms | rate | oneDNN implementation |"
echo "|---|---|---:|---:|---:|---|"
for name in "${layers[@]}"; do
  bin="$build/benchmarks/bench_$name"
  [[ -x $bin ]] || { echo "missing $bin (build with FLOWAD_BUILD_BENCHMARKS=ON)" >&2; exit 1; }
  "$bin" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
         --benchmark_min_time="$min_time" --benchmark_format=csv 2>/dev/null |
    awk '
      # Splits one CSV line into f[1..n]; fields may be quoted and hold commas (the labels do).
      function split_csv(line, f,    n, i, c, quoted, field) {
        n = 0; field = ""; quoted = 0
        for (i = 1; i <= length(line); ++i) {
          c = substr(line, i, 1)
          if (c == "\"") quoted = !quoted
          else if (c == "," && !quoted) { f[++n] = field; field = "" }
          else field = field c
        }
        f[++n] = field
        return n
      }
      NR == 1 { n = split_csv($0, head); for (i = 1; i <= n; ++i) col[head[i]] = i; next }
      {
        split_csv($0, f)
        name = f[1]
        if (name !~ /_median$/) next
        sub(/_median$/, "", name)
        split(name, part, "/")
        threads = part[3]; sub(/threads:/, "", threads)
        # The label is "<shape> threads=N[ <oneDNN implementations>]".
        label = f[col["label"]]
        shape = label; sub(/ .*/, "", shape)
        impl = label; sub(/^[^ ]* threads=[0-9]+ ?/, "", impl)
        time = f[col["real_time"]]; unit = f[col["time_unit"]]
        ms = unit == "ms" ? time : (unit == "us" ? time / 1000 : (unit == "ns" ? time / 1e6 : time * 1000))
        rate = ""
        if (("GFLOP" in col) && f[col["GFLOP"]] != "") rate = sprintf("%.1f GFLOP/s", f[col["GFLOP"]])
        else if (("GB" in col) && f[col["GB"]] != "") rate = sprintf("%.1f GB/s", f[col["GB"]])
        printf "| %s | %s | %s | %.3f | %s | %s |\n", part[1], shape, threads, ms, rate, impl
      }'
done
