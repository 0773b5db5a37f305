// Command-line arguments: "--name value" options, "--flag" switches and positional words.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "flowad/error.hpp"

namespace flowad {
namespace cli {

class args {
 public:
  // `flags` are the options that take no value.
  args(int argc, char** argv, int first, const std::set<std::string>& flags) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) == 0 && a.size() > 2) {
        std::string name = a.substr(2), value;
        const auto eq = name.find('=');
        if (eq != std::string::npos) {
          value = name.substr(eq + 1);
          name = name.substr(0, eq);
        } else if (flags.count(name) == 0) {
          if (i + 1 >= argc) throw error(errc::invalid_argument, "option --" + name + " needs a value");
          value = argv[++i];
        } else {
          value = "true";
        }
        options_[name].push_back(value);
      } else {
        positional_.push_back(a);
      }
    }
  }

  bool has(const std::string& name) const { return options_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const {
    const auto it = options_.find(name);
    used_.insert(name);
    return it == options_.end() ? fallback : it->second.back();
  }
  std::string required(const std::string& name) const {
    if (!has(name)) throw error(errc::invalid_argument, "missing required option --" + name);
    return get(name);
  }
  std::vector<std::string> all(const std::string& name) const {
    used_.insert(name);
    const auto it = options_.find(name);
    return it == options_.end() ? std::vector<std::string>{} : it->second;
  }
  long integer(const std::string& name, long fallback) const {
    if (!has(name)) {
      used_.insert(name);
      return fallback;
    }
    const std::string v = get(name);
    std::size_t end = 0;
    long x = 0;
    try {
      x = std::stol(v, &end);
    } catch (...) {
      end = 0;
    }
    if (end != v.size() || v.empty()) throw error(errc::invalid_argument, "--" + name + " expects an integer, got '" + v + "'");
    return x;
  }
  double number(const std::string& name, double fallback) const {
    if (!has(name)) {
      used_.insert(name);
      return fallback;
    }
    const std::string v = get(name);
    double x = 0;
    if (!parse_number(v, x)) throw error(errc::invalid_argument, "--" + name + " expects a number, got '" + v + "'");
    return x;
  }
  // A comma-separated list of numbers: "--name 0.5,-1".
  std::vector<double> numbers(const std::string& name) const {
    used_.insert(name);
    const std::string v = get(name);
    std::vector<double> out;
    std::size_t start = 0;
    for (;;) {
      const std::size_t comma = v.find(',', start);
      double x = 0;
      if (!parse_number(v.substr(start, comma == std::string::npos ? std::string::npos : comma - start), x))
        throw error(errc::invalid_argument, "--" + name + " expects comma-separated numbers, got '" + v + "'");
      out.push_back(x);
      if (comma == std::string::npos) return out;
      start = comma + 1;
    }
  }
  bool flag(const std::string& name) const {
    used_.insert(name);
    return has(name);
  }
  const std::vector<std::string>& positional() const { return positional_; }

  // Throws for options no one asked for (typos should not be silently ignored).
  void reject_unknown() const {
    for (const auto& kv : options_)
      if (used_.count(kv.first) == 0) throw error(errc::invalid_argument, "unknown option --" + kv.first);
  }

 private:
  // The whole of `text` as a number (std::stod's syntax); false when any of it is not.
  static bool parse_number(const std::string& text, double& x) {
    std::size_t end = 0;
    try {
      x = std::stod(text, &end);
    } catch (...) {
      return false;
    }
    return !text.empty() && end == text.size();
  }

  std::map<std::string, std::vector<std::string>> options_;
  std::vector<std::string> positional_;
  mutable std::set<std::string> used_;
};

}  // namespace cli
}  // namespace flowad
