#include "search/engine_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "search/differentiable_engines.h"
#include "search/evolution_engine.h"
#include "search/iqp_engine.h"
#include "search/qbitopt_engine.h"

namespace apq::search {

std::unique_ptr<EngineRegistry> EngineRegistry::WithBuiltIns() {
  auto registry = std::make_unique<EngineRegistry>();
  // One line per engine the product ships.
  registry->Register(NewEvolutionEngine()).IgnoreError();
  registry->Register(NewIqpEngine()).IgnoreError();
  registry->Register(NewQbitoptEngine()).IgnoreError();
  registry->Register(NewDnasEngine()).IgnoreError();
  registry->Register(NewSspsEngine()).IgnoreError();
  return registry;
}

std::shared_ptr<const EngineRegistry> EngineRegistry::BuiltIn() {
  static const std::shared_ptr<const EngineRegistry> built_in = WithBuiltIns();
  return built_in;
}

absl::Status EngineRegistry::Register(std::unique_ptr<Engine> engine) {
  const std::string name = engine->name();
  bool valid = !name.empty() && name.size() <= 64;
  for (const char c : name)
    valid = valid && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("engine name \"", name, "\": use 1-64 lower-case letters, digits and _"));
  }
  if (engines_.count(name) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("engine ", name, " is registered already"));
  }
  engines_.emplace(name, std::move(engine));
  return absl::OkStatus();
}

absl::StatusOr<const Engine*> EngineRegistry::Find(const std::string& name) const {
  auto found = engines_.find(name);
  if (found == engines_.end()) {
    std::vector<std::string> names;
    for (const auto& [known, engine] : engines_) names.push_back(known);
    return absl::NotFoundError(
        absl::StrCat("engine \"", name, "\" is not known; engines: ", absl::StrJoin(names, ", ")));
  }
  return found->second.get();
}

std::vector<const Engine*> EngineRegistry::engines() const {
  std::vector<const Engine*> all;
  for (const auto& [name, engine] : engines_) all.push_back(engine.get());
  return all;
}

}  // namespace apq::search
