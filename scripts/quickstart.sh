#!/usr/bin/env bash
# The main job end to end on the embedded defaults: installs what is missing, builds, starts
# apqd on a local SQLite file, runs a real search through the client (ofa_mbv3 on the
# Samsung Note10 table, 25 ms budget), prints the best configuration and the address of its
# page on the dashboard, stops the server (APQ_KEEP_SERVING=1 keeps it and the dashboard up
# until Ctrl-C).
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
http_port_file="${state_dir}/dashboard.port"
rm -f "${http_port_file}"
APQD_EXTRA_FLAGS="--http_listen 127.0.0.1:${APQ_HTTP_PORT:-0} --http_port_file ${http_port_file}" \
  start_apqd bazel-bin/server/apqd "${database}" data "${port_file}" "${log_file}"
address="${APQD_ADDRESS}"
dashboard="http://127.0.0.1:$(cat "${http_port_file}")"
echo "apqd is serving on ${address} (database ${database}, log ${log_file}); dashboard ${dashboard}"

bazel-bin/clients/apq --server "${address}" search --space ofa_mbv3 --device note10 \
  --max-latency-ms 25 --seed 1 --wait "$@"
job="$(bazel-bin/clients/apq --server "${address}" jobs --limit 1 --json |
  grep -o '"job_id": *"job-[0-9]*"' | head -n 1 | grep -o 'job-[0-9]*')"
echo "the job's candidates, Pareto front and best: ${dashboard}/jobs/${job}"
if [[ "${APQ_KEEP_SERVING:-0}" == 1 ]]; then
  echo "serving until Ctrl-C"
  wait "${APQD_PID}"
fi
