// apq's command lines: what a command is, its flags and positional arguments, the readers of
// typed flags, and UsageError, which every one of them throws for a bad command line (exit
// code 2, with the message and a pointer to --help).
#ifndef APQ_CLIENTS_COMMAND_LINE_H_
#define APQ_CLIENTS_COMMAND_LINE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "clients/connection.h"

namespace apq::client {

// One command of apq, as its group's table lists it.
struct Command {
  const char* name;
  // Its lines of the usage text as printed: the synopsis indented by 2, the description by 6,
  // each line ending in '\n'.
  const char* usage;
  // Runs the command on the arguments after its name and returns the exit code; throws
  // UsageError for a bad command line.
  int (*run)(Connection& connection, const std::vector<std::string>& argv);
};

// A bad command line; `message` says what is wrong, without a trailing newline.
struct UsageError {
  std::string message;
};

// A command's arguments split into positional arguments and --flags.
class Args {
 public:
  // Splits `argv`: an argument starting with "--" (other than "-") is a flag, any other is
  // positional. `value_flags` take a value, either after '=' or as the next argument;
  // `boolean_flags` take none. Throws UsageError for an unknown flag, a missing or unwanted
  // value, or more than `max_positional` positional arguments.
  static Args Parse(const std::vector<std::string>& argv,
                    const std::vector<std::string>& value_flags,
                    const std::vector<std::string>& boolean_flags, size_t max_positional);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // The flag's value ("true" for a boolean flag), or `fallback` when it is absent.
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// Readers of a present flag's value; each throws UsageError naming the flag when the value is
// not of its kind.
double ParseDouble(const Args& args, const std::string& name);  // finite
int64_t ParseInt(const Args& args, const std::string& name);
int32_t ParseInt32(const Args& args, const std::string& name);  // within int32_t
uint64_t ParseSeed(const Args& args);                           // --seed, at least 0

// The value of --`name`; throws UsageError when it is absent or empty.
std::string Require(const Args& args, const std::string& name);

// The first positional argument; throws UsageError "<what> is required" when there is none.
std::string RequirePositional(const Args& args, const std::string& what);

// The names a flag accepts, each with the value it stands for, in the order its error lists
// them.
template <typename Value>
using Choices = absl::Span<const std::pair<std::string_view, Value>>;

// The value of the choice named `name`, if there is one.
template <typename Value>
std::optional<Value> FindChoice(std::string_view name, Choices<Value> choices) {
  for (const auto& [choice, value] : choices) {
    if (choice == name) return value;
  }
  return std::nullopt;
}

// "a, b or c": the names of `choices` for an error message.
template <typename Value>
std::string ListChoices(Choices<Value> choices) {
  std::string list;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) list += i + 1 == choices.size() ? " or " : ", ";
    list += choices[i].first;
  }
  return list;
}

// The value of the choice `name`, given as --`flag`; throws UsageError listing the choices when
// there is none of that name ("--flag: 'x' is not a, b or c").
template <typename Value>
Value ParseChoice(const std::string& flag, const std::string& name, Choices<Value> choices) {
  if (std::optional<Value> value = FindChoice(name, choices)) return *value;
  throw UsageError{absl::StrCat("--", flag, ": '", name, "' is not ", ListChoices(choices))};
}

// The content of the file at `path`, or all of stdin when `path` is "-"; throws UsageError
// when the file cannot be opened.
std::string ReadFileOrStdin(const std::string& path);

}  // namespace apq::client

#endif  // APQ_CLIENTS_COMMAND_LINE_H_
