// Loads once-for-all's per-resolution latency lookup tables (<r>_lookup_table.yaml).
//
// The accepted yaml is the subset OFA writes: top-level `<key>:` lines, each followed by
// indented `count: <int>`, `mean: <float>` and `std: <float>` lines (only `mean` is
// required; no other fields). Blank lines and full-line `#` comments are skipped. Table keys
// are "<r>/<yaml key>", r taken from the file name; latency_ms is the entry's mean; the
// tables carry no energy.
#ifndef APQ_HWMODELS_OFA_YAML_TABLE_H_
#define APQ_HWMODELS_OFA_YAML_TABLE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "hwmodels/cost_table.h"

namespace apq::hwmodels {

// `files` holds (file name, content) pairs; the base name of each must be
// "<r>_lookup_table.yaml". INVALID_ARGUMENT naming the file (and the line, for content
// errors) when a name does not match, a file is empty or malformed, a mean is missing,
// non-numeric, not finite or negative, a count is negative, a key repeats within a file,
// or two files give the same resolution.
absl::StatusOr<CostTable> LoadOfaYamlTables(
    const std::vector<std::pair<std::string, std::string>>& files);

// Reads every *_lookup_table.yaml file of `dir` (not recursive). NOT_FOUND when the
// directory does not exist or holds no such file; INVALID_ARGUMENT naming the path when a
// file cannot be read; otherwise as LoadOfaYamlTables.
absl::StatusOr<CostTable> LoadOfaYamlDirectory(const std::string& dir);

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_OFA_YAML_TABLE_H_
