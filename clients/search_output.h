// How the search commands print metrics, configurations and jobs, as JSON and as text.
#ifndef APQ_CLIENTS_SEARCH_OUTPUT_H_
#define APQ_CLIENTS_SEARCH_OUTPUT_H_

#include <string>

#include "nlohmann/json.hpp"
#include "proto/apq/v1/apq.pb.h"

namespace apq::client {

// The metrics that are set, under their field names; "modelled" lists the figures the
// fallback estimator priced, and the measured_* keys come only with a measured accuracy.
nlohmann::json MetricsJson(const apq::v1::Metrics& metrics);

// The metrics that are set, as one line of text: "accuracy 0.7712, latency 24.310 ms, ...".
std::string DescribeMetrics(const apq::v1::Metrics& metrics);

// A configuration as the server wrote it: its JSON, or the text itself if it is not JSON.
nlohmann::json ParseConfig(const std::string& config_json);

// A job and, if it has one, its best candidate's config and metrics; with verification, its
// stage, the verification's progress and the engine's (predicted) best.
nlohmann::json JobJson(const apq::v1::Job& job);

// Prints a job's state, progress, error and best candidate to stdout as text.
void PrintJobText(const apq::v1::Job& job);

// A candidate with its config and metrics.
nlohmann::json CandidateJson(const apq::v1::Candidate& candidate);

// The progress line of a running search: a bar of generations (of finalists measured, in the
// verification stage), the candidates, the time, and the best candidate's metrics.
std::string DescribeProgress(const apq::v1::JobProgress& progress);

}  // namespace apq::client

#endif  // APQ_CLIENTS_SEARCH_OUTPUT_H_
