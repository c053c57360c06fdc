#!/usr/bin/env bash
# Runs a command with a throwaway single-node Slurm (slurm_test_server.sh): starts one,
# exports SLURM_CONF for sbatch and squeue, stops it whatever the outcome. For sh_tests tagged
# local and no-sandbox (slurmctld and slurmd do not start in Bazel's sandbox).
# usage: with_test_slurm.sh COMMAND [ARGS...]
set -euo pipefail
# Bazel runs tests in the workspace's runfiles folder.
server_script=scripts/slurm_test_server.sh
dir="$(mktemp -d /tmp/apq-slurm.XXXXXX)"
trap 'bash "${server_script}" stop "${dir}"; rm -rf "${dir}"' EXIT
SLURM_CONF="$(bash "${server_script}" start "${dir}")"
export SLURM_CONF
"$@"
