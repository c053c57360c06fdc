#include "oface/fashion_mnist.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::oface {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

void BigEndian(uint32_t value, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}

std::string WriteGz(const std::string& name, const std::string& bytes) {
  std::string path = TempPath(name);
  gzFile file = gzopen(path.c_str(), "wb");
  gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(file);
  return path;
}

std::string WritePlain(const std::string& name, const std::string& bytes) {
  std::string path = TempPath(name);
  FILE* file = std::fopen(path.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), file);
  std::fclose(file);
  return path;
}

// IDX images (count x 2 x 2) and labels, with `stored` images' bytes actually present.
std::string Images(uint32_t magic, uint32_t count, uint32_t stored) {
  std::string bytes;
  BigEndian(magic, &bytes);
  BigEndian(count, &bytes);
  BigEndian(2, &bytes);
  BigEndian(2, &bytes);
  bytes.append(size_t{stored} * 4, '\x7f');
  return bytes;
}

std::string Labels(uint32_t count, char label = 3) {
  std::string bytes;
  BigEndian(2049, &bytes);
  BigEndian(count, &bytes);
  bytes.append(count, label);
  return bytes;
}

TEST(FashionMnistTest, ReadsTheRealFiles) {
  const absl::StatusOr<LabeledImages> train =
      LoadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTrain, 300);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->count, 300);
  EXPECT_EQ(train->rows, 28);
  EXPECT_EQ(train->cols, 28);
  EXPECT_EQ(train->pixels.size(), 300u * 28 * 28);
  std::vector<int> per_class(kFashionMnistClasses);
  for (uint8_t label : train->labels) ++per_class[label];
  for (int count : per_class) EXPECT_GT(count, 10);

  const absl::StatusOr<LabeledImages> test =
      LoadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTest);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->count, 10000);
}

TEST(FashionMnistTest, ReadsSyntheticFilesPlainAndCompressed) {
  const std::string images = WriteGz("ok-images.gz", Images(2051, 5, 5));
  const std::string labels = WritePlain("ok-labels", Labels(5, 7));
  const absl::StatusOr<LabeledImages> data = ReadIdxImagesAndLabels(images, labels);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->count, 5);
  EXPECT_EQ(data->labels, std::vector<uint8_t>(5, 7));
  EXPECT_EQ(data->pixels, std::vector<uint8_t>(20, 0x7f));
}

TEST(FashionMnistTest, MissingFileIsNotFoundNamingIt) {
  const std::string labels = WriteGz("labels-for-missing.gz", Labels(5));
  const absl::StatusOr<LabeledImages> data =
      ReadIdxImagesAndLabels(TempPath("no-such-images.gz"), labels);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(data.status().message(), HasSubstr("no-such-images.gz"));

  const absl::StatusOr<LabeledImages> dir =
      LoadFashionMnist(TempPath("empty-dir"), FashionMnistSplit::kTest);
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(dir.status().message(), HasSubstr("t10k-images-idx3-ubyte.gz"));
}

TEST(FashionMnistTest, WrongMagicIsDataLossNamingTheFile) {
  const std::string images = WriteGz("swapped-images.gz", Labels(5));
  const std::string labels = WriteGz("swapped-labels.gz", Labels(5));
  const absl::StatusOr<LabeledImages> data = ReadIdxImagesAndLabels(images, labels);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), HasSubstr("swapped-images.gz"));
  EXPECT_THAT(data.status().message(), HasSubstr("magic number 2049, expected 2051"));
}

TEST(FashionMnistTest, TruncatedDataIsDataLossNamingTheFile) {
  const std::string images = WriteGz("short-images.gz", Images(2051, 10, 6));
  const std::string labels = WriteGz("short-labels.gz", Labels(10));
  const absl::StatusOr<LabeledImages> data = ReadIdxImagesAndLabels(images, labels);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), HasSubstr("short-images.gz is truncated"));
}

TEST(FashionMnistTest, CountMismatchIsDataLossNamingBothFiles) {
  const std::string images = WriteGz("count-images.gz", Images(2051, 5, 5));
  const std::string labels = WriteGz("count-labels.gz", Labels(4));
  const absl::StatusOr<LabeledImages> data = ReadIdxImagesAndLabels(images, labels);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), HasSubstr("count-labels.gz holds 4 labels"));
  EXPECT_THAT(data.status().message(), HasSubstr("count-images.gz holds 5 images"));
}

TEST(FashionMnistTest, CorruptGzipIsDataLossNamingTheFile) {
  // A gzip header followed by garbage.
  std::string bytes("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
  bytes.append(200, '\xab');
  const std::string images = WritePlain("corrupt-images.gz", bytes);
  const std::string labels = WriteGz("corrupt-labels.gz", Labels(5));
  const absl::StatusOr<LabeledImages> data = ReadIdxImagesAndLabels(images, labels);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), HasSubstr("corrupt-images.gz"));
}

TEST(FashionMnistTest, LabelOutOfRangeIsDataLoss) {
  const std::string images = WriteGz("label-images.gz", Images(2051, 3, 3));
  const std::string labels = WriteGz("label-labels.gz", Labels(3, 12));
  const absl::StatusOr<LabeledImages> data = ReadIdxImagesAndLabels(images, labels);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(data.status().message(), HasSubstr("label-labels.gz: label 0 is 12"));
}

TEST(FashionMnistTest, SubsetIsDeterministicDistinctAndSorted) {
  const std::vector<int> a = SubsetIndices(1000, 100, 7);
  EXPECT_EQ(a, SubsetIndices(1000, 100, 7));
  EXPECT_NE(a, SubsetIndices(1000, 100, 8));
  ASSERT_EQ(a.size(), 100u);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_LT(a[i - 1], a[i]);
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 1000);
  EXPECT_EQ(SubsetIndices(10, 50, 1).size(), 10u);

  LabeledImages images;
  images.count = 3;
  images.rows = 1;
  images.cols = 2;
  images.pixels = {1, 2, 3, 4, 5, 6};
  images.labels = {0, 1, 2};
  const LabeledImages selected = SelectImages(images, {0, 2});
  EXPECT_EQ(selected.pixels, (std::vector<uint8_t>{1, 2, 5, 6}));
  EXPECT_EQ(selected.labels, (std::vector<uint8_t>{0, 2}));
}

TEST(DataSplitTest, TrainAndValidationPartitionTheTrainingFileForGood) {
  const std::vector<int> validation = TrainingFileIndices(DataSplit::kValidation);
  const std::vector<int> train = TrainingFileIndices(DataSplit::kTrain);
  ASSERT_EQ(validation.size(), 10000u);
  ASSERT_EQ(train.size(), 50000u);
  EXPECT_TRUE(std::is_sorted(validation.begin(), validation.end()));
  EXPECT_TRUE(std::is_sorted(train.begin(), train.end()));
  std::vector<int> all = train;
  all.insert(all.end(), validation.begin(), validation.end());
  std::sort(all.begin(), all.end());
  for (int i = 0; i < kTrainingFileImages; ++i) ASSERT_EQ(all[i], i) << "disjoint and complete";
  // The published fingerprints (data/README.md): a change of seed or of the subset rule
  // changes them, and with them the meaning of every stored measurement.
  EXPECT_EQ(IndexListHash(validation), "c52d2180cbfa3405");
  EXPECT_EQ(IndexListHash(train), "91bac61372d209d9");
  EXPECT_EQ(TrainingFileIndices(DataSplit::kValidation), validation) << "deterministic";
}

TEST(DataSplitTest, IndexListHashIsFnv1aOverLittleEndianIndices) {
  EXPECT_EQ(IndexListHash({}), "cbf29ce484222325");
  EXPECT_NE(IndexListHash({1, 2}), IndexListHash({2, 1}));
  EXPECT_NE(IndexListHash({256}), IndexListHash({1}));
}

TEST(DataSplitTest, NamesRoundTripAndUnknownNamesAreRefused) {
  for (const DataSplit split : {DataSplit::kTrain, DataSplit::kValidation, DataSplit::kTest}) {
    EXPECT_EQ(*DataSplitFromName(DataSplitName(split)), split);
  }
  const absl::Status unknown = DataSplitFromName("dev").status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), ::testing::HasSubstr("train, validation, test"));
}

TEST(DataSplitTest, LoadsTheSplitsOfTheRealFiles) {
  absl::StatusOr<LabeledImages> validation =
      LoadFashionMnistSplit(kDefaultFashionMnistDir, DataSplit::kValidation);
  ASSERT_TRUE(validation.ok()) << validation.status();
  EXPECT_EQ(validation->count, 10000);
  absl::StatusOr<LabeledImages> train =
      LoadFashionMnistSplit(kDefaultFashionMnistDir, DataSplit::kTrain, 500);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->count, 500);
  absl::StatusOr<LabeledImages> file =
      LoadFashionMnist(kDefaultFashionMnistDir, FashionMnistSplit::kTrain);
  ASSERT_TRUE(file.ok()) << file.status();
  // Image i of a split is the file's image at the split's i-th index.
  const size_t bytes = size_t{28} * 28;
  const std::vector<int> indices = TrainingFileIndices(DataSplit::kValidation);
  for (int i : {0, 1, 4999, 9999}) {
    EXPECT_EQ(0, std::memcmp(validation->pixels.data() + i * bytes,
                             file->pixels.data() + static_cast<size_t>(indices[i]) * bytes, bytes));
    EXPECT_EQ(validation->labels[i], file->labels[indices[i]]);
  }
  absl::StatusOr<LabeledImages> test =
      LoadFashionMnistSplit(kDefaultFashionMnistDir, DataSplit::kTest, 100);
  ASSERT_TRUE(test.ok());
  EXPECT_EQ(test->count, 100);
}

TEST(DataSplitTest, ATrainingFileOfAnotherSizeIsRefused) {
  const std::string dir = TempPath("short_training_file");
  std::filesystem::create_directories(dir);
  WriteGz("short_training_file/train-images-idx3-ubyte.gz", Images(2051, 10, 10));
  WriteGz("short_training_file/train-labels-idx1-ubyte.gz", Labels(10));
  const absl::Status status = LoadFashionMnistSplit(dir, DataSplit::kTrain).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), ::testing::HasSubstr("60000"));
}

}  // namespace
}  // namespace apq::oface
