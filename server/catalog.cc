#include "server/catalog.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "hwmodels/apq_bitfusion_table.h"
#include "hwmodels/bitfusion_analytic.h"
#include "hwmodels/conv_latency_table.h"
#include "hwmodels/conv_shape_estimator.h"
#include "hwmodels/ofa_yaml_table.h"
#include "hwmodels/precision_support.h"
#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/measurement_csv.h"
#include "oface/ofa_mbv3_space.h"
#include "predictor/mlp_predictor.h"
#include "server/predictor_artifact.h"
#include "server/sha256.h"

namespace apq::server {
namespace {

constexpr char kNote10[] = "note10";
constexpr char kBitFusion[] = "bitfusion";
constexpr char kLocalCpu[] = "local-cpu";

// The end of an embedded default table version's description.
constexpr char kEmbeddedDefault[] = " (embedded default)";

std::string TableSha256(const std::vector<TableFileRecord>& files) {
  // Lengths are hashed too, so no two different file lists share a digest by concatenation.
  std::string framed;
  for (const TableFileRecord& file : files) {
    absl::StrAppend(&framed, file.name.size(), ":", file.name, ":", file.content.size(), ":",
                    file.content);
  }
  return Sha256Hex(framed);
}

absl::StatusOr<std::vector<TableFileRecord>> ReadTableFolder(const std::string& folder) {
  std::vector<TableFileRecord> files;
  std::error_code error;
  for (const auto& item : std::filesystem::directory_iterator(folder, error)) {
    if (!item.is_regular_file()) continue;
    ASSIGN_OR_RETURN(std::string content, ReadFileToString(item.path().string()));
    files.push_back({item.path().filename().string(), std::move(content)});
  }
  if (error) {
    return absl::NotFoundError(absl::StrCat("cannot list ", folder, ": ", error.message()));
  }
  std::sort(files.begin(), files.end(),
            [](const TableFileRecord& a, const TableFileRecord& b) { return a.name < b.name; });
  return files;
}

}  // namespace

// The predictor at <stem>.f32 + <stem>.manifest.json (an MLP) or at <stem>.artifact (any
// stored kind, server/predictor_artifact.h) becomes the entry's shipped one when the files
// exist (apq_mbv2 has none: APQ never published its weights). FAILED_PRECONDITION when both
// exist, when the file does not load, or when it does not take the space's encoding.
absl::Status Catalog::LoadShippedPredictor(const std::string& stem,
                                           const predictor::MlpPredictor::Options& options,
                                           SpaceEntry* entry) {
  const std::string weights = stem + ".f32";
  const std::string artifact_path = stem + ".artifact";
  const bool has_mlp = std::filesystem::exists(weights);
  const bool has_artifact = std::filesystem::exists(artifact_path);
  if (has_mlp && has_artifact) {
    return absl::FailedPreconditionError(
        absl::StrCat("two shipped predictors: ", weights, " and ", artifact_path, "; keep one"));
  }
  std::unique_ptr<predictor::AccuracyPredictor> trained;
  std::string path;
  if (has_mlp) {
    path = weights;
    ASSIGN_OR_RETURN(
        std::unique_ptr<predictor::MlpPredictor> mlp,
        predictor::MlpPredictor::LoadRawFloat32(weights, stem + ".manifest.json", options));
    entry->predictor_version = mlp->version();
    trained = std::move(mlp);
  } else if (has_artifact) {
    path = artifact_path;
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(artifact_path));
    absl::StatusOr<ShippedArtifact> shipped = DecodeShippedArtifact(bytes, artifact_path);
    absl::StatusOr<LoadedPredictor> loaded =
        shipped.ok() ? LoadPredictorArtifact(shipped->kind, shipped->artifact, shipped->version,
                                             artifact_path, options.num_threads)
                     : absl::StatusOr<LoadedPredictor>(shipped.status());
    if (!loaded.ok()) return absl::FailedPreconditionError(loaded.status().message());
    trained = std::move(loaded->predictor);
    entry->predictor_version = shipped->version;
  } else {
    return absl::OkStatus();
  }
  if (trained->input_size() != entry->space->feature_size()) {
    entry->predictor_version.clear();
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": the predictor takes ", trained->input_size(),
                     " inputs, the space encodes ", entry->space->feature_size()));
  }
  entry->predictor = std::move(trained);
  return absl::OkStatus();
}

std::string ShippedDatasetName(absl::string_view space) {
  return absl::StrCat(space, "-supernet-v1");
}

absl::Status Catalog::ImportShippedMeasurements(const std::string& space, const std::string& path) {
  const std::string dataset = ShippedDatasetName(space);
  if (!std::filesystem::exists(path)) return absl::OkStatus();
  absl::StatusOr<DatasetRecord> stored = store_.datasets().GetDataset(dataset);
  if (stored.ok()) return absl::OkStatus();
  if (!absl::IsNotFound(stored.status())) return stored.status();
  absl::StatusOr<std::vector<oface::MeasurementRecord>> records = oface::ReadMeasurementCsv(path);
  if (!records.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("shipped measurements: ", records.status().message()));
  }
  ASSIGN_OR_RETURN(const oface::SearchSpace* search_space, FindSpace(space));
  std::vector<MeasurementRow> rows;
  rows.reserve(records->size());
  for (size_t i = 0; i < records->size(); ++i) {
    const oface::MeasurementRecord& record = (*records)[i];
    // Line 1 is the header.
    const absl::StatusOr<oface::Genotype> genotype = search_space->FromJson(record.config_json);
    if (!genotype.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " line ", i + 2, ": ", genotype.status().message()));
    }
    rows.push_back({0, record.config_json, record.accuracy, record.method, record.seconds,
                    record.seed, record.split, 0.0});
  }
  const double now = NowUnixSeconds();
  for (MeasurementRow& row : rows) row.created_unix_s = now;
  const absl::Status added = store_.datasets().CreateDataset(
      // The description names the file within the embedded data, never the server's path.
      {dataset, space,
       absl::StrCat("measurements of the shipped supernet (embedded data: ", space,
                    "/measurements.csv)"),
       now, 0},
      rows);
  // ALREADY_EXISTS: another replica of a shared store imported it meanwhile.
  if (!added.ok() && !absl::IsAlreadyExists(added)) {
    return absl::FailedPreconditionError(
        absl::StrCat("shipped measurements ", path, ": ", added.message()));
  }
  return absl::OkStatus();
}

absl::Status ValidateResourceName(absl::string_view field, absl::string_view name) {
  const auto allowed_first = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  };
  bool ok = !name.empty() && name.size() <= 64 && allowed_first(name[0]);
  for (char c : name) {
    ok = ok && (allowed_first(c) || c == '_' || c == '.' || c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", name, "' is not a valid name ([a-z0-9][a-z0-9_.-]{0,63})"));
  }
  return absl::OkStatus();
}

absl::Status ValidateUserText(absl::string_view field, absl::string_view text, size_t max_bytes,
                              bool multiline) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": longer than ", max_bytes, " bytes (", text.size(), ")"));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool allowed_space = multiline && (c == '\n' || c == '\t');
    if ((c < 0x20 && !allowed_space) || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": control character 0x", absl::Hex(c, absl::kZeroPad2), " at byte ", i));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateFileName(absl::string_view field, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  RETURN_IF_ERROR(ValidateUserText(field, name, 255, /*multiline=*/false));
  if (name == "." || name == ".." || name.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", name, "' is not a file's base name (no '/', '.' or '..')"));
  }
  return absl::OkStatus();
}

absl::Status ValidateDeviceName(absl::string_view name) {
  return ValidateResourceName("device", name);
}

absl::StatusOr<hwmodels::CostTable> ParseTableFiles(int format,
                                                    const std::vector<TableFileRecord>& files,
                                                    const std::function<bool()>& cancelled) {
  if (files.empty()) return absl::InvalidArgumentError("files: no table file given");
  switch (format) {
    case kTableFormatOfaYaml: {
      std::vector<std::pair<std::string, std::string>> named;
      named.reserve(files.size());
      for (const TableFileRecord& file : files) named.emplace_back(file.name, file.content);
      return hwmodels::LoadOfaYamlTables(named);
    }
    case kTableFormatApqBitFusion:
      if (files.size() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("files: an APQ BitFusion table is one JSON file, got ", files.size()));
      }
      return hwmodels::LoadApqBitFusionTable(files.front().content, files.front().name, cancelled);
    case kTableFormatConvJson:
      if (files.size() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("files: a conv table is one JSON file, got ", files.size()));
      }
      return hwmodels::LoadConvTable(files.front().content, files.front().name, cancelled);
    default:
      return absl::InvalidArgumentError(absl::StrCat("format: unknown table format ", format));
  }
}

absl::StatusOr<std::unique_ptr<Catalog>> Catalog::Create(const Options& options, Store& store) {
  std::unique_ptr<Catalog> catalog(new Catalog(store));
  catalog->predictor_threads_ = options.predictor_threads;

  SpaceEntry ofa;
  ofa.space = oface::NewOfaMbv3Space();
  ofa.table_formats = {kTableFormatOfaYaml};
  predictor::MlpPredictor::Options predictor_options;
  predictor_options.num_threads = options.predictor_threads;
  ASSIGN_OR_RETURN(
      auto mlp, predictor::MlpPredictor::LoadRawFloat32(
                    options.data_dir + "/ofa_mbv3/acc_predictor.f32",
                    options.data_dir + "/ofa_mbv3/acc_predictor.manifest.json", predictor_options));
  if (mlp->input_size() != ofa.space->feature_size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the ofa_mbv3 predictor takes ", mlp->input_size(),
                     " inputs, the space encodes ", ofa.space->feature_size()));
  }
  ofa.predictor_version = mlp->version();
  ofa.predictor = std::move(mlp);
  catalog->spaces_.push_back(std::move(ofa));

  SpaceEntry apq;
  apq.space = oface::NewApqMbv2Space();
  apq.table_formats = {kTableFormatApqBitFusion, kTableFormatConvJson};
  apq.missing_predictor = absl::StrCat(
      "space apq_mbv2 has no accuracy predictor: its quantization-aware predictor (",
      apq.space->feature_size(), " one-hot inputs = ", apq.space->arch_feature_size(),
      " architecture + ", apq.space->feature_size() - apq.space->arch_feature_size(),
      " bit features, 3 hidden layers of 400) needs weights trained from measured "
      "(config, accuracy) data; APQ never published its own. Costs (Evaluate) work without it");
  RETURN_IF_ERROR(
      LoadShippedPredictor(options.data_dir + "/apq_mbv2/qa_predictor", predictor_options, &apq));
  catalog->spaces_.push_back(std::move(apq));

  // The spaces of the Fashion-MNIST supernet (fmnist_mbv2, fmnist_lowbit), each with the
  // predictor and measurements that data/<space>/ ships, if any.
  for (const oface::MbConvSpec& spec : oface::FashionMnistSpecs()) {
    SpaceEntry fmnist;
    ASSIGN_OR_RETURN(fmnist.space, oface::NewMbConvQuantSpace(spec));
    fmnist.table_formats = {kTableFormatApqBitFusion, kTableFormatConvJson};
    const std::string folder = absl::StrCat(options.data_dir, "/", spec.name);
    const std::string measurements = folder + "/measurements.csv";
    fmnist.missing_predictor =
        std::filesystem::exists(measurements)
            ? absl::StrCat("space ", spec.name,
                           " has no accuracy predictor: train one from its measurements (dataset ",
                           ShippedDatasetName(spec.name),
                           "). Costs and measured accuracies (Evaluate with measure) work "
                           "without it")
            : absl::StrCat("space ", spec.name,
                           " has no accuracy predictor: none ships yet; train one (TrainPredictor) "
                           "from measurements of its supernet's subnets (measure_subnets --space ",
                           spec.name, "). Costs (Evaluate) work without it");
    // Trained from its measurements by server/train_predictor_main.cc (fmnist_mbv2: the
    // transferred MLP; fmnist_lowbit: the ensemble, see data/training/fmnist_lowbit/).
    RETURN_IF_ERROR(LoadShippedPredictor(folder + "/qa_predictor", predictor_options, &fmnist));
    catalog->spaces_.push_back(std::move(fmnist));
    RETURN_IF_ERROR(catalog->ImportShippedMeasurements(spec.name, measurements));
  }

  // Default devices: stored once, so that later uploads become versions 2, 3, ... A device
  // whose latest version is an embedded default, and which holds no version of the table this
  // build embeds (local-cpu's re-profiled one), gets it as its next version: once, and not
  // back and forth between two builds sharing a store. A device whose latest version a user
  // uploaded keeps it (users cannot end a description as the embedded ones end). A device that
  // exists keeps its versions when this build's file cannot be read. Two servers starting at
  // the same instant on one store may both add the new version.
  ASSIGN_OR_RETURN(std::vector<std::string> devices, store.devices().ListDevices());
  const auto embed =
      [&](const std::string& device, int format,
          const std::function<absl::StatusOr<std::vector<TableFileRecord>>()>& read_files,
          const std::string& description) -> absl::Status {
    const bool exists = std::find(devices.begin(), devices.end(), device) != devices.end();
    absl::StatusOr<std::vector<TableFileRecord>> files = read_files();
    if (!files.ok()) return exists ? absl::OkStatus() : files.status();
    if (exists) {
      ASSIGN_OR_RETURN(std::vector<TableVersionRecord> versions,
                       store.devices().ListTableVersions(device));
      if (versions.empty() || !absl::EndsWith(versions.back().description, kEmbeddedDefault)) {
        return absl::OkStatus();
      }
      const std::string sha256 = TableSha256(*files);
      for (const TableVersionRecord& version : versions) {
        if (version.format == format && version.sha256 == sha256) return absl::OkStatus();
      }
    }
    return catalog
        ->AddTableVersion(device, format, *files, absl::StrCat(description, kEmbeddedDefault),
                          nullptr)
        .status();
  };
  // One file of the data folder as a table's only file.
  const auto one_file = [&](const std::string& path, const std::string& name) {
    return [&options, path, name]() -> absl::StatusOr<std::vector<TableFileRecord>> {
      ASSIGN_OR_RETURN(std::string content, ReadFileToString(options.data_dir + path));
      return std::vector<TableFileRecord>{{name, std::move(content)}};
    };
  };
  RETURN_IF_ERROR(embed(
      kNote10, kTableFormatOfaYaml,
      [&options] { return ReadTableFolder(options.data_dir + "/ofa_mbv3/note10_lut"); },
      "Samsung Note10, measured by once-for-all"));
  RETURN_IF_ERROR(embed(
      kLocalCpu, kTableFormatConvJson,
      one_file("/local_cpu/fmnist_mbv2_int8_float_table.json", "fmnist_mbv2_int8_float_table.json"),
      "This machine's CPU (LibTorch, 1 thread, batch 1), measured by "
      "profile_device for fmnist_int8float and calibrated on whole networks: "
      "W8A8 layers in int8 on QNNPACK, float layers in float, and the changes "
      "of precision between them"));
  RETURN_IF_ERROR(embed(kBitFusion, kTableFormatApqBitFusion,
                        one_file("/apq_bitfusion/BitFusion_new.b1.dict", "BitFusion_new.b1.dict"),
                        "BitFusion accelerator, simulated by APQ"));
  return catalog;
}

const Catalog::SpaceEntry* Catalog::FindEntry(absl::string_view name) const {
  for (const SpaceEntry& entry : spaces_) {
    if (entry.space->name() == name) return &entry;
  }
  return nullptr;
}

std::vector<std::string> Catalog::SpaceNames() const {
  std::vector<std::string> names;
  for (const SpaceEntry& entry : spaces_) names.push_back(entry.space->name());
  return names;
}

absl::StatusOr<const oface::SearchSpace*> Catalog::FindSpace(absl::string_view name) const {
  const SpaceEntry* entry = FindEntry(name);
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat("space: unknown space '", name,
                                            "'; known: ", absl::StrJoin(SpaceNames(), ", ")));
  }
  return entry->space.get();
}

absl::StatusOr<std::shared_ptr<const predictor::AccuracyPredictor>> Catalog::StoredPrototype(
    const SpaceEntry& entry, const std::string& version) {
  const auto key = std::make_pair(entry.space->name(), version);
  {
    absl::MutexLock lock(&mutex_);
    auto found = stored_predictors_.find(key);
    if (found != stored_predictors_.end()) return found->second;
  }
  // Read and loaded outside the lock; a race only loads twice.
  ASSIGN_OR_RETURN(const PredictorRecord stored,
                   store_.predictors().GetPredictor(entry.space->name(), version));
  ASSIGN_OR_RETURN(
      LoadedPredictor loaded,
      LoadPredictorArtifact(stored.kind, stored.artifact, stored.space,
                            absl::StrCat("stored predictor ", stored.version, " of ", stored.space),
                            predictor_threads_));
  if (loaded.input_size != entry.space->feature_size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "predictor ", stored.version, " of ", stored.space, " takes ", loaded.input_size,
        " inputs, the space encodes ", entry.space->feature_size()));
  }
  std::shared_ptr<const predictor::AccuracyPredictor> prototype = std::move(loaded.predictor);
  absl::MutexLock lock(&mutex_);
  stored_predictors_.emplace(key, prototype);
  return prototype;
}

absl::StatusOr<Catalog::PredictorInstance> Catalog::NewPredictor(absl::string_view space) {
  const SpaceEntry* entry = FindEntry(space);
  if (entry == nullptr) return FindSpace(space).status();
  // A default predictor in the store (trained or uploaded) wins over the shipped one. Only
  // its version is read per call: the artifact is read when that version is not loaded yet.
  const std::string space_name = static_cast<std::string>(space);
  absl::StatusOr<std::string> version = store_.predictors().GetDefaultPredictorVersion(space_name);
  if (version.ok()) {
    ASSIGN_OR_RETURN(std::shared_ptr<const predictor::AccuracyPredictor> prototype,
                     StoredPrototype(*entry, *version));
    return PredictorInstance{prototype->Clone(), *version};
  }
  if (!absl::IsNotFound(version.status())) return version.status();
  if (entry->predictor == nullptr) {
    return absl::FailedPreconditionError(
        entry->missing_predictor.empty()
            ? absl::StrCat("space ", space, " has no accuracy predictor")
            : entry->missing_predictor);
  }
  return PredictorInstance{entry->predictor->Clone(), entry->predictor_version};
}

absl::StatusOr<Catalog::PredictorInstance> Catalog::NewPredictor(absl::string_view space,
                                                                 const std::string& version) {
  const SpaceEntry* entry = FindEntry(space);
  if (entry == nullptr) return FindSpace(space).status();
  if (entry->predictor != nullptr && version == entry->predictor_version) {
    return PredictorInstance{entry->predictor->Clone(), entry->predictor_version};
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const predictor::AccuracyPredictor> prototype,
                   StoredPrototype(*entry, version));
  return PredictorInstance{prototype->Clone(), version};
}

absl::StatusOr<Catalog::ShippedPredictorInfo> Catalog::ShippedPredictor(
    absl::string_view space) const {
  const SpaceEntry* entry = FindEntry(space);
  if (entry == nullptr) return FindSpace(space).status();
  if (entry->predictor == nullptr) {
    return absl::NotFoundError(absl::StrCat("space ", space, " ships no accuracy predictor"));
  }
  return ShippedPredictorInfo{entry->predictor_version, entry->predictor->input_size()};
}

absl::Status Catalog::SetDefaultPredictor(absl::string_view space, const std::string& version) {
  const SpaceEntry* entry = FindEntry(space);
  if (entry == nullptr) return FindSpace(space).status();
  const std::string space_name = static_cast<std::string>(space);
  if (entry->predictor != nullptr && version == entry->predictor_version) {
    return store_.predictors().ClearDefaultPredictor(space_name);
  }
  RETURN_IF_ERROR(StoredPrototype(*entry, version).status());
  return store_.predictors().SetDefaultPredictor(space_name, version);
}

absl::StatusOr<std::shared_ptr<const hwmodels::CostTable>> Catalog::LoadTable(
    const std::string& device, int64_t version, int* format) {
  {
    absl::MutexLock lock(&mutex_);
    if (auto found = tables_.Get({device, version}); found.has_value()) {
      *format = found->first;
      return found->second;
    }
  }
  // Parsing happens outside the lock: tables are immutable, so a race only parses twice.
  ASSIGN_OR_RETURN(TableVersionRecord record, store_.devices().GetTableVersion(device, version));
  auto parsed = ParseTableFiles(record.format, record.files);
  if (!parsed.ok()) {
    return absl::DataLossError(absl::StrCat("stored table ", device, " v", version,
                                            " no longer parses: ", parsed.status().message()));
  }
  auto table = std::make_shared<const hwmodels::CostTable>(*std::move(parsed));
  absl::MutexLock lock(&mutex_);
  tables_.Put({device, version}, {record.format, table});
  *format = record.format;
  return table;
}

std::shared_ptr<const hwmodels::TermEstimator> Catalog::Estimator(
    const std::string& device, int64_t version, int format, const hwmodels::CostTable& table) {
  if (format != kTableFormatApqBitFusion && format != kTableFormatConvJson) return nullptr;
  {
    absl::MutexLock lock(&mutex_);
    if (auto found = estimators_.Get({device, version}); found.has_value()) return *found;
  }
  // Built outside the lock (a BitFusion fit takes tens of milliseconds); a race only builds
  // twice. A BitFusion table too small to fit, or a conv table whose figures depend on the
  // bits, has no estimator: its spaces are priced from the table alone.
  std::shared_ptr<const hwmodels::TermEstimator> estimator;
  if (format == kTableFormatApqBitFusion) {
    absl::StatusOr<std::unique_ptr<hwmodels::BitFusionAnalyticModel>> fitted =
        hwmodels::BitFusionAnalyticModel::Fit(table);
    if (fitted.ok()) estimator = std::move(*fitted);
  } else {
    absl::StatusOr<std::unique_ptr<hwmodels::ConvShapeEstimator>> by_shape =
        hwmodels::ConvShapeEstimator::Create(table);
    if (by_shape.ok()) estimator = std::move(*by_shape);
  }
  absl::MutexLock lock(&mutex_);
  estimators_.Put({device, version}, estimator);
  return estimator;
}

absl::StatusOr<Catalog::CostModelHandle> Catalog::CostModel(absl::string_view space,
                                                            const std::string& device,
                                                            int64_t version) {
  const SpaceEntry* entry = FindEntry(space);
  if (entry == nullptr) return FindSpace(space).status();
  RETURN_IF_ERROR(ValidateDeviceName(device));
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("table_version: must be 0 (latest) or a version, got ", version));
  }
  ASSIGN_OR_RETURN(version, ResolveVersion(device, version));
  const auto key = std::make_tuple(static_cast<std::string>(space), device, version);
  {
    absl::MutexLock lock(&mutex_);
    if (auto found = cost_models_.Get(key); found.has_value()) return *found;
  }
  int format = 0;
  ASSIGN_OR_RETURN(std::shared_ptr<const hwmodels::CostTable> table,
                   LoadTable(device, version, &format));
  if (std::find(entry->table_formats.begin(), entry->table_formats.end(), format) ==
      entry->table_formats.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device ", device, " table v", version, " (format ", format, ") cannot price space ", space,
        ", which needs format ", absl::StrJoin(entry->table_formats, " or ")));
  }
  std::shared_ptr<const hwmodels::TermEstimator> estimator =
      Estimator(device, version, format, *table);
  const hwmodels::PrecisionSupport precisions =
      EffectivePrecisions(format, *table, estimator.get());
  const std::string device_label = absl::StrCat(device, " (table v", version, ")");
  absl::StatusOr<std::unique_ptr<hwmodels::LutCostModel>> created =
      hwmodels::LutCostModel::Create(*entry->space, *table, estimator.get(), &precisions);
  if (!created.ok()) {
    return absl::Status(created.status().code(),
                        absl::StrCat(device_label, ": ", created.status().message()));
  }
  std::unique_ptr<hwmodels::LutCostModel> model = *std::move(created);
  ASSIGN_OR_RETURN(std::unique_ptr<oface::SearchSpace> view,
                   hwmodels::NewExecutableSpace(*entry->space, precisions, device));
  CostModelHandle handle{std::shared_ptr<const hwmodels::LutCostModel>(std::move(model)),
                         version,
                         estimator,
                         precisions,
                         std::shared_ptr<const oface::SearchSpace>(std::move(view)),
                         device_label};
  absl::MutexLock lock(&mutex_);
  cost_models_.Put(key, handle);
  return handle;
}

absl::StatusOr<TableVersionRecord> Catalog::UploadTable(const std::string& device, int format,
                                                        const std::vector<TableFileRecord>& files,
                                                        const std::string& description,
                                                        const std::function<bool()>& cancelled) {
  if (absl::EndsWith(description, kEmbeddedDefault)) {
    return absl::InvalidArgumentError(
        absl::StrCat("description: may not end in \"", kEmbeddedDefault,
                     "\", which marks the tables the service embeds"));
  }
  return AddTableVersion(device, format, files, description, cancelled);
}

absl::StatusOr<TableVersionRecord> Catalog::AddTableVersion(
    const std::string& device, int format, const std::vector<TableFileRecord>& files,
    const std::string& description, const std::function<bool()>& cancelled) {
  RETURN_IF_ERROR(ValidateDeviceName(device));
  RETURN_IF_ERROR(ValidateUserText("description", description, 4096, /*multiline=*/true));
  for (size_t i = 0; i < files.size(); ++i) {
    RETURN_IF_ERROR(ValidateFileName(absl::StrCat("files[", i, "].name"), files[i].name));
  }
  ASSIGN_OR_RETURN(hwmodels::CostTable table, ParseTableFiles(format, files, cancelled));
  TableVersionRecord record;
  record.device = device;
  record.format = format;
  record.entries = static_cast<int64_t>(table.entries.size());
  record.uploaded_unix_s = NowUnixSeconds();
  record.sha256 = TableSha256(files);
  record.description = description;
  record.files = files;
  ASSIGN_OR_RETURN(record.version, store_.devices().AddTableVersion(record));
  {
    absl::MutexLock lock(&mutex_);
    tables_.Put({device, record.version},
                {format, std::make_shared<const hwmodels::CostTable>(std::move(table))});
  }
  record.files.clear();
  return record;
}

absl::StatusOr<hwmodels::TableTemplate> Catalog::TableTemplate(absl::string_view space,
                                                               int format) const {
  const SpaceEntry* entry = FindEntry(space);
  if (entry == nullptr) return FindSpace(space).status();
  if (std::find(entry->table_formats.begin(), entry->table_formats.end(), format) ==
      entry->table_formats.end()) {
    return absl::InvalidArgumentError(absl::StrCat("format: space ", space, " is priced by format ",
                                                   absl::StrJoin(entry->table_formats, " or "),
                                                   ", not ", format));
  }
  const hwmodels::TableFormat table_format =
      format == kTableFormatOfaYaml        ? hwmodels::TableFormat::kOfaYaml
      : format == kTableFormatApqBitFusion ? hwmodels::TableFormat::kApqBitFusion
                                           : hwmodels::TableFormat::kConvJson;
  return hwmodels::MakeTableTemplate(*entry->space, table_format);
}

absl::StatusOr<int64_t> Catalog::ResolveVersion(const std::string& device, int64_t version) {
  if (version != 0) return version;
  ASSIGN_OR_RETURN(std::vector<TableVersionRecord> versions,
                   store_.devices().ListTableVersions(device));
  if (versions.empty()) {
    return absl::NotFoundError(absl::StrCat("device: '", device, "' has no cost table"));
  }
  return versions.back().version;
}

hwmodels::PrecisionSupport Catalog::EffectivePrecisions(int format,
                                                        const hwmodels::CostTable& table,
                                                        const hwmodels::TermEstimator* estimator) {
  if (format == kTableFormatApqBitFusion) {
    return hwmodels::BitFusionPrecisions(/*with_fitted_model=*/estimator != nullptr);
  }
  return table.precisions;
}

absl::StatusOr<hwmodels::PrecisionSupport> Catalog::Precisions(const std::string& device,
                                                               int64_t version) {
  RETURN_IF_ERROR(ValidateDeviceName(device));
  ASSIGN_OR_RETURN(version, ResolveVersion(device, version));
  int format = 0;
  ASSIGN_OR_RETURN(std::shared_ptr<const hwmodels::CostTable> table,
                   LoadTable(device, version, &format));
  std::shared_ptr<const hwmodels::TermEstimator> estimator =
      Estimator(device, version, format, *table);
  return EffectivePrecisions(format, *table, estimator.get());
}

absl::StatusOr<Catalog::Coverage> Catalog::SpaceCoverage(const std::string& device,
                                                         int64_t version) {
  Coverage coverage;
  for (const SpaceEntry& entry : spaces_) {
    auto model = CostModel(entry.space->name(), device, version);
    if (model.ok()) {
      (model->model->modelled_terms() == 0 ? coverage.covered : coverage.modelled)
          .push_back(entry.space->name());
    } else if (model.status().code() != absl::StatusCode::kFailedPrecondition) {
      return model.status();
    }
  }
  return coverage;
}

}  // namespace apq::server
