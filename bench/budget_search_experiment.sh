#!/usr/bin/env bash
# Issue 5 end to end: on fmnist_mbv2 priced on bitfusion, does the mixed-precision search beat
# the best uniform-precision baseline (8, 6 or 4 bits everywhere) at the same latency budget,
# by the accuracy measured on the supernet rather than the predicted one?
#
# For each budget: one mixed-precision search and the three uniform baselines (same seed, the
# engine's default settings), then each job's best subnet exported as TorchScript, which also
# measures its quantized test accuracy. Prints a markdown table (also OUT/results.md).
#
# With --predictor-kind K (transfer, scratch, xgboost or ensemble), the searches use a
# predictor of that kind trained first by the service on the shipped measurements (seed N),
# instead of the shipped predictor.
#
# usage: bench/budget_search_experiment.sh [--apqd PATH] [--apq PATH] [--out DIR]
#                                          [--budgets "ms,ms,..."] [--seed N]
#                                          [--predictor-kind K]
# Needs python3 (JSON parsing and the report).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
apqd="${repo}/bazel-bin/server/apqd"
apq="${repo}/bazel-bin/clients/apq"
out=/tmp/apq_budget_experiment
# About 25 %, 50 % and 75 % of the way from the cheapest subnet (0.082 ms: depth 2, kernel 3,
# expand 3, 4 bits) to the dearest (0.901 ms: depth 4, kernel 7, expand 6, 8 bits) on the
# modelled BitFusion; the script re-measures and prints that range on every run.
budgets="0.29,0.49,0.70"
seed=1
predictor_kind=""
space=fmnist_mbv2
device=bitfusion

while [[ $# -gt 0 ]]; do
  case "$1" in
    --apqd) apqd="$2"; shift 2 ;;
    --apq) apq="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --budgets) budgets="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --predictor-kind) predictor_kind="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
for binary in "${apqd}" "${apq}"; do
  [[ -x "${binary}" ]] || { echo "not an executable: ${binary}" >&2; exit 1; }
done
# Absolute paths: the exports are written by the client, the configs read by it.
mkdir -p "${out}/jobs"
out="$(cd "${out}" && pwd)"

# A fresh database, so job ids and results never mix with an earlier run.
rm -f "${out}"/apq.db "${out}"/apq.db-wal "${out}"/apq.db-shm "${out}"/apqd.port
rm -f "${out}"/jobs/* "${out}"/runs.tsv "${out}"/range.json "${out}"/results.md \
  "${out}"/predictor.json

# shellcheck source=scripts/apqd_lib.sh
source "${repo}/scripts/apqd_lib.sh"
start_apqd "${apqd}" "${out}/apq.db" "${repo}/data" "${out}/apqd.port" "${out}/apqd.log"
export APQ_SERVER="${APQD_ADDRESS}"
echo "apqd on ${APQ_SERVER}, database ${out}/apq.db" >&2

now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' "$1" "$2"; }
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2"; }

# The latency range of the space: its smallest and largest subnets in the reference arch
# format (12 block slots, 3 stages of depth 2..4, kernels {3,5,7}, expand 3..6, bits {4,6,8}),
# so the budgets can be read as fractions of it.
python3 - "${out}/range_configs.json" <<'EOF'
import json, sys
def config(depth, kernel, expand, bits):
    arch = {"wid": None, "ks": [kernel] * 12, "e": [expand] * 12, "d": [depth] * 3}
    policy = {key: [bits] * 12 for key in ("pw_w_bits_setting", "pw_a_bits_setting",
                                           "dw_w_bits_setting", "dw_a_bits_setting")}
    return [arch, policy]
json.dump([config(2, 3, 3, 4), config(4, 7, 6, 8), config(4, 7, 6, 4)], open(sys.argv[1], "w"))
EOF
"${apq}" evaluate --space "${space}" --device "${device}" --configs "${out}/range_configs.json" \
  --json >"${out}/range.json"

if [[ -n "${predictor_kind}" ]]; then
  echo "training a ${predictor_kind} predictor on the shipped measurements" >&2
  "${apq}" train --space "${space}" --dataset "${space}-supernet-v1" --kind "${predictor_kind}" \
    --seed "${seed}" --make-default --wait --json >"${out}/predictor.json"
fi

printf 'budget_ms\tmethod\tsearch_json\tsearch_s\texport_json\texport_s\n' >"${out}/runs.tsv"
IFS=',' read -r -a budget_list <<<"${budgets}"
for budget in "${budget_list[@]}"; do
  for bits in mixed 8 6 4; do
    tag="b${budget}_${bits}"
    search_json="${out}/jobs/${tag}.search.json"
    uniform=()
    if [[ "${bits}" != mixed ]]; then uniform=(--uniform-bits "${bits}"); fi
    echo "search: budget ${budget} ms, ${bits}" >&2
    start="$(now)"
    # A job that finds no feasible subnet exits non-zero: record it and go on.
    "${apq}" search --space "${space}" --device "${device}" --max-latency-ms "${budget}" \
      --seed "${seed}" "${uniform[@]}" --wait --json >"${search_json}" \
      2>"${out}/jobs/${tag}.search.err" || true
    search_s="$(elapsed "${start}" "$(now)")"
    export_json="${out}/jobs/${tag}.export.json"
    export_s=""
    job="$(json_field "${search_json}" job_id 2>/dev/null || true)"
    state="$(json_field "${search_json}" state 2>/dev/null || true)"
    if [[ -n "${job}" && "${state}" == SUCCEEDED ]]; then
      start="$(now)"
      "${apq}" config "${job}" --torchscript "${out}/jobs/${job}.pt" --json >"${export_json}" \
        2>"${out}/jobs/${tag}.export.err" || echo "export of ${job} failed" >&2
      export_s="$(elapsed "${start}" "$(now)")"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${budget}" "${bits}" "${search_json}" "${search_s}" \
      "${export_json}" "${export_s}" >>"${out}/runs.tsv"
  done
done

# The report: everything is read back from the saved JSON, nothing is typed in.
python3 - "${out}" "${seed}" <<'EOF' | tee "${out}/results.md"
import csv, json, os, sys
out, seed = sys.argv[1], sys.argv[2]

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

smallest, largest, largest4 = load(os.path.join(out, "range.json"))["results"]
low, high = smallest["latency_ms"], largest["latency_ms"]
print("# Mixed vs uniform precision under a latency budget (fmnist_mbv2 on bitfusion)\n")
print(f"Latency range of the space (modelled BitFusion): smallest subnet at 4 bits "
      f"{low:.4f} ms, largest at 8 bits {high:.4f} ms; the largest at 4 bits "
      f"{largest4['latency_ms']:.4f} ms (the most a uniform 4-bit subnet can use). "
      f"Seed {seed}, the engine's default settings.\n")
trained = load(os.path.join(out, "predictor.json"))
if trained:
    m = trained["metrics"]
    print(f"Predictor: {trained['kind']} ({trained['predictor_version']}), trained by the service "
          f"on the shipped measurements; on its {m['heldout_records']} held-out quantized records "
          f"RMSE {100 * m['rmse']:.2f} points, Kendall tau {m['kendall_tau']:.3f}.\n")
else:
    print("Predictor: the shipped one (data/fmnist_mbv2/qa_predictor).\n")

rows = []
for run in csv.DictReader(open(os.path.join(out, "runs.tsv")), delimiter="\t"):
    search, export = load(run["search_json"]), load(run["export_json"])
    row = {"budget": float(run["budget_ms"]), "budget_text": run["budget_ms"],
           "method": "mixed" if run["method"] == "mixed" else f"uniform {run['method']}",
           "job": (search or {}).get("job_id", "-"),
           "state": (search or {}).get("state", "no job"),
           "search_s": run["search_s"], "export_s": run["export_s"] or "-"}
    if search and search.get("state") == "SUCCEEDED":
        row.update(predicted=search.get("accuracy"), latency=search.get("latency_ms"),
                   energy=search.get("energy_mj"), size=search.get("size_mb"),
                   bitops=search.get("bitops"), server_s=search.get("elapsed_s"))
    if export:
        row["measured"] = export.get("torchscript_accuracy")
    rows.append(row)

def fmt(value, spec):
    return "-" if value is None else format(value, spec)

print("| budget ms (% of range) | method | job | predicted acc | measured acc | latency ms "
      "(% of budget) | energy mJ | size MB | BitOps (M) | search s | export s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    where = 100 * (r["budget"] - low) / (high - low)
    used = "-" if r.get("latency") is None else f"{r['latency']:.4f} ({100 * r['latency'] / r['budget']:.0f} %)"
    job = r["job"] if r["state"] == "SUCCEEDED" else f"{r['job']} ({r['state']})"
    bitops = None if r.get("bitops") is None else r["bitops"] / 1e6
    print(f"| {r['budget_text']} ({where:.0f} %) | {r['method']} | {job} | {fmt(r.get('predicted'), '.4f')} "
          f"| {fmt(r.get('measured'), '.4f')} | {used} | {fmt(r.get('energy'), '.4f')} "
          f"| {fmt(r.get('size'), '.4f')} | {fmt(bitops, '.1f')} | {r['search_s']} | {r['export_s']} |")

print("\n## Mixed precision against the best uniform baseline (by measured accuracy)\n")
print("| budget ms | mixed measured | best uniform | its measured | difference (points) "
      "| same comparison by predicted accuracy (points) |")
print("|---|---|---|---|---|---|")
for budget in dict.fromkeys(r["budget_text"] for r in rows):  # in the order given
    group = [r for r in rows if r["budget_text"] == budget]
    mixed = next((r for r in group if r["method"] == "mixed" and r.get("measured") is not None), None)
    uniform = [r for r in group if r["method"] != "mixed" and r.get("measured") is not None]
    if mixed is None or not uniform:
        print(f"| {budget} | {fmt(mixed and mixed['measured'], '.4f')} | - | - | - | - |")
        continue
    best = max(uniform, key=lambda r: r["measured"])
    best_predicted = max(r["predicted"] for r in uniform)
    print(f"| {budget} | {mixed['measured']:.4f} | {best['method']} | {best['measured']:.4f} "
          f"| {100 * (mixed['measured'] - best['measured']):+.2f} "
          f"| {100 * (mixed['predicted'] - best_predicted):+.2f} |")
EOF
