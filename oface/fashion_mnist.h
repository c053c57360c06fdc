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

enum class FashionMnistSplit { kTrain, kTest };

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
