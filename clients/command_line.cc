#include "clients/command_line.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/numbers.h"

namespace apq::client {

Args Args::Parse(const std::vector<std::string>& argv, const std::vector<std::string>& value_flags,
                 const std::vector<std::string>& boolean_flags, size_t max_positional) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "-") {
      args.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const bool is_value =
        std::find(value_flags.begin(), value_flags.end(), name) != value_flags.end();
    const bool is_boolean =
        std::find(boolean_flags.begin(), boolean_flags.end(), name) != boolean_flags.end();
    if (!is_value && !is_boolean) throw UsageError{absl::StrCat("unknown flag --", name)};
    if (is_boolean) {
      if (inline_value) throw UsageError{absl::StrCat("--", name, " takes no value")};
      args.values_[name] = "true";
      continue;
    }
    if (inline_value) {
      args.values_[name] = *inline_value;
    } else if (i + 1 < argv.size()) {
      args.values_[name] = argv[++i];
    } else {
      throw UsageError{absl::StrCat("--", name, " needs a value")};
    }
  }
  if (args.positional_.size() > max_positional) {
    throw UsageError{absl::StrCat("unexpected argument '", args.positional_[max_positional], "'")};
  }
  return args;
}

std::string Args::Get(const std::string& name, const std::string& fallback) const {
  auto found = values_.find(name);
  return found == values_.end() ? fallback : found->second;
}

double ParseDouble(const Args& args, const std::string& name) {
  double value = 0;
  if (!absl::SimpleAtod(args.Get(name), &value) || !std::isfinite(value)) {
    throw UsageError{absl::StrCat("--", name, ": '", args.Get(name), "' is not a finite number")};
  }
  return value;
}

int64_t ParseInt(const Args& args, const std::string& name) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(args.Get(name), &value)) {
    throw UsageError{absl::StrCat("--", name, ": '", args.Get(name), "' is not an integer")};
  }
  return value;
}

int32_t ParseInt32(const Args& args, const std::string& name) {
  const int64_t value = ParseInt(args, name);
  if (value < INT32_MIN || value > INT32_MAX) {
    throw UsageError{absl::StrCat("--", name, ": ", value, " is out of range")};
  }
  return static_cast<int32_t>(value);
}

uint64_t ParseSeed(const Args& args) {
  const int64_t seed = ParseInt(args, "seed");
  if (seed < 0) throw UsageError{"--seed: must be >= 0"};
  return static_cast<uint64_t>(seed);
}

std::string Require(const Args& args, const std::string& name) {
  if (!args.Has(name) || args.Get(name).empty()) {
    throw UsageError{absl::StrCat("--", name, " is required")};
  }
  return args.Get(name);
}

std::string RequirePositional(const Args& args, const std::string& what) {
  if (args.positional().empty()) throw UsageError{absl::StrCat(what, " is required")};
  return args.positional()[0];
}

std::string ReadFileOrStdin(const std::string& path) {
  std::stringstream content;
  if (path == "-") {
    content << std::cin.rdbuf();
    return content.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError{absl::StrCat("cannot read ", path)};
  content << in.rdbuf();
  return content.str();
}

}  // namespace apq::client
