#!/usr/bin/env bash
# The main job end to end on the embedded defaults: installs what is missing, builds, starts
# apqd on a local SQLite file, runs a real search through the client (ofa_mbv3 on the
# Samsung Note10 table, 25 ms budget), prints the best configuration, stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
bazel build //server:apqd //clients:apq

state_dir=.apq
mkdir -p "${state_dir}"
database="${state_dir}/quickstart.db"
port_file="${state_dir}/apqd.port"
log_file="${state_dir}/apqd.log"
rm -f "${port_file}"

bazel-bin/server/apqd --listen 127.0.0.1:0 --db "${database}" --data_dir data \
  --port_file "${port_file}" >"${log_file}" 2>&1 &
server_pid=$!
stop_server() {
  kill -TERM "${server_pid}" 2>/dev/null || true
  wait "${server_pid}" 2>/dev/null || true
}
trap stop_server EXIT

for _ in $(seq 1 300); do
  [[ -s "${port_file}" ]] && break
  if ! kill -0 "${server_pid}" 2>/dev/null; then
    echo "apqd failed to start:" >&2
    cat "${log_file}" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -s "${port_file}" ]] || { echo "apqd did not start within 30 s" >&2; exit 1; }
address="127.0.0.1:$(cat "${port_file}")"
echo "apqd is serving on ${address} (database ${database}, log ${log_file})"

bazel-bin/clients/apq --server "${address}" search --space ofa_mbv3 --device note10 \
  --max-latency-ms 25 --seed 1 --wait "$@"
