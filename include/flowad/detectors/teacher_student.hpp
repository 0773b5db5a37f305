// Teacher-student detectors: a frozen teacher's feature levels (the extractor's) and a student network
// trained on defect-free images to reproduce them; where the student fails to, the image is anomalous.
// Three registered kinds share this implementation (ALGORITHMS.md §7):
//
//   "stfpm"  STFPM (Wang et al. 2021; gdwang08/STFPM, anomalib): the student has the teacher's
//            ResNet18 layout up to the teacher's deepest level (conv 7x7/2, max pool, BasicBlock
//            layers), randomly initialised, and reads the *image* (scale 0 of its features: the
//            pipeline's "image" level). Distance per cell: ½‖T/‖T‖ − S/‖S‖‖²; loss: its mean over
//            batch and cells, summed over levels; map: the product over levels of the upsampled
//            distance maps.
//   "rd"     Reverse Distillation (Deng & Li, CVPR 2022; hq-deng/RD4AD): the student is a one-class
//            bottleneck (OCBE: the three levels brought to the deepest one's size by strided 3x3
//            convolutions, concatenated, then a ResNet layer of two BasicBlocks at stride 2) and a
//            decoder mirroring the teacher (two BasicBlocks per level, upsampling by 2x2 transposed
//            convolutions), reading only the teacher's levels. Loss: Σ_levels mean_batch
//            (1 − cos(flatten T, flatten D)); map: Σ_levels upsampled (1 − cos_c(T, D)), blurred by a
//            Gaussian (σ 4 px: blur_sigma cells of the finest teacher level).
//   "fcl"    FCL (Li & Hu, IEEE TIM 2024) on either host: SNC (nn/snc.hpp, spatial neighbouring
//            coding) encodes each level of teacher and student, and the objective weighs the host's
//            consistency on raw features ("low-level", weight_raw) with the same consistency on the
//            SNC codes ("high-level", weight_coded); each level's map is weight_raw·d(raw) +
//            weight_coded·d(codes), combined over levels as the host does.
//            RECONSTRUCTION: only FCL's abstract is available; SNC's form, where it sits and the
//            weights are flowad's choices (docs/algorithms.md says which measurement chose what).
//
// Image score: the map's maximum. Deviations from the official recipes, for a CPU: fewer epochs (the
// default budget fits a 200-image category in under 5 minutes on 2 cores; docs/lab/teacher-student.md),
// and STFPM trains with Adam, as the shared trainer does, not SGD(lr 0.4, momentum 0.9).
//
// Odd feature sizes: RD's decoder doubles sizes; its levels are cropped to the teacher's (the official
// code needs sizes divisible by 32). Scoring is const and thread-safe; nothing is allocated in steady
// state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowad/detector.hpp"

namespace flowad {
inline namespace v0 {

enum class teacher_student_host { rd, stfpm };
inline std::vector<std::pair<teacher_student_host, const char*>> teacher_student_host_names() {
  return {{teacher_student_host::rd, "rd"}, {teacher_student_host::stfpm, "stfpm"}};
}

struct teacher_student_config {
  teacher_student_host host = teacher_student_host::rd;
  // The feature scales: for the STFPM host the image first (3 x H x W), then the teacher's levels; for
  // RD exactly three teacher levels. Levels are finest first, each half the size of the one before
  // (rounded up), as ResNet18's layer1..3 and MobileNetV2's strides 4, 8, 16 give.
  std::vector<scale_shape> scales{{64, 64, 64}, {128, 32, 32}, {256, 16, 16}};
  index_t snc_kernel = 0;      // SNC's neighbourhood (odd); 0: no SNC
  double weight_raw = 1.0;     // low-level consistency (raw features)
  double weight_coded = 0.0;   // high-level consistency (SNC codes); needs snc_kernel > 0
  double blur_sigma = 1.0;     // the map's Gaussian, in cells of the finest teacher level (0: none)
  std::uint64_t seed = 0;      // initial weights
  training_options training;

  // The kind's defaults for features of this geometry (strides set blur_sigma to 4 px for RD).
  static teacher_student_config recommended(const std::string& kind, const feature_geometry& geometry);
  static training_options default_training(teacher_student_host host);

  // Throws errc::invalid_argument naming the first invalid field.
  void validate() const;

  // The teacher's levels (scales without the image).
  std::vector<scale_shape> teacher_scales() const;

  template <class Fields>
  void fields(Fields& f) {
    f("host", host, teacher_student_host_names());
    f("scales", scales);
    f("snc.kernel", snc_kernel);
    f("consistency.raw", weight_raw);
    f("consistency.coded", weight_coded);
    f("map.blur_sigma", blur_sigma);
    f("seed", seed);
    training.fields(f);
  }
};

class teacher_student final : public detector {
 public:
  // kind: "stfpm", "rd" or "fcl" (stfpm and rd need their own host and no SNC).
  teacher_student(const std::string& kind, const teacher_student_config& cfg);
  ~teacher_student() override;
  teacher_student(const teacher_student&) = delete;
  teacher_student& operator=(const teacher_student&) = delete;

  const char* kind() const noexcept override { return kind_.c_str(); }
  bool fitted() const noexcept override { return fitted_; }
  std::vector<scale_shape> input_shapes() const override { return cfg_.scales; }
  model_stats stats() const override;
  detector_config config() const override { return to_detector_config(cfg_); }
  const teacher_student_config& settings() const noexcept { return cfg_; }

  fit_report fit(const feature_maps& train, const fit_options& options = {}) override;
  using detector::score;
  void score(const feature_maps& features, const score_options& options, scores& out) const override;

  model_file_contents to_model_file() const override;
  static std::unique_ptr<teacher_student> from_model_file(const model_file_contents& contents);

 private:
  struct impl;
  std::string kind_;
  teacher_student_config cfg_;
  bool fitted_ = false;
  std::unique_ptr<impl> impl_;
};

}  // namespace v0
}  // namespace flowad
