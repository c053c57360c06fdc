// What a fuzz target does when a property it checks does not hold: print the property and
// abort, so that libFuzzer keeps the input and the corpus replay fails.
#ifndef APQ_TESTS_FUZZ_FUZZ_CHECK_H_
#define APQ_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                                      \
  do {                                                                                             \
    if (!(condition)) {                                                                            \
      std::fprintf(stderr, "%s:%d: property does not hold: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                                \
    }                                                                                              \
  } while (false)

#endif  // APQ_TESTS_FUZZ_FUZZ_CHECK_H_
