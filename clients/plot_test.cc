#include "clients/plot.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace apq::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

size_t Count(const std::string& text, const std::string& part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++count;
  }
  return count;
}

TEST(PlotTest, EveryPointTheFrontTheBudgetAndTheBestAreDrawn) {
  PlotData data;
  data.title = "job-1: fmnist_lowbit on bitfusion";
  data.cost_label = "latency (ms)";
  data.budget = 0.4;
  data.points = {{0.30, 0.88, true, false},
                 {0.10, 0.80, true, false},
                 {0.35, 0.85, false, false},
                 {0.39, 0.90, true, true}};
  const std::string svg = RenderPlotSvg(data);
  EXPECT_EQ(Count(svg, "class=\"candidate\""), 4u);
  EXPECT_EQ(Count(svg, "class=\"front\""), 1u);
  EXPECT_EQ(Count(svg, "class=\"budget\""), 1u);
  EXPECT_EQ(Count(svg, "class=\"best\""), 1u);
  // The front by ascending cost: three points.
  const size_t points = svg.find("points=\"");
  ASSERT_NE(points, std::string::npos);
  const std::string list = svg.substr(points + 8, svg.find('"', points + 8) - points - 8);
  EXPECT_EQ(Count(list, ","), 3u);
  EXPECT_TRUE(svg.rfind("<svg", 0) == 0);
  EXPECT_THAT(svg, HasSubstr("</svg>"));
}

TEST(PlotTest, TextIsEscapedAndDegenerateDataStillDraws) {
  PlotData data;
  data.title = "<script>alert('x')</script> & \"label\"";
  data.cost_label = "BitOps";
  const std::string empty = RenderPlotSvg(data);
  EXPECT_THAT(empty, Not(HasSubstr("<script>")));
  EXPECT_THAT(
      empty,
      HasSubstr("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;label&quot;"));
  EXPECT_EQ(Count(empty, "class=\"candidate\""), 0u);
  EXPECT_EQ(Count(empty, "class=\"front\""), 0u);
  EXPECT_THAT(empty, Not(HasSubstr("nan")));
  // One point (no range): finite coordinates.
  data.points = {{5e7, 0.9, true, true}};
  const std::string one = RenderPlotSvg(data);
  EXPECT_EQ(Count(one, "class=\"candidate\""), 1u);
  EXPECT_THAT(one, Not(HasSubstr("nan")));
  EXPECT_THAT(one, Not(HasSubstr("inf")));
}

}  // namespace
}  // namespace apq::client
