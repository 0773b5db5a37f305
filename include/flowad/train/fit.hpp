// Options, progress and report of fitting a detector.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "flowad/train/adam.hpp"
#include "flowad/train/schedule.hpp"

namespace flowad {
inline namespace v0 {

// Reported after every optimiser step (epoch_end marks the last step of an epoch).
struct fit_progress {
  int epoch = 0;                // 0-based
  int epochs = 0;
  long step = 0;                // steps done so far, over all epochs
  long steps = 0;               // total steps of the run
  double loss = 0.0;            // mean loss of this epoch's steps so far
  double images_per_second = 0.0;
  double eta_seconds = 0.0;
  double learning_rate = 0.0;
  bool epoch_end = false;
};

struct fit_options {
  int epochs = 100;
  int batch_size = 16;
  adam_options optimizer;                   // lr 2e-4, eps 1e-4, weight decay 1e-5 (CS-Flow)
  double max_grad_norm = 1.0;               // clip_grad_norm_; <= 0 disables
  schedule_options schedule;                // warm-up + cosine by default
  std::uint64_t seed = 0;                   // shuffling
  // Standard deviation of Gaussian noise added to every training batch, in units of each channel's
  // standard deviation over the training set (0: none). Fitting the training features convolved with
  // this noise keeps the density from collapsing onto the training samples; drawn from `seed`.
  double input_noise = 0.0;
  std::function<void(const fit_progress&)> on_progress;

  // A step whose loss or gradient is NaN/Inf is discarded and the learning rate multiplied by this.
  double lr_drop_on_failure = 0.5;
  // After this many failed steps in a row, the parameters roll back to the end of the last good epoch.
  int rollback_after = 3;
  // After this many failed steps in a row, fit() gives up with errc::training_failed.
  int max_consecutive_failures = 12;
};

struct fit_report {
  std::vector<double> epoch_losses;  // mean loss per epoch (finite steps only)
  double final_loss = 0.0;           // the last epoch's mean loss
  long steps = 0;                    // applied optimiser steps
  long discarded_steps = 0;          // steps dropped for NaN/Inf
  long rollbacks = 0;
  double final_lr_scale = 1.0;       // product of the drops applied to the learning rate
  double seconds = 0.0;
  double images_per_second = 0.0;
  std::vector<std::string> events;   // what happened to discarded steps, in order
};

}  // namespace v0
}  // namespace flowad
