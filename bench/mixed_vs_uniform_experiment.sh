#!/usr/bin/env bash
# Does searched mixed precision beat the best uniform precision at the same budget, on
# held-out test images? The experiment of issue 12, on fmnist_lowbit (bits {2,3,4,6,8}).
#
# Budgets: the uniform 3-bit and 4-bit costs of the largest architecture, in BitOps (searched on
# bitfusion with --max-bitops: local-cpu runs only W8A8 since issue 19) and in BitFusion latency (--max-latency-ms; below 4 bits the
# service prices BitFusion with its analytic model fitted to APQ's table, flagged `modelled`:
# an extrapolation, not a measurement of the chip). Regimes:
#   bits   the largest architecture held fixed, bits searched alone (--fixed-architecture);
#   joint  architecture and bits searched together.
# For each regime x budget x seed, the same engine (evolution, the service's defaults) runs:
#   mixed          one search with bits free and finalist verification: its predicted best is
#                  the "predictor only" network, its measured best (on the validation split)
#                  the "verified" one; it verifies K x (the number of uniform searches) finalists,
#                  at most 50, so both sides measure as many networks;
#   uniform B      one search per bitwidth B with every layer at B (--uniform-bits), each
#                  verifying its top K (--verify-top-k K); the best uniform policy is the B
#                  whose predicted best is predicted highest ("predictor only") or whose
#                  verified best measured highest ("verified"). Bitwidths whose cheapest
#                  network breaks the budget are skipped.
# Nothing here chooses by test images. Then bench/final_accuracy measures every chosen network
# on the 10,000 test images, from the supernet and after the same short quantization-aware
# fine-tune (--finetune-steps), and compares mixed against uniform per case (exact McNemar
# test and a paired bootstrap over the test images). The report (OUT/results.md) also gives
# each winner's optimism gap: predicted minus validation-measured accuracy.
#
# Resumable: finished searches are kept in OUT/jobs and not run again; final_accuracy resumes
# from OUT/final.json.
#
# usage: bench/mixed_vs_uniform_experiment.sh [--out DIR] [--seeds "1 2 3"] [--verify-top-k K]
#          [--finetune-steps N] [--regimes "bits joint"] [--budgets "bitops bitfusion"]
#          [--levels "3 4"] [--apqd PATH] [--apq PATH] [--final-accuracy PATH]
#          [--checkpoint PATH] [--data DIR] [--search-args "ARGS"] [--threads N]
#          [--architecture FILE] [--searches-only]
# --data is the apqd data folder (default: the repository's data/); --search-args are passed to
# every search (e.g. "--population 20 --generations 10" for a quick run of the plumbing).
# --architecture FILE (bits regime only): a config [architecture, policy] whose architecture
# replaces the largest one, both as the fixed architecture and as the one whose uniform costs
# set the budgets (the policy is ignored). --searches-only stops after the searches (their
# jobs are the evolution and uniform arms of bench/allocation_comparison.sh).
# Needs python3 (JSON and the report).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
apqd="${repo}/bazel-bin/server/apqd"
apq="${repo}/bazel-bin/clients/apq"
final_accuracy="${repo}/bazel-bin/bench/final_accuracy"
data_dir="${repo}/data"
checkpoint=""
search_args=""
out=/tmp/apq_mixed_vs_uniform
seeds="1 2 3"
verify_top_k=5
finetune_steps=100
regimes="bits joint"
budget_kinds="bitops bitfusion"
levels="3 4"
threads=1
space=fmnist_lowbit
architecture=""
searches_only=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --verify-top-k) verify_top_k="$2"; shift 2 ;;
    --finetune-steps) finetune_steps="$2"; shift 2 ;;
    --regimes) regimes="$2"; shift 2 ;;
    --budgets) budget_kinds="$2"; shift 2 ;;
    --levels) levels="$2"; shift 2 ;;
    --apqd) apqd="$2"; shift 2 ;;
    --apq) apq="$2"; shift 2 ;;
    --final-accuracy) final_accuracy="$2"; shift 2 ;;
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --data) data_dir="$2"; shift 2 ;;
    --search-args) search_args="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --architecture) architecture="$2"; shift 2 ;;
    --searches-only) searches_only=1; shift ;;
    -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
for binary in "${apqd}" "${apq}" "${final_accuracy}"; do
  [[ -x "${binary}" ]] || { echo "not an executable: ${binary}" >&2; exit 1; }
done
checkpoint="${checkpoint:-${data_dir}/fmnist_lowbit/supernet_quant.pt}"
[[ -f "${checkpoint}" ]] || { echo "no supernet weights at ${checkpoint}" >&2; exit 1; }
for value in ${regimes}; do
  [[ "${value}" == bits || "${value}" == joint ]] || { echo "--regimes: bits or joint, got ${value}" >&2; exit 2; }
done
for value in ${budget_kinds}; do
  [[ "${value}" == bitops || "${value}" == bitfusion ]] || { echo "--budgets: bitops or bitfusion, got ${value}" >&2; exit 2; }
done
for value in ${levels}; do
  [[ "${value}" == 3 || "${value}" == 4 ]] || { echo "--levels: 3 or 4, got ${value}" >&2; exit 2; }
done
[[ "${verify_top_k}" =~ ^[0-9]+$ && "${verify_top_k}" -ge 1 && "${verify_top_k}" -le 50 ]] ||
  { echo "--verify-top-k: 1 to 50, got ${verify_top_k}" >&2; exit 2; }
[[ "${finetune_steps}" =~ ^[0-9]+$ ]] || { echo "--finetune-steps: a count, got ${finetune_steps}" >&2; exit 2; }
if [[ -n "${architecture}" ]]; then
  [[ "${regimes}" == bits ]] || { echo "--architecture: only with --regimes bits" >&2; exit 2; }
  [[ -f "${architecture}" ]] || { echo "--architecture: no file ${architecture}" >&2; exit 1; }
  architecture="$(cd "$(dirname "${architecture}")" && pwd)/$(basename "${architecture}")"
fi
mkdir -p "${out}/jobs"
out="$(cd "${out}" && pwd)"

# A fresh database per run: the results that matter are the saved job JSON files.
rm -f "${out}"/apq.db "${out}"/apq.db-wal "${out}"/apq.db-shm
# shellcheck source=scripts/apqd_lib.sh
source "${repo}/scripts/apqd_lib.sh"
start_apqd "${apqd}" "${out}/apq.db" "${data_dir}" "${out}/apqd.port" "${out}/apqd.log"
export APQ_SERVER="${APQD_ADDRESS}"
echo "apqd on ${APQ_SERVER}" >&2

# The budgets' architecture (the largest one, or --architecture's) and the reference networks
# whose costs set the budgets and the cheapest network of each bitwidth (to skip uniform
# searches that cannot meet a budget).
python3 - "${out}" "${architecture}" <<'EOF'
import json, os, sys
out, given = sys.argv[1], sys.argv[2]
def policy(bits):
    return {key: [bits] * 12 for key in ("pw_w_bits_setting", "pw_a_bits_setting",
                                         "dw_w_bits_setting", "dw_a_bits_setting")}
def uniform(depth, kernel, expand):
    return {"wid": None, "ks": [kernel] * 12, "e": [expand] * 12, "d": [depth] * 3}
fixed = json.load(open(given))[0] if given else uniform(4, 7, 6)
bits = [2, 3, 4, 6, 8]
json.dump([fixed, policy(8)], open(os.path.join(out, "architecture.json"), "w"))
references = ([[fixed, policy(b)] for b in bits] +
              [[uniform(2, 3, 3), policy(b)] for b in bits])
json.dump(references, open(os.path.join(out, "references.json"), "w"))
EOF
# local-cpu runs W8A8 or float only; BitOps are the same on every device.
for device in bitfusion; do
  "${apq}" evaluate --space "${space}" --device "${device}" --configs "${out}/references.json" \
    --json >"${out}/references.${device}.json"
done

# budget KIND LEVEL: the flag and value of that budget.
budget_args() {
  python3 - "${out}" "$1" "$2" <<'EOF'
import json, os, sys
out, kind, level = sys.argv[1], sys.argv[2], int(sys.argv[3])
index = [2, 3, 4, 6, 8].index(level)  # The budgets' architecture at `level` bits.
if kind == "bitops":
    result = json.load(open(os.path.join(out, "references.bitfusion.json")))["results"][index]
    print(f"--device bitfusion --max-bitops {int(result['bitops'])}")
else:
    result = json.load(open(os.path.join(out, "references.bitfusion.json")))["results"][index]
    print(f"--device bitfusion --max-latency-ms {result['latency_ms']!r}")
EOF
}

# feasible REGIME KIND LEVEL BITS: whether the cheapest network at uniform BITS meets the budget.
feasible() {
  python3 - "${out}" "$@" <<'EOF'
import json, os, sys
out, regime, kind, level, bits = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
order = [2, 3, 4, 6, 8]
device = "bitfusion"
results = json.load(open(os.path.join(out, f"references.{device}.json")))["results"]
metric = "bitops" if kind == "bitops" else "latency_ms"
budget = results[order.index(level)][metric]
# The fixed architecture in the bits regime; the smallest one in the joint regime.
cheapest = results[order.index(bits) + (0 if regime == "bits" else len(order))][metric]
sys.exit(0 if cheapest <= budget * (1 + 1e-12) else 1)
EOF
}

# search TAG TOP_K ARGS...: one search verifying its TOP_K best, its JSON in jobs/TAG.json
# (kept: not run again).
search() {
  local tag="$1" top_k="$2"
  shift 2
  local extra=()
  read -r -a extra <<<"${search_args}"
  run_search_job "${apq}" "${out}/jobs/${tag}.json" --space "${space}" "$@" "${extra[@]}" \
    --verify-top-k "${top_k}"
}

for regime in ${regimes}; do
  fixed=()
  if [[ "${regime}" == bits ]]; then fixed=(--fixed-architecture "${out}/architecture.json"); fi
  for kind in ${budget_kinds}; do
    for level in ${levels}; do
      read -r -a budget <<<"$(budget_args "${kind}" "${level}")"
      for seed in ${seeds}; do
        case_tag="${regime}_${kind}_${level}bit_s${seed}"
        uniform_bits=()
        for bits in 2 3 4 6 8; do
          if feasible "${regime}" "${kind}" "${level}" "${bits}"; then uniform_bits+=("${bits}"); fi
        done
        # The same measurement budget on both sides: the uniform side verifies top K of each
        # bitwidth's search, the mixed search verifies K per uniform search (at most 50).
        mixed_top_k=$(( verify_top_k * ${#uniform_bits[@]} ))
        (( mixed_top_k > 50 )) && mixed_top_k=50
        (( mixed_top_k < verify_top_k )) && mixed_top_k="${verify_top_k}"
        search "${case_tag}_mixed" "${mixed_top_k}" "${budget[@]}" "${fixed[@]}" --seed "${seed}"
        for bits in "${uniform_bits[@]}"; do
          search "${case_tag}_uniform${bits}" "${verify_top_k}" "${budget[@]}" "${fixed[@]}" \
            --seed "${seed}" --uniform-bits "${bits}"
        done
      done
    done
  done
done

# The chosen networks of every case and the pairs to compare (chosen by predictions and
# validation measurements only).
python3 - "${out}" "${regimes}" "${budget_kinds}" "${levels}" "${seeds}" <<'EOF'
import json, os, sys
out = sys.argv[1]
regimes, kinds, levels, seeds = (value.split() for value in sys.argv[2:6])
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None
networks, pairs, cases = [], [], []
for regime in regimes:
    for kind in kinds:
        for level in levels:
            for seed in seeds:
                tag = f"{regime}_{kind}_{level}bit_s{seed}"
                mixed = load(os.path.join(out, "jobs", f"{tag}_mixed.json"))
                if not mixed or mixed.get("state") != "SUCCEEDED":
                    continue
                uniform = {}
                for bits in (2, 3, 4, 6, 8):
                    job = load(os.path.join(out, "jobs", f"{tag}_uniform{bits}.json"))
                    if job and job.get("state") == "SUCCEEDED":
                        uniform[bits] = job
                if not uniform:
                    continue
                def predicted_best(job):
                    return job.get("predicted_best") or dict(
                        job, config=job["best_config"])
                def verified_best(job):
                    return dict(job, config=job["best_config"])
                arms = {
                    "mixed_predicted": predicted_best(mixed),
                    "mixed_verified": verified_best(mixed),
                }
                bits_p = max(uniform, key=lambda b: predicted_best(uniform[b])["accuracy"])
                bits_v = max(uniform, key=lambda b: verified_best(uniform[b])["measured_accuracy"])
                arms["uniform_predicted"] = dict(predicted_best(uniform[bits_p]), bits=bits_p)
                arms["uniform_verified"] = dict(verified_best(uniform[bits_v]), bits=bits_v)
                record = {"case": tag, "regime": regime, "kind": kind, "level": int(level),
                          "seed": int(seed), "arms": {}}
                for arm, chosen in arms.items():
                    name = f"{tag}/{arm}"
                    networks.append({"name": name, "config": chosen["config"]})
                    record["arms"][arm] = {
                        "name": name, "config": chosen["config"],
                        "predicted": chosen.get("accuracy"),
                        "validation": chosen.get("measured_accuracy"),
                        "bitops": chosen.get("bitops"), "latency_ms": chosen.get("latency_ms"),
                        "uniform_bits": chosen.get("bits")}
                pairs.append(f"{tag}/mixed_predicted:{tag}/uniform_predicted")
                pairs.append(f"{tag}/mixed_verified:{tag}/uniform_verified")
                cases.append(record)
json.dump(networks, open(os.path.join(out, "networks.json"), "w"), indent=1)
json.dump(cases, open(os.path.join(out, "cases.json"), "w"), indent=1)
open(os.path.join(out, "pairs.txt"), "w").write(",".join(pairs))
print(f"{len(cases)} cases, {len(networks)} networks", file=sys.stderr)
EOF

# Stop the server before the long final measurements: they need the cores.
stop_apqd
if [[ "${searches_only}" == 1 ]]; then exit 0; fi

OMP_NUM_THREADS="${threads}" "${final_accuracy}" --space "${space}" --checkpoint "${checkpoint}" \
  --networks "${out}/networks.json" --out "${out}/final.json" --split test \
  --finetune_steps "${finetune_steps}" --compare "$(cat "${out}/pairs.txt")" \
  --threads "${threads}" >"${out}/final.md"

python3 - "${out}" "${finetune_steps}" "${verify_top_k}" <<'EOF' | tee "${out}/results.md"
import json, os, sys
out, steps, top_k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cases = json.load(open(os.path.join(out, "cases.json")))
final = json.load(open(os.path.join(out, "final.json")))
stages = ["supernet"] + (["finetuned"] if steps > 0 else [])
def figures(name):
    return final["evaluated"][final["networks"][name]]
comparisons = {(c["first"], c["second"]): c for c in final["comparisons"]}
def pct(value):
    return "-" if value is None else f"{100 * value:.2f}"

print(f"# Mixed vs uniform precision on fmnist_lowbit, measured on test\n")
print(f"{len(cases)} cases (regime x budget x seed); finalists verified: top {top_k} on the "
      f"validation split; test accuracy from the supernet and after {steps} quantization-aware "
      f"fine-tune steps (batch 128) of each network alone.\n")
print("| case | arm | bits | predicted | validation | optimism gap | test (supernet) |"
      + (" test (fine-tuned) |" if steps > 0 else ""))
print("|---|---|---|---|---|---|---|" + ("---|" if steps > 0 else ""))
for case in cases:
    for arm, chosen in case["arms"].items():
        f = figures(chosen["name"])
        gap = (None if chosen["predicted"] is None or chosen["validation"] is None
               else chosen["predicted"] - chosen["validation"])
        bits = chosen["uniform_bits"] or "mixed"
        row = (f"| {case['case']} | {arm} | {bits} | {pct(chosen['predicted'])} | "
               f"{pct(chosen['validation'])} | {'-' if gap is None else f'{100 * gap:+.2f}'} | "
               f"{pct(f['supernet']['accuracy'])} |")
        if steps > 0:
            row += f" {pct(f['finetuned']['accuracy'])} |"
        print(row)

print("\n## Mixed minus best uniform, paired over the 10,000 test images\n")
print("| case | selection | stage | difference (points) | 95% interval | McNemar p | significant |")
print("|---|---|---|---|---|---|---|")
tally = {}
for case in cases:
    for selection in ("predicted", "verified"):
        first = f"{case['case']}/mixed_{selection}"
        second = f"{case['case']}/uniform_{selection}"
        c = comparisons[(first, second)]
        for stage in stages:
            s = c[stage]
            significant = s["mcnemar_p"] < 0.05
            verdict = ("mixed better" if significant and s["difference"] > 0 else
                       "uniform better" if significant else "no")
            key = (case["regime"], selection, stage)
            tally.setdefault(key, [0, 0, 0])
            tally[key][0 if verdict == "mixed better" else 1 if verdict == "no" else 2] += 1
            p = "< 0.0001" if s["mcnemar_p"] < 1e-4 else f"{s['mcnemar_p']:.4f}"
            print(f"| {case['case']} | {selection} | {stage} | {100 * s['difference']:+.2f} | "
                  f"[{100 * s['bootstrap_low']:+.2f}, {100 * s['bootstrap_high']:+.2f}] | {p} | "
                  f"{verdict} |")

print("\n## Tally (cases where mixed is significantly better / not different / significantly worse, p < 0.05)\n")
print("| regime | selection | stage | mixed better | no difference | uniform better |")
print("|---|---|---|---|---|---|")
for (regime, selection, stage), (better, same, worse) in sorted(tally.items()):
    print(f"| {regime} | {selection} | {stage} | {better} | {same} | {worse} |")

gaps = {}
for case in cases:
    for arm, chosen in case["arms"].items():
        if chosen["predicted"] is not None and chosen["validation"] is not None:
            gaps.setdefault(arm, []).append(chosen["predicted"] - chosen["validation"])
print("\n## Optimism gap of the winners (predicted minus validation-measured, points)\n")
print("| arm | networks | mean | max |")
print("|---|---|---|---|")
for arm, values in gaps.items():
    print(f"| {arm} | {len(values)} | {100 * sum(values) / len(values):+.2f} | {100 * max(values):+.2f} |")
EOF
