// Measurement datasets: the accuracy predictors' training data. The contract shared by every
// store is in store.h.
#ifndef APQ_SERVER_STORE_DATASET_STORE_H_
#define APQ_SERVER_STORE_DATASET_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/store/records.h"

namespace apq::server {

class DatasetStore {
 public:
  virtual ~DatasetStore() = default;

  // Creates a dataset holding `rows`, in one transaction (their ids are ignored; the
  // record's counts too). INVALID_ARGUMENT for an empty name or space and for bad rows (as
  // AddMeasurements); ALREADY_EXISTS when the name is taken.
  virtual absl::Status CreateDataset(const DatasetRecord& dataset,
                                     const std::vector<MeasurementRow>& rows) = 0;

  // The dataset with its record counts. NOT_FOUND for an unknown one.
  virtual absl::StatusOr<DatasetRecord> GetDataset(const std::string& name) = 0;

  // Every dataset with its record counts, by name.
  virtual absl::StatusOr<std::vector<DatasetRecord>> ListDatasets() = 0;

  // Appends `rows` to the dataset in one transaction (their ids are ignored; new ones are
  // ascending, above every id assigned before). NOT_FOUND for an unknown dataset.
  // INVALID_ARGUMENT naming the row ("measurement <i>: ...", i its index in `rows`) for an
  // accuracy outside [0, 1] or NaN, a negative or NaN seconds, an empty config or method,
  // or a (method, config_json) pair that `rows` repeats; ALREADY_EXISTS naming the row for a
  // (method, config_json) pair that the dataset already holds (a writer that retries after a
  // lost acknowledgement can tell its own row from a bad one).
  virtual absl::Status AddMeasurements(const std::string& dataset,
                                       const std::vector<MeasurementRow>& rows) = 0;

  // The dataset's rows in id order, all methods or one. NOT_FOUND for an unknown dataset.
  // Seeds read back bit for bit (all 64 bits).
  virtual absl::StatusOr<std::vector<MeasurementRow>> ListMeasurements(
      const std::string& dataset, const std::optional<std::string>& method) = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_DATASET_STORE_H_
