#!/usr/bin/env bash
# Runs a test binary against a throwaway PostgreSQL server (postgres_test_server.sh): starts
# one, passes its URL in APQ_TEST_POSTGRES_URL, stops it whatever the outcome. For sh_tests
# tagged local and no-sandbox (PostgreSQL does not start in Bazel's sandbox).
# usage: with_test_postgres.sh TEST_BINARY [ARGS...]
set -euo pipefail
# Bazel runs tests in the workspace's runfiles folder.
server_script=scripts/postgres_test_server.sh
# Under /tmp, not TEST_TMPDIR: the server's unix socket path must stay under 107 bytes.
dir="$(mktemp -d /tmp/apq-pg.XXXXXX)"
trap 'bash "${server_script}" stop "${dir}"; rm -rf "${dir}"' EXIT
url="$(bash "${server_script}" start "${dir}")"
APQ_TEST_POSTGRES_URL="${url}" "$@"
