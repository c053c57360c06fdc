// The persistent record of the service, one interface per record kind, bundled. The product
// uses the SQLite backend (sqlite_store.h); tests may use the in-memory one (memory_store.h)
// and wrap either in the fault-injecting one (faulty_store.h). store_conformance_test.cc
// checks every backend against these contracts.
//
// Contract shared by every method of every record kind:
//  - Each write is one transaction: on error nothing is changed.
//  - NOT_FOUND for an unknown job, device, version, dataset, predictor, token or artifact;
//    INVALID_ARGUMENT for bad arguments; ALREADY_EXISTS for a name that is taken or a record
//    that is stored (a dataset's measurement of the same method and config, an artifact's
//    (kind, key)); FAILED_PRECONDITION for a write the record's state refuses; INTERNAL for
//    a storage failure (the message carries the backend's).
//  - Strings and blobs read back byte for byte (embedded NULs included). Doubles read back
//    bit for bit, except -0.0, which reads back as 0.0. A NaN anywhere a double is stored is
//    INVALID_ARGUMENT naming the field.
//  - Thread safety: every method may be called concurrently from any thread; a reader sees
//    each write whole or not at all.
#ifndef APQ_SERVER_STORE_STORE_H_
#define APQ_SERVER_STORE_STORE_H_

#include "server/store/artifact_store.h"
#include "server/store/dataset_store.h"
#include "server/store/device_store.h"
#include "server/store/job_store.h"
#include "server/store/measurement_run_store.h"
#include "server/store/predictor_store.h"
#include "server/store/records.h"
#include "server/store/token_store.h"
#include "server/store/training_job_store.h"

namespace apq::server {

// One backend's stores of every record kind. They live as long as the Store, share one
// database, and may be used concurrently.
class Store {
 public:
  virtual ~Store() = default;

  virtual JobStore& jobs() = 0;
  virtual DeviceStore& devices() = 0;
  virtual DatasetStore& datasets() = 0;
  virtual PredictorStore& predictors() = 0;
  virtual TrainingJobStore& training_jobs() = 0;
  virtual TokenStore& tokens() = 0;
  virtual ArtifactStore& artifacts() = 0;
  virtual MeasurementRunStore& measurement_runs() = 0;
};

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_STORE_H_
