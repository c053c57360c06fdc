#include "common/strict_json.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace apq {
namespace {

using Json = nlohmann::json;

// Builds the document from nlohmann's SAX events: one pass, each value placed once (the
// callback parser of nlohmann::json rescans a parent object after every child it keeps,
// quadratic in the entries of a large table).
class StrictBuilder {
 public:
  StrictBuilder(const JsonLimits& limits, const std::function<bool()>& cancelled)
      : limits_(limits), cancelled_(cancelled) {}

  bool null() { return Put(Json(nullptr)) != nullptr; }
  bool boolean(bool value) { return Put(Json(value)) != nullptr; }
  bool number_integer(Json::number_integer_t value) { return Put(Json(value)) != nullptr; }
  bool number_unsigned(Json::number_unsigned_t value) { return Put(Json(value)) != nullptr; }
  bool number_float(Json::number_float_t value, const std::string& /*text*/) {
    return Put(Json(value)) != nullptr;
  }
  bool string(std::string& value) { return Put(Json(std::move(value))) != nullptr; }
  bool binary(Json::binary_t& value) { return Put(Json(std::move(value))) != nullptr; }

  bool start_object(std::size_t /*elements*/) { return Open(Json::object()); }
  bool start_array(std::size_t /*elements*/) { return Open(Json::array()); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }

  bool key(std::string& key) {
    const Json::object_t& object = open_.back()->get_ref<const Json::object_t&>();
    if (object.count(key) != 0) {
      error_ = absl::InvalidArgumentError(
          open_.size() == 1
              ? absl::StrCat("duplicate key \"", key, "\"")
              : absl::StrCat(absl::StrJoin(labels_, ", "), ": duplicate field \"", key, "\""));
      return false;
    }
    pending_key_ = std::move(key);
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& error) {
    error_ = absl::InvalidArgumentError(error.what());
    return false;
  }

  absl::StatusOr<Json> Finish(bool parsed) && {
    if (error_.has_value()) return *std::move(error_);
    if (!parsed) return absl::InvalidArgumentError("malformed JSON");
    return std::move(root_);
  }

 private:
  // Places `value` where the parse stands (the root, the next item of the open array, or the
  // open object's pending key) and returns where it now lives; nullptr when cancelled.
  Json* Put(Json value) {
    if (cancelled_ && ++events_ % kEventsPerCancelCheck == 0 && cancelled_()) {
      error_ = absl::CancelledError("cancelled while parsing");
      return nullptr;
    }
    if (open_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Json& parent = *open_.back();
    if (parent.is_array()) {
      Json::array_t& array = parent.get_ref<Json::array_t&>();
      array.push_back(std::move(value));
      return &array.back();
    }
    Json::object_t& object = parent.get_ref<Json::object_t&>();
    return &object.emplace(std::move(pending_key_), std::move(value)).first->second;
  }

  bool Open(Json container) {
    if (static_cast<int>(open_.size()) >= limits_.max_depth) {
      error_ = absl::InvalidArgumentError(
          absl::StrCat("nesting deeper than ", limits_.max_depth, " levels"));
      return false;
    }
    if (!open_.empty()) {
      const Json& parent = *open_.back();
      labels_.push_back(parent.is_array() ? absl::StrCat("item ", parent.size())
                                          : absl::StrCat("key \"", pending_key_, "\""));
    }
    Json* placed = Put(std::move(container));
    if (placed == nullptr) return false;
    open_.push_back(placed);
    return true;
  }

  bool Close() {
    open_.pop_back();
    if (!open_.empty()) labels_.pop_back();  // The root has no label.
    return true;
  }

  static constexpr uint64_t kEventsPerCancelCheck = 4096;

  const JsonLimits& limits_;
  const std::function<bool()>& cancelled_;
  Json root_;
  // The open arrays and objects, outermost first. Pointers stay valid: a container's parent
  // only grows after the container is closed.
  std::vector<Json*> open_;
  // For each open container below the root, where it sits in its parent.
  std::vector<std::string> labels_;
  std::string pending_key_;
  uint64_t events_ = 0;
  std::optional<absl::Status> error_;
};

}  // namespace

absl::StatusOr<Json> ParseStrictJson(std::string_view content, const JsonLimits& limits,
                                     const std::function<bool()>& cancelled) {
  if (content.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(content.size(), " bytes, more than the limit of ", limits.max_bytes));
  }
  StrictBuilder builder(limits, cancelled);
  bool parsed = false;
  try {
    parsed = Json::sax_parse(content.begin(), content.end(), &builder);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return std::move(builder).Finish(parsed);
}

}  // namespace apq
