#!/usr/bin/env python3
"""Writes fmnist_int8float's full-precision records from fmnist_mbv2's.

fmnist_int8float's supernet_fp32.pt holds fmnist_mbv2's full-precision weights unchanged (saved
for the new spec by train_supernet --init_weights with no epochs), so an fp32 record of
fmnist_mbv2 (the architecture measured without quantization on the validation split) is the
same measurement of fmnist_int8float's architecture. Its bits are rewritten in
fmnist_int8float's canonical form: the layers it runs at the highest choice, 32 (float), where
fmnist_mbv2 wrote 8; the layers beyond a stage's depth at the lowest choice, 8, where
fmnist_mbv2 wrote 4.

usage: fp32_records_from_fmnist_mbv2.py data/fmnist_mbv2/measurements.csv OUT.csv
"""
import csv
import json
import sys


def main():
    source, target = sys.argv[1], sys.argv[2]
    with open(source, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["method"] == "fp32"]
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["config_json", "accuracy", "method", "seconds",
                                               "seed", "split"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            architecture, policy = json.loads(row["config_json"])
            mapped = {8: 32, 4: 8}  # Highest and lowest choice of each space.
            if any(v not in mapped for values in policy.values() for v in values):
                sys.exit(f"not an fp32 record in canonical form: {row['config_json']}")
            policy = {gene: [mapped[v] for v in values] for gene, values in policy.items()}
            row["config_json"] = json.dumps([architecture, policy], separators=(",", ":"))
            writer.writerow(row)
    print(f"{len(rows)} fp32 records written to {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
