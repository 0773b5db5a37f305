#include "flowad/scoring/aggregate.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "flowad/detail/checks.hpp"
#include "scoring/common.hpp"

namespace flowad {
inline namespace v0 {

namespace {
using scoring_detail::max_threads;
using scoring_detail::parallel_min_values;
using scoring_detail::thread_index;
}  // namespace

const char* to_string(score_aggregation how) noexcept {
  switch (how) {
    case score_aggregation::mean: return "mean";
    case score_aggregation::max: return "max";
    case score_aggregation::top_k_mean: return "top_k_mean";
  }
  return "unknown";
}

index_t top_k_count(index_t count, double fraction) {
  if (!(fraction > 0.0 && fraction <= 1.0))
    throw error(errc::invalid_argument, "top_k_mean: the fraction must be in (0, 1], got " + std::to_string(fraction));
  if (count <= 0) throw error(errc::empty_input, "top_k_mean: no values to select from");
  const index_t k = static_cast<index_t>(static_cast<double>(count) * fraction);
  return std::clamp<index_t>(k, 1, count);
}

void image_scores(const_view maps, score_aggregation how, span<double> scores, double top_k_fraction) {
  std::vector<float> scratch;
  image_scores(maps, how, scores, top_k_fraction, scratch);
}

void image_scores(const_view maps, score_aggregation how, span<double> scores, double top_k_fraction,
                  std::vector<float>& scratch) {
  detail::require_nonempty(maps, "image_scores: maps");
  detail::require_size(scores.size(), static_cast<std::size_t>(maps.n()), "image_scores: scores");
  const index_t per_sample = maps.c() * maps.h() * maps.w();
  const index_t k = how == score_aggregation::top_k_mean ? top_k_count(per_sample, top_k_fraction) : 0;
  scoring_detail::require_finite(maps, "image_scores: maps");
  const index_t samples = maps.n(), channels = maps.c(), height = maps.h(), width = maps.w();
  const bool parallel = samples > 1 && maps.numel() >= parallel_min_values;
  // Per-thread copies for top_k_mean, allocated here so that nothing inside the parallel region throws.
  const std::size_t threads = parallel ? static_cast<std::size_t>(max_threads()) : 1;
  const std::size_t needed = how == score_aggregation::top_k_mean ? threads * static_cast<std::size_t>(per_sample) : 0;
  if (scratch.size() < needed) scratch.resize(needed);
  float* const values_all = scratch.data();
#pragma omp parallel if (parallel)
  {
    float* const values = values_all + (parallel ? static_cast<std::size_t>(thread_index()) : 0) *
                                                  static_cast<std::size_t>(per_sample);
#pragma omp for schedule(dynamic)
    for (index_t n = 0; n < samples; ++n) {
      double result = 0.0;
      switch (how) {
        case score_aggregation::mean: {
          double sum = 0.0;
          for (index_t c = 0; c < channels; ++c)
            for (index_t h = 0; h < height; ++h)
              for (index_t w = 0; w < width; ++w) sum += maps(n, c, h, w);
          result = sum / static_cast<double>(per_sample);
          break;
        }
        case score_aggregation::max: {
          float m = maps(n, 0, 0, 0);
          for (index_t c = 0; c < channels; ++c)
            for (index_t h = 0; h < height; ++h)
              for (index_t w = 0; w < width; ++w) m = std::max(m, maps(n, c, h, w));
          result = m;
          break;
        }
        case score_aggregation::top_k_mean: {
          std::size_t i = 0;
          for (index_t c = 0; c < channels; ++c)
            for (index_t h = 0; h < height; ++h)
              for (index_t w = 0; w < width; ++w) values[i++] = maps(n, c, h, w);
          if (k < per_sample) std::nth_element(values, values + (k - 1), values + per_sample, std::greater<float>());
          double sum = 0.0;
          for (index_t j = 0; j < k; ++j) sum += values[static_cast<std::size_t>(j)];
          result = sum / static_cast<double>(k);
          break;
        }
      }
      scores[static_cast<std::size_t>(n)] = result;
    }
  }
}

std::vector<double> image_scores(const_view maps, score_aggregation how, double top_k_fraction) {
  std::vector<double> scores(static_cast<std::size_t>(std::max<index_t>(maps.n(), 0)));
  image_scores(maps, how, span<double>(scores.data(), scores.size()), top_k_fraction);
  return scores;
}

}  // namespace v0
}  // namespace flowad
