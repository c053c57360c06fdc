#include "oface/subnet_measurement.h"

#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_quant_space.h"
#include "oface/restricted_space.h"
#include "oface/supernet.h"
#include "oface/supernet_testing.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

// A fresh scratch file.
std::string TempPath(const std::string& name) {
  std::string path = TestTempPath(name);
  std::remove(path.c_str());
  return path;
}

LabeledImages Load(FashionMnistSplit split, int limit) {
  at::set_num_threads(1);
  absl::StatusOr<LabeledImages> images = LoadFashionMnist(kDefaultFashionMnistDir, split, limit);
  EXPECT_TRUE(images.ok()) << images.status();
  return images.value_or(LabeledImages{});
}

std::unique_ptr<Supernet> MakeTiny() {
  absl::StatusOr<std::unique_ptr<Supernet>> supernet = Supernet::Create(TinySpec(), 1);
  EXPECT_TRUE(supernet.ok()) << supernet.status();
  return std::move(supernet).value();
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

void ExpectSameImages(const LabeledImages& actual, const LabeledImages& expected) {
  EXPECT_EQ(actual.count, expected.count);
  EXPECT_EQ(actual.rows, expected.rows);
  EXPECT_EQ(actual.cols, expected.cols);
  EXPECT_TRUE(actual.pixels == expected.pixels);
  EXPECT_TRUE(actual.labels == expected.labels);
}

TEST(LoadEvaluationImagesTest, OneReadGivesTheImagesOfTheSplitsLoadedOneByOne) {
  // What the images were when each split was loaded from its own read of the file.
  const LabeledImages train =
      LoadFashionMnistSplit(kDefaultFashionMnistDir, DataSplit::kTrain).value();
  const LabeledImages calibration = SelectImages(train, SubsetIndices(train.count, 300, 5));
  for (const DataSplit split : {DataSplit::kValidation, DataSplit::kTest}) {
    SCOPED_TRACE(DataSplitName(split));
    absl::StatusOr<EvaluationImages> images =
        LoadEvaluationImages(kDefaultFashionMnistDir, 300, 200, 5, split);
    ASSERT_TRUE(images.ok()) << images.status();
    EXPECT_EQ(images->split, split);
    ExpectSameImages(images->calibration, calibration);
    ExpectSameImages(images->evaluated,
                     LoadFashionMnistSplit(kDefaultFashionMnistDir, split, 200).value());
  }
  EXPECT_EQ(LoadEvaluationImages(kDefaultFashionMnistDir, 300, 0, 5, DataSplit::kValidation)
                ->evaluated.count,
            kValidationImages);
  EXPECT_EQ(
      LoadEvaluationImages(kDefaultFashionMnistDir, 300, 0, 5, DataSplit::kTrain).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(SampleMeasurementConfigsTest, DeterministicDistinctValidAndFp32AtTopBits) {
  std::unique_ptr<SearchSpace> space = NewMbConvQuantSpace(TinySpec()).value();
  for (const bool quantized : {false, true}) {
    const std::vector<Genotype> configs = SampleMeasurementConfigs(*space, 30, quantized, 5);
    ASSERT_EQ(configs.size(), 30u);
    EXPECT_EQ(configs, SampleMeasurementConfigs(*space, 30, quantized, 5));
    EXPECT_NE(configs, SampleMeasurementConfigs(*space, 30, quantized, 6));
    // A shorter job is a prefix of a longer one: growing --count keeps what is measured.
    const std::vector<Genotype> first = SampleMeasurementConfigs(*space, 10, quantized, 5);
    EXPECT_TRUE(std::equal(first.begin(), first.end(), configs.begin()));
    EXPECT_EQ(std::set<Genotype>(configs.begin(), configs.end()).size(), configs.size());
    std::set<int> bits_seen;
    for (const Genotype& genotype : configs) {
      EXPECT_TRUE(space->Validate(genotype).ok());
      EXPECT_EQ(space->Canonical(genotype), genotype);
      Genotype top_bits = genotype;
      for (size_t g = 0; g < genotype.size(); ++g) {
        if (space->genes()[g].name.find("bits") != std::string::npos) {
          bits_seen.insert(genotype[g]);
          top_bits[g] = 8;
        }
      }
      // fp32 configs: the bits of every active slot at the top (inactive ones canonical).
      if (!quantized) {
        EXPECT_EQ(space->Canonical(top_bits), genotype);
      }
    }
    EXPECT_EQ(bits_seen, (std::set<int>{4, 8}));
  }
}

// Uniform configs have one width in every bits gene (inactive slots canonical); near-uniform
// ones differ from one width in at most 3 bits genes. Both are distinct, valid, canonical,
// deterministic, and reach every width.
TEST(SampleMeasurementConfigsTest, UniformAndNearUniformBits) {
  std::unique_ptr<SearchSpace> space = NewMbConvQuantSpace(TinySpec()).value();
  const std::vector<GeneSpec>& genes = space->genes();
  for (const BitSampling sampling : {BitSampling::kUniform, BitSampling::kNearUniform}) {
    SCOPED_TRACE(BitSamplingName(sampling));
    EXPECT_EQ(BitSamplingFromName(BitSamplingName(sampling)).value(), sampling);
    const std::vector<Genotype> configs = SampleConfigsWithBits(*space, 20, sampling, 5);
    ASSERT_EQ(configs.size(), 20u);
    EXPECT_EQ(configs, SampleConfigsWithBits(*space, 20, sampling, 5));
    EXPECT_EQ(std::set<Genotype>(configs.begin(), configs.end()).size(), configs.size());
    std::set<int> widths_seen;
    int mixed = 0;
    for (const Genotype& genotype : configs) {
      EXPECT_TRUE(space->Validate(genotype).ok());
      EXPECT_EQ(space->Canonical(genotype), genotype);
      int fewest_differing = static_cast<int>(genes.size());
      int closest_width = 0;
      for (const int width : {4, 8}) {
        Genotype uniform = genotype;
        for (size_t g = 0; g < genes.size(); ++g) {
          if (IsBitsGene(genes[g])) uniform[g] = width;
        }
        uniform = space->Canonical(uniform);
        int differing = 0;
        for (size_t g = 0; g < genes.size(); ++g) differing += uniform[g] != genotype[g];
        if (differing < fewest_differing) {
          fewest_differing = differing;
          closest_width = width;
        }
      }
      widths_seen.insert(closest_width);
      if (sampling == BitSampling::kUniform) {
        EXPECT_EQ(fewest_differing, 0);
      } else {
        EXPECT_LE(fewest_differing, 3);
        mixed += fewest_differing > 0;
      }
    }
    EXPECT_EQ(widths_seen, (std::set<int>{4, 8}));
    if (sampling == BitSampling::kNearUniform) {
      EXPECT_GT(mixed, 0);
    }
  }
  EXPECT_FALSE(BitSamplingFromName("mixed").ok());
}

TEST(SampleMeasurementConfigsTest, PairedBitsMatchEachLayersActivationToItsWeights) {
  std::unique_ptr<SearchSpace> space = NewMbConvQuantSpace(TinySpec()).value();
  const std::vector<std::pair<int, int>> pairs = BitsGenePairs(*space);
  ASSERT_FALSE(pairs.empty());
  EXPECT_EQ(BitSamplingFromName("paired").value(), BitSampling::kPaired);
  const std::vector<Genotype> configs = SampleConfigsWithBits(*space, 30, BitSampling::kPaired, 3);
  ASSERT_EQ(configs.size(), 30u);
  EXPECT_EQ(configs, SampleConfigsWithBits(*space, 30, BitSampling::kPaired, 3));
  std::set<int> widths_seen;
  int layers_differing = 0;  // Between layers of one config: paired, yet not uniform.
  for (const Genotype& genotype : configs) {
    EXPECT_TRUE(space->Validate(genotype).ok());
    for (const auto& [weight, activation] : pairs) {
      EXPECT_EQ(genotype[weight], genotype[activation]) << space->genes()[activation].name;
      widths_seen.insert(genotype[weight]);
      layers_differing += genotype[weight] != genotype[pairs.front().first];
    }
  }
  EXPECT_EQ(widths_seen, (std::set<int>{4, 8}));
  EXPECT_GT(layers_differing, 0);
  // Random draws are not paired: the sampling above changed them.
  int unpaired = 0;
  for (const Genotype& genotype : SampleConfigsWithBits(*space, 30, BitSampling::kRandom, 3)) {
    for (const auto& [weight, activation] : pairs)
      unpaired += genotype[weight] != genotype[activation];
  }
  EXPECT_GT(unpaired, 0);
}

TEST(MeasureSubnetsTest, RecordsRoundTripThroughCsvAndResumeSkipsMeasuredConfigs) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  const LabeledImages calibration = Load(FashionMnistSplit::kTrain, 64);
  const LabeledImages test = Load(FashionMnistSplit::kTest, 100);
  const std::string csv = TempPath("measurements.csv");
  for (const bool quantized : {false, true}) {
    MeasureOptions options;
    options.count = 3;
    options.quantized = quantized;
    options.seed = 9;
    std::vector<MeasurementRecord> emitted;
    options.on_record = [&](const MeasurementRecord& record) {
      emitted.push_back(record);
      return AppendMeasurementCsv(csv, record);
    };
    absl::StatusOr<MeasureSummary> summary = MeasureSubnets(*supernet, calibration, test, options);
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->measured, 3);
    EXPECT_EQ(summary->skipped, 0);
    ASSERT_EQ(emitted.size(), 3u);
    for (const MeasurementRecord& record : emitted) {
      EXPECT_EQ(record.method, quantized ? kMeasuredQuantFromSupernet : kMeasuredFp32);
      EXPECT_EQ(record.seed, 9u);
      EXPECT_GT(record.seconds, 0.0);
      EXPECT_TRUE(supernet->space().FromJson(record.config_json).ok());
    }

    // Resume with a larger count: the three stored configs are skipped, two are new.
    absl::StatusOr<std::vector<MeasurementRecord>> stored = ReadMeasurementCsv(csv);
    ASSERT_TRUE(stored.ok()) << stored.status();
    std::set<std::string> done;
    for (const MeasurementRecord& record : *stored) {
      if (record.method == (quantized ? kMeasuredQuantFromSupernet : kMeasuredFp32)) {
        done.insert(record.config_json);
      }
    }
    emitted.clear();
    options.count = 5;
    options.already_measured = [&](const std::string& config) { return done.count(config) > 0; };
    summary = MeasureSubnets(*supernet, calibration, test, options);
    ASSERT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(summary->skipped, 3);
    EXPECT_EQ(summary->measured, 2);
    for (const MeasurementRecord& record : emitted) EXPECT_EQ(done.count(record.config_json), 0u);
  }

  // Everything round trips: 5 fp32 then 5 quantized records, one header.
  absl::StatusOr<std::vector<MeasurementRecord>> all = ReadMeasurementCsv(csv);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 10u);
  const std::string text = ReadFile(csv);
  EXPECT_EQ(text.find(kMeasurementCsvHeader), 0u);
  EXPECT_EQ(text.find(kMeasurementCsvHeader, 1), std::string::npos);
  // Same configs and accuracies as a fresh, uninterrupted job of 5.
  MeasureOptions fresh;
  fresh.count = 5;
  fresh.seed = 9;
  std::vector<MeasurementRecord> expected;
  fresh.on_record = [&](const MeasurementRecord& record) {
    expected.push_back(record);
    return absl::OkStatus();
  };
  ASSERT_TRUE(MeasureSubnets(*supernet, calibration, test, fresh).ok());
  ASSERT_EQ(expected.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ((*all)[i].config_json, expected[i].config_json);
    EXPECT_NEAR((*all)[i].accuracy, expected[i].accuracy, 1e-7);
    EXPECT_EQ((*all)[i].method, kMeasuredFp32);
    EXPECT_EQ((*all)[5 + i].method, kMeasuredQuantFromSupernet);
  }
}

TEST(MeasureSubnetsTest, CallbackErrorsAndCancellationStopTheJob) {
  std::unique_ptr<Supernet> supernet = MakeTiny();
  const LabeledImages images = Load(FashionMnistSplit::kTest, 20);
  MeasureOptions options;
  options.count = 3;
  EXPECT_EQ(MeasureSubnets(*supernet, images, images, options).status().code(),
            absl::StatusCode::kInvalidArgument);  // No on_record.
  int calls = 0;
  options.on_record = [&](const MeasurementRecord&) {
    ++calls;
    return absl::UnavailableError("disk full");
  };
  EXPECT_EQ(MeasureSubnets(*supernet, images, images, options).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls, 1);
  options.cancelled = [] { return true; };
  EXPECT_EQ(MeasureSubnets(*supernet, images, images, options).status().code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(MeasureSubnets(*supernet, LabeledImages{}, images, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MeasurementCsvTest, LineRoundTripWithQuotes) {
  MeasurementRecord record;
  record.config_json = R"([{"wid": null, "ks": [3, 5]}, {"a": "x,y"}])";
  record.accuracy = 0.8123;
  record.method = kMeasuredQuantFromSupernet;
  record.seconds = 1.25;
  record.seed = 18446744073709551615u;
  record.split = "validation";
  const std::string line = MeasurementToCsvLine(record);
  absl::StatusOr<MeasurementRecord> parsed = MeasurementFromCsvLine(line);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << " " << line;
  EXPECT_EQ(parsed->config_json, record.config_json);
  EXPECT_EQ(parsed->accuracy, record.accuracy);
  EXPECT_EQ(parsed->method, record.method);
  EXPECT_EQ(parsed->seconds, record.seconds);
  EXPECT_EQ(parsed->seed, record.seed);
  EXPECT_EQ(parsed->split, "validation");
  // A line of the earlier five-column format says nothing of its split.
  EXPECT_EQ(
      MeasurementFromCsvLine(R"("[]",0.5,fp32,1,1)", kMeasurementCsvHeaderWithoutSplit)->split, "");
  EXPECT_THAT(MeasurementFromCsvLine(R"("[]",0.5,fp32,1,1,dev)").status().message(),
              HasSubstr("split"));

  EXPECT_THAT(MeasurementFromCsvLine(R"("[]",1.5,fp32,1,1)").status().message(),
              HasSubstr("accuracy"));
  EXPECT_THAT(MeasurementFromCsvLine(R"("[]",0.5,int8,1,1)").status().message(),
              HasSubstr("method"));
  EXPECT_THAT(MeasurementFromCsvLine(R"("[]",0.5,fp32,1)").status().message(),
              HasSubstr("6 columns"));
}

TEST(MeasurementCsvTest, NonFiniteValuesAndLinesUnlikeTheHeaderAreRefusedNamingLineAndColumn) {
  const auto refusal = [](const std::string& content) {
    const absl::StatusOr<std::vector<MeasurementRecord>> records =
        ParseMeasurementCsv(content, "m.csv", /*keep_unterminated_line=*/false);
    EXPECT_EQ(records.status().code(), absl::StatusCode::kDataLoss) << content;
    std::string message(records.status().message());
    return message;
  };
  // A good first record, then `line` as line 3.
  const auto with_line = [](const std::string& line) {
    return absl::StrCat(kMeasurementCsvHeader, "\n\"[1]\",0.5,fp32,1,1,validation\n", line, "\n");
  };
  for (const char* accuracy : {"nan", "-nan", "inf", "-inf", "1.5", "-0.1", "x"}) {
    EXPECT_THAT(refusal(with_line(absl::StrCat(R"("[2]",)", accuracy, ",fp32,1,1,validation"))),
                HasSubstr("m.csv line 3: accuracy: '"))
        << accuracy;
  }
  for (const char* seconds : {"nan", "inf", "-1", "x"}) {
    EXPECT_THAT(refusal(with_line(absl::StrCat(R"("[2]",0.5,fp32,)", seconds, ",1,validation"))),
                HasSubstr("m.csv line 3: seconds: '"))
        << seconds;
  }
  // Each line has its header's columns, whichever header the file has.
  EXPECT_THAT(refusal(with_line(R"("[2]",0.5,fp32,1,1)")),
              HasSubstr("m.csv line 3: expected 6 columns (config_json,accuracy,method,seconds,"
                        "seed,split), got 5"));
  EXPECT_THAT(refusal(absl::StrCat(kMeasurementCsvHeaderWithoutSplit,
                                   "\n\"[1]\",0.5,fp32,1,1\n\"[2]\",0.5,fp32,1,1,validation\n")),
              HasSubstr("m.csv line 3: expected 5 columns (config_json,accuracy,method,seconds,"
                        "seed), got 6"));
}

TEST(MeasurementCsvTest, FilesWithoutTheSplitColumnAreReadButNotAppendedTo) {
  const std::string csv = TempPath("legacy.csv");
  {
    std::ofstream file(csv, std::ios::trunc);
    file << kMeasurementCsvHeaderWithoutSplit << "\n\"[1]\",0.5,fp32,1,1\n";
  }
  absl::StatusOr<std::vector<MeasurementRecord>> records = ReadMeasurementCsv(csv);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].split, "");
  MeasurementRecord record;
  record.config_json = "[2]";
  record.method = kMeasuredFp32;
  record.split = "validation";
  const absl::Status appended = AppendMeasurementCsv(csv, record);
  EXPECT_EQ(appended.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(appended.message(), HasSubstr("no split column"));
  EXPECT_EQ(ReadMeasurementCsv(csv)->size(), 1u) << "nothing appended";
}

TEST(MeasurementCsvTest, CutShortLastLineIsDroppedAndForeignFilesAreRejected) {
  const std::string csv = TempPath("cut.csv");
  MeasurementRecord record;
  record.config_json = "[1]";
  record.method = kMeasuredFp32;
  ASSERT_TRUE(AppendMeasurementCsv(csv, record).ok());
  {
    std::ofstream file(csv, std::ios::app);
    file << "\"[2]\",0.5,fp";  // A kill mid-line.
  }
  absl::StatusOr<std::vector<MeasurementRecord>> records = ReadMeasurementCsv(csv);
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(records->size(), 1u);
  record.config_json = "[3]";
  ASSERT_TRUE(AppendMeasurementCsv(csv, record).ok());
  records = ReadMeasurementCsv(csv);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[1].config_json, "[3]");

  {
    std::ofstream file(csv, std::ios::app);
    file << "garbage\n";
  }
  records = ReadMeasurementCsv(csv);
  EXPECT_EQ(records.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(records.status().message(), HasSubstr("line 4"));

  const std::string foreign = TempPath("foreign.csv");
  std::ofstream(foreign) << "a,b,c\n1,2,3\n";
  records = ReadMeasurementCsv(foreign);
  EXPECT_EQ(records.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(records.status().message(), HasSubstr(foreign));

  records = ReadMeasurementCsv(TempPath("absent.csv"));
  ASSERT_TRUE(records.ok());
  EXPECT_TRUE(records->empty());
}

}  // namespace
}  // namespace apq::oface
