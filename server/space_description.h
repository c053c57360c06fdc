// What a config of a space accepts, for DescribeSpace: each gene as a config field with its
// JSON path and the JSON each choice is written as, the format and rules in words, and an
// example. The paths and values are not hand-written per space: they are found by writing the
// largest network with one gene changed and comparing the two configs, so they hold for any
// space whose ToJson writes each gene at one place.
#ifndef APQ_SERVER_SPACE_DESCRIPTION_H_
#define APQ_SERVER_SPACE_DESCRIPTION_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "oface/search_space.h"
#include "proto/apq/v1/apq.pb.h"

namespace apq::server {

// The space's own part of its description: name, config_format, fields (when `with_fields`),
// field_count, rules, example_config_json and has_bits. INTERNAL when the space's own
// largest network does not validate.
absl::StatusOr<apq::v1::SpaceDescription> DescribeSpaceFields(const oface::SearchSpace& space,
                                                              bool with_fields);

// The value at `path` (ConfigField.json_path syntax: "[0].ks[3]", "r") in `document`, or null
// when the path does not lead to a value.
nlohmann::json* JsonAtPath(nlohmann::json& document, absl::string_view path);

}  // namespace apq::server

#endif  // APQ_SERVER_SPACE_DESCRIPTION_H_
