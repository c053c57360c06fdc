#!/usr/bin/env bash
# The Python client (clients/python/pkg) against a real apqd with tokens on: starts the server
# on a free port with a throwaway database, then runs client_test.py with Debian's python3.
set -euo pipefail
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/python_client.XXXXXX")"
server/apqd --listen 127.0.0.1:0 --db "${tmp}/apq.db" --data_dir data --port_file "${tmp}/port" \
  --bootstrap_token_file "${tmp}/token" >"${tmp}/apqd.log" 2>&1 &
pid=$!
trap 'kill -TERM "${pid}" 2>/dev/null || true; wait "${pid}" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  [[ -s "${tmp}/port" && -s "${tmp}/token" ]] && break
  kill -0 "${pid}" 2>/dev/null || { cat "${tmp}/apqd.log" >&2; exit 1; }
  sleep 0.1
done
[[ -s "${tmp}/port" ]] || { echo "apqd did not start" >&2; cat "${tmp}/apqd.log" >&2; exit 1; }
APQ_ADDRESS="127.0.0.1:$(cat "${tmp}/port")" APQ_TOKEN="$(cat "${tmp}/token")" \
  APQ_TEST_TMP="${tmp}" PYTHONPATH="clients/python/pkg" \
  /usr/bin/python3 -B -P clients/python/client_test.py -v  # -P: not the source apq/ beside it
