#!/usr/bin/env python3
"""Searches through the service against the same search in process (issue 13).

Times, as the client sees them, against a real apqd with its database on disk:
  search     the OFA-sized search (ofa_mbv3, Note10, latency <= 25 ms, population 100,
             500 generations; seeds 1-3), one `apq search --wait` each;
  joint      the APQ-sized search: the joint space on BitFusion (fmnist_mbv2, APQ's bits
             {4,6,8}, with its shipped quantization-aware predictor of APQ's form, latency
             <= 0.3 ms, population 100, 500 generations; seeds 1-3): apq_mbv2, APQ's own space,
             ships no predictor, so the service cannot search it;
  joint-lowbit  the same on fmnist_lowbit with its shipped ensemble predictor (MLP + XGBoost);
  in-process bench/search_bench --threads 1 --repeats 1 (its own timing of the same OFA
             search, seeds 1-3), run between the service's searches;
  in-process-joint  the same for the APQ-sized search (search_bench --space fmnist_mbv2);
  sweep      40 deployment scenarios (20 Note10 budgets 15-60 ms on ofa_mbv3; 10 local-cpu
             budgets 0.4-0.85 ms and 10 BitFusion budgets 0.15-0.6 ms on fmnist_mbv2),
             submitted at once as 40 separate jobs (`apq search` without --wait, then each job
             watched to its end) or as two sweep requests (one per space, `apq sweep`), on
             apqd with --workers 1 or one worker per core (the default).
Every variant runs once per round, the order rotating between rounds, so that the load of
the shared machine falls on all of them alike. Each apqd starts on a fresh database before
its variant is timed (its start, which imports the shipped data, is not timed). Also
reported: the database file's growth per default job (its write-ahead log checkpointed
into it before each measurement), candidate rows written per second and
apqd's peak RSS (VmHWM).

usage: bench/service_bench.py [--rounds N] [--out DIR] [--apqd PATH] [--apq PATH]
           [--search-bench PATH] [--variants v1,v2,...] [--data DIR] [--apqd-args "ARGS"]
--apqd-args are added to every apqd's command line (e.g. "--commit_interval_ms 100").
Build first: bazel build //server:apqd //clients:apq //bench:search_bench
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ["search", "joint", "joint-lowbit", "in-process", "in-process-joint",
            "sweep-jobs-1-worker", "sweep-jobs", "sweep-requests"]


def scenarios():
    """The 40 deployment scenarios, by space."""
    note10 = [{"device": "note10", "max_latency_ms": round(15 + 45 * i / 19, 3)}
              for i in range(20)]
    cpu = [{"device": "local-cpu", "max_latency_ms": round(0.4 + 0.05 * i, 3)} for i in range(10)]
    bitfusion = [{"device": "bitfusion", "max_latency_ms": round(0.15 + 0.05 * i, 3)}
                 for i in range(10)]
    return {"ofa_mbv3": note10, "fmnist_mbv2": cpu + bitfusion}


class Apqd:
    """An apqd on a fresh database in `folder`; stopped by stop()."""

    def __init__(self, binary, data_dir, folder, workers=None, extra_args=()):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        self.database = os.path.join(folder, "apq.db")
        port_file = os.path.join(folder, "port")
        command = [binary, "--listen", "127.0.0.1:0", "--db", self.database, "--data_dir",
                   data_dir, "--auth=off", "--port_file", port_file]
        if workers is not None:
            command += ["--workers", str(workers)]
        command += list(extra_args)
        self.log = open(os.path.join(folder, "apqd.log"), "w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            if self.process.poll() is not None:
                sys.exit(f"apqd failed to start; see {folder}/apqd.log")
            time.sleep(0.1)
        else:
            sys.exit("apqd did not start within 60 s")
        self.address = "127.0.0.1:" + open(port_file).read().strip()
        # The shipped data imported at the first start.
        self.base_bytes = self.database_bytes()
        self.base_rows = self.candidate_rows()

    def database_bytes(self):
        """The file's size once SQLite's write-ahead log is checkpointed into it."""
        with sqlite3.connect(self.database) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return os.path.getsize(self.database)

    def candidate_rows(self):
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as connection:
            return connection.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]

    def peak_rss_mib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def client(apq, address, arguments):
    result = subprocess.run([apq, "--server", address] + arguments, capture_output=True,
                            text=True)
    if result.returncode != 0:
        sys.exit(f"apq {' '.join(arguments)} failed ({result.returncode}): {result.stderr}"
                 f"{result.stdout[-3000:]}")
    return result.stdout


def timed(function):
    start = time.monotonic()
    value = function()
    return time.monotonic() - start, value


def search_arguments(space, device, max_latency_ms, seed):
    return ["--space", space, "--device", device, "--max-latency-ms", repr(max_latency_ms),
            "--seed", str(seed), "--population", "100", "--generations", "500"]


def run_single(args, folder, space, device, max_latency_ms):
    """Seeds 1-3 of one search through apqd: the client's seconds per search."""
    server = Apqd(args.apqd, args.data, folder, extra_args=args.apqd_args.split())
    seconds = []
    for seed in (1, 2, 3):
        elapsed, output = timed(lambda: client(
            args.apq, server.address,
            ["search"] + search_arguments(space, device, max_latency_ms, seed) +
            ["--wait", "--json"]))
        job = json.loads(output)
        if job["state"] != "SUCCEEDED":
            sys.exit(f"{space} seed {seed}: {job['state']}")
        seconds.append(elapsed)
    extra = {"rows": server.candidate_rows() - server.base_rows,
             "peak_rss_mib": server.peak_rss_mib()}
    server.stop()
    extra["db_bytes_per_job"] = (server.database_bytes() - server.base_bytes) / 3
    return seconds, extra


def run_in_process(args, space):
    output = subprocess.run([args.search_bench, "--space", space, "--threads", "1",
                             "--repeats", "1"],
                            capture_output=True, text=True, cwd=args.search_bench_dir,
                            check=True).stdout
    seconds = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] in ("1", "2", "3"):
            seconds.append(float(fields[1]))
    if len(seconds) != 3:
        sys.exit(f"search_bench printed no seeds 1-3:\n{output}")
    return seconds, {}


def run_sweep(args, folder, workers, as_sweeps):
    """The 40 scenarios submitted at once; seconds until the last one ended."""
    server = Apqd(args.apqd, args.data, folder, workers, args.apqd_args.split())
    by_space = scenarios()
    start = time.monotonic()
    jobs = []
    if as_sweeps:
        sweeps = []
        for space, entries in by_space.items():
            path = os.path.join(folder, f"{space}.json")
            with open(path, "w") as out:
                json.dump(entries, out)
            sweeps.append(json.loads(client(
                args.apq, server.address,
                ["sweep", "--space", space, "--scenarios", path, "--seed", "1",
                 "--population", "100", "--generations", "500", "--json"]))["sweep_id"])
        results = [json.loads(client(args.apq, server.address,
                                     ["sweep-status", sweep, "--wait", "--json"]))
                   for sweep in sweeps]
        elapsed = time.monotonic() - start
        for result in results:
            jobs += [scenario["job"] for scenario in result["scenarios"]]
    else:
        ids = []
        for space, entries in by_space.items():
            for entry in entries:
                ids.append(json.loads(client(
                    args.apq, server.address,
                    ["search"] + search_arguments(space, entry["device"],
                                                  entry["max_latency_ms"], 1) +
                    ["--json"]))["job_id"])
        jobs = [json.loads(client(args.apq, server.address, ["watch", job_id, "--json"]))
                for job_id in ids]
        elapsed = time.monotonic() - start
    failed = [job["job_id"] for job in jobs if job["state"] != "SUCCEEDED"]
    if failed or len(jobs) != 40:
        sys.exit(f"sweep: {len(jobs)} jobs, not succeeded: {failed}")
    rows = server.candidate_rows() - server.base_rows
    extra = {"rows": rows, "rows_per_s": rows / elapsed, "peak_rss_mib": server.peak_rss_mib(),
             "best": [job.get("accuracy") for job in jobs]}
    server.stop()
    extra["db_bytes_per_job"] = (server.database_bytes() - server.base_bytes) / 40
    return [elapsed], extra


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="/tmp/apq_service_bench")
    parser.add_argument("--apqd", default=os.path.join(REPO, "bazel-bin/server/apqd"))
    parser.add_argument("--apq", default=os.path.join(REPO, "bazel-bin/clients/apq"))
    parser.add_argument("--search-bench",
                        default=os.path.join(REPO, "bazel-bin/bench/search_bench"))
    parser.add_argument("--data", default=os.path.join(REPO, "data"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--apqd-args", default="")
    args = parser.parse_args()
    variants = args.variants.split(",")
    for variant in variants:
        if variant not in VARIANTS:
            sys.exit(f"--variants: unknown variant {variant} (known: {', '.join(VARIANTS)})")
    if args.rounds < 1:
        sys.exit("--rounds: at least 1")
    # search_bench reads data/ from its runfiles.
    args.search_bench_dir = args.search_bench + ".runfiles/apq"
    os.makedirs(args.out, exist_ok=True)

    runs = {variant: {"seconds": [], "extra": []} for variant in variants}
    load = [os.getloadavg()[0]]
    for round_index in range(args.rounds):
        order = variants[round_index % len(variants):] + variants[:round_index % len(variants)]
        for variant in order:
            folder = os.path.join(args.out, variant)
            if variant == "search":
                seconds, extra = run_single(args, folder, "ofa_mbv3", "note10", 25.0)
            elif variant == "joint":
                seconds, extra = run_single(args, folder, "fmnist_mbv2", "bitfusion", 0.3)
            elif variant == "joint-lowbit":
                seconds, extra = run_single(args, folder, "fmnist_lowbit", "bitfusion", 0.3)
            elif variant == "in-process":
                seconds, extra = run_in_process(args, "ofa_mbv3")
            elif variant == "in-process-joint":
                seconds, extra = run_in_process(args, "fmnist_mbv2")
            elif variant == "sweep-jobs-1-worker":
                seconds, extra = run_sweep(args, folder, 1, as_sweeps=False)
            elif variant == "sweep-jobs":
                seconds, extra = run_sweep(args, folder, None, as_sweeps=False)
            else:
                seconds, extra = run_sweep(args, folder, None, as_sweeps=True)
            runs[variant]["seconds"] += seconds
            runs[variant]["extra"].append(extra)
            print(f"round {round_index + 1} {variant}: " +
                  ", ".join(f"{value:.3f}" for value in seconds) + " s", file=sys.stderr)
        load.append(os.getloadavg()[0])

    print(f"{args.rounds} rounds; load average (1 min) {min(load):.2f}-{max(load):.2f}")
    print("| variant | runs | median s | min s | max s | DB growth per job | candidate rows/s | "
          "apqd peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in variants:
        seconds = runs[variant]["seconds"]
        extras = runs[variant]["extra"]
        growth = [extra["db_bytes_per_job"] for extra in extras if "db_bytes_per_job" in extra]
        rates = [extra["rows_per_s"] for extra in extras if "rows_per_s" in extra]
        rss = [extra["peak_rss_mib"] for extra in extras if "peak_rss_mib" in extra]
        print(f"| {variant} | {len(seconds)} | {statistics.median(seconds):.3f} | "
              f"{min(seconds):.3f} | {max(seconds):.3f} | "
              + (f"{statistics.median(growth) / 2**20:.2f} MiB" if growth else "-") + " | "
              + (f"{statistics.median(rates):,.0f}" if rates else "-") + " | "
              + (f"{max(rss):.0f} MiB" if rss else "-") + " |")
    # The sweeps' answers: the same per scenario whichever way they were submitted.
    bests = {variant: runs[variant]["extra"][0]["best"] for variant in variants
             if runs[variant]["extra"] and "best" in runs[variant]["extra"][0]}
    if len(bests) > 1:
        same = len({json.dumps(best) for best in bests.values()}) == 1
        print(f"\nsweep answers (best accuracy per scenario) identical across submissions: {same}")


if __name__ == "__main__":
    main()
