#!/usr/bin/env bash
# The whole test suite: installs what is missing, then builds everything and runs every test
# (each fuzz target replays its corpus there), then fuzzes each parser of user bytes briefly
# (scripts/fuzz.sh; APQ_FUZZ_SECONDS, default 10, 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
bazel test //... "$@"
fuzz_seconds="${APQ_FUZZ_SECONDS:-10}"
if [[ "${fuzz_seconds}" != 0 ]]; then
  scripts/fuzz.sh --seconds "${fuzz_seconds}" --work "$(mktemp -d)"
fi
