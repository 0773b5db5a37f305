// The shared training loop (train/trainer.hpp): it optimises what a step computes, visits every sample
// once per epoch in a seeded order, follows the schedule, reports progress, and recovers from
// non-finite steps exactly as documented.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "flowad/train/trainer.hpp"

using namespace flowad;

namespace {

// Least squares: fit θ (2 values) to targets t_i = (i % 3, 1 - i % 2); the loss of a batch is the
// mean of ‖θ − t_i‖²/2, whose minimum over all samples is the mean target.
struct least_squares {
  parameter theta{"theta", {2}};
  index_t samples = 12;
  std::vector<std::vector<index_t>> batches;  // every batch seen, in order
  double nan_until_step = 0;                  // steps before this one return NaN
  long step_count = 0;

  training_problem problem() {
    training_problem p;
    p.samples = samples;
    p.trained = {&theta};
    p.with_gradients = {&theta};
    p.name = "least_squares";
    p.step = [this](span<const index_t> batch, workspace&) {
      batches.emplace_back(batch.begin(), batch.end());
      ++step_count;
      if (step_count <= nan_until_step) return std::numeric_limits<double>::quiet_NaN();
      double loss = 0.0;
      for (index_t i : batch) {
        const double t[2] = {static_cast<double>(i % 3), static_cast<double>(1 - i % 2)};
        for (int k = 0; k < 2; ++k) {
          const double d = theta.data()[k] - t[k];
          loss += 0.5 * d * d / static_cast<double>(batch.size());
          theta.grad()[k] += static_cast<float>(d / static_cast<double>(batch.size()));
        }
      }
      return loss;
    };
    return p;
  }
};

training_options recipe(int epochs, int batch) {
  training_options r;
  r.epochs = epochs;
  r.batch_size = batch;
  r.optimizer.learning_rate = 0.05f;
  r.optimizer.weight_decay = 0.0f;
  r.schedule.kind = lr_schedule::constant;
  r.seed = 7;
  return r;
}

}  // namespace

TEST_CASE("the trainer minimises the loss the step computes", "[trainer]") {
  least_squares ls;
  const fit_report report = train(ls.problem(), recipe(200, 4), {});
  REQUIRE(report.epoch_losses.size() == 200);
  CHECK(report.steps == 600);
  CHECK(report.discarded_steps == 0);
  // The mean targets over i = 0..11: (1, 0.5).
  CHECK(ls.theta.data()[0] == Approx(1.0).margin(0.05));
  CHECK(ls.theta.data()[1] == Approx(0.5).margin(0.05));
  CHECK(report.final_loss < report.epoch_losses.front());
}

TEST_CASE("every epoch visits each sample once, in an order the seed decides", "[trainer]") {
  const auto batches_of = [](std::uint64_t seed) {
    least_squares ls;
    training_options r = recipe(3, 5);
    r.seed = seed;
    train(ls.problem(), r, {});
    return ls.batches;
  };
  const auto a = batches_of(1), b = batches_of(1), c = batches_of(2);
  CHECK(a == b);
  CHECK(a != c);
  REQUIRE(a.size() == 9);  // 12 samples in batches of 5, 5, 2
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::multiset<index_t> seen;
    for (int k = 0; k < 3; ++k) seen.insert(a[static_cast<std::size_t>(epoch * 3 + k)].begin(), a[static_cast<std::size_t>(epoch * 3 + k)].end());
    CHECK(seen.size() == 12);
    for (index_t i = 0; i < 12; ++i) CHECK(seen.count(i) == 1);
  }
  CHECK(a[2].size() == 2);
}

TEST_CASE("the trainer reports every step and the learning rate of the schedule", "[trainer]") {
  least_squares ls;
  training_options r = recipe(4, 6);
  r.schedule.kind = lr_schedule::cosine;
  r.schedule.warmup_fraction = 0.25;
  r.schedule.final_factor = 0.1;
  std::vector<fit_progress> seen;
  fit_options options;
  options.on_progress = [&](const fit_progress& p) { seen.push_back(p); };
  train(ls.problem(), r, options);
  REQUIRE(seen.size() == 8);
  CHECK(seen.front().learning_rate == Approx(0.005));       // warm-up starts at a tenth
  CHECK(seen[1].learning_rate == Approx(0.005 + 0.045 * 0.5));  // half way through the first epoch
  CHECK(seen[2].learning_rate == Approx(0.05));             // warm-up done: the peak, cosine begins
  CHECK(seen.back().learning_rate < seen[2].learning_rate);
  CHECK(seen.back().step == 8);
  CHECK(seen.back().steps == 8);
  CHECK(seen[1].epoch_end);
  CHECK(!seen[0].epoch_end);
  // The schedule's end points.
  CHECK(lr_factor(r.schedule, 0.0, 4.0) == Approx(0.1));
  CHECK(lr_factor(r.schedule, 1.0, 4.0) == Approx(1.0));
  CHECK(lr_factor(r.schedule, 4.0, 4.0) == Approx(0.1));
}

TEST_CASE("non-finite steps are dropped, then rolled back, then given up on", "[trainer]") {
  SECTION("a few failures: the rate drops and training goes on") {
    least_squares ls;
    ls.nan_until_step = 2;
    const fit_report report = train(ls.problem(), recipe(3, 4), {});
    CHECK(report.discarded_steps == 2);
    CHECK(report.steps == 7);
    CHECK(report.rollbacks == 0);
    CHECK(report.final_lr_scale == 0.25);
    REQUIRE(report.events.size() == 2);
    CHECK_THAT(report.events[0], Catch::Contains("epoch 1 step 1: loss is not finite"));
  }
  SECTION("three in a row roll the parameters back to the last completed epoch") {
    least_squares ls;
    ls.theta.data()[0] = 5.0f;
    ls.nan_until_step = 3;
    const fit_report report = train(ls.problem(), recipe(2, 4), {});
    CHECK(report.rollbacks == 1);
    CHECK_THAT(report.events[2], Catch::Contains("rolled back"));
  }
  SECTION("too many in a row: training_failed") {
    least_squares ls;
    ls.nan_until_step = 1000;
    fit_options options;
    options.max_consecutive_failures = 5;
    try {
      train(ls.problem(), recipe(3, 4), options);
      FAIL("no error");
    } catch (const error& e) {
      CHECK(e.code() == errc::training_failed);
      CHECK_THAT(e.what(), Catch::Contains("least_squares gave up after 5"));
    }
  }
}

TEST_CASE("the trainer rejects recipes out of their domain", "[trainer]") {
  least_squares ls;
  training_options r = recipe(1, 4);
  r.batch_size = 0;
  CHECK_THROWS_WITH(train(ls.problem(), r, {}), Catch::Contains("train.batch_size"));
  r = recipe(1, 4);
  r.schedule.warmup_fraction = 1.5;
  CHECK_THROWS_WITH(train(ls.problem(), r, {}), Catch::Contains("warmup_fraction"));
  training_problem empty = ls.problem();
  empty.samples = 0;
  CHECK_THROWS_WITH(train(empty, recipe(1, 4), {}), Catch::Contains("no training samples"));
}

TEST_CASE("gather_samples copies the chosen samples into dense NHWC tensors", "[trainer]") {
  tensor a({5, 3, 2, 2}), b({5, 2, 1, 1}, layout::nhwc);
  for (index_t i = 0; i < a.numel(); ++i) a.data()[i] = static_cast<float>(i);
  for (index_t i = 0; i < b.numel(); ++i) b.data()[i] = static_cast<float>(100 + i);
  const std::vector<index_t> batch{4, 1};
  std::vector<tensor> out;
  gather_samples({a.cview(), b.cview()}, span<const index_t>(batch), out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].layout() == layout::nhwc);
  CHECK(out[0].shape() == shape4{2, 3, 2, 2});
  for (index_t c = 0; c < 3; ++c)
    for (index_t y = 0; y < 2; ++y)
      for (index_t x = 0; x < 2; ++x) {
        CHECK(out[0](0, c, y, x) == a(4, c, y, x));
        CHECK(out[0](1, c, y, x) == a(1, c, y, x));
      }
  CHECK(out[1](0, 1, 0, 0) == b(4, 1, 0, 0));
}
