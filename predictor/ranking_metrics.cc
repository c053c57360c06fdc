#include "predictor/ranking_metrics.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace apq::predictor {

absl::StatusOr<RankingMetrics> ComputeRankingMetrics(const std::vector<double>& predicted,
                                                     const std::vector<double>& measured) {
  if (predicted.size() != measured.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(predicted.size(), " predictions for ", measured.size(), " measured values"));
  }
  const size_t n = predicted.size();
  if (n < 2) return absl::InvalidArgumentError("ranking metrics need at least 2 values");
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(predicted[i]) || !std::isfinite(measured[i])) {
      return absl::InvalidArgumentError(absl::StrCat("value ", i, " is not finite"));
    }
  }
  RankingMetrics metrics;
  metrics.count = static_cast<int>(n);
  double squared = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double error = predicted[i] - measured[i];
    squared += error * error;
  }
  metrics.rmse = std::sqrt(squared / n);

  // Pair counts for tau-b: concordant - discordant over sqrt((n0 - t_pred)(n0 - t_meas)).
  int64_t concordant = 0;
  int64_t discordant = 0;
  int64_t tied_predicted = 0;  // Pairs tied in the prediction (tied in both included).
  int64_t tied_measured = 0;
  int64_t pairs = 0;
  double agreeing = 0.0;  // Pairs with distinct measured values ordered alike (ties 1/2).
  int64_t distinct_measured = 0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      ++pairs;
      const double dp = predicted[i] - predicted[j];
      const double dm = measured[i] - measured[j];
      if (dp == 0.0) ++tied_predicted;
      if (dm == 0.0) ++tied_measured;
      if (dp * dm > 0.0) ++concordant;
      if (dp * dm < 0.0) ++discordant;
      if (dm != 0.0) {
        ++distinct_measured;
        agreeing += dp * dm > 0.0 ? 1.0 : (dp == 0.0 ? 0.5 : 0.0);
      }
    }
  }
  const double denominator = std::sqrt(static_cast<double>(pairs - tied_predicted) *
                                       static_cast<double>(pairs - tied_measured));
  metrics.kendall_tau =
      denominator > 0.0 ? static_cast<double>(concordant - discordant) / denominator : 0.0;
  metrics.pairwise_accuracy = distinct_measured > 0 ? agreeing / distinct_measured : 0.0;
  return metrics;
}

absl::StatusOr<std::vector<double>> PredictSamples(AccuracyPredictor& predictor,
                                                   const std::vector<TrainingSample>& samples) {
  FeatureBatch batch;
  for (const TrainingSample& sample : samples) {
    batch.mutable_indices()->insert(batch.mutable_indices()->end(), sample.features.begin(),
                                    sample.features.end());
    batch.EndSample();
  }
  std::vector<float> predicted;
  RETURN_IF_ERROR(predictor.Predict(batch, &predicted));
  return std::vector<double>(predicted.begin(), predicted.end());
}

std::vector<double> MeasuredAccuracies(const std::vector<TrainingSample>& samples) {
  std::vector<double> measured;
  measured.reserve(samples.size());
  for (const TrainingSample& sample : samples) measured.push_back(sample.accuracy);
  return measured;
}

absl::StatusOr<RankingMetrics> ScoreOnSamples(AccuracyPredictor& predictor,
                                              const std::vector<TrainingSample>& samples) {
  ASSIGN_OR_RETURN(std::vector<double> predicted, PredictSamples(predictor, samples));
  return ComputeRankingMetrics(predicted, MeasuredAccuracies(samples));
}

}  // namespace apq::predictor
