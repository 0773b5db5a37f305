#include "detectors/patchcore/patch_features.hpp"

namespace flowad {
inline namespace v0 {
namespace detail {

namespace {

// dst(n, c, y, x) = mean of src over the k x k window around (y, x), zeros outside.
void box_mean(const_view src, view dst, index_t k) {
  const index_t r = k / 2, n_count = src.n(), channels = src.c(), height = src.h(), width = src.w();
  const float scale = 1.0f / static_cast<float>(k * k);
  const strides4 s = src.strides();
#pragma omp parallel for collapse(2) schedule(static) if (n_count * height * width * channels >= (1 << 15))
  for (index_t n = 0; n < n_count; ++n)
    for (index_t y = 0; y < height; ++y)
      for (index_t x = 0; x < width; ++x) {
        const index_t y0 = std::max<index_t>(0, y - r), y1 = std::min<index_t>(height - 1, y + r);
        const index_t x0 = std::max<index_t>(0, x - r), x1 = std::min<index_t>(width - 1, x + r);
        for (index_t c = 0; c < channels; ++c) {
          const float* base = src.data() + n * s.n + c * s.c;
          float sum = 0.0f;
          for (index_t yy = y0; yy <= y1; ++yy)
            for (index_t xx = x0; xx <= x1; ++xx) sum += base[yy * s.h + xx * s.w];
          dst(n, c, y, x) = sum * scale;
        }
      }
}

}  // namespace

void patch_features(const feature_maps& features, index_t start, index_t count, index_t patch_size, tensor& rows,
                    patch_feature_buffers& buffers) {
  index_t dimension = 0;
  for (const const_view& f : features) dimension += f.c();
  const index_t height = features[0].h(), width = features[0].w();
  rows.resize({count, dimension, height, width}, layout::nhwc);
  buffers.pooled.resize(features.size());
  index_t offset = 0;
  for (std::size_t s = 0; s < features.size(); ++s) {
    const const_view in = features[s].batch(start, count);
    const view slot = rows.view().channels(offset, in.c());
    if (s == 0) {
      box_mean(in, slot, patch_size);
    } else {
      buffers.pooled[s].resize(in.shape(), layout::nchw);
      box_mean(in, buffers.pooled[s].view(), patch_size);
      upsample_bilinear(buffers.pooled[s].cview(), slot, buffers.maps);
    }
    offset += in.c();
  }
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
