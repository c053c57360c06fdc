#include "predictor/shared_predictions.h"

#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "predictor/mlp_predictor.h"
#include "predictor/mlp_testing.h"

namespace apq::predictor {
namespace {

using mlp_testing::kApqInputs;
using mlp_testing::RandomApqBatch;
using mlp_testing::RandomApqWeights;

std::unique_ptr<MlpPredictor> ApqShapedMlp() {
  return MlpPredictor::Create(RandomApqWeights(5), {}).value();
}

// Sample `i` of `batch` appended to `out`.
void AppendSample(const FeatureBatch& batch, int i, FeatureBatch* out) {
  const std::vector<int32_t>& indices = batch.indices();
  out->mutable_indices()->insert(out->mutable_indices()->end(),
                                 indices.begin() + batch.offsets()[i],
                                 indices.begin() + batch.offsets()[i + 1]);
  out->EndSample();
}

std::vector<float> PredictOrDie(AccuracyPredictor& predictor, const FeatureBatch& batch) {
  std::vector<float> out;
  const absl::Status status = predictor.Predict(batch, &out);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

// The same bits (a float compared as its 32-bit pattern).
bool BitwiseEqual(float a, float b) {
  uint32_t a_bits = 0;
  uint32_t b_bits = 0;
  std::memcpy(&a_bits, &a, sizeof(float));
  std::memcpy(&b_bits, &b, sizeof(float));
  return a_bits == b_bits;
}

// Through the cache, every sample gets exactly the wrapped predictor's prediction, whatever
// else its batch holds and whether it was a hit; repeats are hits.
TEST(SharedPredictionsTest, CachedPredictionsEqualTheWrappedPredictorsBitForBit) {
  std::mt19937 rng(11);
  const FeatureBatch pool = RandomApqBatch(300, &rng);
  std::unique_ptr<MlpPredictor> direct = ApqShapedMlp();
  const std::vector<float> expected = PredictOrDie(*direct, pool);

  auto shared = std::make_shared<SharedPredictions>();
  CachingPredictor cached(ApqShapedMlp(), shared);
  std::uniform_int_distribution<int> pick(0, pool.size() - 1);
  std::uniform_int_distribution<int> size(1, 130);
  int64_t looked_up = 0;
  for (int round = 0; round < 30; ++round) {
    FeatureBatch batch;
    std::vector<int> chosen(size(rng));
    for (int& i : chosen) {
      i = pick(rng);
      AppendSample(pool, i, &batch);
    }
    looked_up += batch.size();
    const std::vector<float> got = PredictOrDie(cached, batch);
    ASSERT_EQ(got.size(), chosen.size());
    for (size_t s = 0; s < chosen.size(); ++s) {
      EXPECT_TRUE(BitwiseEqual(got[s], expected[chosen[s]]))
          << "round " << round << " sample " << s << ": " << got[s] << " vs "
          << expected[chosen[s]];
    }
  }
  const SharedPredictions::Stats stats = shared->stats();
  EXPECT_EQ(stats.hits + stats.misses, looked_up);
  EXPECT_LE(stats.entries, 300u);
  EXPECT_GT(stats.hits, looked_up / 2);  // 30 batches of about 65 over 300 networks.
  // A clone shares the cache: the whole pool is a hit once every network was met.
  CachingPredictor warm(ApqShapedMlp(), shared);
  PredictOrDie(warm, pool);
  const int64_t hits_before = shared->stats().hits;
  const std::vector<float> again = PredictOrDie(*warm.Clone(), pool);
  EXPECT_EQ(shared->stats().hits - hits_before, pool.size());
  for (int i = 0; i < pool.size(); ++i) EXPECT_TRUE(BitwiseEqual(again[i], expected[i]));
}

// Two threads with their own clones over one cache get the wrapped predictor's answers.
TEST(SharedPredictionsTest, ClonesOnTwoThreadsShareOneCache) {
  std::mt19937 rng(12);
  const FeatureBatch pool = RandomApqBatch(200, &rng);
  std::unique_ptr<MlpPredictor> direct = ApqShapedMlp();
  const std::vector<float> expected = PredictOrDie(*direct, pool);
  auto shared = std::make_shared<SharedPredictions>();
  CachingPredictor prototype(ApqShapedMlp(), shared);
  std::vector<std::vector<float>> results(2);
  std::vector<std::thread> threads;
  threads.reserve(2);
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<AccuracyPredictor> mine = prototype.Clone();
      for (int round = 0; round < 20; ++round) results[t] = PredictOrDie(*mine, pool);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 2; ++t) {
    ASSERT_EQ(results[t].size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_TRUE(BitwiseEqual(results[t][i], expected[i])) << t << " " << i;
    }
  }
  EXPECT_EQ(shared->stats().entries, 200u);
  EXPECT_EQ(shared->stats().hits + shared->stats().misses, 2 * 20 * 200);
}

// Beyond max_entries nothing more is kept, and predictions stay right.
TEST(SharedPredictionsTest, KeepsAtMostMaxEntries) {
  std::mt19937 rng(13);
  const FeatureBatch pool = RandomApqBatch(100, &rng);
  std::unique_ptr<MlpPredictor> direct = ApqShapedMlp();
  const std::vector<float> expected = PredictOrDie(*direct, pool);
  auto shared = std::make_shared<SharedPredictions>(/*max_entries=*/10);
  CachingPredictor cached(ApqShapedMlp(), shared);
  for (int round = 0; round < 3; ++round) {
    const std::vector<float> got = PredictOrDie(cached, pool);
    for (int i = 0; i < pool.size(); ++i) EXPECT_TRUE(BitwiseEqual(got[i], expected[i]));
  }
  EXPECT_EQ(shared->stats().entries, 10u);
  EXPECT_EQ(shared->stats().hits, 2 * 10);
}

// A batch the wrapped predictor refuses is refused the same way, and nothing is kept.
TEST(SharedPredictionsTest, ErrorsOfTheWrappedPredictorPassThrough) {
  auto shared = std::make_shared<SharedPredictions>();
  CachingPredictor cached(ApqShapedMlp(), shared);
  FeatureBatch batch;
  *batch.mutable_indices() = std::vector<int32_t>{1, 2, kApqInputs + 5};
  batch.EndSample();
  std::vector<float> out;
  EXPECT_EQ(cached.Predict(batch, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(shared->stats().entries, 0u);
  // An empty batch is no error.
  EXPECT_TRUE(cached.Predict(FeatureBatch(), &out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(cached.input_size(), kApqInputs);
}

}  // namespace
}  // namespace apq::predictor
