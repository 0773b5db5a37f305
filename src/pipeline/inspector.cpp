#include "flowad/pipeline/inspector.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <cmath>
#include <numeric>

#include "core/timing.hpp"
#include "detectors/common.hpp"
#include "flowad/detail/random.hpp"
#include "flowad/detail/workspace_pool.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/io/image_resize.hpp"
#include "flowad/io/model_file.hpp"
#include "flowad/metrics/threshold.hpp"
#include "flowad/pipeline/auto_select.hpp"
#include "pipeline/model_schema.hpp"
#include "pipeline/selection_schema.hpp"

namespace flowad {
inline namespace v0 {

namespace fs = std::filesystem;

// ------------------------------------------------------------------------------------------------
// Configuration

pipeline_config pipeline_config::recommended(const std::string& extractor, const std::string& weights,
                                             const std::string& detector) {
  pipeline_config c;
  c.extractor = extractor;
  c.weights = weights;
  c.detector = detector;
  c.validate();
  return c;
}

void pipeline_config::validate() const {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "pipeline_config: " + what); };
  const std::vector<std::string> extractors = extractor_names();
  if (std::find(extractors.begin(), extractors.end(), extractor) == extractors.end()) {
    std::string known;
    for (const std::string& n : extractors) known += (known.empty() ? "" : ", ") + n;
    fail("unknown extractor '" + extractor + "' (known: " + known + ")");
  }
  detector_kind(detector);  // throws for an unknown kind
  const std::string side = std::to_string(max_image_side);
  if ((height > 0) != (width > 0) || height < 0 || width < 0 || height > max_image_side || width > max_image_side)
    fail("height and width must be both 0 (from the images) or both in [1, " + side + "], got " +
         std::to_string(height) + "x" + std::to_string(width));
  if (shorter_side < 8 || shorter_side > max_image_side)
    fail("shorter_side must be in [8, " + side + "], got " + std::to_string(shorter_side));
  if (neighbourhood < 1 || neighbourhood % 2 == 0 || neighbourhood > max_neighbourhood)
    fail("neighbourhood must be odd and in [1, " + std::to_string(max_neighbourhood) + "], got " +
         std::to_string(neighbourhood));
  if (pool_stride < 1 || pool_stride > max_pool_stride)
    fail("pool_stride must be in [1, " + std::to_string(max_pool_stride) + "], got " + std::to_string(pool_stride));
  if (embed_weights && weights.empty() && extractor != "filterbank") fail("embed_weights needs the weights' path");
}

input_size aspect_preserving_size(index_t image_height, index_t image_width, index_t shorter_side, index_t stride) {
  if (image_height <= 0 || image_width <= 0 || shorter_side <= 0 || stride <= 0)
    throw error(errc::invalid_argument, "aspect_preserving_size: sizes must be positive");
  const auto rounded = [stride](double v) {
    return std::max(stride, static_cast<index_t>(std::llround(v / static_cast<double>(stride))) * stride);
  };
  const double h = static_cast<double>(image_height), w = static_cast<double>(image_width), s = static_cast<double>(shorter_side);
  if (image_height <= image_width) return {rounded(s), rounded(s * w / h)};
  return {rounded(s * h / w), rounded(s)};
}

std::vector<fs::path> image_folder(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw error(errc::io_error, "image folder " + folder.string() + " does not exist or is not a folder");
  std::vector<fs::path> images;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    // An entry whose type cannot be told (a link in a loop) is no image, as read_mvtec_category treats it.
    std::error_code type_ec;
    if (it->is_regular_file(type_ec) && is_image_file_name(it->path())) images.push_back(it->path());
  }
  if (ec) throw error(errc::io_error, "cannot list " + folder.string() + ": " + ec.message());
  if (images.empty()) throw error(errc::empty_input, "folder " + folder.string() + " holds no images (.png, .jpg, .jpeg, .bmp)");
  std::sort(images.begin(), images.end());
  return images;
}

std::vector<std::string> pipeline_levels(const std::vector<std::string>& requested, const detector_info& detector,
                                         const extractor& ex) {
  std::vector<std::string> levels = requested;
  if (levels.empty()) {
    const std::vector<std::string> names = ex.level_names();
    const std::size_t recipe = detector.recipe_levels;
    levels = recipe > 0 && recipe <= names.size()
                 ? std::vector<std::string>(names.end() - static_cast<std::ptrdiff_t>(recipe), names.end())
                 : ex.default_levels();
  }
  // A detector that reads the image gets it whatever the levels; where the user put it is checked
  // with the other levels (kept_levels: first or nowhere).
  if (detector.reads_image && std::find(levels.begin(), levels.end(), image_level) == levels.end())
    levels.insert(levels.begin(), image_level);
  return levels;
}

feature_options pipeline_features(const pipeline_config& config, const extractor& ex, index_t image_height,
                                  index_t image_width) {
  config.validate();
  feature_options fo;
  fo.neighbourhood = config.neighbourhood;
  fo.pool_stride = config.pool_stride;
  detector_info kind = detector_kind(config.detector);
  kind.reads_image = reads_image(kind, config.settings);
  fo.levels = pipeline_levels(config.levels, kind, ex);
  if (config.height > 0) {
    fo.height = config.height;
    fo.width = config.width;
  } else {
    const index_t h = image_height > 0 ? image_height : config.shorter_side;
    const index_t w = image_width > 0 ? image_width : config.shorter_side;
    const input_size size = aspect_preserving_size(h, w, config.shorter_side, feature_stride(ex, fo));
    fo.height = size.height;
    fo.width = size.width;
  }
  return fo;
}

feature_geometry feature_geometry_of(const extractor& ex, const feature_options& features) {
  feature_geometry g;
  g.shapes = feature_shapes(ex, features);
  for (const kept_level& l : kept_levels(ex, features)) g.strides.push_back(l.image ? 1 : l.stride * features.pool_stride);
  g.position_statistics = ex.position_statistics();
  return g;
}

detector_config pipeline_detector_config(const pipeline_config& config, const extractor& ex, const feature_options& features) {
  detector_config dc = recommended_config(config.detector, feature_geometry_of(ex, features));
  dc.update(config.settings);
  return dc;
}

// ------------------------------------------------------------------------------------------------
// State

struct inspector::state {
  pipeline_config config;
  std::unique_ptr<extractor> ex;
  weight_map embedded;  // the extractor's weights, kept to be written into the model file
  std::unique_ptr<detector> model;
  feature_options features;
  std::vector<double> cell_offsets;
  std::optional<decision_threshold> threshold;
  heatmap_options heatmap;
  std::optional<detector_selection> selection;
  // What scoring images in memory keeps between calls, one per concurrent call: the extractor's
  // workspace, the batch's features and one chunk's scores (the detectors keep their own buffers).
  struct scoring_buffers {
    extraction_buffers extraction;
    std::vector<tensor> features;
    scores chunk;
  };
  mutable detail::object_pool<scoring_buffers> scoring_pool;

  void require_fitted(const char* what) const {
    if (!model || !model->fitted()) throw error(errc::not_fitted, std::string("inspector::") + what + " called before fit() or load()");
  }
  score_options scoring(index_t map_height, index_t map_width) const {
    score_options so;
    so.map_height = map_height > 0 ? map_height : features.height;
    so.map_width = map_width > 0 ? map_width : features.width;
    so.cell_offsets = cell_offsets;
    return so;
  }
};

inspector::inspector(std::unique_ptr<state> s) : state_(std::move(s)) {}

inspector::inspector(pipeline_config config) : state_(std::make_unique<state>()) {
  config.validate();
  state_->ex = make_extractor(config.extractor, config.weights);
  if (config.embed_weights && !config.weights.empty()) {
    std::vector<std::string> names;
    for (const weight_spec& w : state_->ex->weight_specs()) names.push_back(w.name);
    state_->embedded = read_weights(config.weights, names);
  }
  state_->config = std::move(config);
}

inspector::~inspector() = default;
inspector::inspector(inspector&&) noexcept = default;
inspector& inspector::operator=(inspector&&) noexcept = default;

bool inspector::fitted() const noexcept { return state_->model && state_->model->fitted(); }
const pipeline_config& inspector::config() const noexcept { return state_->config; }
const extractor& inspector::features() const noexcept { return *state_->ex; }
const std::optional<decision_threshold>& inspector::threshold() const noexcept { return state_->threshold; }
const heatmap_options& inspector::heatmap_range() const noexcept { return state_->heatmap; }

const detector& inspector::model() const {
  state_->require_fitted("model");
  return *state_->model;
}

const feature_options& inspector::feature_settings() const {
  state_->require_fitted("feature_settings");
  return state_->features;
}

std::optional<detector_selection> inspector::selection() const { return state_->selection; }

void inspector::set_selection(const detector_selection& selection) {
  if (selection.chosen != state_->config.detector)
    throw error(errc::invalid_argument, "inspector::set_selection: the selection chose '" + selection.chosen +
                                            "' but this inspector's detector is '" + state_->config.detector + "'");
  selection.chosen_figures();  // throws when the chosen kind is not a candidate
  state_->selection = selection;
}

void inspector::set_threshold(double value) {
  if (!std::isfinite(value)) throw error(errc::invalid_argument, "inspector::set_threshold: the threshold must be finite");
  decision_threshold t;
  t.value = value;
  t.target_fpr = 0.0;
  t.held_out_images = 0;
  state_->threshold = t;
}

// ------------------------------------------------------------------------------------------------
// Fitting

namespace {

// The colour range of heatmaps: from the median of the training maps to a value well above their
// 99th percentile, so that normal images stay cold and defects saturate.
heatmap_options heatmap_range_of(const tensor& maps) {
  std::vector<float> values(maps.data(), maps.data() + maps.numel());
  const auto at = [&](double q) {
    const std::size_t k = std::min(values.size() - 1, static_cast<std::size_t>(q * static_cast<double>(values.size())));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
    return values[k];
  };
  heatmap_options h;
  const float median = at(0.5), p99 = at(0.99);
  h.lo = median;
  h.hi = median + 4.0f * (p99 - median);
  if (!(h.hi > h.lo)) h.hi = h.lo + std::max(1e-6f, std::abs(h.lo) * 1e-3f);
  return h;
}

// The calibration fit() runs for `count` images, after checking the options.
calibration_method resolve_calibration(std::size_t count, const inspector_fit_options& options) {
  if (!(options.holdout >= 0.0 && options.holdout < 1.0))
    throw error(errc::invalid_argument, "inspector_fit_options.holdout must be in [0, 1), got " + detail::number_text(options.holdout));
  if (!(options.target_fpr > 0.0 && options.target_fpr < 1.0))
    throw error(errc::invalid_argument, "inspector_fit_options.target_fpr must be in (0, 1), got " + detail::number_text(options.target_fpr));
  if (options.calibration == calibration_method::holdout) return calibration_method::holdout;
  if (options.calibration_folds < 2)
    throw error(errc::invalid_argument, "inspector_fit_options.calibration_folds must be at least 2, got " +
                                            std::to_string(options.calibration_folds));
  if (options.calibration == calibration_method::out_of_fold) {
    if (options.calibration_folds > count)
      throw error(errc::invalid_argument, "out-of-fold calibration with " + std::to_string(options.calibration_folds) +
                                              " folds needs at least as many images, got " + std::to_string(count));
    return calibration_method::out_of_fold;
  }
  // Automatic: holdout 0 keeps its old meaning (no threshold); too few images for the folds to hold
  // two each fall back to the single holdout.
  if (options.holdout == 0.0 || count < 2 * options.calibration_folds) return calibration_method::holdout;
  return calibration_method::out_of_fold;
}

// The indices of the images fitted on and held out: a seeded shuffle, the last `held` held out.
void split_images(std::size_t count, const inspector_fit_options& options, std::vector<std::size_t>& fit,
                  std::vector<std::size_t>& held_out) {
  std::vector<std::size_t> order(count);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::size_t held = 0;
  if (options.holdout > 0.0) {
    if (count < 2) throw error(errc::empty_input, "holding images out for the threshold needs at least 2 images, got " + std::to_string(count));
    held = std::max<std::size_t>(1, static_cast<std::size_t>(options.holdout * static_cast<double>(count)));
    detail::rng r(options.holdout_seed + 17);
    r.shuffle(order);
  }
  fit.assign(order.begin(), order.end() - static_cast<std::ptrdiff_t>(held));
  held_out.assign(order.end() - static_cast<std::ptrdiff_t>(held), order.end());
}

// The rows of `features` (one tensor per scale, a batch of rows) of the given images, image i's rows
// being [first_row[i], first_row[i + 1]), in the order of `which`.
std::vector<tensor> gather_rows(const std::vector<tensor>& features, const std::vector<index_t>& first_row,
                                const std::vector<std::size_t>& which) {
  index_t rows = 0;
  for (std::size_t i : which) rows += first_row[i + 1] - first_row[i];
  std::vector<tensor> out;
  for (const tensor& f : features) {
    out.emplace_back(shape4{rows, f.c(), f.h(), f.w()}, f.layout());
    index_t written = 0;
    for (std::size_t i : which) {
      const index_t n = first_row[i + 1] - first_row[i];
      copy(f.cview().batch(first_row[i], n), out.back().view().batch(written, n));
      written += n;
    }
  }
  return out;
}

// Images a detector scores at once. Its intermediates grow with the batch, while scoring more at once
// gains about 5% at most (FCL at batch 16, docs/performance.md): in chunks of 4 every detector's scoring
// process stays below the best PyTorch variant's memory, in chunks of 8 FastFlow's and FCL's do not.
constexpr index_t scoring_chunk = 4;

// model.score of `features` into `out`, scoring_chunk images at a time through `chunk`. Every batch the
// inspector scores goes through it: fit's scoring of the training set (the heatmap range) and of the
// calibration images too.
void score_in_chunks(const detector& model, const std::vector<tensor>& features, const score_options& so, scores& out,
                     scores& chunk) {
  const index_t n = features.front().n();
  if (n <= scoring_chunk) {
    model.score(views_of(features), so, out);
    return;
  }
  feature_maps part(features.size());
  out.image.resize(static_cast<std::size_t>(n));
  for (index_t first = 0; first < n; first += scoring_chunk) {
    const index_t count = std::min(scoring_chunk, n - first);
    for (std::size_t k = 0; k < features.size(); ++k) part[k] = features[k].cview().batch(first, count);
    model.score(part, so, chunk);
    if (first == 0) out.maps.resize({n, 1, chunk.maps.h(), chunk.maps.w()}, layout::nchw);
    copy(chunk.maps.cview(), out.maps.view().batch(first, count));
    std::copy(chunk.image.begin(), chunk.image.end(), out.image.begin() + first);
  }
}
scores score_in_chunks(const detector& model, const std::vector<tensor>& features, const score_options& so) {
  scores out, chunk;
  score_in_chunks(model, features, so, out, chunk);
  return out;
}

// Features of rotated copies (detector::rotations()) of `count` images, image i read by load(i) with
// copies at angles_of(i), an image's copies consecutive. Images are read a few at a time, so that
// only their features are held.
std::vector<tensor> extract_copies(const extractor& ex, std::size_t count, const std::function<byte_image(std::size_t)>& load,
                                   const std::function<std::vector<double>(std::size_t)>& angles_of,
                                   const feature_options& fo, const progress_callback& progress) {
  std::vector<std::vector<double>> angles(count);
  index_t total = 0;
  for (std::size_t i = 0; i < count; ++i) {
    angles[i] = angles_of(i);
    total += static_cast<index_t>(angles[i].size());
  }
  std::vector<tensor> out;
  for (const scale_shape& s : feature_shapes(ex, fo)) out.emplace_back(shape4{total, s.channels, s.height, s.width}, layout::nhwc);
  const std::size_t chunk = static_cast<std::size_t>(std::max<index_t>(1, fo.batch_size));
  index_t written = 0;
  if (progress) progress(0, static_cast<long>(count));
  for (std::size_t first = 0; first < count; first += chunk) {
    const std::size_t last = std::min(count, first + chunk);
    std::vector<byte_image> images;
    std::vector<const byte_image*> pointers;
    std::vector<image_copy> copies;
    for (std::size_t i = first; i < last; ++i) images.push_back(load(i));
    for (std::size_t i = first; i < last; ++i) {
      pointers.push_back(&images[i - first]);
      for (double a : angles[i]) copies.push_back({i - first, a});
    }
    if (copies.empty()) continue;
    const std::vector<tensor> features = extract_features(ex, pointers, copies, fo);
    const index_t n = static_cast<index_t>(copies.size());
    for (std::size_t k = 0; k < out.size(); ++k) copy(features[k].cview(), out[k].view().batch(written, n));
    written += n;
    if (progress) progress(static_cast<long>(last), static_cast<long>(count));
  }
  return out;
}

// Scores of `count` images (read by load(i)) as the mean of the detector's scores of their test
// copies (detector::rotations().test_angles); no maps. One image's copies are scored at a time.
scores score_copies(const detector& model, const extractor& ex, const feature_options& fo, std::size_t count,
                    const std::function<byte_image(std::size_t)>& load, const score_options& so,
                    const progress_callback& progress) {
  const std::vector<double> angles = model.rotations().test_angles;
  scores out;
  out.image.resize(count);
  scores copy_scores;
  if (progress) progress(0, static_cast<long>(count));
  for (std::size_t i = 0; i < count; ++i) {
    const std::vector<tensor> features =
        extract_copies(ex, 1, [&](std::size_t) { return load(i); }, [&](std::size_t) { return angles; }, fo, {});
    model.score(views_of(features), so, copy_scores);
    double sum = 0.0;
    for (double v : copy_scores.image) sum += v;
    out.image[i] = sum / static_cast<double>(copy_scores.image.size());
    if (progress) progress(static_cast<long>(i + 1), static_cast<long>(count));
  }
  out.maps.resize({static_cast<index_t>(count), 1, 0, 0}, layout::nchw);
  return out;
}

}  // namespace

std::vector<std::size_t> calibration_fold_of(std::size_t count, std::size_t folds, std::uint64_t seed) {
  if (folds < 2 || folds > count)
    throw error(errc::invalid_argument, "calibration folds must be in [2, images] = [2, " + std::to_string(count) +
                                            "], got " + std::to_string(folds));
  std::vector<std::size_t> order(count);
  std::iota(order.begin(), order.end(), std::size_t{0});
  detail::rng r(seed + 17);  // the shuffle split_images makes with the same seed
  r.shuffle(order);
  std::vector<std::size_t> fold(count);
  for (std::size_t j = 0; j < count; ++j) fold[order[j]] = j % folds;
  return fold;
}

std::string calibration_name(const decision_threshold& t) {
  if (t.folds > 0) return "out_of_fold";
  return t.target_fpr > 0.0 ? "holdout" : "manual";
}

// Where fit() reads its images from: files or memory.
struct inspector::image_source {
  std::size_t count = 0;
  std::function<byte_image(std::size_t)> load;
  std::function<input_size()> first_size;
  std::function<std::vector<tensor>(const std::vector<std::size_t>&, const feature_options&, const progress_callback&)> extract;
};

inspector_fit_report inspector::fit(const std::vector<fs::path>& good_images, const inspector_fit_options& options) {
  inspector::image_source source;
  source.count = good_images.size();
  source.load = [&](std::size_t i) { return read_image(good_images[i]); };
  source.first_size = [&] {
    const byte_image first = read_image(good_images.front());
    return input_size{first.height(), first.width()};
  };
  source.extract = [&](const std::vector<std::size_t>& which, const feature_options& fo, const progress_callback& progress) {
    std::vector<fs::path> paths;
    for (std::size_t i : which) paths.push_back(good_images[i]);
    return extract_features(*state_->ex, paths, fo, progress);
  };
  return fit_from(source, options);
}

inspector_fit_report inspector::fit(const std::vector<byte_image>& good_images, const inspector_fit_options& options) {
  inspector::image_source source;
  source.count = good_images.size();
  source.load = [&](std::size_t i) { return good_images[i]; };
  source.first_size = [&] { return input_size{good_images.front().height(), good_images.front().width()}; };
  source.extract = [&](const std::vector<std::size_t>& which, const feature_options& fo, const progress_callback& progress) {
    std::vector<const byte_image*> pointers;
    for (std::size_t i : which) pointers.push_back(&good_images[i]);
    return extract_features(*state_->ex, pointers, fo, progress);
  };
  return fit_from(source, options);
}

inspector_fit_report inspector::fit_from(const image_source& images, const inspector_fit_options& options) {
  state& st = *state_;
  const auto started = std::chrono::steady_clock::now();
  if (images.count == 0) throw error(errc::empty_input, "inspector::fit got no images");
  const calibration_method calibration = resolve_calibration(images.count, options);
  const bool out_of_fold = calibration == calibration_method::out_of_fold;
  std::vector<std::size_t> fit_indices, held_indices;
  if (out_of_fold) {
    fit_indices.resize(images.count);
    std::iota(fit_indices.begin(), fit_indices.end(), std::size_t{0});
  } else {
    split_images(images.count, options, fit_indices, held_indices);
  }
  const std::size_t fits = out_of_fold ? options.calibration_folds + 1 : 1;

  const extractor& ex = *st.ex;
  index_t first_height = 0, first_width = 0;
  if (st.config.height == 0) {
    const input_size first = images.first_size();
    first_height = first.height;
    first_width = first.width;
  }
  const feature_options fo = pipeline_features(st.config, ex, first_height, first_width);
  const detector_config detector_settings = pipeline_detector_config(st.config, ex, fo);
  std::unique_ptr<detector> model = make_detector(st.config.detector, detector_settings);
  const std::vector<double> offsets = map_cell_offsets(ex, fo);
  score_options so;
  so.map_height = fo.height;
  so.map_width = fo.width;
  so.cell_offsets = offsets;
  model->check_score_options(so);  // before fitting, not after

  inspector_fit_report report;
  report.fit_images = fit_indices.size();
  report.held_out_images = held_indices.size();
  // A detector that asks for rotated copies (DifferNet) fits on a fixed seeded set of copies per image,
  // drawn once here because features are extracted once before fitting.
  const image_rotations rotations = model->rotations();
  std::vector<tensor> train;
  if (rotations.training_copies > 0)
    train = extract_copies(
        ex, fit_indices.size(), [&](std::size_t i) { return images.load(fit_indices[i]); },
        [&](std::size_t i) { return rotations.training_angles(fit_indices[i]); }, fo, options.on_extract);
  else
    train = images.extract(fit_indices, fo, options.on_extract);
  report.extract_seconds = detail::seconds_since(started);
  // The final model first, exactly as without calibration: evaluation measures this one.
  if (options.on_fit) options.on_fit({1, fits, true, 0, fit_indices.size()});
  report.training = model->fit(views_of(train), options);

  // A detector without maps keeps the default heatmap range (heatmap() refuses it anyway).
  const heatmap_options range = model->localises() ? heatmap_range_of(score_in_chunks(*model, train, so).maps) : heatmap_options{};
  std::optional<decision_threshold> threshold;
  if (out_of_fold) {
    const auto calibration_started = std::chrono::steady_clock::now();
    // Every image's rows in `train` (its rotated copies are consecutive), fitted on in index order.
    std::vector<index_t> first_row{0};
    for (std::size_t i = 0; i < images.count; ++i)
      first_row.push_back(first_row.back() +
                          (rotations.training_copies > 0 ? static_cast<index_t>(rotations.training_angles(i).size()) : 1));
    const std::vector<std::size_t> fold_of = calibration_fold_of(images.count, options.calibration_folds, options.holdout_seed);
    report.calibration_scores.assign(images.count, 0.0);
    for (std::size_t fold = 0; fold < options.calibration_folds; ++fold) {
      std::vector<std::size_t> inside, outside;
      for (std::size_t i = 0; i < images.count; ++i) (fold_of[i] == fold ? outside : inside).push_back(i);
      if (options.on_fit) options.on_fit({fold + 2, fits, false, fold, inside.size()});
      // The features are extracted once; each fold's model gets a copy of the other folds' rows.
      std::unique_ptr<detector> fold_model = make_detector(st.config.detector, detector_settings);
      const fit_report fold_report = fold_model->fit(views_of(gather_rows(train, first_row, inside)), options);
      for (const std::string& e : fold_report.events)
        report.training.events.push_back("calibration fold " + std::to_string(fold + 1) + ": " + e);
      const scores held =
          rotations.test_angles.empty()
              ? score_in_chunks(*fold_model, gather_rows(train, first_row, outside), so)
              : score_copies(*fold_model, ex, fo, outside.size(), [&](std::size_t i) { return images.load(outside[i]); }, so, {});
      for (std::size_t i = 0; i < outside.size(); ++i) report.calibration_scores[outside[i]] = held.image[i];
    }
    report.calibration_fits = options.calibration_folds;
    report.calibration_seconds = detail::seconds_since(calibration_started);
  }
  train.clear();
  if (!out_of_fold && !held_indices.empty()) {
    const scores held =
        rotations.test_angles.empty()
            ? score_in_chunks(*model, images.extract(held_indices, fo, options.on_extract), so)
            : score_copies(*model, ex, fo, held_indices.size(), [&](std::size_t i) { return images.load(held_indices[i]); }, so,
                           options.on_extract);
    report.calibration_scores = held.image;
  }
  if (!report.calibration_scores.empty()) {
    const fpr_threshold t = threshold_for_fpr(span<const double>(report.calibration_scores), options.target_fpr);
    threshold = decision_threshold{t.threshold, options.target_fpr, report.calibration_scores.size(), t.bounded,
                                   out_of_fold ? options.calibration_folds : 0};
  }

  st.model = std::move(model);
  st.features = fo;
  st.cell_offsets = offsets;
  st.heatmap = range;
  st.threshold = threshold;
  report.seconds = detail::seconds_since(started);
  return report;
}

// ------------------------------------------------------------------------------------------------
// Scoring

scores inspector::score(const std::vector<byte_image>& images, index_t map_height, index_t map_width) const {
  scores out;
  score(images, out, map_height, map_width);
  return out;
}

void inspector::score(const std::vector<byte_image>& images, scores& out, index_t map_height, index_t map_width) const {
  state_->require_fitted("score");
  if (images.empty()) throw error(errc::empty_input, "inspector::score got no images");
  if (!state_->model->rotations().test_angles.empty()) {
    out = score_copies(*state_->model, *state_->ex, state_->features, images.size(),
                       [&](std::size_t i) { return images[i]; }, state_->scoring(map_height, map_width), {});
    return;
  }
  auto buffers = state_->scoring_pool.acquire();
  extract_features(*state_->ex, images, state_->features, buffers->features, buffers->extraction);
  score_in_chunks(*state_->model, buffers->features, state_->scoring(map_height, map_width), out, buffers->chunk);
}

scores inspector::score(const std::vector<fs::path>& images, index_t map_height, index_t map_width,
                        const progress_callback& on_extract) const {
  state_->require_fitted("score");
  if (images.empty()) throw error(errc::empty_input, "inspector::score got no images");
  if (!state_->model->rotations().test_angles.empty())
    return score_copies(*state_->model, *state_->ex, state_->features, images.size(),
                        [&](std::size_t i) { return read_image(images[i]); }, state_->scoring(map_height, map_width),
                        on_extract);
  return score_in_chunks(*state_->model, extract_features(*state_->ex, images, state_->features, on_extract),
                         state_->scoring(map_height, map_width));
}

namespace {

// Sample i of maps (N x 1 x H x W) resampled to height x width as a 1 x 1 x height x width tensor.
tensor map_at_size(const tensor& maps, index_t i, index_t height, index_t width) {
  float_image map(maps.h(), maps.w(), 1);
  copy(maps.cview().batch(i, 1), view(map.data(), {1, 1, maps.h(), maps.w()}, layout::nchw));
  const float_image resized = (height == maps.h() && width == maps.w()) ? map : resize_bilinear(map, height, width);
  tensor out({1, 1, height, width});
  std::copy(resized.data(), resized.data() + resized.size(), out.data());
  return out;
}

}  // namespace

std::vector<verdict> inspector::inspect(const std::vector<byte_image>& images) const {
  const scores s = score(images);
  std::vector<verdict> out(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    out[i].score = s.image[i];
    out[i].anomalous = state_->threshold && s.image[i] >= state_->threshold->value;
    // A detector that does not localise gives no map: the verdict's map stays empty (0 elements).
    if (state_->model->localises())
      out[i].map = map_at_size(s.maps, static_cast<index_t>(i), images[i].height(), images[i].width());
  }
  return out;
}

verdict inspector::inspect(const byte_image& image) const {
  std::vector<verdict> v = inspect(std::vector<byte_image>{image});
  return std::move(v.front());
}

std::vector<verdict> inspector::inspect(const std::vector<fs::path>& images) const {
  std::vector<verdict> out;
  out.reserve(images.size());
  // In batches, so that memory stays bounded for long lists.
  const std::size_t batch = static_cast<std::size_t>(state_->features.batch_size);
  for (std::size_t start = 0; start < images.size(); start += batch) {
    std::vector<byte_image> chunk;
    for (std::size_t i = start; i < std::min(images.size(), start + batch); ++i) chunk.push_back(read_image(images[i]));
    for (verdict& v : inspect(chunk)) out.push_back(std::move(v));
  }
  return out;
}

byte_image inspector::heatmap(const byte_image& image, const verdict& v, const byte_image* ground_truth) const {
  state_->require_fitted("heatmap");
  if (!state_->model->localises())
    throw error(errc::invalid_argument, std::string("inspector::heatmap: the detector '") + state_->model->kind() +
                                            "' does not localise anomalies, so there is no map to draw");
  return render_heatmap(image, v.map.cview(), state_->heatmap, ground_truth);
}

// ------------------------------------------------------------------------------------------------
// Model files

void inspector::save(const fs::path& path) const {
  state_->require_fitted("save");
  const state& st = *state_;
  detail::pipeline_record r;
  r.extractor = st.config.extractor;
  r.weights_embedded = st.config.embed_weights && !st.embedded.empty();
  r.weights = st.config.weights.empty() || r.weights_embedded ? std::string() : fs::absolute(st.config.weights).string();
  r.features = st.features;
  r.cell_offsets = st.cell_offsets;
  r.threshold = st.threshold;
  r.heatmap = st.heatmap;
  // The records go into a copy of the detector's metadata: save() is const and may run beside other
  // threads' inspect() and save() (writing them into the detector itself raced on its metadata).
  std::map<std::string, std::string> metadata = st.model->metadata();
  detail::write_pipeline_record(r, metadata);
  detail::write_selection_record(st.selection, metadata);
  model_file_contents m = st.model->to_model_file();
  m.metadata.assign(metadata.begin(), metadata.end());
  if (r.weights_embedded)
    for (const auto& [name, array] : st.embedded)
      m.tensors.push_back({detail::extractor_tensor_prefix + name, array.shape,
                           std::vector<float>(array.data.begin(), array.data.end())});
  write_model_file(path, m);
}

inspector inspector::load(const fs::path& path) {
  const model_file_contents contents = read_model_file(path);
  const std::string origin = path.string();
  std::unique_ptr<detector> model;
  try {
    model = detector_from_model_file(contents);
  } catch (const error& e) {
    if (e.code() == errc::bad_file) throw error(errc::bad_file, origin + ": " + e.message());
    throw;
  }
  const detail::pipeline_record r = detail::read_pipeline_record(*model, origin);

  auto st = std::make_unique<state>();
  if (r.weights_embedded) {
    for (const stored_tensor& t : contents.tensors) {
      if (!detail::is_extractor_tensor(t)) continue;
      npy_array a;
      a.shape = t.dims;
      a.data.assign(t.values.begin(), t.values.end());
      st->embedded.emplace(t.name.substr(std::string(detail::extractor_tensor_prefix).size()), std::move(a));
    }
    if (st->embedded.empty())
      throw error(errc::bad_file, origin + ": the entry 'pipeline.weights_embedded' is true but the file holds no " +
                                      "extractor weights (tensors " + detail::extractor_tensor_prefix + "*)");
    try {
      st->ex = make_extractor(r.extractor, st->embedded, origin);
    } catch (const error& e) {
      throw error(errc::bad_file, origin + ": the embedded weights (tensors " + detail::extractor_tensor_prefix +
                                      "*) do not fit 'pipeline.extractor' = '" + r.extractor + "': " + e.message());
    }
  } else {
    try {
      st->ex = make_extractor(r.extractor, r.weights);
    } catch (const error& e) {
      // Weights that are gone are the machine's problem; anything else is the record's.
      const std::string what = origin + ": cannot rebuild the extractor from 'pipeline.extractor' = '" + r.extractor +
                               "', 'pipeline.weights' = '" + r.weights +
                               "' and 'pipeline.weights_embedded' = 'false': " + e.message();
      throw error(e.code() == errc::io_error ? errc::io_error : errc::bad_file, what);
    }
  }
  try {
    kept_levels(*st->ex, r.features);  // throws naming a level the extractor does not have
  } catch (const error& e) {
    throw error(errc::bad_file, origin + ": the entry 'pipeline.levels': " + e.message());
  }
  const std::vector<scale_shape> shapes = feature_shapes(*st->ex, r.features);
  if (shapes != model->input_shapes())
    throw error(errc::bad_file, origin + ": the entries 'pipeline.height', 'pipeline.width', 'pipeline.levels' and " +
                                    "'pipeline.pool_stride' make features of shapes " + to_config_text(shapes) +
                                    " but the detector takes " + to_config_text(model->input_shapes()));
  pipeline_config& c = st->config;
  c.extractor = r.extractor;
  c.weights = r.weights;
  c.embed_weights = r.weights_embedded;
  c.height = r.features.height;
  c.width = r.features.width;
  c.levels = r.features.levels;
  c.neighbourhood = r.features.neighbourhood;
  c.pool_stride = r.features.pool_stride;
  c.detector = model->kind();
  st->features = r.features;
  st->cell_offsets = r.cell_offsets;
  st->threshold = r.threshold;
  st->heatmap = r.heatmap;
  st->selection = detail::read_selection_record(*model, origin);
  try {
    model->check_score_options(st->scoring(0, 0));  // as fit() does: whatever else the detector asks of them
  } catch (const error& e) {
    throw error(errc::bad_file, origin + ": the recorded pipeline does not fit the detector: " + e.message());
  }
  st->model = std::move(model);
  return inspector(std::move(st));
}

}  // namespace v0
}  // namespace flowad
