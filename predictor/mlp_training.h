// Training of the MLP accuracy predictors (predictor/mlp_predictor.h) from measured
// (config, accuracy) records, in LibTorch: the full-precision predictor on architecture
// features, and APQ's quantization-aware one (architecture features through the first layer,
// bit features through their own branch added after its ReLU), trained from scratch or by
// transfer: every layer the two share is initialised from a trained predictor, then the whole
// network is fine-tuned on quantized records (APQ, section 3.3).
//
// Procedure: the records are split into training and validation sets by a seeded shuffle.
// Targets are standardised with the training records' mean and standard deviation (the
// accuracies of one space differ by fractions of a point; on raw targets Adam's steps would
// be far larger than the signal); the output layer is mapped back on export. From scratch, the
// output layer starts at zero (the output bias at the mean accuracy), so training starts from
// the mean predictor; by transfer, the new bits branch starts at zero, so training starts from
// the transferred predictor exactly. Adam on the mean squared error in mini-batches; after every
// epoch the validation RMSE is measured and the best epoch's weights are kept; training stops after
// `patience` epochs without improvement or at max_epochs. A NaN or infinite loss stops
// training with ABORTED (the caller keeps its previous predictor).
//
// This header is free of LibTorch.
#ifndef APQ_PREDICTOR_MLP_TRAINING_H_
#define APQ_PREDICTOR_MLP_TRAINING_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "predictor/mlp_predictor.h"
#include "predictor/training_data.h"

namespace apq::predictor {

struct MlpTrainingOptions {
  std::string name = "mlp";  // MlpWeights::name of the result.
  int arch_inputs = 0;       // The first layer reads features [0, arch_inputs).
  // The branch reads features [arch_inputs, arch_inputs + bit_inputs); 0: no branch (features
  // beyond arch_inputs are then an error).
  int bit_inputs = 0;
  std::vector<int> hidden = {400, 400, 400};  // APQ's and once-for-all's predictor widths.
  double validation_fraction = 0.2;           // In (0, 1).
  uint64_t seed = 1;                          // Split, initialisation and batch order.
  int batch_size = 64;
  int max_epochs = 400;  // 0: no training; the initial weights (e.g. to inspect a transfer).
  int patience = 40;
  double learning_rate = 1e-3;
  double weight_decay = 0.0;
  int threads = 1;  // LibTorch intra-op threads (process-wide).
  // Transfer: layers of `init` whose name and shape match the new network's are copied in
  // (for an fp32 predictor and a quantization-aware one of the same widths: every layer but
  // the branch); the others start from LibTorch's default initialisation.
  std::optional<MlpWeights> init;
  // Called after every epoch with (epoch, training loss, validation RMSE); returning false
  // stops training with CANCELLED. May be empty.
  std::function<bool(int epoch, double train_mse, double validation_rmse)> on_epoch;
};

struct MlpTrainingReport {
  int train_samples = 0;
  int validation_samples = 0;
  std::vector<int> validation_indices;  // Into the samples, ascending.
  int epochs_run = 0;
  int best_epoch = 0;  // 1-based; 0 = the initial weights were best.
  double initial_validation_rmse = 0.0;
  double validation_rmse = 0.0;                 // Of the returned weights.
  double train_rmse = 0.0;                      // Of the returned weights.
  std::vector<std::string> transferred_layers;  // Names of the layers copied from init.
  double seconds = 0.0;
};

// Trains a predictor on the split ValidationSplit(samples, validation_fraction, seed).
// INVALID_ARGUMENT as ValidateTrainingSamples for the inputs arch_inputs + bit_inputs, and
// naming the option for bad options (sizes, fraction, epochs, an init whose layers cannot be
// copied at all). ABORTED when the loss diverges. CANCELLED by
// on_epoch.
absl::StatusOr<MlpWeights> TrainMlp(const std::vector<TrainingSample>& samples,
                                    const MlpTrainingOptions& options, MlpTrainingReport* report);

// APQ's transfer recipe: a full-precision MLP trained on `fp32` (architecture features only),
// whose layers then start the quantization-aware MLP trained on `quantized` (its bits branch
// starts at zero, so fine-tuning starts exactly from the full-precision predictor).
// `options` describe the quantization-aware MLP (bit_inputs > 0; `init` is ignored); the
// full-precision stage uses them without the branch, named "<name>-fp32", and calls
// `on_fp32_epoch` instead of options.on_epoch. Either report may be null. Errors as TrainMlp,
// from the stage that failed.
absl::StatusOr<MlpWeights> TrainMlpByTransfer(
    const std::vector<TrainingSample>& fp32, const std::vector<TrainingSample>& quantized,
    const MlpTrainingOptions& options,
    const std::function<bool(int, double, double)>& on_fp32_epoch, MlpTrainingReport* fp32_report,
    MlpTrainingReport* quantized_report);

}  // namespace apq::predictor

#endif  // APQ_PREDICTOR_MLP_TRAINING_H_
