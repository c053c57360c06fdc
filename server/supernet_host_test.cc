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
  const std::string dir = oface::TestTempPath(name);
  std::filesystem::create_directories(dir + "/fmnist_mbv2");
  std::unique_ptr<oface::Supernet> supernet =
      oface::Supernet::Create(oface::FashionMnistSpec(), 7).value();
  EXPECT_TRUE(supernet->SaveWeights(dir + "/fmnist_mbv2/supernet_fp32.pt").ok());
  if (with_quant) EXPECT_TRUE(supernet->SaveWeights(dir + "/fmnist_mbv2/supernet_quant.pt").ok());
  return dir;
}

SupernetHost::Options SmallOptions(const std::string& data_dir) {
  SupernetHost::Options options;
  options.data_dir = data_dir;
  options.calibration_images = 200;
  return options;
}

class SupernetHostTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new std::string(MakeDataDir("host_data"));
    absl::StatusOr<std::unique_ptr<SupernetHost>> host =
        SupernetHost::Create(SmallOptions(*data_dir_));
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = host->release();
    space_ = oface::NewMbConvQuantSpace(oface::FashionMnistSpec()).value().release();
  }

  static std::string* data_dir_;
  static SupernetHost* host_;
  static oface::SearchSpace* space_;
};
std::string* SupernetHostTest::data_dir_ = nullptr;
SupernetHost* SupernetHostTest::host_ = nullptr;
oface::SearchSpace* SupernetHostTest::space_ = nullptr;

TEST_F(SupernetHostTest, KnowsItsSupernetsAndVersions) {
  EXPECT_TRUE(host_->Has("fmnist_mbv2"));
  EXPECT_FALSE(host_->Has("apq_mbv2"));
  const std::string version = host_->Version("fmnist_mbv2");
  EXPECT_THAT(version, HasSubstr("fmnist_mbv2@"));
  EXPECT_EQ(version.size(), std::string("fmnist_mbv2@").size() + 12);
  EXPECT_EQ(host_->Version("apq_mbv2"), "");
  const absl::StatusOr<std::vector<SupernetHost::Measurement>> none =
      host_->Measure("apq_mbv2", {}, false, 0, nullptr);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SupernetHostTest, MeasuresAsTheSupernetDoes) {
  const std::vector<oface::Genotype> genotypes =
      oface::SampleMeasurementConfigs(*space_, 2, /*quantized=*/true, 3);
  absl::StatusOr<std::vector<SupernetHost::Measurement>> first =
      host_->Measure("fmnist_mbv2", genotypes, /*quantized=*/true, 300, nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 2u);
  for (const SupernetHost::Measurement& measurement : *first) {
    EXPECT_GE(measurement.accuracy, 0.0);
    EXPECT_LE(measurement.accuracy, 1.0);
    EXPECT_EQ(measurement.method, oface::kMeasuredQuantFromSupernet);
    EXPECT_GT(measurement.seconds, 0.0);
  }
  // The same numbers as a measurement job's on the same images.
  std::unique_ptr<oface::Supernet> direct =
      oface::Supernet::Create(oface::FashionMnistSpec(), 1).value();
  ASSERT_TRUE(direct->LoadWeights(*data_dir_ + "/fmnist_mbv2/supernet_quant.pt").ok());
  const oface::EvaluationImages images =
      oface::LoadEvaluationImages(oface::kDefaultFashionMnistDir, 200, 300, 1).value();
  ASSERT_TRUE(direct->SetActiveSubnet(genotypes[1]).ok());
  direct->SetQuantized(true);
  oface::EvalOptions eval;
  eval.eval_batch_size = 250;
  EXPECT_EQ(direct->Evaluate(images.calibration, images.test, eval)->accuracy,
            (*first)[1].accuracy);

  absl::StatusOr<std::vector<SupernetHost::Measurement>> fp32 =
      host_->Measure("fmnist_mbv2", genotypes, /*quantized=*/false, 300, nullptr);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  EXPECT_EQ((*fp32)[0].method, oface::kMeasuredFp32);
}

TEST_F(SupernetHostTest, BadArgumentsAndCancellation) {
  const std::vector<oface::Genotype> genotypes =
      oface::SampleMeasurementConfigs(*space_, 1, /*quantized=*/true, 3);
  EXPECT_EQ(host_->Measure("fmnist_mbv2", genotypes, true, -1, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      host_->Measure("fmnist_mbv2", genotypes, true, 300, [] { return true; }).status().code(),
      absl::StatusCode::kCancelled);
  EXPECT_EQ(host_->ExportSubnet("fmnist_mbv2", genotypes[0], [] { return true; }).status().code(),
            absl::StatusCode::kCancelled);
  oface::Genotype broken = genotypes[0];
  broken[0] = 4;  // ks[0] is one of {3, 5, 7}.
  const absl::Status status = host_->Measure("fmnist_mbv2", {broken}, true, 300, nullptr).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("ks[0]"));
}

TEST_F(SupernetHostTest, ExportLoadsAndReproducesItsAccuracy) {
  const oface::Genotype genotype =
      oface::SampleMeasurementConfigs(*space_, 1, /*quantized=*/true, 5).front();
  absl::StatusOr<SupernetHost::Export> exported =
      host_->ExportSubnet("fmnist_mbv2", genotype, nullptr);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(exported->supernet_version, host_->Version("fmnist_mbv2"));
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

TEST(SupernetHostSetupTest, MissingDatasetIsAPreconditionNamingTheFile) {
  SupernetHost::Options options = SmallOptions(MakeDataDir("no_dataset"));
  options.dataset_dir = oface::TestTempPath("no_such_dataset");
  std::unique_ptr<SupernetHost> host = SupernetHost::Create(options).value();
  const std::unique_ptr<oface::SearchSpace> space =
      oface::NewMbConvQuantSpace(oface::FashionMnistSpec()).value();
  const absl::Status status =
      host->Measure("fmnist_mbv2", oface::SampleMeasurementConfigs(*space, 1, false, 1), false, 0,
                    nullptr)
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("no_such_dataset"));
}

}  // namespace
}  // namespace apq::server
