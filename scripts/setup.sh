#!/usr/bin/env bash
# Installs every Debian package the project needs to build, test and run.
# Idempotent: when dpkg already reports every package installed, it does nothing
# (no apt-get update, no network).
set -euo pipefail

readonly PACKAGES=(
  bazel-bootstrap bazel-rules-java
  build-essential pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlite3-dev libgtest-dev libgmock-dev
  libtorch-dev libxgboost-dev libopenblas0-pthread
  zlib1g-dev nlohmann-json3-dev
  clang-14 libfuzzer-14-dev libclang-rt-14-dev
  coinor-libcbc-dev liblapack-dev
  golang-github-gogo-googleapis-dev
  python3-grpcio python3-protobuf python3-tqdm
  dataset-fashion-mnist
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("${package}")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "setup: installing ${#missing[@]} missing Debian packages: ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
