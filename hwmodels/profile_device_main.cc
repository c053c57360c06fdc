// Measures the `local-cpu` device's per-layer latency table on this machine
// (oface/layer_profiler.h), writes it as conv table JSON (hwmodels/conv_latency_table.h) and
// checks it against whole extracted subnets:
//   bazel-bin/hwmodels/profile_device --spec fmnist_mbv2 --out local-cpu.json --threads 1
// Run it on a quiet machine: every other process's load shows in the figures.
// The report goes to stderr; the table is written (atomically) before the validation starts.
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/tool_main.h"
#include "hwmodels/conv_latency_table.h"
#include "hwmodels/cost_table.h"
#include "oface/int8_layers.h"
#include "oface/layer_profiler.h"
#include "oface/mbconv_spec.h"

ABSL_FLAG(std::string, spec, "fmnist_mbv2",
          "The space's spec: fmnist_mbv2, fmnist_lowbit (the same conv shapes) or "
          "fmnist_int8float (with --int8_engine: int8 and float layers and the changes of "
          "precision between them).");
ABSL_FLAG(std::string, out, "", "Path of the table JSON (written via a temporary + rename).");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads of every timed run (the device's setting).");
ABSL_FLAG(int, warmup, 20, "Untimed runs before the timed ones, per layer shape and per subnet.");
ABSL_FLAG(int, repeats, 101, "Timed runs per layer shape and per subnet; the median is kept.");
ABSL_FLAG(int, cache_flush_mib, 8,
          "MiB swept before every run of a layer so that it meets cold caches, as inside a "
          "network (0: hot caches).");
ABSL_FLAG(int, validate_subnets, 50,
          "fp32 subnets extracted and timed whole to check the table (0: no validation).");
ABSL_FLAG(std::string, int8_engine, "",
          "qnnpack or onednn: time every layer, and validate whole subnets, in int8 on this "
          "quantized engine (oface/int8_layers.h) instead of in float; empty: float.");
ABSL_FLAG(std::string, validate_bits, "highest",
          "Bits of the validation's (and the calibration's) subnets: highest (every layer at the "
          "space's highest bits) "
          "or paired (each layer at one bit choice for weights and activations alike: int8 or "
          "float per layer in fmnist_int8float).");
ABSL_FLAG(std::string, validation_tsv, "",
          "Also write the validation's subnets to this file: config JSON, measured ms and the "
          "table's ms, tab-separated, one subnet per line after a header.");
ABSL_FLAG(int, calibrate_subnets, 0,
          "Subnets (bits as --validate_bits, seed --calibrate_seed) measured whole before the "
          "table is written, to scale each kind of entry (int8 layers, float layers, changes of "
          "precision) by the factor whole networks show (oface/layer_profiler.h); 0: none.");
ABSL_FLAG(uint64_t, calibrate_seed, 101,
          "Seed of the calibration's subnets; must differ from --seed, so that the validation "
          "checks the table on other subnets than it was fitted on.");
ABSL_FLAG(uint64_t, seed, 1,
          "Seed of the validation: config sampling, supernet weights, calibration pixels.");

namespace {

// `content` to `path` via `path`.tmp and a rename, so a reader never sees half a table.
absl::Status WriteAtomically(const std::string& path, const std::string& content) {
  const std::string temporary = absl::StrCat(path, ".tmp");
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (file == nullptr) return absl::UnavailableError(absl::StrCat("cannot write ", temporary));
  const bool written = std::fwrite(content.data(), 1, content.size(), file) == content.size();
  if (std::fclose(file) != 0 || !written) {
    std::remove(temporary.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write ", temporary));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return absl::UnavailableError(absl::StrCat("cannot rename ", temporary, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status Run() {
  const std::string spec_name = absl::GetFlag(FLAGS_spec);
  const std::string out = absl::GetFlag(FLAGS_out);
  absl::StatusOr<apq::oface::MbConvSpec> found = apq::oface::FindFashionMnistSpec(spec_name);
  if (!found.ok())
    return absl::InvalidArgumentError(absl::StrCat("--spec: ", found.status().message()));
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  apq::oface::ProfileOptions options;
  apq::oface::TimingOptions& timing = options.timing;
  timing.threads = absl::GetFlag(FLAGS_threads);
  timing.warmup = absl::GetFlag(FLAGS_warmup);
  timing.repeats = absl::GetFlag(FLAGS_repeats);
  const int flush_mib = absl::GetFlag(FLAGS_cache_flush_mib);
  const int validate_subnets = absl::GetFlag(FLAGS_validate_subnets);
  if (timing.threads < 1) return absl::InvalidArgumentError("--threads must be >= 1");
  if (timing.warmup < 0) return absl::InvalidArgumentError("--warmup must be >= 0");
  if (timing.repeats < 1) return absl::InvalidArgumentError("--repeats must be >= 1");
  if (flush_mib < 0 || flush_mib > 1024) {
    return absl::InvalidArgumentError("--cache_flush_mib must be in 0..1024");
  }
  if (validate_subnets < 0) return absl::InvalidArgumentError("--validate_subnets must be >= 0");
  if (absl::GetFlag(FLAGS_calibrate_subnets) < 0) {
    return absl::InvalidArgumentError("--calibrate_subnets must be >= 0");
  }
  if (absl::GetFlag(FLAGS_calibrate_subnets) > 0 &&
      absl::GetFlag(FLAGS_calibrate_seed) == absl::GetFlag(FLAGS_seed)) {
    return absl::InvalidArgumentError(
        "--calibrate_seed must differ from --seed: the validation would check the table on the "
        "subnets it was fitted on");
  }
  const std::string validate_bits = absl::GetFlag(FLAGS_validate_bits);
  if (validate_bits != "highest" && validate_bits != "paired") {
    return absl::InvalidArgumentError(
        absl::StrCat("--validate_bits: \"", validate_bits, "\" is not highest or paired"));
  }
  options.cache_flush_bytes = int64_t{flush_mib} << 20;
  if (const std::string engine = absl::GetFlag(FLAGS_int8_engine); !engine.empty()) {
    absl::StatusOr<apq::oface::QuantizedEngine> parsed =
        apq::oface::QuantizedEngineFromName(engine);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--int8_engine: ", parsed.status().message()));
    }
    options.int8_engine = *parsed;
  }
  const apq::oface::MbConvSpec spec = *std::move(found);
  const apq::oface::BitSampling bits = validate_bits == "paired"
                                           ? apq::oface::BitSampling::kPaired
                                           : apq::oface::BitSampling::kHighest;

  std::fprintf(
      stderr,
      "profile_device: %s, %s, %d thread(s), %d warm-up + %d timed runs, %d MiB cache "
      "flush\n",
      spec.name.c_str(),
      options.int8_engine.has_value()
          ? absl::StrCat("int8 on ", apq::oface::QuantizedEngineName(*options.int8_engine)).c_str()
          : "float",
      timing.threads, timing.warmup, timing.repeats, flush_mib);
  absl::StatusOr<apq::oface::LayerProfile> profile = apq::oface::ProfileLayers(spec, options);
  if (!profile.ok()) return profile.status();
  // Whole subnets measured with the device's timing, engine and bits.
  const auto subnets_of = [&](int subnets, uint64_t seed) {
    apq::oface::ValidationOptions measured;
    measured.subnets = subnets;
    measured.seed = seed;
    measured.timing = timing;
    measured.int8_engine = options.int8_engine;
    measured.bits = bits;
    return measured;
  };
  const int calibrate_subnets = absl::GetFlag(FLAGS_calibrate_subnets);
  if (calibrate_subnets > 0) {
    const apq::oface::ValidationOptions calibration_set =
        subnets_of(calibrate_subnets, absl::GetFlag(FLAGS_calibrate_seed));
    absl::StatusOr<apq::oface::ValidationReport> measured =
        apq::oface::ValidateProfile(spec, profile->latency_ms, calibration_set);
    if (!measured.ok()) return measured.status();
    absl::StatusOr<apq::oface::EntryCalibration> calibration =
        apq::oface::FitEntryCalibration(spec, profile->latency_ms, *measured);
    if (!calibration.ok()) return calibration.status();
    apq::oface::ApplyEntryCalibration(*calibration, &profile->latency_ms);
    std::fprintf(stderr,
                 "calibrated on %d subnets (seed %llu; before: MAPE %.2f%%, measured / "
                 "predicted %.4f): int8 layers x%.4f, float layers x%.4f, changes of precision "
                 "x%.4f; unpriced intercept %.4f ms\n",
                 calibration->subnets,
                 static_cast<unsigned long long>(calibration_set.seed),  // NOLINT(runtime/int)
                 measured->mape_percent, measured->mean_ratio, calibration->int8_factor,
                 calibration->float_factor, calibration->change_factor, calibration->intercept_ms);
  }
  apq::hwmodels::CostTable table;
  table.format = apq::hwmodels::TableFormat::kConvJson;
  for (const auto& [key, ms] : profile->latency_ms) table.entries[key].latency_ms = ms;
  if (options.int8_engine.has_value()) {
    // A device that runs its layers in int8, and in float where the spec has a float choice
    // (the profile then holds W32A32 keys): the table says so.
    apq::hwmodels::PrecisionSupport& declared = table.precisions;
    declared.declared = true;
    declared.pairs = {{8, 8}};
    declared.int8_engine = apq::oface::QuantizedEngineName(*options.int8_engine);
    for (const auto& [key, ms] : profile->latency_ms) {
      declared.float_layers = declared.float_layers || absl::EndsWith(key, "-W32A32");
    }
  }
  const std::string json = apq::hwmodels::ConvTableToJson(table);
  // The writer's precondition, checked: the file must load as the server will load it.
  if (absl::StatusOr<apq::hwmodels::CostTable> loaded = apq::hwmodels::LoadConvTable(json, out);
      !loaded.ok()) {
    return absl::InternalError(
        absl::StrCat("the profile does not make a valid table: ", loaded.status().message()));
  }
  if (absl::Status status = WriteAtomically(out, json); !status.ok()) return status;
  std::fprintf(
      stderr, "timed %d conv shapes and %d changes of precision (%zu keys) in %.1f s; wrote %s\n",
      profile->shapes, profile->changes, profile->latency_ms.size(), profile->seconds, out.c_str());
  if (validate_subnets == 0) return absl::OkStatus();

  absl::StatusOr<apq::oface::ValidationReport> report = apq::oface::ValidateProfile(
      spec, profile->latency_ms, subnets_of(validate_subnets, absl::GetFlag(FLAGS_seed)));
  if (!report.ok()) return report.status();
  if (const std::string tsv = absl::GetFlag(FLAGS_validation_tsv); !tsv.empty()) {
    std::string rows = "config\tmeasured_ms\ttable_ms\n";
    for (const apq::oface::SubnetLatency& subnet : report->subnets) {
      absl::StrAppend(&rows, subnet.config_json, "\t", subnet.measured_ms, "\t",
                      subnet.predicted_ms, "\n");
    }
    if (absl::Status status = WriteAtomically(tsv, rows); !status.ok()) return status;
  }
  double worst_measured = 0.0, worst_predicted = 0.0;
  for (const apq::oface::SubnetLatency& subnet : report->subnets) {
    if (subnet.config_json == report->worst_config_json) {
      worst_measured = subnet.measured_ms;
      worst_predicted = subnet.predicted_ms;
    }
  }
  std::fprintf(stderr,
               "validation over %zu %s subnets (%.1f s):\n"
               "  MAPE %.2f%%, median APE %.2f%%, worst APE %.2f%%\n"
               "  measured / predicted: mean ratio %.4f, mean difference %.4f ms\n"
               "  (no entry holds the input normalisation, residual additions, pooling or the\n"
               "   interpreter's own work; a ratio far from 1 can also mean that\n"
               "   --cache_flush_mib does not fit this machine's caches)\n"
               "  worst: measured %.4f ms, predicted %.4f ms: %s\n",
               report->subnets.size(),
               options.int8_engine.has_value() ? (validate_bits == "paired" ? "int8/float" : "int8")
                                               : "fp32",
               report->seconds, report->mape_percent, report->median_ape_percent,
               report->worst_ape_percent, report->mean_ratio, report->mean_difference_ms,
               worst_measured, worst_predicted, report->worst_config_json.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) { return apq::RunTool("profile_device", argc, argv, Run); }
