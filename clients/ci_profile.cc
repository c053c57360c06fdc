#include "clients/ci_profile.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdio>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace apq::client {
namespace {

constexpr size_t kMaxProfileBytes = size_t{64} * 1024;

const std::set<std::string>& TopLevelKeys() {
  static const auto* const kKeys = new std::set<std::string>{
      "space",       "device",       "engine",       "seed",         "objective",
      "pareto_cost", "uniform_bits", "verify_top_k", "min_accuracy", "table_version"};
  return *kKeys;
}

const std::set<std::string>& Sections() {
  static const auto* const kSections =
      new std::set<std::string>{"budgets", "engine_options", "outputs"};
  return *kSections;
}

const std::set<std::string>& BudgetKeys() {
  static const auto* const kKeys =
      new std::set<std::string>{"max_latency_ms", "max_energy_mj", "max_size_mb", "max_bitops"};
  return *kKeys;
}

const std::set<std::string>& OutputKeys() {
  static const auto* const kKeys = new std::set<std::string>{"config", "torchscript", "summary"};
  return *kKeys;
}

struct Scalar {
  std::string text;
  bool quoted = false;
  int line = 0;
};

absl::Status LineError(int line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", message));
}

// The value after "key:", without a trailing comment; quotes removed (no escapes inside).
absl::StatusOr<Scalar> ParseScalar(absl::string_view raw, int line) {
  Scalar scalar;
  scalar.line = line;
  raw = absl::StripAsciiWhitespace(raw);
  if (!raw.empty() && (raw.front() == '"' || raw.front() == '\'')) {
    const char quote = raw.front();
    const size_t end = raw.find(quote, 1);
    if (end == absl::string_view::npos) return LineError(line, "unclosed quote");
    const absl::string_view rest = absl::StripAsciiWhitespace(raw.substr(end + 1));
    if (!rest.empty() && rest.front() != '#') {
      return LineError(line, "text after the quoted value");
    }
    scalar.text = static_cast<std::string>(raw.substr(1, end - 1));
    scalar.quoted = true;
    return scalar;
  }
  const size_t comment = raw.find(" #");
  if (comment != absl::string_view::npos) raw = raw.substr(0, comment);
  raw = absl::StripAsciiWhitespace(raw);
  for (const char c : {'[', ']', '{', '}', '&', '*', '|', '>'}) {
    if (!raw.empty() && raw.front() == c) {
      return LineError(line, "only plain or quoted scalars are accepted as values");
    }
  }
  scalar.text = static_cast<std::string>(raw);
  return scalar;
}

absl::StatusOr<double> Number(const std::string& key, const Scalar& value) {
  double number = 0;
  if (value.quoted || !absl::SimpleAtod(value.text, &number)) {
    return LineError(value.line, absl::StrCat(key, ": not a number: '", value.text, "'"));
  }
  return number;
}

absl::StatusOr<int64_t> Integer(const std::string& key, const Scalar& value) {
  int64_t integer = 0;
  if (value.quoted || !absl::SimpleAtoi(value.text, &integer)) {
    return LineError(value.line, absl::StrCat(key, ": not an integer: '", value.text, "'"));
  }
  return integer;
}

absl::StatusOr<std::string> Text(const std::string& key, const Scalar& value) {
  if (value.text.empty()) return LineError(value.line, absl::StrCat(key, ": empty value"));
  return value.text;
}

template <typename Enum>
absl::StatusOr<Enum> Choice(const std::string& key, const Scalar& value,
                            const std::vector<std::pair<std::string, Enum>>& choices) {
  std::vector<std::string> names;
  for (const auto& [name, choice] : choices) {
    if (value.text == name) return choice;
    names.push_back(name);
  }
  return LineError(value.line, absl::StrCat(key, ": '", value.text, "' is not one of ",
                                            absl::StrJoin(names, ", ")));
}

void SetOption(const Scalar& value, apq::v1::EngineOptionValue* option) {
  int64_t integer = 0;
  double number = 0;
  if (!value.quoted && (value.text == "true" || value.text == "false")) {
    option->set_bool_value(value.text == "true");
  } else if (!value.quoted && absl::SimpleAtoi(value.text, &integer)) {
    option->set_int_value(integer);
  } else if (!value.quoted && absl::SimpleAtod(value.text, &number)) {
    option->set_double_value(number);
  } else {
    option->set_choice_value(value.text);
  }
}

// The evolution engine's options by their profile names (EvolutionParams' fields).
absl::Status SetEvolutionOption(const std::string& name, const Scalar& value,
                                apq::v1::EvolutionParams* evolution) {
  absl::StatusOr<double> number = Number(name, value);
  if (!number.ok()) return number.status();
  if (name == "population" || name == "generations") {
    absl::StatusOr<int64_t> integer = Integer(name, value);
    if (!integer.ok()) return integer.status();
    if (*integer < 0 || *integer > (int64_t{1} << 30)) {
      return LineError(value.line, absl::StrCat(name, ": out of range"));
    }
    if (name == "population") evolution->set_population_size(static_cast<int32_t>(*integer));
    if (name == "generations") evolution->set_generations(static_cast<int32_t>(*integer));
  } else if (name == "parent_ratio") {
    evolution->set_parent_ratio(*number);
  } else if (name == "mutation_ratio") {
    evolution->set_mutation_ratio(*number);
  } else if (name == "mutate_prob") {
    evolution->set_mutate_probability(*number);
  } else if (name == "resolution_mutate_prob") {
    evolution->set_resolution_mutate_probability(*number);
  } else {
    return LineError(value.line,
                     absl::StrCat("engine_options: '", name,
                                  "' is not an evolution option (population, generations, "
                                  "parent_ratio, mutation_ratio, mutate_prob, "
                                  "resolution_mutate_prob)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CiProfile> ParseCiProfile(const std::string& text) {
  if (text.size() > kMaxProfileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the profile is larger than ", kMaxProfileBytes, " bytes"));
  }
  std::map<std::string, Scalar> top;
  std::map<std::string, std::vector<std::pair<std::string, Scalar>>> sections;
  std::map<std::string, int> section_lines;
  std::string section;  // The section whose indented lines follow, or "".
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\t') != absl::string_view::npos) {
      return LineError(line_number, "tabs are not allowed (indent with spaces)");
    }
    const absl::string_view content = absl::StripLeadingAsciiWhitespace(line);
    if (content.empty() || content.front() == '#') continue;
    if (line_number == 1 && content == "---") continue;
    const bool indented = content.size() != line.size();
    const size_t colon = content.find(':');
    if (colon == absl::string_view::npos || colon == 0 ||
        (colon + 1 < content.size() && content[colon + 1] != ' ')) {
      return LineError(line_number, "expected 'key: value'");
    }
    const std::string key(absl::StripTrailingAsciiWhitespace(content.substr(0, colon)));
    absl::StatusOr<Scalar> value = ParseScalar(content.substr(colon + 1), line_number);
    if (!value.ok()) return value.status();
    if (indented) {
      if (section.empty()) {
        return LineError(line_number,
                         absl::StrCat("'", key, "' is indented but follows no section (",
                                      absl::StrJoin(Sections(), ", "), ")"));
      }
      if (value->text.empty() && !value->quoted) {
        return LineError(line_number, absl::StrCat(section, ".", key, ": empty value"));
      }
      auto& entries = sections[section];
      for (const auto& [seen, ignored] : entries) {
        if (seen == key) {
          return LineError(line_number, absl::StrCat(section, ".", key, ": given twice"));
        }
      }
      if (section == "budgets" && BudgetKeys().count(key) == 0) {
        return LineError(line_number, absl::StrCat("budgets: unknown key '", key, "' (known: ",
                                                   absl::StrJoin(BudgetKeys(), ", "), ")"));
      }
      if (section == "outputs" && OutputKeys().count(key) == 0) {
        return LineError(line_number, absl::StrCat("outputs: unknown key '", key, "' (known: ",
                                                   absl::StrJoin(OutputKeys(), ", "), ")"));
      }
      entries.emplace_back(key, *value);
      continue;
    }
    section.clear();
    if (Sections().count(key) > 0) {
      if (!value->text.empty() || value->quoted) {
        return LineError(line_number,
                         absl::StrCat(key, ": a section; its entries go on indented lines"));
      }
      if (section_lines.count(key) > 0) {
        return LineError(line_number, absl::StrCat(key, ": given twice"));
      }
      section_lines[key] = line_number;
      section = key;
      continue;
    }
    if (TopLevelKeys().count(key) == 0) {
      return LineError(
          line_number,
          absl::StrCat("unknown key '", key, "' (known: ", absl::StrJoin(TopLevelKeys(), ", "),
                       ", and the sections ", absl::StrJoin(Sections(), ", "), ")"));
    }
    if (!top.emplace(key, *value).second) {
      return LineError(line_number, absl::StrCat(key, ": given twice"));
    }
  }

  CiProfile profile;
  apq::v1::SubmitSearchRequest& request = profile.request;
  for (const char* required : {"space", "device"}) {
    if (top.count(required) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": '", required, "' is required (it is missing)"));
    }
  }
  for (const auto& [key, value] : top) {
    if (key == "space" || key == "device" || key == "engine") {
      absl::StatusOr<std::string> text_value = Text(key, value);
      if (!text_value.ok()) return text_value.status();
      if (key == "space") request.set_space(*text_value);
      if (key == "device") request.set_device(*text_value);
    } else if (key == "seed") {
      absl::StatusOr<int64_t> seed = Integer(key, value);
      if (!seed.ok()) return seed.status();
      if (*seed < 0) return LineError(value.line, "seed: must be >= 0");
      request.set_seed(static_cast<uint64_t>(*seed));
    } else if (key == "table_version") {
      absl::StatusOr<int64_t> version = Integer(key, value);
      if (!version.ok()) return version.status();
      request.set_table_version(*version);
    } else if (key == "uniform_bits" || key == "verify_top_k") {
      absl::StatusOr<int64_t> count = Integer(key, value);
      if (!count.ok()) return count.status();
      if (*count < 0 || *count > 1000) {
        return LineError(value.line, absl::StrCat(key, ": must be in [0, 1000]"));
      }
      if (key == "uniform_bits") request.set_uniform_bits(static_cast<int32_t>(*count));
      if (key == "verify_top_k" && *count > 0) {
        request.mutable_verification()->set_top_k(static_cast<int32_t>(*count));
      }
    } else if (key == "min_accuracy") {
      absl::StatusOr<double> minimum = Number(key, value);
      if (!minimum.ok()) return minimum.status();
      if (!(*minimum >= 0 && *minimum <= 1)) {
        return LineError(value.line, "min_accuracy: a fraction in [0, 1]");
      }
      profile.min_accuracy = *minimum;
    } else if (key == "objective") {
      absl::StatusOr<apq::v1::Objective> objective = Choice<apq::v1::Objective>(
          key, value,
          {{"accuracy", apq::v1::OBJECTIVE_MAX_ACCURACY}, {"pareto", apq::v1::OBJECTIVE_PARETO}});
      if (!objective.ok()) return objective.status();
      request.set_objective(*objective);
    } else if (key == "pareto_cost") {
      absl::StatusOr<apq::v1::CostMetric> cost =
          Choice<apq::v1::CostMetric>(key, value,
                                      {{"latency", apq::v1::COST_METRIC_LATENCY},
                                       {"energy", apq::v1::COST_METRIC_ENERGY},
                                       {"size", apq::v1::COST_METRIC_SIZE},
                                       {"bitops", apq::v1::COST_METRIC_BITOPS}});
      if (!cost.ok()) return cost.status();
      request.set_pareto_cost(*cost);
    }
  }

  const auto budgets = sections.find("budgets");
  if (budgets == sections.end() || budgets->second.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line ", section_lines.count("budgets") > 0 ? section_lines["budgets"] : line_number,
        ": 'budgets' with at least one of ", absl::StrJoin(BudgetKeys(), ", "), " is required"));
  }
  for (const auto& [key, value] : budgets->second) {
    absl::StatusOr<double> budget = Number(key, value);
    if (!budget.ok()) return budget.status();
    apq::v1::Budgets* target = request.mutable_budgets();
    if (key == "max_latency_ms") target->set_max_latency_ms(*budget);
    if (key == "max_energy_mj") target->set_max_energy_mj(*budget);
    if (key == "max_size_mb") target->set_max_size_mb(*budget);
    if (key == "max_bitops") target->set_max_bitops(*budget);
  }

  const std::string engine = top.count("engine") > 0 ? top["engine"].text : "evolution";
  const auto options = sections.find("engine_options");
  if (engine == "evolution") {
    apq::v1::EvolutionParams* evolution = request.mutable_evolution();
    if (options != sections.end()) {
      for (const auto& [name, value] : options->second) {
        const absl::Status set = SetEvolutionOption(name, value, evolution);
        if (!set.ok()) return set;
      }
    }
  } else {
    apq::v1::EngineRequest* engine_request = request.mutable_engine_request();
    engine_request->set_name(engine);
    if (options != sections.end()) {
      for (const auto& [name, value] : options->second) {
        SetOption(value, &(*engine_request->mutable_options())[name]);
      }
    }
  }

  const auto outputs = sections.find("outputs");
  if (outputs != sections.end()) {
    for (const auto& [key, value] : outputs->second) {
      if (key == "config") profile.config_output = value.text;
      if (key == "torchscript") profile.torchscript_output = value.text;
      if (key == "summary") profile.summary_output = value.text;
    }
  }
  return profile;
}

std::string CiRequestKey(const apq::v1::SubmitSearchRequest& request, int64_t table_version,
                         const std::string& predictor_version) {
  apq::v1::SubmitSearchRequest keyed = request;
  keyed.clear_label();
  keyed.set_table_version(table_version);
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    keyed.SerializeToCodedStream(&coded);
  }
  absl::StrAppend(&bytes, "|", predictor_version);
  uint64_t hash = 14695981039346656037ULL;  // FNV-1a, 64 bits.
  for (const unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

}  // namespace apq::client
