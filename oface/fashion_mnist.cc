#include "oface/fashion_mnist.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "oface/rng.h"

namespace apq::oface {
namespace {

constexpr uint32_t kImagesMagic = 2051;
constexpr uint32_t kLabelsMagic = 2049;
// Far above Fashion-MNIST's 60,000 x 28 x 28; guards the allocation against a corrupt header.
constexpr uint64_t kMaxBytes = uint64_t{1} << 31;

struct GzCloser {
  void operator()(gzFile_s* file) const { gzclose(file); }
};

// An open (possibly gzip-compressed) file; gzread reads plain files as they are.
class IdxFile {
 public:
  static absl::StatusOr<IdxFile> Open(const std::string& path) {
    errno = 0;
    gzFile file = gzopen(path.c_str(), "rb");
    if (file == nullptr) {
      const int error = errno;
      const std::string message =
          absl::StrCat("cannot open dataset file ", path, ": ", std::strerror(error));
      if (error == ENOENT) return absl::NotFoundError(message);
      return absl::UnavailableError(message);
    }
    return IdxFile(path, file);
  }

  // Reads exactly `size` bytes; DATA_LOSS naming the file and `what` otherwise.
  absl::Status Read(void* data, uint64_t size, const std::string& what) {
    auto* out = static_cast<char*>(data);
    uint64_t done = 0;
    while (done < size) {
      const unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(size - done, 1u << 30));
      const int got = gzread(file_.get(), out + done, chunk);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(file_.get(), &code);
        return absl::DataLossError(absl::StrCat("dataset file ", path_,
                                                " is corrupt while reading ", what, ": ", message));
      }
      if (got == 0) {
        return absl::DataLossError(absl::StrCat("dataset file ", path_, " is truncated: ", what,
                                                " needs ", size, " bytes, found ", done));
      }
      done += static_cast<uint64_t>(got);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint32_t> ReadBigEndian(const std::string& what) {
    unsigned char bytes[4];
    RETURN_IF_ERROR(Read(bytes, 4, what));
    return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
           uint32_t{bytes[3]};
  }

  const std::string& path() const { return path_; }

 private:
  IdxFile(std::string path, gzFile file) : path_(std::move(path)), file_(file) {}

  std::string path_;
  std::unique_ptr<gzFile_s, GzCloser> file_;
};

absl::Status CheckMagic(const IdxFile& file, uint32_t magic, uint32_t expected) {
  if (magic == expected) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("dataset file ", file.path(), " has magic number ", magic, ", expected ",
                   expected, " (", expected == kImagesMagic ? "IDX images" : "IDX labels", ")"));
}

}  // namespace

absl::StatusOr<LabeledImages> ReadIdxImagesAndLabels(const std::string& images_path,
                                                     const std::string& labels_path, int limit) {
  ASSIGN_OR_RETURN(IdxFile images_file, IdxFile::Open(images_path));
  ASSIGN_OR_RETURN(IdxFile labels_file, IdxFile::Open(labels_path));

  ASSIGN_OR_RETURN(const uint32_t images_magic, images_file.ReadBigEndian("the magic number"));
  RETURN_IF_ERROR(CheckMagic(images_file, images_magic, kImagesMagic));
  ASSIGN_OR_RETURN(const uint32_t image_count, images_file.ReadBigEndian("the image count"));
  ASSIGN_OR_RETURN(const uint32_t rows, images_file.ReadBigEndian("the row count"));
  ASSIGN_OR_RETURN(const uint32_t cols, images_file.ReadBigEndian("the column count"));
  const uint64_t image_bytes = uint64_t{rows} * cols;
  if (rows == 0 || cols == 0 || uint64_t{image_count} * image_bytes > kMaxBytes) {
    return absl::DataLossError(absl::StrCat("dataset file ", images_path, " declares ", image_count,
                                            " images of ", rows, "x", cols, " pixels"));
  }

  ASSIGN_OR_RETURN(const uint32_t labels_magic, labels_file.ReadBigEndian("the magic number"));
  RETURN_IF_ERROR(CheckMagic(labels_file, labels_magic, kLabelsMagic));
  ASSIGN_OR_RETURN(const uint32_t label_count, labels_file.ReadBigEndian("the label count"));
  if (label_count != image_count) {
    return absl::DataLossError(absl::StrCat("dataset file ", labels_path, " holds ", label_count,
                                            " labels but ", images_path, " holds ", image_count,
                                            " images"));
  }

  LabeledImages result;
  result.count = static_cast<int>(image_count);
  if (limit > 0) result.count = std::min(result.count, limit);
  result.rows = static_cast<int>(rows);
  result.cols = static_cast<int>(cols);
  result.pixels.resize(static_cast<size_t>(result.count) * image_bytes);
  result.labels.resize(result.count);
  RETURN_IF_ERROR(images_file.Read(result.pixels.data(), result.pixels.size(),
                                   absl::StrCat(result.count, " images")));
  RETURN_IF_ERROR(labels_file.Read(result.labels.data(), result.labels.size(),
                                   absl::StrCat(result.count, " labels")));
  for (int i = 0; i < result.count; ++i) {
    if (result.labels[i] >= kFashionMnistClasses) {
      return absl::DataLossError(absl::StrCat("dataset file ", labels_path, ": label ", i, " is ",
                                              int{result.labels[i]}, ", outside 0..",
                                              kFashionMnistClasses - 1));
    }
  }
  return result;
}

absl::StatusOr<LabeledImages> LoadFashionMnist(const std::string& dir, FashionMnistSplit split,
                                               int limit) {
  const std::string prefix = split == FashionMnistSplit::kTrain ? "train" : "t10k";
  return ReadIdxImagesAndLabels(absl::StrCat(dir, "/", prefix, "-images-idx3-ubyte.gz"),
                                absl::StrCat(dir, "/", prefix, "-labels-idx1-ubyte.gz"), limit);
}

std::vector<int> SubsetIndices(int count, int size, uint64_t seed) {
  count = std::max(count, 0);
  size = std::clamp(size, 0, count);
  std::vector<int> order(count);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed);
  // The first `size` steps of a Fisher-Yates shuffle (own generator: portable).
  for (int i = 0; i < size; ++i) {
    const int j = i + static_cast<int>(rng.Uniform(static_cast<uint32_t>(count - i)));
    std::swap(order[i], order[j]);
  }
  order.resize(size);
  std::sort(order.begin(), order.end());
  return order;
}

LabeledImages SelectImages(const LabeledImages& images, const std::vector<int>& indices) {
  LabeledImages result;
  result.count = static_cast<int>(indices.size());
  result.rows = images.rows;
  result.cols = images.cols;
  const size_t image_bytes = static_cast<size_t>(images.rows) * images.cols;
  result.pixels.resize(indices.size() * image_bytes);
  result.labels.resize(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    std::memcpy(result.pixels.data() + i * image_bytes,
                images.pixels.data() + static_cast<size_t>(indices[i]) * image_bytes, image_bytes);
    result.labels[i] = images.labels[indices[i]];
  }
  return result;
}

const char* DataSplitName(DataSplit split) {
  switch (split) {
    case DataSplit::kTrain:
      return "train";
    case DataSplit::kValidation:
      return "validation";
    case DataSplit::kTest:
      return "test";
  }
  return "unknown";
}

absl::StatusOr<DataSplit> DataSplitFromName(absl::string_view name) {
  for (const DataSplit split : {DataSplit::kTrain, DataSplit::kValidation, DataSplit::kTest}) {
    if (name == DataSplitName(split)) return split;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("split: \"", name, "\" is not one of train, validation, test"));
}

std::vector<int> TrainingFileIndices(DataSplit split) {
  std::vector<int> validation =
      SubsetIndices(kTrainingFileImages, kValidationImages, kValidationSplitSeed);
  if (split == DataSplit::kValidation) return validation;
  std::vector<int> train;
  train.reserve(kTrainingFileImages - kValidationImages);
  size_t next = 0;
  for (int index = 0; index < kTrainingFileImages; ++index) {
    if (next < validation.size() && validation[next] == index) {
      ++next;
    } else {
      train.push_back(index);
    }
  }
  return train;
}

std::string IndexListHash(const std::vector<int>& indices) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const int index : indices) {
    const auto value = static_cast<uint32_t>(index);
    for (int byte = 0; byte < 4; ++byte) {
      hash ^= (value >> (8 * byte)) & 0xffu;
      hash *= 0x100000001b3ULL;
    }
  }
  return absl::StrFormat("%016x", hash);
}

absl::StatusOr<LabeledImages> LoadTrainingFile(const std::string& dir) {
  ASSIGN_OR_RETURN(LabeledImages file, LoadFashionMnist(dir, FashionMnistSplit::kTrain));
  if (file.count != kTrainingFileImages) {
    return absl::DataLossError(absl::StrCat("the training file in ", dir, " holds ", file.count,
                                            " images, not the ", kTrainingFileImages,
                                            " the train/validation split is defined on"));
  }
  return file;
}

LabeledImages SelectTrainingFileSplit(const LabeledImages& training_file, DataSplit split,
                                      int limit) {
  std::vector<int> indices = TrainingFileIndices(split);
  if (limit > 0 && static_cast<size_t>(limit) < indices.size()) indices.resize(limit);
  return SelectImages(training_file, indices);
}

absl::StatusOr<LabeledImages> LoadFashionMnistSplit(const std::string& dir, DataSplit split,
                                                    int limit) {
  if (split == DataSplit::kTest) return LoadFashionMnist(dir, FashionMnistSplit::kTest, limit);
  ASSIGN_OR_RETURN(const LabeledImages file, LoadTrainingFile(dir));
  return SelectTrainingFileSplit(file, split, limit);
}

}  // namespace apq::oface
