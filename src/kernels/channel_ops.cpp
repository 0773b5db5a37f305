#include "kernels/channel_ops.hpp"

namespace flowad {
inline namespace v0 {
namespace kernels {

void gather_channels(const_view src, view dst, const index_t* index) {
  const shape4 s = dst.shape();
  const strides4 ss = src.strides(), ds = dst.strides();
#pragma omp parallel for collapse(2) schedule(static)
  for (index_t n = 0; n < s.n; ++n)
    for (index_t h = 0; h < s.h; ++h)
      for (index_t w = 0; w < s.w; ++w) {
        const float* in = src.data() + n * ss.n + h * ss.h + w * ss.w;
        float* out = dst.data() + n * ds.n + h * ds.h + w * ds.w;
        for (index_t c = 0; c < s.c; ++c) out[c * ds.c] = in[index[c] * ss.c];
      }
}

}  // namespace kernels
}  // namespace v0
}  // namespace flowad
