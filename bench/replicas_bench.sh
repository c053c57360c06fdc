#!/usr/bin/env bash
# A sweep of searches on 1 apqd replica vs 2 replicas over one PostgreSQL database (durable
# settings), each replica with one search worker, interleaved A/B rounds (a fresh schema per
# run). The sweep (40 scenarios: OFA's MobileNetV3 space on Note10, latency budgets 20.0 to
# 39.5 ms) is submitted through the first replica; any replica claims its jobs. Prints each
# run's wall time from submission to the last job's end, the candidate rows it stored, and
# the medians; the rows per second of a replica against the database's write ceiling
# (bench/store_bench --postgres) tells how many machines one database serves.
#
# usage: bench/replicas_bench.sh [--scenarios 40] [--rounds 2] [--generations 200]
#          [--population 100] [--out DIR]
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
scenarios=40
rounds=2
generations=200
population=100
out=/tmp/apq_replicas_bench
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scenarios) scenarios="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --generations) generations="$2"; shift 2 ;;
    --population) population="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done

cd "${repo}"
bazel build //server:apqd //clients:apq >/dev/null
rm -rf "${out}"
mkdir -p "${out}"
cp bazel-bin/server/apqd bazel-bin/clients/apq "${out}/"
pg="$(mktemp -d /tmp/apq-pg.XXXXXX)"
pids=()
stop_replicas() {
  for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
  pids=()
}
trap 'stop_replicas; scripts/postgres_test_server.sh stop "${pg}"; rm -rf "${pg}"' EXIT
base="$(APQ_POSTGRES_DURABLE=1 scripts/postgres_test_server.sh start "${pg}")"

python3 - "${scenarios}" >"${out}/scenarios.json" <<'PY'
import json, sys
count = int(sys.argv[1])
print(json.dumps([{"device": "note10", "max_latency_ms": 20.0 + 0.5 * i} for i in range(count)]))
PY

echo "# ${scenarios} searches (population ${population}, ${generations} generations), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "${rounds}"); do
  order="1 2"
  [[ $((round % 2)) -eq 0 ]] && order="2 1"
  for replicas in ${order}; do
    schema="bench_${round}_${replicas}"
    psql -X -q "${base}" -c "CREATE SCHEMA ${schema}"
    url="${base}?options=-csearch_path%3D${schema}"
    for r in $(seq "${replicas}"); do
      OMP_NUM_THREADS=1 "${out}/apqd" --db "${url}" --listen 127.0.0.1:0 --auth=off \
        --workers 1 --replica_id "r${r}" --port_file "${out}/port_${schema}_${r}" \
        2>"${out}/apqd_${schema}_${r}.log" &
      pids+=($!)
    done
    for r in $(seq "${replicas}"); do
      for _ in $(seq 300); do [[ -s "${out}/port_${schema}_${r}" ]] && break; sleep 0.1; done
    done
    server="127.0.0.1:$(cat "${out}/port_${schema}_1")"
    start="$(date +%s.%N)"
    "${out}/apq" --server "${server}" sweep --space ofa_mbv3 --scenarios "${out}/scenarios.json" \
      --engine evolution --options "population_size=${population},generations=${generations}" \
      --seed "${round}" --wait --json >"${out}/sweep_${schema}.json"
    end="$(date +%s.%N)"
    rows="$(psql -X -tA "${url}" -c "SELECT COUNT(*) FROM candidates")"
    succeeded="$(psql -X -tA "${url}" -c "SELECT COUNT(*) FROM jobs WHERE state = 3")"
    stop_replicas
    printf '%d %d %.1f %s\n' "${replicas}" "${round}" "$(echo "${end} - ${start}" | bc)" "${rows}" |
      tee -a "${out}/times.txt"
    [[ "${succeeded}" == "${scenarios}" ]] ||
      echo "only ${succeeded} of ${scenarios} jobs succeeded" >&2
  done
done
python3 - "${out}/times.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    replicas, _, seconds, rows = line.split()
    runs.setdefault(int(replicas), []).append((float(seconds), int(rows)))
for replicas, values in sorted(runs.items()):
    seconds = statistics.median(v[0] for v in values)
    rows = statistics.median(v[1] for v in values)
    print(f"{replicas} replica(s): median {seconds:.1f} s, {rows:.0f} candidate rows, "
          f"{rows / seconds:.0f} rows/s into PostgreSQL")
if 1 in runs and 2 in runs:
    one = statistics.median(v[0] for v in runs[1])
    two = statistics.median(v[0] for v in runs[2])
    print(f"speed-up of 2 replicas: {one / two:.2f}x")
PY
