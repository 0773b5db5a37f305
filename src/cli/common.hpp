// What the fit, score, eval and demo commands share: feature and training options, the pipeline
// metadata a model carries, heatmap output and a small JSON writer.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/model_options.hpp"
#include "cli/progress.hpp"
#include "flowad/extract/extractor.hpp"
#include "flowad/io/heatmap.hpp"
#include "flowad/io/image.hpp"
#include "flowad/io/image_resize.hpp"
#include "flowad/pipeline/evaluate.hpp"
#include "flowad/pipeline/features.hpp"
#include "flowad/scoring/aggregate.hpp"

namespace flowad {
namespace cli {

namespace fs = std::filesystem;

// ---- features ------------------------------------------------------------------------------------

inline const char* feature_options_help() {
  return "  --extractor NAME     filterbank (default, no weights), resnet18, mobilenet_v2\n"
         "  --weights PATH       weights of resnet18 (folder of .npy) or mobilenet_v2 (.npz)\n"
         "  --size S             images are resized to S x S (default 256)\n"
         "  --levels A,B         extractor levels to use (default: the two deepest; all for filterbank)\n"
         "  --neighbourhood K    replace each feature vector by the mean of its K x K neighbours (odd; default 1:\n"
         "                       none; PatchCore aggregates 3 x 3)\n"
         "  --pool-stride P      keep every P-th cell of each (aggregated) map (default 1; MSFlow pools with\n"
         "                       --neighbourhood 3 --pool-stride 2 on images twice the size)\n";
}

struct feature_setup {
  std::string extractor_name = "filterbank";
  std::string weights;
  feature_options options;
};

inline feature_setup feature_setup_from(const args& a) {
  feature_setup f;
  f.extractor_name = a.get("extractor", f.extractor_name);
  f.weights = a.get("weights", "");
  f.options.image_size = a.integer("size", 256);
  if (a.has("levels")) f.options.levels = codec::split(a.get("levels"), ',');
  f.options.neighbourhood = a.integer("neighbourhood", 1);
  f.options.pool_stride = a.integer("pool-stride", 1);
  return f;
}

// Model metadata that lets `flowad score` rebuild the features a model was fitted on.
inline void record_pipeline(detector& model, const feature_setup& f, const extractor& ex) {
  model.set_metadata("pipeline.extractor", f.extractor_name);
  model.set_metadata("pipeline.weights", f.weights.empty() ? "" : fs::absolute(f.weights).string());
  model.set_metadata("pipeline.image_size", std::to_string(f.options.image_size));
  std::string levels;
  for (std::size_t i : level_indices(ex, f.options)) levels += (levels.empty() ? "" : ",") + ex.levels()[i].name;
  model.set_metadata("pipeline.levels", levels);
  model.set_metadata("pipeline.neighbourhood", std::to_string(f.options.neighbourhood));
  model.set_metadata("pipeline.pool_stride", std::to_string(f.options.pool_stride));
}

inline feature_setup pipeline_of(const detector& model) {
  const auto& m = model.metadata();
  const auto it = m.find("pipeline.extractor");
  if (it == m.end())
    throw error(errc::invalid_argument, "the model does not record how its features were made (it was fitted on "
                                        "feature files); score it with --features");
  feature_setup f;
  f.extractor_name = it->second;
  f.weights = m.at("pipeline.weights");
  f.options.image_size = codec::parse_index("pipeline.image_size", m.at("pipeline.image_size"), 1, 1 << 16);
  f.options.levels = codec::split(m.at("pipeline.levels"), ',');
  // Models fitted before local aggregation existed used none.
  if (m.count("pipeline.neighbourhood"))
    f.options.neighbourhood = codec::parse_index("pipeline.neighbourhood", m.at("pipeline.neighbourhood"), 1, 63);
  if (m.count("pipeline.pool_stride"))
    f.options.pool_stride = codec::parse_index("pipeline.pool_stride", m.at("pipeline.pool_stride"), 1, 8);
  return f;
}

// Extracts with a progress bar.
inline std::vector<tensor> extract_with_progress(const extractor& ex, const std::vector<fs::path>& images,
                                                 const feature_options& options, const std::string& label) {
  progress bar(label, static_cast<long>(images.size()), "img");
  return extract_features(ex, images, options, [&](long done, long) { bar.update(done); });
}

// ---- training ------------------------------------------------------------------------------------

inline const char* fit_options_help() {
  return "  --epochs N           training epochs (default 16)\n"
         "  --batch B            batch size (default 16)\n"
         "  --lr X               Adam learning rate (default 1e-3, with a 2-epoch warm-up and cosine decay)\n"
         "  --train-seed S       shuffling seed (default 0)\n"
         "  --input-noise S      Gaussian noise added to the training features, in channel standard deviations\n"
         "                       (default 0: none)\n";
}

inline fit_options fit_options_from(const args& a) {
  fit_options o;
  o.epochs = static_cast<int>(a.integer("epochs", 16));
  o.batch_size = static_cast<int>(a.integer("batch", 16));
  o.optimizer.learning_rate = static_cast<float>(a.number("lr", 1e-3));
  o.schedule.warmup_epochs = std::min(2.0, static_cast<double>(o.epochs) / 4.0);
  o.seed = static_cast<std::uint64_t>(a.integer("train-seed", 0));
  o.input_noise = a.number("input-noise", 0.0);
  return o;
}

// Adds a progress bar (steps, loss, images/s, ETA) to fit options.
inline void show_fit_progress(fit_options& o, progress& bar) {
  o.on_progress = [&bar](const fit_progress& p) {
    char note[96];
    std::snprintf(note, sizeof note, "epoch %d/%d loss %.4f", p.epoch + 1, p.epochs, p.loss);
    bar.update(p.step, note, p.epoch_end);
  };
}

// Optimiser steps of a fit on `samples` samples.
inline long fit_steps(const fit_options& o, std::size_t samples) {
  const std::size_t batch = static_cast<std::size_t>(o.batch_size);
  return o.epochs * static_cast<long>((samples + batch - 1) / batch);
}

// The progress bars of an evaluation: one per feature-extraction pass and one for the fit. Wires
// itself into `options`, which must not outlive it.
class evaluation_progress {
 public:
  evaluation_progress(evaluation_options& options, std::size_t train_images)
      : fit_bar_("fit", fit_steps(options.fit, train_images), "step") {
    const long batch = static_cast<long>(options.features.batch_size);
    options.on_extract = [this, batch](long done, long total) {
      if (!extract_bar_ || done <= batch) extract_bar_ = std::make_unique<progress>("features", total, "img");
      extract_bar_->update(done);
    };
    show_fit_progress(options.fit, fit_bar_);
  }
  evaluation_progress(const evaluation_progress&) = delete;
  evaluation_progress& operator=(const evaluation_progress&) = delete;
  void finish() { fit_bar_.finish(); }

 private:
  progress fit_bar_;
  std::unique_ptr<progress> extract_bar_;
};

// ---- scoring ------------------------------------------------------------------------------------

// The defaults are the library's score_options: no blur, as every flow reference implementation.
// Synthetic-defect validation of MVTec bottle (flowad validate, docs/results.md) moved by less than
// 0.005 with sigma 2 or 4, below the 0.01 this project asks of a validation difference before
// changing a default.
inline const char* scoring_options_help() {
  return "  --map-statistic NAME latent_energy (default; mean_c z^2/2 per position) or negative_log_likelihood\n"
         "                       (the flow's density per position; needs --kernels 1)\n"
         "  --combine NAME       how the scales' maps are combined: mean (default), sum, product, or\n"
         "                       likelihood_sum (MSFlow's: relative likelihoods exp(-(E - min E)) summed)\n"
         "  --blur SIGMA         Gaussian blur of the anomaly maps, in map pixels (default 0: none)\n"
         "  --image-score NAME   top_k_mean (default; the mean of the top --top-k share of the map), max, mean\n"
         "  --top-k F            share of the map that top_k_mean averages (default 0.03)\n";
}

inline score_aggregation parse_score_aggregation(const std::string& key, const std::string& name) {
  for (score_aggregation how : {score_aggregation::top_k_mean, score_aggregation::max, score_aggregation::mean})
    if (name == to_string(how)) return how;
  throw error(errc::invalid_argument, key + " expects top_k_mean, max or mean, got '" + name + "'");
}

inline map_combination parse_map_combination(const std::string& key, const std::string& name) {
  for (map_combination how :
       {map_combination::mean, map_combination::sum, map_combination::product, map_combination::likelihood_sum})
    if (name == to_string(how)) return how;
  throw error(errc::invalid_argument, key + " expects mean, sum, product or likelihood_sum, got '" + name + "'");
}

inline map_statistic parse_map_statistic(const std::string& key, const std::string& name) {
  for (map_statistic statistic : {map_statistic::latent_energy, map_statistic::negative_log_likelihood})
    if (name == to_string(statistic)) return statistic;
  throw error(errc::invalid_argument, key + " expects latent_energy or negative_log_likelihood, got '" + name + "'");
}

// Scoring options from the command line, over `base` (a model's recorded ones, or the defaults).
inline score_options scoring_from(const args& a, score_options base = {}) {
  base.blur_sigma = a.number("blur", base.blur_sigma);
  if (!(base.blur_sigma >= 0.0 && base.blur_sigma <= 64.0)) throw error(errc::invalid_argument, "--blur must be in [0, 64]");
  if (a.has("image-score")) base.image_score = parse_score_aggregation("--image-score", a.get("image-score"));
  if (a.has("map-statistic")) base.statistic = parse_map_statistic("--map-statistic", a.get("map-statistic"));
  if (a.has("combine")) base.combine = parse_map_combination("--combine", a.get("combine"));
  base.top_k_fraction = a.number("top-k", base.top_k_fraction);
  if (!(base.top_k_fraction > 0.0 && base.top_k_fraction <= 1.0)) throw error(errc::invalid_argument, "--top-k must be in (0, 1]");
  return base;
}

// A model's threshold and heatmap range hold for the scoring they were computed with, so the model
// records it and `flowad score` uses it unless told otherwise.
inline void record_scoring(detector& model, const score_options& so) {
  model.set_metadata("scoring.blur_sigma", codec::encode(so.blur_sigma));
  model.set_metadata("scoring.image_score", to_string(so.image_score));
  model.set_metadata("scoring.map_statistic", to_string(so.statistic));
  model.set_metadata("scoring.combine", to_string(so.combine));
  model.set_metadata("scoring.top_k_fraction", codec::encode(so.top_k_fraction));
  if (!so.cell_offsets.empty()) model.set_metadata("scoring.cell_offsets", codec::encode(so.cell_offsets));
}

// A model that records no scoring (fitted through the library, or by an older flowad) is scored with
// the library's defaults, which its threshold and heatmap range, if any, were computed with.
inline score_options scoring_of(const detector& model) {
  score_options so;
  const auto& m = model.metadata();
  if (m.count("scoring.blur_sigma")) so.blur_sigma = codec::parse_double("scoring.blur_sigma", m.at("scoring.blur_sigma"));
  if (m.count("scoring.image_score")) so.image_score = parse_score_aggregation("scoring.image_score", m.at("scoring.image_score"));
  if (m.count("scoring.map_statistic"))
    so.statistic = parse_map_statistic("scoring.map_statistic", m.at("scoring.map_statistic"));
  if (m.count("scoring.combine")) so.combine = parse_map_combination("scoring.combine", m.at("scoring.combine"));
  if (m.count("scoring.top_k_fraction"))
    so.top_k_fraction = codec::parse_double("scoring.top_k_fraction", m.at("scoring.top_k_fraction"));
  // Models from before the key was recorded were fitted and thresholded on PyTorch's grid (empty).
  if (m.count("scoring.cell_offsets")) so.cell_offsets = codec::parse_doubles("scoring.cell_offsets", m.at("scoring.cell_offsets"));
  return so;
}

// ---- heatmaps ------------------------------------------------------------------------------------

// The colour range of heatmaps: from the median of the training maps to a value well above their
// 99th percentile, so that normal images stay cold and defects saturate; stored in the model.
// `so` is the scoring the heatmaps will be made with (map size and blur).
inline void record_heatmap_range(detector& model, const feature_maps& train, const score_options& so) {
  const scores s = model.score(train, so);
  std::vector<float> values(s.maps.data(), s.maps.data() + s.maps.numel());
  const auto at = [&](double q) {
    const std::size_t k = std::min(values.size() - 1, static_cast<std::size_t>(q * static_cast<double>(values.size())));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
    return values[k];
  };
  const float median = at(0.5), p99 = at(0.99);
  model.set_metadata("heatmap.lo", codec::encode(median));
  model.set_metadata("heatmap.hi", codec::encode(median + 4.0f * (p99 - median)));
}

inline heatmap_options heatmap_range_of(const detector& model) {
  heatmap_options h;
  const auto& m = model.metadata();
  if (m.count("heatmap.lo") && m.count("heatmap.hi")) {
    h.lo = static_cast<float>(codec::parse_double("heatmap.lo", m.at("heatmap.lo")));
    h.hi = static_cast<float>(codec::parse_double("heatmap.hi", m.at("heatmap.hi")));
  }
  if (!(h.hi > h.lo)) h.hi = h.lo + 1.0f;
  return h;
}

// The options of an evaluation (eval, validate, demo) that fits `model` on `ex`'s features: scoring at
// `scoring`'s map size, else at the input resolution, on the extractor's grid, recorded in the model;
// with `heatmaps`, one colour scale for every heatmap, set from the training maps once the model is fitted.
inline evaluation_options evaluation_options_for(detector& model, const extractor& ex, const feature_setup& features,
                                                 const fit_options& fit, const score_options& scoring, bool heatmaps) {
  evaluation_options options;
  options.features = features.options;
  options.fit = fit;
  options.score = scoring;
  if (options.score.map_height == 0 || options.score.map_width == 0)
    options.score.map_height = options.score.map_width = features.options.image_size;
  options.score.cell_offsets = map_cell_offsets(ex, features.options);
  record_scoring(model, options.score);
  if (heatmaps)
    options.on_fitted = [&model, so = options.score](const feature_maps& train) { record_heatmap_range(model, train, so); };
  return options;
}

// Writes <out>/<stem>_heatmap.png (overlay, with the ground truth outlined when masks are given) and
// <out>/<stem>_map.png (the raw map in gray) for every image; returns the overlay paths.
inline std::vector<fs::path> write_heatmaps(const fs::path& out, const std::vector<fs::path>& images, const tensor& maps,
                                            const heatmap_options& range, const tensor* masks = nullptr,
                                            const std::vector<std::string>& prefixes = {}) {
  fs::create_directories(out);
  std::vector<fs::path> written;
  const index_t size_h = maps.h(), size_w = maps.w();
  for (std::size_t i = 0; i < images.size(); ++i) {
    const byte_image original = read_image(images[i]);
    const byte_image rgb = to_bytes(resize_bilinear(to_float(original), size_h, size_w));
    const std::string stem = (prefixes.empty() ? "" : prefixes[i] + "_") + images[i].stem().string();
    const const_view map = maps.view().batch(static_cast<index_t>(i), 1);
    byte_image truth;
    const byte_image* truth_ptr = nullptr;
    if (masks) {
      truth = byte_image(size_h, size_w, 1);
      for (index_t y = 0; y < size_h; ++y)
        for (index_t x = 0; x < size_w; ++x)
          truth(y, x, 0) = (*masks)(static_cast<index_t>(i), 0, y, x) > 0.5f ? 1 : 0;
      truth_ptr = &truth;
    }
    const fs::path overlay = out / (stem + "_heatmap.png");
    write_heatmap_png(overlay, rgb, map, range, truth_ptr);
    write_map_png(out / (stem + "_map.png"), map, range.lo, range.hi);
    written.push_back(overlay);
  }
  return written;
}

// ---- JSON ----------------------------------------------------------------------------------------

class json_object {
 public:
  json_object& add(const std::string& key, const std::string& value) { return raw(key, quote(value)); }
  json_object& add(const std::string& key, const char* value) { return raw(key, quote(value)); }
  json_object& add(const std::string& key, double value) {
    if (!std::isfinite(value)) return raw(key, "null");
    return raw(key, codec::encode(value));
  }
  json_object& add(const std::string& key, long value) { return raw(key, std::to_string(value)); }
  json_object& add(const std::string& key, int value) { return raw(key, std::to_string(value)); }
  json_object& add(const std::string& key, const std::vector<double>& values) {
    std::string s = "[";
    for (std::size_t i = 0; i < values.size(); ++i)
      s += (i ? ", " : "") + (std::isfinite(values[i]) ? codec::encode(values[i]) : std::string("null"));
    return raw(key, s + "]");
  }
  json_object& add(const std::string& key, const std::vector<std::string>& values) {
    std::string s = "[";
    for (std::size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + quote(values[i]);
    return raw(key, s + "]");
  }
  json_object& raw(const std::string& key, const std::string& json) {
    fields_.emplace_back(key, json);
    return *this;
  }
  std::string str() const {
    std::string s = "{\n";
    for (std::size_t i = 0; i < fields_.size(); ++i)
      s += "  " + quote(fields_[i].first) + ": " + fields_[i].second + (i + 1 < fields_.size() ? ",\n" : "\n");
    return s + "}\n";
  }
  void write(const fs::path& path) const {
    std::ofstream out(path, std::ios::trunc);
    out << str();
    if (!out) throw error(errc::io_error, "cannot write " + path.string());
  }
  static std::string quote(const std::string& v) {
    std::string s = "\"";
    for (char ch : v) {
      switch (ch) {
        case '"': s += "\\\""; break;
        case '\\': s += "\\\\"; break;
        case '\n': s += "\\n"; break;
        case '\t': s += "\\t"; break;
        default:
          if (static_cast<unsigned char>(ch) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", ch);
            s += buf;
          } else {
            s += ch;
          }
      }
    }
    return s + "\"";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

}  // namespace cli
}  // namespace flowad
