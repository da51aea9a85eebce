#!/usr/bin/env python3
"""Turns the raw results of deploy/bench.sh into docs/benchmarks.md (printed to stdout)."""
import datetime
import glob
import json
import os
import platform
import re
import subprocess
import sys

run_dir, sat, rss_kb, backlog, one_s, two_s, sizes = sys.argv[1:8]
backlog = int(backlog)
one_s, two_s = float(one_s), float(two_s)
rows, table_bytes = (int(x or 0) for x in (sizes.split("|") + ["0", "0"])[:2])


def load(name):
    with open(os.path.join(run_dir, name)) as f:
        return json.load(f)


def micro():
    text = open(os.path.join(run_dir, "micro.txt")).read()
    out, name = [], None
    for line in text.splitlines():
        m = re.match(r"^(\S.*?)\s+time:\s+\[(.+?)\]", line)
        if m:
            out.append((m.group(1).strip(), m.group(2).split()[2:4]))
            continue
        m = re.match(r"^\s+time:\s+\[(.+?)\]", line)
        if m and name:
            out.append((name, m.group(1).split()[2:4]))
            name = None
            continue
        if line and not line.startswith(" ") and ":" in line and "Benchmarking" not in line and not line.startswith("standard sync"):
            name = line.strip()
    return out


def histogram(path):
    buckets = {}
    for line in open(path):
        m = re.match(r'processor_end_to_end_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            buckets[m.group(1)] = float(m.group(2))
    return buckets


def quantile(before, after, q):
    deltas = sorted(((float("inf") if k == "+Inf" else float(k)), after[k] - before.get(k, 0)) for k in after)
    total = deltas[-1][1] if deltas else 0
    if total == 0:
        return None
    for le, count in deltas:
        if count >= q * total:
            return le
    return None


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


sat_report = load("saturation.json")
sat_v_pattern = float(sat_report["accepted_per_s"])
samples_per_sync = 180 + 900 + 15 + 40 / 8
before, after = histogram(os.path.join(run_dir, "metrics-before.txt")), histogram(os.path.join(run_dir, "metrics-after.txt"))
p50, p99 = quantile(before, after, 0.5), quantile(before, after, 0.99)
mem = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.split("\n")[1].split()[1]
sync_bytes = re.search(r"standard sync: (\d+) bytes of JSON, (\d+) bytes of Avro", open(os.path.join(run_dir, "micro.txt")).read())

print("# Benchmarks\n")
print(f"Produced by `make bench` (`deploy/bench.sh`) on {datetime.date.today()}: {os.cpu_count()} cores ({cpu()}), {mem} GiB,")
print(f"{platform.system()} {platform.release()}. Release builds; broker nisshi 0.8.1 with memory storage; PostgreSQL on the same machine.")
print("Everything (load generator, services, broker, database) shares the 2 cores, so the absolute numbers are")
print("a floor for this machine, not a capacity estimate for a cluster.\n")
print("## Micro (criterion, `cargo bench -p health-model -p ingest-api`)\n")
print("| benchmark | median time |\n|---|---|")
for name, (value, unit) in micro():
    print(f"| {name} | {value} {unit} |")
if sync_bytes:
    print(f"\nA standard sync is {sync_bytes.group(1)} bytes of JSON and {sync_bytes.group(2)} bytes of Avro (DeviceSynced v2).")
print("\n## Ingest (`devsim load`, standard syncs, 1,000 devices)\n")
print(f"Saturation: `devsim load --rate max --concurrency 32`: **{sat_report['accepted_per_s']} syncs/s** accepted (202), "
      f"p50 {sat_report['latency_ms']['p50_ms']} ms, p99 {sat_report['latency_ms']['p99_ms']} ms, errors {sat_report['errors'] or 'none'}.\n")
print("| load | rate | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |\n|---|---|---|---|---|---|---|---|")
for pct in (25, 50, 75):
    r = load(f"rate{pct}.json")
    l = r["latency_ms"]
    print(f"| {pct}% | {r['target_rate_per_s']}/s | {l['p50_ms']} | {l['p90_ms']} | {l['p99_ms']} | {l['p99_9_ms']} | {l['max_ms']} | {r['errors'] or 'none'} |")
print(f"\nLatency at a fixed rate is measured from each request's intended send time (no coordinated omission).")
print(f"ingest-api peak RSS over the runs: {int(rss_kb) / 1024:.1f} MiB.\n")
def maybe(name):
    try:
        return load(name)
    except (OSError, ValueError):
        return None


base_sat, base_same, base_own = maybe("base-saturation.report"), maybe("base-rate-same.report"), maybe("base-rate-own.report")
pattern50 = load("rate50.json")
print("### Baseline: the same endpoint with the processing and the database write inside the request\n")
print("`crates/baseline` (bench-only binary): same auth and validation, then the health model computed and written")
print("to PostgreSQL in the request's transaction; no Kafka. The design this pattern replaces.\n")
ratio_p99 = None
if base_sat and base_same:
    bs, bl = base_sat["accepted_per_s"], base_same["latency_ms"]
    pl = pattern50["latency_ms"]
    ratio_p99 = bl["p99_ms"] / max(pl["p99_ms"], 1e-9)
    print("| | throughput (syncs/s) | p50 ms at the pattern's 50% load | p99 ms at that load | errors at that load |\n|---|---|---|---|---|")
    print(f"| pattern (ingest-api) | {sat_v_pattern:.0f} | {pl['p50_ms']} | {pl['p99_ms']} | {pattern50['errors'] or 'none'} |")
    print(f"| baseline | {bs} | {bl['p50_ms']} | {bl['p99_ms']} | {base_same['errors'] or 'none'} |")
    print(f"| pattern ÷ baseline throughput, baseline ÷ pattern latency | {sat_v_pattern / max(bs, 1e-9):.1f}× | "
          f"{bl['p50_ms'] / max(pl['p50_ms'], 1e-9):.1f}× | {ratio_p99:.1f}× | |")
    if base_own:
        ol = base_own["latency_ms"]
        print(f"\nAt its own 50% load ({base_own['target_rate_per_s']}/s) the baseline answers p50 {ol['p50_ms']} ms, p99 {ol['p99_ms']} ms.")
    print("At the pattern's 50% load the baseline is past its own saturation, so requests queue: that is the point.\n")
else:
    print("The baseline run produced no report (see the bench logs).\n")
print(f"## Processor catch-up ({backlog} standard syncs in 6 partitions)\n")
print("| instances | seconds | syncs/s | samples/s |\n|---|---|---|---|")
for n, secs in ((1, one_s), (2, two_s)):
    print(f"| {n} | {secs} | {backlog / secs:.0f} | {backlog * samples_per_sync / secs:.0f} |")
print(f"\nDatabase after the one-instance run: {rows} rows ({rows / max(backlog, 1):.1f} per sync), "
      f"{table_bytes / 1024 / 1024:.1f} MiB in tables and indexes ({table_bytes / max(backlog, 1) / 1024:.1f} KiB per sync).")
print("Most syncs share a few user-days, so rows per sync fall as a user's day fills.\n")
print("## End to end\n")
fmt = lambda v: "n/a" if v is None else ("> 300 s" if v == float("inf") else f"≤ {v} s")
print(f"Freshness lag (ingest time to committed effects, the processor's `processor_end_to_end_lag_seconds`) at 50% of")
print(f"ingest saturation: p50 {fmt(p50)}, p99 {fmt(p99)} (histogram bucket bounds).")
e2e = load("e2e-load.json")
rate = e2e["target_rate_per_s"] or 0
print(f"During that run ({rate}/s with the processor sharing the 2 cores) ingest answered p50 {e2e['latency_ms']['p50_ms']} ms,")
print(f"p99 {e2e['latency_ms']['p99_ms']} ms from the schedule.")
if rate > backlog / one_s:
    print(f"One processor applies about {backlog / one_s:.0f} syncs/s here, less than this rate, so the lag grows for the")
    print("length of the run: on this machine the processor, not the 202 path, bounds freshness; add partitions' worth")
    print("of processor replicas (or cores) to keep up.")
print()
r50 = load("rate50.json")["latency_ms"]["p99_ms"]
rss_mb = int(rss_kb) / 1024 * 1.048576
sat_v = float(sat_report["accepted_per_s"])
one_rate = backlog / one_s
rows_ = [
    ("ingest throughput", "≥ 5,000 syncs/s", f"{sat_v:.0f} syncs/s ({sat_v / 5000:.0%} of the goal)", sat_v >= 5000,
     "CPU: parsing and validating a standard sync (~0.3 ms) and encoding it (~0.1 ms) on the same 2 cores as the broker and the load generator"),
    ("ingest p99 at 50% of saturation", "≤ 25 ms", f"{r50} ms", float(r50) <= 25,
     f"{float(r50) / 25 - 1:.0%} over: the broker, the load generator and ingest-api share 2 cores"),
    ("ingest RSS at saturation", "≤ 150 MB", f"{rss_mb:.0f} MB", rss_mb <= 150, "the producer queue and connections"),
    ("baseline p99 ÷ pattern p99 (same load)", "≥ 10", "not measured" if ratio_p99 is None else f"{ratio_p99:.1f}", ratio_p99 is not None and ratio_p99 >= 10,
     "the baseline run failed" if ratio_p99 is None else "the baseline's own processing speed"),
    ("processor catch-up per instance", "≥ 2,000 syncs/s", f"{one_rate:.0f} syncs/s ({one_rate / 2000:.0%} of the goal)", one_rate >= 2000,
     "each batch recomputes every touched user-day from all of its stored chunks (JSONB) and the user's rolling series"),
    ("end-to-end freshness p99 at 50% load", "≤ 2 s", fmt(p99), p99 is not None and p99 <= 2,
     "the processor is slower than half of ingest saturation, so its lag grows during the run"),
]
print("## Goals for this 2-core machine\n")
print("| what | goal | measured | met | what limits it |\n|---|---|---|---|---|")
for what, goal, got, ok, why in rows_:
    print(f"| {what} | {goal} | {got} | {'yes' if ok else 'no'} | {'' if ok else why} |")
print()
sat_s, rate_s = os.environ.get("BENCH_SATURATION_SECONDS", "10"), os.environ.get("BENCH_RATE_SECONDS", "10")
print(f"## Commands\n\nThis report: `BENCH_SATURATION_SECONDS={sat_s} BENCH_RATE_SECONDS={rate_s} make bench`.\n")
print("```sh\nmake bench   # BENCH_SATURATION_SECONDS and BENCH_RATE_SECONDS set the run lengths (default 10 s each)\n```")
