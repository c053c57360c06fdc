#include "oface/layer_profiler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/search_space.h"
#include "oface/subnet_export.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet_testing.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

// The tiny supernet's spec with its stem and tail priced per conv: 29 conv shapes (5 fixed,
// 25 searched, the feature mix's (8, 16, 7, 1, 1, 0, 1) shared with an expand conv) and
// 104 keys (the searched shapes at 4 bit pairs each).
MbConvSpec ConvKeySpec() {
  MbConvSpec spec = TinySpec();
  spec.fixed_layer_costs = FixedLayerCosts::kConvKeys;
  return spec;
}

// Few runs: these tests check the bookkeeping, never the figures beyond their sign.
TimingOptions FastTiming() {
  TimingOptions timing;
  timing.threads = 1;
  timing.warmup = 1;
  timing.repeats = 3;
  return timing;
}

ProfileOptions FastProfile() {
  ProfileOptions options;
  options.timing = FastTiming();
  options.cache_flush_bytes = 256 << 10;
  return options;
}

// Profiled once for all tests.
const LayerProfile& Profile() {
  static const LayerProfile* profile = [] {
    absl::StatusOr<LayerProfile> profiled = ProfileLayers(ConvKeySpec(), FastProfile());
    EXPECT_TRUE(profiled.ok()) << profiled.status();
    return new LayerProfile(profiled.value_or(LayerProfile{}));
  }();
  return *profile;
}

std::string ShapeOf(const std::string& key) { return key.substr(0, key.rfind("-W")); }

TEST(LayerProfilerTest, EveryCatalogueKeyHasAPositiveEntry) {
  const std::unique_ptr<SearchSpace> space = NewMbConvQuantSpace(ConvKeySpec()).value();
  const LayerProfile& profile = Profile();
  EXPECT_EQ(profile.latency_ms.size(), space->num_cost_terms());
  for (int term = 0; term < space->num_cost_terms(); ++term) {
    const std::string key = space->CostTermKey(term);
    const auto it = profile.latency_ms.find(key);
    ASSERT_NE(it, profile.latency_ms.end()) << key;
    EXPECT_GT(it->second, 0.0) << key;
    EXPECT_TRUE(std::isfinite(it->second)) << key;
  }
  EXPECT_GT(profile.seconds, 0.0);
}

TEST(LayerProfilerTest, EachShapeIsTimedOnceForAllItsBits) {
  const LayerProfile& profile = Profile();
  absl::flat_hash_map<std::string, double> by_shape;
  for (const auto& [key, ms] : profile.latency_ms) {
    const auto [it, inserted] = by_shape.try_emplace(ShapeOf(key), ms);
    if (!inserted) {
      EXPECT_EQ(it->second, ms) << key;
    }
  }
  EXPECT_EQ(profile.shapes, by_shape.size());
  EXPECT_EQ(profile.shapes, 29);
  EXPECT_EQ(profile.latency_ms.size(), 104);
  // The stem conv and the classifier, and a searched expand conv with its four bit pairs.
  EXPECT_EQ(profile.latency_ms.count("(1, 4, 28, 3, 2, 1, 1)-W8A8"), 1);
  EXPECT_EQ(profile.latency_ms.count("(16, 10, 1, 1, 1, 0, 1)-W8A8"), 1);
  for (const char* bits : {"W4A4", "W4A8", "W8A4", "W8A8"}) {
    EXPECT_EQ(profile.latency_ms.count(std::string("(4, 8, 14, 1, 1, 0, 1)-") + bits), 1) << bits;
  }
}

TEST(LayerProfilerTest, RejectsSpacesWithHeadAndTailEntries) {
  MbConvSpec spec = TinySpec();
  spec.fixed_layer_costs = FixedLayerCosts::kHeadTailEntries;
  const absl::StatusOr<LayerProfile> profile = ProfileLayers(spec, FastProfile());
  EXPECT_EQ(profile.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(profile.status().message(),
              HasSubstr("key \"head\" is not a conv key: this space cannot be profiled"));
}

TEST(LayerProfilerTest, RejectsAShapeOfTwoRoles) {
  // With mids from 1 x Cin, the first block's 4 -> 4 projection at 14x14 (no activation) has
  // the shape of the first slot's 4 -> 4 expand conv (ReLU6).
  MbConvSpec spec = ConvKeySpec();
  spec.min_expand = 1;
  const absl::Status status = ProfileLayers(spec, FastProfile()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.ToString(), HasSubstr("key \"(4, 4, 14, 1, 1, 0, 1)-W8A8\": layers of spec "
                                           "tiny_fmnist that compute different ops"));
}

TEST(LayerProfilerTest, HotCachesToo) {
  ProfileOptions options = FastProfile();
  options.cache_flush_bytes = 0;
  const absl::StatusOr<LayerProfile> profile = ProfileLayers(ConvKeySpec(), options);
  ASSERT_TRUE(profile.ok()) << profile.status();
  EXPECT_EQ(profile->latency_ms.size(), Profile().latency_ms.size());
  for (const auto& [key, ms] : profile->latency_ms) EXPECT_GT(ms, 0.0) << key;
}

TEST(LayerProfilerTest, RejectsBadOptions) {
  const auto message = [](const ProfileOptions& options) {
    return ProfileLayers(ConvKeySpec(), options).status().ToString();
  };
  ProfileOptions options = FastProfile();
  options.timing.threads = 0;
  EXPECT_THAT(message(options), HasSubstr("timing.threads must be >= 1, got 0"));
  options = FastProfile();
  options.timing.warmup = -1;
  EXPECT_THAT(message(options), HasSubstr("timing.warmup"));
  options = FastProfile();
  options.timing.repeats = 0;
  EXPECT_THAT(message(options), HasSubstr("timing.repeats"));
  options = FastProfile();
  options.cache_flush_bytes = -1;
  EXPECT_THAT(message(options), HasSubstr("cache_flush_bytes"));
  MbConvSpec bad = ConvKeySpec();
  bad.stages.clear();
  EXPECT_EQ(ProfileLayers(bad, FastProfile()).status().code(), absl::StatusCode::kInvalidArgument);

  ValidationOptions validation;
  validation.timing = FastTiming();
  validation.subnets = 0;
  absl::Status status = ValidateProfile(ConvKeySpec(), Profile().latency_ms, validation).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("subnets"));
  validation.subnets = 3;
  validation.calibration_images = 0;
  EXPECT_THAT(ValidateProfile(ConvKeySpec(), Profile().latency_ms, validation).status().message(),
              HasSubstr("calibration_images"));
  validation.calibration_images = 8;
  validation.timing.repeats = 0;
  EXPECT_THAT(ValidateProfile(ConvKeySpec(), Profile().latency_ms, validation).status().message(),
              HasSubstr("timing.repeats"));
}

TEST(LayerProfilerTest, ValidatesAgainstExtractedSubnets) {
  ValidationOptions options;
  options.subnets = 3;
  options.seed = 5;
  options.calibration_images = 16;
  options.timing = FastTiming();
  const absl::StatusOr<ValidationReport> report =
      ValidateProfile(ConvKeySpec(), Profile().latency_ms, options);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->subnets.size(), 3);
  for (const SubnetLatency& subnet : report->subnets) {
    EXPECT_GT(subnet.measured_ms, 0.0) << subnet.config_json;
    EXPECT_GT(subnet.predicted_ms, 0.0) << subnet.config_json;
    EXPECT_TRUE(std::isfinite(subnet.measured_ms)) << subnet.config_json;
  }
  for (const double value :
       {report->mape_percent, report->median_ape_percent, report->worst_ape_percent,
        report->mean_ratio, report->mean_difference_ms}) {
    EXPECT_TRUE(std::isfinite(value));
  }
  EXPECT_GE(report->worst_ape_percent, report->median_ape_percent);
  EXPECT_GE(report->worst_ape_percent, report->mape_percent);
  EXPECT_GT(report->mean_ratio, 0.0);
  EXPECT_FALSE(report->worst_config_json.empty());
  EXPECT_GT(report->seconds, 0.0);
}

TEST(LayerProfilerTest, ValidationNeedsEveryTermOfTheConfigs) {
  absl::flat_hash_map<std::string, double> partial = Profile().latency_ms;
  // Every network has the stem conv.
  partial.erase("(1, 4, 28, 3, 2, 1, 1)-W8A8");
  ValidationOptions options;
  options.subnets = 1;
  options.timing = FastTiming();
  const absl::Status status = ValidateProfile(ConvKeySpec(), partial, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("no entry for key \"(1, 4, 28, 3, 2, 1, 1)-W8A8\""));
}

TEST(LayerProfilerTest, MedianLatencyRunsWarmupThenRepeats) {
  int calls = 0;
  const double ms = MedianLatencyMs(2, 4, [&calls] { ++calls; });
  EXPECT_EQ(calls, 6);
  EXPECT_GE(ms, 0.0);
}

TEST(CompareInt8LayersTest, TimesEveryShapeOfTheSpecInFloatAndOnEachEngine) {
  const std::vector<QuantizedEngine> engines = AvailableQuantizedEngines();
  ASSERT_FALSE(engines.empty());
  absl::StatusOr<std::vector<Int8ShapeTiming>> timings =
      CompareInt8Layers(ConvKeySpec(), FastProfile(), engines);
  ASSERT_TRUE(timings.ok()) << timings.status();
  // Every distinct shape of the catalogue, the one with two roles left out.
  EXPECT_EQ(static_cast<int>(timings->size()), Profile().shapes);
  int linear = 0;
  for (const Int8ShapeTiming& timing : *timings) {
    SCOPED_TRACE(timing.shape);
    EXPECT_GT(timing.float_ms, 0.0);
    ASSERT_EQ(timing.int8_ms.size(), engines.size());
    for (const double ms : timing.int8_ms) EXPECT_GT(ms, 0.0);
    linear += timing.role == "linear" ? 1 : 0;
  }
  EXPECT_EQ(linear, 1);

  EXPECT_EQ(CompareInt8Layers(ConvKeySpec(), FastProfile(), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ProfileOptions bad = FastProfile();
  bad.timing.repeats = 0;
  EXPECT_THAT(CompareInt8Layers(ConvKeySpec(), bad, engines).status().message(),
              HasSubstr("repeats"));
}

TEST(Int8ProfileTest, AnInt8ProfileIsValidatedOnInt8Subnets) {
  ProfileOptions options = FastProfile();
  options.int8_engine = QuantizedEngine::kQnnpack;
  absl::StatusOr<LayerProfile> int8 = ProfileLayers(ConvKeySpec(), options);
  ASSERT_TRUE(int8.ok()) << int8.status();
  EXPECT_EQ(int8->shapes, Profile().shapes);
  EXPECT_EQ(int8->changes, 0);
  // Only the W8A8 keys: the device runs no other pair (the spec has no float choice).
  int w8a8 = 0;
  for (const auto& [key, ms] : Profile().latency_ms) {
    if (key.size() > 5 && key.substr(key.size() - 5) == "-W8A8") {
      ++w8a8;
      EXPECT_TRUE(int8->latency_ms.contains(key)) << key;
    }
  }
  EXPECT_GT(w8a8, 0);
  EXPECT_EQ(static_cast<int>(int8->latency_ms.size()), w8a8);
  ValidationOptions validation;
  validation.subnets = 3;
  validation.timing = FastTiming();
  validation.int8_engine = QuantizedEngine::kQnnpack;
  absl::StatusOr<ValidationReport> report =
      ValidateProfile(ConvKeySpec(), int8->latency_ms, validation);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->subnets.size(), 3u);
  for (const SubnetLatency& subnet : report->subnets) {
    EXPECT_GT(subnet.measured_ms, 0.0);
    EXPECT_GT(subnet.predicted_ms, 0.0);
  }
}

// A spec with a float choice per layer, profiled for an int8 device: W8A8 keys in int8,
// W32A32 keys in float (timed apart, so a shape has two figures), the changes of precision
// between them, nothing for the mixed pairs; validated on subnets of int8 and float layers.
TEST(Int8ProfileTest, AnInt8FloatSpecGetsBothPrecisionsAndTheChangesBetweenThem) {
  MbConvSpec spec = ConvKeySpec();
  spec.bit_choices = {8, kFloatBits};
  spec.banned_kernel_dw_a_bits.clear();
  ProfileOptions options = FastProfile();
  options.int8_engine = QuantizedEngine::kQnnpack;
  absl::StatusOr<LayerProfile> profile = ProfileLayers(spec, options);
  ASSERT_TRUE(profile.ok()) << profile.status();
  const std::unique_ptr<SearchSpace> space = NewMbConvQuantSpace(spec).value();
  int int8_keys = 0, float_keys = 0, changes = 0;
  std::set<std::string> int8_shapes, float_shapes;
  for (int term = 0; term < space->num_cost_terms(); ++term) {
    const std::string key = space->CostTermKey(term);
    const bool change = key.find("quantize") != std::string::npos;
    const bool int8 = key.find("-W8A8") != std::string::npos;
    const bool in_float = key.find("-W32A32") != std::string::npos;
    SCOPED_TRACE(key);
    if (change || int8 || in_float) {
      ASSERT_TRUE(profile->latency_ms.contains(key));
      EXPECT_GT(profile->latency_ms.at(key), 0.0);
    } else {
      EXPECT_FALSE(profile->latency_ms.contains(key));
    }
    int8_keys += int8;
    float_keys += in_float;
    changes += change;
    if (int8) int8_shapes.insert(ShapeOf(key));
    if (in_float) float_shapes.insert(ShapeOf(key));
  }
  EXPECT_GT(changes, 0);
  EXPECT_EQ(profile->changes, changes);
  // The stem and tail run in int8 only; every searched layer's shape runs both ways.
  EXPECT_GT(float_keys, 0);
  EXPECT_GT(int8_keys, float_keys);
  EXPECT_TRUE(std::includes(int8_shapes.begin(), int8_shapes.end(), float_shapes.begin(),
                            float_shapes.end()));
  EXPECT_EQ(profile->shapes, static_cast<int>(int8_shapes.size() + float_shapes.size()));
  EXPECT_EQ(static_cast<int>(profile->latency_ms.size()), int8_keys + float_keys + changes);

  ValidationOptions validation;
  validation.subnets = 3;
  validation.timing = FastTiming();
  validation.int8_engine = QuantizedEngine::kQnnpack;
  validation.bits = BitSampling::kPaired;
  absl::StatusOr<ValidationReport> report = ValidateProfile(spec, profile->latency_ms, validation);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->subnets.size(), 3u);
  for (const SubnetLatency& subnet : report->subnets) {
    EXPECT_GT(subnet.measured_ms, 0.0);
    EXPECT_GT(subnet.predicted_ms, 0.0);
  }
}

// The calibration's least squares recover the factors that made the measured figures, on
// synthetic ones (no timing), and refuse fits that cannot hold.
class EntryCalibrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_ = ConvKeySpec();
    spec_.bit_choices = {8, kFloatBits};
    spec_.banned_kernel_dw_a_bits.clear();
    space_ = NewMbConvQuantSpace(spec_).value();
    for (int term = 0; term < space_->num_cost_terms(); ++term) {
      latency_ms_[space_->CostTermKey(term)] = 0.001 * (1 + (term * 37) % 23);
    }
  }

  // Kinds told apart by the keys' text, independently of KindOfEntry.
  static int KindOf(const std::string& key) {
    if (key.find("quantize") != std::string::npos) return 2;
    return key.find("-W32A32") != std::string::npos ? 1 : 0;
  }

  // `count` subnets measured as intercept + factors . (their entry sums by kind).
  ValidationReport Measured(int count, BitSampling bits, double intercept,
                            const std::array<double, 3>& factors) const {
    ValidationReport report;
    std::vector<int32_t> terms;
    for (const Genotype& genotype : SampleConfigsWithBits(*space_, count, bits, 7)) {
      terms.clear();
      space_->CostTerms(genotype, &terms);
      SubnetLatency subnet;
      subnet.config_json = space_->ToJson(genotype);
      subnet.measured_ms = intercept;
      for (const int32_t term : terms) {
        const std::string key = space_->CostTermKey(term);
        subnet.measured_ms += factors[KindOf(key)] * latency_ms_.at(key);
      }
      report.subnets.push_back(subnet);
    }
    return report;
  }

  MbConvSpec spec_;
  std::unique_ptr<SearchSpace> space_;
  absl::flat_hash_map<std::string, double> latency_ms_;
};

TEST_F(EntryCalibrationTest, RecoversTheFactorsAndScalesEachKind) {
  const ValidationReport report = Measured(40, BitSampling::kPaired, 0.05, {1.2, 1.6, 2.1});
  absl::StatusOr<EntryCalibration> calibration = FitEntryCalibration(spec_, latency_ms_, report);
  ASSERT_TRUE(calibration.ok()) << calibration.status();
  EXPECT_EQ(calibration->subnets, 40);
  EXPECT_NEAR(calibration->intercept_ms, 0.05, 1e-9);
  EXPECT_NEAR(calibration->int8_factor, 1.2, 1e-9);
  EXPECT_NEAR(calibration->float_factor, 1.6, 1e-9);
  EXPECT_NEAR(calibration->change_factor, 2.1, 1e-9);

  absl::flat_hash_map<std::string, double> scaled = latency_ms_;
  ApplyEntryCalibration(*calibration, &scaled);
  int kinds_seen[3] = {0, 0, 0};
  for (const auto& [key, ms] : latency_ms_) {
    const double factor = std::array<double, 3>{1.2, 1.6, 2.1}[KindOf(key)];
    EXPECT_NEAR(scaled.at(key), ms * factor, 1e-12) << key;
    EXPECT_EQ(static_cast<int>(KindOfEntry(key)), KindOf(key)) << key;
    ++kinds_seen[KindOf(key)];
  }
  for (const int seen : kinds_seen) EXPECT_GT(seen, 0);
}

TEST_F(EntryCalibrationTest, RefusesFitsThatCannotHold) {
  // Four parameters need seven subnets.
  EXPECT_THAT(FitEntryCalibration(spec_, latency_ms_,
                                  Measured(6, BitSampling::kPaired, 0.05, {1.0, 1.0, 1.0}))
                  .status()
                  .message(),
              HasSubstr("6 subnets cannot fit 4 parameters"));
  // All float: the int8 entries (the stem and tail) are the same in every subnet, so they
  // cannot be told from the intercept.
  const absl::StatusOr<EntryCalibration> singular = FitEntryCalibration(
      spec_, latency_ms_, Measured(20, BitSampling::kHighest, 0.05, {1.0, 1.5, 1.0}));
  EXPECT_EQ(singular.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(singular.status().message(), HasSubstr("singular"));
  // A factor that comes out negative names its kind.
  const absl::StatusOr<EntryCalibration> negative = FitEntryCalibration(
      spec_, latency_ms_, Measured(40, BitSampling::kPaired, 0.05, {1.2, -0.5, 2.0}));
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(negative.status().message(), HasSubstr("float layers"));
  // An entry the profile lacks is named.
  absl::flat_hash_map<std::string, double> partial = latency_ms_;
  partial.erase(space_->CostTermKey(0));
  EXPECT_THAT(
      FitEntryCalibration(spec_, partial, Measured(40, BitSampling::kPaired, 0.05, {1.0, 1.0, 1.0}))
          .status()
          .message(),
      HasSubstr(space_->CostTermKey(0)));
  // A config the space does not read.
  ValidationReport bad = Measured(40, BitSampling::kPaired, 0.05, {1.0, 1.0, 1.0});
  bad.subnets[3].config_json = "[]";
  EXPECT_EQ(FitEntryCalibration(spec_, latency_ms_, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace apq::oface
