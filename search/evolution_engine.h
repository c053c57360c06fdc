// The evolution engine (once-for-all / APQ): EvolutionSearch behind the Engine interface.
// Its options are EvolutionParams' fields by name; its checkpoint is SerializeCheckpoint's.
#ifndef APQ_SEARCH_EVOLUTION_ENGINE_H_
#define APQ_SEARCH_EVOLUTION_ENGINE_H_

#include <memory>

#include "search/engine.h"
#include "search/evolution.h"

namespace apq::search {

inline constexpr char kEvolutionEngineName[] = "evolution";

std::unique_ptr<Engine> NewEvolutionEngine();

// The parameters that resolved evolution options and the problem's objective describe.
EvolutionParams EvolutionParamsFromOptions(const EngineOptions& options,
                                           const SearchProblem& problem);

}  // namespace apq::search

#endif  // APQ_SEARCH_EVOLUTION_ENGINE_H_
