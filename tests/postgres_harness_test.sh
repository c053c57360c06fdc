#!/usr/bin/env bash
# The throwaway PostgreSQL of scripts/postgres_test_server.sh (for the PostgreSQL store's
# tests): it starts on a free loopback port, stores and reads rows, two servers run side by
# side from one template, and stop leaves nothing listening.
set -euo pipefail
harness=scripts/postgres_test_server.sh
first="$(mktemp -d /tmp/apq-pg.XXXXXX)"
second="$(mktemp -d /tmp/apq-pg.XXXXXX)"
trap '"${harness}" stop "${first}"; "${harness}" stop "${second}"; rm -rf "${first}" "${second}"' EXIT

url_first="$("${harness}" start "${first}")"
url_second="$("${harness}" start "${second}")"
[[ "${url_first}" != "${url_second}" ]] || { echo "two servers got one address" >&2; exit 1; }

psql -v ON_ERROR_STOP=1 -q "${url_first}" \
  -c "CREATE TABLE candidates (id bigserial PRIMARY KEY, accuracy double precision)" \
  -c "INSERT INTO candidates (accuracy) SELECT g / 100.0 FROM generate_series(1, 50) g"
count="$(psql -tA "${url_first}" -c "SELECT count(*) FROM candidates")"
[[ "${count}" == 50 ]] || { echo "expected 50 rows, read ${count}" >&2; exit 1; }
# The second server is another database: it has no such table.
if psql -tA "${url_second}" -c "SELECT count(*) FROM candidates" 2>/dev/null; then
  echo "the second server sees the first one's table" >&2
  exit 1
fi

"${harness}" stop "${first}"
if psql -tA "${url_first}" -c "SELECT 1" 2>/dev/null; then
  echo "the stopped server still answers" >&2
  exit 1
fi
echo "two throwaway PostgreSQL servers started, used and stopped"
