#!/usr/bin/env bash
# A throwaway single-node Slurm for tests and benchmarks (issue 18's measurement workers):
# munged with a fresh key, slurmctld -D and slurmd -D with a generated slurm.conf in DIR,
# free loopback ports, SlurmUser root, proctrack/linuxproc, no accounting, no systemd. Every
# file (state, spool, logs, sockets, pid files) stays in DIR.
#
# usage: scripts/slurm_test_server.sh start DIR   prints the slurm.conf path: export
#                                                 SLURM_CONF=<it> for sbatch, squeue, scontrol
#        scripts/slurm_test_server.sh stop DIR
# The node offers the machine's CPUs; jobs run as the user who submits them.
set -euo pipefail

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to $2 tenths of a second for the command $1 to succeed.
wait_for() {
  local tries="$2"
  until eval "$1" >/dev/null 2>&1; do
    tries=$((tries - 1))
    [[ ${tries} -gt 0 ]] || return 1
    sleep 0.1
  done
}

case "${1:-}" in
  start)
    dir="$(realpath -m "${2:?usage: start DIR}")"
    for tool in munged slurmctld slurmd sbatch; do
      command -v "${tool}" >/dev/null || [[ -x "/usr/sbin/${tool}" ]] ||
        { echo "${tool} is not installed: run scripts/setup.sh" >&2; exit 1; }
    done
    mkdir -p "${dir}/state" "${dir}/spool" "${dir}/munge"
    chmod 700 "${dir}/munge"
    # munged insists on a key readable by its user only, and on private folders.
    dd if=/dev/urandom of="${dir}/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "${dir}/munge/munge.key"
    /usr/sbin/munged --force --key-file="${dir}/munge/munge.key" \
      --socket="${dir}/munge/munge.socket" --pid-file="${dir}/munge/munged.pid" \
      --log-file="${dir}/munge/munged.log" --seed-file="${dir}/munge/munged.seed" ||
      { cat "${dir}/munge/munged.log" >&2; exit 1; }
    host="$(hostname -s)"
    cpus="$(nproc)"
    memory_mb="$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)"
    cat >"${dir}/slurm.conf" <<EOF
ClusterName=apqtest
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${dir}/munge/munge.socket
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool
SlurmctldPidFile=${dir}/slurmctld.pid
SlurmdPidFile=${dir}/slurmd.pid
SlurmctldLogFile=${dir}/slurmctld.log
SlurmdLogFile=${dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
MaxArraySize=10001
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory_mb} State=UNKNOWN
PartitionName=test Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="${dir}/slurm.conf"
    # -D: in the foreground (no systemd here); -i: ignore state a previous run left.
    nohup /usr/sbin/slurmctld -D -i -f "${SLURM_CONF}" >"${dir}/slurmctld.out" 2>&1 &
    echo $! >"${dir}/slurmctld.pid.launcher"
    wait_for "scontrol ping | grep -q UP" 100 ||
      { cat "${dir}/slurmctld.log" "${dir}/slurmctld.out" >&2; exit 1; }
    nohup /usr/sbin/slurmd -D -f "${SLURM_CONF}" >"${dir}/slurmd.out" 2>&1 &
    echo $! >"${dir}/slurmd.pid.launcher"
    wait_for "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'" 150 ||
      { cat "${dir}/slurmd.log" "${dir}/slurmd.out" >&2; exit 1; }
    echo "${SLURM_CONF}"
    ;;
  stop)
    dir="$(realpath -m "${2:?usage: stop DIR}")"
    [[ -f "${dir}/slurm.conf" ]] || exit 0
    # slurmd ignores SIGTERM once the controller is gone: stop it first, and by its pid after
    # a grace period.
    for daemon in slurmd slurmctld; do
      pid_file="${dir}/${daemon}.pid.launcher"
      [[ -f "${pid_file}" ]] || continue
      pid="$(cat "${pid_file}")"
      kill -TERM "${pid}" 2>/dev/null || true
      for _ in $(seq 30); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "${pid}" 2>/dev/null || true
      rm -f "${pid_file}"
    done
    if [[ -f "${dir}/munge/munged.pid" ]]; then
      kill -TERM "$(cat "${dir}/munge/munged.pid")" 2>/dev/null || true
    fi
    ;;
  *)
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
    ;;
esac
