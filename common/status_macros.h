// Early-return helpers for absl::Status / absl::StatusOr (Debian's Abseil 20220623
// ships no status macros).
#ifndef APQ_COMMON_STATUS_MACROS_H_
#define APQ_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define APQ_STATUS_CONCAT_INNER_(a, b) a##b
#define APQ_STATUS_CONCAT_(a, b) APQ_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the caller when it is not OK.
#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::absl::Status apq_status_ = (expr);       \
    if (!apq_status_.ok()) return apq_status_; \
  } while (false)

// `ASSIGN_OR_RETURN(lhs, expr)`: evaluates `expr` (an absl::StatusOr<T>); on error returns
// its status from the caller, otherwise moves the value into `lhs` (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, expr) \
  APQ_ASSIGN_OR_RETURN_IMPL_(APQ_STATUS_CONCAT_(apq_statusor_, __LINE__), lhs, expr)

#define APQ_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()

#endif  // APQ_COMMON_STATUS_MACROS_H_
