// Learning-rate schedules: a linear warm-up followed by a constant rate (FastFlow, CS-Flow) or a
// cosine decay (CFlow-AD, flowad's MS-Flow).
#pragma once

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace flowad {
inline namespace v0 {

enum class lr_schedule { constant, cosine };

inline std::vector<std::pair<lr_schedule, const char*>> lr_schedule_names() {
  return {{lr_schedule::constant, "constant"}, {lr_schedule::cosine, "cosine"}};
}

struct schedule_options {
  lr_schedule kind = lr_schedule::cosine;
  // The share of the run spent ramping linearly from warmup_start_factor·lr to lr (a share, not a
  // number of epochs, so that a shorter run keeps the same shape).
  double warmup_fraction = 0.0;
  double warmup_start_factor = 0.1;
  double final_factor = 0.05;  // cosine: the multiplier reached at the end of the run
};

// The learning-rate multiplier at a fractional epoch of a run of total_epochs.
inline double lr_factor(const schedule_options& s, double epoch, double total_epochs) {
  const double warmup = s.warmup_fraction * total_epochs;
  double factor = 1.0;
  if (warmup > 0.0 && epoch < warmup) factor = s.warmup_start_factor + (1.0 - s.warmup_start_factor) * (epoch / warmup);
  if (s.kind == lr_schedule::cosine && epoch > warmup && total_epochs > warmup) {
    constexpr double pi = 3.14159265358979323846;
    const double t = std::min(1.0, (epoch - warmup) / (total_epochs - warmup));
    factor = s.final_factor + (1.0 - s.final_factor) * 0.5 * (1.0 + std::cos(pi * t));
  }
  return factor;
}

}  // namespace v0
}  // namespace flowad
