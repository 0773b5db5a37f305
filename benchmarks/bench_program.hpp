// Helpers of the whole-program benchmarks that print JSON lines for benchmarks/peer/compare.sh (bench_flow,
// bench_pipeline): wall-time medians, peak RSS.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace bench {

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
