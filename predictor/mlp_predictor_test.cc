#include "predictor/mlp_predictor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "predictor/accuracy_predictor.h"
#include "predictor/mlp_testing.h"

namespace apq::predictor {
namespace {

using mlp_testing::Densify;
using mlp_testing::kApqArchInputs;
using mlp_testing::kApqBitInputs;
using mlp_testing::kApqHidden;
using mlp_testing::kApqInputs;
using mlp_testing::RandomApqBatch;
using mlp_testing::RandomApqWeights;
using mlp_testing::RandomLinear;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr char kWeights[] = "data/ofa_mbv3/acc_predictor.f32";
constexpr char kManifest[] = "data/ofa_mbv3/acc_predictor.manifest.json";
constexpr char kGoldenVectors[] = "tests/testdata/golden_ofa_mbv3_note10.json";
constexpr char kGoldenValues[] = "tests/testdata/golden_values.json";
constexpr int kInputs = 128;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file.is_open()) << path;
  return std::string((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << contents;
  ASSERT_TRUE(file.good()) << path;
}

std::string TempPath(const std::string& name) { return ::testing::TempDir() + "/" + name; }

std::unique_ptr<MlpPredictor> Load(int num_threads = 1,
                                   MlpPredictor::Kernel kernel = MlpPredictor::Kernel::kBlocked) {
  MlpPredictor::Options options;
  options.num_threads = num_threads;
  options.kernel = kernel;
  auto loaded = MlpPredictor::LoadRawFloat32(kWeights, kManifest, options);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded.ok() ? *std::move(loaded) : nullptr;
}

struct GoldenVector {
  std::vector<int32_t> indices;
  double accuracy;
};

const std::vector<GoldenVector>& GoldenVectors() {
  static const std::vector<GoldenVector>* vectors = [] {
    auto* result = new std::vector<GoldenVector>;
    for (const nlohmann::json& entry : nlohmann::json::parse(ReadFile(kGoldenVectors))) {
      result->push_back({entry["feature_onehot_indices"].get<std::vector<int32_t>>(),
                         entry["pred_acc"].get<double>()});
    }
    return result;
  }();
  return *vectors;
}

void AddSample(const std::vector<int32_t>& indices, FeatureBatch* batch) {
  batch->mutable_indices()->insert(batch->mutable_indices()->end(), indices.begin(), indices.end());
  batch->EndSample();
}

// The OFA MobileNetV3 encoding (golden_README.md section A).
std::vector<int32_t> EncodeArch(const nlohmann::json& arch) {
  const std::vector<int> ks = arch["ks"].get<std::vector<int>>();
  const std::vector<int> e = arch["e"].get<std::vector<int>>();
  const std::vector<int> d = arch["d"].get<std::vector<int>>();
  const int r = arch["r"].get<int>();
  const auto slot = [](int value, int a, int b) { return value == a ? 0 : value == b ? 1 : 2; };
  std::vector<int32_t> ks_indices;
  std::vector<int32_t> e_indices;
  for (int i = 0; i < 20; ++i) {
    if (i % 4 >= d[i / 4]) continue;
    ks_indices.push_back(3 * i + slot(ks[i], 3, 5));
    e_indices.push_back(60 + 3 * i + slot(e[i], 3, 4));
  }
  std::vector<int32_t> indices = ks_indices;
  indices.insert(indices.end(), e_indices.begin(), e_indices.end());
  indices.push_back(120 + (r - 112) / 16);
  return indices;
}

// Random 0/1 inputs of every density, including all-zero and all-one samples.
FeatureBatch RandomBatch(int size, std::mt19937* rng) {
  FeatureBatch batch;
  for (int s = 0; s < size; ++s) {
    const double density = s == 0 ? 0.0 : s == 1 ? 1.0 : std::uniform_real_distribution<>()(*rng);
    std::bernoulli_distribution active(density);
    for (int i = 0; i < kInputs; ++i) {
      if (active(*rng)) batch.mutable_indices()->push_back(i);
    }
    batch.EndSample();
  }
  return batch;
}

// Predict (the gather-and-sum path) agrees with PredictDense (LibTorch's forward).
void ExpectSparseMatchesDense(const FeatureBatch& batch, MlpPredictor* predictor) {
  std::vector<float> sparse;
  std::vector<float> dense;
  ASSERT_TRUE(predictor->Predict(batch, &sparse).ok());
  ASSERT_TRUE(
      predictor->PredictDense(Densify(batch, predictor->input_size()).data(), batch.size(), &dense)
          .ok());
  ASSERT_EQ(sparse.size(), static_cast<size_t>(batch.size()));
  ASSERT_EQ(dense.size(), static_cast<size_t>(batch.size()));
  for (int i = 0; i < batch.size(); ++i) {
    EXPECT_NEAR(sparse[i], dense[i], 1e-5)
        << predictor->kernel_name() << " batch " << batch.size() << " sample " << i;
  }
}

// 1 and 2 threads, the blocked and the LibTorch kernel, and a clone agree on batches of
// every size. `make(threads, kernel)` makes a predictor.
void ExpectThreadsKernelsAndClonesAgree(
    const std::function<std::unique_ptr<MlpPredictor>(int, MlpPredictor::Kernel)>& make,
    const std::function<FeatureBatch(int, std::mt19937*)>& random_batch) {
  auto one = make(1, MlpPredictor::Kernel::kBlocked);
  auto two = make(2, MlpPredictor::Kernel::kBlocked);
  auto two_torch = make(2, MlpPredictor::Kernel::kLibTorch);
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  ASSERT_NE(two_torch, nullptr);
  std::unique_ptr<AccuracyPredictor> clone = one->Clone();
  std::mt19937 rng(9);
  for (int size : {1, 9, 100, 1000}) {
    const FeatureBatch batch = random_batch(size, &rng);
    std::vector<float> expected;
    std::vector<float> actual;
    std::vector<float> actual_torch;
    std::vector<float> cloned;
    ASSERT_TRUE(one->Predict(batch, &expected).ok());
    ASSERT_TRUE(two->Predict(batch, &actual).ok());
    ASSERT_TRUE(two_torch->Predict(batch, &actual_torch).ok());
    ASSERT_TRUE(clone->Predict(batch, &cloned).ok());
    EXPECT_EQ(cloned, expected);
    for (int i = 0; i < size; ++i) {
      EXPECT_NEAR(actual[i], expected[i], 1e-6) << "batch " << size << " sample " << i;
      EXPECT_NEAR(actual_torch[i], expected[i], 1e-5) << "batch " << size << " sample " << i;
    }
  }
}

TEST(MlpPredictorTest, LoadsTheOfaPredictor) {
  auto predictor = Load();
  ASSERT_NE(predictor, nullptr);
  EXPECT_EQ(predictor->input_size(), 128);
  EXPECT_EQ(predictor->layer_sizes(), (std::vector<int>{128, 400, 400, 400, 1}));
  EXPECT_THAT(predictor->version(), MatchesRegex("acc_predictor-[0-9a-f]{16}"));
  EXPECT_EQ(predictor->version(), Load()->version());
  EXPECT_THAT(predictor->kernel_name(), HasSubstr("blocked-"));
}

TEST(MlpPredictorTest, MatchesGoldenVectorsInOneBatchAndOneByOne) {
  const std::vector<GoldenVector>& golden = GoldenVectors();
  ASSERT_EQ(golden.size(), 300u);
  for (MlpPredictor::Kernel kernel :
       {MlpPredictor::Kernel::kBlocked, MlpPredictor::Kernel::kLibTorch}) {
    auto predictor = Load(1, kernel);
    ASSERT_NE(predictor, nullptr);
    FeatureBatch batch;
    for (const GoldenVector& vector : golden) AddSample(vector.indices, &batch);
    std::vector<float> accuracies;
    ASSERT_TRUE(predictor->Predict(batch, &accuracies).ok());
    ASSERT_EQ(accuracies.size(), golden.size());
    for (size_t i = 0; i < golden.size(); ++i) {
      EXPECT_NEAR(accuracies[i], golden[i].accuracy, 1e-6)
          << predictor->kernel_name() << " vector " << i;
    }
    for (size_t i = 0; i < golden.size(); ++i) {
      FeatureBatch single;
      AddSample(golden[i].indices, &single);
      ASSERT_TRUE(predictor->Predict(single, &accuracies).ok());
      ASSERT_EQ(accuracies.size(), 1u);
      EXPECT_NEAR(accuracies[0], golden[i].accuracy, 1e-6)
          << predictor->kernel_name() << " vector " << i;
    }
  }
}

TEST(MlpPredictorTest, DenseForwardMatchesGoldenVectors) {
  auto predictor = Load();
  ASSERT_NE(predictor, nullptr);
  FeatureBatch batch;
  for (const GoldenVector& vector : GoldenVectors()) AddSample(vector.indices, &batch);
  std::vector<float> accuracies;
  ASSERT_TRUE(
      predictor->PredictDense(Densify(batch, kInputs).data(), batch.size(), &accuracies).ok());
  for (size_t i = 0; i < accuracies.size(); ++i) {
    EXPECT_NEAR(accuracies[i], GoldenVectors()[i].accuracy, 1e-6) << "vector " << i;
  }
}

TEST(MlpPredictorTest, MatchesGoldenArchitectures) {
  const nlohmann::json values = nlohmann::json::parse(ReadFile(kGoldenValues));
  auto predictor = Load();
  ASSERT_NE(predictor, nullptr);
  for (const char* name :
       {"ofa_mbv3_w1.2_tutorial_note10_25ms", "ofa_mbv3_w1.2_max", "ofa_mbv3_w1.2_min"}) {
    FeatureBatch batch;
    AddSample(EncodeArch(values[name]["arch"]), &batch);
    std::vector<float> accuracies;
    ASSERT_TRUE(predictor->Predict(batch, &accuracies).ok());
    EXPECT_NEAR(accuracies[0], values[name]["predicted_acc"].get<double>(), 1e-5) << name;
  }
  // The encoder of this test agrees with the reference one on the golden vectors.
  const nlohmann::json vectors = nlohmann::json::parse(ReadFile(kGoldenVectors));
  for (const nlohmann::json& entry : vectors) {
    std::vector<int32_t> indices = EncodeArch(entry);
    EXPECT_EQ(indices, entry["feature_onehot_indices"].get<std::vector<int32_t>>());
  }
}

TEST(MlpPredictorTest, GatherAndSumEqualsDenseForward) {
  std::mt19937 rng(2026);
  for (MlpPredictor::Kernel kernel :
       {MlpPredictor::Kernel::kBlocked, MlpPredictor::Kernel::kLibTorch}) {
    auto predictor = Load(1, kernel);
    ASSERT_NE(predictor, nullptr);
    // Growing and shrinking batches also exercise buffer reuse.
    for (int size : {1, 7, 100, 301, 13, 100}) {
      ExpectSparseMatchesDense(RandomBatch(size, &rng), predictor.get());
    }
  }
}

TEST(MlpPredictorTest, UnsortedIndicesGiveTheSameResult) {
  auto predictor = Load();
  ASSERT_NE(predictor, nullptr);
  const std::vector<int32_t>& sorted = GoldenVectors()[0].indices;
  FeatureBatch batch;
  AddSample(sorted, &batch);
  AddSample(std::vector<int32_t>(sorted.rbegin(), sorted.rend()), &batch);
  std::vector<float> accuracies;
  ASSERT_TRUE(predictor->Predict(batch, &accuracies).ok());
  EXPECT_NEAR(accuracies[0], accuracies[1], 1e-6);
}

TEST(MlpPredictorTest, EmptyBatchGivesNoPredictions) {
  auto predictor = Load();
  ASSERT_NE(predictor, nullptr);
  std::vector<float> accuracies = {1.0f, 2.0f};
  ASSERT_TRUE(predictor->Predict(FeatureBatch(), &accuracies).ok());
  EXPECT_TRUE(accuracies.empty());
}

TEST(MlpPredictorTest, ClonePredictsIdentically) {
  auto predictor = Load();
  ASSERT_NE(predictor, nullptr);
  std::unique_ptr<AccuracyPredictor> clone = predictor->Clone();
  EXPECT_EQ(clone->input_size(), predictor->input_size());
  std::mt19937 rng(5);
  const FeatureBatch batch = RandomBatch(150, &rng);
  std::vector<float> original;
  std::vector<float> cloned;
  ASSERT_TRUE(predictor->Predict(batch, &original).ok());
  ASSERT_TRUE(clone->Predict(batch, &cloned).ok());
  EXPECT_EQ(original, cloned);
  // The clone outlives its source: the weights are shared, not borrowed.
  predictor.reset();
  ASSERT_TRUE(clone->Predict(batch, &cloned).ok());
  EXPECT_EQ(original, cloned);
}

TEST(MlpPredictorTest, OneAndTwoThreadsAgree) {
  ExpectThreadsKernelsAndClonesAgree(Load, RandomBatch);
}

TEST(MlpPredictorTest, RejectsOutOfRangeAndRepeatedIndices) {
  auto predictor = Load();
  ASSERT_NE(predictor, nullptr);
  std::vector<float> accuracies;
  for (int32_t bad : {128, -1, 1 << 30}) {
    FeatureBatch batch;
    AddSample({1, 2}, &batch);
    AddSample({3, bad}, &batch);
    const absl::Status status = predictor->Predict(batch, &accuracies);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.ToString(), AllOf(HasSubstr(absl::StrCat("feature index ", bad)),
                                         HasSubstr("sample 1"), HasSubstr("[0, 128)")));
  }
  FeatureBatch repeated;
  AddSample({4, 9, 4}, &repeated);
  const absl::Status status = predictor->Predict(repeated, &accuracies);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), AllOf(HasSubstr("feature index 4"), HasSubstr("sample 0")));
  // The predictor still works after rejecting a batch.
  FeatureBatch good;
  AddSample(GoldenVectors()[0].indices, &good);
  ASSERT_TRUE(predictor->Predict(good, &accuracies).ok());
  EXPECT_NEAR(accuracies[0], GoldenVectors()[0].accuracy, 1e-6);
}

TEST(MlpPredictorTest, MissingFilesAreNotFound) {
  const std::string missing = TempPath("no_such_predictor.f32");
  auto loaded = MlpPredictor::LoadRawFloat32(missing, kManifest, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(loaded.status().ToString(), HasSubstr(missing));

  const std::string missing_manifest = TempPath("no_such_manifest.json");
  loaded = MlpPredictor::LoadRawFloat32(kWeights, missing_manifest, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(loaded.status().ToString(), HasSubstr(missing_manifest));
}

TEST(MlpPredictorTest, TruncatedWeightsAreDataLoss) {
  const std::string weights = ReadFile(kWeights);
  const std::string path = TempPath("truncated.f32");

  WriteFile(path, weights.substr(0, weights.size() - 4));
  auto loaded = MlpPredictor::LoadRawFloat32(path, kManifest, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(), AllOf(HasSubstr(path), HasSubstr("'6.bias'")));

  WriteFile(path, weights.substr(0, 186400 * sizeof(float)));
  loaded = MlpPredictor::LoadRawFloat32(path, kManifest, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(), AllOf(HasSubstr(path), HasSubstr("'2.weight'")));

  WriteFile(path, weights.substr(0, weights.size() - 1));
  loaded = MlpPredictor::LoadRawFloat32(path, kManifest, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(), HasSubstr(path));

  WriteFile(path, weights + std::string(4, '\0'));
  loaded = MlpPredictor::LoadRawFloat32(path, kManifest, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(), HasSubstr(path));
}

TEST(MlpPredictorTest, NonFiniteWeightsAreDataLoss) {
  std::string weights = ReadFile(kWeights);
  const float nan = std::nanf("");
  // Element 5 of "2.bias", which starts at float 211600.
  std::memcpy(&weights[(211600 + 5) * sizeof(float)], &nan, sizeof(float));
  const std::string path = TempPath("nan.f32");
  WriteFile(path, weights);
  auto loaded = MlpPredictor::LoadRawFloat32(path, kManifest, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(),
              AllOf(HasSubstr(path), HasSubstr("'2.bias'"), HasSubstr("element 5")));
}

// Rewrites one tensor's entry of the real manifest and loads with it.
absl::Status LoadWithManifestEdit(const std::string& tensor,
                                  const std::function<void(nlohmann::json*)>& edit,
                                  std::string* manifest_path) {
  nlohmann::json manifest = nlohmann::json::parse(ReadFile(kManifest));
  for (nlohmann::json& entry : manifest["tensors"]) {
    if (entry["name"] == tensor) edit(&entry);
  }
  *manifest_path = TempPath("edited_manifest.json");
  WriteFile(*manifest_path, manifest.dump());
  return MlpPredictor::LoadRawFloat32(kWeights, *manifest_path, {}).status();
}

TEST(MlpPredictorTest, InconsistentManifestIsInvalidArgument) {
  std::string path;
  // Shape disagrees with the count.
  absl::Status status = LoadWithManifestEdit(
      "2.weight",
      [](nlohmann::json* entry) {
        (*entry)["shape"] = {400, 399};
      },
      &path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), AllOf(HasSubstr(path), HasSubstr("'2.weight'")));

  // Self-consistent, but the layer does not take the previous layer's 400 outputs.
  status = LoadWithManifestEdit(
      "2.weight",
      [](nlohmann::json* entry) {
        (*entry)["shape"] = {400, 399};
        (*entry)["count"] = 400 * 399;
      },
      &path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), AllOf(HasSubstr(path), HasSubstr("'2.weight'"),
                                       HasSubstr("[400, 399]"), HasSubstr("'0.weight'")));

  // Bias length differs from the weight's output count.
  status = LoadWithManifestEdit(
      "4.bias",
      [](nlohmann::json* entry) {
        (*entry)["shape"] = {399};
        (*entry)["count"] = 399;
      },
      &path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), AllOf(HasSubstr(path), HasSubstr("'4.bias'")));

  // A tensor name that is not "<layer>.weight" or "<layer>.bias".
  status = LoadWithManifestEdit(
      "6.bias", [](nlohmann::json* entry) { (*entry)["name"] = "6.offset"; }, &path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), AllOf(HasSubstr(path), HasSubstr("'6.offset'")));

  const std::string garbage = TempPath("garbage_manifest.json");
  WriteFile(garbage, "{\"tensors\": [");
  status = MlpPredictor::LoadRawFloat32(kWeights, garbage, {}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(), HasSubstr(garbage));
}

TEST(MlpPredictorTest, RejectsBadOptions) {
  MlpPredictor::Options options;
  options.num_threads = 0;
  auto loaded = MlpPredictor::LoadRawFloat32(kWeights, kManifest, options);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().ToString(), HasSubstr("num_threads"));
}

// ---------------------------------------------------------------------------------------------
// APQ's quantization-aware predictor: 772 inputs = 520 architecture + 252 bit-width features;
// h1 = ReLU(W1 x_arch + b1) + (Wb x_bits + bb), then 400-400 ReLU layers and 400 -> 1.

std::unique_ptr<MlpPredictor> CreateApq(
    int num_threads = 1, MlpPredictor::Kernel kernel = MlpPredictor::Kernel::kBlocked) {
  MlpPredictor::Options options;
  options.num_threads = num_threads;
  options.kernel = kernel;
  auto created = MlpPredictor::Create(RandomApqWeights(2026), options);
  EXPECT_TRUE(created.ok()) << created.status();
  return created.ok() ? *std::move(created) : nullptr;
}

// RandomApqBatch with an all-zero first sample and the indices of odd samples shuffled.
FeatureBatch MixedApqBatch(int size, std::mt19937* rng) {
  const FeatureBatch base = RandomApqBatch(size, rng);
  FeatureBatch batch;
  for (int s = 0; s < size; ++s) {
    std::vector<int32_t> indices(base.indices().begin() + base.offsets()[s],
                                 base.indices().begin() + base.offsets()[s + 1]);
    if (s == 0) indices.clear();
    if (s % 2 == 1) std::shuffle(indices.begin(), indices.end(), *rng);
    AddSample(indices, &batch);
  }
  return batch;
}

// A fresh empty folder for one test's files.
std::string TempFolder(const std::string& name) {
  std::string folder = TempPath(name);
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  return folder;
}

std::vector<std::string> FolderEntries(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

void ExpectSameWeights(const MlpWeights::Linear& actual, const MlpWeights::Linear& expected) {
  EXPECT_EQ(actual.in, expected.in);
  EXPECT_EQ(actual.out, expected.out);
  // Bit-identical floats.
  EXPECT_TRUE(actual.weight == expected.weight) << actual.name;
  EXPECT_TRUE(actual.bias == expected.bias) << actual.name;
}

TEST(MlpPredictorApqTest, HasTheApqShape) {
  auto predictor = CreateApq();
  ASSERT_NE(predictor, nullptr);
  EXPECT_EQ(predictor->input_size(), kApqInputs);
  EXPECT_EQ(predictor->arch_inputs(), kApqArchInputs);
  EXPECT_EQ(predictor->bit_inputs(), kApqBitInputs);
  EXPECT_EQ(predictor->layer_sizes(), (std::vector<int>{520, 400, 400, 400, 1}));
  EXPECT_THAT(predictor->version(), MatchesRegex("apq_predictor-[0-9a-f]{16}"));
  // The version is a content hash: the same weights give the same version, others another.
  EXPECT_EQ(predictor->version(), CreateApq()->version());
  EXPECT_NE(predictor->version(), (*MlpPredictor::Create(RandomApqWeights(7), {}))->version());

  // The OFA predictor has no branch.
  auto ofa = Load();
  ASSERT_NE(ofa, nullptr);
  EXPECT_EQ(ofa->arch_inputs(), kInputs);
  EXPECT_EQ(ofa->bit_inputs(), 0);
}

TEST(MlpPredictorApqTest, InMemoryRawFloat32RoundTripPredictsIdentically) {
  auto predictor = CreateApq();
  ASSERT_NE(predictor, nullptr);
  const absl::StatusOr<std::string> manifest = predictor->ManifestJson();
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  const std::string bytes = predictor->RawFloat32Bytes();
  auto loaded =
      MlpPredictor::FromRawFloat32(bytes, *manifest, "apq_predictor", "weights", "manifest", {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->version(), predictor->version());
  std::mt19937 rng(3);
  const FeatureBatch batch = mlp_testing::RandomApqBatch(50, &rng);
  std::vector<float> expected;
  std::vector<float> actual;
  ASSERT_TRUE(predictor->Predict(batch, &expected).ok());
  ASSERT_TRUE((*loaded)->Predict(batch, &actual).ok());
  EXPECT_EQ(actual, expected);
  // A flipped byte breaks the content hash: the bytes and manifest do not belong together.
  std::string corrupt = bytes;
  corrupt[100] ^= 1;
  const auto rejected =
      MlpPredictor::FromRawFloat32(corrupt, *manifest, "apq_predictor", "weights", "manifest", {});
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kDataLoss);
}

// The test encoding is APQ's: six ones per active layer (at least 2 x 5 + 1 layers), every
// index within [0, 772), and over many samples every one of the 772 slots occurs.
TEST(MlpPredictorApqTest, RandomApqBatchIsOneHotPerSlot) {
  std::mt19937 rng(1);
  const FeatureBatch batch = RandomApqBatch(3000, &rng);
  std::vector<bool> seen(kApqInputs, false);
  for (int s = 0; s < batch.size(); ++s) {
    const int ones = batch.offsets()[s + 1] - batch.offsets()[s];
    EXPECT_EQ(ones % 6, 0) << "sample " << s;
    EXPECT_GE(ones, 6 * 11) << "sample " << s;
    EXPECT_LE(ones, 6 * 21) << "sample " << s;
    int bit_ones = 0;
    for (int j = batch.offsets()[s]; j < batch.offsets()[s + 1]; ++j) {
      const int32_t index = batch.indices()[j];
      ASSERT_GE(index, 0);
      ASSERT_LT(index, kApqInputs);
      seen[index] = true;
      if (index >= kApqArchInputs) ++bit_ones;
    }
    EXPECT_EQ(bit_ones, ones / 6 * 4) << "sample " << s;
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), kApqInputs);
}

TEST(MlpPredictorApqTest, GatherAndSumEqualsDenseForward) {
  std::mt19937 rng(2026);
  for (MlpPredictor::Kernel kernel :
       {MlpPredictor::Kernel::kBlocked, MlpPredictor::Kernel::kLibTorch}) {
    auto predictor = CreateApq(1, kernel);
    ASSERT_NE(predictor, nullptr);
    for (int size : {1, 7, 100, 301, 13, 100}) {
      ExpectSparseMatchesDense(MixedApqBatch(size, &rng), predictor.get());
    }
  }
}

// Where the branch joins, in the hand-written forward below.
enum class Join { kAfterRelu, kBeforeRelu, kNoBranch };

// A double-precision forward of an MLP with a branch, written from the definition.
double HandForward(const MlpWeights& w, const std::vector<int>& x, Join join) {
  const int arch = w.layers[0].in;
  std::vector<double> h(x.begin(), x.begin() + arch);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const MlpWeights::Linear& layer = w.layers[l];
    std::vector<double> next(layer.out);
    for (int o = 0; o < layer.out; ++o) {
      next[o] = layer.bias[o];
      for (int i = 0; i < layer.in; ++i) next[o] += layer.weight[o * layer.in + i] * h[i];
    }
    std::vector<double> branch(layer.out, 0.0);
    if (l == 0 && join != Join::kNoBranch) {
      for (int o = 0; o < layer.out; ++o) {
        branch[o] = w.bits->bias[o];
        for (int i = 0; i < w.bits->in; ++i) {
          branch[o] += w.bits->weight[o * w.bits->in + i] * x[arch + i];
        }
      }
    }
    for (int o = 0; o < layer.out; ++o) {
      if (join == Join::kBeforeRelu) next[o] += branch[o];
      if (l + 1 < w.layers.size()) next[o] = std::max(next[o], 0.0);
      if (join == Join::kAfterRelu) next[o] += branch[o];
    }
    h = std::move(next);
  }
  return h[0];
}

TEST(MlpPredictorApqTest, BitsBranchIsAddedAfterTheFirstRelu) {
  // 6 architecture + 3 bit inputs, hidden 4: every one of the 512 inputs.
  std::mt19937 rng(31);
  MlpWeights weights;
  weights.name = "tiny";
  weights.layers.push_back(RandomLinear(6, 4, &rng));
  weights.layers.push_back(RandomLinear(4, 4, &rng));
  weights.layers.push_back(RandomLinear(4, 1, &rng));
  weights.bits = RandomLinear(3, 4, &rng);
  FeatureBatch batch;
  std::vector<std::vector<int>> inputs;
  for (int bitsset = 0; bitsset < 512; ++bitsset) {
    std::vector<int> x(9);
    for (int i = 0; i < 9; ++i) x[i] = (bitsset >> i) & 1;
    for (int i = 0; i < 9; ++i) {
      if (x[i] != 0) batch.mutable_indices()->push_back(i);
    }
    batch.EndSample();
    inputs.push_back(x);
  }
  int differs_before_relu = 0;
  int differs_without_branch = 0;
  for (MlpPredictor::Kernel kernel :
       {MlpPredictor::Kernel::kBlocked, MlpPredictor::Kernel::kLibTorch}) {
    MlpPredictor::Options options;
    options.kernel = kernel;
    auto created = MlpPredictor::Create(weights, options);
    ASSERT_TRUE(created.ok()) << created.status();
    MlpPredictor& predictor = **created;
    EXPECT_EQ(predictor.input_size(), 9);
    std::vector<float> sparse;
    std::vector<float> dense;
    ASSERT_TRUE(predictor.Predict(batch, &sparse).ok());
    ASSERT_TRUE(predictor.PredictDense(Densify(batch, 9).data(), batch.size(), &dense).ok());
    for (size_t s = 0; s < inputs.size(); ++s) {
      const double expected = HandForward(weights, inputs[s], Join::kAfterRelu);
      EXPECT_NEAR(sparse[s], expected, 1e-5) << predictor.kernel_name() << " input " << s;
      EXPECT_NEAR(dense[s], expected, 1e-5) << "input " << s;
      if (std::abs(expected - HandForward(weights, inputs[s], Join::kBeforeRelu)) > 1e-3) {
        ++differs_before_relu;
      }
      if (std::abs(expected - HandForward(weights, inputs[s], Join::kNoBranch)) > 1e-3) {
        ++differs_without_branch;
      }
    }
    // The bits change the prediction: same architecture inputs, other bits.
    EXPECT_NE(sparse[0b000111111], sparse[0b101111111]);
  }
  // The comparisons above tell the three joins apart.
  EXPECT_GT(differs_before_relu, 0);
  EXPECT_GT(differs_without_branch, 0);
}

TEST(MlpPredictorApqTest, CloneAndThreadsAgree) {
  ExpectThreadsKernelsAndClonesAgree(CreateApq, MixedApqBatch);
  auto one = CreateApq();
  ASSERT_NE(one, nullptr);
  std::unique_ptr<AccuracyPredictor> clone = one->Clone();
  std::mt19937 rng(9);
  // The clone outlives its source: the weights are shared, not borrowed.
  const FeatureBatch batch = MixedApqBatch(50, &rng);
  std::vector<float> expected;
  std::vector<float> cloned;
  ASSERT_TRUE(one->Predict(batch, &expected).ok());
  one.reset();
  ASSERT_TRUE(clone->Predict(batch, &cloned).ok());
  EXPECT_EQ(cloned, expected);
}

TEST(MlpPredictorApqTest, RejectsIndicesOutsideTheInputs) {
  auto predictor = CreateApq();
  ASSERT_NE(predictor, nullptr);
  FeatureBatch batch;
  AddSample({0, 771}, &batch);
  AddSample({772}, &batch);
  std::vector<float> accuracies;
  const absl::Status status = predictor->Predict(batch, &accuracies);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.ToString(),
              AllOf(HasSubstr("feature index 772"), HasSubstr("sample 1"), HasSubstr("[0, 772)")));
}

TEST(MlpPredictorApqTest, WriteThenLoadPredictsBitIdentically) {
  const std::string folder = TempFolder("apq_round_trip");
  const std::string weights_path = folder + "/apq_predictor.f32";
  const std::string manifest_path = folder + "/apq_predictor.manifest.json";
  std::mt19937 rng(77);
  const FeatureBatch batch = MixedApqBatch(257, &rng);
  for (MlpPredictor::Kernel kernel :
       {MlpPredictor::Kernel::kBlocked, MlpPredictor::Kernel::kLibTorch}) {
    auto original = CreateApq(1, kernel);
    ASSERT_NE(original, nullptr);
    // Twice: the second write replaces the first.
    ASSERT_TRUE(original->WriteRawFloat32(weights_path, manifest_path).ok());
    const absl::Status written = original->WriteRawFloat32(weights_path, manifest_path);
    ASSERT_TRUE(written.ok()) << written;
    EXPECT_THAT(FolderEntries(folder),
                ElementsAre("apq_predictor.f32", "apq_predictor.manifest.json"));

    MlpPredictor::Options options;
    options.kernel = kernel;
    auto loaded = MlpPredictor::LoadRawFloat32(weights_path, manifest_path, options);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ((*loaded)->version(), original->version());
    EXPECT_EQ((*loaded)->layer_sizes(), original->layer_sizes());
    EXPECT_EQ((*loaded)->input_size(), kApqInputs);
    EXPECT_EQ((*loaded)->arch_inputs(), kApqArchInputs);
    std::vector<float> expected;
    std::vector<float> actual;
    ASSERT_TRUE(original->Predict(batch, &expected).ok());
    ASSERT_TRUE((*loaded)->Predict(batch, &actual).ok());
    EXPECT_EQ(actual, expected) << original->kernel_name();
  }

  // The weights come back out as they went in, with the default names.
  const MlpWeights given = RandomApqWeights(2026);
  auto loaded = MlpPredictor::LoadRawFloat32(weights_path, manifest_path, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const MlpWeights exported = (*loaded)->ExportWeights();
  EXPECT_EQ(exported.name, "apq_predictor");
  ASSERT_EQ(exported.layers.size(), 4u);
  for (size_t l = 0; l < 4; ++l) {
    EXPECT_EQ(exported.layers[l].name, absl::StrCat(2 * l));
    ExpectSameWeights(exported.layers[l], given.layers[l]);
  }
  ASSERT_TRUE(exported.bits.has_value());
  EXPECT_EQ(exported.bits->name, "bits");
  ExpectSameWeights(*exported.bits, *given.bits);
  auto recreated = MlpPredictor::Create(exported, {});
  ASSERT_TRUE(recreated.ok()) << recreated.status();
  EXPECT_EQ((*recreated)->version(), (*loaded)->version());

  // The manifest: canonical order, the branch after the first layer, no gaps.
  const nlohmann::json manifest = nlohmann::json::parse(ReadFile(manifest_path));
  EXPECT_EQ(manifest["arch_inputs"], kApqArchInputs);
  EXPECT_EQ(manifest["input_size"], kApqInputs);
  std::vector<std::string> names;
  int64_t offset = 0;
  for (const nlohmann::json& tensor : manifest["tensors"]) {
    names.push_back(tensor["name"].get<std::string>());
    EXPECT_EQ(tensor["offset_floats"].get<int64_t>(), offset) << names.back();
    offset += tensor["count"].get<int64_t>();
  }
  EXPECT_THAT(names, ElementsAre("0.weight", "0.bias", "bits.weight", "bits.bias", "2.weight",
                                 "2.bias", "4.weight", "4.bias", "6.weight", "6.bias"));
  EXPECT_EQ(manifest["total_floats"].get<int64_t>(), offset);
  EXPECT_EQ(static_cast<int64_t>(ReadFile(weights_path).size()),
            offset * static_cast<int64_t>(sizeof(float)));
  EXPECT_THAT((*loaded)->version(), HasSubstr(manifest["content_fnv1a64"].get<std::string>()));
}

TEST(MlpPredictorApqTest, WritingTheOfaPredictorReproducesTheShippedFile) {
  auto predictor = Load();
  ASSERT_NE(predictor, nullptr);
  // The version of the shipped weights is what it was before the branch existed: stored jobs
  // refer to it.
  EXPECT_EQ(predictor->version(), "acc_predictor-8adbe4287b805838");
  const std::string folder = TempFolder("ofa_round_trip");
  const std::string weights_path = folder + "/acc_predictor.f32";
  const std::string manifest_path = folder + "/acc_predictor.manifest.json";
  const absl::Status written = predictor->WriteRawFloat32(weights_path, manifest_path);
  ASSERT_TRUE(written.ok()) << written;
  EXPECT_TRUE(ReadFile(weights_path) == ReadFile(kWeights));
  const nlohmann::json manifest = nlohmann::json::parse(ReadFile(manifest_path));
  const nlohmann::json shipped = nlohmann::json::parse(ReadFile(kManifest));
  EXPECT_EQ(manifest["tensors"], shipped["tensors"]);
  EXPECT_FALSE(manifest.contains("arch_inputs"));
  EXPECT_EQ(manifest["input_size"], kInputs);
  auto loaded = MlpPredictor::LoadRawFloat32(weights_path, manifest_path, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->version(), predictor->version());
  FeatureBatch batch;
  for (const GoldenVector& vector : GoldenVectors()) AddSample(vector.indices, &batch);
  std::vector<float> expected;
  std::vector<float> actual;
  ASSERT_TRUE(predictor->Predict(batch, &expected).ok());
  ASSERT_TRUE((*loaded)->Predict(batch, &actual).ok());
  EXPECT_EQ(actual, expected);
}

TEST(MlpPredictorApqTest, FailedWritesLeaveNothingBehind) {
  const std::string folder = TempFolder("failed_writes");
  auto predictor = CreateApq();
  ASSERT_NE(predictor, nullptr);
  const std::string missing = folder + "/no_such_folder/apq.manifest.json";
  absl::Status status = predictor->WriteRawFloat32(folder + "/apq.f32", missing);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.ToString(), HasSubstr(missing));
  status = predictor->WriteRawFloat32(folder + "/no_such_folder/apq.f32", folder + "/apq.json");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  // No file was written, and no temporary file is left.
  EXPECT_THAT(FolderEntries(folder), ElementsAre());

  // A failed write of other weights leaves the files of an earlier write as they were.
  ASSERT_TRUE(predictor->WriteRawFloat32(folder + "/apq.f32", folder + "/apq.json").ok());
  auto other = MlpPredictor::Create(RandomApqWeights(5), {});
  ASSERT_TRUE(other.ok());
  status = (*other)->WriteRawFloat32(folder + "/apq.f32", missing);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(FolderEntries(folder), ElementsAre("apq.f32", "apq.json"));
  auto loaded = MlpPredictor::LoadRawFloat32(folder + "/apq.f32", folder + "/apq.json", {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->ExportWeights().layers[0].weight,
            predictor->ExportWeights().layers[0].weight);

  status = predictor->WriteRawFloat32(folder + "/same", folder + "/same");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(MlpPredictorApqTest, ManifestFromOtherWeightsIsDataLoss) {
  // What a crash between the two renames of a write would leave: new weights, old manifest.
  const std::string folder = TempFolder("mismatched_files");
  auto first = CreateApq();
  auto second = MlpPredictor::Create(RandomApqWeights(99), {});
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(first->WriteRawFloat32(folder + "/a.f32", folder + "/a.json").ok());
  ASSERT_TRUE((*second)->WriteRawFloat32(folder + "/b.f32", folder + "/b.json").ok());
  std::filesystem::copy_file(folder + "/b.f32", folder + "/a.f32",
                             std::filesystem::copy_options::overwrite_existing);
  auto loaded = MlpPredictor::LoadRawFloat32(folder + "/a.f32", folder + "/a.json", {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(),
              AllOf(HasSubstr(folder + "/a.f32"), HasSubstr("content_fnv1a64")));
}

class ApqFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_ = TempFolder(::testing::UnitTest::GetInstance()->current_test_info()->name());
    weights_path_ = folder_ + "/apq.f32";
    manifest_path_ = folder_ + "/apq.manifest.json";
    auto predictor = CreateApq();
    ASSERT_NE(predictor, nullptr);
    ASSERT_TRUE(predictor->WriteRawFloat32(weights_path_, manifest_path_).ok());
  }

  // Loads the written weights with an edited copy of the written manifest.
  absl::Status LoadEdited(const std::function<void(nlohmann::json*)>& edit) {
    nlohmann::json manifest = nlohmann::json::parse(ReadFile(manifest_path_));
    edit(&manifest);
    edited_path_ = folder_ + "/edited.manifest.json";
    WriteFile(edited_path_, manifest.dump());
    return MlpPredictor::LoadRawFloat32(weights_path_, edited_path_, {}).status();
  }

  // Edits the entry of the tensor `name`.
  static std::function<void(nlohmann::json*)> EditTensor(
      const std::string& name, const std::function<void(nlohmann::json*)>& edit) {
    return [name, edit](nlohmann::json* manifest) {
      for (nlohmann::json& entry : (*manifest)["tensors"]) {
        if (entry["name"] == name) edit(&entry);
      }
    };
  }

  void ExpectInvalid(const absl::Status& status, const std::string& tensor) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.ToString(), AllOf(HasSubstr(edited_path_), HasSubstr(tensor)));
  }

  std::string folder_;
  std::string weights_path_;
  std::string manifest_path_;
  std::string edited_path_;
};

TEST_F(ApqFilesTest, WrittenFilesLoad) {
  EXPECT_TRUE(LoadEdited([](nlohmann::json*) {}).ok());
  // "input_size" and "content_fnv1a64" are optional.
  EXPECT_TRUE(LoadEdited([](nlohmann::json* manifest) {
                manifest->erase("input_size");
                manifest->erase("content_fnv1a64");
              }).ok());
}

TEST_F(ApqFilesTest, BadBranchShapesAreInvalidArgument) {
  // Outputs that do not match the first layer's 400.
  ExpectInvalid(LoadEdited(EditTensor("bits.weight",
                                      [](nlohmann::json* entry) {
                                        (*entry)["shape"] = {399, 252};
                                        (*entry)["count"] = 399 * 252;
                                      })),
                "'bits.weight'");
  // A bias that does not match the branch's weight.
  ExpectInvalid(LoadEdited(EditTensor("bits.bias",
                                      [](nlohmann::json* entry) {
                                        (*entry)["shape"] = {399};
                                        (*entry)["count"] = 399;
                                      })),
                "'bits.bias'");
  // The branch's bias is missing.
  ExpectInvalid(LoadEdited([](nlohmann::json* manifest) {
                  nlohmann::json& tensors = (*manifest)["tensors"];
                  for (auto it = tensors.begin(); it != tensors.end(); ++it) {
                    if ((*it)["name"] == "bits.bias") {
                      tensors.erase(it);
                      break;
                    }
                  }
                }),
                "lacks its tensor 'bits.bias'");
  // A one-dimensional branch weight.
  ExpectInvalid(LoadEdited(EditTensor(
                    "bits.weight", [](nlohmann::json* entry) { (*entry)["shape"] = {400 * 252}; })),
                "'bits.weight'");
}

TEST_F(ApqFilesTest, InputCountsThatDoNotAddUpAreInvalidArgument) {
  // 520 + 251 bit inputs != the declared 772.
  absl::Status status = LoadEdited(EditTensor("bits.weight", [](nlohmann::json* entry) {
    (*entry)["shape"] = {400, 251};
    (*entry)["count"] = 400 * 251;
  }));
  ExpectInvalid(status, "'bits.weight'");
  EXPECT_THAT(status.ToString(), AllOf(HasSubstr("\"input_size\" is 772"), HasSubstr("771")));

  status = LoadEdited([](nlohmann::json* manifest) { (*manifest)["input_size"] = 771; });
  ExpectInvalid(status, "'bits.weight'");

  // arch_inputs must be the first layer's input count.
  status = LoadEdited([](nlohmann::json* manifest) {
    (*manifest)["arch_inputs"] = 519;
    manifest->erase("input_size");
  });
  ExpectInvalid(status, "'0.weight'");
  EXPECT_THAT(status.ToString(), HasSubstr("\"arch_inputs\" is 519"));

  // A branch needs arch_inputs.
  status = LoadEdited([](nlohmann::json* manifest) { manifest->erase("arch_inputs"); });
  ExpectInvalid(status, "'bits.weight'");
  EXPECT_THAT(status.ToString(), HasSubstr("arch_inputs"));

  for (const nlohmann::json& bad :
       {nlohmann::json("520"), nlohmann::json(0), nlohmann::json(-5), nlohmann::json(520.5)}) {
    status = LoadEdited([&](nlohmann::json* manifest) { (*manifest)["arch_inputs"] = bad; });
    ExpectInvalid(status, "\"arch_inputs\"");
  }
  status = LoadEdited([](nlohmann::json* manifest) { (*manifest)["content_fnv1a64"] = "xyz"; });
  ExpectInvalid(status, "\"content_fnv1a64\"");
}

TEST_F(ApqFilesTest, TruncatedOrCorruptWeightsAreDataLoss) {
  const std::string weights = ReadFile(weights_path_);
  // The last tensor is cut short.
  WriteFile(weights_path_, weights.substr(0, weights.size() - 4));
  auto loaded = MlpPredictor::LoadRawFloat32(weights_path_, manifest_path_, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(), AllOf(HasSubstr(weights_path_), HasSubstr("'6.bias'")));

  // The file ends inside the branch's weight, which starts after 0.weight and 0.bias.
  const size_t bits_offset = kApqArchInputs * kApqHidden + kApqHidden;
  WriteFile(weights_path_, weights.substr(0, (bits_offset + 10) * sizeof(float)));
  loaded = MlpPredictor::LoadRawFloat32(weights_path_, manifest_path_, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(),
              AllOf(HasSubstr(weights_path_), HasSubstr("'bits.weight'")));

  // A NaN in the branch.
  std::string corrupt = weights;
  const float nan = std::nanf("");
  std::memcpy(&corrupt[(bits_offset + 3) * sizeof(float)], &nan, sizeof(float));
  WriteFile(weights_path_, corrupt);
  loaded = MlpPredictor::LoadRawFloat32(weights_path_, manifest_path_, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(),
              AllOf(HasSubstr("'bits.weight'"), HasSubstr("element 3")));

  // A finite but changed value: the content hash in the manifest no longer matches.
  corrupt = weights;
  const float changed = 0.125f;
  std::memcpy(&corrupt[(bits_offset + 3) * sizeof(float)], &changed, sizeof(float));
  WriteFile(weights_path_, corrupt);
  loaded = MlpPredictor::LoadRawFloat32(weights_path_, manifest_path_, {});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().ToString(),
              AllOf(HasSubstr(weights_path_), HasSubstr("content_fnv1a64")));
}

// Create validates like the loader; messages name the tensor.
TEST(MlpPredictorApqTest, CreateRejectsBadWeights) {
  const auto expect_invalid = [](const MlpWeights& weights, const std::string& tensor) {
    auto created = MlpPredictor::Create(weights, {});
    EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument) << tensor;
    EXPECT_THAT(created.status().ToString(), HasSubstr(tensor));
  };
  MlpWeights weights = RandomApqWeights(1);
  weights.bits->bias.clear();
  expect_invalid(weights, "'bits.bias'");

  weights = RandomApqWeights(1);
  weights.layers[1].weight.pop_back();
  expect_invalid(weights, "'2.weight'");

  weights = RandomApqWeights(1);
  weights.layers[2].in = 399;
  expect_invalid(weights, "'4.weight'");

  weights = RandomApqWeights(1);
  std::mt19937 rng(3);
  weights.bits = RandomLinear(kApqBitInputs, 399, &rng);
  expect_invalid(weights, "'bits.weight'");

  weights = RandomApqWeights(1);
  weights.layers.resize(1);
  weights.layers[0] = RandomLinear(kApqArchInputs, 1, &rng);
  expect_invalid(weights, "'bits.weight'");

  weights = RandomApqWeights(1);
  weights.layers[3].bias[0] = std::nanf("");
  expect_invalid(weights, "'6.bias'");

  weights = RandomApqWeights(1);
  weights.layers.back() = RandomLinear(kApqHidden, 2, &rng);
  expect_invalid(weights, "'6.weight'");

  weights = RandomApqWeights(1);
  weights.bits->name = "quantize_fc";
  expect_invalid(weights, "quantize_fc");

  weights = RandomApqWeights(1);
  weights.layers[1].name = "bits";
  expect_invalid(weights, "'bits'");

  weights = RandomApqWeights(1);
  weights.layers[1].name = "same";
  weights.layers[2].name = "same";
  expect_invalid(weights, "'same'");

  weights = RandomApqWeights(1);
  weights.layers.clear();
  expect_invalid(weights, "no layers");

  MlpPredictor::Options options;
  options.num_threads = 0;
  EXPECT_EQ(MlpPredictor::Create(RandomApqWeights(1), options).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Named layers keep their names in the manifest.
  weights = RandomApqWeights(1);
  weights.layers[0].name = "layers.0.0";
  auto created = MlpPredictor::Create(weights, {});
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)->ExportWeights().layers[0].name, "layers.0.0");
  EXPECT_EQ((*created)->ExportWeights().layers[1].name, "2");
}

}  // namespace
}  // namespace apq::predictor
