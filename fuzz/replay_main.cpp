// Replays a fuzz target's corpus without libFuzzer, so that any compiler builds it and CI runs it
// (ctest label fuzz-replay; under AddressSanitizer in scripts/run-tests.sh):
//   flowad_fuzz_replay_<target> FILE_OR_FOLDER...
// runs LLVMFuzzerTestOneInput on every file given and every file of every folder given (sorted by
// name). An exception escaping the target fails the run, naming the input; a crash does by itself.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path given = argv[i];
    if (!fs::is_directory(given)) {
      inputs.push_back(given);
      continue;
    }
    std::vector<fs::path> files;
    for (const fs::directory_entry& e : fs::directory_iterator(given))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    inputs.insert(inputs.end(), files.begin(), files.end());
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "replay: no inputs (give corpus folders or files)\n");
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  int failures = 0;
  for (const fs::path& input : inputs) {
    std::ifstream in(input, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "replay: cannot read %s\n", input.c_str());
      return 2;
    }
    const std::vector<std::uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    try {
      // A non-null pointer for an empty input, as libFuzzer passes.
      const std::uint8_t none = 0;
      LLVMFuzzerTestOneInput(bytes.empty() ? &none : bytes.data(), bytes.size());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "replay: %s: exception escaped the target: %s\n", input.c_str(), e.what());
      ++failures;
    } catch (...) {
      std::fprintf(stderr, "replay: %s: a non-standard exception escaped the target\n", input.c_str());
      ++failures;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("replayed %zu inputs in %.2f s, %d failed\n", inputs.size(), seconds, failures);
  return failures == 0 ? 0 : 1;
}
