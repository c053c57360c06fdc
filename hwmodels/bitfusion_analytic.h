// An analytic BitFusion cost model whose constants are fitted to a BitFusion per-layer table
// (APQ's BitFusion_new.b1.dict, hwmodels/apq_bitfusion_table.h). It prices conv shapes the table
// lacks (other input sizes, other widths), as LutCostModel's fallback TermEstimator.
//
// The model, per conv layer of a key "(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}":
//   H_out = (H_in + 2 pad - K) / stride + 1,  MACs = Cout H_out^2 K^2 Cin / groups
//   parallel(w, a) = MACs per fused unit and step. BitFusion fuses 2-bit bricks into
//     power-of-two groups, so a 6-bit operand runs as 8 bits (the real table prices W6 exactly
//     as W8 per MAC): g(b) = the least of 2, 4, 8 >= b; parallel = (8 / g(w)) (8 / g(a)); the
//     bricks a MAC occupies = 16 / parallel = (g(w) / 2) (g(a) / 2), i.e. ceil(w/2) ceil(a/2)
//     with each operand's bricks rounded up to a power of two.
//   steps (array cycles, with tile padding where channels do not fill the array):
//     dense (groups = 1):  ceil(Cout / columns) H_out^2 K^2 ceil(Cin / (rows parallel))
//     grouped (depthwise): ceil(Cout / (lanes parallel)) H_out^2 K^2 (Cin / groups)
//   dram_bits = weights Cin Cout K^2 / groups * w + inputs Cin H_eff^2 * a
//               + outputs Cout H_out^2 * output_bits,  H_eff = (H_out - 1) stride + K
//     (output_bits = 64 by default: a 32-bit partial sum written and read back once, as
//     BitFusion's simulator moves them; the table's outputs cost the same at every bit pair).
//   latency_ms = t0 + max(tc steps, tm dram_bits) + gamma tm dram_bits + ts Cin
//     roofline of compute and DRAM time; gamma in [0, 1] is the share of DRAM time not hidden
//     behind compute (the first loads and last stores of a tile sequence); ts is a set-up time
//     per input channel (weight loads and pipeline refills between channel tiles).
//   energy_mj = e0 + e1 steps + e2 dram_bits + e3 MACs (w + a) + e4 latency_ms
//     e3: on-chip buffer reads of operands feeding the array; e4: static power (leakage, clock).
// Each op kind has its own constants: pointwise (K = 1, groups = 1) and depthwise
// (groups = Cin = Cout > 1) are fitted on their own rows; any other conv (dense K > 1, other
// grouped convs) is priced with the constants of the kind whose mapping it shares: dense convs
// with the pointwise constants (the same systolic mapping, K^2 steps per output), grouped convs
// with the depthwise ones.
//
// Fitting: conv shapes are split by a hash of the shape tuple (all bit pairs of a shape fall on
// the same side); latency constants minimise the mean squared relative error on the training
// rows by Nelder-Mead over log-parameters (deterministic, a few restarts); energy constants are
// non-negative least squares on relative error, given the fitted latency. The report gives the
// error on the held-out shapes; the model keeps the constants fitted on the training split.
//
// On the shipped table the held-out MAPE is 6.5% (latency) and 7.1% (energy) for pointwise
// convs, 3.5% and 13.6% for depthwise ones (bazel run //bench:bitfusion_model_bench).
//
// Thread safety: immutable after Fit; Estimate may be called concurrently.
#ifndef APQ_HWMODELS_BITFUSION_ANALYTIC_H_
#define APQ_HWMODELS_BITFUSION_ANALYTIC_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hwmodels/bitfusion_key.h"
#include "hwmodels/cost_table.h"
#include "hwmodels/lut_cost_model.h"

namespace apq::hwmodels {

enum class BitFusionOpKind {
  kPointwise,  // K = 1, groups = 1.
  kDepthwise,  // groups = Cin = Cout > 1.
  kOther,      // Anything else: dense K > 1, grouped but not depthwise.
};
inline constexpr int kNumBitFusionOpKinds = 3;

BitFusionOpKind OpKindOf(const BitFusionConv& conv);
// "pointwise", "depthwise" or "other".
const char* OpKindName(BitFusionOpKind kind);

struct BitFusionAnalyticOptions {
  // Fused-unit array for dense convs: rows reduce input channels, columns hold output channels
  // (BitFusion's 16 x 32 array).
  int array_rows = 16;
  int array_columns = 32;
  // Channels a grouped (depthwise) conv computes side by side at 8 x 8 bits. 8 matches the real
  // table: its depthwise W4A4 rows step every 32 channels and its W4A8 rows every 16.
  int depthwise_lanes = 8;
  // DRAM bits per output element (see the model above).
  int output_bits = 64;
  // true: operands take power-of-two brick groups (6 bits run as 8). false: ceil(b / 2) bricks
  // per operand, for comparison only (the real table fits worse).
  bool power_of_two_fusion = true;
  // Percentage of conv shapes held out of the fit, chosen by a hash of the shape tuple.
  int heldout_percent = 20;
};

// The constants of one op kind; see the equations above.
struct BitFusionKindParams {
  double overhead_ms = 0.0;            // t0
  double ms_per_step = 0.0;            // tc
  double ms_per_dram_bit = 0.0;        // tm
  double exposed_dram_fraction = 0.0;  // gamma
  double ms_per_input_channel = 0.0;   // ts
  double energy_fixed_mj = 0.0;        // e0
  double mj_per_step = 0.0;            // e1
  double mj_per_dram_bit = 0.0;        // e2
  double mj_per_operand_bit = 0.0;     // e3
  double static_power_w = 0.0;         // e4 (mJ per ms)
};

// Absolute percentage errors |estimate / table - 1| over a set of rows, as fractions.
struct BitFusionErrorStats {
  int rows = 0;
  double mape = 0.0;
  double median_ape = 0.0;
  double worst_ape = 0.0;
  std::string worst_key;  // Empty when rows = 0.
};

struct BitFusionKindReport {
  BitFusionOpKind kind = BitFusionOpKind::kPointwise;
  int train_shapes = 0;
  int heldout_shapes = 0;  // For kOther: every shape (its rows are never fitted on).
  int train_rows = 0;
  int heldout_rows = 0;
  BitFusionErrorStats train_latency;
  BitFusionErrorStats heldout_latency;
  BitFusionErrorStats train_energy;  // Energy stats are empty without energy.
  BitFusionErrorStats heldout_energy;
  int objective_evaluations = 0;  // Of the latency fit.
};

struct BitFusionFitReport {
  // Pointwise, then depthwise, then other when the table has rows of other kinds.
  std::vector<BitFusionKindReport> kinds;
  // Whether energy is modelled: every conv row of the table has an energy figure.
  bool has_energy = false;
  int ignored_keys = 0;  // "head", "tail" and any key that is not a conv key.
  double fit_seconds = 0.0;

  // A human-readable table (per kind: rows, MAPE, median and worst APE with its key).
  std::string ToString() const;
};

class BitFusionAnalyticModel : public TermEstimator {
 public:
  // Each fitted kind (pointwise, depthwise) needs kMinTrainRows training rows with a positive
  // latency (and, with energy, a positive energy): 4 rows per constant of the 5-constant fits.
  static constexpr int kMinTrainRows = 20;

  // Fits the model to the conv rows of `table` (rows with zero latency or energy are left out of
  // the fits and of the error figures). INVALID_ARGUMENT when the table is not of the BitFusion
  // format or `options` are out of range (array sizes and lanes >= 1, output_bits >= 1,
  // heldout_percent in 0..90); FAILED_PRECONDITION naming the kind and the counts when a kind
  // has fewer than kMinTrainRows training rows. Takes some tens of milliseconds on the real table.
  static absl::StatusOr<std::unique_ptr<BitFusionAnalyticModel>> Fit(
      const CostTable& table, const BitFusionAnalyticOptions& options = {});

  // The model's cost of the conv `key` names (whether or not the table has it): positive,
  // finite latency, and energy when the report has_energy. nullopt when ParseBitFusionKey rejects
  // the key: malformed keys, and "head" and "tail", whose fixed layers a key does not describe.
  std::optional<CostEntry> Estimate(const std::string& key) const override;
  // "bitfusion-analytic(v1)".
  std::string name() const override;

  const BitFusionFitReport& report() const { return report_; }
  // The constants that price `kind` (kOther: those of the pointwise kind; grouped convs of kind
  // kOther use the depthwise ones).
  const BitFusionKindParams& params(BitFusionOpKind kind) const;
  const BitFusionAnalyticOptions& options() const { return options_; }

 private:
  BitFusionAnalyticModel(const BitFusionAnalyticOptions& options,
                         const BitFusionKindParams& pointwise, const BitFusionKindParams& depthwise,
                         bool has_energy);

  CostEntry EstimateConv(const BitFusionConv& conv) const;

  BitFusionAnalyticOptions options_;
  BitFusionKindParams pointwise_;
  BitFusionKindParams depthwise_;
  bool has_energy_;
  BitFusionFitReport report_;
};

}  // namespace apq::hwmodels

#endif  // APQ_HWMODELS_BITFUSION_ANALYTIC_H_
