#include "predictor/mlp_predictor.h"

#include <cmath>
#include <cstring>
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

namespace apq::predictor {
namespace {

using ::testing::AllOf;
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

std::vector<float> Densify(const FeatureBatch& batch) {
  std::vector<float> dense(static_cast<size_t>(batch.size()) * kInputs, 0.0f);
  for (int s = 0; s < batch.size(); ++s) {
    for (int j = batch.offsets()[s]; j < batch.offsets()[s + 1]; ++j) {
      dense[static_cast<size_t>(s) * kInputs + batch.indices()[j]] = 1.0f;
    }
  }
  return dense;
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
  ASSERT_TRUE(predictor->PredictDense(Densify(batch).data(), batch.size(), &accuracies).ok());
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
      const FeatureBatch batch = RandomBatch(size, &rng);
      std::vector<float> sparse;
      std::vector<float> dense;
      ASSERT_TRUE(predictor->Predict(batch, &sparse).ok());
      ASSERT_TRUE(predictor->PredictDense(Densify(batch).data(), size, &dense).ok());
      ASSERT_EQ(sparse.size(), static_cast<size_t>(size));
      ASSERT_EQ(dense.size(), static_cast<size_t>(size));
      for (int i = 0; i < size; ++i) {
        EXPECT_NEAR(sparse[i], dense[i], 1e-5)
            << predictor->kernel_name() << " batch " << size << " sample " << i;
      }
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
  auto one = Load(1);
  auto two = Load(2);
  auto two_torch = Load(2, MlpPredictor::Kernel::kLibTorch);
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  ASSERT_NE(two_torch, nullptr);
  std::mt19937 rng(9);
  for (int size : {1, 9, 100, 1000}) {
    const FeatureBatch batch = RandomBatch(size, &rng);
    std::vector<float> expected;
    std::vector<float> actual;
    std::vector<float> actual_torch;
    ASSERT_TRUE(one->Predict(batch, &expected).ok());
    ASSERT_TRUE(two->Predict(batch, &actual).ok());
    ASSERT_TRUE(two_torch->Predict(batch, &actual_torch).ok());
    for (int i = 0; i < size; ++i) {
      EXPECT_NEAR(actual[i], expected[i], 1e-6) << "batch " << size << " sample " << i;
      EXPECT_NEAR(actual_torch[i], expected[i], 1e-5) << "batch " << size << " sample " << i;
    }
  }
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

}  // namespace
}  // namespace apq::predictor
