#!/usr/bin/env bash
# The Python client (clients/python/pkg) against a real apqd with tokens on: starts the server
# on a free port with a throwaway database, then runs client_test.py with Debian's python3.
set -euo pipefail
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/python_client.XXXXXX")"
# shellcheck source=tests/apqd_with_token.sh
source tests/apqd_with_token.sh
start_apqd_with_token "${tmp}"
APQ_ADDRESS="${APQD_ADDRESS}" APQ_TOKEN="${APQD_TOKEN}" \
  APQ_TEST_TMP="${tmp}" PYTHONPATH="clients/python/pkg" \
  /usr/bin/python3 -B -P clients/python/client_test.py -v  # -P: not the source apq/ beside it
