// PatchCore: configuration, fitting the memory bank, scoring, model files and registration.
#include "flowad/detectors/patchcore.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "detectors/common.hpp"
#include "detectors/patchcore/coreset.hpp"
#include "detectors/patchcore/nearest_neighbours.hpp"
#include "detectors/patchcore/patch_features.hpp"
#include "detectors/registration.hpp"
#include "flowad/detail/config_fields.hpp"
#include "flowad/detail/workspace_pool.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/scoring/anomaly_map.hpp"

namespace flowad {
inline namespace v0 {

// ------------------------------------------------------------------------------------------------
// Configuration

patchcore_config patchcore_config::recommended(std::vector<scale_shape> scales) {
  patchcore_config cfg;
  cfg.scales = std::move(scales);
  return cfg;
}

index_t patchcore_config::feature_dimension() const noexcept {
  index_t d = 0;
  for (const scale_shape& s : scales) d += s.channels;
  return d;
}

void patchcore_config::validate() const {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "patchcore_config: " + what); };
  if (scales.empty() || scales.size() > 16) fail("needs 1 to 16 scales, got " + std::to_string(scales.size()));
  for (const scale_shape& s : scales)
    if (s.channels <= 0 || s.height <= 0 || s.width <= 0 || s.channels > (1 << 16) || s.height > (1 << 14) ||
        s.width > (1 << 14))
      fail("scale shapes must be positive and plausible, got " + to_config_text(scales));
  if (patch_size < 1 || patch_size > 15 || patch_size % 2 == 0)
    fail("patch_size must be odd and in [1, 15], got " + std::to_string(patch_size));
  if (!(coreset_fraction > 0.0 && coreset_fraction <= 1.0)) fail("coreset_fraction must be in (0, 1]");
  if (projection_dimension < 0 || projection_dimension > (1 << 16))
    fail("projection_dimension must be in [0, 65536], got " + std::to_string(projection_dimension));
  if (coreset_start_points < 1 || coreset_start_points > 10000)
    fail("coreset_start_points must be in [1, 10000], got " + std::to_string(coreset_start_points));
  if (reweight_neighbours < 1 || reweight_neighbours > 1000)
    fail("score.reweight_neighbours must be in [1, 1000], got " + std::to_string(reweight_neighbours));
  if (!(blur_sigma >= 0.0 && blur_sigma <= 64.0)) fail("score.blur_sigma must be in [0, 64] cells");
}

// ------------------------------------------------------------------------------------------------
// The model

namespace {

bool bfloat16_search(const patchcore_config& cfg) {
  return cfg.search == search_precision::bfloat16 && detail::bfloat16_native();
}

}  // namespace

struct patchcore::impl {
  detail::memory_bank bank;
  mutable detail::workspace_pool pool;

  struct score_state : layer_state {
    tensor rows;  // patch features of a batch, one row per position of the first scale
    detail::patch_feature_buffers features;
    std::vector<float> squared;
    std::vector<index_t> nearest;
    detail::memory_bank::buffers search;
    std::vector<index_t> neighbours;
    std::vector<double> neighbour_distances;
    tensor patch_scores;  // count x 1 x H0 x W0
    map_buffers maps;
  };
  std::uint64_t score_state_id = detail::next_layer_id();
};

patchcore::patchcore(const patchcore_config& cfg) : cfg_(cfg), impl_(std::make_unique<impl>()) { cfg_.validate(); }

patchcore::~patchcore() = default;

index_t patchcore::bank_size() const noexcept { return impl_->bank.size(); }
const std::vector<float>& patchcore::bank() const noexcept { return impl_->bank.rows(); }

model_stats patchcore::stats() const {
  model_stats s;
  const double bank_values = static_cast<double>(impl_->bank.size()) * static_cast<double>(cfg_.feature_dimension());
  s.parameters = bank_values;
  // The search of every patch against the bank, and the re-weighting's scan of the bank for one patch.
  const double patches = static_cast<double>(cfg_.scales[0].height * cfg_.scales[0].width);
  s.macs_per_image = patches * bank_values + (cfg_.reweight_neighbours > 1 ? bank_values : 0.0);
  return s;
}

fit_report patchcore::fit(const feature_maps& train, const fit_options& options) {
  const auto started = std::chrono::steady_clock::now();
  const index_t n = detail::check_features(train, cfg_.scales, "training features");
  const index_t per_image = cfg_.scales[0].height * cfg_.scales[0].width, dimension = cfg_.feature_dimension();
  const double total_values = static_cast<double>(n) * static_cast<double>(per_image) * static_cast<double>(dimension);
  if (total_values > 4.0e9)  // 16 GB of patch features
    throw error(errc::invalid_argument, "patchcore::fit: " + std::to_string(n) + " samples give " +
                                            detail::number_text(total_values) +
                                            " patch-feature values, more than the 4e9 a bank may be built from");
  const index_t patches = n * per_image;
  std::vector<float> all(static_cast<std::size_t>(patches * dimension));
  {
    tensor rows;
    detail::patch_feature_buffers buffers;
    constexpr index_t batch = 16;
    for (index_t start = 0; start < n; start += batch) {
      const index_t count = std::min(batch, n - start);
      detail::patch_features(train, start, count, cfg_.patch_size, rows, buffers);
      std::memcpy(all.data() + start * per_image * dimension, rows.data(), rows.bytes());
    }
  }

  const index_t keep = std::max<index_t>(1, static_cast<index_t>(std::llround(cfg_.coreset_fraction * static_cast<double>(patches))));
  fit_report report;
  if (keep >= patches) {
    impl_->bank = detail::memory_bank(std::move(all), dimension, bfloat16_search(cfg_));
  } else {
    detail::coreset_options o;
    o.count = keep;
    o.projection_dimension = cfg_.projection_dimension;
    o.start_points = cfg_.coreset_start_points;
    o.seed = cfg_.seed;
    if (options.on_progress)
      o.on_progress = [&](index_t kept) {
        fit_progress p;
        p.epoch = 0;
        p.epochs = 1;
        p.step = static_cast<long>(kept);
        p.steps = static_cast<long>(keep);
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        p.samples_per_second = elapsed > 0.0 ? static_cast<double>(n) * static_cast<double>(kept) / static_cast<double>(keep) / elapsed : 0.0;
        p.eta_seconds = kept > 0 ? elapsed * static_cast<double>(keep - kept) / static_cast<double>(kept) : 0.0;
        p.epoch_end = kept == keep;
        p.stage = "coreset";
        options.on_progress(p);
      };
    const std::vector<index_t> kept = detail::greedy_coreset(all.data(), patches, dimension, o);
    std::vector<float> rows(static_cast<std::size_t>(keep * dimension));
    for (std::size_t i = 0; i < kept.size(); ++i)
      std::memcpy(rows.data() + static_cast<index_t>(i) * dimension, all.data() + kept[i] * dimension,
                  static_cast<std::size_t>(dimension) * sizeof(float));
    impl_->bank = detail::memory_bank(std::move(rows), dimension, bfloat16_search(cfg_));
  }
  fitted_ = true;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  report.samples_per_second = report.seconds > 0.0 ? static_cast<double>(n) / report.seconds : 0.0;
  report.events.push_back("memory bank of " + std::to_string(impl_->bank.size()) + " of " + std::to_string(patches) +
                          " patch features (" + std::to_string(dimension) + " values each)");
  return report;
}

void patchcore::score(const feature_maps& features, const score_options& options, scores& out) const {
  if (!fitted_) throw error(errc::not_fitted, "patchcore::score called before fit() or load()");
  const index_t n = detail::check_features(features, cfg_.scales, "features");
  detail::check_score_options(options, cfg_.scales.size());
  const index_t map_h = detail::map_height(options, cfg_.scales), map_w = detail::map_width(options, cfg_.scales);
  const index_t grid_h = cfg_.scales[0].height, grid_w = cfg_.scales[0].width, per_image = grid_h * grid_w;
  const index_t dimension = cfg_.feature_dimension();
  const double offset = options.cell_offsets.empty() ? 0.0 : options.cell_offsets[0];
  // σ in map pixels: the configured cells of the first scale times the map's pixels per cell.
  const double sigma = cfg_.blur_sigma * 0.5 *
                       (static_cast<double>(map_h) / static_cast<double>(grid_h) + static_cast<double>(map_w) / static_cast<double>(grid_w));
  out.image.resize(static_cast<std::size_t>(n));
  out.maps.resize({n, 1, map_h, map_w}, layout::nchw);

  auto ws = impl_->pool.acquire();
  auto& st = ws->state<impl::score_state>(impl_->score_state_id);
  const detail::memory_bank& bank = impl_->bank;
  for (index_t start = 0; start < n; start += options.batch_size) {
    const index_t count = std::min(options.batch_size, n - start);
    detail::patch_features(features, start, count, cfg_.patch_size, st.rows, st.features);
    const index_t queries = count * per_image;
    st.squared.resize(static_cast<std::size_t>(queries));
    st.nearest.resize(static_cast<std::size_t>(queries));
    bank.nearest(st.rows.data(), queries, st.squared.data(), st.nearest.data(), st.search, ws->exec());

    st.patch_scores.resize({count, 1, grid_h, grid_w}, layout::nchw);
    float* patch = st.patch_scores.data();
    for (index_t i = 0; i < count; ++i) {
      index_t worst = i * per_image;
      for (index_t p = i * per_image; p < (i + 1) * per_image; ++p) {
        patch[p] = std::sqrt(st.squared[static_cast<std::size_t>(p)]);
        if (patch[p] > patch[worst]) worst = p;
      }
      double score = patch[worst];
      if (cfg_.reweight_neighbours > 1 && bank.size() > 1) {
        // Eq. 7: how far the worst patch is from the neighbourhood of its nearest bank feature.
        bank.k_nearest_of_row(st.nearest[static_cast<std::size_t>(worst)], cfg_.reweight_neighbours, st.neighbours, st.search);
        const float* q = st.rows.data() + worst * dimension;
        double largest = 0.0, sum = 0.0;
        st.neighbour_distances.resize(st.neighbours.size());
        for (std::size_t j = 0; j < st.neighbours.size(); ++j) {
          const float* b = bank.row(st.neighbours[j]);
          double d2 = 0.0;
          for (index_t d = 0; d < dimension; ++d) d2 += static_cast<double>(q[d] - b[d]) * static_cast<double>(q[d] - b[d]);
          const double dist = std::sqrt(d2);
          st.neighbour_distances[j] = dist;
          largest = std::max(largest, dist);
        }
        for (double dist : st.neighbour_distances) sum += std::exp(dist - largest);
        score *= 1.0 - std::exp(st.neighbour_distances[0] - largest) / sum;  // 1 − softmax(d)_0
      }
      out.image[static_cast<std::size_t>(start + i)] = score;
    }
    const view maps = out.maps.view().batch(start, count);
    upsample_bilinear(st.patch_scores.cview(), maps, st.maps, offset);
    if (sigma > 0.0) gaussian_blur(maps, maps, sigma, st.maps);
  }
}

// ------------------------------------------------------------------------------------------------
// Model files

model_file_contents patchcore::to_model_file() const {
  if (!fitted_) throw error(errc::not_fitted, "patchcore: nothing to save before fit()");
  model_file_contents m = detail::model_file_header(*this);
  m.tensors.push_back({"bank", {impl_->bank.size(), impl_->bank.dimension()}, impl_->bank.rows()});
  return m;
}

std::unique_ptr<patchcore> patchcore::from_model_file(const model_file_contents& m) {
  if (m.kind != "patchcore") throw error(errc::bad_file, "model file holds a '" + m.kind + "' detector, not patchcore");
  const patchcore_config cfg = from_detector_config<patchcore_config>(m.config, errc::bad_file);
  const stored_tensor& bank = m.tensor_named("bank");
  const index_t dimension = cfg.feature_dimension();
  if (bank.dims.size() != 2 || bank.dims[0] < 1 || bank.dims[1] != dimension ||
      static_cast<double>(bank.values.size()) != static_cast<double>(bank.dims[0]) * static_cast<double>(dimension))
    throw error(errc::bad_file, "model file tensor 'bank' is not a non-empty bank of " + std::to_string(dimension) +
                                    "-value rows");
  for (float v : bank.values)
    if (!std::isfinite(v)) throw error(errc::bad_file, "model file tensor 'bank' holds NaN or Inf");
  detail::require_tensor_count(m, 1);
  auto model = std::make_unique<patchcore>(cfg);
  model->impl_->bank = detail::memory_bank(bank.values, dimension, bfloat16_search(cfg));
  detail::restore_metadata(*model, m);
  model->fitted_ = true;
  return model;
}

namespace detail {

detector_registration patchcore_registration() {
  detector_registration r;
  r.info = {"patchcore", "PatchCore: a coreset memory bank of locally aggregated patch features (Roth et al. 2022)", 0};
  r.recommended = [](const feature_geometry& g) { return to_detector_config(patchcore_config::recommended(g.shapes)); };
  r.make = [](const detector_config& config) -> std::unique_ptr<detector> {
    return std::make_unique<patchcore>(from_detector_config<patchcore_config>(config));
  };
  r.load = [](const model_file_contents& contents) -> std::unique_ptr<detector> { return patchcore::from_model_file(contents); };
  return r;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
