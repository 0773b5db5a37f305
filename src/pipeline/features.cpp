#include "flowad/pipeline/features.hpp"

#include <algorithm>
#include <utility>

#include "flowad/detail/checks.hpp"

#include "flowad/io/image_resize.hpp"
#include "flowad/io/image_rotate.hpp"
#include "flowad/io/preprocess.hpp"

namespace flowad {
inline namespace v0 {

std::vector<kept_level> kept_levels(const extractor& ex, const feature_options& options) {
  const std::vector<feature_level>& levels = ex.levels();
  const std::vector<std::string> wanted = options.levels.empty() ? ex.default_levels() : options.levels;
  std::vector<kept_level> kept;
  for (std::size_t k = 0; k < wanted.size(); ++k) {
    const std::string& w = wanted[k];
    if (w == image_level) {
      if (k != 0)
        throw error(errc::invalid_argument, std::string("the level '") + image_level +
                                                "' (the input image) must come first: levels are finest first");
      kept.push_back({w, true, 0, ex.input_channels(), 1, 0.0});
      continue;
    }
    const auto it = std::find_if(levels.begin(), levels.end(), [&](const feature_level& l) { return l.name == w; });
    if (it == levels.end()) {
      std::string known;
      for (const feature_level& l : levels) known += (known.empty() ? "" : ", ") + l.name;
      throw error(errc::invalid_argument, "extractor " + ex.name() + " has no level '" + w + "' (it has " + known +
                                              ", and '" + image_level + "' for the input image)");
    }
    kept.push_back({w, false, static_cast<std::size_t>(it - levels.begin()), it->channels, it->stride, it->center_offset});
  }
  return kept;
}

std::vector<std::size_t> level_indices(const extractor& ex, const feature_options& options) {
  std::vector<std::size_t> indices;
  for (const kept_level& l : kept_levels(ex, options))
    if (!l.image) indices.push_back(l.index);
  return indices;
}

namespace {

void check_pool_stride(index_t p) {
  if (p < 1 || p > max_pool_stride)
    throw error(errc::invalid_argument, "feature pool stride must be in [1, " + std::to_string(max_pool_stride) +
                                            "], got " + std::to_string(p));
}

index_t pooled_extent(index_t extent, index_t pool_stride) { return (extent + pool_stride - 1) / pool_stride; }

void check_image_size(const feature_options& options) {
  if (options.height <= 0 || options.width <= 0 || options.height > max_image_side || options.width > max_image_side)
    throw error(errc::invalid_argument, "the image size must be in [1, " + std::to_string(max_image_side) +
                                            "] on each side, got " + std::to_string(options.height) + "x" +
                                            std::to_string(options.width));
}

}  // namespace

std::vector<scale_shape> feature_shapes(const extractor& ex, const feature_options& options) {
  check_image_size(options);
  check_pool_stride(options.pool_stride);
  std::vector<scale_shape> shapes;
  for (const kept_level& l : kept_levels(ex, options)) {
    if (l.image) {
      shapes.push_back({l.channels, options.height, options.width});
      continue;
    }
    const shape4 s = ex.level_shape(l.index, {1, ex.input_channels(), options.height, options.width});
    shapes.push_back({s.c, pooled_extent(s.h, options.pool_stride), pooled_extent(s.w, options.pool_stride)});
  }
  return shapes;
}

std::vector<double> map_cell_offsets(const extractor& ex, const feature_options& options) {
  // Exact when the image size is a multiple of the stride (the map then spans stride x cells pixels);
  // otherwise the last cell is partial and the offset is right to within a fraction of a pixel per cell.
  // Pooling keeps cell p·j of a stride-s level, centred on pixel s·p·j + (s - 1)/2 + center_offset, where
  // the stride-s·p grid puts cell j at s·p·j + (s·p - 1)/2. The image level (s = 1, not pooled) gives 0.
  check_pool_stride(options.pool_stride);
  std::vector<double> offsets;
  for (const kept_level& l : kept_levels(ex, options)) {
    const double p = l.image ? 1.0 : static_cast<double>(options.pool_stride);
    const double s = static_cast<double>(l.stride);
    offsets.push_back((l.center_offset - s * (p - 1.0) / 2.0) / (s * p));
  }
  return offsets;
}

namespace {

void check_neighbourhood(index_t k) {
  if (k < 1 || k % 2 == 0 || k > max_neighbourhood)
    throw error(errc::invalid_argument, "feature neighbourhood must be odd and in [1, " +
                                            std::to_string(max_neighbourhood) + "], got " + std::to_string(k));
}

// One pass of a box mean along h (along_h) or w of dense NHWC maps, over the window's positions that
// lie inside the map.
void box_mean_pass(const float* in, float* out, shape4 s, index_t radius, bool along_h) {
  const index_t extent = along_h ? s.h : s.w;
  const index_t C = s.c;
#pragma omp parallel for collapse(2) schedule(static) if (s.numel() >= detail::parallel_threshold)
  for (index_t n = 0; n < s.n; ++n)
    for (index_t y = 0; y < s.h; ++y)
      for (index_t x = 0; x < s.w; ++x) {
        const index_t at = along_h ? y : x;
        const index_t first = std::max<index_t>(0, at - radius), last = std::min(extent - 1, at + radius);
        float* o = out + ((n * s.h + y) * s.w + x) * C;
        std::fill(o, o + C, 0.0f);
        for (index_t j = first; j <= last; ++j) {
          const float* i = in + ((n * s.h + (along_h ? j : y)) * s.w + (along_h ? x : j)) * C;
          for (index_t c = 0; c < C; ++c) o[c] += i[c];
        }
        const float inv = 1.0f / static_cast<float>(last - first + 1);
        for (index_t c = 0; c < C; ++c) o[c] *= inv;
      }
}

// maps = the neighbourhood mean of maps (dense NHWC), via `scratch`.
void aggregate_neighbourhood(view maps, index_t neighbourhood, tensor& scratch) {
  if (neighbourhood == 1) return;
  scratch.resize(maps.shape(), layout::nhwc);
  const index_t radius = neighbourhood / 2;
  box_mean_pass(maps.data(), scratch.data(), maps.shape(), radius, false);
  box_mean_pass(scratch.data(), maps.data(), maps.shape(), radius, true);
}

// out = every pool_stride-th cell of maps (dense NHWC), from cell 0.
void subsample(const_view maps, index_t pool_stride, view out) {
  const shape4 in = maps.shape(), o = out.shape();
  const index_t C = in.c;
  for (index_t n = 0; n < o.n; ++n)
    for (index_t y = 0; y < o.h; ++y)
      for (index_t x = 0; x < o.w; ++x) {
        const float* from = maps.data() + ((n * in.h + y * pool_stride) * in.w + x * pool_stride) * C;
        std::copy(from, from + C, out.data() + ((n * o.h + y) * o.w + x) * C);
      }
}

// Extracts batches of `count` images; fill(start, count, pixels) writes the normalised batch.
template <class Fill>
void extract_batched(const extractor& ex, index_t total, const feature_options& options,
                     const progress_callback& progress, std::vector<tensor>& out, extraction_buffers& buffers,
                     Fill&& fill) {
  if (total <= 0) throw error(errc::empty_input, "extract_features: no images");
  if (options.batch_size <= 0) throw error(errc::invalid_argument, "extract_features: batch size must be positive");
  check_neighbourhood(options.neighbourhood);
  const std::vector<kept_level> kept = kept_levels(ex, options);
  const bool needs_extractor = std::any_of(kept.begin(), kept.end(), [](const kept_level& l) { return !l.image; });
  const std::vector<scale_shape> shapes = feature_shapes(ex, options);
  out.resize(shapes.size());
  for (std::size_t k = 0; k < shapes.size(); ++k)
    out[k].resize({total, shapes[k].channels, shapes[k].height, shapes[k].width}, layout::nhwc);

  workspace& ws = buffers.ws;
  std::vector<tensor>& maps = buffers.maps;
  tensor &pixels = buffers.pixels, &scratch = buffers.scratch, &full = buffers.full;
  if (progress) progress(0, static_cast<long>(total));
  for (index_t start = 0; start < total; start += options.batch_size) {
    const index_t count = std::min(options.batch_size, total - start);
    fill(start, count, pixels);
    if (needs_extractor) ex.extract(pixels.view(), maps, ws);
    for (std::size_t k = 0; k < kept.size(); ++k) {
      const view batch = out[k].view().batch(start, count);
      if (kept[k].image) {
        copy(pixels.cview(), batch);  // the normalised image as is: NCHW to NHWC, no aggregation, no pooling
        continue;
      }
      const tensor& level = maps[kept[k].index];
      if (options.pool_stride == 1) {
        copy(level.cview(), batch);
        aggregate_neighbourhood(batch, options.neighbourhood, scratch);
      } else {
        full.resize(level.shape(), layout::nhwc);
        copy(level.cview(), full.view());
        aggregate_neighbourhood(full.view(), options.neighbourhood, scratch);
        subsample(full.cview(), options.pool_stride, batch);
      }
    }
    if (progress) progress(static_cast<long>(start + count), static_cast<long>(total));
  }
}

// extract_batched into a new set of tensors, with buffers of its own.
template <class Fill>
std::vector<tensor> extract_batched(const extractor& ex, index_t total, const feature_options& options,
                                    const progress_callback& progress, Fill&& fill) {
  std::vector<tensor> out;
  extraction_buffers buffers;
  extract_batched(ex, total, options, progress, out, buffers, std::forward<Fill>(fill));
  return out;
}

// Writes image i of a batch, resized to the options' size, into sample i of pixels.
void write_resized(const byte_image& image, std::size_t index, const feature_options& options, const extractor& ex,
                   tensor& pixels, index_t i) {
  if (image.channels() != 3)
    throw error(errc::shape_mismatch, "extract_features: image " + std::to_string(index) + " has shape " +
                                          image.shape_str() + " but RGB (H x W x 3) is expected");
  if (image.height() == options.height && image.width() == options.width)
    write_normalized(image, pixels.view(), i, ex.normalization());
  else
    write_normalized(resize_bilinear(to_float(image), options.height, options.width), pixels.view(), i,
                     ex.normalization());
}

// Features of `count` images in memory, image i being image_at(i), through write_resized.
template <class ImageAt>
void extract_images(const extractor& ex, std::size_t count, ImageAt&& image_at, const feature_options& options,
                    const progress_callback& progress, std::vector<tensor>& out, extraction_buffers& buffers) {
  extract_batched(ex, static_cast<index_t>(count), options, progress, out, buffers,
                  [&](index_t start, index_t batch, tensor& pixels) {
                    pixels.resize({batch, 3, options.height, options.width}, layout::nchw);
                    for (index_t i = 0; i < batch; ++i) {
                      const std::size_t index = static_cast<std::size_t>(start + i);
                      write_resized(image_at(index), index, options, ex, pixels, i);
                    }
                  });
}

}  // namespace

std::vector<tensor> extract_features(const extractor& ex, const std::vector<std::filesystem::path>& images,
                                     const feature_options& options, const progress_callback& progress) {
  return extract_batched(ex, static_cast<index_t>(images.size()), options, progress,
                         [&](index_t start, index_t count, tensor& pixels) {
                           const std::vector<std::filesystem::path> batch(images.begin() + start,
                                                                          images.begin() + start + count);
                           pixels = load_image_batch(batch, options.height, options.width, ex.normalization());
                         });
}

std::vector<tensor> extract_features(const extractor& ex, const std::vector<byte_image>& images,
                                     const feature_options& options, const progress_callback& progress) {
  std::vector<tensor> out;
  extraction_buffers buffers;
  extract_images(ex, images.size(), [&](std::size_t i) -> const byte_image& { return images[i]; }, options, progress,
                 out, buffers);
  return out;
}

std::vector<tensor> extract_features(const extractor& ex, const std::vector<const byte_image*>& images,
                                     const feature_options& options, const progress_callback& progress) {
  std::vector<tensor> out;
  extraction_buffers buffers;
  extract_images(ex, images.size(), [&](std::size_t i) -> const byte_image& { return *images[i]; }, options, progress,
                 out, buffers);
  return out;
}

void extract_features(const extractor& ex, const std::vector<byte_image>& images, const feature_options& options,
                      std::vector<tensor>& out, extraction_buffers& buffers) {
  extract_images(ex, images.size(), [&](std::size_t i) -> const byte_image& { return images[i]; }, options, {}, out,
                 buffers);
}

std::vector<tensor> extract_features(const extractor& ex, const std::vector<const byte_image*>& images,
                                     const std::vector<image_copy>& copies, const feature_options& options,
                                     const progress_callback& progress) {
  for (const image_copy& c : copies)
    if (c.image >= images.size())
      throw error(errc::invalid_argument, "extract_features: a copy of image " + std::to_string(c.image) + " of " +
                                              std::to_string(images.size()));
  // Copies of one image usually come together: resize it once for all of them.
  std::size_t resized_index = images.size();
  float_image resized;
  return extract_batched(ex, static_cast<index_t>(copies.size()), options, progress,
                         [&](index_t start, index_t count, tensor& pixels) {
                           pixels.resize({count, 3, options.height, options.width}, layout::nchw);
                           for (index_t i = 0; i < count; ++i) {
                             const image_copy& c = copies[static_cast<std::size_t>(start + i)];
                             const byte_image& image = *images[c.image];
                             if (image.channels() != 3)
                               throw error(errc::shape_mismatch, "extract_features: image " + std::to_string(c.image) +
                                                                     " has shape " + image.shape_str() +
                                                                     " but RGB (H x W x 3) is expected");
                             if (c.image != resized_index) {
                               resized = resize_bilinear(to_float(image), options.height, options.width);
                               resized_index = c.image;
                             }
                             write_normalized(rotate_nearest(resized, c.degrees), pixels.view(), i, ex.normalization());
                           }
                         });
}

feature_maps views_of(const std::vector<tensor>& maps) {
  feature_maps views;
  for (const tensor& t : maps) views.push_back(t.cview());
  return views;
}

index_t feature_stride(const extractor& ex, const feature_options& options) {
  check_pool_stride(options.pool_stride);
  index_t stride = 1;
  for (const kept_level& l : kept_levels(ex, options))
    stride = std::max(stride, l.image ? 1 : l.stride * options.pool_stride);
  return stride;
}

}  // namespace v0
}  // namespace flowad
