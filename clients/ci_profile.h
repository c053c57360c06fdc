// The profile of `apq ci`: what a CI job asks for, in a small YAML file.
//
//   space: fmnist_lowbit          # required
//   device: bitfusion             # required
//   budgets:                      # at least one
//     max_latency_ms: 0.4
//     max_bitops: 2.0e9
//   engine: evolution             # default evolution; any engine of `apq engines`
//   engine_options:               # the engine's options (evolution: population, generations, ...)
//     generations: 50
//   seed: 1
//   objective: accuracy           # accuracy | pareto
//   pareto_cost: latency          # latency | energy | size | bitops
//   uniform_bits: 4               # every layer at 4 bits (the uniform baseline)
//   verify_top_k: 5               # measure the 5 best on the validation split
//   min_accuracy: 0.85            # of the chosen network: measured when verified, else predicted
//   outputs:
//     config: out/config.json     # the deployable config (reference format)
//     torchscript: out/model.pt   # the TorchScript module (spaces with a supernet)
//     summary: out/summary.json   # what was found, reused or run, and the verdict
//
// The YAML accepted is a subset: "key: value" lines, the four sections above holding indented
// "key: value" lines, comments (#) and blank lines; values are plain or quoted scalars. Every
// error names its line. The profile becomes a SubmitSearchRequest the server validates in full.
#ifndef APQ_CLIENTS_CI_PROFILE_H_
#define APQ_CLIENTS_CI_PROFILE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "proto/apq/v1/apq.pb.h"

namespace apq::client {

struct CiProfile {
  apq::v1::SubmitSearchRequest request;  // Without a label (apq ci sets its key).
  std::optional<double> min_accuracy;
  std::string config_output;
  std::string torchscript_output;
  std::string summary_output;
};

// INVALID_ARGUMENT "line N: ..." for anything outside the format above: an unknown key or
// section, a value of the wrong kind, a repeated key, bad indentation, a missing required key.
// `text` is at most 64 KiB.
absl::StatusOr<CiProfile> ParseCiProfile(const std::string& text);

// The key that names identical CI requests: hex of a 64-bit FNV-1a hash over the request's
// deterministic serialization (labels excluded), with the table and predictor versions its
// results depend on. Stable across processes and builds of the same proto.
std::string CiRequestKey(const apq::v1::SubmitSearchRequest& request, int64_t table_version,
                         const std::string& predictor_version);

}  // namespace apq::client

#endif  // APQ_CLIENTS_CI_PROFILE_H_
