// A Store that keeps every record in memory: for tests and for tools that need no file. It
// honours every contract of the SQLite backend (ids, orderings, paging, error codes and
// messages, all-or-nothing writes, -0.0 read back as 0.0), checked by
// store_conformance_test.cc; records are lost when it is destroyed.
//
// Thread safety: all methods may be called concurrently; they run one at a time under one
// mutex.
#ifndef APQ_SERVER_STORE_MEMORY_STORE_H_
#define APQ_SERVER_STORE_MEMORY_STORE_H_

#include <memory>

#include "server/store/store.h"

namespace apq::server {

std::unique_ptr<Store> NewMemoryStore();

}  // namespace apq::server

#endif  // APQ_SERVER_STORE_MEMORY_STORE_H_
