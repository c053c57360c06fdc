// What the server can search: the registered spaces with their accuracy predictors, and the
// devices with their cost tables (stored, versioned) turned into cost models on demand.
//
// Thread safety: all methods may be called concurrently.
#ifndef APQ_SERVER_CATALOG_H_
#define APQ_SERVER_CATALOG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/lru_cache.h"
#include "hwmodels/cost_table.h"
#include "hwmodels/lut_cost_model.h"
#include "hwmodels/table_template.h"
#include "oface/search_space.h"
#include "predictor/accuracy_predictor.h"
#include "predictor/mlp_predictor.h"
#include "server/store/store.h"

namespace apq::server {

// The table formats, numbered as apq.v1.TableFormat.
inline constexpr int kTableFormatOfaYaml = 1;
inline constexpr int kTableFormatApqBitFusion = 2;
inline constexpr int kTableFormatConvJson = 3;

// The dataset the shipped measurements of a space's supernet are imported into.
std::string ShippedDatasetName(absl::string_view space);

// INVALID_ARGUMENT naming `field` unless `name` matches [a-z0-9][a-z0-9_.-]{0,63}.
absl::Status ValidateResourceName(absl::string_view field, absl::string_view name);
// INVALID_ARGUMENT naming `field` when `text` is longer than `max_bytes` or holds a control
// character (below 0x20, or 0x7f; newlines and tabs pass when `multiline`): user text the
// server stores and shows again.
absl::Status ValidateUserText(absl::string_view field, absl::string_view text, size_t max_bytes,
                              bool multiline);
// ValidateUserText, and not ".", "..", nor holding '/': a file's base name.
absl::Status ValidateFileName(absl::string_view field, absl::string_view name);

// ValidateResourceName("device", name).
absl::Status ValidateDeviceName(absl::string_view name);

// Parses uploaded or stored table files of the given format. INVALID_ARGUMENT names the
// file and line or key. CANCELLED when `cancelled` (optional) says so during a JSON table.
absl::StatusOr<hwmodels::CostTable> ParseTableFiles(
    int format, const std::vector<TableFileRecord>& files,
    const std::function<bool()>& cancelled = nullptr);

class Catalog {
 public:
  // Table versions whose parsed table and estimator stay loaded (cost models: four per version).
  static constexpr size_t kCachedTableVersions = 32;
  // Table versions and cost models loaded now (for tests of the bound).
  std::pair<size_t, size_t> CachedTablesAndCostModels() {
    absl::MutexLock lock(&mutex_);
    return {tables_.size(), cost_models_.size()};
  }

  struct Options {
    // Folder of the embedded defaults (predictor weights, default device tables, supernet
    // measurements).
    std::string data_dir = "data";
    // LibTorch intra-op threads for the predictors.
    int predictor_threads = 1;
  };

  // Loads the spaces and their default predictors, stores each default device table that the
  // store does not have yet (so a new database starts with `note10`), and imports the shipped
  // supernet measurements into their dataset (ShippedDatasetName) when the store lacks it.
  // FAILED_PRECONDITION naming the file and line for a shipped record that does not validate.
  static absl::StatusOr<std::unique_ptr<Catalog>> Create(const Options& options, Store& store);

  // NOT_FOUND naming the known spaces.
  absl::StatusOr<const oface::SearchSpace*> FindSpace(absl::string_view name) const;
  std::vector<std::string> SpaceNames() const;

  struct PredictorInstance {
    std::unique_ptr<predictor::AccuracyPredictor> predictor;  // Own buffers, shared weights.
    std::string version;
  };
  // The space's default predictor in the store (loaded once per version), else the shipped
  // one. FAILED_PRECONDITION naming what is missing when the space has neither, or when the
  // stored default does not take the space's encoding; DATA_LOSS when it does not load.
  absl::StatusOr<PredictorInstance> NewPredictor(absl::string_view space);
  // Exactly the predictor `version` of the space, default or not (a job pinned at submission
  // loads the predictor it was submitted with, whatever the default has become since): the
  // shipped one when `version` is its version, else the stored one. NOT_FOUND when no such
  // version of the space exists; errors as above otherwise.
  absl::StatusOr<PredictorInstance> NewPredictor(absl::string_view space,
                                                 const std::string& version);

  struct ShippedPredictorInfo {
    std::string version;
    int input_size = 0;
  };
  // The predictor embedded for the space (used when the store has no default for it).
  // NOT_FOUND for an unknown space or one that ships none.
  absl::StatusOr<ShippedPredictorInfo> ShippedPredictor(absl::string_view space) const;
  // Makes a stored predictor the space's default after checking that it loads and takes the
  // space's encoding (FAILED_PRECONDITION naming its input size); the shipped version makes
  // the space go back to its shipped predictor. NOT_FOUND for an unknown space or version.
  absl::Status SetDefaultPredictor(absl::string_view space, const std::string& version);

  struct CostModelHandle {
    std::shared_ptr<const hwmodels::LutCostModel> model;
    int64_t table_version = 0;
    // Prices the keys the table lacks (the model's `modelled_terms`): for BitFusion tables,
    // the analytic model fitted to the table; for conv tables whose figures do not depend on
    // the bits (local-cpu), the figure of the same conv shape (hwmodels/conv_shape_estimator.h).
    // Null when there is none.
    std::shared_ptr<const hwmodels::TermEstimator> estimator;
    // What the device executes (Precisions), and the view of the space holding only that
    // (hwmodels::NewExecutableSpace, over the catalog's space): what searches on the device
    // explore. Null when the device runs every pair the space offers.
    hwmodels::PrecisionSupport precisions;
    std::shared_ptr<const oface::SearchSpace> executable_view;
    // "<device> (table v<version>)", for messages.
    std::string device_label;
  };
  // The cost model of `space` on `device`'s table `version` (0 = latest). NOT_FOUND for an
  // unknown device or version, FAILED_PRECONDITION when the table cannot price the space
  // (wrong format, or missing keys that no estimator prices, listed). Built once per
  // (space, device, version).
  absl::StatusOr<CostModelHandle> CostModel(absl::string_view space, const std::string& device,
                                            int64_t version);

  // Validates and stores a new version of a device's table. Nothing is stored on error,
  // nor when `cancelled` (optional: the caller gave up) says so while parsing (CANCELLED).
  // A description ending in " (embedded default)" is INVALID_ARGUMENT: that ending marks the
  // tables this build embeds, which a later build may replace by a newer version.
  absl::StatusOr<TableVersionRecord> UploadTable(const std::string& device, int format,
                                                 const std::vector<TableFileRecord>& files,
                                                 const std::string& description,
                                                 const std::function<bool()>& cancelled = nullptr);

  // What `device`'s table `version` (0 = latest) executes: the table's declaration, with
  // every other 2-8 bit pair as modelled for a BitFusion table whose analytic model fits.
  // NOT_FOUND for an unknown device or version.
  absl::StatusOr<hwmodels::PrecisionSupport> Precisions(const std::string& device, int64_t version);

  struct Coverage {
    std::vector<std::string> covered;   // Every layer shape is in the table.
    std::vector<std::string> modelled;  // Priceable, some shapes by the fitted estimator.
  };
  // Which spaces the device's table version can price.
  absl::StatusOr<Coverage> SpaceCoverage(const std::string& device, int64_t version);

  // The cost-table template of `space` in `format` (hwmodels/table_template.h). NOT_FOUND for
  // an unknown space; INVALID_ARGUMENT naming format when the space is not priced by it.
  absl::StatusOr<hwmodels::TableTemplate> TableTemplate(absl::string_view space, int format) const;

  Store& store() { return store_; }

 private:
  // UploadTable without the check of the description's ending (the embedded defaults).
  absl::StatusOr<TableVersionRecord> AddTableVersion(const std::string& device, int format,
                                                     const std::vector<TableFileRecord>& files,
                                                     const std::string& description,
                                                     const std::function<bool()>& cancelled);
  struct SpaceEntry {
    std::unique_ptr<oface::SearchSpace> space;
    std::vector<int> table_formats;  // Formats whose keys the space's cost terms use.
    std::unique_ptr<predictor::AccuracyPredictor> predictor;  // Prototype for clones.
    std::string predictor_version;
    // Why there is no predictor (the FAILED_PRECONDITION message), when there is none.
    std::string missing_predictor;
  };

  explicit Catalog(Store& store) : store_(store) {}
  static absl::Status LoadShippedPredictor(const std::string& stem,
                                           const predictor::MlpPredictor::Options& options,
                                           SpaceEntry* entry);
  // Creates the space's shipped dataset from the CSV at `path` when the file exists and the
  // store lacks the dataset (dataset and rows in one transaction).
  absl::Status ImportShippedMeasurements(const std::string& space, const std::string& path);
  const SpaceEntry* FindEntry(absl::string_view name) const;
  // The loaded form of a stored predictor of the entry's space, cached per version: its
  // artifact is read from the store only on a cache miss. NOT_FOUND for an unknown version;
  // FAILED_PRECONDITION when it does not take the space's encoding; DATA_LOSS when it does
  // not load.
  absl::StatusOr<std::shared_ptr<const predictor::AccuracyPredictor>> StoredPrototype(
      const SpaceEntry& entry, const std::string& version);
  // The estimator for keys a table of `format` lacks, built once per table version; null
  // when the format has none or the table does not allow one.
  std::shared_ptr<const hwmodels::TermEstimator> Estimator(const std::string& device,
                                                           int64_t version, int format,
                                                           const hwmodels::CostTable& table);
  // The table's declaration completed by what its estimator prices (see Precisions).
  static hwmodels::PrecisionSupport EffectivePrecisions(int format,
                                                        const hwmodels::CostTable& table,
                                                        const hwmodels::TermEstimator* estimator);
  // The latest version when `version` is 0; NOT_FOUND for a device without tables.
  absl::StatusOr<int64_t> ResolveVersion(const std::string& device, int64_t version);
  // Parsed table of a stored version, cached.
  absl::StatusOr<std::shared_ptr<const hwmodels::CostTable>> LoadTable(const std::string& device,
                                                                       int64_t version,
                                                                       int* format);

  Store& store_;
  std::vector<SpaceEntry> spaces_;

  absl::Mutex mutex_;
  // Loaded forms of stored table versions, bounded (a hardware token may upload any number
  // of versions); what a job holds stays alive with its handle after eviction, and an evicted
  // version is loaded again from the store when asked.
  LruCache<std::pair<std::string, int64_t>,
           std::pair<int, std::shared_ptr<const hwmodels::CostTable>>>
      tables_ ABSL_GUARDED_BY(mutex_){kCachedTableVersions};
  LruCache<std::tuple<std::string, std::string, int64_t>, CostModelHandle> cost_models_
      ABSL_GUARDED_BY(mutex_){kCachedTableVersions * 4};
  LruCache<std::pair<std::string, int64_t>, std::shared_ptr<const hwmodels::TermEstimator>>
      estimators_ ABSL_GUARDED_BY(mutex_){kCachedTableVersions};
  // Stored predictors by (space, version): prototypes for clones.
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const predictor::AccuracyPredictor>>
      stored_predictors_ ABSL_GUARDED_BY(mutex_);
  int predictor_threads_ = 1;
};

}  // namespace apq::server

#endif  // APQ_SERVER_CATALOG_H_
