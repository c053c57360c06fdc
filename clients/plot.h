// A job's candidates drawn as an SVG for people without the dashboard: accuracy against one
// cost, every candidate a point, the Pareto front a line through its members, the budget in
// that cost a dashed vertical line, the job's best circled. Self-contained SVG 1.1 (no
// scripts, no external fonts); every text is XML-escaped.
#ifndef APQ_CLIENTS_PLOT_H_
#define APQ_CLIENTS_PLOT_H_

#include <optional>
#include <string>
#include <vector>

namespace apq::client {

struct PlotPoint {
  double cost = 0.0;
  double accuracy = 0.0;  // A fraction; drawn in percent.
  bool on_front = false;
  bool best = false;
};

struct PlotData {
  std::string title;       // E.g. "job-3: fmnist_lowbit on bitfusion".
  std::string cost_label;  // The x axis, e.g. "latency (ms)".
  std::vector<PlotPoint> points;
  std::optional<double> budget;  // In the plotted cost.
};

// Elements a reader (or a test) can count: one <circle class="candidate"> per point, one
// <polyline class="front"> through the front's points by ascending cost (when it has any),
// one <line class="budget"> (when set) and one <circle class="best"> per best point.
std::string RenderPlotSvg(const PlotData& data);

// `text` with &, <, >, " and ' escaped for XML.
std::string XmlEscape(const std::string& text);

}  // namespace apq::client

#endif  // APQ_CLIENTS_PLOT_H_
