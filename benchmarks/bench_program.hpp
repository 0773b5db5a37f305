// Helpers of the whole-program benchmarks that print JSON lines for benchmarks/peer/compare.sh (bench_flow,
// bench_pipeline): their shared options, wall-time medians, peak RSS.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace bench {

// The options both programs take: --json, --threads, --repeats and --configs (comma-separated).
struct run_options {
  bool json = false;
  int threads = 1;
  int repeats = 7;
  std::vector<std::string> configs;
};
inline void add_run_options(CLI::App& app, run_options& o, const std::string& config_names) {
  app.add_flag("--json", o.json, "one JSON line per case");
  app.add_option("--threads", o.threads, "OpenMP threads")->check(CLI::PositiveNumber);
  app.add_option("--repeats", o.repeats, "timed runs per case")->check(CLI::PositiveNumber);
  app.add_option("--configs", o.configs, config_names)->delimiter(',');
}

// The process's peak resident set so far, in MB.
inline double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

struct timing {
  double median_ms, min_ms, max_ms;  // the median is the upper one for an even count
};

// `warmup` untimed calls (the first create primitives and touch buffers), then `repeats` timed ones.
inline timing time_it(const std::function<void()>& step, int warmup, int repeats) {
  for (int w = 0; w < warmup; ++w) step();
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front(), ms.back()};
}

}  // namespace bench
