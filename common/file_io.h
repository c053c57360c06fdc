// Whole-file reads of the server's own files (embedded data, saved exports).
#ifndef APQ_COMMON_FILE_IO_H_
#define APQ_COMMON_FILE_IO_H_

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace apq {

// The bytes of the file at `path`. NOT_FOUND naming the path when it cannot be opened,
// DATA_LOSS when reading it fails.
inline absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream content;
  content << in.rdbuf();
  if (!in) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return content.str();
}

}  // namespace apq

#endif  // APQ_COMMON_FILE_IO_H_
