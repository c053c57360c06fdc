// The per-layer latency table of a CPU device (the `local-cpu` device: this machine), measured
// with LibTorch, for the joint space of an MbConvSpec (oface/mbconv_quant_space.h), and its
// validation against whole subnets. This header is free of LibTorch.
//
// What an entry is. Every key of the space's cost-term catalogue (SearchSpace::CostTermKey)
// must be a conv key "(Cin, Cout, H_in, K, stride, pad, groups)-W{w}A{a}"
// (oface/conv_key.h): the spec prices its stem and tail per conv
// (FixedLayerCosts::kConvKeys), not by opaque "head"/"tail" entries. The layer a key names is
// timed as the exported subnet (oface/subnet_export.h) computes it at batch 1 in evaluation
// mode, op for op, through the same ATen calls on a [1, Cin, H_in, H_in] float input without
// gradients:
//   - the stem conv, the first block's depthwise conv, every expand and depthwise conv and the
//     feature-mix conv: conv2d (no bias), batch_norm with running statistics, ReLU6
//     (hardtanh(0, 6));
//   - the first block's and every slot's 1x1 projection: conv2d, batch_norm (no activation);
//   - the classifier, keyed as a 1x1 conv on a 1x1 input "(F, classes, 1, 1, 1, 0, 1)": the
//     module's linear with bias on [1, F].
// The role of a shape comes from the spec's geometry; a shape that two roles with different
// ops share cannot have one honest entry and is an error.
//
// Bit widths: the table is for float (fp32) CPU inference, where the bit widths do not change
// the latency. Each conv shape (the 7-tuple) is timed once and its figure is written under
// every W/A key of that shape in the catalogue. With ProfileOptions::int8_engine, int8 and float
// layers are timed apart (see there).
//
// Changes of precision (a space with a float choice per layer): "(C, H)-quantize" is timed as
// quantize_per_tensor of a float [1, C, H, H] tensor to uint8, "(C, H)-dequantize" as
// dequantize of a uint8 one, the ops the int8 export runs where an int8 and a float layer meet.
//
// What no entry holds: the input normalisation, the residual additions (a projection shape can
// serve both a residual and a non-residual slot, so an addition cannot be charged to a key),
// the global average pooling and the TorchScript interpreter's own per-op work. A network's
// predicted latency (the sum of its terms' entries) therefore falls short of its measured
// latency by a roughly constant amount; ValidateProfile reports that bias rather than hiding
// it in the table.
//
// Timing: warm-up runs, then the median of timed runs (MedianLatencyMs, oface/subnet_export.h)
// with LibTorch's intra-op thread count set explicitly. Before every run of a layer an untimed
// sweep over ProfileOptions::cache_flush_bytes of memory evicts the layer's weights and input
// from the caches, as the other layers of a network do between two runs of it: a layer timed
// back to back in isolation keeps them hot and runs faster than inside a network. The right
// sweep depends on the machine's caches; ValidateProfile shows whether it fits. On the
// development machine (fmnist_mbv2, 1 thread, with another job running) the validation's mean
// measured / predicted ratio was about 1.5 with hot caches, and 1.2, 1.1 and 0.86 with 4, 8 and
// 16 MiB sweeps (a larger sweep also evicts what a network keeps in the last-level cache).
//
// For an int8 device (ProfileOptions::int8_engine) every timed op takes its input as a deployed
// int8 network hands it over: channels-last, and a different tensor on each run (two taken in
// turn). QNNPACK rebuilds a conv's indirection buffer whenever its input's address changes, as
// it does on every layer of a network; timed on one tensor, the int8 entries missed that work
// and the validation of 80 int8/float networks measured 1.8 times the table, against 1.3 with
// two tensors (bench/RESULTS.md). The TorchScript interpreter's own time per op call, measured
// once at 0.2 us (a scripted forward of 32 hardtanh calls against the same calls made
// directly), is not what a table misses here.
//
// Thread safety: the calls set LibTorch's process-wide thread count and time on the calling
// thread; run one at a time, on an otherwise quiet machine.
#ifndef APQ_OFACE_LAYER_PROFILER_H_
#define APQ_OFACE_LAYER_PROFILER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "oface/int8_layers.h"
#include "oface/mbconv_spec.h"
#include "oface/subnet_measurement.h"

namespace apq::oface {

struct TimingOptions {
  int threads = 1;    // LibTorch intra-op threads (at::set_num_threads, process-wide); >= 1.
  int warmup = 20;    // Untimed runs before the timed ones; >= 0.
  int repeats = 101;  // Timed runs; the figure is their median; >= 1.
};

struct ProfileOptions {
  TimingOptions timing;
  // Memory swept before every run of a layer (see the header comment); 0: hot caches. The
  // default fitted the development machine best.
  int64_t cache_flush_bytes = int64_t{8} << 20;
  // Set: the figures of a device that runs its layers in int8 on this engine, or in float as
  // the int8 export keeps a layer in float: W8A8 keys are timed in int8 (as CompareInt8Layers
  // times them), W32A32 keys as a conv with its batch norm folded (and hardtanh for a ReLU6
  // role), other pairs not at all (the device runs none). Unset: every key in float, as above.
  std::optional<QuantizedEngine> int8_engine;
};

struct LayerProfile {
  // Latency in ms of every catalogue key timed (all W/A keys of a shape that run alike share
  // their shape's figure).
  absl::flat_hash_map<std::string, double> latency_ms;
  int shapes = 0;        // Distinct conv shapes timed (per precision for an int8 device).
  int changes = 0;       // Changes of precision timed.
  double seconds = 0.0;  // Wall time of the profiling.
};

// Times every key of NewMbConvQuantSpace(spec)'s catalogue as described above. Every key is
// checked before anything is timed. INVALID_ARGUMENT for a spec that does not validate, an
// option out of range (naming it), or a catalogue key that is not a conv key
// (`key "head" is not a conv key: this space cannot be profiled`); FAILED_PRECONDITION naming
// the key when two layers of different ops share its shape; INTERNAL when no layer of the spec
// has a key's shape (the space and the profiler disagree) or LibTorch fails.
absl::StatusOr<LayerProfile> ProfileLayers(const MbConvSpec& spec, const ProfileOptions& options);

// One conv shape of a spec timed in float (as ProfileLayers times it) and in int8 on each
// quantized engine: the conv with its batch norm folded (and the fused ReLU6 of its role) on a
// uint8 input (oface/int8_layers.h), the linear classifier likewise. The int8 figure leaves
// out the quantization of the input and the dequantization of the output, which a network in
// int8 pays once at its float boundaries, not per layer.
struct Int8ShapeTiming {
  std::string shape;  // "(Cin, Cout, H_in, K, stride, pad, groups)".
  std::string role;   // "conv+bn+relu6", "conv+bn" or "linear".
  double float_ms = 0.0;
  // Int8 latency per engine, in the order of the engines asked for.
  std::vector<double> int8_ms;
};

// Times every conv shape of `spec`'s catalogue in float and on each of `engines` (every one of
// this build's: AvailableQuantizedEngines), interleaved shape by shape so that a change of the
// machine's load touches all of them alike. ProfileLayers' errors; FAILED_PRECONDITION for an
// engine this build lacks; INVALID_ARGUMENT for no engine.
absl::StatusOr<std::vector<Int8ShapeTiming>> CompareInt8Layers(
    const MbConvSpec& spec, const ProfileOptions& options,
    const std::vector<QuantizedEngine>& engines);

struct ValidationOptions {
  int subnets = 50;             // fp32 subnets (SampleMeasurementConfigs); >= 1.
  uint64_t seed = 1;            // Config sampling, supernet weights, calibration pixels.
  int calibration_images = 64;  // Synthetic (seeded random) images for BN recalibration; >= 1.
  TimingOptions timing;
  // Set: each subnet is extracted as a true int8 module on this engine (ExtractInt8Subnet,
  // oface/subnet_export.h) and timed so; every layer must then be at W8A8 or in float.
  std::optional<QuantizedEngine> int8_engine;
  // How the configs' bits are drawn (SampleConfigsWithBits): kHighest, every layer at the
  // space's highest bits; kPaired, each layer at one of its bit choices for weights and
  // activations alike (int8 or float per layer in fmnist_int8float).
  BitSampling bits = BitSampling::kHighest;
};

// One validated subnet: its measured latency and the table's prediction.
struct SubnetLatency {
  std::string config_json;    // SearchSpace::ToJson of the genotype.
  double measured_ms = 0.0;   // ExtractedSubnet::MedianLatencyMs.
  double predicted_ms = 0.0;  // Sum of the table's entries over the genotype's cost terms.
};

// Absolute percentage errors are |measured - predicted| / measured x 100.
struct ValidationReport {
  std::vector<SubnetLatency> subnets;  // In sampling order.
  double mape_percent = 0.0;           // Mean absolute percentage error.
  double median_ape_percent = 0.0;
  double worst_ape_percent = 0.0;
  std::string worst_config_json;    // The subnet of the worst error.
  double mean_ratio = 0.0;          // Mean of measured / predicted (> 1: the table is low).
  double mean_difference_ms = 0.0;  // Mean of measured - predicted.
  double seconds = 0.0;             // Wall time of the validation.
};

// Checks a profile against whole networks: samples options.subnets configs
// (SampleConfigsWithBits(space, subnets, options.bits, seed)), extracts each from a
// Supernet::Create(spec, seed) with untrained weights (latency does not depend on the weight
// values) after BN recalibration on synthetic images, times the extracted module's forward at
// batch 1 and compares it with the sum of `latency_ms` over the config's cost terms.
// INVALID_ARGUMENT for a spec that does not validate or an option out of range (naming it);
// FAILED_PRECONDITION naming the first cost-term key `latency_ms` lacks; the extraction's
// errors; INTERNAL when LibTorch fails.
absl::StatusOr<ValidationReport> ValidateProfile(
    const MbConvSpec& spec, const absl::flat_hash_map<std::string, double>& latency_ms,
    const ValidationOptions& options);

// What each kind of entry costs inside whole deployed networks against its isolated timing.
// On the development machine the int8 entries held inside networks (all-int8 subnets measured
// 1.01 times the table), the float ones did not (all-float subnets 1.59 times), and networks
// mixing them paid more again at each change of precision: layers timed alone see other
// caches and memory layouts than inside a network, and by kind. A calibration scales each kind
// of entry by the factor whole networks show, fitted by least squares over measured subnets:
//   measured = intercept + int8_factor x (sum of the network's int8 layer entries)
//            + float_factor x (its float layer entries) + change_factor x (its changes).
// The intercept (what no entry holds: the input's normalisation, residual additions, pooling)
// is reported, not put in any entry. A kind no subnet has keeps factor 1.
enum class EntryKind { kInt8Layer, kFloatLayer, kPrecisionChange };

// A conv key at W32A32 is a float layer, a change of precision (oface/conv_key.h) a change,
// any other key an int8 layer (the stem and tail, and W8A8).
EntryKind KindOfEntry(const std::string& key);

struct EntryCalibration {
  double int8_factor = 1.0;
  double float_factor = 1.0;
  double change_factor = 1.0;
  double intercept_ms = 0.0;
  int subnets = 0;  // Fitted on.
};

// The least-squares calibration of `latency_ms` (a profile of `spec`'s catalogue) over the
// subnets of `report` (ValidateProfile's, on the same profile). INVALID_ARGUMENT for a spec that
// does not validate, a subnet config the space does not read, or fewer subnets than three more
// than the factors fitted; FAILED_PRECONDITION naming the key `latency_ms` lacks, when the
// subnets cannot separate the kinds (the fit is singular), or when a factor comes out not
// positive.
absl::StatusOr<EntryCalibration> FitEntryCalibration(
    const MbConvSpec& spec, const absl::flat_hash_map<std::string, double>& latency_ms,
    const ValidationReport& report);

// Every entry of `latency_ms` times its kind's factor.
void ApplyEntryCalibration(const EntryCalibration& calibration,
                           absl::flat_hash_map<std::string, double>* latency_ms);

}  // namespace apq::oface

#endif  // APQ_OFACE_LAYER_PROFILER_H_
