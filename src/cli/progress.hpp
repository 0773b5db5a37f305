// Progress on stderr: a redrawn bar with rate and ETA when stderr is a terminal, plain periodic lines
// otherwise (logs and CI keep one line per update, at most every few seconds).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

namespace flowad {
namespace cli {

class progress {
 public:
  progress(std::string label, long total, const char* unit)
      : label_(std::move(label)), total_(total), unit_(unit), terminal_(::isatty(STDERR_FILENO) != 0),
        start_(clock::now()), last_print_(start_) {}
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;
  ~progress() { finish(); }

  // done: units completed so far; note: extra text (e.g. "loss 0.123").
  void update(long done, const std::string& note = {}, bool force = false) {
    done_ = done;
    const auto now = clock::now();
    const double since = std::chrono::duration<double>(now - last_print_).count();
    const bool last = done >= total_;
    if (!force && !last && since < (terminal_ ? 0.1 : 5.0)) return;
    last_print_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0.0 ? static_cast<double>(done) / elapsed : 0.0;
    const double eta = rate > 0.0 ? static_cast<double>(total_ - done) / rate : 0.0;
    char tail[160];
    std::snprintf(tail, sizeof tail, "%ld/%ld %s  %.1f %s/s  %s %s", done, total_, unit_, rate, unit_,
                  last ? "took" : "ETA", format_seconds(last ? elapsed : eta).c_str());
    if (terminal_) {
      constexpr int width = 28;
      const int filled = total_ > 0 ? static_cast<int>(width * std::min(1.0, static_cast<double>(done) / total_)) : width;
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.resize(width, '.');
      std::fprintf(stderr, "\r\033[K%s [%s] %s  %s", label_.c_str(), bar.c_str(), tail, note.c_str());
      if (last) std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "%s: %s  %s\n", label_.c_str(), tail, note.c_str());
    }
    std::fflush(stderr);
    finished_ = last;
  }

  long total() const noexcept { return total_; }
  long done() const noexcept { return done_; }

  void finish() {
    if (!finished_ && done_ > 0 && terminal_) std::fputc('\n', stderr);
    finished_ = true;
  }

  static std::string format_seconds(double s) {
    char buf[32];
    if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
    else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
    else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) % 3600) / 60);
    return buf;
  }

 private:
  using clock = std::chrono::steady_clock;
  std::string label_;
  long total_;
  long done_ = 0;
  const char* unit_;
  bool terminal_;
  bool finished_ = false;
  clock::time_point start_, last_print_;
};

}  // namespace cli
}  // namespace flowad
