#!/usr/bin/env bash
# Fuzzes every parser of user bytes (tests/fuzz) with libFuzzer, AddressSanitizer and UBSan.
#
#   scripts/fuzz.sh [--seconds N] [--work DIR] [TARGET...]
#
# Builds the targets with clang-14 (.bazelrc's fuzz config, in an output base of its own so
# the gcc build stays cached), then runs each TARGET (default: all) for N seconds (default
# 60) starting from its committed corpus (tests/fuzz/corpus/<target>) plus what earlier runs in
# DIR (default /tmp/apq-fuzz) found. Prints one line per target: executions, corpus size,
# findings. A finding (crash, failed property, leak, timeout, out-of-memory) is kept as
# DIR/<target>/<kind>-<hash>; copy it into the committed corpus once fixed, so that the
# target's test replays it. Exits 1 when any target had a finding.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
work=/tmp/apq-fuzz
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown flag $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ! [[ "${seconds}" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: --seconds must be a positive integer, not '${seconds}'" >&2
  exit 2
fi
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(sed -n 's/^    name = "\(.*_fuzz\)",$/\1/p' tests/fuzz/BUILD.bazel)
fi

# One output base per checkout (Bazel ties an output base to one workspace).
output_base="${HOME}/.cache/apq-bazel-fuzz-$(pwd | sha256sum | cut -c1-16)"
fuzz_bazel=(bazel "--output_base=${output_base}")
labels=()
for target in "${targets[@]}"; do labels+=("//tests/fuzz:${target}"); done
"${fuzz_bazel[@]}" build --config=fuzz --symlink_prefix=/ "${labels[@]}"
bin_dir="$("${fuzz_bazel[@]}" info --config=fuzz bazel-bin 2>/dev/null)"

printf '| target | seconds | executions | corpus inputs | findings |\n|---|---|---|---|---|\n'
failed=0
for target in "${targets[@]}"; do
  dir="${work}/${target}"
  mkdir -p "${dir}/corpus"
  log="${dir}/last_run.log"
  status=0
  dict_flags=()
  case "${target}" in
    ofa_yaml_table_fuzz) dict_flags=(-dict=tests/fuzz/dicts/yaml.dict) ;;
    measurement_csv_fuzz) dict_flags=(-dict=tests/fuzz/dicts/csv.dict) ;;
    rpc_token_fuzz) dict_flags=(-dict=tests/fuzz/dicts/tokens.dict) ;;
    *) dict_flags=(-dict=tests/fuzz/dicts/json.dict) ;;
  esac
  # Threads of the libraries stay at one: the machine has two cores and fuzzing is serial.
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    "${bin_dir}/tests/fuzz/${target}" -max_total_time="${seconds}" -timeout=10 \
    -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 -artifact_prefix="${dir}/" "${dict_flags[@]}" \
    "${dir}/corpus" "tests/fuzz/corpus/${target}" >"${log}" 2>&1 || status=$?
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -1)"
  inputs="$(find "${dir}/corpus" "tests/fuzz/corpus/${target}" -type f | wc -l)"
  findings="$(find "${dir}" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
    -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)"
  if [[ ${status} -ne 0 && ${findings} -eq 0 ]]; then findings="run failed (exit ${status}), see ${log}"; fi
  printf '| %s | %s | %s | %s | %s |\n' "${target}" "${seconds}" "${executions:-?}" "${inputs}" "${findings}"
  if [[ "${findings}" != "0" ]]; then failed=1; fi
done
exit "${failed}"
