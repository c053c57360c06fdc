// Converting configurations from formats the reference code writes into the ones the service
// reads. Today: once-for-all's `net.config` of a MobileNetV3 subnet (what OFA's specialized
// networks ship, in both the older MobileInvertedResidualBlock and the newer ResidualBlock
// naming) into the arch dict of space ofa_mbv3 ({"ks": [20], "e": [20], "d": [5], "r": R}).
#ifndef APQ_CLIENTS_CONFIG_CONVERT_H_
#define APQ_CLIENTS_CONFIG_CONVERT_H_

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace apq::client {

// The arch dict of `net_config` at input resolution `resolution` (net.config does not record
// it). The first block (OFA's fixed expand-1 block) is skipped; the rest fall into stages where
// the output width changes; a stage's unused slots get kernel 3 and expand 3 (ignored by
// the space). INVALID_ARGUMENT naming the JSON path for anything else than five stages of
// depth 2..4 with kernels {3, 5, 7} and expand ratios {3, 4, 6}, or a resolution outside
// {160, 176, 192, 208, 224} (the resolutions space ofa_mbv3 searches).
absl::StatusOr<nlohmann::json> OfaArchFromNetConfig(const nlohmann::json& net_config,
                                                    int resolution);

}  // namespace apq::client

#endif  // APQ_CLIENTS_CONFIG_CONVERT_H_
