// Measures sampled subnets of a trained Fashion-MNIST supernet (oface/subnet_measurement.h)
// and stores each record in a dataset of the service's SQLite database as soon as it is
// measured, resumably (configs the dataset already holds for the same method are skipped);
// optionally exports the dataset as CSV:
//   bazel-bin/server/measure_subnets --checkpoint W.pt --db apq.db --dataset fm --count 1000
//   bazel-bin/server/measure_subnets --checkpoint W.pt --db apq.db --dataset fm --count 300
//       --quantized --export_csv measurements.csv   (one command line)
//   bazel-bin/server/measure_subnets --db apq.db --dataset fm --count 0 --export_csv m.csv
// Every flag is checked before the database is opened, and a new dataset is created only once
// the weights and images have loaded. A progress line per record goes to stderr.
#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/tensor_memory.h"
#include "common/tool_main.h"
#include "oface/fashion_mnist.h"
#include "oface/mbconv_spec.h"
#include "oface/subnet_measurement.h"
#include "oface/supernet.h"
#include "server/catalog.h"
#include "server/measurement_launcher.h"
#include "server/measurement_run_settings.h"
#include "server/store/open_store.h"
#include "server/store/postgres_store.h"

ABSL_FLAG(std::string, checkpoint, "",
          "Supernet weights (Supernet::SaveWeights or the trainer's checkpoint.pt); required "
          "when --count > 0.");
ABSL_FLAG(std::string, db, "",
          "The service's store: a SQLite file (created if absent) or a postgresql:// URI.");
ABSL_FLAG(std::string, space, "fmnist_mbv2",
          "The supernet's space: fmnist_mbv2, fmnist_lowbit or fmnist_int8float "
          "(oface/mbconv_spec.h).");
ABSL_FLAG(std::string, dataset, "fmnist_mbv2",
          "Dataset the records go to (created for --space if absent).");
ABSL_FLAG(std::string, description, "",
          "Description of a new dataset (default: the checkpoint's path).");
ABSL_FLAG(std::string, export_csv, "",
          "After measuring, write every record of the dataset (all methods) to this CSV file.");
ABSL_FLAG(std::string, data_dir, apq::oface::kDefaultFashionMnistDir,
          "Folder of the Fashion-MNIST *-ubyte.gz files.");
ABSL_FLAG(int, count, 100,
          "Configs of the job (the first N distinct ones of the seed); 0 with --export_csv "
          "only exports.");
ABSL_FLAG(bool, quantized, false,
          "Measure (subnet, bit policy) pairs with the supernet's fake quantization.");
ABSL_FLAG(std::string, quantized_bits, "random",
          "How --quantized draws each config's bits: random (per layer), uniform (one width "
          "everywhere), near_uniform (one width, then 1-3 layers redrawn) or paired (random, "
          "each layer's activation bits equal to its weight bits).");
ABSL_FLAG(uint64_t, seed, 1, "Seed of config sampling and of the calibration subset.");
ABSL_FLAG(int, threads, 2, "LibTorch intra-op threads.");
ABSL_FLAG(int, calibration_images, 2000, "Train-split images for BN recalibration.");
ABSL_FLAG(std::string, split, "validation",
          "Images measured on: validation (the records that train predictors and choose "
          "networks) or test (final reports only).");
ABSL_FLAG(int, eval_images, 0, "First N images of the split to evaluate on (0: all 10,000).");
ABSL_FLAG(int, calibration_batch_size, 200, "Batch size of BN recalibration.");
ABSL_FLAG(std::string, launcher, "",
          "Measure with workers instead of in this process: local (processes here) or slurm "
          "(one array job; sbatch and squeue on PATH). The configs become a measurement run in "
          "the store (PostgreSQL when workers run on other machines) that the workers "
          "(measure_worker) claim task by task; this process follows it to its end.");
ABSL_FLAG(int, workers, 2, "With --launcher: worker processes, or Slurm array tasks.");
ABSL_FLAG(int, worker_threads, 1, "With --launcher: LibTorch threads (Slurm CPUs) per worker.");
ABSL_FLAG(std::string, worker_binary, "",
          "With --launcher: the measure_worker binary, a path every node sees (default: beside "
          "this one).");
ABSL_FLAG(int, lease_seconds, 60,
          "With --launcher: a task's lease; a dead worker's tasks go to another this long "
          "after its last renewal.");
ABSL_FLAG(std::string, log_dir, "",
          "With --launcher: the workers' logs (and the Slurm batch script), a folder every node "
          "can write (default: /tmp/apq-<run>).");
ABSL_FLAG(int, max_attempts, 3,
          "With --launcher: claims of one task before it settles as failed (a worker that died "
          "on it counts as one).");
ABSL_FLAG(std::string, slurm_partition, "", "With --launcher slurm: sbatch --partition.");
ABSL_FLAG(std::string, slurm_time, "", "With --launcher slurm: sbatch --time (a task's limit).");
ABSL_FLAG(int, eval_batch_size, 250,
          "Batch size of evaluation (250 ran twice as fast as 1000 here: smaller activations).");

namespace {

// Writes every record of `dataset` to `path` (temporary + rename).
absl::Status ExportCsv(apq::server::DatasetStore& store, const std::string& dataset,
                       const std::string& path) {
  absl::StatusOr<std::vector<apq::server::MeasurementRow>> rows =
      store.ListMeasurements(dataset, std::nullopt);
  if (!rows.ok()) return rows.status();
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << apq::oface::kMeasurementCsvHeader << "\n";
    for (const apq::server::MeasurementRow& row : *rows) {
      out << apq::oface::MeasurementToCsvLine(
                 {row.config_json, row.accuracy, row.method, row.seconds, row.seed, row.split})
          << "\n";
    }
    out.flush();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", temporary));
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot rename ", temporary, " to ", path, ": ", error.message()));
  }
  std::fprintf(stderr, "exported %zu records of dataset %s to %s\n", rows->size(), dataset.c_str(),
               path.c_str());
  return absl::OkStatus();
}

// INVALID_ARGUMENT naming --`flag` unless `value` is in [low, high].
absl::Status CheckFlagRange(const char* flag, int value, int low, int high) {
  if (value >= low && value <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " must be in [", low, ", ", high, "], got ", value));
}

// INVALID_ARGUMENT naming --`flag` unless `value` > 0.
absl::Status CheckPositiveFlag(const char* flag, int value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be > 0, got ", value));
}

// --worker_binary, or measure_worker beside this binary.
std::string WorkerBinary() {
  if (!absl::GetFlag(FLAGS_worker_binary).empty()) return absl::GetFlag(FLAGS_worker_binary);
  std::error_code error;
  return (std::filesystem::read_symlink("/proc/self/exe", error).parent_path() / "measure_worker")
      .string();
}

// The launcher flags' checks, before the store is opened.
absl::Status CheckLauncherFlags(const std::string& checkpoint) {
  const std::string launcher = absl::GetFlag(FLAGS_launcher);
  if (launcher.empty()) return absl::OkStatus();
  if (launcher != "local" && launcher != "slurm") {
    return absl::InvalidArgumentError(
        absl::StrCat("--launcher: '", launcher, "' is not local or slurm"));
  }
  RETURN_IF_ERROR(CheckFlagRange("workers", absl::GetFlag(FLAGS_workers), 1, 10000));
  RETURN_IF_ERROR(CheckFlagRange("worker_threads", absl::GetFlag(FLAGS_worker_threads), 1, 256));
  RETURN_IF_ERROR(CheckFlagRange("lease_seconds", absl::GetFlag(FLAGS_lease_seconds), 3, 86400));
  RETURN_IF_ERROR(CheckFlagRange("max_attempts", absl::GetFlag(FLAGS_max_attempts), 1, 100));
  std::error_code error;
  if (!std::filesystem::is_regular_file(checkpoint, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--checkpoint ", checkpoint, " is not a readable file"));
  }
  const std::string worker_binary = WorkerBinary();
  if (access(worker_binary.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--worker_binary ", worker_binary, " is not an executable file"));
  }
  return absl::OkStatus();
}

// The launcher mode: the configs not measured yet become a measurement run whose workers
// (local processes or a Slurm array) claim them from the store; follows the run to its end.
absl::Status LaunchWorkers(apq::server::Store& store, const apq::oface::MbConvSpec& spec,
                           const std::string& dataset, const std::string& method,
                           const std::string& split, apq::oface::BitSampling quantized_bits,
                           bool quantized, uint64_t seed, int count, const std::string& checkpoint,
                           bool dataset_exists, const std::set<std::string>& done) {
  const std::string launcher = absl::GetFlag(FLAGS_launcher);
  const int workers = absl::GetFlag(FLAGS_workers);
  const int worker_threads = absl::GetFlag(FLAGS_worker_threads);
  const int lease_seconds = absl::GetFlag(FLAGS_lease_seconds);
  std::error_code error;
  const std::filesystem::path weights = std::filesystem::absolute(checkpoint, error);
  const std::string worker_binary = WorkerBinary();

  // The configs, as the in-process mode would measure them, less those measured already.
  ASSIGN_OR_RETURN(std::unique_ptr<apq::oface::Supernet> sampler,
                   apq::oface::Supernet::Create(spec, seed));
  std::vector<std::string> configs;
  for (const apq::oface::Genotype& genotype : apq::oface::SampleConfigsWithBits(
           sampler->space(), count, quantized ? quantized_bits : apq::oface::BitSampling::kHighest,
           seed)) {
    std::string config = sampler->space().ToJson(genotype);
    if (done.count(config) == 0) configs.push_back(std::move(config));
  }
  if (configs.empty()) {
    std::fprintf(stderr, "measure_subnets: every config is in dataset %s already\n",
                 dataset.c_str());
    return absl::OkStatus();
  }
  if (!dataset_exists) {
    const std::string description = absl::GetFlag(FLAGS_description);
    RETURN_IF_ERROR(store.datasets().CreateDataset(
        {dataset, spec.name, description.empty() ? checkpoint : description, apq::NowUnixSeconds(),
         0},
        {}));
  }
  apq::server::MeasurementRunSettings settings;
  settings.checkpoint = weights.string();
  settings.calibration_images = absl::GetFlag(FLAGS_calibration_images);
  settings.eval_images = absl::GetFlag(FLAGS_eval_images);
  settings.calibration_batch_size = absl::GetFlag(FLAGS_calibration_batch_size);
  settings.eval_batch_size = absl::GetFlag(FLAGS_eval_batch_size);
  apq::server::MeasurementRunRecord run;
  run.dataset = dataset;
  run.space = spec.name;
  run.method = method;
  run.split = split;
  run.seed = seed;
  run.settings = apq::server::SerializeMeasurementRunSettings(settings);
  run.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  run.created_unix_s = apq::NowUnixSeconds();
  ASSIGN_OR_RETURN(const std::string run_id,
                   store.measurement_runs().CreateMeasurementRun(run, configs));

  // The workers get the store without its password, which goes in their environment
  // (PGPASSWORD, read by libpq; sbatch exports the environment): not in process lists or in
  // the batch script.
  const apq::server::LocationWithoutPassword worker_db =
      apq::server::SplitPassword(absl::GetFlag(FLAGS_db));
  apq::server::WorkerLaunch launch;
  if (!worker_db.password.empty()) {
    launch.environment = {absl::StrCat("PGPASSWORD=", worker_db.password)};
  }
  launch.worker_binary = worker_binary;
  launch.arguments = {absl::StrCat("--db=", worker_db.location), absl::StrCat("--run=", run_id),
                      absl::StrCat("--threads=", worker_threads),
                      absl::StrCat("--lease_seconds=", lease_seconds),
                      absl::StrCat("--data_dir=", absl::GetFlag(FLAGS_data_dir))};
  launch.workers = workers;
  launch.cpus_per_worker = worker_threads;
  launch.log_dir = absl::GetFlag(FLAGS_log_dir).empty() ? absl::StrCat("/tmp/apq-", run_id)
                                                        : absl::GetFlag(FLAGS_log_dir);
  launch.slurm_partition = absl::GetFlag(FLAGS_slurm_partition);
  launch.slurm_time_limit = absl::GetFlag(FLAGS_slurm_time);
  std::filesystem::create_directories(launch.log_dir, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_dir ", launch.log_dir, ": ", error.message()));
  }
  ASSIGN_OR_RETURN(const apq::server::WorkerLauncher kind,
                   apq::server::WorkerLauncherFromName("--launcher", launcher));
  ASSIGN_OR_RETURN(apq::server::StartedWorkers started,
                   apq::server::StartedWorkers::Start(kind, launch));
  RETURN_IF_ERROR(
      store.measurement_runs().SetMeasurementRunLauncher(run_id, started.description()));
  std::fprintf(stderr, "measure_subnets: run %s, %zu configs, workers %s (logs in %s)\n",
               run_id.c_str(), configs.size(), started.description().c_str(),
               launch.log_dir.c_str());

  // Follows the run; the workers finish it. Workers that are all gone with tasks unsettled
  // (killed, or a Slurm time limit) leave it unfinished: it is reported, not hidden.
  int64_t reported = -1;
  int failed_reads = 0;  // In a row: the store or squeue not answering.
  constexpr int kMaxFailedReads = 60;
  while (true) {
    absl::SleepFor(absl::Seconds(1));
    absl::StatusOr<apq::server::MeasurementRunRecord> read =
        store.measurement_runs().GetMeasurementRun(run_id);
    if (!read.ok()) {
      if (++failed_reads >= kMaxFailedReads) return read.status();
      continue;
    }
    const apq::server::MeasurementRunRecord& current = *read;
    if (current.tasks_done + current.tasks_failed != reported) {
      reported = current.tasks_done + current.tasks_failed;
      std::fprintf(
          stderr, "run %s: %lld of %lld measured, %lld failed, %lld in hand\n", run_id.c_str(),
          static_cast<long long>(current.tasks_done), static_cast<long long>(current.tasks_total),
          static_cast<long long>(current.tasks_failed), static_cast<long long>(current.tasks_held));
    }
    if (apq::server::IsTerminal(current.state)) {
      if (current.state == apq::server::JobState::kSucceeded) return absl::OkStatus();
      return absl::AbortedError(absl::StrCat("run ", run_id, " ended with ", current.tasks_failed,
                                             " failed tasks: ", current.error));
    }
    failed_reads = 0;
    const int active = started.Active();
    if (active == 0) {
      // The last worker may have settled the last task just now.
      ASSIGN_OR_RETURN(const apq::server::MeasurementRunRecord last,
                       store.measurement_runs().GetMeasurementRun(run_id));
      if (apq::server::IsTerminal(last.state)) continue;
      return absl::UnavailableError(absl::StrCat(
          "every worker of run ", run_id, " is gone with ",
          last.tasks_total - last.tasks_done - last.tasks_failed, " tasks unsettled (logs in ",
          launch.log_dir, "); run measure_worker --run ", run_id, " to finish it"));
    }
  }
}

absl::Status Run() {
  // Every flag is checked before the store is opened, so that a bad command line leaves no
  // dataset behind.
  const std::string checkpoint = absl::GetFlag(FLAGS_checkpoint);
  const std::string db = absl::GetFlag(FLAGS_db);
  const std::string dataset = absl::GetFlag(FLAGS_dataset);
  const std::string export_csv = absl::GetFlag(FLAGS_export_csv);
  const int count = absl::GetFlag(FLAGS_count);
  if (db.empty()) return absl::InvalidArgumentError("--db is required");
  // The name rule of the service's datasets (UploadDatasetRequest.name).
  if (absl::Status valid = apq::server::ValidateResourceName("--dataset", dataset); !valid.ok()) {
    return valid;
  }
  if (count < 0) return absl::InvalidArgumentError("--count must be >= 0");
  if (count == 0 && export_csv.empty()) {
    return absl::InvalidArgumentError("--count 0 measures nothing: give --export_csv");
  }
  if (count > 0 && checkpoint.empty()) {
    return absl::InvalidArgumentError("--checkpoint is required to measure");
  }
  if (absl::GetFlag(FLAGS_threads) <= 0) {
    return absl::InvalidArgumentError("--threads must be > 0");
  }
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  const bool quantized = absl::GetFlag(FLAGS_quantized);
  absl::StatusOr<apq::oface::MbConvSpec> spec =
      apq::oface::FindFashionMnistSpec(absl::GetFlag(FLAGS_space));
  if (!spec.ok())
    return absl::InvalidArgumentError(absl::StrCat("--space: ", spec.status().message()));
  const std::string& space = spec->name;
  absl::StatusOr<apq::oface::DataSplit> split =
      apq::oface::DataSplitFromName(absl::GetFlag(FLAGS_split));
  if (!split.ok() || *split == apq::oface::DataSplit::kTrain) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--split: '", absl::GetFlag(FLAGS_split),
        "' is not validation or test (accuracy is never measured on the images that train)"));
  }
  const std::string split_name = apq::oface::DataSplitName(*split);
  absl::StatusOr<apq::oface::BitSampling> quantized_bits =
      apq::oface::BitSamplingFromName(absl::GetFlag(FLAGS_quantized_bits));
  if (!quantized_bits.ok() || *quantized_bits == apq::oface::BitSampling::kHighest) {
    return absl::InvalidArgumentError(
        absl::StrCat("--quantized_bits: '", absl::GetFlag(FLAGS_quantized_bits),
                     "' is not one of random, uniform, near_uniform, paired"));
  }
  for (const absl::Status& status :
       {CheckFlagRange("calibration_images", absl::GetFlag(FLAGS_calibration_images), 1,
                       apq::oface::kTrainingFileImages - apq::oface::kValidationImages),
        CheckFlagRange("eval_images", absl::GetFlag(FLAGS_eval_images), 0,
                       apq::oface::kValidationImages),
        CheckPositiveFlag("calibration_batch_size", absl::GetFlag(FLAGS_calibration_batch_size)),
        CheckPositiveFlag("eval_batch_size", absl::GetFlag(FLAGS_eval_batch_size))}) {
    if (!status.ok()) return status;
  }
  if (count > 0) RETURN_IF_ERROR(CheckLauncherFlags(checkpoint));
  at::set_num_threads(absl::GetFlag(FLAGS_threads));

  // Then the store: a foreign database or dataset fails before any expensive step.
  absl::StatusOr<std::unique_ptr<apq::server::Store>> store = apq::server::OpenStore({db});
  if (!store.ok()) return store.status();
  absl::StatusOr<apq::server::DatasetRecord> stored = (*store)->datasets().GetDataset(dataset);
  if (stored.ok() && stored->space != space) {
    return absl::FailedPreconditionError(
        absl::StrCat("--dataset ", dataset, " holds space ", stored->space, ", not ", space));
  }
  if (!stored.ok() && !absl::IsNotFound(stored.status())) return stored.status();
  if (count == 0) {
    if (!stored.ok()) return stored.status();
    return ExportCsv((*store)->datasets(), dataset, export_csv);
  }
  // A dataset mixes no splits: refused here rather than at the first record, after the
  // weights and images have loaded and a subnet has been measured.
  if (stored.ok() && stored->records > 0 && stored->split != split_name) {
    return absl::FailedPreconditionError(
        absl::StrCat("--split ", split_name, ": --dataset ", dataset, " holds records measured on ",
                     stored->split.empty() ? std::string("an unrecorded split")
                                           : absl::StrCat("split \"", stored->split, "\""),
                     "; write them to another dataset"));
  }
  const std::string method =
      quantized ? apq::oface::kMeasuredQuantFromSupernet : apq::oface::kMeasuredFp32;
  std::set<std::string> done;
  if (stored.ok()) {
    absl::StatusOr<std::vector<apq::server::MeasurementRow>> existing =
        (*store)->datasets().ListMeasurements(dataset, method);
    if (!existing.ok()) return existing.status();
    for (const apq::server::MeasurementRow& row : *existing) done.insert(row.config_json);
  }

  if (!absl::GetFlag(FLAGS_launcher).empty()) {
    RETURN_IF_ERROR(LaunchWorkers(**store, *spec, dataset, method, split_name, *quantized_bits,
                                  quantized, seed, count, checkpoint, stored.ok(), done));
    if (!export_csv.empty()) return ExportCsv((*store)->datasets(), dataset, export_csv);
    return absl::OkStatus();
  }

  absl::StatusOr<apq::oface::EvaluationImages> images = apq::oface::LoadEvaluationImages(
      absl::GetFlag(FLAGS_data_dir), absl::GetFlag(FLAGS_calibration_images),
      absl::GetFlag(FLAGS_eval_images), seed, *split);
  if (!images.ok()) return images.status();
  const apq::oface::LabeledImages& calibration = images->calibration;
  const apq::oface::LabeledImages& test = images->evaluated;

  absl::StatusOr<std::unique_ptr<apq::oface::Supernet>> supernet =
      apq::oface::Supernet::Create(*spec, seed);
  if (!supernet.ok()) return supernet.status();
  if (absl::Status status = (*supernet)->LoadWeights(checkpoint); !status.ok()) return status;

  // Created only now: weights or images that do not load leave no empty dataset behind.
  if (!stored.ok()) {
    const std::string description = absl::GetFlag(FLAGS_description);
    if (absl::Status status = (*store)->datasets().CreateDataset(
            {dataset, space, description.empty() ? checkpoint : description, apq::NowUnixSeconds(),
             0},
            {});
        !status.ok()) {
      return status;
    }
  }

  apq::oface::MeasureOptions options;
  options.count = count;
  options.quantized = quantized;
  options.quantized_bits = *quantized_bits;
  options.seed = seed;
  options.split = *split;
  options.eval.calibration_batch_size = absl::GetFlag(FLAGS_calibration_batch_size);
  options.eval.eval_batch_size = absl::GetFlag(FLAGS_eval_batch_size);
  options.already_measured = [&](const std::string& config) { return done.count(config) > 0; };
  int index = 0;
  options.on_record = [&](const apq::oface::MeasurementRecord& record) {
    apq::server::MeasurementRow row;
    row.config_json = record.config_json;
    row.accuracy = record.accuracy;
    row.method = record.method;
    row.seconds = record.seconds;
    row.seed = record.seed;
    row.split = record.split;
    row.created_unix_s = apq::NowUnixSeconds();
    if (absl::Status status = (*store)->datasets().AddMeasurements(dataset, {row}); !status.ok()) {
      return status;
    }
    done.insert(record.config_json);
    std::fprintf(stderr, "[%d] %s accuracy=%.4f seconds=%.2f\n", ++index, method.c_str(),
                 record.accuracy, record.seconds);
    return absl::OkStatus();
  };
  std::fprintf(stderr,
               "measure_subnets: %s, %d configs, seed %llu, %d calibration / %d evaluated images, "
               "%zu already in dataset %s of %s\n",
               method.c_str(), options.count, static_cast<unsigned long long>(seed),
               calibration.count, test.count, done.size(), dataset.c_str(), db.c_str());
  absl::StatusOr<apq::oface::MeasureSummary> summary =
      apq::oface::MeasureSubnets(**supernet, calibration, test, options);
  if (!summary.ok()) return summary.status();
  std::fprintf(stderr, "measured %d, skipped %d, %.1f s measuring (%.2f s per subnet)\n",
               summary->measured, summary->skipped, summary->seconds,
               summary->measured > 0 ? summary->seconds / summary->measured : 0.0);
  if (!export_csv.empty()) return ExportCsv((*store)->datasets(), dataset, export_csv);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  apq::KeepTensorMemoryForReuse();
  return apq::RunTool("measure_subnets", argc, argv, Run);
}
