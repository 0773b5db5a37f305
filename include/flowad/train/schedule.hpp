// Learning-rate schedules: a linear warm-up followed by a constant, cosine or step decay.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace flowad {
inline namespace v0 {

enum class lr_schedule { constant, cosine, step };

struct schedule_options {
  lr_schedule kind = lr_schedule::cosine;
  double warmup_epochs = 0.0;          // linear ramp from warmup_start_factor·lr to lr
  double warmup_start_factor = 0.1;
  double final_factor = 0.05;          // cosine: the multiplier reached at the last epoch
  std::vector<double> milestones;      // step: epochs at which the rate is multiplied by step_factor
  double step_factor = 0.33;
};

// The learning-rate multiplier at a fractional epoch of a run of total_epochs.
inline double lr_factor(const schedule_options& s, double epoch, double total_epochs) {
  double factor = 1.0;
  if (s.warmup_epochs > 0.0 && epoch < s.warmup_epochs)
    factor = s.warmup_start_factor + (1.0 - s.warmup_start_factor) * (epoch / s.warmup_epochs);
  switch (s.kind) {
    case lr_schedule::constant: break;
    case lr_schedule::cosine: {
      if (epoch > s.warmup_epochs && total_epochs > s.warmup_epochs) {
        constexpr double pi = 3.14159265358979323846;
        const double t = std::min(1.0, (epoch - s.warmup_epochs) / (total_epochs - s.warmup_epochs));
        factor = s.final_factor + (1.0 - s.final_factor) * 0.5 * (1.0 + std::cos(pi * t));
      }
      break;
    }
    case lr_schedule::step:
      for (double m : s.milestones)
        if (epoch >= m) factor *= s.step_factor;
      break;
  }
  return factor;
}

}  // namespace v0
}  // namespace flowad
