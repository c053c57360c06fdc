// The networks a bench tool measures: a JSON list of {"name": "...", "config": <a config of the
// space>}, as the experiment scripts write it (networks.json) and bench/final_accuracy and
// bench/deployed_latency read it.
#ifndef APQ_BENCH_NETWORK_LIST_H_
#define APQ_BENCH_NETWORK_LIST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "oface/search_space.h"

namespace apq::bench {

struct Network {
  std::string name;
  std::string config_json;  // The space's canonical JSON.
  oface::Genotype genotype;
};

// The networks of the file at `path` (named as the flag --networks in errors): 1 to 500 of
// them, at most 4 MiB of JSON, each name 1 to 100 bytes without ':' or ',' (pairs are written
// "a:b,c:d") and used once, each config valid in `space` (kept in its canonical form).
// INVALID_ARGUMENT naming the entry and field; NOT_FOUND for a file that cannot be read.
absl::StatusOr<std::vector<Network>> ReadNetworks(const std::string& path,
                                                  const oface::SearchSpace& space);

}  // namespace apq::bench

#endif  // APQ_BENCH_NETWORK_LIST_H_
