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
# shellcheck source=scripts/apqd_lib.sh
source scripts/apqd_lib.sh
start_apqd bazel-bin/server/apqd "${database}" data "${port_file}" "${log_file}"
address="${APQD_ADDRESS}"
echo "apqd is serving on ${address} (database ${database}, log ${log_file})"

bazel-bin/clients/apq --server "${address}" search --space ofa_mbv3 --device note10 \
  --max-latency-ms 25 --seed 1 --wait "$@"
