// How well predicted accuracies match measured ones on held-out records: the error, and how
// well they rank (what a search needs: it keeps the better of two candidates).
#ifndef APQ_PREDICTOR_RANKING_METRICS_H_
#define APQ_PREDICTOR_RANKING_METRICS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "predictor/accuracy_predictor.h"
#include "predictor/training_data.h"

namespace apq::predictor {

struct RankingMetrics {
  int count = 0;
  double rmse = 0.0;  // Root mean squared error, in accuracy units (0.01 = 1 point).
  // Kendall's tau-b between predicted and measured (ties in either counted as tau-b does);
  // 0 when either side is constant.
  double kendall_tau = 0.0;
  // Over the pairs whose measured accuracies differ: the fraction the prediction orders the
  // same way (a predicted tie counts one half). 0.5 is chance.
  double pairwise_accuracy = 0.0;
};

// INVALID_ARGUMENT for lengths that differ, fewer than 2 values, or a non-finite value.
// O(n^2) in the number of values.
absl::StatusOr<RankingMetrics> ComputeRankingMetrics(const std::vector<double>& predicted,
                                                     const std::vector<double>& measured);

// The predictions of `predictor` for `samples`, in order (one batch).
absl::StatusOr<std::vector<double>> PredictSamples(AccuracyPredictor& predictor,
                                                   const std::vector<TrainingSample>& samples);
// The measured accuracies of `samples`, in order.
std::vector<double> MeasuredAccuracies(const std::vector<TrainingSample>& samples);
// ComputeRankingMetrics of the predictor's predictions for `samples`.
absl::StatusOr<RankingMetrics> ScoreOnSamples(AccuracyPredictor& predictor,
                                              const std::vector<TrainingSample>& samples);

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_RANKING_METRICS_H_
