#include "clients/plot.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace apq::client {
namespace {

constexpr double kWidth = 720;
constexpr double kHeight = 480;
constexpr double kLeft = 70;  // Room for the y ticks.
constexpr double kRight = 20;
constexpr double kTop = 40;  // Room for the title.
constexpr double kBottom = 50;
constexpr int kTicks = 5;

// [low, high] padded by 5% on both sides; a single value gets a unit-wide range around it.
std::pair<double, double> Range(double low, double high) {
  if (!(high > low)) {
    const double half = std::max(std::fabs(low) * 0.05, 1e-9);
    return {low - half, high + half};
  }
  const double pad = (high - low) * 0.05;
  return {low - pad, high + pad};
}

}  // namespace

std::string XmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string RenderPlotSvg(const PlotData& data) {
  // The ranges cover every point and the budget.
  std::vector<double> costs;
  for (const PlotPoint& p : data.points) costs.push_back(p.cost);
  if (data.budget.has_value()) costs.push_back(*data.budget);
  if (costs.empty()) costs.push_back(0.0);
  const double cost_low = *std::min_element(costs.begin(), costs.end());
  const double cost_high = *std::max_element(costs.begin(), costs.end());
  double accuracy_low = 0.5;
  double accuracy_high = 0.5;
  for (size_t i = 0; i < data.points.size(); ++i) {
    const double accuracy = data.points[i].accuracy;
    accuracy_low = i == 0 ? accuracy : std::min(accuracy_low, accuracy);
    accuracy_high = i == 0 ? accuracy : std::max(accuracy_high, accuracy);
  }
  const auto [x0, x1] = Range(cost_low, cost_high);
  const auto [y0, y1] = Range(accuracy_low, accuracy_high);
  const double plot_width = kWidth - kLeft - kRight;
  const double plot_height = kHeight - kTop - kBottom;
  const auto x = [&, x0 = x0, x1 = x1](double cost) {
    return kLeft + (cost - x0) / (x1 - x0) * plot_width;
  };
  const auto y = [&, y0 = y0, y1 = y1](double accuracy) {
    return kTop + (1.0 - (accuracy - y0) / (y1 - y0)) * plot_height;
  };

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%.1f\" y=\"24\" font-size=\"15\">%s</text>\n",
      kWidth, kHeight, kWidth, kHeight, kLeft, XmlEscape(data.title));
  // Axes, ticks and labels.
  absl::StrAppendFormat(
      &svg,
      "<g stroke=\"black\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
      "y2=\"%.1f\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/></g>\n",
      kLeft, kTop + plot_height, kLeft + plot_width, kTop + plot_height, kLeft, kTop, kLeft,
      kTop + plot_height);
  for (int t = 0; t <= kTicks; ++t) {
    const double cost = x0 + (x1 - x0) * t / kTicks;
    const double accuracy = y0 + (y1 - y0) * t / kTicks;
    absl::StrAppendFormat(&svg,
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.4g</text>\n"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n",
                          x(cost), kTop + plot_height + 18, cost, kLeft - 6, y(accuracy) + 4,
                          100 * accuracy);
  }
  absl::StrAppendFormat(&svg,
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n"
                        "<text transform=\"translate(16 %.1f) rotate(-90)\" "
                        "text-anchor=\"middle\">predicted accuracy (%%)</text>\n",
                        kLeft + plot_width / 2, kHeight - 10, XmlEscape(data.cost_label),
                        kTop + plot_height / 2);
  if (data.budget.has_value()) {
    absl::StrAppendFormat(&svg,
                          "<line class=\"budget\" x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" "
                          "stroke=\"#c00\" stroke-dasharray=\"6 4\"/>\n",
                          x(*data.budget), kTop, x(*data.budget), kTop + plot_height);
  }
  for (const PlotPoint& p : data.points) {
    absl::StrAppendFormat(&svg,
                          "<circle class=\"candidate\" cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" "
                          "fill=\"%s\" fill-opacity=\"0.6\"/>\n",
                          x(p.cost), y(p.accuracy), p.on_front ? "#1f5fbf" : "#999");
  }
  std::vector<PlotPoint> front;
  for (const PlotPoint& p : data.points) {
    if (p.on_front) front.push_back(p);
  }
  std::sort(front.begin(), front.end(),
            [](const PlotPoint& a, const PlotPoint& b) { return a.cost < b.cost; });
  if (!front.empty()) {
    svg +=
        "<polyline class=\"front\" fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1.5\" points=\"";
    for (size_t i = 0; i < front.size(); ++i) {
      absl::StrAppendFormat(&svg, "%s%.2f,%.2f", i == 0 ? "" : " ", x(front[i].cost),
                            y(front[i].accuracy));
    }
    svg += "\"/>\n";
  }
  for (const PlotPoint& p : data.points) {
    if (!p.best) continue;
    absl::StrAppendFormat(&svg,
                          "<circle class=\"best\" cx=\"%.2f\" cy=\"%.2f\" r=\"7\" fill=\"none\" "
                          "stroke=\"#c00\" stroke-width=\"2\"/>\n",
                          x(p.cost), y(p.accuracy));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace apq::client
