#include "hwmodels/bitfusion_analytic.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace apq::hwmodels {
namespace {

constexpr char kModelName[] = "bitfusion-analytic(v1)";

// ---- Features ----

// MACs a fused unit does per step at (w, a) bits (one at 8 x 8 bits).
double Parallelism(int w_bits, int a_bits, bool power_of_two_fusion) {
  if (power_of_two_fusion) {
    const auto group = [](int bits) {
      int group_bits = 2;
      while (group_bits < bits) group_bits *= 2;
      return group_bits;
    };
    return (8.0 / group(w_bits)) * (8.0 / group(a_bits));
  }
  const auto bricks = [](int bits) { return (bits + 1) / 2; };
  return 16.0 / (bricks(w_bits) * bricks(a_bits));
}

struct Features {
  double steps = 0.0;
  double dram_bits = 0.0;
  double input_channels = 0.0;
  double operand_bits = 0.0;  // MACs x (w + a).
};

Features FeaturesOf(const BitFusionConv& conv, const BitFusionAnalyticOptions& options) {
  const double out = conv.OutputSize();
  const double k2 = static_cast<double>(conv.kernel_size) * conv.kernel_size;
  const double cin = conv.in_channels;
  const double cout = conv.out_channels;
  const double cin_per_group = cin / conv.groups;
  const double parallel = Parallelism(conv.w_bits, conv.a_bits, options.power_of_two_fusion);
  Features f;
  if (conv.groups == 1) {
    f.steps = std::ceil(cout / options.array_columns) * out * out * k2 *
              std::ceil(cin / (options.array_rows * parallel));
  } else {
    f.steps =
        std::ceil(cout / (options.depthwise_lanes * parallel)) * out * out * k2 * cin_per_group;
  }
  const double input_extent = (out - 1.0) * conv.stride + conv.kernel_size;
  f.dram_bits = cin_per_group * cout * k2 * conv.w_bits +
                cin * input_extent * input_extent * conv.a_bits +
                cout * out * out * options.output_bits;
  f.input_channels = cin;
  f.operand_bits = cout * out * out * k2 * cin_per_group * (conv.w_bits + conv.a_bits);
  return f;
}

// The five latency constants from the optimiser's unconstrained coordinates: logarithms, except
// gamma, a logistic (it is a fraction).
constexpr double kMinLog = -100.0;  // exp(-100) ~ 4e-44: effectively zero, still finite.
constexpr double kMaxLog = 50.0;

double ClampedExp(double x) { return std::exp(std::clamp(x, kMinLog, kMaxLog)); }

void SetLatencyParams(const std::vector<double>& x, BitFusionKindParams* params) {
  params->overhead_ms = ClampedExp(x[0]);
  params->ms_per_step = ClampedExp(x[1]);
  params->ms_per_dram_bit = ClampedExp(x[2]);
  params->exposed_dram_fraction = 1.0 / (1.0 + ClampedExp(-x[3]));
  params->ms_per_input_channel = ClampedExp(x[4]);
}

double LatencyMs(const BitFusionKindParams& p, const Features& f) {
  const double compute = p.ms_per_step * f.steps;
  const double memory = p.ms_per_dram_bit * f.dram_bits;
  return p.overhead_ms + std::max(compute, memory) + p.exposed_dram_fraction * memory +
         p.ms_per_input_channel * f.input_channels;
}

constexpr int kNumEnergyParams = 5;

std::array<double, kNumEnergyParams> EnergyTerms(const Features& f, double latency_ms) {
  return {1.0, f.steps, f.dram_bits, f.operand_bits, latency_ms};
}

double EnergyMj(const BitFusionKindParams& p, const Features& f, double latency_ms) {
  const std::array<double, kNumEnergyParams> terms = EnergyTerms(f, latency_ms);
  return p.energy_fixed_mj * terms[0] + p.mj_per_step * terms[1] + p.mj_per_dram_bit * terms[2] +
         p.mj_per_operand_bit * terms[3] + p.static_power_w * terms[4];
}

void SetEnergyParams(const std::array<double, kNumEnergyParams>& c, BitFusionKindParams* params) {
  params->energy_fixed_mj = c[0];
  params->mj_per_step = c[1];
  params->mj_per_dram_bit = c[2];
  params->mj_per_operand_bit = c[3];
  params->static_power_w = c[4];
}

// ---- Nelder-Mead ----

struct Minimum {
  std::vector<double> x;
  double value = 0.0;
  int evaluations = 0;
};

// Nelder-Mead with the standard coefficients (reflection 1, expansion 2, contraction 1/2,
// shrink 1/2) from an axis-aligned simplex of edge `step` around x0. Deterministic. Stops when
// the simplex's values agree to a relative 1e-12 or after max_evaluations.
Minimum NelderMead(const std::function<double(const std::vector<double>&)>& f,
                   const std::vector<double>& x0, double step, int max_evaluations) {
  const size_t n = x0.size();
  std::vector<std::vector<double>> points(n + 1, x0);
  for (size_t i = 0; i < n; ++i) points[i + 1][i] += step;
  std::vector<double> values(n + 1);
  int evaluations = 0;
  const auto eval = [&](const std::vector<double>& x) {
    ++evaluations;
    const double value = f(x);
    return std::isfinite(value) ? value : std::numeric_limits<double>::infinity();
  };
  for (size_t i = 0; i <= n; ++i) values[i] = eval(points[i]);
  std::vector<size_t> order(n + 1);
  std::vector<double> centroid(n), trial(n), second(n);
  const auto along = [&](double t, const std::vector<double>& from, std::vector<double>* out) {
    for (size_t j = 0; j < n; ++j) (*out)[j] = centroid[j] + t * (from[j] - centroid[j]);
  };
  while (evaluations < max_evaluations) {
    for (size_t i = 0; i <= n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return values[a] < values[b]; });
    const size_t best = order[0], worst = order[n], second_worst = order[n - 1];
    if (values[worst] - values[best] <= 1e-12 * std::fabs(values[best]) + 1e-300) break;
    std::fill(centroid.begin(), centroid.end(), 0.0);
    for (size_t i = 0; i <= n; ++i) {
      if (i == worst) continue;
      for (size_t j = 0; j < n; ++j) centroid[j] += points[i][j] / n;
    }
    along(-1.0, points[worst], &trial);  // Reflection.
    const double reflected = eval(trial);
    if (reflected < values[best]) {
      along(-2.0, points[worst], &second);  // Expansion.
      const double expanded = eval(second);
      if (expanded < reflected) {
        points[worst] = second;
        values[worst] = expanded;
      } else {
        points[worst] = trial;
        values[worst] = reflected;
      }
      continue;
    }
    if (reflected < values[second_worst]) {
      points[worst] = trial;
      values[worst] = reflected;
      continue;
    }
    // Contraction: outside when the reflection beat the worst point, inside otherwise.
    const bool outside = reflected < values[worst];
    along(outside ? -0.5 : 0.5, points[worst], &second);
    const double contracted = eval(second);
    if (contracted < std::min(reflected, values[worst])) {
      points[worst] = second;
      values[worst] = contracted;
      continue;
    }
    for (size_t i = 0; i <= n; ++i) {  // Shrink towards the best point.
      if (i == best) continue;
      for (size_t j = 0; j < n; ++j)
        points[i][j] = points[best][j] + 0.5 * (points[i][j] - points[best][j]);
      values[i] = eval(points[i]);
    }
  }
  const size_t best =
      static_cast<size_t>(std::min_element(values.begin(), values.end()) - values.begin());
  return {points[best], values[best], evaluations};
}

// ---- Non-negative least squares on relative error ----

// Solves the normal equations of `columns` (a subset of the terms) by Gaussian elimination with
// partial pivoting. False when singular.
bool SolveSubset(const std::vector<std::array<double, kNumEnergyParams>>& rows,
                 const std::vector<int>& columns, std::vector<double>* solution) {
  const size_t m = columns.size();
  std::vector<std::vector<double>> a(m, std::vector<double>(m + 1, 0.0));
  for (const auto& row : rows) {  // Each row is already divided by its target (target 1).
    for (size_t i = 0; i < m; ++i) {
      const double xi = row[columns[i]];
      for (size_t j = 0; j < m; ++j) a[i][j] += xi * row[columns[j]];
      a[i][m] += xi;
    }
  }
  for (size_t c = 0; c < m; ++c) {
    size_t pivot = c;
    for (size_t r = c + 1; r < m; ++r) {
      if (std::fabs(a[r][c]) > std::fabs(a[pivot][c])) pivot = r;
    }
    // Scaled terms make every diagonal entry about rows.size(): far below that is singular.
    if (!(std::fabs(a[pivot][c]) > 1e-10 * rows.size())) return false;
    std::swap(a[c], a[pivot]);
    for (size_t r = 0; r < m; ++r) {
      if (r == c) continue;
      const double factor = a[r][c] / a[c][c];
      for (size_t k = c; k <= m; ++k) a[r][k] -= factor * a[c][k];
    }
  }
  solution->resize(m);
  for (size_t i = 0; i < m; ++i) (*solution)[i] = a[i][m] / a[i][i];
  return true;
}

// Minimises sum over rows of (sum_j c_j x_j / y - 1)^2 with every c_j >= 0, by solving each
// subset of terms unconstrained and keeping the best whose coefficients are all non-negative
// (the exact NNLS optimum for 5 terms). Each term is scaled to unit RMS of x_j / y first, so the
// normal equations stay well conditioned although the terms span many decades.
std::array<double, kNumEnergyParams> FitEnergy(
    const std::vector<std::array<double, kNumEnergyParams>>& terms, const std::vector<double>& y) {
  std::array<double, kNumEnergyParams> scale{};
  for (size_t i = 0; i < terms.size(); ++i) {
    for (int j = 0; j < kNumEnergyParams; ++j) scale[j] += std::pow(terms[i][j] / y[i], 2);
  }
  for (double& s : scale) s = s > 0.0 ? std::sqrt(s / terms.size()) : 1.0;
  std::vector<std::array<double, kNumEnergyParams>> scaled(terms.size());
  for (size_t i = 0; i < terms.size(); ++i) {
    for (int j = 0; j < kNumEnergyParams; ++j) scaled[i][j] = terms[i][j] / y[i] / scale[j];
  }
  std::array<double, kNumEnergyParams> best{};
  double best_error = std::numeric_limits<double>::infinity();
  std::vector<int> columns;
  std::vector<double> solution;
  for (unsigned mask = 1; mask < (1u << kNumEnergyParams); ++mask) {
    columns.clear();
    for (int j = 0; j < kNumEnergyParams; ++j) {
      if (mask & (1u << j)) columns.push_back(j);
    }
    if (!SolveSubset(scaled, columns, &solution)) continue;
    if (*std::min_element(solution.begin(), solution.end()) < 0.0) continue;
    double error = 0.0;
    for (const auto& row : scaled) {
      double prediction = 0.0;
      for (size_t k = 0; k < columns.size(); ++k) prediction += solution[k] * row[columns[k]];
      error += (prediction - 1.0) * (prediction - 1.0);
    }
    if (error < best_error) {
      best_error = error;
      best.fill(0.0);
      for (size_t k = 0; k < columns.size(); ++k) {
        best[columns[k]] = solution[k] / scale[columns[k]];
      }
    }
  }
  return best;
}

// ---- Rows, split and error figures ----

struct Row {
  std::string key;
  BitFusionConv conv;
  BitFusionOpKind kind = BitFusionOpKind::kPointwise;
  bool heldout = false;
  double latency_ms = 0.0;
  std::optional<double> energy_mj;
  Features features;
};

// FNV-1a (64 bits): a stable hash, the same on every platform and run.
uint64_t Fnv1a(std::string_view text) {
  uint64_t hash = 14695981039346656037ull;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string ShapeText(const BitFusionConv& c) {
  return absl::StrCat("(", c.in_channels, ", ", c.out_channels, ", ", c.input_size, ", ",
                      c.kernel_size, ", ", c.stride, ", ", c.padding, ", ", c.groups, ")");
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  const size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + mid, values.end());
  const double upper = values[mid];
  if (values.size() % 2 == 1) return upper;
  return 0.5 * (upper + *std::max_element(values.begin(), values.begin() + mid));
}

double MedianRatio(const std::vector<const Row*>& rows,
                   const std::function<double(const Row&)>& ratio) {
  std::vector<double> values;
  values.reserve(rows.size());
  for (const Row* row : rows) values.push_back(ratio(*row));
  return Median(std::move(values));
}

// Error stats of `estimate` against `actual` over the rows where actual > 0.
BitFusionErrorStats ErrorStats(const std::vector<const Row*>& rows,
                               const std::function<std::optional<double>(const Row&)>& actual,
                               const std::function<double(const Row&)>& estimate) {
  BitFusionErrorStats stats;
  std::vector<double> errors;
  double sum = 0.0;
  for (const Row* row : rows) {
    const std::optional<double> truth = actual(*row);
    if (!truth.has_value() || *truth <= 0.0) continue;
    const double error = std::fabs(estimate(*row) / *truth - 1.0);
    errors.push_back(error);
    sum += error;
    if (stats.worst_key.empty() || error > stats.worst_ape) {
      stats.worst_ape = error;
      stats.worst_key = row->key;
    }
  }
  stats.rows = static_cast<int>(errors.size());
  if (!errors.empty()) stats.mape = sum / errors.size();
  stats.median_ape = Median(std::move(errors));
  return stats;
}

int CountShapes(const std::vector<const Row*>& rows) {
  std::vector<std::string> shapes;
  shapes.reserve(rows.size());
  for (const Row* row : rows) shapes.push_back(ShapeText(row->conv));
  std::sort(shapes.begin(), shapes.end());
  return static_cast<int>(std::unique(shapes.begin(), shapes.end()) - shapes.begin());
}

// Fits the latency constants of one kind; returns the objective evaluations used.
int FitLatency(const std::vector<const Row*>& train, BitFusionKindParams* params) {
  const auto objective = [&train](const std::vector<double>& x) {
    BitFusionKindParams p;
    SetLatencyParams(x, &p);
    double sum = 0.0;
    for (const Row* row : train) {
      const double relative = LatencyMs(p, row->features) / row->latency_ms - 1.0;
      sum += relative * relative;
    }
    return sum / train.size();
  };
  // A start where every term is of the right order: compute or DRAM time alone about half the
  // latency, overheads a few percent of it.
  const auto latency = [](const Row& r) { return r.latency_ms; };
  std::vector<double> x = {
      std::log(0.01 * MedianRatio(train, latency)),
      std::log(0.5 *
               MedianRatio(train, [](const Row& r) { return r.latency_ms / r.features.steps; })),
      std::log(0.5 * MedianRatio(train,
                                 [](const Row& r) { return r.latency_ms / r.features.dram_bits; })),
      0.0,  // gamma = 1/2.
      std::log(0.1 *
               MedianRatio(train,
                           [](const Row& r) { return r.latency_ms / r.features.input_channels; })),
  };
  // Restarts from the best point with a fresh simplex, until one gains nothing.
  constexpr int kMaxRestarts = 4;
  constexpr int kEvaluationsPerRun = 1500;
  int evaluations = 0;
  double best = std::numeric_limits<double>::infinity();
  for (int run = 0; run < kMaxRestarts; ++run) {
    const Minimum minimum = NelderMead(objective, x, /*step=*/1.0, kEvaluationsPerRun);
    evaluations += minimum.evaluations;
    const bool improved = minimum.value < best * (1.0 - 1e-9);
    if (minimum.value < best) {
      best = minimum.value;
      x = minimum.x;
    }
    if (!improved) break;
  }
  SetLatencyParams(x, params);
  return evaluations;
}

// Fits the constants of `kind` to its training rows; returns the latency objective's evaluations.
// FAILED_PRECONDITION when fewer than kMinTrainRows rows are usable.
absl::StatusOr<int> FitKind(BitFusionOpKind kind, const std::vector<const Row*>& train,
                            size_t rows_in_all, bool has_energy,
                            const BitFusionAnalyticOptions& options, BitFusionKindParams* params) {
  std::vector<const Row*> latency_rows, energy_rows;
  for (const Row* row : train) {
    if (row->latency_ms <= 0.0) continue;
    latency_rows.push_back(row);
    if (has_energy && *row->energy_mj > 0.0) energy_rows.push_back(row);
  }
  const size_t usable =
      has_energy ? std::min(latency_rows.size(), energy_rows.size()) : latency_rows.size();
  if (usable < static_cast<size_t>(BitFusionAnalyticModel::kMinTrainRows)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "BitFusion analytic model: the table has ", usable, " training rows of ", OpKindName(kind),
        " convs with a positive latency", has_energy ? " and energy" : "", " (", rows_in_all,
        " rows in all, ", options.heldout_percent, "% of shapes held out); at least ",
        BitFusionAnalyticModel::kMinTrainRows, " are needed"));
  }
  const int evaluations = FitLatency(latency_rows, params);
  if (has_energy) {
    std::vector<std::array<double, kNumEnergyParams>> terms;
    std::vector<double> targets;
    terms.reserve(energy_rows.size());
    targets.reserve(energy_rows.size());
    for (const Row* row : energy_rows) {
      terms.push_back(EnergyTerms(row->features, LatencyMs(*params, row->features)));
      targets.push_back(*row->energy_mj);
    }
    SetEnergyParams(FitEnergy(terms, targets), params);
  }
  return evaluations;
}

// The report of one kind: row counts and the error of `estimate` on both sides of the split.
BitFusionKindReport KindReport(BitFusionOpKind kind, const std::vector<const Row*>& train,
                               const std::vector<const Row*>& heldout, bool has_energy,
                               const std::function<CostEntry(const BitFusionConv&)>& estimate) {
  const auto table_latency = [](const Row& r) { return std::optional<double>(r.latency_ms); };
  const auto table_energy = [](const Row& r) { return r.energy_mj; };
  const auto latency_of = [&estimate](const Row& r) { return estimate(r.conv).latency_ms; };
  const auto energy_of = [&estimate](const Row& r) {
    return estimate(r.conv).energy_mj.value_or(0.0);
  };
  BitFusionKindReport report;
  report.kind = kind;
  report.train_shapes = CountShapes(train);
  report.heldout_shapes = CountShapes(heldout);
  report.train_rows = static_cast<int>(train.size());
  report.heldout_rows = static_cast<int>(heldout.size());
  report.train_latency = ErrorStats(train, table_latency, latency_of);
  report.heldout_latency = ErrorStats(heldout, table_latency, latency_of);
  if (has_energy) {
    report.train_energy = ErrorStats(train, table_energy, energy_of);
    report.heldout_energy = ErrorStats(heldout, table_energy, energy_of);
  }
  return report;
}

std::string PercentText(double fraction) { return absl::StrFormat("%.2f%%", 100.0 * fraction); }

}  // namespace

BitFusionOpKind OpKindOf(const BitFusionConv& conv) {
  if (conv.groups == 1 && conv.kernel_size == 1) return BitFusionOpKind::kPointwise;
  if (conv.groups > 1 && conv.groups == conv.in_channels && conv.groups == conv.out_channels) {
    return BitFusionOpKind::kDepthwise;
  }
  return BitFusionOpKind::kOther;
}

const char* OpKindName(BitFusionOpKind kind) {
  switch (kind) {
    case BitFusionOpKind::kPointwise:
      return "pointwise";
    case BitFusionOpKind::kDepthwise:
      return "depthwise";
    case BitFusionOpKind::kOther:
      return "other";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<BitFusionAnalyticModel>> BitFusionAnalyticModel::Fit(
    const CostTable& table, const BitFusionAnalyticOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (table.format != TableFormat::kApqBitFusion) {
    return absl::InvalidArgumentError(
        "BitFusion analytic model: the table is not a BitFusion table");
  }
  if (options.array_rows < 1 || options.array_columns < 1 || options.depthwise_lanes < 1 ||
      options.output_bits < 1 || options.heldout_percent < 0 || options.heldout_percent > 90) {
    return absl::InvalidArgumentError(
        "BitFusion analytic model: options out of range (array_rows, array_columns, "
        "depthwise_lanes and output_bits >= 1; heldout_percent in 0..90)");
  }

  // Rows in key order, so that every sum runs in the same order whatever the map's order.
  std::vector<Row> rows;
  BitFusionFitReport report;
  for (const auto& [key, entry] : table.entries) {
    absl::StatusOr<BitFusionConv> conv = ParseBitFusionKey(key);
    if (!conv.ok()) {
      ++report.ignored_keys;
      continue;
    }
    Row row;
    row.key = key;
    row.conv = *conv;
    row.kind = OpKindOf(*conv);
    row.heldout = Fnv1a(ShapeText(*conv)) % 100 < static_cast<uint64_t>(options.heldout_percent);
    row.latency_ms = entry.latency_ms;
    row.energy_mj = entry.energy_mj;
    row.features = FeaturesOf(*conv, options);
    rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.key < b.key; });
  report.has_energy = !rows.empty() && std::all_of(rows.begin(), rows.end(), [](const Row& r) {
    return r.energy_mj.has_value();
  });

  std::array<std::vector<const Row*>, kNumBitFusionOpKinds> train, heldout;
  for (const Row& row : rows) {
    const int kind = static_cast<int>(row.kind);
    if (row.kind == BitFusionOpKind::kOther || row.heldout) {
      heldout[kind].push_back(&row);
    } else {
      train[kind].push_back(&row);
    }
  }

  std::array<BitFusionKindParams, 2> fitted;
  std::array<int, 2> evaluations{};
  for (const BitFusionOpKind kind : {BitFusionOpKind::kPointwise, BitFusionOpKind::kDepthwise}) {
    const int k = static_cast<int>(kind);
    ASSIGN_OR_RETURN(evaluations[k], FitKind(kind, train[k], train[k].size() + heldout[k].size(),
                                             report.has_energy, options, &fitted[k]));
  }

  std::unique_ptr<BitFusionAnalyticModel> model = absl::WrapUnique(
      new BitFusionAnalyticModel(options, fitted[0], fitted[1], report.has_energy));
  const auto estimate = [&model](const BitFusionConv& conv) { return model->EstimateConv(conv); };
  for (int k = 0; k < kNumBitFusionOpKinds; ++k) {
    const BitFusionOpKind kind = static_cast<BitFusionOpKind>(k);
    if (kind == BitFusionOpKind::kOther && heldout[k].empty()) continue;
    report.kinds.push_back(KindReport(kind, train[k], heldout[k], report.has_energy, estimate));
    if (k < 2) report.kinds.back().objective_evaluations = evaluations[k];
  }
  report.fit_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  model->report_ = std::move(report);
  return model;
}

BitFusionAnalyticModel::BitFusionAnalyticModel(const BitFusionAnalyticOptions& options,
                                               const BitFusionKindParams& pointwise,
                                               const BitFusionKindParams& depthwise,
                                               bool has_energy)
    : options_(options), pointwise_(pointwise), depthwise_(depthwise), has_energy_(has_energy) {}

const BitFusionKindParams& BitFusionAnalyticModel::params(BitFusionOpKind kind) const {
  return kind == BitFusionOpKind::kDepthwise ? depthwise_ : pointwise_;
}

CostEntry BitFusionAnalyticModel::EstimateConv(const BitFusionConv& conv) const {
  // Dense convs share the pointwise mapping on the array; grouped ones the depthwise lanes.
  const BitFusionKindParams& p = conv.groups == 1 ? pointwise_ : depthwise_;
  const Features features = FeaturesOf(conv, options_);
  CostEntry entry;
  entry.latency_ms = LatencyMs(p, features);
  if (has_energy_) entry.energy_mj = EnergyMj(p, features, entry.latency_ms);
  return entry;
}

std::optional<CostEntry> BitFusionAnalyticModel::Estimate(const std::string& key) const {
  const absl::StatusOr<BitFusionConv> conv = ParseBitFusionKey(key);
  if (!conv.ok()) return std::nullopt;
  return EstimateConv(*conv);
}

std::string BitFusionAnalyticModel::name() const { return kModelName; }

std::string BitFusionFitReport::ToString() const {
  std::string text = absl::StrFormat(
      "%s fit in %.1f ms (%d keys ignored; energy %s)\n"
      "%-10s %13s %13s  %-6s %8s %8s %8s  %s\n",
      kModelName, 1e3 * fit_seconds, ignored_keys, has_energy ? "modelled" : "not modelled", "kind",
      "shapes tr/ho", "rows tr/ho", "metric", "MAPE", "median", "worst", "worst key");
  for (const BitFusionKindReport& kind : kinds) {
    const std::string shapes = absl::StrCat(kind.train_shapes, "/", kind.heldout_shapes);
    const std::string row_counts = absl::StrCat(kind.train_rows, "/", kind.heldout_rows);
    const auto line = [&](const char* metric, const BitFusionErrorStats& stats) {
      absl::StrAppendFormat(&text, "%-10s %13s %13s  %-6s %8s %8s %8s  %s\n", OpKindName(kind.kind),
                            shapes, row_counts, metric, PercentText(stats.mape),
                            PercentText(stats.median_ape), PercentText(stats.worst_ape),
                            stats.worst_key);
    };
    line("lat", kind.heldout_latency);
    if (has_energy) line("energy", kind.heldout_energy);
  }
  return text;
}

}  // namespace apq::hwmodels
