#!/usr/bin/env bash
# The dashboard in a real browser: apqd with tokens on and its dashboard, a real Pareto
# search through the apq client, then dashboard_check.mjs drives headless Chromium over the
# pages. Needs Debian's chromium and node, and puppeteer-core installed beside package.json
# (scripts/setup.sh does both). Screenshots are kept as test outputs.
set -euo pipefail
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/dashboard.XXXXXX")"
out="${TEST_UNDECLARED_OUTPUTS_DIR:-${tmp}/outputs}"
# The package's node_modules sit beside its package.json in the source tree (the test runs
# unsandboxed: runfiles are links into it).
modules="$(dirname "$(readlink -f tests/browser/package.json)")/node_modules"
if [[ ! -d "${modules}/puppeteer-core" ]]; then
  echo "no puppeteer-core in ${modules}: run scripts/setup.sh" >&2
  exit 1
fi
command -v node >/dev/null || { echo "node is not installed: run scripts/setup.sh" >&2; exit 1; }
[[ -x /usr/bin/chromium ]] || { echo "/usr/bin/chromium is missing: run scripts/setup.sh" >&2; exit 1; }

# shellcheck source=tests/apqd_with_token.sh
source tests/apqd_with_token.sh
# The dashboard's port file is written before the gRPC one, so it exists once apqd serves.
start_apqd_with_token "${tmp}" --http_listen 127.0.0.1:0 --http_port_file "${tmp}/http_port"
token="${APQD_TOKEN}"

clients/apq --server "${APQD_ADDRESS}" --token "${token}" search \
  --space ofa_mbv3 --device note10 --max-latency-ms 25 --objective pareto --pareto-cost latency \
  --seed 3 --generations 10 --wait --json >"${tmp}/job.json"
job_id="$(sed -n 's/^ *"job_id": *"\(job-[0-9]*\)".*/\1/p' "${tmp}/job.json" | head -n 1)"
[[ -n "${job_id}" ]] || { echo "no job id in:" >&2; cat "${tmp}/job.json" >&2; exit 1; }

# One measurement run (a config, the first 200 validation images), for the measurements page.
clients/apq --server "${APQD_ADDRESS}" --token "${token}" measure --dataset browser \
  --space fmnist_mbv2 --count 1 --quantized --images 200 --workers 1 --wait >/dev/null

# A job whose label is HTML: the pages must show it as text.
html_label='<img src=x onerror="document.body.dataset.injected=1"><b>bold</b>'
clients/apq --server "${APQD_ADDRESS}" --token "${token}" search \
  --space ofa_mbv3 --device note10 --max-latency-ms 25 --generations 1 --label "${html_label}" \
  --wait --json >"${tmp}/html_job.json"
html_job="$(sed -n 's/^ *"job_id": *"\(job-[0-9]*\)".*/\1/p' "${tmp}/html_job.json" | head -n 1)"

HTML_LABEL="${html_label}" HTML_JOB_ID="${html_job}" DASHBOARD_URL="http://127.0.0.1:$(cat "${tmp}/http_port")" APQ_TOKEN="${token}" \
  JOB_ID="${job_id}" OUT_DIR="${out}" HOME="${tmp}" \
  node tests/browser/dashboard_check.mjs
