#include "server/supernet_host.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/subnet_export.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"
#include "oface/supernet_testing.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

// A data folder holding untrained fmnist_mbv2 supernet weights (accuracy near chance, but
// every path of measurement and export is the real one).
std::string MakeDataDir(const std::string& name, bool with_quant = true) {
  std::string dir = oface::TestTempPath(name);
  std::filesystem::create_directories(dir + "/fmnist_mbv2");
  std::unique_ptr<oface::Supernet> supernet =
      oface::Supernet::Create(oface::FashionMnistSpec(), 7).value();
  EXPECT_TRUE(supernet->SaveWeights(dir + "/fmnist_mbv2/supernet_fp32.pt").ok());
  if (with_quant) {
    EXPECT_TRUE(supernet->SaveWeights(dir + "/fmnist_mbv2/supernet_quant.pt").ok());
  }
  return dir;
}

SupernetHost::Options SmallOptions(const std::string& data_dir) {
  SupernetHost::Options options;
  options.data_dir = data_dir;
  options.calibration_images = 200;
  return options;
}

// One host for the tests that only read it: creating and loading supernets takes seconds.
struct SharedHost {
  std::string data_dir;
  std::unique_ptr<SupernetHost> host;
  std::unique_ptr<oface::SearchSpace> space;
};

SharedHost& Shared() {
  static SharedHost* shared = [] {
    auto* made = new SharedHost;
    made->data_dir = MakeDataDir("host_data");
    absl::StatusOr<std::unique_ptr<SupernetHost>> host =
        SupernetHost::Create(SmallOptions(made->data_dir));
    EXPECT_TRUE(host.ok()) << host.status();
    made->host = std::move(host).value();
    made->space = oface::NewMbConvQuantSpace(oface::FashionMnistSpec()).value();
    return made;
  }();
  return *shared;
}

TEST(SupernetHostTest, KnowsItsSupernetsAndVersions) {
  EXPECT_TRUE(Shared().host->Has("fmnist_mbv2"));
  EXPECT_FALSE(Shared().host->Has("apq_mbv2"));
  const std::string version = Shared().host->Version("fmnist_mbv2");
  EXPECT_THAT(version, HasSubstr("fmnist_mbv2@"));
  EXPECT_EQ(version.size(), std::string("fmnist_mbv2@").size() + 12);
  EXPECT_EQ(Shared().host->Version("apq_mbv2"), "");
  const absl::StatusOr<std::vector<SupernetHost::Measurement>> none =
      Shared().host->Measure("apq_mbv2", {}, false, oface::DataSplit::kValidation, 0, nullptr);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
}

// data/fmnist_lowbit/ ships the low-bit supernet: the host serves it, and at 2 bits
// everywhere the largest subnet measures far below the same subnet at 8 bits (the regime
// where bit allocation matters; data/README.md has the figures on all validation images).
TEST(SupernetHostSetupTest, TheShippedLowBitSupernetMeasuresTwoBitsFarBelowEight) {
  // The runfiles' data/ (fmnist_lowbit's shipped weights only: fmnist_mbv2's are not data of
  // this test).
  std::unique_ptr<SupernetHost> host = SupernetHost::Create(SmallOptions("data")).value();
  ASSERT_TRUE(host->Has("fmnist_lowbit"));
  EXPECT_THAT(host->Version("fmnist_lowbit"), HasSubstr("fmnist_lowbit@"));
  std::unique_ptr<oface::Supernet> reference =
      oface::Supernet::Create(oface::FashionMnistLowBitSpec(), 1).value();
  const absl::StatusOr<std::vector<SupernetHost::Measurement>> measured =
      host->Measure("fmnist_lowbit", {reference->LargestGenotype(2), reference->LargestGenotype(8)},
                    /*quantized=*/true, oface::DataSplit::kValidation, 500, nullptr);
  ASSERT_TRUE(measured.ok()) << measured.status();
  ASSERT_EQ(measured->size(), 2u);
  EXPECT_GT((*measured)[1].accuracy, 0.85);
  EXPECT_LT((*measured)[0].accuracy, (*measured)[1].accuracy - 0.2);
}

TEST(SupernetHostSetupTest, AWaitingLossSessionCanBeCancelled) {
  std::unique_ptr<SupernetHost> host = SupernetHost::Create(SmallOptions("data")).value();
  std::shared_ptr<const search::PolicyLossProvider> losses = host->PolicyLosses("fmnist_lowbit");
  ASSERT_NE(losses, nullptr);
  std::unique_ptr<oface::Supernet> reference =
      oface::Supernet::Create(oface::FashionMnistLowBitSpec(), 1).value();
  const oface::Genotype largest = reference->LargestGenotype(8);
  auto holding = losses->Open(largest, 32, 1, nullptr);
  ASSERT_TRUE(holding.ok()) << holding.status();
  // The supernet is held: a second session waits, and stops when its job is cancelled.
  int polls = 0;
  const auto waiting = losses->Open(largest, 32, 1, [&] { return ++polls > 3; });
  EXPECT_EQ(waiting.status().code(), absl::StatusCode::kCancelled);
  EXPECT_GT(polls, 3);
  holding->reset();
  auto next = losses->Open(largest, 32, 1, [] { return true; });  // Free: no wait to cancel.
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE((*next)->Loss(largest).ok());
}

TEST(SupernetHostTest, MeasuresAsTheSupernetDoes) {
  const std::vector<oface::Genotype> genotypes =
      oface::SampleMeasurementConfigs(*Shared().space, 2, /*quantized=*/true, 3);
  absl::StatusOr<std::vector<SupernetHost::Measurement>> first = Shared().host->Measure(
      "fmnist_mbv2", genotypes, /*quantized=*/true, oface::DataSplit::kValidation, 300, nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 2u);
  for (const SupernetHost::Measurement& measurement : *first) {
    EXPECT_GE(measurement.accuracy, 0.0);
    EXPECT_LE(measurement.accuracy, 1.0);
    EXPECT_EQ(measurement.method, oface::kMeasuredQuantFromSupernet);
    EXPECT_GT(measurement.seconds, 0.0);
    EXPECT_EQ(measurement.split, oface::DataSplit::kValidation);
  }
  // The same numbers as a measurement job's on the same images.
  std::unique_ptr<oface::Supernet> direct =
      oface::Supernet::Create(oface::FashionMnistSpec(), 1).value();
  ASSERT_TRUE(direct->LoadWeights(Shared().data_dir + "/fmnist_mbv2/supernet_quant.pt").ok());
  const oface::EvaluationImages images =
      oface::LoadEvaluationImages(oface::kDefaultFashionMnistDir, 200, 300, 1,
                                  oface::DataSplit::kValidation)
          .value();
  ASSERT_TRUE(direct->SetActiveSubnet(genotypes[1]).ok());
  direct->SetQuantized(true);
  oface::EvalOptions eval;
  eval.eval_batch_size = 250;
  EXPECT_EQ(direct->Evaluate(images.calibration, images.evaluated, eval)->accuracy,
            (*first)[1].accuracy);

  absl::StatusOr<std::vector<SupernetHost::Measurement>> fp32 = Shared().host->Measure(
      "fmnist_mbv2", genotypes, /*quantized=*/false, oface::DataSplit::kValidation, 300, nullptr);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  EXPECT_EQ((*fp32)[0].method, oface::kMeasuredFp32);
}

TEST(SupernetHostTest, BadArgumentsAndCancellation) {
  const std::vector<oface::Genotype> genotypes =
      oface::SampleMeasurementConfigs(*Shared().space, 1, /*quantized=*/true, 3);
  EXPECT_EQ(
      Shared()
          .host->Measure("fmnist_mbv2", genotypes, true, oface::DataSplit::kValidation, -1, nullptr)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Shared()
                .host
                ->Measure("fmnist_mbv2", genotypes, true, oface::DataSplit::kValidation, 300,
                          [] { return true; })
                .status()
                .code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(
      Shared().host->ExportSubnet("fmnist_mbv2", genotypes[0], [] { return true; }).status().code(),
      absl::StatusCode::kCancelled);
  oface::Genotype broken = genotypes[0];
  broken[0] = 4;  // ks[0] is one of {3, 5, 7}.
  const absl::Status status =
      Shared()
          .host->Measure("fmnist_mbv2", {broken}, true, oface::DataSplit::kValidation, 300, nullptr)
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("ks[0]"));
}

TEST(SupernetHostTest, ExportLoadsAndReproducesItsAccuracy) {
  const oface::Genotype genotype =
      oface::SampleMeasurementConfigs(*Shared().space, 1, /*quantized=*/true, 5).front();
  absl::StatusOr<SupernetHost::Export> exported =
      Shared().host->ExportSubnet("fmnist_mbv2", genotype, nullptr);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(exported->supernet_version, Shared().host->Version("fmnist_mbv2"));
  const std::string path = oface::TestTempPath("exported.pt");
  std::ofstream(path, std::ios::binary) << exported->torchscript;
  const oface::LabeledImages test =
      oface::LoadFashionMnist(oface::kDefaultFashionMnistDir, oface::FashionMnistSplit::kTest)
          .value();
  absl::StatusOr<double> verified = oface::VerifyExport(path, test);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(*verified, exported->accuracy);
}

TEST(SupernetHostSetupTest, MissingOrForeignWeightsAreNamed) {
  const std::string lonely = MakeDataDir("lonely", /*with_quant=*/false);
  absl::StatusOr<std::unique_ptr<SupernetHost>> host = SupernetHost::Create(SmallOptions(lonely));
  EXPECT_EQ(host.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(host.status().message(), HasSubstr("supernet_quant.pt is missing"));

  const std::string foreign = MakeDataDir("foreign");
  std::unique_ptr<oface::Supernet> tiny = oface::Supernet::Create(oface::TinySpec(), 1).value();
  ASSERT_TRUE(tiny->SaveWeights(foreign + "/fmnist_mbv2/supernet_quant.pt").ok());
  host = SupernetHost::Create(SmallOptions(foreign));
  EXPECT_EQ(host.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(host.status().message(), HasSubstr("supernet_quant.pt do not load"));

  // No weights at all: no supernet, not an error.
  const std::string empty = oface::TestTempPath("empty_data");
  std::filesystem::create_directories(empty);
  host = SupernetHost::Create(SmallOptions(empty));
  ASSERT_TRUE(host.ok());
  EXPECT_FALSE((*host)->Has("fmnist_mbv2"));
}

// With weights under data/fmnist_lowbit/ the host serves that space too, at 2 and 3 bits.
TEST(SupernetHostSetupTest, LowBitWeightsMakeALowBitSupernet) {
  const std::string dir = MakeDataDir("with_low_bit");
  std::filesystem::create_directories(dir + "/fmnist_lowbit");
  std::unique_ptr<oface::Supernet> low_bit =
      oface::Supernet::Create(oface::FashionMnistLowBitSpec(), 8).value();
  ASSERT_TRUE(low_bit->SaveWeights(dir + "/fmnist_lowbit/supernet_fp32.pt").ok());
  ASSERT_TRUE(low_bit->SaveWeights(dir + "/fmnist_lowbit/supernet_quant.pt").ok());
  std::unique_ptr<SupernetHost> host = SupernetHost::Create(SmallOptions(dir)).value();
  EXPECT_TRUE(host->Has("fmnist_mbv2"));
  EXPECT_TRUE(host->Has("fmnist_lowbit"));
  EXPECT_THAT(host->Version("fmnist_lowbit"), HasSubstr("fmnist_lowbit@"));
  const std::unique_ptr<oface::SearchSpace> space =
      oface::NewMbConvQuantSpace(oface::FashionMnistLowBitSpec()).value();
  oface::Genotype genotype = oface::SampleMeasurementConfigs(*space, 1, true, 9).front();
  for (size_t g = 0; g < genotype.size(); ++g) {
    if (oface::IsBitsGene(space->genes()[g])) genotype[g] = g % 2 == 0 ? 2 : 3;
  }
  const absl::StatusOr<SupernetHost::Export> exported =
      host->ExportSubnet("fmnist_lowbit", genotype, nullptr);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_GE(exported->accuracy, 0.0);
  EXPECT_LE(exported->accuracy, 1.0);
  EXPECT_FALSE(exported->torchscript.empty());
  EXPECT_EQ(exported->supernet_version, host->Version("fmnist_lowbit"));

  // fmnist_mbv2's weights under fmnist_lowbit/ are another spec's: named, not loaded.
  std::unique_ptr<oface::Supernet> mbv2 =
      oface::Supernet::Create(oface::FashionMnistSpec(), 8).value();
  ASSERT_TRUE(mbv2->SaveWeights(dir + "/fmnist_lowbit/supernet_quant.pt").ok());
  const absl::Status foreign = SupernetHost::Create(SmallOptions(dir)).status();
  EXPECT_EQ(foreign.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(foreign.message(), HasSubstr("fmnist_lowbit/supernet_quant.pt do not load"));
}

// The caller learns what is missing; the file's path is in the server's log only (it is the
// operator's to see).
TEST(SupernetHostSetupTest, MissingDatasetIsAPreconditionWithoutTheServersPath) {
  SupernetHost::Options options = SmallOptions(MakeDataDir("no_dataset"));
  options.dataset_dir = oface::TestTempPath("no_such_dataset");
  std::unique_ptr<SupernetHost> host = SupernetHost::Create(options).value();
  const std::unique_ptr<oface::SearchSpace> space =
      oface::NewMbConvQuantSpace(oface::FashionMnistSpec()).value();
  const absl::Status status =
      host->Measure("fmnist_mbv2", oface::SampleMeasurementConfigs(*space, 1, false, 1), false,
                    oface::DataSplit::kValidation, 0, nullptr)
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("dataset (Fashion-MNIST) is unavailable"));
  EXPECT_THAT(status.message(), ::testing::Not(HasSubstr("no_such_dataset")));
}

}  // namespace
}  // namespace apq::server
