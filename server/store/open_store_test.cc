#include "server/store/open_store.h"

#include "gtest/gtest.h"

namespace apq::server {
namespace {

TEST(SplitPasswordTest, TakesAUrisPasswordApartAndLeavesEverythingElse) {
  const LocationWithoutPassword split =
      SplitPassword("postgresql://apq:s3cr:et@db.example:5432/apq?sslmode=require");
  EXPECT_EQ(split.location, "postgresql://apq@db.example:5432/apq?sslmode=require");
  EXPECT_EQ(split.password, "s3cr:et");
  EXPECT_EQ(RedactedLocation("postgresql://apq:s3cr:et@db.example/apq"),
            "postgresql://apq:***@db.example/apq");

  for (const char* without : {"postgresql://apq@db.example/apq", "postgres://db.example/apq",
                              "/var/lib/apq/apq.db", "apq:weird@name.db"}) {
    SCOPED_TRACE(without);
    const LocationWithoutPassword unchanged = SplitPassword(without);
    EXPECT_EQ(unchanged.location, without);
    EXPECT_EQ(unchanged.password, "");
  }
}

}  // namespace
}  // namespace apq::server
