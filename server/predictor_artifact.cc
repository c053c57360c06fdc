#include "server/predictor_artifact.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "predictor/mean_ensemble.h"

namespace apq::server {
namespace {

// Splits "<decimal>\n<rest>" into the number and the rest.
bool SplitHeader(const std::string& artifact, int64_t* number, std::string* rest) {
  const size_t newline = artifact.find('\n');
  if (newline == std::string::npos || newline == 0 || newline > 19) return false;
  if (!absl::SimpleAtoi(absl::string_view(artifact.data(), newline), number) || *number < 0) {
    return false;
  }
  *rest = artifact.substr(newline + 1);
  return true;
}

}  // namespace

absl::StatusOr<std::string> MlpArtifact(const predictor::MlpPredictor& mlp) {
  ASSIGN_OR_RETURN(std::string manifest, mlp.ManifestJson());
  return absl::StrCat(manifest.size(), "\n", manifest, mlp.RawFloat32Bytes());
}

std::string XgbArtifact(const predictor::XgbPredictor& xgb) {
  return absl::StrCat(xgb.input_size(), "\n", xgb.Serialize());
}

std::string MeanEnsembleArtifact(const std::vector<ArtifactMember>& members) {
  std::string artifact = absl::StrCat(members.size(), "\n");
  for (const ArtifactMember& member : members) {
    absl::StrAppend(&artifact, member.kind, "\n", member.artifact.size(), "\n", member.artifact);
  }
  return artifact;
}

namespace {
constexpr char kShippedMagic[] = "apq-predictor-artifact 1";
}  // namespace

std::string EncodeShippedArtifact(const ShippedArtifact& shipped) {
  return absl::StrCat(kShippedMagic, "\nkind ", shipped.kind, "\nversion ", shipped.version, "\n",
                      shipped.artifact);
}

absl::StatusOr<ShippedArtifact> DecodeShippedArtifact(const std::string& bytes,
                                                      const std::string& what) {
  // The three header lines are short; a longer first stretch is not this format.
  constexpr size_t kMaxHeaderLine = 256;
  ShippedArtifact shipped;
  size_t position = 0;
  const auto next_line = [&](absl::string_view prefix, std::string* value) {
    const size_t newline = bytes.find('\n', position);
    if (newline == std::string::npos || newline - position > kMaxHeaderLine) return false;
    const absl::string_view line(bytes.data() + position, newline - position);
    position = newline + 1;
    if (!absl::StartsWith(line, prefix)) return false;
    if (value != nullptr) *value = static_cast<std::string>(line.substr(prefix.size()));
    return value == nullptr || !value->empty();
  };
  if (!next_line(kShippedMagic, nullptr) || position != sizeof(kShippedMagic)) {
    return absl::DataLossError(
        absl::StrCat(what, ": not a shipped predictor (line 1 must be '", kShippedMagic, "')"));
  }
  if (!next_line("kind ", &shipped.kind)) {
    return absl::DataLossError(absl::StrCat(what, ": line 2 must be 'kind <kind>'"));
  }
  if (!next_line("version ", &shipped.version)) {
    return absl::DataLossError(absl::StrCat(what, ": line 3 must be 'version <version>'"));
  }
  shipped.artifact = bytes.substr(position);
  return shipped;
}

absl::StatusOr<LoadedPredictor> LoadPredictorArtifact(const std::string& kind,
                                                      const std::string& artifact,
                                                      const std::string& name,
                                                      const std::string& what, int threads) {
  int64_t number = 0;
  std::string rest;
  const bool framed = SplitHeader(artifact, &number, &rest);
  LoadedPredictor loaded;
  if (kind == kMlpRawF32Kind) {
    if (!framed || static_cast<size_t>(number) > rest.size()) {
      return absl::DataLossError(absl::StrCat(what, ": not an ", kind, " artifact"));
    }
    predictor::MlpPredictor::Options options;
    options.num_threads = threads;
    absl::StatusOr<std::unique_ptr<predictor::MlpPredictor>> mlp =
        predictor::MlpPredictor::FromRawFloat32(rest.substr(number), rest.substr(0, number), name,
                                                absl::StrCat(what, " weights"),
                                                absl::StrCat(what, " manifest"), options);
    if (!mlp.ok()) {
      return absl::DataLossError(absl::StrCat(what, ": ", mlp.status().message()));
    }
    loaded.input_size = (*mlp)->input_size();
    loaded.predictor = *std::move(mlp);
    return loaded;
  }
  if (kind == kXgboostJsonKind) {
    if (!framed || number <= 0 || number > (1 << 24)) {
      return absl::DataLossError(absl::StrCat(what, ": not an ", kind, " artifact"));
    }
    absl::StatusOr<std::unique_ptr<predictor::XgbPredictor>> xgb =
        predictor::XgbPredictor::Deserialize(rest, static_cast<int>(number), threads);
    if (!xgb.ok()) return absl::DataLossError(absl::StrCat(what, ": ", xgb.status().message()));
    loaded.input_size = static_cast<int>(number);
    loaded.predictor = *std::move(xgb);
    return loaded;
  }
  if (kind == kMeanEnsembleKind) {
    constexpr int64_t kMaxMembers = 16;
    if (!framed || number < 2 || number > kMaxMembers) {
      return absl::DataLossError(absl::StrCat(what, ": not a ", kind, " artifact"));
    }
    std::vector<std::unique_ptr<predictor::AccuracyPredictor>> members;
    absl::string_view left = rest;
    for (int64_t m = 0; m < number; ++m) {
      const std::string member_what = absl::StrCat(what, " member ", m);
      const size_t newline = left.find('\n');
      if (newline == absl::string_view::npos) {
        return absl::DataLossError(absl::StrCat(member_what, ": truncated"));
      }
      const std::string member_kind(left.substr(0, newline));
      if (member_kind == kMeanEnsembleKind) {
        return absl::DataLossError(absl::StrCat(member_what, ": an ensemble inside an ensemble"));
      }
      int64_t length = 0;
      std::string after_length;
      if (!SplitHeader(static_cast<std::string>(left.substr(newline + 1)), &length,
                       &after_length) ||
          static_cast<size_t>(length) > after_length.size()) {
        return absl::DataLossError(absl::StrCat(member_what, ": truncated"));
      }
      absl::StatusOr<LoadedPredictor> member = LoadPredictorArtifact(
          member_kind, after_length.substr(0, length), name, member_what, threads);
      // Whatever is wrong with a member (an unknown kind included) is damage to the artifact.
      if (!member.ok()) return absl::DataLossError(member.status().message());
      members.push_back(std::move(member->predictor));
      left = left.substr(left.size() - (after_length.size() - length));
    }
    if (!left.empty()) return absl::DataLossError(absl::StrCat(what, ": trailing bytes"));
    absl::StatusOr<std::unique_ptr<predictor::MeanEnsemble>> ensemble =
        predictor::MeanEnsemble::Create(std::move(members));
    if (!ensemble.ok()) {
      return absl::DataLossError(absl::StrCat(what, ": ", ensemble.status().message()));
    }
    loaded.input_size = (*ensemble)->input_size();
    loaded.predictor = *std::move(ensemble);
    return loaded;
  }
  return absl::InvalidArgumentError(absl::StrCat(what, ": unknown predictor kind '", kind,
                                                 "' (known: ", kMlpRawF32Kind, ", ",
                                                 kXgboostJsonKind, ", ", kMeanEnsembleKind, ")"));
}

}  // namespace apq::server
