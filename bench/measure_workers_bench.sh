#!/usr/bin/env bash
# Measurement workers: N subnet measurements as a Slurm array vs as local processes, the same
# worker binary and store, interleaved A/B rounds (each round measures a fresh dataset with
# each launcher, in alternating order). A throwaway PostgreSQL (durable settings) and a
# single-node Slurm on this machine (scripts/*_test_server.sh); the workers claim their tasks
# from PostgreSQL. Prints each run's wall time and the medians.
#
# usage: bench/measure_workers_bench.sh [--count 50] [--workers 2] [--rounds 2]
#          [--calibration-images 2000] [--eval-images 0] [--out DIR]
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
count=50
workers=2
rounds=2
calibration_images=2000
eval_images=0
out=/tmp/apq_measure_workers_bench
while [[ $# -gt 0 ]]; do
  case "$1" in
    --count) count="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --calibration-images) calibration_images="$2"; shift 2 ;;
    --eval-images) eval_images="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done

cd "${repo}"
bazel build //server:measure_subnets //server:measure_worker >/dev/null
rm -rf "${out}"
mkdir -p "${out}"
cp bazel-bin/server/measure_subnets bazel-bin/server/measure_worker "${out}/"
pg="$(mktemp -d /tmp/apq-pg.XXXXXX)"
slurm="$(mktemp -d /tmp/apq-slurm.XXXXXX)"
trap 'scripts/slurm_test_server.sh stop "${slurm}"; scripts/postgres_test_server.sh stop "${pg}"; rm -rf "${pg}" "${slurm}"' EXIT
url="$(APQ_POSTGRES_DURABLE=1 scripts/postgres_test_server.sh start "${pg}")"
SLURM_CONF="$(scripts/slurm_test_server.sh start "${slurm}")"
export SLURM_CONF

echo "# ${count} measurements, ${workers} workers, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "${rounds}"); do
  order="local slurm"
  [[ $((round % 2)) -eq 0 ]] && order="slurm local"
  for launcher in ${order}; do
    start="$(date +%s.%N)"
    "${out}/measure_subnets" --db "${url}" --dataset "bench_${launcher}_${round}" \
      --checkpoint data/fmnist_mbv2/supernet_quant.pt --space fmnist_mbv2 --quantized \
      --count "${count}" --seed "${round}" --calibration_images "${calibration_images}" \
      --eval_images "${eval_images}" --launcher "${launcher}" --workers "${workers}" \
      --worker_threads 1 --worker_binary "${out}/measure_worker" \
      --log_dir "${out}/logs_${launcher}_${round}" 2>"${out}/${launcher}_${round}.log"
    end="$(date +%s.%N)"
    printf '%s %d %.1f\n' "${launcher}" "${round}" "$(echo "${end} - ${start}" | bc)" |
      tee -a "${out}/times.txt"
  done
done
python3 - "${out}/times.txt" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    launcher, _, seconds = line.split()
    times.setdefault(launcher, []).append(float(seconds))
for launcher, values in sorted(times.items()):
    print(f"{launcher}: median {statistics.median(values):.1f} s over {len(values)} runs")
if "local" in times and "slurm" in times:
    print(f"slurm / local: {statistics.median(times['slurm']) / statistics.median(times['local']):.3f}")
PY
