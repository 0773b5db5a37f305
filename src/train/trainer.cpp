#include "flowad/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "flowad/detail/config_fields.hpp"
#include "flowad/detail/random.hpp"

namespace flowad {
inline namespace v0 {

void training_options::validate() const {
  const auto fail = [](const std::string& what) { throw error(errc::invalid_argument, "training options: " + what); };
  if (epochs <= 0 || epochs > 100000) fail("train.epochs must be in [1, 100000], got " + std::to_string(epochs));
  if (batch_size <= 0 || batch_size > (1 << 20)) fail("train.batch_size must be positive, got " + std::to_string(batch_size));
  if (!(optimizer.learning_rate >= 0.0f)) fail("train.learning_rate must be >= 0");
  if (!(optimizer.beta1 >= 0.0f && optimizer.beta1 < 1.0f) || !(optimizer.beta2 >= 0.0f && optimizer.beta2 < 1.0f))
    fail("train.beta1 and train.beta2 must be in [0, 1)");
  if (!(optimizer.eps > 0.0f)) fail("train.eps must be positive");
  if (!(optimizer.weight_decay >= 0.0f)) fail("train.weight_decay must be >= 0");
  if (!(max_grad_norm >= 0.0)) fail("train.max_grad_norm must be >= 0 (0: no clipping)");
  if (!(schedule.warmup_fraction >= 0.0 && schedule.warmup_fraction <= 1.0)) fail("train.warmup_fraction must be in [0, 1]");
  if (!(schedule.warmup_start_factor >= 0.0 && schedule.warmup_start_factor <= 1.0))
    fail("train.warmup_start_factor must be in [0, 1]");
  if (!(schedule.final_factor >= 0.0 && schedule.final_factor <= 1.0)) fail("train.final_factor must be in [0, 1]");
}

fit_report train(const training_problem& problem, const training_options& recipe, const fit_options& options) {
  using clock = std::chrono::steady_clock;
  const auto started = clock::now();
  recipe.validate();
  if (problem.samples <= 0) throw error(errc::empty_input, problem.name + " got no training samples");
  if (!problem.step) throw error(errc::invalid_argument, problem.name + ": the training problem has no step");
  if (!(options.lr_drop_on_failure > 0.0 && options.lr_drop_on_failure <= 1.0) || options.rollback_after < 1 ||
      options.max_consecutive_failures < 1)
    throw error(errc::invalid_argument, "fit_options: lr_drop_on_failure must be in (0, 1], rollback_after and "
                                        "max_consecutive_failures at least 1");

  const index_t n = problem.samples;
  const std::vector<parameter*>& params = problem.trained;
  for (parameter* p : problem.with_gradients) p->zero_grad();
  adam optimizer(params, recipe.optimizer);

  workspace ws;
  std::vector<index_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), index_t{0});
  detail::rng shuffler(recipe.seed);

  // The last good state, refreshed at every epoch end, for rolling back after repeated failures.
  std::vector<std::vector<float>> snapshot(params.size());
  const auto take_snapshot = [&] {
    for (std::size_t i = 0; i < params.size(); ++i) snapshot[i].assign(params[i]->data(), params[i]->data() + params[i]->size());
  };
  take_snapshot();

  fit_report report;
  report.epoch_losses.reserve(static_cast<std::size_t>(recipe.epochs));  // no allocation between steps
  const index_t batch_size = recipe.batch_size;
  const long steps_per_epoch = static_cast<long>((n + batch_size - 1) / batch_size);
  const long total_steps = steps_per_epoch * recipe.epochs;
  double lr_scale = 1.0;
  int consecutive_failures = 0;
  long steps_done = 0;

  for (int epoch = 0; epoch < recipe.epochs; ++epoch) {
    shuffler.shuffle(order);
    double epoch_loss = 0.0;
    long epoch_steps = 0;
    for (long step = 0; step < steps_per_epoch; ++step) {
      const index_t first = static_cast<index_t>(step) * batch_size;
      const index_t count = std::min(batch_size, n - first);
      const double progress_epochs = epoch + static_cast<double>(step) / static_cast<double>(steps_per_epoch);
      const double lr = recipe.optimizer.learning_rate * lr_factor(recipe.schedule, progress_epochs, recipe.epochs) * lr_scale;

      const double loss = problem.step(span<const index_t>(order.data() + first, static_cast<std::size_t>(count)), ws);
      const double norm = std::isfinite(loss) ? clip_gradient_norm(params, recipe.max_grad_norm) : 0.0;

      if (!std::isfinite(loss) || !std::isfinite(norm)) {
        ++report.discarded_steps;
        ++consecutive_failures;
        lr_scale *= options.lr_drop_on_failure;
        std::string event = "epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step + 1) + ": " +
                            (!std::isfinite(loss) ? "loss" : "gradient") + " is not finite; step discarded, learning rate x" +
                            detail::number_text(lr_scale);
        if (consecutive_failures >= options.max_consecutive_failures)
          throw error(errc::training_failed, problem.name + " gave up after " + std::to_string(consecutive_failures) +
                                                 " consecutive non-finite steps (last: " + event + ")");
        if (consecutive_failures % options.rollback_after == 0) {
          for (std::size_t i = 0; i < params.size(); ++i) {
            std::copy(snapshot[i].begin(), snapshot[i].end(), params[i]->data());
            params[i]->mark_updated();
          }
          optimizer.reset();
          ++report.rollbacks;
          event += "; parameters rolled back to the last completed epoch";
        }
        report.events.push_back(std::move(event));
      } else {
        optimizer.step(static_cast<float>(lr));
        consecutive_failures = 0;
        ++report.steps;
        epoch_loss += loss;
        ++epoch_steps;
      }
      for (parameter* p : problem.with_gradients) p->zero_grad();
      ++steps_done;

      if (options.on_progress) {
        const double elapsed = std::chrono::duration<double>(clock::now() - started).count();
        fit_progress p;
        p.epoch = epoch;
        p.epochs = recipe.epochs;
        p.step = steps_done;
        p.steps = total_steps;
        p.loss = epoch_steps > 0 ? epoch_loss / static_cast<double>(epoch_steps) : 0.0;
        const double samples = static_cast<double>(epoch) * static_cast<double>(n) + static_cast<double>(first + count);
        p.samples_per_second = elapsed > 0.0 ? samples / elapsed : 0.0;
        p.eta_seconds = elapsed / static_cast<double>(steps_done) * static_cast<double>(total_steps - steps_done);
        p.learning_rate = lr;
        p.epoch_end = step + 1 == steps_per_epoch;
        options.on_progress(p);
      }
    }
    report.epoch_losses.push_back(epoch_steps > 0 ? epoch_loss / static_cast<double>(epoch_steps)
                                                  : std::numeric_limits<double>::quiet_NaN());
    if (epoch_steps > 0) take_snapshot();
  }

  report.final_loss = report.epoch_losses.back();
  report.final_lr_scale = lr_scale;
  report.seconds = std::chrono::duration<double>(clock::now() - started).count();
  report.samples_per_second = report.seconds > 0.0 ? static_cast<double>(n) * recipe.epochs / report.seconds : 0.0;
  return report;
}

void gather_samples(const std::vector<const_view>& features, span<const index_t> batch, std::vector<tensor>& out) {
  out.resize(features.size());
  const auto count = static_cast<index_t>(batch.size());
  for (std::size_t s = 0; s < features.size(); ++s) {
    const const_view& src = features[s];
    out[s].resize({count, src.c(), src.h(), src.w()}, layout::nhwc);
    for (index_t i = 0; i < count; ++i) copy(src.batch(batch[static_cast<std::size_t>(i)], 1), out[s].view().batch(i, 1));
  }
}

}  // namespace v0
}  // namespace flowad
