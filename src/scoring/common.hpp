// Helpers shared by src/scoring (private).
#pragma once

#include <cmath>

#include "flowad/detail/checks.hpp"
#include "flowad/tensor.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace flowad {
inline namespace v0 {
namespace scoring_detail {

// Below this many values a parallel region costs more than it saves. On a loaded 2-vCPU host an
// OpenMP fork/join can wait a whole time slice (measured: ~20 ms for a 32-value region at load 8).
inline constexpr index_t parallel_min_values = 1 << 15;

inline int max_threads() noexcept {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_index() noexcept {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// detail::require_finite, but scanning small views serially (no parallel region).
inline void require_finite(const const_view& v, const char* what) {
  if (v.numel() >= parallel_min_values) {
    detail::require_finite(v, what);
    return;
  }
  bool ok = true;
  for (index_t n = 0; n < v.n(); ++n)
    for (index_t c = 0; c < v.c(); ++c)
      for (index_t h = 0; h < v.h(); ++h)
        for (index_t w = 0; w < v.w(); ++w) ok &= std::isfinite(v(n, c, h, w));
  if (!ok) detail::require_finite(v, what);  // locates the culprit and throws
}

}  // namespace scoring_detail
}  // namespace v0
}  // namespace flowad
