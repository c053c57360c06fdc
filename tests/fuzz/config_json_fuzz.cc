// Fuzzes the config JSON reader of every search space with the same bytes (a config comes
// from users in SubmitSearch seeds, Evaluate, Compare and dataset uploads). A config a space
// accepts is a valid point of it: every gene within its choices, the rules kept, encodings
// and cost terms within range, and ToJson reads back to the same genotype.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "oface/mbconv_quant_space.h"
#include "oface/mbconv_spec.h"
#include "oface/ofa_mbv3_space.h"
#include "oface/search_space.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using apq::oface::Genotype;
using apq::oface::SearchSpace;

std::vector<std::unique_ptr<SearchSpace>> EverySpace() {
  std::vector<std::unique_ptr<SearchSpace>> spaces;
  spaces.push_back(apq::oface::NewOfaMbv3Space());
  spaces.push_back(apq::oface::NewApqMbv2Space());
  for (const apq::oface::MbConvSpec& spec : apq::oface::FashionMnistSpecs()) {
    absl::StatusOr<std::unique_ptr<SearchSpace>> space = apq::oface::NewMbConvQuantSpace(spec);
    FUZZ_CHECK(space.ok());
    spaces.push_back(*std::move(space));
  }
  return spaces;
}

void CheckAcceptedConfig(const SearchSpace& space, const Genotype& genotype) {
  FUZZ_CHECK(genotype.size() == space.genes().size());
  for (size_t gene = 0; gene < genotype.size(); ++gene) {
    const std::vector<int>& choices = space.genes()[gene].choices;
    FUZZ_CHECK(std::find(choices.begin(), choices.end(), genotype[gene]) != choices.end());
  }
  FUZZ_CHECK(space.CheckRules(genotype).ok());
  std::vector<int32_t> indices;
  space.ActiveFeatures(genotype, &indices);
  for (const int32_t index : indices) FUZZ_CHECK(index >= 0 && index < space.feature_size());
  std::vector<int32_t> terms;
  space.CostTerms(genotype, &terms);
  for (const int32_t term : terms) FUZZ_CHECK(term >= 0 && term < space.num_cost_terms());
  const absl::StatusOr<Genotype> again = space.FromJson(space.ToJson(genotype));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == genotype);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::unique_ptr<SearchSpace>>* const spaces =
      new std::vector<std::unique_ptr<SearchSpace>>(EverySpace());
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  for (const std::unique_ptr<SearchSpace>& space : *spaces) {
    const absl::StatusOr<Genotype> genotype = space->FromJson(json);
    if (genotype.ok()) {
      CheckAcceptedConfig(*space, *genotype);
    } else {
      FUZZ_CHECK(genotype.status().code() == absl::StatusCode::kInvalidArgument);
    }
  }
  return 0;
}
