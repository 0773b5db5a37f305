#include "extract/weights.hpp"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace flowad {
inline namespace v0 {

namespace {
namespace fs = std::filesystem;

std::string shape_text(const std::vector<index_t>& shape) {
  npy_array a;
  a.shape = shape;
  return a.shape_str();
}
}  // namespace

weight_map read_weights(const std::string& path, const std::vector<std::string>& names) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw error(errc::io_error, path + ": weights not found (no such file or directory)");
  weight_map out;
  if (fs::is_directory(st)) {
    if (names.empty()) {
      std::vector<fs::path> files;
      for (const auto& entry : fs::directory_iterator(path, ec))
        if (entry.path().extension() == ".npy") files.push_back(entry.path());
      if (ec) throw error(errc::io_error, path + ": cannot list the directory (" + ec.message() + ")");
      std::sort(files.begin(), files.end());
      for (const fs::path& f : files) out.emplace(f.stem().string(), read_npy(f.string()));
      return out;
    }
    for (const std::string& name : names) {
      const fs::path file = fs::path(path) / (name + ".npy");
      if (!fs::exists(file, ec))
        throw error(errc::io_error, file.string() + ": missing weight tensor '" + name + "' (no such file)");
      out.emplace(name, read_npy(file.string()));
    }
    return out;
  }
  std::vector<npz_entry> entries = read_npz(path);
  for (npz_entry& e : entries) {
    if (!names.empty() && std::find(names.begin(), names.end(), e.name) == names.end()) continue;
    out.emplace(std::move(e.name), std::move(e.array));
  }
  for (const std::string& name : names)
    if (out.find(name) == out.end())
      throw error(errc::bad_file, path + ": missing weight tensor '" + name + "' (no member '" + name + ".npy')");
  return out;
}

namespace detail {

checked_weights::checked_weights(const std::string& path, const std::vector<weight_spec>& specs,
                                 const std::string& network)
    : network_(network) {
  std::vector<std::string> names;
  for (const weight_spec& s : specs) names.push_back(s.name);
  weight_map map = read_weights(path, names);
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  for (const weight_spec& s : specs) {
    const std::string where =
        is_dir ? (fs::path(path) / (s.name + ".npy")).string() : path + " (member '" + s.name + ".npy')";
    check(where, network, s, map.at(s.name));
    values_[s.name].assign(map.at(s.name).data.begin(), map.at(s.name).data.end());
  }
}

checked_weights::checked_weights(const weight_map& weights, const std::string& origin,
                                 const std::vector<weight_spec>& specs, const std::string& network)
    : network_(network) {
  for (const weight_spec& s : specs) {
    const auto it = weights.find(s.name);
    if (it == weights.end())
      throw error(errc::invalid_argument, network + " weights (" + origin + "): missing tensor '" + s.name +
                                              "' (expected float32 " + shape_text(s.shape) + ")");
    check(origin + " tensor '" + s.name + "'", network, s, it->second);
    values_[s.name].assign(it->second.data.begin(), it->second.data.end());
  }
}

void checked_weights::check(const std::string& where, const std::string& network, const weight_spec& spec,
                            const npy_array& a) {
  if (a.dtype != "<f4" && a.dtype != ">f4")
    throw error(errc::bad_file, where + ": " + network + " weight '" + spec.name + "' has dtype '" + a.dtype +
                                    "', expected float32 ('<f4')");
  if (a.shape != spec.shape)
    throw error(errc::bad_file, where + ": " + network + " weight '" + spec.name + "' has shape " + a.shape_str() +
                                    ", expected " + shape_text(spec.shape));
  if (a.data.size() != static_cast<std::size_t>(a.numel()))
    throw error(errc::invalid_argument, where + ": " + network + " weight '" + spec.name + "' holds " +
                                            std::to_string(a.data.size()) + " values for shape " + a.shape_str());
}

std::vector<float> checked_weights::take(const std::string& name) {
  const auto it = values_.find(name);
  if (it == values_.end())
    throw error(errc::invalid_argument,
                network_ + ": internal error, weight '" + name + "' was not declared or already used");
  std::vector<float> v = std::move(it->second);
  values_.erase(it);
  return v;
}

}  // namespace detail
}  // namespace v0
}  // namespace flowad
