// Reader of the Fashion-MNIST dataset in its IDX format, gzip-compressed as Debian's
// dataset-fashion-mnist installs it (/usr/share/datasets/fashion-mnist/
// {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz). Free of LibTorch: the supernet code turns
// the bytes into normalised tensors (oface/supernet_module.h ImagesToTensor).
#ifndef APQ_OFACE_FASHION_MNIST_H_
#define APQ_OFACE_FASHION_MNIST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace apq::oface {

inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";
// Mean and standard deviation of the training pixels scaled to [0, 1]; inputs are fed to the
// network as (pixel / 255 - mean) / std.
inline constexpr float kFashionMnistMean = 0.2860f;
inline constexpr float kFashionMnistStd = 0.3530f;
inline constexpr int kFashionMnistClasses = 10;

// `count` images of rows x cols bytes, row-major, image after image, and their labels.
struct LabeledImages {
  int count = 0;
  int rows = 0;
  int cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols
  std::vector<uint8_t> labels;  // count, each in [0, kFashionMnistClasses)
};

// The dataset's two files: the 60,000 training images and the 10,000 test images.
enum class FashionMnistSplit { kTrain, kTest };

// The splits every measurement names (never select on test): the training file is split once,
// by a fixed seed, into 50,000 images that train supernets and recalibrate their batch norms
// and 10,000 validation images that every measurement record (predictor labels, finalist
// verification, model choice) is measured on; the test file is touched only by final reports.
enum class DataSplit { kTrain, kValidation, kTest };
inline constexpr int kTrainingFileImages = 60000;
inline constexpr int kValidationImages = 10000;
// The validation images are SubsetIndices(kTrainingFileImages, kValidationImages,
// kValidationSplitSeed) of the training file; the train split is the rest. Changing the seed
// changes every measurement's meaning: it is fixed for good.
inline constexpr uint64_t kValidationSplitSeed = 20261206;

// "train", "validation", "test".
const char* DataSplitName(DataSplit split);
// INVALID_ARGUMENT listing the names for any other string.
absl::StatusOr<DataSplit> DataSplitFromName(absl::string_view name);

// The training file's indices of the train or validation split, ascending (disjoint, together
// every index of the file). Precondition: split is not kTest.
std::vector<int> TrainingFileIndices(DataSplit split);

// A fingerprint of an index list for provenance and tests: FNV-1a 64 over the indices as
// little-endian 32-bit integers, as 16 lower-case hex digits.
std::string IndexListHash(const std::vector<int>& indices);

// The split's images, in file order: train and validation from the training file (which must
// hold kTrainingFileImages images), test from the test file. `limit` > 0 keeps the first
// `limit` images of the split. Errors as LoadFashionMnist.
absl::StatusOr<LabeledImages> LoadFashionMnistSplit(const std::string& dir, DataSplit split,
                                                    int limit = 0);

// The training file of `dir`, all of it: what the train and validation splits are selected
// from, for a caller that needs both without reading and decompressing the file twice.
// DATA_LOSS when it does not hold kTrainingFileImages images; errors as LoadFashionMnist.
absl::StatusOr<LabeledImages> LoadTrainingFile(const std::string& dir);

// The train or validation split of a training file that LoadTrainingFile returned, as
// LoadFashionMnistSplit gives it. Precondition: split is not kTest.
LabeledImages SelectTrainingFileSplit(const LabeledImages& training_file, DataSplit split,
                                      int limit = 0);

// Reads an IDX image file (magic 2051) and its label file (magic 2049), gzip-compressed or
// plain. `limit` > 0 keeps only the first `limit` images. Errors name the file: NOT_FOUND when
// it is missing, DATA_LOSS when it is corrupt (bad gzip stream, wrong magic, counts that
// disagree between the two files, truncated data, a label outside 0..9).
absl::StatusOr<LabeledImages> ReadIdxImagesAndLabels(const std::string& images_path,
                                                     const std::string& labels_path, int limit = 0);

// The split's two files in `dir` ("train-..." or "t10k-..." with the ".gz" suffix).
absl::StatusOr<LabeledImages> LoadFashionMnist(const std::string& dir, FashionMnistSplit split,
                                               int limit = 0);

// A deterministic subset of `size` distinct indices of [0, count) for a seed (a seeded
// shuffle's prefix), in ascending order: the same seed gives the same images on every
// platform. `size` is clamped to [0, count].
std::vector<int> SubsetIndices(int count, int size, uint64_t seed);

// The images at `indices` (each in [0, images.count)).
LabeledImages SelectImages(const LabeledImages& images, const std::vector<int>& indices);

}  // namespace apq::oface

#endif  // APQ_OFACE_FASHION_MNIST_H_
