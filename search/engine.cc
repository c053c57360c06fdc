#include "search/engine.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace apq::search {
namespace {

std::string RangeText(const OptionSpec& spec) {
  const bool has_min = spec.min > -kNoBound;
  const bool has_max = spec.max < kNoBound;
  if (has_min && has_max) {
    return absl::StrCat("in ", spec.min_exclusive ? "(" : "[", spec.min, ", ", spec.max, "]");
  }
  if (has_min) return absl::StrCat(spec.min_exclusive ? "> " : ">= ", spec.min);
  if (has_max) return absl::StrCat("<= ", spec.max);
  return "finite";
}

bool InRange(const OptionSpec& spec, double value) {
  if (!std::isfinite(value)) return false;
  if (spec.min_exclusive ? !(value > spec.min) : !(value >= spec.min)) return false;
  return value <= spec.max;
}

const char* TypeName(OptionSpec::Type type) {
  switch (type) {
    case OptionSpec::Type::kInt:
      return "an integer";
    case OptionSpec::Type::kDouble:
      return "a number";
    case OptionSpec::Type::kBool:
      return "true or false";
    case OptionSpec::Type::kChoice:
      return "a string";
  }
  return "a value";
}

// The value as the spec's type, or INVALID_ARGUMENT naming the field.
absl::StatusOr<OptionValue> CheckValue(const OptionSpec& spec, const OptionValue& value,
                                       const std::string& field) {
  const auto wrong_type = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be ", TypeName(spec.type), ", got ", OptionValueText(value)));
  };
  switch (spec.type) {
    case OptionSpec::Type::kInt: {
      const int64_t* given = std::get_if<int64_t>(&value);
      if (given == nullptr) return wrong_type();
      if (!InRange(spec, static_cast<double>(*given))) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": must be ", RangeText(spec), ", got ", *given));
      }
      return value;
    }
    case OptionSpec::Type::kDouble: {
      double number = 0.0;
      if (const int64_t* integer = std::get_if<int64_t>(&value)) {
        number = static_cast<double>(*integer);
      } else if (const double* real = std::get_if<double>(&value)) {
        number = *real;
      } else {
        return wrong_type();
      }
      if (!InRange(spec, number)) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": must be ", RangeText(spec), ", got ", number));
      }
      return OptionValue(number);
    }
    case OptionSpec::Type::kBool:
      if (!std::holds_alternative<bool>(value)) return wrong_type();
      return value;
    case OptionSpec::Type::kChoice: {
      // A choice that reads as a number ("4") arrives as one from clients that type values
      // by their text (apq --options activations=4): its decimal text is the choice.
      if (const int64_t* integer = std::get_if<int64_t>(&value)) {
        return CheckValue(spec, OptionValue(absl::StrCat(*integer)), field);
      }
      const std::string* given = std::get_if<std::string>(&value);
      if (given == nullptr) return wrong_type();
      for (const std::string& choice : spec.choices) {
        if (choice == *given) return value;
      }
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": must be one of ", absl::StrJoin(spec.choices, ", "), ", got \"", *given, "\""));
    }
  }
  return wrong_type();
}

}  // namespace

OptionSpec IntOptionSpec(const std::string& name, int64_t default_value, double min, double max,
                         const std::string& description) {
  OptionSpec spec;
  spec.name = name;
  spec.type = OptionSpec::Type::kInt;
  spec.default_value = default_value;
  spec.min = min;
  spec.max = max;
  spec.description = description;
  return spec;
}

OptionSpec ChoiceOptionSpec(const std::string& name, const std::string& default_value,
                            std::vector<std::string> choices, const std::string& description) {
  OptionSpec spec;
  spec.name = name;
  spec.type = OptionSpec::Type::kChoice;
  spec.default_value = default_value;
  spec.choices = std::move(choices);
  spec.description = description;
  return spec;
}

std::string OptionValueText(const OptionValue& value) {
  if (const int64_t* integer = std::get_if<int64_t>(&value)) return absl::StrCat(*integer);
  if (const double* real = std::get_if<double>(&value)) return absl::StrCat(*real);
  if (const bool* flag = std::get_if<bool>(&value)) return *flag ? "true" : "false";
  return absl::StrCat("\"", std::get<std::string>(value), "\"");
}

absl::StatusOr<EngineOptions> ResolveOptions(const Engine& engine, const EngineOptions& given,
                                             absl::string_view field_prefix) {
  const std::vector<OptionSpec>& specs = engine.option_specs();
  for (const auto& [name, value] : given) {
    bool known = false;
    for (const OptionSpec& spec : specs) known = known || spec.name == name;
    if (!known) {
      std::vector<std::string> names;
      names.reserve(specs.size());
      for (const OptionSpec& spec : specs) names.push_back(spec.name);
      return absl::InvalidArgumentError(absl::StrCat(
          field_prefix, name, ": engine ", engine.name(), " has no such option (it takes ",
          names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
    }
  }
  EngineOptions resolved;
  // Options whose default follows another option are filled after the others.
  for (const bool following : {false, true}) {
    for (const OptionSpec& spec : specs) {
      if (spec.default_from.empty() == following) continue;
      const std::string field = absl::StrCat(field_prefix, spec.name);
      auto found = given.find(spec.name);
      OptionValue value;
      if (found != given.end()) {
        value = found->second;
      } else if (!spec.default_from.empty()) {
        auto source = resolved.find(spec.default_from);
        if (source == resolved.end()) {
          return absl::InternalError(absl::StrCat("engine ", engine.name(), ": option ", spec.name,
                                                  " follows unknown option ", spec.default_from));
        }
        value = source->second;
      } else {
        value = spec.default_value;
      }
      absl::StatusOr<OptionValue> checked = CheckValue(spec, value, field);
      if (!checked.ok()) return checked.status();
      resolved[spec.name] = *std::move(checked);
    }
  }
  absl::Status valid = engine.ValidateOptions(resolved, field_prefix);
  if (!valid.ok()) return valid;
  return resolved;
}

int64_t IntOption(const EngineOptions& options, const std::string& name) {
  return std::get<int64_t>(options.at(name));
}

double DoubleOption(const EngineOptions& options, const std::string& name) {
  return std::get<double>(options.at(name));
}

bool BoolOption(const EngineOptions& options, const std::string& name) {
  return std::get<bool>(options.at(name));
}

const std::string& ChoiceOption(const EngineOptions& options, const std::string& name) {
  return std::get<std::string>(options.at(name));
}

}  // namespace apq::search
