#!/usr/bin/env bash
# Runs a test binary against a throwaway PostgreSQL server: starts one, passes its URL in
# APQ_TEST_POSTGRES_URL, stops it whatever the outcome.
# usage: postgres_store_test.sh TEST_BINARY [ARGS...]
set -euo pipefail
# Bazel runs tests in the workspace's runfiles folder.
server_script=scripts/postgres_test_server.sh
# Under /tmp, not TEST_TMPDIR: the server's unix socket path must stay under 107 bytes.
dir="$(mktemp -d /tmp/apq-pg.XXXXXX)"
trap 'bash "${server_script}" stop "${dir}"; rm -rf "${dir}"' EXIT
url="$(bash "${server_script}" start "${dir}")"
APQ_TEST_POSTGRES_URL="${url}" "$@"
