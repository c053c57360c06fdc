#include "clients/dataset_records.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "clients/command_line.h"
#include "gtest/gtest.h"
#include "oface/measurement_csv.h"

namespace apq::client {
namespace {

std::string WriteTemp(const std::string& name, const std::string& content) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path, std::ios::trunc) << content;
  return path;
}

TEST(DatasetRecordsTest, CsvWithTheSplitColumnKeepsIt) {
  const std::string path =
      WriteTemp("with_split.csv", std::string(oface::kMeasurementCsvHeader) +
                                      "\n\"[1]\",0.5,fp32,1.5,7,validation\n\"[2]\",0.25,"
                                      "quant-from-supernet,2,7,validation");
  apq::v1::UploadDatasetRequest request;
  AddRecordsFromFile(path, &request);
  ASSERT_EQ(request.records_size(), 2);
  EXPECT_EQ(request.records(0).config_json(), "[1]");
  EXPECT_EQ(request.records(0).split(), "validation");
  EXPECT_EQ(request.records(1).method(), "quant-from-supernet");
  EXPECT_EQ(request.records(1).seconds(), 2);
}

TEST(DatasetRecordsTest, CsvOfTheEarlierFormatUploadsWithoutASplit) {
  const std::string path =
      WriteTemp("without_split.csv", std::string(oface::kMeasurementCsvHeaderWithoutSplit) +
                                         "\n\"[1]\",0.5,fp32,1.5,7\n");
  apq::v1::UploadDatasetRequest request;
  AddRecordsFromFile(path, &request);
  ASSERT_EQ(request.records_size(), 1);
  EXPECT_EQ(request.records(0).split(), "");
}

// Lines ended by "\r\n", as Python's csv module writes them, read as the same records.
TEST(DatasetRecordsTest, CsvWithCarriageReturnsReadsTheSame) {
  const std::string path =
      WriteTemp("crlf.csv", std::string(oface::kMeasurementCsvHeader) +
                                "\r\n\"[1]\",0.5,fp32,1.5,7,validation\r\n\"[2]\",0.25,"
                                "quant-from-supernet,2,7,validation\r\n");
  apq::v1::UploadDatasetRequest request;
  AddRecordsFromFile(path, &request);
  ASSERT_EQ(request.records_size(), 2);
  EXPECT_EQ(request.records(0).split(), "validation");
  EXPECT_EQ(request.records(1).split(), "validation");
  EXPECT_EQ(request.records(1).seconds(), 2);
}

TEST(DatasetRecordsTest, JsonRecordsMayNameTheirSplit) {
  const std::string path = WriteTemp(
      "records.json",
      R"([{"config": [1], "accuracy": 0.5, "split": "test"}, {"config": [2], "accuracy": 0.6}])");
  apq::v1::UploadDatasetRequest request;
  AddRecordsFromFile(path, &request);
  ASSERT_EQ(request.records_size(), 2);
  EXPECT_EQ(request.records(0).split(), "test");
  EXPECT_EQ(request.records(1).split(), "");
  const std::string bad =
      WriteTemp("bad.json", R"([{"config": [1], "accuracy": 0.5, "split": 3}])");
  EXPECT_THROW(AddRecordsFromFile(bad, &request), UsageError);
}

}  // namespace
}  // namespace apq::client
