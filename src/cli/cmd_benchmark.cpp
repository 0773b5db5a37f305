// flowad benchmark: one table across detectors and categories. Every (category, detector) pair is
// `flowad eval` in a process of its own (this executable run again), so that the pair's peak resident
// memory is its own; the table gathers the metrics from the children's JSON. The command chooses
// nothing: a pair runs exactly as `flowad eval --data DIR --model KIND` with the same options would.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/output.hpp"
#include "flowad/detector.hpp"
#include "flowad/io/dataset.hpp"
#include "flowad/version.hpp"

extern char** environ;

namespace flowad {
namespace cli {

namespace {

// The exit code of a command that ran no pair because its inputs were wrong.
constexpr int usage_error_exit = 2;
constexpr double kib_per_mib = 1024.0;

// How a child process ended, and the peak resident memory the kernel counted for it.
struct child_exit {
  int exit_status = -1;  // set when it exited
  int signal = 0;        // set when a signal ended it
  double peak_rss_mb = 0.0;
  bool ok() const { return signal == 0 && exit_status == 0; }
  std::string text() const {
    if (signal != 0) return "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
    return "exit status " + std::to_string(exit_status);
  }
};

// Runs this executable (/proc/self/exe: the same binary even if the file has been replaced since) with
// `args` and waits for it. Its stdout goes to `stdout_file`, or to our stderr when that is empty (our
// stdout is the table's); its stderr to `stderr_file`, or to ours.
//
// ru_maxrss from wait4() is the child's peak resident set. Linux also counts in it what the launching
// process had resident when it started the child, so this process never loads models or images itself.
child_exit run_self(const std::vector<std::string>& args, const std::string& stdout_file = {},
                    const std::string& stderr_file = {}) {
  std::vector<std::string> argv_text{"flowad"};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdout_file.empty())
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  else
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!stderr_file.empty())
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int failed = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (failed != 0)
    throw error(errc::io_error, std::string("cannot start flowad again (/proc/self/exe): ") + std::strerror(failed));

  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0)
    if (errno != EINTR) throw error(errc::io_error, std::string("waiting for a child flowad: ") + std::strerror(errno));
  child_exit e;
  if (WIFEXITED(status))
    e.exit_status = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    e.signal = WTERMSIG(status);
  e.peak_rss_mb = static_cast<double>(usage.ru_maxrss) / kib_per_mib;  // Linux: KiB
  return e;
}

// The folder of one run's scratch files, removed with everything in it.
class scratch_folder {
 public:
  scratch_folder() {
    std::string pattern = (fs::temp_directory_path() / "flowad-benchmark-XXXXXX").string();
    if (!mkdtemp(pattern.data()))
      throw error(errc::io_error, "cannot create a folder for the runs' JSON in " + fs::temp_directory_path().string());
    path_ = pattern;
  }
  ~scratch_folder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  scratch_folder(const scratch_folder&) = delete;
  scratch_folder& operator=(const scratch_folder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw error(errc::io_error, "cannot write " + path.string());
}

// The folder's own name: "mvtec_bottle" for "../data/mvtec_bottle/".
std::string folder_name(const std::string& folder) {
  const fs::path p = fs::absolute(folder).lexically_normal();
  return p.has_filename() ? p.filename().string() : p.parent_path().filename().string();
}

// One (category, detector) pair.
struct benchmark_row {
  std::string category, data, detector;
  std::vector<std::string> command;  // the child's arguments after "flowad"
  child_exit exit;
  double wall_seconds = 0.0;
  nlohmann::json eval;  // the child's JSON; null when it wrote none
  std::string problem;  // why a child that exited 0 still counts as failed
  bool ok() const { return exit.ok() && problem.empty(); }
};

// The child's value of `key` when it is a number; null when it is missing, null or anything else.
nlohmann::json number_or_null(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? *it : nlohmann::json(nullptr);
}

std::string cell(const nlohmann::json& value, const char* format, double scale = 1.0) {
  if (!value.is_number()) return "n/a";
  char buf[48];
  std::snprintf(buf, sizeof buf, format, value.get<double>() * scale);
  return buf;
}

std::string status_text(const benchmark_row& r) {
  if (r.ok()) return "ok";
  return "failed (" + (r.problem.empty() ? r.exit.text() : r.problem) + ")";
}

std::string markdown_table(const std::vector<benchmark_row>& rows, std::size_t done) {
  std::string t =
      "| category | detector | image AUROC | pixel AUROC | AUPRO | fit (s) | ms/image | parameters | peak RSS (MB) | "
      "status |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (std::size_t i = 0; i < done; ++i) {
    const benchmark_row& r = rows[i];
    const nlohmann::json& e = r.eval;
    t += "| " + r.category + " | " + r.detector + " | " + cell(number_or_null(e, "image_auroc"), "%.4f") + " | " +
         cell(number_or_null(e, "pixel_auroc"), "%.4f") + " | " + cell(number_or_null(e, "aupro"), "%.4f") + " | " +
         cell(number_or_null(e, "fit_seconds"), "%.1f") + " | " + cell(number_or_null(e, "ms_per_image"), "%.1f") +
         " | " + cell(number_or_null(e, "parameters"), "%.2f M", 1e-6) + " | " + cell(r.exit.peak_rss_mb, "%.0f") +
         " | " + status_text(r) + " |\n";
  }
  if (done < rows.size()) t += "\n(" + std::to_string(done) + " of " + std::to_string(rows.size()) + " runs so far)\n";
  return t;
}

nlohmann::json benchmark_json(const std::vector<benchmark_row>& rows, std::size_t done, double launcher_rss_mb) {
  nlohmann::json results = nlohmann::json::array();
  for (std::size_t i = 0; i < done; ++i) {
    const benchmark_row& r = rows[i];
    results.push_back(
        {{"category", r.category},
         {"data", r.data},
         {"detector", r.detector},
         {"status", r.ok() ? "ok" : "failed"},
         {"exit_status", r.exit.signal == 0 ? nlohmann::json(r.exit.exit_status) : nlohmann::json(nullptr)},
         {"signal", r.exit.signal != 0 ? nlohmann::json(r.exit.signal) : nlohmann::json(nullptr)},
         {"problem", r.problem.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.problem)},
         {"image_auroc", number_or_null(r.eval, "image_auroc")},
         {"pixel_auroc", number_or_null(r.eval, "pixel_auroc")},
         {"aupro", number_or_null(r.eval, "aupro")},
         {"fit_seconds", number_or_null(r.eval, "fit_seconds")},
         {"ms_per_image", number_or_null(r.eval, "ms_per_image")},
         {"parameters", number_or_null(r.eval, "parameters")},
         {"peak_rss_mb", r.exit.peak_rss_mb},
         {"wall_seconds", r.wall_seconds},
         {"command", r.command},
         {"eval", r.eval}});
  }
  return {{"flowad_version", version().string},
          {"runs", rows.size()},
          {"complete", done == rows.size()},
          {"launcher_peak_rss_mb", launcher_rss_mb},
          {"results", results}};
}

// This process's own peak resident memory: a floor under every child's figure (see run_self).
double own_peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / kib_per_mib;
}

class benchmark_command final : public command {
 public:
  explicit benchmark_command(CLI::App& parent) {
    app = parent.add_subcommand("benchmark", "one table across detectors and categories: flowad eval for every pair");
    app->footer(
        "For every folder of --data and every kind of --models, runs `flowad eval --data DIR --model KIND`\n"
        "with the other options as given, each in a process of its own, and writes one table of image\n"
        "AUROC, pixel AUROC, AUPRO, fit seconds, ms per image, parameters and peak resident memory (the\n"
        "child's ru_maxrss). A pair that fails is listed as failed and the others still run; the command\n"
        "then exits with status 1. Inputs that are wrong stop it before any run, with status 2. Each\n"
        "detector's settings are checked (as `flowad info` checks them) before the first run.");
    app->add_option("--data", data, "MVTec-layout folders, comma-separated")->required()->delimiter(',');
    app->add_option("--models", kinds, "detector kinds, comma-separated")->required()->delimiter(',');
    app->add_option("--markdown", markdown, "write the table as Markdown (it is also printed)");
    app->add_option("--json", json, "write the table as JSON, with every run's own eval JSON");
    app->add_option("--map-size", map_size, "HxW (or S) of the maps and masks the pixel metrics compare");
    pipeline.attach(*app, false);
    // The detectors are --models; every other option of the pipeline passes through to each run.
    app->remove_option(app->get_option("--model"));
    app->get_option("--set")->description(
        "change a setting of every detector's recommended configuration, KEY=VALUE, or of one detector's, "
        "KIND:KEY=VALUE (repeatable; `flowad info --model KIND` lists them)");
    app->get_option("--epochs")
        ->description(
            "training epochs of every detector (--set train.epochs=N); "
            "--set KIND:train.epochs=N for one");
  }

  int run() override {
    std::vector<benchmark_row> rows;
    std::vector<std::string> common;
    try {
      rows = plan(common);
    } catch (const error& e) {
      std::fprintf(stderr, "flowad benchmark: %s\n", e.message().c_str());
      return usage_error_exit;
    }
    const scratch_folder scratch;
    if (!check_settings(common, scratch.path())) return usage_error_exit;
    try {
      write_outputs(rows, 0);
    } catch (const error& e) {
      std::fprintf(stderr, "flowad benchmark: %s\n", e.message().c_str());
      return usage_error_exit;
    }

    std::vector<std::string> failures;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      benchmark_row& r = rows[i];
      const fs::path result = scratch.path() / ("run" + std::to_string(i) + ".json");
      r.command = {"eval", "--data", r.data, "--model", r.detector};
      r.command.insert(r.command.end(), common.begin(), common.end());
      if (!map_size.empty()) r.command.insert(r.command.end(), {"--map-size", map_size});
      const std::vector<std::string> s = settings_for(r.detector);
      r.command.insert(r.command.end(), s.begin(), s.end());

      std::fprintf(stderr, "flowad benchmark [%zu/%zu]: %s with %s\n", i + 1, rows.size(), r.category.c_str(),
                   r.detector.c_str());
      std::fflush(stderr);
      const auto start = std::chrono::steady_clock::now();
      std::vector<std::string> args = r.command;
      args.insert(args.end(), {"--json", result.string()});
      r.exit = run_self(args);
      r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (r.exit.ok()) {
        r.eval = nlohmann::json::parse(read_text(result), nullptr, false);
        if (r.eval.is_discarded() || !r.eval.is_object()) {
          r.eval = nullptr;
          r.problem = "exit status 0 but no readable JSON";
        }
      }
      std::fprintf(stderr, "flowad benchmark [%zu/%zu]: %s with %s: %s in %.1f s, peak RSS %.0f MB\n", i + 1,
                   rows.size(), r.category.c_str(), r.detector.c_str(), status_text(r).c_str(), r.wall_seconds,
                   r.exit.peak_rss_mb);
      if (!r.ok())
        failures.push_back(r.category + " with " + r.detector + " (" + (r.problem.empty() ? r.exit.text() : r.problem) +
                           ")");
      write_outputs(rows, i + 1);
    }

    std::printf("%s", markdown_table(rows, rows.size()).c_str());
    std::fflush(stdout);
    if (!markdown.empty()) std::fprintf(stderr, "wrote %s\n", markdown.c_str());
    if (!json.empty()) std::fprintf(stderr, "wrote %s\n", json.c_str());
    if (failures.empty()) return 0;
    std::string list;
    for (const std::string& f : failures) list += (list.empty() ? "" : "; ") + f;
    std::fprintf(stderr, "flowad benchmark: %zu of %zu runs failed: %s\n", failures.size(), rows.size(), list.c_str());
    return 1;
  }

 private:
  // Checks the inputs and lists the pairs; fills `common` with the options every run gets.
  std::vector<benchmark_row> plan(std::vector<std::string>& common) {
    if (data.empty()) throw error(errc::invalid_argument, "--data names no folder");
    if (kinds.empty()) throw error(errc::invalid_argument, "--models names no detector");
    for (std::size_t i = 0; i < kinds.size(); ++i) {
      if (kinds[i].empty()) throw error(errc::invalid_argument, "--models has an empty entry");
      detector_kind(kinds[i]);  // throws naming the known kinds
      for (std::size_t j = 0; j < i; ++j)
        if (kinds[j] == kinds[i]) throw error(errc::invalid_argument, "--models names " + kinds[i] + " twice");
    }
    for (std::size_t i = 0; i < data.size(); ++i) {
      if (data[i].empty()) throw error(errc::invalid_argument, "--data has an empty entry");
      read_mvtec_category(data[i]);  // throws naming a missing folder or what its layout lacks
      std::error_code ec;
      for (std::size_t j = 0; j < i; ++j)
        if (fs::equivalent(data[j], data[i], ec))
          throw error(errc::invalid_argument, "--data names " + data[i] + " twice");
    }
    if (!map_size.empty()) parse_dims("--map-size", map_size);
    for (const std::string& a : pipeline.detector.assignments) {
      const std::string key = detector_config::parse_assignment(a).first;
      const std::size_t colon = key.find(':');
      if (colon == std::string::npos) continue;
      const std::string kind = key.substr(0, colon);
      detector_kind(kind);
      if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
        throw error(errc::invalid_argument, "--set " + a + ": " + kind + " is not one of --models");
    }

    for (const char* name :
         {"--extractor", "--weights", "--size", "--shorter-side", "--levels", "--neighbourhood", "--pool-stride"})
      for (const std::string& value : app->get_option(name)->results()) common.insert(common.end(), {name, value});

    std::vector<benchmark_row> rows;
    for (const std::string& folder : data)
      for (const std::string& kind : kinds) {
        benchmark_row r;
        r.category = folder_name(folder);
        r.data = folder;
        r.detector = kind;
        rows.push_back(r);
      }
    return rows;
  }

  // --set and --epochs as one detector gets them: the unscoped ones and its own, without the scope.
  std::vector<std::string> settings_for(const std::string& kind) const {
    std::vector<std::string> out;
    for (const std::string& a : pipeline.detector.assignments) {
      const std::size_t colon = a.find(':'), equals = a.find('=');
      if (colon == std::string::npos || colon > equals)
        out.insert(out.end(), {"--set", a});
      else if (a.compare(0, colon, kind) == 0)
        out.insert(out.end(), {"--set", a.substr(colon + 1)});
    }
    if (pipeline.detector.epochs > 0) out.insert(out.end(), {"--epochs", std::to_string(pipeline.detector.epochs)});
    return out;
  }

  // Runs `flowad info` for every detector with the options its runs get, so that a setting one of them
  // lacks stops the benchmark before hours of other runs rather than after.
  bool check_settings(const std::vector<std::string>& common, const fs::path& scratch) const {
    for (const std::string& kind : kinds) {
      std::vector<std::string> args{"info", "--model", kind};
      args.insert(args.end(), common.begin(), common.end());
      const std::vector<std::string> s = settings_for(kind);
      args.insert(args.end(), s.begin(), s.end());
      const fs::path messages = scratch / ("info-" + kind + ".txt");
      const child_exit e = run_self(args, "/dev/null", messages.string());
      if (e.ok()) continue;
      std::string text = read_text(messages);
      const std::string prefix = "flowad info: ";
      if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
      while (!text.empty() && text.back() == '\n') text.pop_back();
      if (text.empty()) text = "flowad info " + e.text();
      std::fprintf(stderr, "flowad benchmark: %s: %s\n", kind.c_str(), text.c_str());
      if (names_unscoped_setting(text))
        std::fprintf(stderr,
                     "(--set KEY=VALUE and --epochs apply to every detector of --models; "
                     "--set KIND:KEY=VALUE to one)\n");
      return false;
    }
    return true;
  }

  // Whether `message` names a setting that --set KEY=VALUE or --epochs gave every detector.
  bool names_unscoped_setting(const std::string& message) const {
    std::vector<std::string> keys;
    for (const std::string& a : pipeline.detector.assignments) {
      const std::string key = detector_config::parse_assignment(a).first;
      if (key.find(':') == std::string::npos) keys.push_back(key);
    }
    if (pipeline.detector.epochs > 0) keys.push_back("train.epochs");
    for (const std::string& k : keys)
      if (message.find(k) != std::string::npos) return true;
    return false;
  }

  void write_outputs(const std::vector<benchmark_row>& rows, std::size_t done) const {
    if (!markdown.empty()) write_text(markdown, markdown_table(rows, done));
    if (!json.empty()) write_json(json, benchmark_json(rows, done, own_peak_rss_mb()));
  }

  std::vector<std::string> data, kinds;
  std::string markdown, json, map_size;
  pipeline_options pipeline;
};

}  // namespace

std::unique_ptr<command> make_benchmark(CLI::App& parent) {
  return std::make_unique<benchmark_command>(parent);
}

}  // namespace cli
}  // namespace flowad
