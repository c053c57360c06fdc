#include "server/space_description.h"

#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace apq::server {
namespace {

// The paths of the leaves where `a` and `b` differ (a subtree whose shape differs counts as
// one leaf), in document order.
void DifferingLeaves(const nlohmann::json& a, const nlohmann::json& b, const std::string& path,
                     std::vector<std::string>* out) {
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) {
      DifferingLeaves(a[i], b[i], absl::StrCat(path, "[", i, "]"), out);
    }
    return;
  }
  if (a.is_object() && b.is_object() && a.size() == b.size()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!b.contains(it.key())) {
        out->push_back(path);
        return;
      }
      DifferingLeaves(it.value(), b.at(it.key()),
                      path.empty() ? it.key() : absl::StrCat(path, ".", it.key()), out);
    }
    return;
  }
  if (a != b) out->push_back(path);
}

// The config of a network of the space with gene `gene` at `value`, made from the first of
// `bases` with which it is valid (the largest network, or when that breaks a rule, the
// largest depths with every other gene at its smallest choice), and that base's index.
struct Probe {
  nlohmann::json config;
  size_t base = 0;
};

std::optional<Probe> ProbeWith(const oface::SearchSpace& space,
                               const std::vector<oface::Genotype>& bases, size_t gene, int value) {
  for (size_t b = 0; b < bases.size(); ++b) {
    oface::Genotype genotype = bases[b];
    genotype[gene] = value;
    if (space.Validate(genotype).ok())
      return Probe{nlohmann::json::parse(space.ToJson(genotype)), b};
  }
  return std::nullopt;
}

}  // namespace

nlohmann::json* JsonAtPath(nlohmann::json& document, absl::string_view path) {
  nlohmann::json* at = &document;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '[') {
      const size_t close = path.find(']', i);
      if (close == absl::string_view::npos || !at->is_array()) return nullptr;
      size_t index = 0;
      for (size_t d = i + 1; d < close; ++d) {
        if (!std::isdigit(static_cast<unsigned char>(path[d]))) return nullptr;
        index = index * 10 + static_cast<size_t>(path[d] - '0');
      }
      if (close == i + 1 || index >= at->size()) return nullptr;
      at = &(*at)[index];
      i = close + 1;
      continue;
    }
    if (path[i] == '.') ++i;
    size_t end = i;
    while (end < path.size() && path[end] != '.' && path[end] != '[') ++end;
    const std::string key(path.substr(i, end - i));
    if (key.empty() || !at->is_object() || !at->contains(key)) return nullptr;
    at = &(*at)[key];
    i = end;
  }
  return at;
}

absl::StatusOr<apq::v1::SpaceDescription> DescribeSpaceFields(const oface::SearchSpace& space,
                                                              bool with_fields) {
  const std::vector<oface::GeneSpec>& genes = space.genes();
  apq::v1::SpaceDescription description;
  description.set_name(space.name());
  description.set_config_format(space.ConfigFormat());
  description.set_field_count(static_cast<int>(genes.size()));
  for (const std::string& rule : space.RuleDescriptions()) description.add_rules(rule);
  oface::Genotype largest(genes.size());
  oface::Genotype small_at_depth(genes.size());
  bool has_bits = false;
  for (size_t g = 0; g < genes.size(); ++g) {
    largest[g] = genes[g].choices.back();
    // Depths and the resolution at their largest keep every layer in the config's network.
    const bool keeps_layers = genes[g].name.rfind("d[", 0) == 0 || genes[g].name == "r";
    small_at_depth[g] = keeps_layers ? genes[g].choices.back() : genes[g].choices.front();
    has_bits = has_bits || oface::IsBitsGene(genes[g]);
  }
  description.set_has_bits(has_bits);
  if (absl::Status valid = space.Validate(largest); !valid.ok()) {
    return absl::InternalError(absl::StrCat("space ", space.name(),
                                            ": its largest network is invalid: ", valid.message()));
  }
  const std::string example = space.ToJson(largest);
  description.set_example_config_json(example);
  if (!with_fields) return description;

  const std::vector<oface::Genotype> bases = {largest, small_at_depth};
  for (size_t g = 0; g < genes.size(); ++g) {
    apq::v1::ConfigField* field = description.add_fields();
    field->set_name(genes[g].name);
    field->set_is_bits(oface::IsBitsGene(genes[g]));
    // Each choice's config, then the path where two configs of the same base differ.
    std::vector<std::optional<Probe>> configs;
    std::string path;
    for (const int value : genes[g].choices) {
      field->add_choices(value);
      configs.push_back(ProbeWith(space, bases, g, value));
    }
    for (size_t c = 1; c < configs.size() && path.empty(); ++c) {
      for (size_t d = 0; d < c && path.empty(); ++d) {
        if (!configs[c].has_value() || !configs[d].has_value() ||
            configs[c]->base != configs[d]->base) {
          continue;
        }
        std::vector<std::string> leaves;
        DifferingLeaves(configs[d]->config, configs[c]->config, "", &leaves);
        if (!leaves.empty()) path = leaves.front();
      }
    }
    field->set_json_path(path);
    for (size_t c = 0; c < configs.size(); ++c) {
      const nlohmann::json* value =
          configs[c].has_value() && !path.empty() ? JsonAtPath(configs[c]->config, path) : nullptr;
      if (value != nullptr) {
        field->add_json_values(value->dump());
      } else if (configs.size() == 1) {
        field->add_json_values(std::to_string(genes[g].choices[c]));
      } else {
        field->add_json_values("");
      }
    }
  }
  return description;
}

}  // namespace apq::server
