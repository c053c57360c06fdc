// How apq prints, for every command: --json output, listings, the names of job states, and the
// progress line a waiting command draws on a terminal.
#ifndef APQ_CLIENTS_OUTPUT_H_
#define APQ_CLIENTS_OUTPUT_H_

#include <iostream>
#include <string>
#include <vector>

#include "google/protobuf/repeated_field.h"
#include "nlohmann/json.hpp"
#include "proto/apq/v1/apq.pb.h"

namespace apq::client {

// Prints `value` to stdout as JSON indented by 2, and a newline: every command's --json form.
void PrintJson(const nlohmann::json& value);

// Prints `item` to stdout: with `as_json` as to_json(item), otherwise by print_text(item),
// which prints its own lines.
template <typename Item, typename ToJson, typename PrintText>
void PrintItem(const Item& item, bool as_json, ToJson to_json, PrintText print_text) {
  if (as_json) {
    PrintJson(to_json(item));
  } else {
    print_text(item);
  }
}

// Prints a job's id alone, the text answer to a submit that does not wait: what a script
// captures to follow the job.
template <typename Job>
void PrintJobId(const Job& job) {
  std::cout << job.id() << "\n";
}

// Prints a listing to stdout: with `as_json` one JSON list of to_json(item), otherwise
// print_text(item) for each item.
template <typename Items, typename ToJson, typename PrintText>
void PrintListing(const Items& items, bool as_json, ToJson to_json, PrintText print_text) {
  if (as_json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& item : items) list.push_back(to_json(item));
    PrintJson(list);
    return;
  }
  for (const auto& item : items) print_text(item);
}

// Writes `content` to the file at `path` whole or not at all: to a temporary file beside it,
// renamed over it once written and closed, so that a reader never sees part of it. False,
// after saying so on stderr, when it cannot; then the file at `path` is as it was and the
// temporary is gone. A target that exists and is no regular file (a device or a pipe, such as
// /dev/stdout) is written in place; false when any of its writes fails (/dev/full).
bool WriteOutputFile(const std::string& path, const std::string& content);

// A repeated string field as a vector, which nlohmann::json turns into a list.
std::vector<std::string> StringList(const google::protobuf::RepeatedPtrField<std::string>& field);

// The state's name without its JOB_STATE_ prefix: "QUEUED", "SUCCEEDED", ...
std::string StateName(apq::v1::JobState state);

// Prints "JOB: cancellation requested (STATE)", the answer to a cancel of either kind of job.
void PrintCancellationRequested(const std::string& job_id, apq::v1::JobState state);

// A bar of `width` characters: '#' for the part `done` is of `total`, '.' for the rest.
std::string ProgressBar(int done, int total, int width);

// One line on stderr that a waiting command redraws in place. It is drawn only on a terminal
// and never beside --json output, so that pipes and scripts see no control characters.
class ProgressLine {
 public:
  explicit ProgressLine(bool as_json);

  // Replaces the line's text.
  void Show(const std::string& text);
  // Ends the line, so that what is printed next starts a line of its own.
  void End();

 private:
  const bool enabled_;
};

}  // namespace apq::client

#endif  // APQ_CLIENTS_OUTPUT_H_
