#!/usr/bin/env bash
# Do searched int8/float networks beat the best all-int8 and all-float ones on local-cpu, on
# measured accuracy at measured latency? The figure of issue 19, on fmnist_int8float (each
# searched layer W8A8 or float; the stem and the tail int8).
#
# Budgets: three latency budgets on local-cpu between the dearer of the two smallest networks
# (all-int8, all-float) and the cheaper of the two largest, at 1/4, 1/2 and 3/4 of the way, so
# that both uniform arms can meet each. For each budget x seed, the same engine (evolution, the
# service's defaults) runs three searches on local-cpu:
#   mixed   every layer int8 or float (what local-cpu runs), verifying its top 2K finalists;
#   int8    every searched layer int8 (--uniform-bits 8), verifying its top K;
#   float   every searched layer float (--uniform-bits 32), verifying its top K;
# and each arm's network is its verified best (the highest accuracy measured on the
# validation split among its finalists that meet the budget): the two uniform arms measure as
# many networks as the mixed one. Nothing here chooses by test images. Then
# bench/final_accuracy measures every chosen network on the 10,000 test images (from the
# supernet, no fine-tune) and compares mixed with each uniform arm (exact McNemar test and a
# paired bootstrap over the images), and bench/deployed_latency times every chosen network as
# it deploys (ExtractInt8Subnet: int8 layers on QNNPACK, float layers in float), all networks
# interleaved round by round. The report (OUT/results.md) puts predicted and measured side by
# side.
#
# Resumable: finished searches are kept in OUT/jobs and not run again; final_accuracy resumes
# from OUT/final.json.
#
# usage: bench/int8_float_budget_experiment.sh [--out DIR] [--seeds "1 2 3"] [--verify-top-k K]
#          [--fractions "0.25 0.5 0.75"] [--apqd PATH] [--apq PATH] [--final-accuracy PATH]
#          [--deployed-latency PATH] [--data DIR] [--search-args "ARGS"] [--threads N]
# Needs python3 (JSON and the report).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
apqd="${repo}/bazel-bin/server/apqd"
apq="${repo}/bazel-bin/clients/apq"
final_accuracy="${repo}/bazel-bin/bench/final_accuracy"
deployed_latency="${repo}/bazel-bin/bench/deployed_latency"
data_dir="${repo}/data"
search_args=""
out=/tmp/apq_int8_float_budgets
seeds="1 2 3"
verify_top_k=5
fractions="0.25 0.5 0.75"
threads=1
space=fmnist_int8float
device=local-cpu

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --verify-top-k) verify_top_k="$2"; shift 2 ;;
    --fractions) fractions="$2"; shift 2 ;;
    --apqd) apqd="$2"; shift 2 ;;
    --apq) apq="$2"; shift 2 ;;
    --final-accuracy) final_accuracy="$2"; shift 2 ;;
    --deployed-latency) deployed_latency="$2"; shift 2 ;;
    --data) data_dir="$2"; shift 2 ;;
    --search-args) search_args="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
for binary in "${apqd}" "${apq}" "${final_accuracy}" "${deployed_latency}"; do
  [[ -x "${binary}" ]] || { echo "not an executable: ${binary}" >&2; exit 1; }
done
checkpoint="${data_dir}/${space}/supernet_quant.pt"
[[ -f "${checkpoint}" ]] || { echo "no supernet weights at ${checkpoint}" >&2; exit 1; }
[[ "${verify_top_k}" =~ ^[0-9]+$ && "${verify_top_k}" -ge 1 && "${verify_top_k}" -le 25 ]] ||
  { echo "--verify-top-k: 1 to 25, got ${verify_top_k}" >&2; exit 2; }
for value in ${fractions}; do
  python3 -c 'import sys; f = float(sys.argv[1]); sys.exit(0 if 0 < f < 1 else 1)' "${value}" ||
    { echo "--fractions: each strictly between 0 and 1, got ${value}" >&2; exit 2; }
done
mkdir -p "${out}/jobs"
out="$(cd "${out}" && pwd)"

# A fresh database per run: the results that matter are the saved job JSON files.
rm -f "${out}"/apq.db "${out}"/apq.db-wal "${out}"/apq.db-shm
# shellcheck source=scripts/apqd_lib.sh
source "${repo}/scripts/apqd_lib.sh"
start_apqd "${apqd}" "${out}/apq.db" "${data_dir}" "${out}/apqd.port" "${out}/apqd.log"
export APQ_SERVER="${APQD_ADDRESS}"
echo "apqd on ${APQ_SERVER}" >&2

# The smallest and the largest architecture, all-int8 and all-float: their table latencies
# set the budgets.
python3 - "${out}" <<'EOF'
import json, os, sys
out = sys.argv[1]
def policy(bits):
    return {key: [bits] * 12 for key in ("pw_w_bits_setting", "pw_a_bits_setting",
                                         "dw_w_bits_setting", "dw_a_bits_setting")}
def uniform(depth, kernel, expand):
    return {"wid": None, "ks": [kernel] * 12, "e": [expand] * 12, "d": [depth] * 3}
references = [[uniform(2, 3, 3), policy(8)], [uniform(2, 3, 3), policy(32)],
              [uniform(4, 7, 6), policy(8)], [uniform(4, 7, 6), policy(32)]]
json.dump(references, open(os.path.join(out, "references.json"), "w"))
EOF
"${apq}" evaluate --space "${space}" --device "${device}" --configs "${out}/references.json" \
  --json >"${out}/references.${device}.json"
python3 - "${out}" "${fractions}" <<'EOF'
import json, os, sys
out, fractions = sys.argv[1], [float(f) for f in sys.argv[2].split()]
ms = [r["latency_ms"] for r in json.load(open(os.path.join(out, "references.local-cpu.json")))["results"]]
low, high = max(ms[0], ms[1]), min(ms[2], ms[3])
if not low < high:
    sys.exit(f"no budget between the smallest ({low} ms) and the largest ({high} ms) networks")
budgets = {f"{f:g}": low + f * (high - low) for f in fractions}
json.dump({"references_ms": ms, "low_ms": low, "high_ms": high, "budgets_ms": budgets},
          open(os.path.join(out, "budgets.json"), "w"), indent=1)
print(f"budgets (ms): {budgets}", file=sys.stderr)
EOF

budget_of() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["budgets_ms"][sys.argv[2]])' \
    "${out}/budgets.json" "$1"
}

# search TAG TOP_K ARGS...: one search verifying its TOP_K best, its JSON in jobs/TAG.json
# (kept: not run again).
search() {
  local tag="$1" top_k="$2"
  shift 2
  local extra=()
  read -r -a extra <<<"${search_args}"
  run_search_job "${apq}" "${out}/jobs/${tag}.json" --space "${space}" --device "${device}" \
    "$@" "${extra[@]}" --verify-top-k "${top_k}"
}

for fraction in ${fractions}; do
  budget="$(budget_of "$(python3 -c 'import sys; print(f"{float(sys.argv[1]):g}")' "${fraction}")")"
  for seed in ${seeds}; do
    tag="budget${fraction}_s${seed}"
    search "${tag}_mixed" $(( 2 * verify_top_k )) --max-latency-ms "${budget}" --seed "${seed}"
    search "${tag}_int8" "${verify_top_k}" --max-latency-ms "${budget}" --seed "${seed}" \
      --uniform-bits 8
    search "${tag}_float" "${verify_top_k}" --max-latency-ms "${budget}" --seed "${seed}" \
      --uniform-bits 32
  done
done

# The chosen networks (by validation measurements only) and the pairs to compare.
python3 - "${out}" "${fractions}" "${seeds}" <<'EOF'
import json, os, sys
out = sys.argv[1]
fractions, seeds = sys.argv[2].split(), sys.argv[3].split()
budgets = json.load(open(os.path.join(out, "budgets.json")))["budgets_ms"]
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None
networks, pairs, cases = [], [], []
for fraction in fractions:
    for seed in seeds:
        tag = f"budget{fraction}_s{seed}"
        jobs = {arm: load(os.path.join(out, "jobs", f"{tag}_{arm}.json"))
                for arm in ("mixed", "int8", "float")}
        if any(not job or job.get("state") != "SUCCEEDED" for job in jobs.values()):
            print(f"{tag}: a search did not succeed; left out", file=sys.stderr)
            continue
        record = {"case": tag, "fraction": float(fraction), "seed": int(seed),
                  "budget_ms": budgets[f"{float(fraction):g}"], "arms": {}}
        for arm, job in jobs.items():
            name = f"{tag}/{arm}"
            networks.append({"name": name, "config": job["best_config"]})
            record["arms"][arm] = {"name": name, "config": job["best_config"],
                                   "predicted": job.get("accuracy"),
                                   "validation": job.get("measured_accuracy"),
                                   "latency_ms": job.get("latency_ms")}
        pairs += [f"{tag}/mixed:{tag}/int8", f"{tag}/mixed:{tag}/float"]
        cases.append(record)
json.dump(networks, open(os.path.join(out, "networks.json"), "w"), indent=1)
json.dump(cases, open(os.path.join(out, "cases.json"), "w"), indent=1)
open(os.path.join(out, "pairs.txt"), "w").write(",".join(pairs))
print(f"{len(cases)} cases, {len(networks)} networks", file=sys.stderr)
EOF

# Stop the server before the measurements: they need the cores.
stop_apqd

OMP_NUM_THREADS="${threads}" "${final_accuracy}" --space "${space}" --checkpoint "${checkpoint}" \
  --networks "${out}/networks.json" --out "${out}/final.json" --split test \
  --finetune_steps 0 --compare "$(cat "${out}/pairs.txt")" --threads "${threads}" \
  >"${out}/final.md"
OMP_NUM_THREADS=1 "${deployed_latency}" --space "${space}" --checkpoint "${checkpoint}" \
  --networks "${out}/networks.json" --engine qnnpack --threads 1 >"${out}/latency.tsv"

python3 - "${out}" <<'EOF' | tee "${out}/results.md"
import csv, json, os, sys
out = sys.argv[1]
cases = json.load(open(os.path.join(out, "cases.json")))
final = json.load(open(os.path.join(out, "final.json")))
with open(os.path.join(out, "latency.tsv")) as f:
    measured_ms = {row["name"]: float(row["median_ms"]) for row in csv.DictReader(f, delimiter="\t")}
comparisons = {(c["first"], c["second"]): c for c in final["comparisons"]}
def test_accuracy(name):
    return final["evaluated"][final["networks"][name]]["supernet"]["accuracy"]
def pct(value):
    return "-" if value is None else f"{100 * value:.2f}"
def layers_in_float(config):
    policy = config[1]
    depths = config[0]["d"]
    used = [i for s, d in enumerate(depths) for i in range(4 * s, 4 * s + d)]
    return sum(policy[g][i] == 32 for g in ("pw_w_bits_setting", "dw_w_bits_setting") for i in used), 2 * len(used)

print("# Mixed int8/float against all-int8 and all-float on local-cpu (fmnist_int8float)\n")
print(f"{len(cases)} cases (budget x seed). Each arm's network: its verified best (validation "
      "split). Test accuracy from the supernet (fake-quantized; the int8 module computes the "
      "same function). Latency: the table's prediction and the deployed module measured "
      "(batch 1, QNNPACK, 1 thread, networks interleaved).\n")
print("| case | budget (ms) | arm | float layers | predicted acc | validation | test | table ms | measured ms | measured within budget |")
print("|---|---|---|---|---|---|---|---|---|---|")
for case in cases:
    for arm, chosen in case["arms"].items():
        floats, layers = layers_in_float(chosen["config"])
        m = measured_ms[chosen["name"]]
        print(f"| {case['case']} | {case['budget_ms']:.3f} | {arm} | {floats}/{layers} | "
              f"{pct(chosen['predicted'])} | {pct(chosen['validation'])} | "
              f"{pct(test_accuracy(chosen['name']))} | {chosen['latency_ms']:.3f} | {m:.3f} | "
              f"{'yes' if m <= case['budget_ms'] else 'no'} |")
print("\n## Mixed minus each uniform arm, paired over the 10,000 test images\n")
print("| case | against | difference (points) | 95% interval | McNemar p | verdict |")
print("|---|---|---|---|---|---|")
tally = {}
for case in cases:
    for other in ("int8", "float"):
        c = comparisons[(f"{case['case']}/mixed", f"{case['case']}/{other}")]["supernet"]
        significant = c["mcnemar_p"] < 0.05
        verdict = ("mixed better" if significant and c["difference"] > 0 else
                   f"{other} better" if significant else "no difference")
        tally.setdefault(other, {}).setdefault(verdict, 0)
        tally[other][verdict] += 1
        p = "< 0.0001" if c["mcnemar_p"] < 1e-4 else f"{c['mcnemar_p']:.4f}"
        print(f"| {case['case']} | {other} | {100 * c['difference']:+.2f} | "
              f"[{100 * c['bootstrap_low']:+.2f}, {100 * c['bootstrap_high']:+.2f}] | {p} | {verdict} |")
print("\n## Tally (p < 0.05)\n")
for other, counts in tally.items():
    print(f"- against {other}: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
EOF
