// Measured (config, accuracy) records read from a user's file for upload-dataset.
#ifndef APQ_CLIENTS_DATASET_RECORDS_H_
#define APQ_CLIENTS_DATASET_RECORDS_H_

#include <string>
#include <string_view>

#include "proto/apq/v1/apq.pb.h"

namespace apq::client {

// Adds to `request` the records of the file at `path` ("-" is stdin): a measurement CSV as
// measure_subnets writes it (recognized by its header, with or without the split column), or
// a JSON list of {"config": <config>, "accuracy": A, "method": M, "seconds": S, "split": P}
// with method, seconds and split optional. Throws UsageError naming the file, and the record, when
// it is neither or a record is malformed; the server checks the records against the space.
void AddRecordsFromFile(const std::string& path, apq::v1::UploadDatasetRequest* request);

// As AddRecordsFromFile, for a file's `content` already read; `source` names it in errors.
void AddRecordsFromContent(std::string_view content, const std::string& source,
                           apq::v1::UploadDatasetRequest* request);

}  // namespace apq::client

#endif  // APQ_CLIENTS_DATASET_RECORDS_H_
