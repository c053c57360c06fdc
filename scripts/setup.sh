#!/usr/bin/env bash
# Installs every Debian package the project needs to build, test and run, and the npm
# packages of the browser test (tests/browser, from its package-lock.json).
# Idempotent: when everything is installed already, it does nothing (no network).
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
  libcpp-httplib-dev libssl-dev chromium
  postgresql-15 libpqxx-dev
  slurmctld slurmd slurm-client munge
  dataset-fashion-mnist
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("${package}")
  fi
done

# Node.js with npm: this machine kind may carry its own build; Debian's otherwise.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "setup: installing ${#missing[@]} missing Debian packages: ${missing[*]}" >&2
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: Debian packages done" >&2
fi

browser_tests="$(cd "$(dirname "$0")/../tests/browser" && pwd)"
if [[ ! -f "${browser_tests}/node_modules/puppeteer-core/package.json" ]]; then
  echo "setup: installing the browser test's npm packages (tests/browser/package-lock.json)" >&2
  npm ci --prefix "${browser_tests}" --no-audit --no-fund --loglevel=error >/dev/null
fi
