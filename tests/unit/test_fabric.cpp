#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "flowad/data/fabric.hpp"
#include "flowad/data/mvtec_layout.hpp"
#include "flowad/io/dataset.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
using flowad::testing::temp_folder;

namespace {

synthetic_options small_options(std::uint64_t seed) {
  synthetic_options o;
  o.height = 64;
  o.width = 80;
  o.train_count = 4;
  o.test_count = 9;
  o.anomaly_fraction = 0.5;
  o.seed = seed;
  return o;
}

index_t count_set(const byte_image& mask) {
  return std::count_if(mask.data(), mask.data() + mask.size(), [](std::uint8_t v) { return v != 0; });
}

// Area under the ROC curve of scores against 0/1 labels, ties counted half.
double auroc(std::vector<std::pair<double, int>> scored) {
  std::sort(scored.begin(), scored.end());
  double positives = 0, negatives = 0, rank_sum = 0;
  for (std::size_t i = 0; i < scored.size();) {
    std::size_t j = i;
    while (j < scored.size() && scored[j].first == scored[i].first) ++j;
    const double mid_rank = (double(i) + double(j) + 1.0) / 2.0;
    for (std::size_t k = i; k < j; ++k) {
      if (scored[k].second) {
        rank_sum += mid_rank;
        ++positives;
      } else {
        ++negatives;
      }
    }
    i = j;
  }
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

// Per pixel and channel: the mean over a (2r+1)^2 window divided by the image's mean (removes the
// per-image gain), via an integral image.
std::vector<double> local_means(const byte_image& img, index_t r) {
  const index_t h = img.height(), w = img.width();
  std::vector<double> out(static_cast<std::size_t>(h * w * 3));
  for (index_t c = 0; c < 3; ++c) {
    std::vector<double> integral(static_cast<std::size_t>((h + 1) * (w + 1)), 0.0);
    const auto at = [&](index_t y, index_t x) -> double& { return integral[std::size_t(y * (w + 1) + x)]; };
    for (index_t y = 0; y < h; ++y)
      for (index_t x = 0; x < w; ++x) at(y + 1, x + 1) = img(y, x, c) + at(y, x + 1) + at(y + 1, x) - at(y, x);
    const double image_mean = at(h, w) / double(h * w);
    for (index_t y = 0; y < h; ++y)
      for (index_t x = 0; x < w; ++x) {
        const index_t y0 = std::max<index_t>(0, y - r), y1 = std::min(h, y + r + 1);
        const index_t x0 = std::max<index_t>(0, x - r), x1 = std::min(w, x + r + 1);
        const double sum = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0);
        out[std::size_t((y * w + x) * 3 + c)] = sum / double((y1 - y0) * (x1 - x0)) / image_mean;
      }
  }
  return out;
}

}  // namespace

TEST_CASE("synthetic data is a function of the seed", "[io]") {
  const synthetic_dataset a = generate_synthetic_dataset(small_options(3));
  const synthetic_dataset b = generate_synthetic_dataset(small_options(3));
  CHECK(a.train == b.train);
  CHECK(a.test == b.test);
  CHECK(a.masks == b.masks);
  CHECK(a.labels == b.labels);
  CHECK(a.defect_types == b.defect_types);

  const synthetic_dataset c = generate_synthetic_dataset(small_options(4));
  for (std::size_t i = 0; i < a.train.size(); ++i) CHECK(a.train[i] != c.train[i]);
  for (std::size_t i = 0; i < a.test.size(); ++i) CHECK(a.test[i] != c.test[i]);
  CHECK(a.masks != c.masks);

  // Images within a set vary (shift, gain, noise), and image i does not depend on the counts.
  CHECK(a.train[0] != a.train[1]);
  synthetic_options more = small_options(3);
  more.train_count = 6;
  const synthetic_dataset d = generate_synthetic_dataset(more);
  for (std::size_t i = 0; i < a.train.size(); ++i) CHECK(d.train[i] == a.train[i]);
  CHECK(d.test == a.test);
}

TEST_CASE("synthetic test sets have the requested composition and exact masks", "[io]") {
  const synthetic_dataset data = generate_synthetic_dataset(small_options(5));
  REQUIRE(data.train.size() == 4);
  REQUIRE(data.test.size() == 9);
  REQUIRE(data.masks.size() == 9);
  // round(0.5 * 9) = 5 anomalies over 3 types: 2 + 2 + 1, listed in folder order.
  const std::vector<std::string> types = {"crack", "crack",   "good",    "good", "good",
                                          "good",  "scratch", "scratch", "spot"};
  CHECK(data.defect_types == types);
  CHECK(data.labels == std::vector<int>{1, 1, 0, 0, 0, 0, 1, 1, 1});
  for (const byte_image& img : data.train) {
    CHECK(img.height() == 64);
    CHECK(img.width() == 80);
    CHECK(img.channels() == 3);
  }
  for (std::size_t i = 0; i < data.test.size(); ++i) {
    INFO("test image " << i << " (" << data.defect_types[i] << ")");
    CHECK(data.test[i].channels() == 3);
    REQUIRE(data.masks[i].channels() == 1);
    CHECK(data.masks[i].height() == 64);
    CHECK(data.masks[i].width() == 80);
    CHECK(std::all_of(data.masks[i].data(), data.masks[i].data() + data.masks[i].size(),
                      [](std::uint8_t v) { return v <= 1; }));
    CHECK((count_set(data.masks[i]) > 0) == (data.labels[i] == 1));
  }

  synthetic_options none = small_options(5);
  none.anomaly_fraction = 0.0;
  const synthetic_dataset all_good = generate_synthetic_dataset(none);
  CHECK(std::count(all_good.labels.begin(), all_good.labels.end(), 1) == 0);
  none.anomaly_fraction = 1.0;
  const synthetic_dataset all_bad = generate_synthetic_dataset(none);
  CHECK(std::count(all_bad.labels.begin(), all_bad.labels.end(), 0) == 0);
}

TEST_CASE("synthetic anomalies differ from their surroundings", "[io]") {
  synthetic_options o = small_options(11);
  o.height = o.width = 128;
  o.test_count = 24;
  o.anomaly_fraction = 1.0;
  const synthetic_dataset data = generate_synthetic_dataset(o);
  for (std::size_t i = 0; i < data.test.size(); ++i) {
    INFO("test image " << i << " (" << data.defect_types[i] << ")");
    // Mean colour inside the mask against a 4-pixel ring around it.
    const byte_image& mask = data.masks[i];
    const byte_image& img = data.test[i];
    double inside[3] = {0, 0, 0}, ring[3] = {0, 0, 0};
    double n_inside = 0, n_ring = 0;
    constexpr index_t ring_width = 4;
    for (index_t y = 0; y < mask.height(); ++y)
      for (index_t x = 0; x < mask.width(); ++x) {
        if (mask(y, x)) {
          for (index_t c = 0; c < 3; ++c) inside[c] += img(y, x, c);
          ++n_inside;
          continue;
        }
        bool near = false;
        for (index_t yy = std::max<index_t>(0, y - ring_width); yy <= std::min(mask.height() - 1, y + ring_width); ++yy)
          for (index_t xx = std::max<index_t>(0, x - ring_width); xx <= std::min(mask.width() - 1, x + ring_width);
               ++xx)
            near = near || mask(yy, xx);
        if (!near) continue;
        for (index_t c = 0; c < 3; ++c) ring[c] += img(y, x, c);
        ++n_ring;
      }
    REQUIRE(n_inside > 0);
    REQUIRE(n_ring > 0);
    double distance = 0.0;
    for (int c = 0; c < 3; ++c) distance += std::pow(inside[c] / n_inside - ring[c] / n_ring, 2);
    CHECK(std::sqrt(distance) > 10.0);  // in 0..255 units
  }
}

TEST_CASE("synthetic anomalies are found from good images but not by an intensity threshold", "[io]") {
  synthetic_options o;
  o.height = o.width = 128;
  o.train_count = 16;
  o.test_count = 24;
  o.seed = 21;
  const synthetic_dataset data = generate_synthetic_dataset(o);
  const index_t h = o.height, w = o.width, radius = 4;

  // A detector fitted on good images only: per position and channel, the mean and spread of the
  // gain-normalised local mean colour; the score is the squared z-distance.
  std::vector<double> mean(std::size_t(h * w * 3), 0.0), spread(std::size_t(h * w * 3), 0.0);
  for (const byte_image& img : data.train) {
    const std::vector<double> f = local_means(img, radius);
    for (std::size_t k = 0; k < f.size(); ++k) {
      mean[k] += f[k];
      spread[k] += f[k] * f[k];
    }
  }
  const double n = double(data.train.size());
  for (std::size_t k = 0; k < mean.size(); ++k) {
    mean[k] /= n;
    spread[k] = std::sqrt(std::max(1e-8, spread[k] / n - mean[k] * mean[k]));
  }
  std::vector<std::pair<double, int>> pixel_scores, image_scores, intensity;
  for (std::size_t i = 0; i < data.test.size(); ++i) {
    const std::vector<double> f = local_means(data.test[i], radius);
    double image_score = 0.0;
    for (index_t p = 0; p < h * w; ++p) {
      double z = 0.0, gray = 0.0;
      for (std::size_t c = 0; c < 3; ++c) {
        const std::size_t k = std::size_t(p) * 3 + c;
        z += std::pow((f[k] - mean[k]) / spread[k], 2);
        gray += data.test[i].data()[k];
      }
      const int label = data.masks[i].data()[p];
      pixel_scores.push_back({z, label});
      intensity.push_back({gray, label});
      image_score = std::max(image_score, z);
    }
    image_scores.push_back({image_score, data.labels[i]});
  }
  const double image_auroc = auroc(image_scores), pixel_auroc = auroc(pixel_scores);
  const double intensity_auroc = auroc(intensity);
  INFO("detector image AUROC " << image_auroc << ", pixel AUROC " << pixel_auroc << "; intensity AUROC "
                               << intensity_auroc);
  CHECK(image_auroc > 0.9);
  CHECK(pixel_auroc > 0.9);
  // Neither bright nor dark pixels alone give the defects away.
  CHECK(std::max(intensity_auroc, 1.0 - intensity_auroc) < 0.85);
}

TEST_CASE("synthetic data written in the MVTec layout reads back identically", "[io]") {
  const temp_folder dir;
  const synthetic_dataset data = generate_synthetic_dataset(small_options(8));
  const std::filesystem::path root = dir / "fabric";
  write_mvtec_layout(data, root);
  CHECK(std::filesystem::exists(root / "train" / "good" / "000.png"));
  CHECK(std::filesystem::exists(root / "ground_truth" / "spot" / "000_mask.png"));
  CHECK_FALSE(std::filesystem::exists(root / "ground_truth" / "good"));

  const mvtec_category cat = read_mvtec_category(root);
  REQUIRE(cat.train.size() == data.train.size());
  REQUIRE(cat.test.size() == data.test.size());
  for (std::size_t i = 0; i < data.train.size(); ++i) CHECK(read_image(cat.train[i]) == data.train[i]);
  CHECK(cat.test_labels() == data.labels);
  for (std::size_t i = 0; i < data.test.size(); ++i) {
    CHECK(cat.test[i].defect_type == data.defect_types[i]);
    CHECK(read_image(cat.test[i].image) == data.test[i]);
    if (data.labels[i]) CHECK(read_mask(cat.test[i].mask) == data.masks[i]);
  }

  // Never mixes into an existing data set.
  CHECK_THROWS_AS(write_mvtec_layout(data, root), error);
  // Columns that disagree are rejected before anything is written.
  synthetic_dataset broken = data;
  broken.labels.pop_back();
  CHECK_THROWS_AS(write_mvtec_layout(broken, dir / "broken"), error);
  CHECK_FALSE(std::filesystem::exists(dir / "broken"));
  broken = data;
  broken.labels[0] = 0;  // "crack" labelled good
  CHECK_THROWS_AS(write_mvtec_layout(broken, dir / "broken"), error);
}

TEST_CASE("synthetic options are validated", "[io]") {
  const auto with = [](auto change) {
    synthetic_options o = small_options(1);
    change(o);
    return o;
  };
  CHECK_THROWS_AS(generate_synthetic_dataset(with([](synthetic_options& o) { o.height = 16; })), error);
  CHECK_THROWS_AS(generate_synthetic_dataset(with([](synthetic_options& o) { o.train_count = 0; })), error);
  CHECK_THROWS_AS(generate_synthetic_dataset(with([](synthetic_options& o) { o.test_count = 0; })), error);
  CHECK_THROWS_AS(generate_synthetic_dataset(with([](synthetic_options& o) { o.anomaly_fraction = 1.5; })), error);
  CHECK_THROWS_AS(generate_synthetic_dataset(with([](synthetic_options& o) { o.anomaly_fraction = std::nan(""); })),
                  error);
}
