// Fit an MS-Flow detector on feature maps of defect-free samples, score new samples, keep the model.
//
// The feature maps here are generated (a smooth random field plus noise; anomalies are patches from
// another distribution), so the example needs no data and no backbone. With real images, the maps
// come from flowad's extractors or from any backbone of your own: all the detector needs is one
// N x C x H x W float tensor per scale.
//
//   example_fit_and_score            full run (about a minute on 2 cores)
//   example_fit_and_score --quick    fewer epochs (used by CI)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "flowad/detail/random.hpp"
#include "flowad/flowad.hpp"

namespace {

// Normal samples: a fixed smooth field per channel plus noise. Anomalous ones: a 4x4 patch shifted
// by a random channel vector.
struct generated {
  flowad::tensor train, test, masks;
  std::vector<int> labels;
};

generated generate(flowad::index_t channels, flowad::index_t size, flowad::index_t train_count,
                   flowad::index_t test_count, std::uint64_t seed) {
  flowad::detail::rng r(seed);
  std::vector<float> field(static_cast<std::size_t>(channels * size * size));
  for (flowad::index_t c = 0; c < channels; ++c) {
    const double fy = r.uniform(0.1, 0.7), fx = r.uniform(0.1, 0.7), phase = r.uniform(0.0, 6.28);
    for (flowad::index_t y = 0; y < size; ++y)
      for (flowad::index_t x = 0; x < size; ++x)
        field[static_cast<std::size_t>((c * size + y) * size + x)] = static_cast<float>(std::sin(fy * y + fx * x + phase));
  }
  auto fill = [&](flowad::tensor& t, flowad::index_t n) {
    for (flowad::index_t c = 0; c < channels; ++c)
      for (flowad::index_t y = 0; y < size; ++y)
        for (flowad::index_t x = 0; x < size; ++x)
          t(n, c, y, x) = field[static_cast<std::size_t>((c * size + y) * size + x)] + 0.3f * static_cast<float>(r.normal());
  };
  generated g;
  g.train = flowad::tensor({train_count, channels, size, size});
  g.test = flowad::tensor({test_count, channels, size, size});
  g.masks = flowad::tensor({test_count, 1, size, size});
  g.masks.fill(0.0f);
  for (flowad::index_t n = 0; n < train_count; ++n) fill(g.train, n);
  for (flowad::index_t n = 0; n < test_count; ++n) {
    fill(g.test, n);
    const bool anomalous = n % 2 == 1;
    g.labels.push_back(anomalous ? 1 : 0);
    if (!anomalous) continue;
    const auto y0 = static_cast<flowad::index_t>(r.below(static_cast<std::uint64_t>(size - 3)));
    const auto x0 = static_cast<flowad::index_t>(r.below(static_cast<std::uint64_t>(size - 3)));
    for (flowad::index_t c = 0; c < channels; ++c) {
      const float shift = 1.2f * static_cast<float>(r.normal());
      for (flowad::index_t y = y0; y < y0 + 4; ++y)
        for (flowad::index_t x = x0; x < x0 + 4; ++x) {
          g.test(n, c, y, x) += shift;
          g.masks(n, 0, y, x) = 1.0f;
        }
    }
  }
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  try {
    const generated data = generate(32, 16, 128, 64, 7);

    // A small MS-Flow: one scale of 32 x 16 x 16; the recommended configuration with 4 blocks of
    // hidden width 64, trained for 40 epochs. make_detector finds any kind through the registry.
    flowad::msflow_config cfg = flowad::msflow_config::recommended({{32, 16, 16}});
    cfg.hidden = 64;
    cfg.blocks = 4;
    cfg.kernels = {3, 1};
    cfg.training.epochs = quick ? 12 : 40;
    cfg.training.optimizer.learning_rate = 2e-3f;
    const std::unique_ptr<flowad::detector> model = flowad::make_detector("msflow", cfg);
    const flowad::model_stats stats = model->stats();
    std::printf("MS-Flow: %.0f parameters, %.1f MMAC per sample\n", stats.parameters, stats.macs_per_image * 1e-6);

    flowad::fit_options options;
    options.on_progress = [](const flowad::fit_progress& p) {
      if (p.epoch_end)
        std::printf("epoch %3d/%d  loss %8.4f  %6.0f samples/s\n", p.epoch + 1, p.epochs, p.loss, p.samples_per_second);
    };
    const flowad::fit_report report = model->fit({data.train}, options);
    std::printf("fitted in %.1f s: loss %.4f -> %.4f\n", report.seconds, report.epoch_losses.front(), report.final_loss);

    // Score: an image score per sample and an anomaly map at 4x the feature resolution.
    flowad::score_options so;
    so.map_height = so.map_width = 64;
    const flowad::scores s = model->score({data.test}, so);
    const double image_auroc = flowad::auroc(flowad::span<const double>(s.image), flowad::span<const int>(data.labels));
    const flowad::tensor masks = flowad::upsample_bilinear(data.masks.view(), 64, 64);
    flowad::tensor binary(masks.shape());
    for (flowad::index_t i = 0; i < masks.numel(); ++i) binary.data()[i] = masks.data()[i] >= 0.5f ? 1.0f : 0.0f;
    const double pixel = flowad::pixel_auroc(s.maps.view(), binary.view());
    std::printf("image AUROC %.3f, pixel AUROC %.3f\n", image_auroc, pixel);

    // Keep it, and load it back as a runtime-polymorphic detector.
    const std::filesystem::path path = std::filesystem::temp_directory_path() / "fit_and_score.flowad";
    model->save(path);
    const std::unique_ptr<flowad::detector> loaded = flowad::load_detector(path);
    const flowad::scores again = loaded->score({data.test}, so);
    std::printf("saved to %s; the loaded model scores identically: %s\n", path.c_str(),
                again.image == s.image ? "yes" : "NO");
    std::filesystem::remove(path);
    return again.image == s.image && report.final_loss < report.epoch_losses.front() ? 0 : 1;
  } catch (const flowad::error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
