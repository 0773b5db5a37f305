#include "flowad/scoring/latent.hpp"

#include <cmath>

#include "flowad/detail/checks.hpp"

namespace flowad {
inline namespace v0 {

void latent_map(const_view z, view map, latent_statistic statistic) {
  detail::require_nonempty(z, "latent_map: z");
  if (map.n() != z.n() || map.c() != 1 || map.h() != z.h() || map.w() != z.w())
    throw error(errc::shape_mismatch, "latent_map: z has shape " + z.shape().str() + " but the map has shape " +
                                          map.shape().str() + " (expected " + std::to_string(z.n()) + "x1x" +
                                          std::to_string(z.h()) + "x" + std::to_string(z.w()) + ")");
  const shape4 s = z.shape();
  const float scale = 0.5f / static_cast<float>(s.c);
  const index_t cs = z.strides().c;
#pragma omp parallel for collapse(2) schedule(static) if (s.numel() >= detail::parallel_threshold)
  for (index_t n = 0; n < s.n; ++n)
    for (index_t h = 0; h < s.h; ++h)
      for (index_t w = 0; w < s.w; ++w) {
        const float* zp = &z(n, 0, h, w);
        float sum = 0.0f;
        if (cs == 1) {
#pragma omp simd reduction(+ : sum)
          for (index_t c = 0; c < s.c; ++c) sum += zp[c] * zp[c];
        } else {
          for (index_t c = 0; c < s.c; ++c) sum += zp[c * cs] * zp[c * cs];
        }
        const float energy = sum * scale;
        map(n, 0, h, w) = statistic == latent_statistic::energy ? energy : -std::exp(-energy);
      }
}

void add_squared_norms(const_view z, span<double> out) {
  detail::require_size(out.size(), static_cast<std::size_t>(z.n()), "add_squared_norms: output");
  const shape4 s = z.shape();
  const bool dense = z.is_dense(layout::nhwc) || z.is_dense(layout::nchw);
  const index_t per_sample = s.c * s.h * s.w;
#pragma omp parallel for schedule(static) if (s.numel() >= detail::parallel_threshold)
  for (index_t n = 0; n < s.n; ++n) {
    double sum = 0.0;
    if (dense) {
      const float* p = z.data() + n * z.strides().n;
      for (index_t j = 0; j < per_sample; ++j) sum += static_cast<double>(p[j]) * p[j];
    } else {
      for (index_t c = 0; c < s.c; ++c)
        for (index_t h = 0; h < s.h; ++h)
          for (index_t w = 0; w < s.w; ++w) sum += static_cast<double>(z(n, c, h, w)) * z(n, c, h, w);
    }
    out[static_cast<std::size_t>(n)] += sum;
  }
}

}  // namespace v0
}  // namespace flowad
