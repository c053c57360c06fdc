// Engines by name. The built-in registry lists every engine the product ships; a new engine
// is one line in engine_registry.cc. Tests build their own registry with extra engines.
//
// Thread safety: a registry is filled before it is shared and read-only afterwards.
#ifndef APQ_SEARCH_ENGINE_REGISTRY_H_
#define APQ_SEARCH_ENGINE_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "search/engine.h"

namespace apq::search {

class EngineRegistry {
 public:
  // The product's engines, shared.
  static std::shared_ptr<const EngineRegistry> BuiltIn();
  // A new registry holding the product's engines, to which tests add their own.
  static std::unique_ptr<EngineRegistry> WithBuiltIns();

  // INVALID_ARGUMENT for a name that is not lower-case letters, digits and '_' (1-64
  // characters); ALREADY_EXISTS when the name is taken.
  absl::Status Register(std::unique_ptr<Engine> engine);
  // NOT_FOUND naming the known engines.
  absl::StatusOr<const Engine*> Find(const std::string& name) const;
  // By name.
  std::vector<const Engine*> engines() const;

 private:
  std::map<std::string, std::unique_ptr<Engine>> engines_;
};

}  // namespace apq::search

#endif  // APQ_SEARCH_ENGINE_REGISTRY_H_
