#!/usr/bin/env bash
# The throwaway single-node Slurm of scripts/slurm_test_server.sh (for the measurement
# workers): it starts without systemd, runs an array job of 4 tasks to completion on its node,
# and stop leaves no daemon running.
set -euo pipefail
harness=scripts/slurm_test_server.sh
dir="$(mktemp -d /tmp/apq-slurm.XXXXXX)"
trap '"${harness}" stop "${dir}"; rm -rf "${dir}"' EXIT

export SLURM_CONF="$("${harness}" start "${dir}")"
[[ -f "${SLURM_CONF}" ]] || { echo "no slurm.conf: ${SLURM_CONF}" >&2; exit 1; }
job="$(sbatch --parsable --array=0-3 --output="${dir}/task_%a.out" \
  --wrap 'echo "task ${SLURM_ARRAY_TASK_ID} of ${SLURM_ARRAY_JOB_ID}"')"
for _ in $(seq 300); do
  [[ -z "$(squeue -h -j "${job}" 2>/dev/null)" ]] && break
  sleep 0.1
done
[[ -z "$(squeue -h -j "${job}")" ]] || { echo "array job ${job} did not finish" >&2; exit 1; }
for task in 0 1 2 3; do
  grep -qx "task ${task} of ${job}" "${dir}/task_${task}.out" ||
    { echo "task ${task}: $(cat "${dir}/task_${task}.out" 2>&1)" >&2; exit 1; }
done

slurmd_pid="$(cat "${dir}/slurmd.pid.launcher")"
slurmctld_pid="$(cat "${dir}/slurmctld.pid.launcher")"
"${harness}" stop "${dir}"
for pid in "${slurmd_pid}" "${slurmctld_pid}"; do
  if kill -0 "${pid}" 2>/dev/null; then echo "daemon ${pid} still runs after stop" >&2; exit 1; fi
done
echo "PASS"
