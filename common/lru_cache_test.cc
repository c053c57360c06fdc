#include "common/lru_cache.h"

#include <string>

#include "gtest/gtest.h"

namespace apq {
namespace {

TEST(LruCacheTest, ForgetsTheLeastRecentlyUsedBeyondItsCapacity) {
  LruCache<int, std::string> cache(3);
  cache.Put(1, "one");
  cache.Put(2, "two");
  cache.Put(3, "three");
  EXPECT_EQ(cache.Get(1).value(), "one");  // 1 is now the most recently used.
  cache.Put(4, "four");                    // Forgets 2.
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.Get(2).has_value());
  EXPECT_EQ(cache.Get(3).value(), "three");
  EXPECT_EQ(cache.Get(4).value(), "four");
  cache.Put(1, "uno");   // Replaces, and makes 1 the most recent.
  cache.Put(5, "five");  // Forgets 3 (4 and 1 were used after it).
  EXPECT_FALSE(cache.Get(3).has_value());
  EXPECT_EQ(cache.Get(1).value(), "uno");
  for (int i = 10; i < 1000; ++i) cache.Put(i, std::to_string(i));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.Get(999).value(), "999");
}

}  // namespace
}  // namespace apq
