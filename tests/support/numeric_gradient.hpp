// Central differences of a double-precision loss, for the gradient checks of the network layers.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace flowad {
namespace testing {

// d loss / d x[i] for every entry of x, with steps of `step` (x is restored after each entry).
inline std::vector<double> numeric_gradient_fixed_step(std::vector<double>& x, const std::function<double()>& loss,
                                                       double step) {
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + step;
    const double up = loss();
    x[i] = saved - step;
    const double down = loss();
    x[i] = saved;
    g[i] = (up - down) / (2.0 * step);
  }
  return g;
}

// The same with a step of 1e-6 of the larger of `scale` (the data's size) and |x[i]|.
inline std::vector<double> numeric_gradient(std::vector<double>& x, const std::function<double()>& loss,
                                            double scale = 1.0) {
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i], step = 1e-6 * std::max(scale, std::abs(saved));
    x[i] = saved + step;
    const double up = loss();
    x[i] = saved - step;
    const double down = loss();
    x[i] = saved;
    g[i] = (up - down) / (2.0 * step);
  }
  return g;
}

}  // namespace testing
}  // namespace flowad
