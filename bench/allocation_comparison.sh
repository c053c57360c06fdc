#!/usr/bin/env bash
# The bit-allocation engines compared on the mixed-vs-uniform experiment's cases (issue 12,
# bench/mixed_vs_uniform_experiment.sh, bits regime): the largest fmnist_lowbit architecture
# held fixed, budgets at its uniform 3-bit and 4-bit costs in BitOps (priced on bitfusion; local-cpu runs only W8A8 since issue 19) and BitFusion
# latency. Per case:
#   iqp        CLADO's cross-layer allocation, activations at the budget's bitwidth (3 or 4),
#              losses measured once per activation width and calibration seed and reused from
#              the store's cache by later jobs (same server database);
#   diagonal   the same with single changes only (the independent-sensitivity baseline);
#   qbitopt    allocation during a quantization-aware fine-tune, seeds as --seeds;
#   dnas       Gumbel-softmax search of the bits on the supernet, seeds as --seeds;
#   ssps       single-path search with sequential fixing, seeds as --seeds;
#   evolution  the predictor-guided search of issue 12 (its verified best per seed), and
#   uniform    the best uniform precision (verified), both read from --baseline DIR (that
#              experiment's records: jobs/*.json and final.json).
# Every network then gets the same short fine-tune from the supernet (bench/final_accuracy,
# --finetune-steps, batch 128) and is measured on the validation split and on the test split;
# each engine's network is compared with the best uniform one and iqp with diagonal (paired:
# exact McNemar, paired bootstrap). Nothing here chooses by test images: the engines choose by
# their own losses or predictions, issue 12's arms by validation.
#
# Resumable: the server's database (OUT/apq.db) keeps finished jobs and the cached losses;
# finished searches are kept in OUT/jobs; final_accuracy resumes from OUT/final.*.json.
#
# usage: bench/allocation_comparison.sh [--out DIR] [--seeds "1 2 3"] [--levels "3 4"]
#          [--budgets "bitops bitfusion"] [--engines "iqp diagonal qbitopt dnas ssps"]
#          [--finetune-steps N] [--iqp-options OPTS] [--qbitopt-options OPTS]
#          [--dnas-options OPTS] [--ssps-options OPTS] [--baseline DIR] [--splits "validation test"]
#          [--workers N] [--apqd PATH] [--apq PATH] [--final-accuracy PATH] [--data DIR]
#          [--threads N] [--architecture FILE]
# --architecture FILE: a config [architecture, policy] whose architecture replaces the largest
# one, both as the fixed architecture and as the one whose uniform costs set the budgets (the
# policy is ignored); --baseline must then name bench/mixed_vs_uniform_experiment.sh's records
# for the same file (--regimes bits --architecture FILE, --searches-only is enough: the
# networks it lacks in final.json are measured here).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
apqd="${repo}/bazel-bin/server/apqd"
apq="${repo}/bazel-bin/clients/apq"
final_accuracy="${repo}/bazel-bin/bench/final_accuracy"
data_dir="${repo}/data"
baseline="${repo}/data/training/fmnist_lowbit/mixed_vs_uniform/bits_uniform_records"
out=/tmp/apq_allocation_comparison
seeds="1 2 3"
levels="3 4"
budget_kinds="bitops bitfusion"
finetune_steps=100
iqp_options="calibration_images=512,time_limit_s=120"
qbitopt_options="steps=100,update_every=20"
dnas_options="steps=150,report_every=50,warmup_steps=30,arch_lr=0.05"
ssps_options="steps=150,report_every=50,warmup_steps=30,arch_lr=0.05"
engines="iqp diagonal qbitopt dnas ssps"
splits="validation test"
workers=2
threads=1
architecture=""
baseline_given=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --levels) levels="$2"; shift 2 ;;
    --budgets) budget_kinds="$2"; shift 2 ;;
    --finetune-steps) finetune_steps="$2"; shift 2 ;;
    --iqp-options) iqp_options="$2"; shift 2 ;;
    --qbitopt-options) qbitopt_options="$2"; shift 2 ;;
    --dnas-options) dnas_options="$2"; shift 2 ;;
    --ssps-options) ssps_options="$2"; shift 2 ;;
    --engines) engines="$2"; shift 2 ;;
    --baseline) baseline="$2"; baseline_given=1; shift 2 ;;
    --splits) splits="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --apqd) apqd="$2"; shift 2 ;;
    --apq) apq="$2"; shift 2 ;;
    --final-accuracy) final_accuracy="$2"; shift 2 ;;
    --data) data_dir="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --architecture) architecture="$2"; shift 2 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
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
for value in ${budget_kinds}; do
  [[ "${value}" == bitops || "${value}" == bitfusion ]] || { echo "--budgets: bitops or bitfusion, got ${value}" >&2; exit 2; }
done
for value in ${engines}; do
  case "${value}" in
    iqp|diagonal|qbitopt|dnas|ssps) ;;
    *) echo "--engines: iqp, diagonal, qbitopt, dnas or ssps, got ${value}" >&2; exit 2 ;;
  esac
done
# runs ENGINE: whether --engines names it.
runs() { [[ " ${engines} " == *" $1 "* ]]; }
for value in ${splits}; do
  [[ "${value}" == validation || "${value}" == test ]] || { echo "--splits: validation or test, got ${value}" >&2; exit 2; }
done
[[ "${finetune_steps}" =~ ^[0-9]+$ ]] || { echo "--finetune-steps: a count, got ${finetune_steps}" >&2; exit 2; }
[[ -d "${baseline}/jobs" ]] || { echo "--baseline: no jobs/ in ${baseline}" >&2; exit 1; }
if [[ -n "${architecture}" ]]; then
  [[ -f "${architecture}" ]] || { echo "--architecture: no file ${architecture}" >&2; exit 1; }
  [[ "${baseline_given}" == 1 ]] ||
    { echo "--architecture: give --baseline, the evolution and uniform searches of that architecture" >&2; exit 2; }
  architecture="$(cd "$(dirname "${architecture}")" && pwd)/$(basename "${architecture}")"
fi
checkpoint="${data_dir}/fmnist_lowbit/supernet_quant.pt"
[[ -f "${checkpoint}" ]] || { echo "no supernet weights at ${checkpoint}" >&2; exit 1; }
mkdir -p "${out}/jobs"
out="$(cd "${out}" && pwd)"

# shellcheck source=scripts/apqd_lib.sh
source "${repo}/scripts/apqd_lib.sh"
# shellcheck source=bench/final_measurements_lib.sh
source "${repo}/bench/final_measurements_lib.sh"
# The database is kept between runs: its jobs resume and its cached losses are reused.
APQD_EXTRA_FLAGS="--workers ${workers}"
start_apqd "${apqd}" "${out}/apq.db" "${data_dir}" "${out}/apqd.port" "${out}/apqd.log"
export APQ_SERVER="${APQD_ADDRESS}"
echo "apqd on ${APQ_SERVER}" >&2

# The fixed architecture (the largest one, or --architecture's) at every uniform width, priced
# on both devices: the budgets (as issue 12 set them).
python3 - "${out}" "${architecture}" <<'PY'
import json, os, sys
given = sys.argv[2]
arch = (json.load(open(given))[0] if given else
        {"wid": None, "ks": [7] * 12, "e": [6] * 12, "d": [4] * 3})
def config(bits):
    policy = {key: [bits] * 12 for key in ("pw_w_bits_setting", "pw_a_bits_setting",
                                           "dw_w_bits_setting", "dw_a_bits_setting")}
    return [arch, policy]
json.dump(config(8), open(os.path.join(sys.argv[1], "architecture.json"), "w"))
json.dump([config(b) for b in (3, 4)], open(os.path.join(sys.argv[1], "uniform.json"), "w"))
PY
# local-cpu runs W8A8 or float only; BitOps are the same on every device.
for device in bitfusion; do
  "${apq}" evaluate --space fmnist_lowbit --device "${device}" --configs "${out}/uniform.json" \
    --json >"${out}/uniform.${device}.json"
done
# budget KIND LEVEL: the search flags of that case's device and budget.
budget_args() {
  python3 - "${out}" "$1" "$2" <<'PY'
import json, os, sys
out, kind, level = sys.argv[1], sys.argv[2], int(sys.argv[3])
device = "bitfusion"
result = json.load(open(os.path.join(out, f"uniform.{device}.json")))["results"][level - 3]
if kind == "bitops":
    print(f"--device bitfusion --max-bitops {int(result['bitops'])}")
else:
    print(f"--device bitfusion --max-latency-ms {result['latency_ms']!r}")
PY
}

# search TAG ARGS...: one search in the background, its JSON in jobs/TAG.json (kept: not run
# again); the searches run `workers` at a time on the server. Their pids go to search_pids.
search_pids=()
search() {
  local tag="$1"
  shift
  run_search_job "${apq}" "${out}/jobs/${tag}.json" --space fmnist_lowbit \
    --fixed-architecture "${out}/architecture.json" "$@" &
  search_pids+=("$!")
}

for level in ${levels}; do
  for kind in ${budget_kinds}; do
    read -r -a budget <<<"$(budget_args "${kind}" "${level}")"
    tag="bits_${kind}_${level}bit"
    if runs iqp; then
      search "${tag}_iqp" "${budget[@]}" --seed 1 --engine iqp \
        --options "${iqp_options},activations=${level}"
    fi
    if runs diagonal; then
      search "${tag}_diagonal" "${budget[@]}" --seed 1 --engine iqp \
        --options "${iqp_options},activations=${level},cross_layer=false"
    fi
    for seed in ${seeds}; do
      if runs qbitopt; then
        search "${tag}_qbitopt_s${seed}" "${budget[@]}" --seed "${seed}" --engine qbitopt \
          --options "${qbitopt_options},activations=${level}"
      fi
      # The differentiable engines search activation widths too (the budget's cost in the
      # loss, metric and floor from the job's budget).
      if runs dnas; then
        search "${tag}_dnas_s${seed}" "${budget[@]}" --seed "${seed}" --engine dnas \
          --options "${dnas_options}"
      fi
      if runs ssps; then
        search "${tag}_ssps_s${seed}" "${budget[@]}" --seed "${seed}" --engine ssps \
          --options "${ssps_options}"
      fi
    done
  done
done
# The searches only (a bare wait would wait for the server too).
if [[ ${#search_pids[@]} -gt 0 ]]; then wait "${search_pids[@]}"; fi
# The solvers' reports.
for file in "${out}"/jobs/*_iqp.json "${out}"/jobs/*_diagonal.json; do
  [[ -s "${file}" ]] || continue
  job_id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("job_id", ""))' "${file}")"
  [[ -n "${job_id}" ]] || continue
  # Written only when the server has the job: a database started afresh keeps the stored report.
  if "${apq}" artifact iqp_solution "${job_id}/solution.json" --json >"${file%.json}.solution.part" 2>/dev/null; then
    mv "${file%.json}.solution.part" "${file%.json}.solution.json"
  else
    rm -f "${file%.json}.solution.part"
  fi
done

# The differentiable searches' reports (repaired or not, layers fixed, samples).
for engine in dnas ssps; do
  for file in "${out}"/jobs/*_"${engine}"_s*.json; do
    [[ -s "${file}" && "${file}" != *.result.json ]] || continue
    job_id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("job_id", ""))' "${file}")"
    [[ -n "${job_id}" ]] || continue
    if "${apq}" artifact "${engine}_result" "${job_id}/result.json" --json >"${file%.json}.result.part" 2>/dev/null; then
      mv "${file%.json}.result.part" "${file%.json}.result.json"
    else
      rm -f "${file%.json}.result.part"
    fi
  done
done

# The networks and the pairs to compare.
python3 - "${out}" "${baseline}" "${budget_kinds}" "${levels}" "${seeds}" <<'PY'
import json, os, sys
out, baseline = sys.argv[1], sys.argv[2]
kinds, levels, seeds = (value.split() for value in sys.argv[3:6])
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None
networks, pairs, cases = [], [], []
for kind in kinds:
    for level in levels:
        tag = f"bits_{kind}_{level}bit"
        arms = {}
        for engine in (["iqp", "diagonal"] +
                       [f"{e}_s{s}" for e in ("qbitopt", "dnas", "ssps") for s in seeds]):
            job = load(os.path.join(out, "jobs", f"{tag}_{engine}.json"))
            if job and job.get("state") == "SUCCEEDED":
                solution = load(os.path.join(out, "jobs", f"{tag}_{engine}.solution.json"))
                report = load(os.path.join(out, "jobs", f"{tag}_{engine}.result.json"))
                arms[engine] = {"config": job["best_config"], "predicted": job.get("accuracy"),
                                "bitops": job.get("bitops"), "latency_ms": job.get("latency_ms"),
                                "elapsed_s": job.get("elapsed_s"),
                                "gap": (solution or {}).get("content", {}).get("relative_gap"),
                                "from_cache": (solution or {}).get("content", {}).get("losses_from_cache"),
                                "repaired": (report or {}).get("content", {}).get("repaired")}
        for seed in seeds:
            job = load(os.path.join(baseline, "jobs", f"{tag}_s{seed}_mixed.json"))
            if job and job.get("state") == "SUCCEEDED":
                arms[f"evolution_s{seed}"] = {
                    "config": job["best_config"], "predicted": job.get("accuracy"),
                    "bitops": job.get("bitops"), "latency_ms": job.get("latency_ms"),
                    "elapsed_s": job.get("elapsed_s"), "gap": None, "from_cache": None}
        uniform = {}
        for bits in (2, 3, 4, 6, 8):
            job = load(os.path.join(baseline, "jobs", f"{tag}_s1_uniform{bits}.json"))
            if job and job.get("state") == "SUCCEEDED":
                uniform[bits] = job
        if uniform:
            bits = max(uniform, key=lambda b: uniform[b]["measured_accuracy"])
            job = uniform[bits]
            arms["uniform"] = {"config": job["best_config"], "predicted": job.get("accuracy"),
                               "bitops": job.get("bitops"), "latency_ms": job.get("latency_ms"),
                               "elapsed_s": job.get("elapsed_s"), "gap": None,
                               "from_cache": None, "bits": bits}
        for arm, chosen in arms.items():
            chosen["name"] = f"{tag}/{arm}"
            networks.append({"name": chosen["name"], "config": chosen["config"]})
            if arm != "uniform" and "uniform" in arms:
                pairs.append(f"{tag}/{arm}:{tag}/uniform")
        if "iqp" in arms and "diagonal" in arms:
            pairs.append(f"{tag}/iqp:{tag}/diagonal")
        cases.append({"case": tag, "kind": kind, "level": int(level), "arms": arms})
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
  python3 - "${out}" "${splits}" "${architecture}" <<'PY'
import json, os, sys
out, splits, given = sys.argv[1], sys.argv[2].split(), sys.argv[3]
cases = json.load(open(os.path.join(out, "cases.json")))
finals = {s: json.load(open(os.path.join(out, f"final.{s}.json"))) for s in splits}
def figures(split, name):
    final = finals[split]
    return final["evaluated"][final["networks"][name]]
def pct(value):
    return "-" if value is None else f"{100 * value:.2f}"
print("# Bit allocation engines on fmnist_lowbit's "
      + (f"architecture of {os.path.basename(given)}\n" if given else "largest architecture\n"))
print("Accuracy after the same quantization-aware fine-tune of each network alone; budget use is "
      "the network's cost over the budget.\n")
header = "| case | method | predicted |" + "".join(f" {s} |" for s in splits)
print(header + " BitOps | BitFusion ms | wall s | solver gap or repair |")
print("|---|---|---|" + "---|" * len(splits) + "---|---|---|---|")
for case in cases:
    for arm, chosen in case["arms"].items():
        row = f"| {case['case']} | {arm}{' (' + str(chosen['bits']) + ' bits)' if chosen.get('bits') else ''} | {pct(chosen['predicted'])} |"
        for split in splits:
            row += f" {pct(figures(split, chosen['name'])['finetuned']['accuracy'])} |"
        gap = chosen.get("gap")
        row += (f" {chosen['bitops'] or 0:.4g} | {chosen['latency_ms'] or 0:.4f} | "
                f"{chosen['elapsed_s'] or 0:.0f}{' (cached losses)' if chosen.get('from_cache') else ''} | "
                f"{'-' if gap is None else f'{100 * gap:.1f}%'}"
                f"{' (repaired)' if chosen.get('repaired') else ''} |")
        print(row)
PY
  paired_differences_md "${out}" "${splits}"
} | tee "${out}/results.md"
