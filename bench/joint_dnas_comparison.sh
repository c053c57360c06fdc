#!/usr/bin/env bash
# dnas searching kernels, widths, depths and bits together (engine option
# architecture=searched) against evolution + predictor in the same joint space at equal
# BitFusion latency: the joint regime of the mixed-vs-uniform experiment (issue 12,
# bench/mixed_vs_uniform_experiment.sh), budgets at the largest fmnist_lowbit architecture's
# uniform 3-bit and 4-bit BitFusion latency. Per case and seed:
#   dnas       one search of the whole space (the budget's latency in the loss, floored at the
#              budget), seeds as --seeds; its most likely network, repaired if it misses;
#   evolution  that experiment's search of the same case and seed: its best after verifying
#              its finalists on the validation split (read from --baseline: jobs/*.json);
#   uniform    the best uniform precision of the case (seed 1's searches), chosen by the
#              validation accuracy of each bitwidth's verified best.
# Every network then gets the same short fine-tune from the supernet (bench/final_accuracy,
# --finetune-steps, batch 128) and is measured on the validation and the test split; dnas is
# compared with evolution of the same seed and with uniform (paired: exact McNemar, paired
# bootstrap). Nothing here chooses by test images. dnas steers its distributions on the
# validation split, so its validation figures are not held out; its test figures are.
#
# Resumable: the server's database (OUT/apq.db) keeps finished jobs; finished searches are kept
# in OUT/jobs; final_accuracy resumes from OUT/final.*.json (the test run is seeded with the
# baseline's test measurements of the same settings: only new networks are measured).
#
# usage: bench/joint_dnas_comparison.sh [--out DIR] [--seeds "1 2 3"] [--levels "3 4"]
#          [--dnas-options OPTS] [--finetune-steps N] [--baseline DIR]
#          [--splits "validation test"] [--workers N] [--apqd PATH] [--apq PATH]
#          [--final-accuracy PATH] [--data DIR] [--threads N]
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
apqd="${repo}/bazel-bin/server/apqd"
apq="${repo}/bazel-bin/clients/apq"
final_accuracy="${repo}/bazel-bin/bench/final_accuracy"
data_dir="${repo}/data"
baseline="${repo}/data/training/fmnist_lowbit/mixed_vs_uniform/joint_uniform_records"
out=/tmp/apq_joint_dnas_comparison
seeds="1 2 3"
levels="3 4"
finetune_steps=100
dnas_options="steps=150,report_every=50,warmup_steps=30,arch_lr=0.05"
splits="validation test"
workers=2
threads=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --levels) levels="$2"; shift 2 ;;
    --dnas-options) dnas_options="$2"; shift 2 ;;
    --finetune-steps) finetune_steps="$2"; shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --splits) splits="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --apqd) apqd="$2"; shift 2 ;;
    --apq) apq="$2"; shift 2 ;;
    --final-accuracy) final_accuracy="$2"; shift 2 ;;
    --data) data_dir="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
for binary in "${apqd}" "${apq}" "${final_accuracy}"; do
  [[ -x "${binary}" ]] || { echo "not an executable: ${binary}" >&2; exit 1; }
done
for value in ${levels}; do
  [[ "${value}" == 3 || "${value}" == 4 ]] || { echo "--levels: 3 or 4, got ${value}" >&2; exit 2; }
done
for value in ${seeds}; do
  [[ "${value}" =~ ^[0-9]+$ ]] || { echo "--seeds: integers, got ${value}" >&2; exit 2; }
done
for value in ${splits}; do
  [[ "${value}" == validation || "${value}" == test ]] || { echo "--splits: validation or test, got ${value}" >&2; exit 2; }
done
[[ "${finetune_steps}" =~ ^[0-9]+$ ]] || { echo "--finetune-steps: a count, got ${finetune_steps}" >&2; exit 2; }
[[ "${workers}" =~ ^[1-9][0-9]*$ ]] || { echo "--workers: a positive count, got ${workers}" >&2; exit 2; }
[[ -d "${baseline}/jobs" ]] || { echo "--baseline: no jobs/ in ${baseline}" >&2; exit 1; }
checkpoint="${data_dir}/fmnist_lowbit/supernet_quant.pt"
[[ -f "${checkpoint}" ]] || { echo "no supernet weights at ${checkpoint}" >&2; exit 1; }
mkdir -p "${out}/jobs"
out="$(cd "${out}" && pwd)"

# shellcheck source=scripts/apqd_lib.sh
source "${repo}/scripts/apqd_lib.sh"
# shellcheck source=bench/final_measurements_lib.sh
source "${repo}/bench/final_measurements_lib.sh"
APQD_EXTRA_FLAGS="--workers ${workers}"
start_apqd "${apqd}" "${out}/apq.db" "${data_dir}" "${out}/apqd.port" "${out}/apqd.log"
export APQ_SERVER="${APQD_ADDRESS}"
echo "apqd on ${APQ_SERVER}" >&2

# The budgets: the largest architecture at uniform 3 and 4 bits on BitFusion (as issue 12).
python3 - "${out}" <<'PY'
import json, os, sys
def config(bits):
    arch = {"wid": None, "ks": [7] * 12, "e": [6] * 12, "d": [4] * 3}
    policy = {key: [bits] * 12 for key in ("pw_w_bits_setting", "pw_a_bits_setting",
                                           "dw_w_bits_setting", "dw_a_bits_setting")}
    return [arch, policy]
json.dump([config(b) for b in (3, 4)], open(os.path.join(sys.argv[1], "uniform.json"), "w"))
PY
"${apq}" evaluate --space fmnist_lowbit --device bitfusion --configs "${out}/uniform.json" \
  --json >"${out}/uniform.bitfusion.json"
budget_of() {
  python3 -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))["results"][int(sys.argv[2]) - 3]["latency_ms"]))' \
    "${out}/uniform.bitfusion.json" "$1"
}

# search TAG ARGS...: one search in the background, its JSON in jobs/TAG.json (kept: not run
# again); the server runs `workers` at a time.
search_pids=()
search() {
  local tag="$1"
  shift
  run_search_job "${apq}" "${out}/jobs/${tag}.json" --space fmnist_lowbit --device bitfusion \
    "$@" &
  search_pids+=("$!")
}

for level in ${levels}; do
  budget="$(budget_of "${level}")"
  for seed in ${seeds}; do
    search "joint_bitfusion_${level}bit_dnas_s${seed}" --max-latency-ms "${budget}" \
      --seed "${seed}" --engine dnas --options "${dnas_options},architecture=searched"
  done
done
if [[ ${#search_pids[@]} -gt 0 ]]; then wait "${search_pids[@]}"; fi
# The searches' reports (repaired or not, depths lowered, samples).
for file in "${out}"/jobs/*_dnas_s*.json; do
  [[ -s "${file}" && "${file}" != *.result.json ]] || continue
  job_id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("job_id", ""))' "${file}")"
  [[ -n "${job_id}" ]] || continue
  if "${apq}" artifact dnas_result "${job_id}/result.json" --json >"${file%.json}.result.part" 2>/dev/null; then
    mv "${file%.json}.result.part" "${file%.json}.result.json"
  else
    rm -f "${file%.json}.result.part"
  fi
done

# The networks and the pairs to compare.
python3 - "${out}" "${baseline}" "${levels}" "${seeds}" <<'PY'
import json, os, sys
out, baseline = sys.argv[1], sys.argv[2]
levels, seeds = sys.argv[3].split(), sys.argv[4].split()
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None
def arm(job, **extra):
    return dict({"config": job["best_config"], "predicted": job.get("accuracy"),
                 "validation": job.get("measured_accuracy"), "latency_ms": job.get("latency_ms"),
                 "elapsed_s": job.get("elapsed_s")}, **extra)
networks, pairs, cases = [], [], []
for level in levels:
    tag = f"joint_bitfusion_{level}bit"
    arms = {}
    for seed in seeds:
        job = load(os.path.join(out, "jobs", f"{tag}_dnas_s{seed}.json"))
        if job and job.get("state") == "SUCCEEDED":
            report = load(os.path.join(out, "jobs", f"{tag}_dnas_s{seed}.result.json")) or {}
            content = report.get("content", {})
            arms[f"dnas_s{seed}"] = arm(job, validation=None, repaired=content.get("repaired"),
                                        depths_lowered=content.get("depths_lowered"))
        job = load(os.path.join(baseline, "jobs", f"{tag}_s{seed}_mixed.json"))
        if job and job.get("state") == "SUCCEEDED":
            arms[f"evolution_s{seed}"] = arm(job)
    uniform = {}
    for bits in (2, 3, 4, 6, 8):
        job = load(os.path.join(baseline, "jobs", f"{tag}_s1_uniform{bits}.json"))
        if job and job.get("state") == "SUCCEEDED" and job.get("measured_accuracy") is not None:
            uniform[bits] = job
    if uniform:
        bits = max(uniform, key=lambda b: uniform[b]["measured_accuracy"])
        arms["uniform"] = arm(uniform[bits], bits=bits)
    for name, chosen in arms.items():
        chosen["name"] = f"{tag}/{name}"
        networks.append({"name": chosen["name"], "config": chosen["config"]})
    for seed in seeds:
        if f"dnas_s{seed}" not in arms:
            continue
        if f"evolution_s{seed}" in arms:
            pairs.append(f"{tag}/dnas_s{seed}:{tag}/evolution_s{seed}")
        if "uniform" in arms:
            pairs.append(f"{tag}/dnas_s{seed}:{tag}/uniform")
    cases.append({"case": tag, "level": int(level), "arms": arms})
json.dump(networks, open(os.path.join(out, "networks.json"), "w"), indent=1)
json.dump(cases, open(os.path.join(out, "cases.json"), "w"), indent=1)
open(os.path.join(out, "pairs.txt"), "w").write(",".join(pairs))
print(f"{len(cases)} cases, {len(networks)} networks", file=sys.stderr)
PY

# Stop the server before the long final measurements: they need the cores.
stop_apqd

measure_final "${out}" "${baseline}" "${checkpoint}" "${finetune_steps}" "${threads}" \
  "${final_accuracy}" "${splits}"

{
  python3 - "${out}" "${splits}" <<'PY'
import json, os, sys
out, splits = sys.argv[1], sys.argv[2].split()
cases = json.load(open(os.path.join(out, "cases.json")))
finals = {s: json.load(open(os.path.join(out, f"final.{s}.json"))) for s in splits}
def accuracy(split, name):
    final = finals[split]
    return final["evaluated"][final["networks"][name]]["finetuned"]["accuracy"]
def pct(value):
    return "-" if value is None else f"{100 * value:.2f}"
print("# dnas (architecture and bits) vs evolution + predictor in fmnist_lowbit's joint space\n")
print("Accuracy after the same quantization-aware fine-tune of each network alone; budgets: the "
      "largest architecture's uniform 3- and 4-bit BitFusion latency.\n")
print("| case | method | predicted |" + "".join(f" {s} |" for s in splits) +
      " depths | BitFusion ms | wall s | note |")
print("|---|---|---|" + "---|" * len(splits) + "---|---|---|---|")
for case in cases:
    for name, chosen in case["arms"].items():
        note = []
        if chosen.get("bits"):
            note.append(f"uniform {chosen['bits']} bits")
        if chosen.get("repaired"):
            note.append("repaired")
        if chosen.get("depths_lowered"):
            note.append("depths lowered")
        row = f"| {case['case']} | {name} | {pct(chosen['predicted'])} |"
        for split in splits:
            row += f" {pct(accuracy(split, chosen['name']))} |"
        row += (f" {chosen['config'][0]['d']} | {chosen['latency_ms'] or 0:.4f} | "
                f"{chosen['elapsed_s'] or 0:.0f} | {', '.join(note) or '-'} |")
        print(row)
PY
  paired_differences_md "${out}" "${splits}"
} | tee "${out}/results.md"
