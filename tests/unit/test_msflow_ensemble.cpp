// MS-Flow ensembles (msflow_config::members): member m is the single model of seeds random_seed + m
// and fit_options::seed + m, and the ensemble's maps are the mean of its members' maps.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "flowad/flows/msflow.hpp"
#include "flowad/io/model_file.hpp"
#include "support/feature_data.hpp"

using namespace flowad;
using namespace flowad::testing;

namespace {

msflow_config two_scale_config(index_t members, std::uint64_t seed) {
  msflow_config cfg;
  cfg.scales = {{8, 6, 6}, {12, 3, 3}};
  cfg.groups = 2;
  cfg.hidden = 16;
  cfg.blocks = 2;
  cfg.kernels = {3, 1};
  cfg.random_seed = seed;
  cfg.members = members;
  return cfg;
}

fit_options short_fit(std::uint64_t seed) {
  fit_options opt;
  opt.epochs = 3;
  opt.batch_size = 8;
  opt.optimizer.learning_rate = 2e-3f;
  opt.schedule.warmup_epochs = 1;
  opt.seed = seed;
  return opt;
}

struct two_scale_data {
  tensor train_fine, train_coarse, test_fine, test_coarse;
  feature_maps train() const { return {train_fine.cview(), train_coarse.cview()}; }
  feature_maps test() const { return {test_fine.cview(), test_coarse.cview()}; }
};

two_scale_data make_data() {
  const feature_dataset fine = make_feature_dataset(8, 6, 24, 4, 4, 17);
  two_scale_data d{fine.train, tensor({24, 12, 3, 3}), fine.test, tensor({8, 12, 3, 3})};
  detail::rng r(2);
  for (tensor* t : {&d.train_coarse, &d.test_coarse})
    for (index_t i = 0; i < t->numel(); ++i) t->data()[i] = static_cast<float>(r.normal());
  return d;
}

bool same_bits(const tensor& a, const tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

}  // namespace

TEST_CASE("msflow ensemble members are the single models of their seeds, its maps their mean", "[msflow][ensemble]") {
  const two_scale_data data = make_data();
  msflow ensemble(two_scale_config(2, 5));
  msflow first(two_scale_config(1, 5)), second(two_scale_config(1, 6));
  const fit_report together = ensemble.fit(data.train(), short_fit(3));
  const fit_report alone_first = first.fit(data.train(), short_fit(3));
  const fit_report alone_second = second.fit(data.train(), short_fit(4));

  CHECK(together.steps == alone_first.steps + alone_second.steps);
  REQUIRE(together.epoch_losses.size() == 3);
  for (std::size_t e = 0; e < 3; ++e)
    CHECK(together.epoch_losses[e] ==
          Approx((alone_first.epoch_losses[e] + alone_second.epoch_losses[e]) / 2.0).epsilon(1e-12));

  // Each member's latent is its single model's, bit for bit.
  std::vector<tensor> z_member, z_alone;
  std::vector<double> logdet_member, logdet_alone;
  for (index_t member = 0; member < 2; ++member) {
    ensemble.transform(data.test(), z_member, logdet_member, member);
    (member == 0 ? first : second).transform(data.test(), z_alone, logdet_alone);
    INFO("member " << member);
    CHECK(same_bits(z_member[0], z_alone[0]));
    CHECK(same_bits(z_member[1], z_alone[1]));
    CHECK(logdet_member == logdet_alone);
  }
  CHECK_THROWS_AS(ensemble.transform(data.test(), z_member, logdet_member, 2), error);

  for (const map_combination how : {map_combination::mean, map_combination::product}) {
    for (const score_aggregation image : {score_aggregation::top_k_mean, score_aggregation::mean}) {
      score_options so;
      so.map_height = so.map_width = 12;
      so.combine = how;
      so.image_score = image;
      const scores mixed = ensemble.score(data.test(), so);
      const scores a = first.score(data.test(), so), b = second.score(data.test(), so);
      INFO("combination " << static_cast<int>(how) << ", image score " << to_string(image));
      double worst = 0.0;
      for (index_t i = 0; i < mixed.maps.numel(); ++i) {
        const double expected = (static_cast<double>(a.maps.data()[i]) + b.maps.data()[i]) / 2.0;
        worst = std::max(worst, std::abs(mixed.maps.data()[i] - expected) / std::max(1e-6, std::abs(expected)));
      }
      CHECK(worst <= 1e-6);
      if (image == score_aggregation::mean)  // the mean of z²/2 over both members' dimensions
        for (std::size_t i = 0; i < mixed.image.size(); ++i)
          CHECK(mixed.image[i] == Approx((a.image[i] + b.image[i]) / 2.0).epsilon(1e-9));
    }
  }
}

TEST_CASE("msflow ensemble counts, saves and loads every member", "[msflow][ensemble]") {
  const msflow_config single = two_scale_config(1, 5), triple = two_scale_config(3, 5);
  CHECK(count(triple).parameters == 3.0 * count(single).parameters);
  CHECK(count(triple).macs_per_image == 3.0 * count(single).macs_per_image);

  const two_scale_data data = make_data();
  msflow model(triple);
  CHECK(model.parameters().size() == 3 * msflow(single).parameters().size());
  std::vector<fit_progress> seen;
  fit_options opt = short_fit(3);
  opt.on_progress = [&](const fit_progress& p) { seen.push_back(p); };
  model.fit(data.train(), opt);
  REQUIRE(seen.size() == 3 * 3 * 3);  // members x epochs x steps (8, 8, 8)
  CHECK(seen.back().steps == 27);
  CHECK(seen.back().step == 27);
  CHECK(seen.back().member == 2);
  CHECK(seen.back().members == 3);
  CHECK(seen[9].member == 1);
  CHECK(seen[9].epoch == 0);

  const auto path = std::filesystem::temp_directory_path() / "flowad_test_msflow_ensemble.flowad";
  model.save(path);
  const model_file_contents file = read_model_file(path);
  std::filesystem::remove(path);
  const std::unique_ptr<msflow> loaded = msflow::from_contents(file);
  CHECK(loaded->config().members == 3);
  const scores before = model.score(data.test()), after = loaded->score(data.test());
  CHECK(after.image == before.image);
  CHECK(same_bits(after.maps, before.maps));

  // A file whose configuration disagrees with its tensors is refused, naming the count.
  model_file_contents fewer = file;
  for (auto& [key, value] : fewer.config)
    if (key == "members") value = "2";
  CHECK_THROWS_WITH(msflow::from_contents(fewer), Catch::Contains("values but its configuration needs"));
}

TEST_CASE("msflow reads model files written before ensembles existed", "[msflow][ensemble]") {
  const two_scale_data data = make_data();
  msflow model(two_scale_config(1, 5));
  model.fit(data.train(), short_fit(3));
  const auto path = std::filesystem::temp_directory_path() / "flowad_test_msflow_single.flowad";
  model.save(path);
  model_file_contents file = read_model_file(path);
  std::filesystem::remove(path);
  // Such files have no "members" key and name tensors "scale0.layer00." with no member prefix.
  const auto key = std::find_if(file.config.begin(), file.config.end(), [](const auto& kv) { return kv.first == "members"; });
  REQUIRE(key != file.config.end());
  file.config.erase(key);
  for (const stored_tensor& t : file.tensors) CHECK(t.name.rfind("scale", 0) == 0);
  const std::unique_ptr<msflow> loaded = msflow::from_contents(file);
  CHECK(loaded->config().members == 1);
  CHECK(same_bits(loaded->score(data.test()).maps, model.score(data.test()).maps));
}

TEST_CASE("msflow ensemble size is validated", "[msflow][ensemble]") {
  for (const index_t members : {index_t{0}, index_t{-1}, msflow_config::max_members + 1}) {
    INFO("members " << members);
    CHECK_THROWS_WITH(msflow(two_scale_config(members, 0)), Catch::Contains("members must be in [1, 64]"));
  }
  CHECK_NOTHROW(msflow(two_scale_config(msflow_config::max_members, 0)));
}
