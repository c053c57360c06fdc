// A cost table for a hardware team to fill in: every key a space needs that a table format can
// hold, in that format's files, with placeholders where the measured figures go. The
// placeholders are values the format's loader refuses (`mean: TODO` in OFA's yaml, null in
// the JSON formats), so a template cannot be uploaded before it is filled in.
#ifndef APQ_HWMODELS_TABLE_TEMPLATE_H_
#define APQ_HWMODELS_TABLE_TEMPLATE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "hwmodels/cost_table.h"
#include "oface/search_space.h"

namespace apq::hwmodels {

struct TableTemplate {
  // (file name, content): OFA's yaml, one "<r>_lookup_table.yaml" per resolution; the JSON
  // formats, one file.
  std::vector<std::pair<std::string, std::string>> files;
  // Entries to measure (keys the space needs, plus the W/A pairs APQ's BitFusion format
  // requires of every conv shape it lists).
  int64_t entries = 0;
  // Distinct layer shapes among them (a shape at several bit pairs counts once).
  int64_t shapes = 0;
  // Keys the space needs that the format cannot hold (e.g. 2- or 3-bit pairs in APQ's
  // BitFusion format): a table of this format prices them only through a model fitted to
  // it, or not at all. In catalogue order.
  std::vector<std::string> unrepresentable;
};

// The template of `space` in `format`. Filled in (every placeholder replaced by a figure),
// its files load with the format's loader into a table that lacks exactly `unrepresentable`
// of the space's keys (MissingKeys). INVALID_ARGUMENT when the space's keys are of another
// kind than the format's (OFA keys for a conv format, conv keys for OFA's yaml).
absl::StatusOr<TableTemplate> MakeTableTemplate(const oface::SearchSpace& space,
                                                TableFormat format);

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_TABLE_TEMPLATE_H_
