// The backbones with the real ImageNet weights of ../shared/weights: against the naive double
// reference (tests/support/reference_nets.hpp) and, when /usr/bin/python3 has numpy and torch,
// against PyTorch's conv2d / max_pool2d in double precision on the same .npy/.npz weights.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "flowad/extract/filterbank.hpp"
#include "flowad/extract/mobilenet_v2.hpp"
#include "flowad/extract/resnet18.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/io/npy.hpp"
#include "flowad/io/preprocess.hpp"
#include "support/python_reference.hpp"
#include "support/reference_nets.hpp"
#include "support/shared_data.hpp"
#include "support/temp_folder.hpp"

using namespace flowad;
namespace fs = std::filesystem;
namespace ref = flowad::testing::ref;

namespace {

constexpr double tolerance = 1e-4;  // relative to the largest reference value of each level

std::string resnet18_weights() { return flowad::testing::shared_path("weights/resnet18").string(); }

std::string mobilenet_v2_weights() {
  return flowad::testing::shared_path("weights/mobilenet_v2/mobilenet_v2_dequant_bnfolded.npz").string();
}

// Real inspection images (MVTec bottle, one good and one defective), resized and normalised.
tensor bottle_images(index_t height, index_t width) {
  const fs::path root = flowad::testing::shared_path("data/mvtec_bottle");
  INFO("MVTec bottle expected at " << root);
  REQUIRE(fs::is_directory(root));
  const mvtec_category bottle = read_mvtec_category(root);
  REQUIRE(!bottle.train.empty());
  REQUIRE(bottle.test.size() > 1);
  return load_image_batch({bottle.train.front(), bottle.test.front().image}, height, width);
}

void check_levels(const std::vector<tensor>& got, const std::vector<ref::map>& want, const std::string& what) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = ref::relative_error(got[i].view(), want[i]);
    double scale = 0.0;
    for (double v : want[i].v) scale = std::max(scale, std::abs(v));
    INFO(what << " level " << i << " " << got[i].shape().str() << ": relative error " << err << ", scale " << scale);
    CHECK(err <= tolerance);
    CHECK(scale > 0.1);  // real features, not a degenerate all-zero map
  }
}

}  // namespace

TEST_CASE("resnet18 with the real weights matches a naive ResNet18", "[real-data]") {
  const std::string path = resnet18_weights();
  const resnet18_extractor e(path);
  const weight_map w = read_weights(path);
  CHECK(w.size() == 30);
  const tensor x = bottle_images(64, 64);
  workspace ws;
  check_levels(e.extract(x.view(), ws), ref::resnet18(w, ref::from_view(x.view())), "resnet18");
  CHECK(e.level_shape(0, {16, 3, 256, 256}) == shape4{16, 64, 64, 64});
  CHECK(e.level_shape(2, {16, 3, 256, 256}) == shape4{16, 256, 16, 16});
}

TEST_CASE("mobilenet_v2 with the real .npz weights matches a naive MobileNetV2", "[real-data]") {
  const std::string path = mobilenet_v2_weights();
  CHECK(list_npz(path).size() == 106);
  const std::unique_ptr<extractor> e = make_extractor("mobilenet_v2", path);
  const weight_map w = read_weights(path);
  const tensor x = bottle_images(64, 64);
  workspace ws;
  check_levels(e->extract(x.view(), ws), ref::mobilenet_v2(w, ref::from_view(x.view())), "mobilenet_v2");
  CHECK(e->level_shape(1, {1, 3, 256, 256}) == shape4{1, 32, 32, 32});
}

TEST_CASE("extractors with the real weights match PyTorch", "[real-data][python]") {
  const std::string script = flowad::testing::python_require("os, numpy as np, torch, torch.nn.functional as F") + R"(
kind, weights, inp, out = sys.argv[1:5]
torch.set_num_threads(2)
if weights.endswith(".npz"):
    z = np.load(weights)
    W = {k: torch.from_numpy(z[k]).double() for k in z.files}
else:
    W = {f[:-4]: torch.from_numpy(np.load(os.path.join(weights, f))).double()
         for f in os.listdir(weights) if f.endswith(".npy")}
x = torch.from_numpy(np.load(inp)).double()
def conv(x, name, stride=1, groups=1):
    w = W[name + ".weight"]
    return F.conv2d(x, w, W[name + ".bias"], stride=stride, padding=(w.shape[-1] - 1) // 2, groups=groups)
outs = []
if kind == "resnet18":
    x = F.max_pool2d(F.relu(conv(x, "conv1", 2)), 3, 2, 1)
    for layer in (1, 2, 3):
        for block in (0, 1):
            b = "layer%d.%d" % (layer, block)
            down = layer > 1 and block == 0
            y = conv(F.relu(conv(x, b + ".conv1", 2 if down else 1)), b + ".conv2")
            x = F.relu(y + (conv(x, b + ".downsample.0", 2) if down else x))
        outs.append(x)
else:
    x = F.relu6(conv(x, "features.0.0", 2))
    i, cin = 1, 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)):
        for r in range(n):
            stride = s if r == 0 else 1
            p = "features.%d.conv." % i
            y, part = x, 0
            if t != 1:
                y, part = F.relu6(conv(y, p + "0.0")), 1
            y = F.relu6(conv(y, p + "%d.0" % part, stride, cin * t))
            y = conv(y, p + "%d" % (part + 1))
            x = x + y if (stride == 1 and cin == c) else y
            cin = c
            if i in (3, 6, 13):
                outs.append(x)
            i += 1
for k, o in enumerate(outs):
    np.save(os.path.join(out, "level%d.npy" % k), o.float().numpy())
)";
  flowad::testing::temp_folder dir;
  const tensor x = bottle_images(96, 128);
  const std::string input = (dir / "input.npy").string();
  write_npy(input, x.view());
  workspace ws;
  struct model {
    const char* kind;
    std::string weights;
  };
  for (const model& m : {model{"resnet18", resnet18_weights()}, model{"mobilenet_v2", mobilenet_v2_weights()}}) {
    const fs::path out = dir / m.kind;
    fs::create_directories(out);
    const flowad::testing::python_run run =
        flowad::testing::run_python(script, {m.kind, m.weights, input, out.string()});
    FLOWAD_REQUIRE_PYTHON(run);
    const std::unique_ptr<extractor> e = make_extractor(m.kind, m.weights);
    const std::vector<tensor> got = e->extract(x.view(), ws, layout::nchw);
    REQUIRE(got.size() == 3);
    for (std::size_t i = 0; i < got.size(); ++i) {
      const tensor want = read_npy_tensor((out / ("level" + std::to_string(i) + ".npy")).string());
      const double err = ref::relative_error(got[i].view(), ref::from_view(want.view()));
      INFO(m.kind << " level " << i << " " << got[i].shape().str() << " against PyTorch: relative error " << err);
      CHECK(want.shape() == got[i].shape());
      CHECK(err <= tolerance);
    }
  }
}
