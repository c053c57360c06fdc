// End to end: the real apqd on loopback with a real SQLite file, driven by the real apq
// client, as a user would.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "oface/measurement_csv.h"
#include "tests/process.h"

namespace apq::testing {
namespace {

using nlohmann::json;

json ParseJson(const ProcessResult& result) {
  json parsed = json::parse(result.out, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << "stdout is not JSON: " << result.out << result.err;
  return parsed;
}

std::string TutorialConfigFile() {
  const json golden = json::parse(ReadFile("tests/testdata/golden_values.json"));
  std::string path = TempPath("tutorial.json");
  WriteFile(path, golden["ofa_mbv3_w1.2_tutorial_note10_25ms"]["arch"].dump());
  return path;
}

// The first record of a shipped measurement CSV.
std::optional<oface::MeasurementRecord> FirstRecord(const std::string& path) {
  for (const absl::string_view line : absl::StrSplit(ReadFile(path), '\n')) {
    absl::StatusOr<oface::MeasurementRecord> parsed = oface::MeasurementFromCsvLine(line);
    if (parsed.ok()) return *std::move(parsed);
  }
  return std::nullopt;
}

class EndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    database_ = TempPath("apq.db");
    server_ = std::make_unique<ServerProcess>(database_);
  }

  ProcessResult Client(const std::vector<std::string>& args) {
    return RunClient(server_->address(), args);
  }

  json JobJson(const std::string& job_id) {
    ProcessResult jobs = Client({"jobs", "--json", "--limit", "1000"});
    EXPECT_EQ(jobs.exit_code, 0) << jobs.err;
    for (const json& job : ParseJson(jobs)) {
      if (job["job_id"] == job_id) return job;
    }
    ADD_FAILURE() << "job " << job_id << " not listed";
    return json();
  }

  // Every candidate row of the job in id order (`filter`: "", "--feasible" or
  // "--infeasible"), paged through, as "generation|times_seen|feasible|config".
  std::vector<std::string> Rows(const std::string& job_id, const std::string& filter = "") {
    std::vector<std::string> rows;
    std::string token;
    do {
      std::vector<std::string> args = {"candidates", job_id, "--limit", "10000", "--json"};
      if (!filter.empty()) args.push_back(filter);
      if (!token.empty()) args.insert(args.end(), {"--page-token", token});
      ProcessResult listed = Client(args);
      EXPECT_EQ(listed.exit_code, 0) << listed.err;
      if (listed.exit_code != 0) break;
      const json page = ParseJson(listed);
      for (const json& candidate : page["candidates"]) {
        rows.push_back(absl::StrCat(
            candidate["generation"].get<int>(), "|", candidate["times_seen"].get<int64_t>(), "|",
            candidate["feasible"].get<bool>(), "|", candidate["config"].dump()));
      }
      token = page["next_page_token"].get<std::string>();
    } while (!token.empty());
    return rows;
  }

  // The first measured fmnist_lowbit architecture, written to a file for
  // --fixed-architecture, and a BitOps budget of `factor` times its cheapest weight policy's
  // (weights at 2 bits, activations at 8), priced on bitfusion (which runs 2-bit layers).
  struct HeldArchitecture {
    std::string path;
    double budget = 0;
  };
  HeldArchitecture MeasuredArchitectureAndBudget(double factor) {
    const std::optional<oface::MeasurementRecord> record =
        FirstRecord("data/fmnist_lowbit/measurements.csv");
    EXPECT_TRUE(record.has_value());
    if (!record.has_value()) return {};
    json arch = json::parse(record->config_json);
    for (auto& [name, widths] : arch[1].items()) {
      for (auto& bits : widths) bits = name.find("_a_bits") != std::string::npos ? 8 : 2;
    }
    const std::string cheapest = TempPath("cheapest.json");
    WriteFile(cheapest, arch.dump());
    ProcessResult priced = Client({"evaluate", "--space", "fmnist_lowbit", "--device", "bitfusion",
                                   "--config", cheapest, "--json"});
    EXPECT_EQ(priced.exit_code, 0) << priced.err;
    if (priced.exit_code != 0) return {};
    HeldArchitecture held;
    held.path = TempPath("architecture.json");
    WriteFile(held.path, record->config_json);
    held.budget = ParseJson(priced)["bitops"].get<double>() * factor;
    return held;
  }

  // `apq config JOB --torchscript FILE --json` on a local-cpu job: an int8 module for QNNPACK
  // whose accuracy the server measured on the test split within (low, high), and which a fresh
  // process loading FILE, as any LibTorch program would, reproduces exactly.
  void ExpectDeploysAReproducibleInt8Module(const std::string& job_id, const std::string& file,
                                            double low, double high) {
    ProcessResult deploy = Client({"config", job_id, "--torchscript", file, "--json"});
    ASSERT_EQ(deploy.exit_code, 0) << deploy.err;
    const json deployed = ParseJson(deploy);
    EXPECT_EQ(deployed["torchscript_precision"], "int8");
    EXPECT_EQ(deployed["quantized_engine"], "qnnpack");
    const double accuracy = deployed["torchscript_accuracy"].get<double>();
    EXPECT_GT(accuracy, low);
    EXPECT_LT(accuracy, high);
    const ProcessResult loaded =
        RunProcess({"oface/export_subnet", "--verify", file, "--split", "test", "--threads", "1"});
    ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
    EXPECT_NE(loaded.out.find(absl::StrFormat("accuracy=%.6f images=10000", accuracy)),
              std::string::npos)
        << loaded.out << " (measured by the server: " << accuracy << ")";
  }

  // The sum of times_seen over rows listed by Rows.
  static int64_t TimesSeen(const std::vector<std::string>& rows) {
    int64_t sum = 0;
    for (const std::string& row : rows) {
      const std::vector<std::string> fields = absl::StrSplit(row, absl::MaxSplits('|', 2));
      sum += std::stoll(fields[1]);
    }
    return sum;
  }

  std::string database_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(EndToEndTest, ServesTheEmbeddedDeviceTables) {
  ProcessResult result = Client({"devices", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  json devices = ParseJson(result);
  ASSERT_EQ(devices.size(), 3u);  // Sorted by name.
  EXPECT_EQ(devices[0]["name"], "bitfusion");
  ASSERT_EQ(devices[0]["versions"].size(), 1u);
  EXPECT_EQ(devices[0]["versions"][0]["covered_spaces"], json({"apq_mbv2"}));
  // The Fashion-MNIST spaces' shapes (smaller maps and widths) come from the fitted model.
  EXPECT_EQ(devices[0]["versions"][0]["modelled_spaces"],
            json({"fmnist_mbv2", "fmnist_lowbit", "fmnist_int8float"}));
  // 779 conv shapes x 9 bit pairs, minus the 3 A4 pairs of each depthwise 7x7 shape, plus
  // head and tail.
  EXPECT_EQ(devices[0]["versions"][0]["entries"].get<int>(), 6569);
  EXPECT_EQ(devices[1]["name"], "local-cpu");
  ASSERT_EQ(devices[1]["versions"].size(), 1u);
  // It runs W8A8 (int8) or float layers: of the Fashion-MNIST spaces it needs the W8A8 keys
  // (and fmnist_int8float's W32A32 keys).
  EXPECT_EQ(devices[1]["versions"][0]["covered_spaces"],
            json({"fmnist_mbv2", "fmnist_lowbit", "fmnist_int8float"}));
  EXPECT_EQ(devices[1]["versions"][0]["modelled_spaces"], json::array());
  // fmnist_int8float's 264 conv shapes timed in int8 (W8A8), the 259 of its searched layers
  // also in float (W32A32), and 104 changes of precision between them.
  EXPECT_EQ(devices[1]["versions"][0]["entries"].get<int>(), 264 + 259 + 104);
  const json& cpu = devices[1]["versions"][0]["precisions"];
  EXPECT_EQ(cpu["declared"], true);
  EXPECT_EQ(cpu["pairs"], json({"W8A8"}));
  EXPECT_EQ(cpu["float_layers"], true);
  EXPECT_EQ(cpu["int8_engine"], "qnnpack");
  EXPECT_EQ(cpu["summary"], "W8A8 or float (int8 on LibTorch's qnnpack engine)");
  const json& bitfusion = devices[0]["versions"][0]["precisions"];
  EXPECT_EQ(bitfusion["pairs"].size(), 9u);
  EXPECT_EQ(bitfusion["modelled_pairs"].size(), 40u);  // The other 2-8 bit pairs.
  EXPECT_EQ(bitfusion["float_layers"], false);
  EXPECT_EQ(bitfusion["int8_engine"], "");
  EXPECT_EQ(devices[2]["versions"][0]["precisions"]["summary"], "float");

  // Per space, what each device runs of its pairs.
  result = Client({"spaces", "fmnist_lowbit", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json described = ParseJson(result);
  const json& space = described.is_array() ? described[0] : described;
  std::map<std::string, json> on;
  for (const json& entry : space["device_precisions"]) on[entry["device"]] = entry;
  ASSERT_EQ(on.count("local-cpu"), 1u) << space.dump();
  EXPECT_EQ(on["local-cpu"]["pairs"], json({"W8A8"}));
  EXPECT_EQ(on["local-cpu"]["restricted"], true);
  ASSERT_EQ(on.count("bitfusion"), 1u);
  EXPECT_EQ(on["bitfusion"]["pairs"].size(), 25u);  // Every pair of {2, 3, 4, 6, 8}.
  EXPECT_EQ(on["bitfusion"]["restricted"], false);
  result = Client({"spaces", "fmnist_lowbit"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("on local-cpu only W8A8 of its pairs run (W8A8 or float"),
            std::string::npos)
      << result.out;
  EXPECT_EQ(devices[2]["name"], "note10");
  ASSERT_EQ(devices[2]["versions"].size(), 1u);
  EXPECT_EQ(devices[2]["versions"][0]["covered_spaces"], json({"ofa_mbv3"}));
  // Five resolutions (160..224 step 16) times the 96 keys of each OFA yaml table.
  EXPECT_EQ(devices[2]["versions"][0]["entries"].get<int>(), 480);
}

// The first of APQ's own 300 priced configurations, through the client: costs need no
// predictor, and a search (which does) is refused saying what is missing.
TEST_F(EndToEndTest, PricesApqConfigurationsLikeApqAndRefusesSearchWithoutAPredictor) {
  const json golden = json::parse(ReadFile("tests/testdata/golden_apq_bitfusion.json"));
  const std::string config = TempPath("apq.json");
  WriteFile(config, golden[0]["arch_json"].dump());
  ProcessResult result = Client(
      {"evaluate", "--space", "apq_mbv2", "--device", "bitfusion", "--config", config, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json metrics = ParseJson(result);
  EXPECT_NEAR(metrics["latency_ms"].get<double>(), golden[0]["latency_ms"].get<double>(),
              1e-9 * golden[0]["latency_ms"].get<double>());
  EXPECT_NEAR(metrics["energy_mj"].get<double>(), golden[0]["energy_mJ"].get<double>(),
              1e-9 * golden[0]["energy_mJ"].get<double>());
  EXPECT_GT(metrics["size_mb"].get<double>(), 0.5);
  EXPECT_GT(metrics["bitops"].get<double>(), 1e9);
  EXPECT_FALSE(metrics.contains("accuracy"));
  EXPECT_FALSE(metrics.contains("modelled")) << "every figure is from the table";

  ProcessResult search = Client({"search", "--space", "apq_mbv2", "--device", "bitfusion",
                                 "--max-latency-ms", "10", "--max-energy-mj", "12"});
  EXPECT_EQ(search.exit_code, 1);
  EXPECT_NE(search.err.find("FAILED_PRECONDITION:"), std::string::npos) << search.err;
  EXPECT_NE(search.err.find("no accuracy predictor"), std::string::npos) << search.err;

  // A configuration breaking APQ's rules is refused naming the layer and field.
  json bad = golden[0]["arch_json"];
  bad[0]["ks"][0] = 7;
  bad[1]["dw_a_bits_setting"][0] = 4;
  WriteFile(config, bad.dump());
  ProcessResult refused =
      Client({"evaluate", "--space", "apq_mbv2", "--device", "bitfusion", "--config", config});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("INVALID_ARGUMENT:"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("dw_a_bits_setting"), std::string::npos) << refused.err;
}

// The shipped Fashion-MNIST supernet through the service: costs on the measured and the
// modelled device, a measured accuracy that reproduces a shipped measurement, and what a space
// without a supernet answers.
TEST_F(EndToEndTest, MeasuresFashionMnistSubnetsOnTheShippedSupernet) {
  std::optional<oface::MeasurementRecord> record;
  for (const absl::string_view line :
       absl::StrSplit(ReadFile("data/fmnist_mbv2/measurements.csv"), '\n')) {
    absl::StatusOr<oface::MeasurementRecord> parsed = oface::MeasurementFromCsvLine(line);
    if (parsed.ok() && parsed->method == oface::kMeasuredQuantFromSupernet) {
      record = *std::move(parsed);
      break;
    }
  }
  ASSERT_TRUE(record.has_value()) << "no quantized record shipped";
  const std::string config = TempPath("fmnist.json");
  WriteFile(config, record->config_json);

  // Its policy mixes 4, 6 and 8 bits: measured without a device (local-cpu runs W8A8 only).
  ProcessResult result = Client({"evaluate", "--space", "fmnist_mbv2", "--config", config,
                                 "--measure", "quantized", "--split", "validation", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  json metrics = ParseJson(result);
  // The shipped record was measured on the same weights and validation images, with BN
  // recalibrated on another 2,000 train-split images (the measurement run's seed picks them),
  // which moves the accuracy by a few tenths of a point at most.
  EXPECT_NEAR(metrics["measured_accuracy"].get<double>(), record->accuracy, 5e-3);
  EXPECT_EQ(metrics["measured_method"], "quant-from-supernet");
  EXPECT_EQ(metrics["measured_split"], "validation");
  EXPECT_EQ(record->split, "validation");
  // By default a measurement is made on the validation split, and is deterministic.
  const auto measure_on_validation = [&] {
    ProcessResult validation =
        Client({"evaluate", "--space", "fmnist_mbv2", "--config", config, "--measure", "quantized",
                "--test-images", "2000", "--json"});
    EXPECT_EQ(validation.exit_code, 0) << validation.err;
    return ParseJson(validation);
  };
  const json validation = measure_on_validation();
  EXPECT_EQ(validation["measured_split"], "validation");
  EXPECT_EQ(validation["measured_accuracy"], measure_on_validation()["measured_accuracy"]);
  // A final report may ask for the test images.
  ProcessResult on_test =
      Client({"evaluate", "--space", "fmnist_mbv2", "--config", config, "--measure", "quantized",
              "--split", "test", "--test-images", "2000", "--json"});
  ASSERT_EQ(on_test.exit_code, 0) << on_test.err;
  EXPECT_EQ(ParseJson(on_test)["measured_split"], "test");
  EXPECT_NE(metrics["supernet_version"].get<std::string>().find("fmnist_mbv2@"), std::string::npos);
  // The same architecture at W8A8 runs on local-cpu, priced by its int8 entries.
  json w8a8 = json::parse(record->config_json);
  for (auto& item : w8a8[1].items()) {
    for (auto& bits : item.value()) bits = 8;
  }
  const std::string int8_config = TempPath("fmnist_w8a8.json");
  WriteFile(int8_config, w8a8.dump());
  result = Client({"evaluate", "--space", "fmnist_mbv2", "--device", "local-cpu", "--config",
                   int8_config, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  metrics = ParseJson(result);
  EXPECT_GT(metrics["latency_ms"].get<double>(), 0.0);
  EXPECT_FALSE(metrics.contains("modelled")) << "local-cpu measured every shape";
  // The measured policy itself does not run there: refused naming its first such layer.
  result =
      Client({"evaluate", "--space", "fmnist_mbv2", "--device", "local-cpu", "--config", config});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("INVALID_ARGUMENT: configs_json[0]: layer "), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("which local-cpu (table v1) does not execute (it runs W8A8 or float"),
            std::string::npos)
      << result.err;

  result = Client({"evaluate", "--space", "fmnist_mbv2", "--device", "bitfusion", "--config",
                   config, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  metrics = ParseJson(result);
  EXPECT_EQ(metrics["modelled"], json({"latency_ms", "energy_mj"}));
  EXPECT_GT(metrics["energy_mj"].get<double>(), 0.0);

  result = Client(
      {"evaluate", "--space", "ofa_mbv3", "--config", TutorialConfigFile(), "--measure", "fp32"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("FAILED_PRECONDITION:"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("no trained supernet"), std::string::npos) << result.err;
  result = Client({"evaluate", "--space", "fmnist_mbv2", "--config", config, "--measure", "int2"});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  result = Client({"evaluate", "--space", "fmnist_mbv2", "--config", config, "--measure", "fp32",
                   "--split", "train"});
  EXPECT_EQ(result.exit_code, 2) << "the train split is never measured on: " << result.err;
}

// The low-bit space: a 2- and 3-bit policy is priced on both default devices; a search runs
// with the shipped predictor under a budget that the largest network meets only below 3 bits;
// the shipped supernet measures a policy on validation images.
TEST_F(EndToEndTest, PricesSearchesAndMeasuresLowBitPolicies) {
  const std::optional<oface::MeasurementRecord> record =
      FirstRecord("data/fmnist_mbv2/measurements.csv");
  ASSERT_TRUE(record.has_value());
  json arch = json::parse(record->config_json);
  int n = 0;
  for (auto& item : arch[1].items()) {
    for (auto& bits : item.value()) bits = n++ % 2 == 0 ? 2 : 3;
  }
  const std::string config = TempPath("low_bit.json");
  WriteFile(config, arch.dump());

  // local-cpu runs no 2- or 3-bit layer: refused naming the first one and what it runs.
  ProcessResult result = Client({"evaluate", "--space", "fmnist_lowbit", "--device", "local-cpu",
                                 "--config", config, "--json"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("INVALID_ARGUMENT: configs_json[0]: layer 0 pw runs at W2A2, which "
                            "local-cpu (table v1) does not execute (it runs W8A8 or float (int8 "
                            "on LibTorch's qnnpack engine))"),
            std::string::npos)
      << result.err;
  json metrics;
  result = Client({"evaluate", "--space", "fmnist_lowbit", "--device", "bitfusion", "--config",
                   config, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  metrics = ParseJson(result);
  EXPECT_GT(metrics["energy_mj"].get<double>(), 0.0);
  EXPECT_EQ(metrics["modelled"], json({"latency_ms", "energy_mj"}));
  // The same config is outside fmnist_mbv2 (bits {4, 6, 8}).
  result =
      Client({"evaluate", "--space", "fmnist_mbv2", "--device", "local-cpu", "--config", config});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("INVALID_ARGUMENT:"), std::string::npos) << result.err;

  // Its shipped predictor (an ensemble) lets a search run; its winner meets the budget.
  result = Client({"search", "--space", "fmnist_lowbit", "--device", "bitfusion",
                   "--max-latency-ms", "0.3", "--seed", "2", "--population", "16", "--generations",
                   "5", "--wait", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json job = ParseJson(result);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_LE(job["latency_ms"].get<double>(), 0.3);
  EXPECT_NE(job["predictor_version"].get<std::string>().find("fmnist_lowbit-ensemble-"),
            std::string::npos);
  // Its shipped supernet measures the config at its bit policy, on validation images.
  result = Client({"evaluate", "--space", "fmnist_lowbit", "--config", config, "--measure",
                   "quantized", "--test-images", "300", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  metrics = ParseJson(result);
  EXPECT_EQ(metrics["measured_split"], "validation");
  EXPECT_EQ(metrics["measured_method"], "quant-from-supernet");
  EXPECT_GT(metrics["measured_accuracy"].get<double>(), 0.1);
  EXPECT_LE(metrics["measured_accuracy"].get<double>(), 1.0);
}

// The iqp engine through the client: the bits of one measured architecture allocated under
// a BitOps budget between its cheapest weight widths and 8 bits everywhere.
TEST_F(EndToEndTest, AllocatesTheBitsOfOneArchitectureWithTheIqpEngine) {
  const std::optional<oface::MeasurementRecord> record =
      FirstRecord("data/fmnist_lowbit/measurements.csv");
  ASSERT_TRUE(record.has_value());
  // The architecture with weights at `weight_bits` and activations at 8, priced in BitOps.
  const auto bitops = [&](int weight_bits) {
    json arch = json::parse(record->config_json);
    for (auto& [name, widths] : arch[1].items()) {
      for (auto& bits : widths) bits = name.find("_a_bits") != std::string::npos ? 8 : weight_bits;
    }
    const std::string path = TempPath(absl::StrCat("w", weight_bits, ".json"));
    WriteFile(path, arch.dump());
    ProcessResult priced = Client({"evaluate", "--space", "fmnist_lowbit", "--device", "bitfusion",
                                   "--config", path, "--json"});
    EXPECT_EQ(priced.exit_code, 0) << priced.err;
    return ParseJson(priced)["bitops"].get<double>();
  };
  const double budget = (bitops(2) + bitops(8)) / 2;
  const std::string architecture = TempPath("architecture.json");
  WriteFile(architecture, record->config_json);
  ProcessResult result =
      Client({"search", "--space", "fmnist_lowbit", "--device", "bitfusion", "--fixed-architecture",
              architecture, "--max-bitops", absl::StrCat(budget), "--engine", "iqp", "--options",
              "calibration_images=64,cross_layer=false,time_limit_s=20", "--wait", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json job = ParseJson(result);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_EQ(job["engine"], "iqp");
  EXPECT_LE(job["bitops"].get<double>(), budget);
  EXPECT_EQ(job["candidates_evaluated"].get<int64_t>(), 1);

  // The solver's report is the job's artifact: its bound and gap.
  const std::string job_id = job["job_id"];
  result = Client({"artifacts", job_id, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json artifacts = ParseJson(result);
  ASSERT_EQ(artifacts.size(), 1u);
  EXPECT_EQ(artifacts[0]["kind"], "iqp_solution");
  EXPECT_EQ(artifacts[0]["provenance"]["calibration_images"], 64);
  result = Client({"artifact", "iqp_solution", artifacts[0]["key"], "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json solution = ParseJson(result)["content"];
  EXPECT_GE(solution["relative_gap"].get<double>(), 0.0);
  EXPECT_LE(solution["best_bound"].get<double>(), solution["objective"].get<double>() + 1e-9);
  // Never worse than the warm start it was given.
  EXPECT_LE(solution["objective"].get<double>(),
            solution["warm_start_objective"].get<double>() + 1e-12);
  result = Client({"artifact", "iqp_solution", "job-999/solution.json"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("NOT_FOUND"), std::string::npos) << result.err;
  result = Client({"artifact", "iqp_solution", std::string(600, 'k')});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("key: longer than"), std::string::npos) << result.err;

  // A budget below every weight allocation is refused naming the cheapest.
  result =
      Client({"search", "--space", "fmnist_lowbit", "--device", "bitfusion", "--fixed-architecture",
              architecture, "--max-bitops", absl::StrCat(bitops(2) / 2), "--engine", "iqp"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("below the cheapest bit policy"), std::string::npos) << result.err;
}

// The qbitopt engine through the client: the bits of one measured architecture allocated
// during a short fine-tune under a BitOps budget; the job's deployable module is the one it
// trained.
TEST_F(EndToEndTest, AllocatesBitsWhileFineTuningWithTheQbitoptEngine) {
  const HeldArchitecture held = MeasuredArchitectureAndBudget(1.5);
  ASSERT_FALSE(held.path.empty());
  const std::string& architecture = held.path;
  const double budget = held.budget;
  ProcessResult result = Client(
      {"search", "--space", "fmnist_lowbit", "--device", "bitfusion", "--fixed-architecture",
       architecture, "--max-bitops", absl::StrCat(budget), "--engine", "qbitopt", "--options",
       "steps=6,update_every=3,batch_size=32,gradient_batches=1", "--wait", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json job = ParseJson(result);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_EQ(job["engine"], "qbitopt");
  EXPECT_LE(job["bitops"].get<double>(), budget);
  const std::string module = TempPath("trained.pt");
  result = Client({"config", job["job_id"].get<std::string>(), "--torchscript", module, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json config = ParseJson(result);
  EXPECT_TRUE(config["trained_by_job"].get<bool>());
  EXPECT_FALSE(config.contains("torchscript_accuracy"));
  EXPECT_NE(config["supernet_version"].get<std::string>().find("fmnist_lowbit@"),
            std::string::npos);
  const std::string bytes = ReadFile(module);
  EXPECT_EQ(bytes.substr(0, 2), "PK");
  result = Client({"artifacts", job["job_id"].get<std::string>(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json artifacts = ParseJson(result);
  ASSERT_EQ(artifacts.size(), 1u);
  EXPECT_EQ(artifacts[0]["kind"], "qbitopt_module");
  EXPECT_EQ(artifacts[0]["size_bytes"].get<int64_t>(), static_cast<int64_t>(bytes.size()));
}

// A qbitopt job on a device with an int8 engine (local-cpu, which holds fmnist_lowbit's layers
// at W8A8): its deployable module is the one it trained, fake-quantized and said so, and an
// int8 module of it is refused, since only the trained module exists.
TEST_F(EndToEndTest, AQbitoptJobOnAnInt8DeviceDeploysItsTrainedFakeQuantizedModule) {
  // Above the all-8-bit BitOps of the architecture (4x its 2-bit-weight figure).
  const HeldArchitecture held = MeasuredArchitectureAndBudget(4.5);
  ASSERT_FALSE(held.path.empty());
  ProcessResult result = Client(
      {"search", "--space", "fmnist_lowbit", "--device", "local-cpu", "--fixed-architecture",
       held.path, "--max-bitops", absl::StrCat(held.budget), "--engine", "qbitopt", "--options",
       "steps=4,update_every=2,batch_size=32,gradient_batches=1", "--wait", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json job = ParseJson(result);
  ASSERT_EQ(job["state"], "SUCCEEDED");
  for (const auto& [field, widths] : job["best_config"][1].items()) {
    for (const json& bits : widths) EXPECT_EQ(bits, 8) << field;
  }
  const std::string module = TempPath("trained_local_cpu.pt");
  result = Client({"config", job["job_id"].get<std::string>(), "--torchscript", module, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json config = ParseJson(result);
  EXPECT_TRUE(config["trained_by_job"].get<bool>());
  EXPECT_EQ(config["torchscript_precision"], "fake-quant");
  EXPECT_EQ(ReadFile(module).substr(0, 2), "PK");
  result = Client(
      {"config", job["job_id"].get<std::string>(), "--torchscript", module, "--int8", "--json"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("FAILED_PRECONDITION: int8: job "), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("was trained by engine qbitopt"), std::string::npos) << result.err;
}

// The differentiable engines through the client: dnas and ssps search the bits of one
// measured architecture under a BitOps budget; the result meets it, the search's figures come
// with the job, the report is the job's artifact, and the deployable config is the best's.
TEST_F(EndToEndTest, SearchesTheBitsOfOneArchitectureWithDnasAndSsps) {
  const HeldArchitecture held = MeasuredArchitectureAndBudget(1.5);
  ASSERT_FALSE(held.path.empty());
  const std::string& architecture = held.path;
  const double budget = held.budget;
  for (const std::string engine : {"dnas", "ssps"}) {
    ProcessResult result = Client(
        {"search", "--space", "fmnist_lowbit", "--device", "bitfusion", "--fixed-architecture",
         architecture, "--max-bitops", absl::StrCat(budget), "--engine", engine, "--options",
         "steps=6,report_every=3,batch_size=16,warmup_steps=0,samples=2", "--wait", "--json"});
    ASSERT_EQ(result.exit_code, 0) << engine << ": " << result.out << result.err;
    const json job = ParseJson(result);
    EXPECT_EQ(job["state"], "SUCCEEDED") << engine;
    EXPECT_EQ(job["engine"], engine);
    EXPECT_LE(job["bitops"].get<double>(), budget) << engine;
    const json& metrics = job["engine_metrics"];
    EXPECT_GT(metrics["expected_cost"].get<double>(), 0.0) << engine;
    EXPECT_EQ(metrics.contains("layers_fixed"), engine == "ssps") << metrics.dump();
    const std::string job_id = job["job_id"];
    result = Client({"artifacts", job_id, "--json"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const json artifacts = ParseJson(result);
    ASSERT_EQ(artifacts.size(), 1u) << engine;
    EXPECT_EQ(artifacts[0]["kind"], engine + "_result");
    result = Client({"artifact", engine + "_result", artifacts[0]["key"], "--json"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const json report = ParseJson(result)["content"];
    EXPECT_EQ(report["config"], job["best_config"]) << engine;
    EXPECT_EQ(report["samples"].size(), 2u) << engine;
    // The deployable config is the best's, and its TorchScript export runs as for any job.
    const std::string module = TempPath(engine + ".pt");
    result = Client({"config", job_id, "--torchscript", module, "--json"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const json deployed = ParseJson(result);
    EXPECT_EQ(deployed["config"], job["best_config"]) << engine;
    EXPECT_GT(deployed["torchscript_accuracy"].get<double>(), 0.1) << engine;
    EXPECT_EQ(ReadFile(module).substr(0, 2), "PK") << engine;
  }
  // An option outside its range is refused naming it.
  ProcessResult result =
      Client({"search", "--space", "fmnist_lowbit", "--device", "bitfusion", "--fixed-architecture",
              architecture, "--max-bitops", absl::StrCat(budget), "--engine", "ssps", "--options",
              "steps=6,report_every=3,warmup_steps=0,fix_every=9"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("engine.options.fix_every"), std::string::npos) << result.err;
}

// Deployment scenarios through the client: one sweep over two devices answers every
// scenario within its budget, each scenario is an ordinary job, and bad scenario files and
// unknown sweeps are refused.
TEST_F(EndToEndTest, SweepsDeploymentScenariosOverTwoDevices) {
  const std::string scenarios = TempPath("scenarios.json");
  WriteFile(scenarios, R"([{"device": "local-cpu", "max_latency_ms": 0.5, "label": "cpu"},
                           {"device": "local-cpu", "max_latency_ms": 0.8},
                           {"device": "bitfusion", "max_latency_ms": 0.3}])");
  ProcessResult result =
      Client({"sweep", "--space", "fmnist_mbv2", "--scenarios", scenarios, "--seed", "3",
              "--population", "12", "--generations", "6", "--wait", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json sweep = ParseJson(result);
  ASSERT_EQ(sweep["scenarios"].size(), 3u);
  EXPECT_EQ(sweep["scenarios_ended"], 3);
  EXPECT_EQ(sweep["steps_done"], sweep["steps_total"]);
  const double budgets[] = {0.5, 0.8, 0.3};
  for (size_t i = 0; i < 3; ++i) {
    const json& scenario = sweep["scenarios"][i];
    EXPECT_EQ(scenario["job"]["state"], "SUCCEEDED") << i;
    EXPECT_LE(scenario["job"]["latency_ms"].get<double>(), budgets[i]) << i;
    EXPECT_GT(scenario["pareto_front"].size(), 0u) << i;
  }
  EXPECT_EQ(sweep["scenarios"][0]["label"], "cpu");
  EXPECT_EQ(sweep["scenarios"][2]["device"], "bitfusion");
  // A scenario's job is an ordinary job.
  const std::string job_id = sweep["scenarios"][1]["job"]["job_id"];
  result = Client({"config", job_id, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(ParseJson(result)["device"], "local-cpu");
  result = Client({"sweep-status", sweep["sweep_id"], "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(ParseJson(result)["scenarios"][1]["job"]["job_id"], job_id);

  const struct {
    std::string file, mention;
  } bad_files[] = {
      {"{}", "non-empty JSON list"},
      {"[]", "non-empty JSON list"},
      {R"([{"device": "local-cpu"}, {"max_latency_ms": 1}])", "entry 1: \"device\" is required"},
      {R"([{"device": "local-cpu", "max_latency": 1}])", "unknown key \"max_latency\""},
      {R"([{"device": "local-cpu", "max_latency_ms": "1"}])", "must be a number"},
  };
  for (const auto& bad : bad_files) {
    WriteFile(scenarios, bad.file);
    result = Client({"sweep", "--space", "fmnist_mbv2", "--scenarios", scenarios});
    EXPECT_EQ(result.exit_code, 2) << bad.file << ": " << result.err;
    EXPECT_NE(result.err.find(bad.mention), std::string::npos) << result.err;
  }
  WriteFile(scenarios, R"([{"device": "local-cpu", "max_latency_ms": 0.5},
                           {"device": "local-cpu", "max_latency_ms": 0}])");
  result = Client({"sweep", "--space", "fmnist_mbv2", "--scenarios", scenarios});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("INVALID_ARGUMENT: scenarios[1].budgets.max_latency_ms"),
            std::string::npos)
      << result.err;
  result = Client({"sweep-status", "sweep-999"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("NOT_FOUND"), std::string::npos) << result.err;
}

// The whole Fashion-MNIST path: a joint search on the measured device with the shipped
// predictor, then the best subnet exported as a true int8 TorchScript module (local-cpu runs
// W8A8 on QNNPACK) with its measured accuracy, which a fresh process loading the file
// reproduces; uniform 4 bits refused there and searched on bitfusion; and the int8 export
// refused for a device without an integer path.
TEST_F(EndToEndTest, SearchesFashionMnistAndDeploysTheSubnetAsTorchScript) {
  const std::vector<std::string> search = {
      "search", "--space", "fmnist_mbv2", "--device",     "local-cpu", "--max-latency-ms",
      "0.6",    "--seed",  "1",           "--population", "20",        "--generations",
      "10",     "--wait",  "--json"};
  ProcessResult result = Client(search);
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json job = ParseJson(result);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_LE(job["latency_ms"].get<double>(), 0.6);
  EXPECT_NE(job["predictor_version"].get<std::string>().find("qa_predictor-"), std::string::npos);
  const auto expect_all_bits = [](const json& config, int expected) {
    for (const char* field :
         {"pw_w_bits_setting", "pw_a_bits_setting", "dw_w_bits_setting", "dw_a_bits_setting"}) {
      for (const json& bits : config[1][field]) EXPECT_EQ(bits, expected) << field;
    }
  };
  expect_all_bits(job["best_config"], 8);  // What local-cpu runs.

  const std::string torchscript = TempPath("fmnist_subnet.pt");
  // Every subnet of the shipped supernet measured between 0.90 and 0.92 at its bit policy, and
  // int8 execution moves it by 0.2 points at most (bench/RESULTS.md).
  ExpectDeploysAReproducibleInt8Module(job["job_id"].get<std::string>(), torchscript, 0.88, 0.93);
  EXPECT_GT(ReadFile(torchscript).size(), 10000u);
  ProcessResult text = Client({"config", job["job_id"], "--torchscript", torchscript, "--int8"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("torch.backends.quantized.engine = \"qnnpack\""), std::string::npos)
      << text.out;

  // Uniform 4 bits do not run on local-cpu; on bitfusion they are searched.
  std::vector<std::string> uniform = search;
  uniform.insert(uniform.end() - 2, {"--uniform-bits", "4"});
  result = Client(uniform);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("INVALID_ARGUMENT: uniform_bits: 4 is not a choice"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("local-cpu (table v1) runs W8A8 or float"), std::string::npos)
      << result.err;
  uniform[4] = "bitfusion";
  uniform[6] = "1.0";
  result = Client(uniform);
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json four = ParseJson(result);
  EXPECT_EQ(four["uniform_bits"], 4);
  expect_all_bits(four["best_config"], 4);
  // Its deployable module is fake-quantized (bitfusion has no integer path in LibTorch); an
  // int8 one is refused saying what the device runs.
  ProcessResult refused =
      Client({"config", four["job_id"], "--torchscript", TempPath("four.pt"), "--int8"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("FAILED_PRECONDITION: int8: device bitfusion (table v1) has no "
                             "integer path in LibTorch: it runs W4A4"),
            std::string::npos)
      << refused.err;
  ProcessResult fake =
      Client({"config", four["job_id"], "--torchscript", TempPath("four.pt"), "--json"});
  ASSERT_EQ(fake.exit_code, 0) << fake.err;
  EXPECT_EQ(ParseJson(fake)["torchscript_precision"], "fake-quant");
  ProcessResult usage = Client({"config", four["job_id"], "--int8"});
  EXPECT_EQ(usage.exit_code, 2) << usage.err;

  // Bits searched alone on the mixed search's architecture stay at W8A8 on local-cpu.
  const std::string architecture = TempPath("fmnist_architecture.json");
  WriteFile(architecture, job["best_config"].dump());
  std::vector<std::string> fixed = search;
  fixed.insert(fixed.end() - 2, {"--fixed-architecture", architecture});
  result = Client(fixed);
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json allocated = ParseJson(result);
  EXPECT_EQ(allocated["fixed_architecture"], job["best_config"]);
  EXPECT_EQ(allocated["best_config"][0], job["best_config"][0]);
  EXPECT_LE(allocated["latency_ms"].get<double>(), 0.6);
  expect_all_bits(allocated["best_config"], 8);
}

// The int8-or-float space on local-cpu: a layer's int8 and float settings are priced by their
// own entries, a layer at a mixed pair (W8A32) is refused naming it, a search keeps every layer
// at W8A8 or W32A32, and its best deploys as one module of int8 and float ops whose served
// accuracy a fresh process reproduces.
TEST_F(EndToEndTest, SearchesIntOrFloatLayersOnLocalCpuAndDeploysTheMixedModule) {
  // Every layer's weights and activations at `bits[i]`.
  const auto policy = [](const std::vector<int>& bits) {
    json fields;
    for (const char* field :
         {"pw_w_bits_setting", "pw_a_bits_setting", "dw_w_bits_setting", "dw_a_bits_setting"}) {
      fields[field] = bits;
    }
    return fields;
  };
  const auto uniform = [&](int bits) { return policy(std::vector<int>(12, bits)); };
  // The first stage with 7x7 depthwise convs, the others with 3x3 ones.
  std::vector<int> kernels(12, 3);
  std::fill(kernels.begin(), kernels.begin() + 4, 7);
  const json architecture = {
      {"wid", nullptr}, {"ks", kernels}, {"e", std::vector<double>(12, 6.0)}, {"d", {4, 4, 4}}};
  std::vector<int> first_stage_float(12, 8);
  std::fill(first_stage_float.begin(), first_stage_float.begin() + 4, 32);
  const std::string configs = TempPath("int8float_configs.json");
  WriteFile(configs, json::array({json::array({architecture, uniform(8)}),
                                  json::array({architecture, uniform(32)}),
                                  json::array({architecture, policy(first_stage_float)})})
                         .dump());
  ProcessResult result = Client({"evaluate", "--space", "fmnist_int8float", "--device", "local-cpu",
                                 "--configs", configs, "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json priced = ParseJson(result)["results"];
  ASSERT_EQ(priced.size(), 3u);
  // Three prices from three sets of entries: on this table (QNNPACK) a 7x7 depthwise conv runs
  // several times faster in float and a 3x3 one faster in int8, so the stage of 7x7 layers in
  // float and the rest in int8 is the cheapest of the three, although it pays the changes of
  // precision where the stages meet (the 3.4 / 0.95 / 0.64 ms of this table).
  const double all_int8 = priced[0]["latency_ms"], all_float = priced[1]["latency_ms"];
  const double mixed = priced[2]["latency_ms"];
  EXPECT_LT(mixed, all_int8 / 2);
  EXPECT_LT(mixed, all_float * 0.8);

  json broken = json::array({architecture, uniform(8)});
  broken[1]["dw_a_bits_setting"][0] = 32;
  const std::string broken_file = TempPath("int8float_w8a32.json");
  WriteFile(broken_file, broken.dump());
  result = Client({"evaluate", "--space", "fmnist_int8float", "--device", "local-cpu", "--config",
                   broken_file});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("INVALID_ARGUMENT: configs_json[0]: layer 0 dw runs at W8A32, which "
                            "local-cpu (table v1) does not execute"),
            std::string::npos)
      << result.err;

  result = Client({"search", "--space", "fmnist_int8float", "--device", "local-cpu",
                   "--max-latency-ms", "0.6", "--seed", "2", "--population", "20", "--generations",
                   "8", "--wait", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json job = ParseJson(result);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_LE(job["latency_ms"].get<double>(), 0.6);
  const json& best = job["best_config"][1];
  for (const auto& [weights, activations] :
       {std::pair<const char*, const char*>{"pw_w_bits_setting", "pw_a_bits_setting"},
        {"dw_w_bits_setting", "dw_a_bits_setting"}}) {
    EXPECT_EQ(best[weights], best[activations]) << weights;
    for (const json& bits : best[weights]) EXPECT_TRUE(bits == 8 || bits == 32) << bits;
  }

  ExpectDeploysAReproducibleInt8Module(job["job_id"].get<std::string>(),
                                       TempPath("int8float_subnet.pt"), 0.88, 0.94);
}

// A search that verifies its finalists on the supernet: the client shows the measured best
// beside the predicted one, `apq config` deploys the measured best, and the measurements land
// in a dataset for the next predictor.
TEST_F(EndToEndTest, AVerifiedSearchDeploysTheMeasuredBestAndFeedsADataset) {
  ProcessResult result =
      Client({"search", "--space", "fmnist_mbv2", "--device", "local-cpu", "--seed", "2",
              "--population", "12", "--generations", "2", "--verify-top-k", "3", "--verify-images",
              "500", "--verify-dataset", "finalists", "--wait", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  const json job = ParseJson(result);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_EQ(job["stage"], "verification");
  EXPECT_EQ(job["verification"], json({{"top_k", 3}, {"finalists", 3}, {"measured", 3}}));
  ASSERT_TRUE(job.contains("measured_accuracy")) << job;
  EXPECT_EQ(job["measured_split"], "validation");
  EXPECT_TRUE(job.contains("accuracy")) << "the predicted accuracy beside the measured one";
  ASSERT_TRUE(job.contains("predicted_best"));
  EXPECT_TRUE(job["predicted_best"].contains("measured_accuracy")) << "a finalist too";
  EXPECT_LE(job["predicted_best"]["measured_accuracy"].get<double>(),
            job["measured_accuracy"].get<double>());

  ProcessResult config = Client({"config", job["job_id"], "--json"});
  ASSERT_EQ(config.exit_code, 0) << config.err;
  const json deployed = ParseJson(config);
  EXPECT_EQ(deployed["config"], job["best_config"]);
  EXPECT_EQ(deployed["metrics"]["measured_accuracy"], job["measured_accuracy"]);

  ProcessResult candidates =
      Client({"candidates", job["job_id"], "--feasible", "--sort", "accuracy", "--json"});
  ASSERT_EQ(candidates.exit_code, 0) << candidates.err;
  int measured = 0;
  const json page = ParseJson(candidates);
  for (const json& candidate : page["candidates"]) {
    if (!candidate.contains("measured_accuracy")) continue;
    ++measured;
    EXPECT_LE(candidate["measured_accuracy"].get<double>(), job["measured_accuracy"].get<double>());
  }
  EXPECT_EQ(measured, 3) << candidates.out;

  ProcessResult datasets = Client({"datasets", "--space", "fmnist_mbv2", "--json"});
  ASSERT_EQ(datasets.exit_code, 0) << datasets.err;
  bool found = false;
  for (const json& dataset : ParseJson(datasets)) {
    if (dataset["name"] != "finalists") continue;
    found = true;
    EXPECT_EQ(dataset["quantized_records"], 3);
    EXPECT_EQ(dataset["split"], "validation");
  }
  EXPECT_TRUE(found) << datasets.out;

  ProcessResult text = Client({"watch", job["job_id"]});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("verification: 3/3 finalists measured"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("measured accuracy"), std::string::npos) << text.out;
}

TEST_F(EndToEndTest, BadDatasetUploadsAreRefusedNamingTheRecordAndStoreNothing) {
  // A valid record of the space, from the shipped measurements.
  absl::StatusOr<std::vector<oface::MeasurementRecord>> shipped =
      oface::ReadMeasurementCsv("data/fmnist_mbv2/measurements.csv");
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  auto records = [&](int count) {
    json list = json::array();
    for (int i = 0; i < count; ++i) {
      list.push_back({{"config", json::parse((*shipped)[i].config_json)},
                      {"accuracy", (*shipped)[i].accuracy},
                      {"method", (*shipped)[i].method}});
    }
    return list;
  };
  struct Case {
    std::string name;
    json records;
    std::string dataset_name = "mine";
    std::string space = "fmnist_mbv2";
    std::string code = "INVALID_ARGUMENT";
    std::string mention;
  };
  std::vector<Case> cases;
  cases.push_back({"empty", json::array(), "mine", "fmnist_mbv2", "INVALID_ARGUMENT",
                   "records: the dataset is empty"});
  cases.push_back(
      {"too few", records(5), "mine", "fmnist_mbv2", "INVALID_ARGUMENT", "too few to split"});
  json outside = records(10);
  outside[3]["config"][0]["ks"][0] = 9;
  cases.push_back({"outside the space", outside, "mine", "fmnist_mbv2", "INVALID_ARGUMENT",
                   "records[3]: config_json"});
  json accuracy = records(10);
  accuracy[6]["accuracy"] = 91.2;  // A percentage, not a fraction.
  cases.push_back({"accuracy", accuracy, "mine", "fmnist_mbv2", "INVALID_ARGUMENT",
                   "records[6]: accuracy 91.2 is not in [0, 1]"});
  json repeated = records(10);
  repeated[9] = repeated[2];
  cases.push_back({"repeat", repeated, "mine", "fmnist_mbv2", "INVALID_ARGUMENT",
                   "records[9]: repeats records[2]"});
  json negative_seconds = records(10);
  negative_seconds[4]["seconds"] = -1;
  cases.push_back({"seconds", negative_seconds, "mine", "fmnist_mbv2", "INVALID_ARGUMENT",
                   "records[4]: seconds"});
  json unknown_split = records(10);
  for (json& record : unknown_split) record["split"] = "validation";
  unknown_split[2]["split"] = "dev";
  cases.push_back({"unknown split", unknown_split, "mine", "fmnist_mbv2", "INVALID_ARGUMENT",
                   "records[2].split: \"dev\""});
  json mixed = records(10);
  for (json& record : mixed) record["split"] = "validation";
  mixed[7]["split"] = "test";
  cases.push_back({"mixed splits", mixed, "mine", "fmnist_mbv2", "FAILED_PRECONDITION",
                   "records[7].split: measured on \"test\""});
  cases.push_back({"bad name", records(10), "Mine!", "fmnist_mbv2", "INVALID_ARGUMENT", "name"});
  cases.push_back({"unknown space", records(10), "mine", "mnist", "NOT_FOUND", "mnist"});
  cases.push_back({"taken", records(10), "fmnist_mbv2-supernet-v1", "fmnist_mbv2", "ALREADY_EXISTS",
                   "fmnist_mbv2-supernet-v1"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = TempPath("records.json");
    WriteFile(path, c.records.dump());
    ProcessResult result =
        Client({"upload-dataset", "--name", c.dataset_name, "--space", c.space, path});
    EXPECT_EQ(result.exit_code, 1) << result.err;
    EXPECT_NE(result.err.find(c.code + ":"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find(c.mention), std::string::npos) << result.err;
  }
  ProcessResult datasets = Client({"datasets", "--json"});
  ASSERT_EQ(datasets.exit_code, 0) << datasets.err;
  const json listed = ParseJson(datasets);
  // The three shipped datasets only, newest first.
  ASSERT_EQ(listed.size(), 3u) << "a refused upload must not store a dataset";
  EXPECT_EQ(listed[0]["name"], "fmnist_int8float-supernet-v1");
  EXPECT_EQ(listed[0]["fp32_records"], 1000);
  EXPECT_EQ(listed[0]["quantized_records"], 420);  // 360 paired, 60 uniform policies.
  EXPECT_EQ(listed[0]["split"], "validation");
  EXPECT_EQ(listed[1]["name"], "fmnist_lowbit-supernet-v1");
  EXPECT_EQ(listed[1]["fp32_records"], 1000);
  EXPECT_EQ(listed[1]["quantized_records"], 1050);  // 600 random, 450 (near-)uniform policies.
  EXPECT_EQ(listed[1]["split"], "validation");
  EXPECT_EQ(listed[2]["name"], "fmnist_mbv2-supernet-v1");
  EXPECT_EQ(listed[2]["fp32_records"], 1000);
  EXPECT_EQ(listed[2]["quantized_records"], 600);
  EXPECT_EQ(listed[2]["split"], "validation");

  // The same records written as the measurement CSV upload as a dataset.
  const std::string csv = TempPath("records.csv");
  std::string content = absl::StrCat(oface::kMeasurementCsvHeader, "\n");
  for (int i = 0; i < 12; ++i) absl::StrAppend(&content, MeasurementToCsvLine((*shipped)[i]), "\n");
  content.pop_back();  // A file written by hand may lack its last newline: no record is lost.
  WriteFile(csv, content);
  ProcessResult uploaded =
      Client({"upload-dataset", "--name", "mine", "--space", "fmnist_mbv2", csv, "--json"});
  ASSERT_EQ(uploaded.exit_code, 0) << uploaded.err;
  const json dataset = ParseJson(uploaded);
  EXPECT_EQ(dataset["fp32_records"].get<int>() + dataset["quantized_records"].get<int>(), 12);
  EXPECT_EQ(dataset["split"], "validation") << "the CSV's split column travels with the records";
}

TEST_F(EndToEndTest, TrainsAPredictorThatSearchesThenUseAndKeepsItWhenTrainingDiverges) {
  ProcessResult trained =
      Client({"train", "--space", "fmnist_mbv2", "--dataset", "fmnist_mbv2-supernet-v1", "--kind",
              "xgboost", "--seed", "3", "--make-default", "--wait", "--json"});
  ASSERT_EQ(trained.exit_code, 0) << trained.out << trained.err;
  const json job = ParseJson(trained);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_EQ(job["stage"], "xgboost");
  const std::string version = job["predictor_version"];
  // 120 of the 600 quantized records are held out (whole architectures). On them the
  // predictor must rank better than chance (bench/RESULTS.md, the grouped transfer table).
  EXPECT_EQ(job["metrics"]["heldout_records"], 120);
  EXPECT_GT(job["metrics"]["kendall_tau"].get<double>(), 0.2);
  EXPECT_LT(job["metrics"]["rmse"].get<double>(), 0.01);

  auto default_version = [&]() -> std::string {
    ProcessResult listed = Client({"predictors", "--space", "fmnist_mbv2", "--json"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    for (const json& predictor : ParseJson(listed)) {
      if (predictor["is_default"].get<bool>()) return predictor["version"];
    }
    return "";
  };
  EXPECT_EQ(default_version(), version);
  ProcessResult search = Client({"search", "--space", "fmnist_mbv2", "--device", "local-cpu",
                                 "--generations", "3", "--population", "10", "--wait", "--json"});
  ASSERT_EQ(search.exit_code, 0) << search.err;
  EXPECT_EQ(ParseJson(search)["predictor_version"], version);

  // Divergence fails the job with its reason and leaves the default in place.
  ProcessResult diverged =
      Client({"train", "--space", "fmnist_mbv2", "--dataset", "fmnist_mbv2-supernet-v1", "--kind",
              "scratch", "--learning-rate", "1e30", "--make-default", "--wait", "--json"});
  EXPECT_EQ(diverged.exit_code, 1);
  const json failed = ParseJson(diverged);
  EXPECT_EQ(failed["state"], "FAILED");
  EXPECT_NE(failed["error"].get<std::string>().find("diverged"), std::string::npos) << failed;
  EXPECT_EQ(default_version(), version);

  // Bad training requests are refused before a job exists.
  struct Case {
    std::vector<std::string> extra;
    std::string code;
    std::string mention;
  };
  const std::vector<Case> cases = {
      {{"--dataset", "nope"}, "NOT_FOUND", "nope"},
      {{"--dataset", "fmnist_mbv2-supernet-v1", "--holdout", "0.9"},
       "INVALID_ARGUMENT",
       "holdout_fraction"},
      {{"--dataset", "fmnist_mbv2-supernet-v1", "--max-epochs", "0"},
       "INVALID_ARGUMENT",
       "max_epochs"},
      {{"--dataset", "fmnist_mbv2-supernet-v1", "--kind", "xgboost", "--learning-rate", "2"},
       "INVALID_ARGUMENT",
       "learning_rate"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"train", "--space", "fmnist_mbv2"};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    ProcessResult result = Client(args);
    EXPECT_EQ(result.exit_code, 1) << result.err;
    EXPECT_NE(result.err.find(c.code + ":"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find(c.mention), std::string::npos) << result.err;
  }
  ProcessResult jobs = Client({"training", "--json"});
  ASSERT_EQ(jobs.exit_code, 0);
  EXPECT_EQ(ParseJson(jobs).size(), 2u);

  // Back to the shipped predictor.
  ProcessResult reset =
      Client({"set-default-predictor", "--space", "fmnist_mbv2", "qa_predictor-eafcddfd8987a259"});
  ASSERT_EQ(reset.exit_code, 0) << reset.err;
  EXPECT_EQ(default_version(), "qa_predictor-eafcddfd8987a259");
  ProcessResult unknown =
      Client({"set-default-predictor", "--space", "fmnist_mbv2", "fmnist_mbv2-nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("NOT_FOUND:"), std::string::npos) << unknown.err;
}

TEST_F(EndToEndTest, TrainingJobsAreCancelledAndSurviveACrash) {
  const std::vector<std::string> train = {
      "train", "--space", "fmnist_mbv2", "--dataset", "fmnist_mbv2-supernet-v1", "--json"};
  auto submit = [&](const std::vector<std::string>& extra) -> std::string {
    std::vector<std::string> args = train;
    args.insert(args.end(), extra.begin(), extra.end());
    ProcessResult submitted = Client(args);
    EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
    return ParseJson(submitted)["job_id"];
  };
  auto training = [&](const std::string& job_id) {
    ProcessResult shown = Client({"training", job_id, "--json"});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    return ParseJson(shown);
  };
  // Polls until the job has reported an epoch (it is then running).
  auto wait_running = [&](const std::string& job_id) {
    for (int i = 0; i < 600; ++i) {
      const json job = training(job_id);
      if (job["state"] == "RUNNING" && job["epoch"].get<int>() > 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };

  // One worker: the second job waits in the queue and is cancelled at once.
  const std::string first = submit({"--kind", "ensemble", "--seed", "1"});
  const std::string queued = submit({"--kind", "xgboost"});
  ProcessResult cancelled = Client({"cancel-training", queued});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  EXPECT_EQ(training(queued)["state"], "CANCELLED");

  // A crash while the first one runs: the next server runs it again from the start.
  ASSERT_TRUE(wait_running(first));
  server_->Stop(SIGKILL);
  server_ = std::make_unique<ServerProcess>(database_);
  ProcessResult finished = Client({"training", first, "--wait", "--json"});
  ASSERT_EQ(finished.exit_code, 0) << finished.out << finished.err;
  const json recovered = ParseJson(finished);
  EXPECT_EQ(recovered["state"], "SUCCEEDED");
  // Training is deterministic per seed: the same request uninterrupted gives the same version.
  ProcessResult again =
      Client({"train", "--space", "fmnist_mbv2", "--dataset", "fmnist_mbv2-supernet-v1", "--kind",
              "ensemble", "--seed", "1", "--wait", "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(ParseJson(again)["predictor_version"], recovered["predictor_version"]);

  // A running job stops after its current epoch and stores no predictor.
  const std::string running = submit({"--kind", "ensemble", "--seed", "2"});
  ASSERT_TRUE(wait_running(running));
  ASSERT_EQ(Client({"cancel-training", running}).exit_code, 0);
  ProcessResult stopped = Client({"training", running, "--wait", "--json"});
  EXPECT_EQ(stopped.exit_code, 1);
  EXPECT_EQ(ParseJson(stopped)["state"], "CANCELLED");
  ProcessResult listed = Client({"predictors", "--space", "fmnist_mbv2", "--json"});
  ASSERT_EQ(listed.exit_code, 0);
  EXPECT_EQ(ParseJson(listed).size(), 2u) << "the shipped one and the recovered job's";
  ProcessResult ended = Client({"cancel-training", running});
  EXPECT_EQ(ended.exit_code, 1);
  EXPECT_NE(ended.err.find("FAILED_PRECONDITION:"), std::string::npos) << ended.err;
}

TEST_F(EndToEndTest, EvaluateReproducesTheTutorialGoldenValues) {
  ProcessResult result = Client({"evaluate", "--space", "ofa_mbv3", "--device", "note10",
                                 "--config", TutorialConfigFile(), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  json metrics = ParseJson(result);
  EXPECT_NEAR(metrics["accuracy"].get<double>(), 0.8171285, 1e-5);
  EXPECT_NEAR(metrics["latency_ms"].get<double>(), 24.7302, 1e-3);
}

TEST_F(EndToEndTest, SearchFindsAFeasibleConfigurationAndCountsEveryCandidate) {
  ProcessResult result =
      Client({"search", "--space", "ofa_mbv3", "--device", "note10", "--max-latency-ms", "25",
              "--seed", "1", "--generations", "40", "--wait", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  json job = ParseJson(result);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_LE(job["latency_ms"].get<double>(), 25.0);
  EXPECT_GT(job["accuracy"].get<double>(), 0.80);
  EXPECT_EQ(job["candidates_evaluated"], 41 * 100);
  EXPECT_EQ(job["generations_done"], 40);
  for (const char* key : {"ks", "e", "d", "r"}) EXPECT_TRUE(job["best_config"].contains(key));

  // The deployable config is the best candidate, and every network met is stored once.
  ProcessResult config = Client({"config", job["job_id"], "--json"});
  ASSERT_EQ(config.exit_code, 0) << config.err;
  EXPECT_EQ(ParseJson(config)["config"], job["best_config"]);
  // ofa_mbv3's supernet is not part of the product: no TorchScript, and no file written.
  const std::string torchscript = TempPath("ofa_subnet.pt");
  config = Client({"config", job["job_id"], "--torchscript", torchscript});
  EXPECT_EQ(config.exit_code, 1);
  EXPECT_NE(config.err.find("FAILED_PRECONDITION:"), std::string::npos) << config.err;
  EXPECT_NE(config.err.find("no trained supernet"), std::string::npos) << config.err;
  EXPECT_FALSE(std::ifstream(torchscript).good());

  ProcessResult best = Client(
      {"candidates", job["job_id"], "--sort", "accuracy", "--feasible", "--limit", "5", "--json"});
  ASSERT_EQ(best.exit_code, 0) << best.err;
  json page = ParseJson(best);
  const std::vector<std::string> feasible = Rows(job["job_id"], "--feasible");
  EXPECT_EQ(page["total"], feasible.size());
  EXPECT_LT(feasible.size(), 41u * 100) << "the population converges: networks repeat";
  EXPECT_EQ(TimesSeen(feasible), 41 * 100) << "each network counts every time it was met";
  ASSERT_EQ(page["candidates"].size(), 5u);
  EXPECT_EQ(page["candidates"][0]["accuracy"], job["accuracy"]);
  for (size_t i = 1; i < 5; ++i) {
    EXPECT_GE(page["candidates"][i - 1]["accuracy"].get<double>(),
              page["candidates"][i]["accuracy"].get<double>());
  }
  // Draws over the budget are counted, not stored.
  EXPECT_GT(job["rejected_draws"].get<int64_t>(), 0);
  EXPECT_TRUE(Rows(job["job_id"], "--infeasible").empty());

  // The same seed gives the same answer, and keeping every draw stores the rejected ones
  // too (counted the same) without changing anything else.
  ProcessResult again =
      Client({"search", "--space", "ofa_mbv3", "--device", "note10", "--max-latency-ms", "25",
              "--seed", "1", "--generations", "40", "--keep-all-draws", "--wait", "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json kept = ParseJson(again);
  EXPECT_EQ(kept["best_config"], job["best_config"]);
  EXPECT_EQ(kept["rejected_draws"], job["rejected_draws"]);
  EXPECT_EQ(Rows(kept["job_id"], "--feasible"), feasible);
  const std::vector<std::string> rejected = Rows(kept["job_id"], "--infeasible");
  EXPECT_EQ(TimesSeen(rejected), job["rejected_draws"].get<int64_t>());
  ProcessResult rejected_page =
      Client({"candidates", kept["job_id"], "--infeasible", "--limit", "20", "--json"});
  ASSERT_EQ(rejected_page.exit_code, 0) << rejected_page.err;
  // The parsed page outlives the loop (a temporary's element would dangle in the range-for).
  const json rejected_rows = ParseJson(rejected_page);
  for (const json& candidate : rejected_rows["candidates"]) {
    EXPECT_GT(candidate["latency_ms"].get<double>(), 25.0);
    EXPECT_FALSE(candidate.contains("accuracy"));
  }
}

// apq ci: a profile runs a search once, the same profile again reuses it, and each verdict
// has its exit code (0 found, 4 below min_accuracy, 3 nothing feasible, 2 a bad profile).
TEST_F(EndToEndTest, CiRunsOnceThenReusesAndExitsByVerdict) {
  const std::string out = TempPath("ci_out");
  const auto profile = [&](const std::string& name, const std::string& budget,
                           const std::string& extra) {
    std::string path = TempPath(name);
    WriteFile(path, absl::StrCat("space: fmnist_lowbit\ndevice: bitfusion\nbudgets:\n",
                                 "  max_latency_ms: ", budget, "\nengine_options:\n",
                                 "  population: 20\n  generations: 3\nseed: 4\n", extra,
                                 "outputs:\n  config: ", out, "/config.json\n  torchscript: ", out,
                                 "/model.pt\n  summary: ", out, "/summary.json\n"));
    return path;
  };
  const std::string found = profile("found.yaml", "0.5", "min_accuracy: 0.5\n");
  ProcessResult first = Client({"ci", "--profile", found});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const json summary = ParseJson(first);
  EXPECT_FALSE(summary["reused"].get<bool>());
  EXPECT_EQ(summary["verdict"], "found");
  EXPECT_EQ(summary["accuracy_kind"], "predicted");
  EXPECT_LE(summary["metrics"]["latency_ms"].get<double>(), 0.5);
  EXPECT_EQ(json::parse(ReadFile(out + "/summary.json")), summary);
  EXPECT_EQ(json::parse(ReadFile(out + "/config.json")), JobJson(summary["job_id"])["best_config"]);
  EXPECT_GT(ReadFile(out + "/model.pt").size(), 1000u);  // fmnist_lowbit has a supernet.
  EXPECT_GT(summary["torchscript_test_accuracy"].get<double>(), 0.5);
  EXPECT_EQ(JobJson(summary["job_id"])["label"], "ci-" + summary["request_key"].get<std::string>());

  ProcessResult again = Client({"ci", "--profile", found});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(ParseJson(again)["reused"].get<bool>());
  EXPECT_EQ(ParseJson(again)["job_id"], summary["job_id"]);
  ProcessResult forced = Client({"ci", "--profile", found, "--no-reuse"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(ParseJson(forced)["job_id"], summary["job_id"]);

  // The same request with a stricter minimum: the finished job is reused and judged.
  ProcessResult strict =
      Client({"ci", "--profile", profile("strict.yaml", "0.5", "min_accuracy: 0.999\n")});
  EXPECT_EQ(strict.exit_code, 4) << strict.err;
  EXPECT_EQ(ParseJson(strict)["verdict"], "below_min_accuracy");
  EXPECT_TRUE(ParseJson(strict)["reused"].get<bool>());

  ProcessResult impossible = Client({"ci", "--profile", profile("tiny.yaml", "0.0001", "")});
  EXPECT_EQ(impossible.exit_code, 3) << impossible.err;
  EXPECT_EQ(ParseJson(impossible)["verdict"], "nothing_feasible");

  const std::string bad = TempPath("bad.yaml");
  WriteFile(bad, "space: fmnist_lowbit\ndevice: bitfusion\ncolour: blue\n");
  ProcessResult refused = Client({"ci", "--profile", bad});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("line 3: unknown key 'colour'"), std::string::npos) << refused.err;
  // A profile the server refuses (an engine it lacks) is any other error.
  ProcessResult unknown_engine =
      Client({"ci", "--profile", profile("engine.yaml", "0.5", "engine: annealing\n")});
  EXPECT_EQ(unknown_engine.exit_code, 1);
}

// A hardware team's round trip: the template of a space, unfilled, is refused by the upload;
// filled in, the new device's table covers the space and prices a search.
TEST_F(EndToEndTest, ATableTemplateFilledInCoversItsSpace) {
  const std::string folder = TempPath("template");
  ProcessResult made = Client({"table-template", "--space", "fmnist_mbv2", "--format", "conv-json",
                               "--out", folder, "--json"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const json summary = ParseJson(made);
  ASSERT_EQ(summary["files"].size(), 1u);
  EXPECT_TRUE(summary["unrepresentable_keys"].empty());
  const std::string path = summary["files"][0].get<std::string>();
  const std::string unfilled = ReadFile(path);
  EXPECT_EQ(json::parse(unfilled).size(), summary["entries"].get<size_t>());

  ProcessResult refused =
      Client({"upload-table", "--device", "team-chip", "--format", "conv-json", path});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("INVALID_ARGUMENT"), std::string::npos) << refused.err;

  json filled = json::parse(unfilled);
  double latency = 0.001;
  for (auto& entry : filled.items()) entry.value()["latency"] = (latency += 0.001);
  WriteFile(path, filled.dump());
  ProcessResult uploaded =
      Client({"upload-table", "--device", "team-chip", "--format", "conv-json", path, "--json"});
  ASSERT_EQ(uploaded.exit_code, 0) << uploaded.err;
  EXPECT_NE(ParseJson(uploaded)["covered_spaces"].dump().find("\"fmnist_mbv2\""), std::string::npos)
      << uploaded.out;
  ProcessResult searched =
      Client({"search", "--space", "fmnist_mbv2", "--device", "team-chip", "--max-latency-ms",
              "1000", "--generations", "2", "--wait", "--json"});
  EXPECT_EQ(searched.exit_code, 0) << searched.err;

  ProcessResult wrong =
      Client({"table-template", "--space", "ofa_mbv3", "--format", "conv-json", "--out", folder});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("format"), std::string::npos) << wrong.err;
}

TEST_F(EndToEndTest, AParetoSearchStoresAndListsItsFront) {
  ProcessResult result =
      Client({"search", "--space", "ofa_mbv3", "--device", "note10", "--max-latency-ms", "25",
              "--objective", "pareto", "--pareto-cost", "latency", "--seed", "3", "--generations",
              "30", "--wait", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json job = ParseJson(result);
  const int front_size = job["pareto_front_size"].get<int>();
  EXPECT_GT(front_size, 3);

  ProcessResult listed = Client(
      {"candidates", job["job_id"], "--front", "--sort", "latency", "--limit", "1000", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  const json front = ParseJson(listed);
  EXPECT_EQ(front["total"], front_size);
  ASSERT_EQ(front["candidates"].size(), static_cast<size_t>(front_size));
  // By ascending latency, accuracy strictly rises: no member dominates another.
  for (size_t i = 1; i < front["candidates"].size(); ++i) {
    const json& previous = front["candidates"][i - 1];
    const json& current = front["candidates"][i];
    EXPECT_TRUE(current["on_pareto_front"].get<bool>());
    EXPECT_GE(current["latency_ms"].get<double>(), previous["latency_ms"].get<double>());
    EXPECT_GT(current["accuracy"].get<double>(), previous["accuracy"].get<double>());
    EXPECT_LE(current["latency_ms"].get<double>(), 25.0);
  }
  // Its most accurate member is the job's best.
  EXPECT_EQ(front["candidates"].back()["accuracy"], job["accuracy"]);

  // No feasible candidate beats the front: the cheapest one at least as accurate as any
  // candidate is on it.
  ProcessResult all = Client({"candidates", job["job_id"], "--feasible", "--sort", "accuracy",
                              "--limit", "10000", "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const json all_page = ParseJson(all);
  for (const json& candidate : all_page["candidates"]) {
    bool covered = false;
    for (const json& member : front["candidates"]) {
      if (member["latency_ms"].get<double>() <= candidate["latency_ms"].get<double>() &&
          member["accuracy"].get<double>() >= candidate["accuracy"].get<double>()) {
        covered = true;
        break;
      }
    }
    EXPECT_TRUE(covered) << candidate.dump();
  }

  ProcessResult config = Client({"config", job["job_id"], "--json"});
  ASSERT_EQ(config.exit_code, 0) << config.err;
  EXPECT_EQ(ParseJson(config)["pareto_front"].size(), static_cast<size_t>(front_size));

  // The same as a picture: a point per feasible candidate, the front through its members,
  // the latency budget, the best.
  const std::string svg_path = TempPath("front.svg");
  ProcessResult plotted = Client({"plot", job["job_id"], "--out", svg_path});
  ASSERT_EQ(plotted.exit_code, 0) << plotted.err;
  const std::string svg = ReadFile(svg_path);
  const auto count = [&svg](const std::string& part) {
    size_t n = 0;
    for (size_t at = svg.find(part); at != std::string::npos; at = svg.find(part, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("class=\"candidate\""), ParseJson(all)["candidates"].size());
  EXPECT_EQ(count("class=\"front\""), 1u);
  EXPECT_EQ(count("class=\"budget\""), 1u);
  EXPECT_EQ(count("class=\"best\""), 1u);
  EXPECT_EQ(Client({"plot", job["job_id"]}).exit_code, 2) << "--out is required";
}

TEST_F(EndToEndTest, BadRequestsAreRefusedWithTheRightCodeAndNothingIsStored) {
  const std::string config = TutorialConfigFile();
  struct Case {
    std::vector<std::string> args;
    std::string code;
    std::string mention;
  };
  const std::vector<std::string> search = {"search", "--space", "ofa_mbv3", "--device", "note10"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = search;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  const std::string wrong_length = TempPath("wrong_length.json");
  WriteFile(wrong_length, R"({"ks":[3,3],"e":[3,3],"d":[2,2,2,2,2],"r":160})");
  const std::string unknown_key = TempPath("unknown_key.json");
  WriteFile(unknown_key, R"({"ks":[3],"e":[3],"d":[2],"r":160,"width":1})");
  const std::string not_json = TempPath("not_json.json");
  WriteFile(not_json, "{ks: [3");
  const std::vector<Case> cases = {
      {{"search", "--space", "mobilenet_v9", "--device", "note10"}, "NOT_FOUND", "space"},
      {{"search", "--space", "ofa_mbv3", "--device", "pixel99"}, "NOT_FOUND", "pixel99"},
      {with({"--max-latency-ms", "-5"}), "INVALID_ARGUMENT", "max_latency_ms"},
      {with({"--max-latency-ms", "0"}), "INVALID_ARGUMENT", "max_latency_ms"},
      {with({"--population", "0"}), "INVALID_ARGUMENT", "population_size"},
      {with({"--generations", "1000000000"}), "INVALID_ARGUMENT", "generations"},
      {with({"--parent-ratio", "1.5"}), "INVALID_ARGUMENT", "parent_ratio"},
      {with({"--max-size-mb", "2"}), "FAILED_PRECONDITION", "max_size_mb"},
      {with({"--pareto-cost", "energy"}), "FAILED_PRECONDITION", "pareto_cost"},
      {with({"--max-energy-mj", "3"}), "FAILED_PRECONDITION", "energy"},
      {with({"--uniform-bits", "8"}), "INVALID_ARGUMENT", "uniform_bits"},
      {with({"--fixed-architecture", config}), "INVALID_ARGUMENT",
       "fixed_architecture: space ofa_mbv3 has no bitwidths"},
      {{"search", "--space", "fmnist_mbv2", "--device", "local-cpu", "--max-latency-ms", "1",
        "--fixed-architecture", wrong_length},
       "INVALID_ARGUMENT",
       "fixed_architecture: "},
      {{"search", "--space", "apq_mbv2", "--device", "bitfusion", "--uniform-bits", "5"},
       "INVALID_ARGUMENT",
       "uniform_bits: 5 is not a choice"},
      {{"search", "--space", "ofa_mbv3", "--device", "Bad Device!"}, "INVALID_ARGUMENT", "device"},
      {{"evaluate", "--space", "ofa_mbv3", "--device", "note10", "--config", wrong_length},
       "INVALID_ARGUMENT",
       "expected 20 entries, got 2"},
      {{"evaluate", "--space", "ofa_mbv3", "--config", unknown_key}, "INVALID_ARGUMENT", "width"},
      {{"evaluate", "--space", "ofa_mbv3", "--config", not_json}, "INVALID_ARGUMENT", ""},
      {{"evaluate", "--space", "nope", "--config", config}, "NOT_FOUND", "nope"},
      {{"config", "job-999"}, "NOT_FOUND", "job-999"},
      {{"watch", "job-999"}, "NOT_FOUND", "job-999"},
  };
  for (const Case& c : cases) {
    ProcessResult result = Client(c.args);
    EXPECT_EQ(result.exit_code, 1) << c.args[1] << " " << result.err;
    EXPECT_NE(result.err.find(c.code + ":"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find(c.mention), std::string::npos) << result.err;
  }
  ProcessResult jobs = Client({"jobs", "--json"});
  ASSERT_EQ(jobs.exit_code, 0);
  EXPECT_TRUE(ParseJson(jobs).empty()) << "a refused request must not store a job";

  // The client itself refuses what is not a number.
  ProcessResult nan_budget = Client(with({"--max-latency-ms", "nan"}));
  EXPECT_EQ(nan_budget.exit_code, 2);
  EXPECT_NE(nan_budget.err.find("--max-latency-ms"), std::string::npos);
}

TEST_F(EndToEndTest, MalformedTableUploadsAreRejectedWithFileAndLineAndStoreNothing) {
  struct Case {
    std::string content;
    std::string mention;
  };
  const std::vector<Case> cases = {
      {"Conv-input:160x160x3-output:80x80x24:\n  count: 1\n  mean: nan\n  std: 0\n", ":3"},
      {"Conv-input:160x160x3-output:80x80x24:\n  count: 1\n  mean: -0.5\n  std: 0\n", ":3"},
      {"Conv-input:160x160x3-output:80x80x24:\n  count: 1\n  mean: 0.5\n  std: 0\n"
       "Conv-input:160x160x3-output:80x80x24:\n  count: 1\n  mean: 0.5\n  std: 0\n",
       "Conv-input:160x160x3-output:80x80x24"},
      {"this is: [not, the format\n", ":1"},
  };
  for (const Case& c : cases) {
    const std::string path = TempPath("160_lookup_table.yaml");
    WriteFile(path, c.content);
    ProcessResult result =
        Client({"upload-table", "--device", "broken", "--format", "ofa-yaml", path});
    EXPECT_EQ(result.exit_code, 1) << result.err;
    EXPECT_NE(result.err.find("INVALID_ARGUMENT:"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find("160_lookup_table.yaml"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find(c.mention), std::string::npos) << result.err;
  }
  ProcessResult devices = Client({"devices", "--json"});
  ASSERT_EQ(devices.exit_code, 0);
  EXPECT_EQ(ParseJson(devices).size(), 3u) << "a rejected upload must store nothing";
}

// A BitFusion table that lacks layer shapes still prices the space: the model fitted to the
// table fills them in, and every figure that used it says so.
TEST_F(EndToEndTest, ShapesATableLacksArePricedByTheFittedModelAndFlagged) {
  json table = json::parse(ReadFile("data/apq_bitfusion/BitFusion_new.b1.dict"));
  // Every network has the first searchable layer, whose expansion reads 16 channels.
  std::vector<std::string> removed;
  for (const auto& item : table.items()) {
    if (item.key().rfind("(16, ", 0) == 0) removed.push_back(item.key());
  }
  ASSERT_FALSE(removed.empty());
  for (const std::string& key : removed) table.erase(key);
  const std::string path = TempPath("BitFusion_partial.dict");
  WriteFile(path, table.dump());
  ProcessResult upload = Client(
      {"upload-table", "--device", "bf-partial", "--format", "apq-bitfusion", path, "--json"});
  ASSERT_EQ(upload.exit_code, 0) << upload.err;

  ProcessResult device = Client({"devices", "bf-partial", "--json"});
  ASSERT_EQ(device.exit_code, 0) << device.err;
  const json version = ParseJson(device)[0]["versions"][0];
  EXPECT_TRUE(version["covered_spaces"].empty());
  EXPECT_EQ(version["modelled_spaces"],
            json({"apq_mbv2", "fmnist_mbv2", "fmnist_lowbit", "fmnist_int8float"}));

  const json golden = json::parse(ReadFile("tests/testdata/golden_apq_bitfusion.json"));
  const std::string config = TempPath("apq.json");
  WriteFile(config, golden[0]["arch_json"].dump());
  ProcessResult priced = Client(
      {"evaluate", "--space", "apq_mbv2", "--device", "bf-partial", "--config", config, "--json"});
  ASSERT_EQ(priced.exit_code, 0) << priced.err;
  const json metrics = ParseJson(priced);
  EXPECT_EQ(metrics["modelled"], json({"latency_ms", "energy_mj"}));
  // One layer of about twenty is modelled: the network's figures stay close to the table's.
  const double latency = golden[0]["latency_ms"].get<double>();
  EXPECT_NEAR(metrics["latency_ms"].get<double>(), latency, 0.1 * latency);
  EXPECT_NE(metrics["latency_ms"].get<double>(), latency);
}

TEST_F(EndToEndTest, MalformedBitFusionUploadsAreRejectedNamingTheKeyAndStoreNothing) {
  // A valid table to break: head, tail and one depthwise shape with its nine bit pairs.
  json table = {{"head", {{"latency", 0.3}, {"energy", 0.5}}},
                {"tail", {{"latency", 0.08}, {"energy", 0.15}}}};
  for (int w : {4, 6, 8}) {
    for (int a : {4, 6, 8}) {
      table[absl::StrCat("(96, 96, 56, 3, 1, 1, 96)-W", w, "A", a)] = {
          {"latency", 0.1 * w + 0.01 * a}, {"energy", 0.2 * w + 0.01 * a}};
    }
  }
  const std::string path = TempPath("BitFusion_new.b1.dict");
  WriteFile(path, table.dump());
  ProcessResult valid =
      Client({"upload-table", "--device", "bf2", "--format", "apq-bitfusion", path, "--json"});
  ASSERT_EQ(valid.exit_code, 0) << valid.err;
  EXPECT_EQ(ParseJson(valid)["entries"], 11);

  struct Case {
    std::string content;
    std::string mention;
  };
  json missing_pair = table;
  missing_pair.erase("(96, 96, 56, 3, 1, 1, 96)-W6A8");
  json negative = table;
  negative["(96, 96, 56, 3, 1, 1, 96)-W4A4"]["latency"] = -1.0;
  json bad_key = table;
  bad_key["(96, 96, 56, 3)-W4A4"] = {{"latency", 1.0}, {"energy", 1.0}};
  const std::vector<Case> cases = {
      {missing_pair.dump(), "W6A8"},
      {negative.dump(), "(96, 96, 56, 3, 1, 1, 96)-W4A4"},
      {bad_key.dump(), "(96, 96, 56, 3)-W4A4"},
      {R"({"head": {"latency": NaN, "energy": 1}})", "line 1"},
  };
  for (const Case& c : cases) {
    WriteFile(path, c.content);
    ProcessResult result =
        Client({"upload-table", "--device", "bf2", "--format", "apq-bitfusion", path});
    EXPECT_EQ(result.exit_code, 1) << result.err;
    EXPECT_NE(result.err.find("INVALID_ARGUMENT:"), std::string::npos) << result.err;
    EXPECT_NE(result.err.find(c.mention), std::string::npos) << result.err;
  }
  ProcessResult device = Client({"devices", "bf2", "--json"});
  ASSERT_EQ(device.exit_code, 0) << device.err;
  EXPECT_EQ(ParseJson(device)[0]["versions"].size(), 1u) << "a rejected upload stores nothing";
}

TEST_F(EndToEndTest, ATableThatDoesNotCoverTheSpaceIsStoredButCannotPriceIt) {
  const std::string path = TempPath("160_lookup_table.yaml");
  WriteFile(path, "Conv-input:160x160x3-output:80x80x24:\n  count: 3\n  mean: 0.5\n  std: 0.1\n");
  ProcessResult upload = Client({"upload-table", "--device", "tiny", "--format", "ofa-yaml",
                                 "--description", "one layer", path, "--json"});
  ASSERT_EQ(upload.exit_code, 0) << upload.err;
  json stored = ParseJson(upload);
  EXPECT_EQ(stored["version"], 1);
  EXPECT_TRUE(stored["covered_spaces"].empty());

  ProcessResult search =
      Client({"search", "--space", "ofa_mbv3", "--device", "tiny", "--max-latency-ms", "25"});
  EXPECT_EQ(search.exit_code, 1);
  EXPECT_NE(search.err.find("FAILED_PRECONDITION:"), std::string::npos) << search.err;
  EXPECT_NE(search.err.find("expanded_conv-input"), std::string::npos)
      << "the missing keys must be listed: " << search.err;

  // A second upload is a new version; the first stays as it was.
  ProcessResult again =
      Client({"upload-table", "--device", "tiny", "--format", "ofa-yaml", path, "--json"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(ParseJson(again)["version"], 2);
}

TEST_F(EndToEndTest, CancelStopsARunningJob) {
  ProcessResult submitted = Client({"search", "--space", "ofa_mbv3", "--device", "note10",
                                    "--max-latency-ms", "25", "--generations", "100000", "--json"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job_id = ParseJson(submitted)["job_id"];
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ProcessResult cancelled = Client({"cancel", job_id});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.err;
  ProcessResult watched = Client({"watch", job_id, "--json"});
  EXPECT_EQ(watched.exit_code, 1) << "a cancelled job is not a success";
  json job = ParseJson(watched);
  EXPECT_EQ(job["state"], "CANCELLED");
  EXPECT_LT(job["generations_done"].get<int>(), 100000);
  ProcessResult config = Client({"config", job_id});
  EXPECT_NE(config.err.find("FAILED_PRECONDITION:"), std::string::npos) << config.err;
}

// A killed server loses nothing it committed: the job resumes from its last stored group of
// generations (the steps run since are run again) and ends with the record of an
// uninterrupted run of the same seed, row for row.
TEST_F(EndToEndTest, AJobSurvivesAServerCrashAndAGracefulRestart) {
  ProcessResult submitted =
      Client({"search", "--space", "ofa_mbv3", "--device", "note10", "--max-latency-ms", "25",
              "--seed", "4", "--generations", "1500", "--json"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job_id = ParseJson(submitted)["job_id"];

  for (int signal : {SIGKILL, SIGTERM}) {
    int done_before = 0;
    for (int i = 0; i < 200 && done_before < 50; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      done_before = JobJson(job_id)["generations_done"].get<int>();
    }
    ASSERT_GE(done_before, 50);
    // ps names the server after its binary, its restart of itself notwithstanding.
    std::ifstream comm(absl::StrCat("/proc/", server_->pid(), "/comm"));
    std::string name;
    std::getline(comm, name);
    EXPECT_EQ(name, "apqd");
    const int exit_code = server_->Stop(signal);
    if (signal == SIGTERM) {
      // Graceful: calls drained, jobs stopped between steps (still running in the store),
      // the store closed, exit 0.
      EXPECT_EQ(exit_code, 0);
      EXPECT_NE(ReadFile(server_->log_path()).find("apqd: stopped"), std::string::npos);
    } else {
      EXPECT_EQ(exit_code, -SIGKILL);
    }
    server_ = std::make_unique<ServerProcess>(database_);
    json resumed = JobJson(job_id);
    EXPECT_TRUE(resumed["state"] == "RUNNING" || resumed["state"] == "SUCCEEDED") << resumed;
    EXPECT_GE(resumed["generations_done"].get<int>(), done_before - 1);
  }
  ProcessResult watched = Client({"watch", job_id, "--json"});
  ASSERT_EQ(watched.exit_code, 0) << watched.err;
  json job = ParseJson(watched);
  EXPECT_EQ(job["state"], "SUCCEEDED");
  EXPECT_EQ(job["generations_done"], 1500);
  EXPECT_EQ(job["candidates_evaluated"], 1501 * 100);
  const std::vector<std::string> rows = Rows(job_id);
  EXPECT_EQ(TimesSeen(rows), 1501 * 100);

  // An uninterrupted run with the same seed stores the same record.
  ProcessResult fresh =
      Client({"search", "--space", "ofa_mbv3", "--device", "note10", "--max-latency-ms", "25",
              "--seed", "4", "--generations", "1500", "--wait", "--json"});
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  const json uninterrupted = ParseJson(fresh);
  EXPECT_EQ(uninterrupted["best_config"], job["best_config"]);
  EXPECT_EQ(uninterrupted["rejected_draws"], job["rejected_draws"]);
  EXPECT_EQ(uninterrupted["pareto_front_size"], job["pareto_front_size"]);
  EXPECT_EQ(Rows(uninterrupted["job_id"]), rows);
}

}  // namespace
}  // namespace apq::testing
