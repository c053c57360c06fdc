# Sourced by the comparison scripts (bench/allocation_comparison.sh,
# bench/joint_dnas_comparison.sh): the final measurements of their networks and the paired
# comparisons as markdown.
#
# measure_final OUT BASELINE CHECKPOINT FINETUNE_STEPS THREADS FINAL_ACCURACY SPLITS
#   Every network of OUT/networks.json after the same fine-tune from CHECKPOINT
#   (bench/final_accuracy, FINETUNE_STEPS steps, THREADS threads), measured on each split of
#   SPLITS with the pairs of OUT/pairs.txt compared: OUT/final.<split>.json (resumable) and
#   OUT/final.<split>.md. A test run without its file yet is seeded with BASELINE/final.json's
#   test measurements when they were made with the same settings (same weights file), so it
#   measures only the networks they lack.
measure_final() {
  local out="$1" baseline="$2" checkpoint="$3" finetune_steps="$4" threads="$5"
  local final_accuracy="$6" splits="$7" split
  for split in ${splits}; do
    if [[ "${split}" == test && ! -s "${out}/final.test.json" && -s "${baseline}/final.json" ]]; then
      python3 - "${baseline}/final.json" "${out}/final.test.json" "${checkpoint}" "${finetune_steps}" <<'PY'
import json, sys
stored = json.load(open(sys.argv[1]))
settings = stored["settings"]
if settings.get("finetune_steps") == int(sys.argv[4]) and settings.get("split") == "test":
    settings["checkpoint"] = sys.argv[3]
    json.dump({"settings": settings, "evaluated": stored["evaluated"]}, open(sys.argv[2], "w"))
PY
    fi
    OMP_NUM_THREADS="${threads}" "${final_accuracy}" --space fmnist_lowbit \
      --checkpoint "${checkpoint}" --networks "${out}/networks.json" \
      --out "${out}/final.${split}.json" --split "${split}" --finetune_steps "${finetune_steps}" \
      --compare "$(cat "${out}/pairs.txt")" --threads "${threads}" >"${out}/final.${split}.md"
  done
}

# paired_differences_md OUT SPLITS
#   Per split, a markdown table of OUT/final.<split>.json's paired comparisons after the
#   fine-tune: difference, bootstrap interval, exact McNemar p and the verdict at p < 0.05.
paired_differences_md() {
  python3 - "$1" "$2" <<'PY'
import json, os, sys
out, splits = sys.argv[1], sys.argv[2].split()
for split in splits:
    final = json.load(open(os.path.join(out, f"final.{split}.json")))
    print(f"\n## Paired differences on {split} (after the fine-tune)\n")
    print("| first | second | difference (points) | 95% interval | McNemar p | verdict |")
    print("|---|---|---|---|---|---|")
    for c in final["comparisons"]:
        s = c["finetuned"]
        significant = s["mcnemar_p"] < 0.05
        verdict = ("first better" if significant and s["difference"] > 0 else
                   "second better" if significant else "no difference")
        p = "< 0.0001" if s["mcnemar_p"] < 1e-4 else f"{s['mcnemar_p']:.4f}"
        print(f"| {c['first']} | {c['second']} | {100 * s['difference']:+.2f} | "
              f"[{100 * s['bootstrap_low']:+.2f}, {100 * s['bootstrap_high']:+.2f}] | {p} | {verdict} |")
PY
}
