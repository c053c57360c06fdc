// Wall-clock time as the store keeps it.
#ifndef APQ_COMMON_CLOCK_H_
#define APQ_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace apq {

// Seconds since the Unix epoch, with sub-second precision.
inline double NowUnixSeconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

}  // namespace apq

#endif  // APQ_COMMON_CLOCK_H_
