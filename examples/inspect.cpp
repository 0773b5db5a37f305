// Inspect images with flowad's image-level API: fit on a folder of defect-free images, save the
// model, load it back, and inspect one image: its score, its verdict against the threshold set from
// held-out defect-free images, and its anomaly map at the image's own size.
//
//   example_inspect GOOD_FOLDER IMAGE MODEL_FILE [EPOCHS]   fit, save, load, inspect
//   example_inspect MODEL_FILE IMAGE                         load a saved model (e.g. from flowad fit), inspect
//
// GOOD_FOLDER holds defect-free images (e.g. ../shared/data/mvtec_bottle/train/good, or the
// data/train/good of `flowad demo`); the weight-free filter bank makes the features, so nothing needs
// downloading. EPOCHS overrides the detector's training recipe (for a quick run). The saved model
// scores the image to the same number with `flowad score MODEL_FILE IMAGE`, and a model that
// `flowad fit` saved inspects here as it scores there.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <flowad/flowad.hpp>

namespace {

void print(const flowad::inspector& inspector, const flowad::byte_image& image, const flowad::verdict& v) {
  std::printf("score %.17g\n", v.score);
  if (inspector.threshold()) std::printf("threshold %.17g\n", inspector.threshold()->value);
  std::printf("verdict %s\n", v.anomalous ? "anomalous" : "ok");
  std::printf("map %lldx%lld (image %lldx%lld)\n", static_cast<long long>(v.map.h()), static_cast<long long>(v.map.w()),
              static_cast<long long>(image.height()), static_cast<long long>(image.width()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 5) {
    std::fprintf(stderr, "usage: %s GOOD_FOLDER IMAGE MODEL_FILE [EPOCHS]\n       %s MODEL_FILE IMAGE\n", argv[0], argv[0]);
    return 2;
  }
  try {
    if (argc == 3) {
      const flowad::inspector loaded = flowad::inspector::load(argv[1]);
      const flowad::byte_image image = flowad::read_image(argv[2]);
      print(loaded, image, loaded.inspect(image));
      return 0;
    }
    // The validated defaults for an extractor: input size from the images, MS-Flow, its recipe.
    flowad::pipeline_config config = flowad::pipeline_config::recommended("filterbank");
    if (argc == 5) config.settings.set("train.epochs", argv[4]);
    flowad::inspector inspector(config);

    // Fit; the threshold for a 1 % false-positive rate comes from out-of-fold scores of every image
    // (5 extra models, each fitted on 4/5 of the images), or from 10 % held out with fewer than 10.
    flowad::inspector_fit_options options;
    options.on_progress = [](const flowad::fit_progress& p) {
      if (p.epoch_end) std::printf("epoch %d/%d  loss %.4f\n", p.epoch + 1, p.epochs, p.loss);
    };
    const flowad::inspector_fit_report report = inspector.fit(flowad::image_folder(argv[1]), options);
    std::printf("fitted on %zu images (%zu held out, %zu scores for the threshold) in %.1f s; input %lldx%lld\n",
                report.fit_images, report.held_out_images, report.calibration_scores.size(), report.seconds,
                static_cast<long long>(inspector.feature_settings().height),
                static_cast<long long>(inspector.feature_settings().width));

    // One file holds everything needed to inspect images again.
    inspector.save(argv[3]);
    const flowad::inspector loaded = flowad::inspector::load(argv[3]);

    const flowad::byte_image image = flowad::read_image(argv[2]);
    const flowad::verdict v = loaded.inspect(image);
    print(loaded, image, v);
    // The loaded model scores exactly as the fitted one.
    return inspector.inspect(image).score == v.score ? 0 : 1;
  } catch (const flowad::error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
