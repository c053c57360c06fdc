// Per-layer int8 against float latency on this CPU, for every conv shape of a Fashion-MNIST
// spec, on each of LibTorch's quantized engines (oface/layer_profiler.h, CompareInt8Layers):
//   bazel run -c opt //bench:int8_layers_bench -- --spec fmnist_mbv2 --threads 1
// Prints one tab-separated row per shape (float ms, then ms and speed-up per engine), then per
// role and overall: the geometric mean of float / int8 and how many shapes run faster in int8.
// Float and int8 of a shape are timed back to back, so the machine's load touches both alike.
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tool_main.h"
#include "oface/int8_layers.h"
#include "oface/layer_profiler.h"
#include "oface/mbconv_spec.h"

ABSL_FLAG(std::string, spec, "fmnist_mbv2", "The spec whose conv shapes are timed.");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads.");
ABSL_FLAG(int, warmup, 20, "Untimed runs per layer and kind.");
ABSL_FLAG(int, repeats, 101, "Timed runs per layer and kind; the median is kept.");
ABSL_FLAG(int, cache_flush_mib, 8, "MiB swept before every run (cold caches, as in a network).");

namespace {

struct Summary {
  std::vector<double> log_speedup_sum;
  std::vector<int> faster;
  int shapes = 0;
};

absl::Status Run() {
  ASSIGN_OR_RETURN(const apq::oface::MbConvSpec spec,
                   apq::oface::FindFashionMnistSpec(absl::GetFlag(FLAGS_spec)));
  apq::oface::ProfileOptions options;
  options.timing.threads = absl::GetFlag(FLAGS_threads);
  options.timing.warmup = absl::GetFlag(FLAGS_warmup);
  options.timing.repeats = absl::GetFlag(FLAGS_repeats);
  options.cache_flush_bytes = int64_t{absl::GetFlag(FLAGS_cache_flush_mib)} << 20;
  const std::vector<apq::oface::QuantizedEngine> engines = apq::oface::AvailableQuantizedEngines();
  ASSIGN_OR_RETURN(const std::vector<apq::oface::Int8ShapeTiming> timings,
                   apq::oface::CompareInt8Layers(spec, options, engines));
  std::printf("shape\trole\tfloat_ms");
  for (const auto engine : engines) {
    const char* name = apq::oface::QuantizedEngineName(engine);
    std::printf("\t%s_ms\t%s_speedup", name, name);
  }
  std::printf("\n");
  std::map<std::string, Summary> summaries;
  for (const apq::oface::Int8ShapeTiming& timing : timings) {
    std::printf("%s\t%s\t%.5f", timing.shape.c_str(), timing.role.c_str(), timing.float_ms);
    for (const std::string& group : {timing.role, std::string("all")}) {
      Summary& summary = summaries[group];
      summary.log_speedup_sum.resize(engines.size(), 0.0);
      summary.faster.resize(engines.size(), 0);
      ++summary.shapes;
      for (size_t e = 0; e < engines.size(); ++e) {
        const double speedup = timing.float_ms / timing.int8_ms[e];
        summary.log_speedup_sum[e] += std::log(speedup);
        summary.faster[e] += speedup > 1.0 ? 1 : 0;
      }
    }
    for (size_t e = 0; e < engines.size(); ++e) {
      std::printf("\t%.5f\t%.3f", timing.int8_ms[e], timing.float_ms / timing.int8_ms[e]);
    }
    std::printf("\n");
  }
  std::printf("\nsummary (float / int8: geometric mean; shapes faster in int8)\n");
  for (const auto& [group, summary] : summaries) {
    std::printf("%s (%d shapes)", group.c_str(), summary.shapes);
    for (size_t e = 0; e < engines.size(); ++e) {
      std::printf("\t%s %.3fx, %d faster", apq::oface::QuantizedEngineName(engines[e]),
                  std::exp(summary.log_speedup_sum[e] / summary.shapes), summary.faster[e]);
    }
    std::printf("\n");
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) { return apq::RunTool("int8_layers_bench", argc, argv, Run); }
