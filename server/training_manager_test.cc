#include "server/training_manager.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/measurement_csv.h"

namespace apq::server {
namespace {

using ::testing::HasSubstr;

// An upload of `count` shipped Fashion-MNIST records, methods left empty.
apq::v1::UploadDatasetRequest Upload(int count) {
  absl::StatusOr<std::vector<oface::MeasurementRecord>> shipped =
      oface::ReadMeasurementCsv("data/fmnist_mbv2/measurements.csv");
  EXPECT_TRUE(shipped.ok()) << shipped.status();
  apq::v1::UploadDatasetRequest request;
  request.set_name("mine");
  request.set_space("fmnist_mbv2");
  for (int i = 0; i < count && shipped.ok(); ++i) {
    apq::v1::MeasurementRecord* record = request.add_records();
    record->set_config_json((*shipped)[i].config_json);
    record->set_accuracy((*shipped)[i].accuracy);
  }
  return request;
}

class UploadValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<oface::SearchSpace>> space =
        oface::NewMbConvQuantSpace(oface::FashionMnistSpec());
    ASSERT_TRUE(space.ok()) << space.status();
    space_ = *std::move(space);
  }

  void ExpectRefused(const apq::v1::UploadDatasetRequest& request, const std::string& mention) {
    absl::StatusOr<std::vector<MeasurementRow>> rows = MeasurementRowsFromUpload(*space_, request);
    EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument) << rows.status();
    EXPECT_THAT(rows.status().message(), HasSubstr(mention));
  }

  std::unique_ptr<oface::SearchSpace> space_;
};

TEST_F(UploadValidationTest, ValidRecordsBecomeCanonicalRowsWithTheDefaultMethod) {
  apq::v1::UploadDatasetRequest request = Upload(10);
  const std::string canonical = request.records(0).config_json();  // The shipped CSV's form.
  // Whitespace changes the text, not the config.
  request.mutable_records(0)->set_config_json(" " + canonical + "\n");
  absl::StatusOr<std::vector<MeasurementRow>> rows = MeasurementRowsFromUpload(*space_, request);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 10u);
  EXPECT_EQ((*rows)[0].config_json, canonical);
  EXPECT_EQ((*rows)[0].method, "quantized");
  EXPECT_DOUBLE_EQ((*rows)[3].accuracy, request.records(3).accuracy());
}

TEST_F(UploadValidationTest, NanAndRepeatsAreRefusedNamingTheRecord) {
  apq::v1::UploadDatasetRequest request = Upload(10);
  request.mutable_records(2)->set_accuracy(std::numeric_limits<double>::quiet_NaN());
  ExpectRefused(request, "records[2]: accuracy nan is not in [0, 1]");

  request = Upload(10);
  request.mutable_records(5)->set_seconds(std::numeric_limits<double>::infinity());
  ExpectRefused(request, "records[5]: seconds");

  // Methods are shown again in listings: no control characters.
  request = Upload(10);
  request.mutable_records(4)->set_method("quantized\nfp32");
  ExpectRefused(request, "records[4].method: control character 0x0a at byte 9");
  request = Upload(10);
  request.mutable_records(6)->set_method(std::string("q\x1b[31m", 6));
  ExpectRefused(request, "records[6].method: control character 0x1b");

  // The same config written differently is the same record.
  request = Upload(10);
  request.mutable_records(7)->set_config_json(" " + request.records(1).config_json());
  ExpectRefused(request, "records[7]: repeats records[1]");

  // At full precision the bits do not count: the same architecture with other bits repeats.
  request = Upload(10);
  request.mutable_records(3)->set_method("fp32");
  request.mutable_records(8)->set_method("fp32");
  {
    nlohmann::json config = nlohmann::json::parse(request.records(3).config_json());
    for (nlohmann::json& bits : config[1]["pw_w_bits_setting"]) bits = 4;
    request.mutable_records(8)->set_config_json(config.dump());
  }
  ExpectRefused(request, "records[8]: repeats records[3]");

  // The same config measured two ways is two records.
  request = Upload(10);
  request.mutable_records(7)->set_config_json(request.records(1).config_json());
  request.mutable_records(7)->set_method("fp32");
  EXPECT_TRUE(MeasurementRowsFromUpload(*space_, request).ok());

  request = Upload(10);
  request.mutable_records(4)->set_method(std::string(65, 'm'));
  ExpectRefused(request, "records[4].method: longer than 64 bytes");
  ExpectRefused(Upload(7), "too few to split");
}

}  // namespace
}  // namespace apq::server
