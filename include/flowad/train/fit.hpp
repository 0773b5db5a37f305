// Training: the recipe a detector trains with (part of its configuration, saved in its model file),
// the options of one fit() call, what fit() reports while it runs, and what it returns.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "flowad/train/adam.hpp"
#include "flowad/train/schedule.hpp"

namespace flowad {
inline namespace v0 {

// How a detector trains. Every trainable detector's configuration holds one, filled with its
// recipe by its recommended(), and lists it among its settings as "train.*" (train.epochs, ...).
struct training_options {
  int epochs = 16;
  int batch_size = 16;             // samples per optimiser step
  adam_options optimizer;          // Adam, PyTorch's semantics
  double max_grad_norm = 1.0;      // clip_grad_norm_; 0 disables
  schedule_options schedule;       // warm-up, then constant or cosine
  std::uint64_t seed = 0;          // the order in which samples are visited

  template <class Fields>
  void fields(Fields& f) {
    f("train.epochs", epochs);
    f("train.batch_size", batch_size);
    f("train.learning_rate", optimizer.learning_rate);
    f("train.beta1", optimizer.beta1);
    f("train.beta2", optimizer.beta2);
    f("train.eps", optimizer.eps);
    f("train.weight_decay", optimizer.weight_decay);
    f("train.max_grad_norm", max_grad_norm);
    f("train.schedule", schedule.kind, lr_schedule_names());
    f("train.warmup_fraction", schedule.warmup_fraction);
    f("train.warmup_start_factor", schedule.warmup_start_factor);
    f("train.final_factor", schedule.final_factor);
    f("train.seed", seed);
  }
  // Throws errc::invalid_argument naming the first field out of its domain.
  void validate() const;
};

// Reported after every optimiser step (epoch_end marks the last step of an epoch).
struct fit_progress {
  int epoch = 0;                // 0-based
  int epochs = 0;
  long step = 0;                // steps done so far, over all epochs
  long steps = 0;               // total steps of the run
  double loss = 0.0;            // mean loss of this epoch's steps so far
  double samples_per_second = 0.0;
  double eta_seconds = 0.0;
  double learning_rate = 0.0;
  bool epoch_end = false;
  // Set by detectors that do not train by steps: what a step counts instead ("coreset": rows kept in
  // PatchCore's memory bank); loss and learning_rate are then 0.
  const char* stage = nullptr;
};

// How one fit() call runs: progress and what to do about steps that go wrong.
struct fit_options {
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
  double samples_per_second = 0.0;
  std::vector<std::string> events;   // what happened to discarded steps, in order
};

}  // namespace v0
}  // namespace flowad
