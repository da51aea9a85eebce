#!/usr/bin/env python3
"""The helpers of deploy/bench.sh (`make bench`), and its report. Standard library only.

  bench_report.py snapshot OUT DATABASE [ROLE=PID ...]
      /proc at one instant, as JSON in OUT: CPU ticks and peak RSS of the given processes (role
      `processor`, `broker`, ...), every process named `postgres` (ticks, children's ticks, parent,
      title) and the machine's CPU counters. Two snapshots make a measurement.
  bench_report.py offsets BOOTSTRAP TOPIC PARTITIONS [BASE DEVSIM_JSON ...]
      The records in TOPIC, as JSON on stdout: each partition's earliest and latest offset, asked
      of the broker with Kafka's ListOffsets (v1, over a plain socket). When the broker cannot be
      asked, and only then, the count falls back to BASE plus the 202s of the given devsim reports,
      which is exact only when every request of those runs was answered 202 (each 202 is one record
      written once; a 503 or a lost answer may or may not have left one): otherwise it fails.
  bench_report.py watch-sql TOPIC OFFSETS_JSON
      The progress query of a catch-up for psql's \\watch: prints "<records applied> <partitions
      behind>"; the catch-up is over when no partition is behind.
  bench_report.py render RUN_DIR MD_OUT JSON_OUT
      docs/benchmarks.md and docs/benchmarks.json from the files bench.sh left in RUN_DIR.
"""
import datetime
import json
import os
import platform
import re
import socket
import struct
import sys
import time

# Defaults of the processor (crates/processor/src/config.rs) the report quotes; keep in step.
DEFAULT_CACHE_BUDGET_MB = 512
DEFAULT_BATCH_MAX_WAIT_MS = 50
DEFAULT_BATCH_MAX_EVENTS = 2000

# Goals of issue 12 (processor, end to end) and of the ingest path.
GOAL_CATCH_UP = 5000.0  # syncs/s, one instance
GOAL_SCALING = 1.7  # two instances ÷ one, given a core per instance
GOAL_PROCESSOR_CPU_US = 100.0
GOAL_POSTGRES_CPU_US = 100.0
GOAL_STATEMENTS = 0.1
GOAL_STORED_BYTES = 1.5 * 1024
GOAL_FRESHNESS_S = 1.0
GOAL_INGEST = 5000.0
GOAL_INGEST_P99_MS = 25.0
GOAL_INGEST_RSS_MB = 150.0
GOAL_BASELINE_RATIO = 10.0
# Goals of issue 13 (ingest fast path, bounded validation, a cheap load generator).
GOAL17_SSE_P99_MS = 100.0  # commit to SSE client, 1,000 streams, 50% of ingest saturation
GOAL17_RECOMPUTE = 20_000.0  # user-days/s
GOAL13_SATURATION = 10_000.0  # syncs/s, everything on this machine
GOAL13_INGEST_CPU_US = 60.0  # ingest-api CPU per accepted sync
GOAL13_DEVSIM_CPU_US = 15.0  # devsim CPU per request
GOAL13_P99_HALF_MS = 10.0  # p99 at 50% of saturation
GOAL13_PARSE_US = 40.0  # criterion: parse + validate a standard sync
GOAL13_ENCODE_US = 10.0  # criterion: encode DeviceSynced as production does
GOAL13_RSS_MB = 100.0  # ingest-api RSS at saturation
GOAL13_RSS_ABUSE_MB = 150.0  # ingest-api RSS after 20 gzip-bomb and violation-flood requests
# Cores at least this busy (share of all) make a run CPU-bound.
CPU_BOUND_SHARE = 0.85


# ----------------------------------------------------------------------------------------------
# snapshot


def read_stat(pid):
    """Fields of /proc/PID/stat (the command name may hold spaces and parentheses)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    close = text.rindex(")")
    rest = text[close + 2:].split()
    # rest[0] is field 3 (state): field N is rest[N - 3]. 4 ppid, 14 utime, 15 stime, 16 cutime, 17 cstime.
    return {
        "pid": int(pid),
        "comm": text[text.index("(") + 1:close],
        "ppid": int(rest[1]),
        "ticks": int(rest[11]) + int(rest[12]),
        "child_ticks": int(rest[13]) + int(rest[14]),
    }


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return ""


def machine_cpu():
    """The machine's CPU time so far, in ticks: busy (user, nice, system, irq, softirq, steal), idle, iowait."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:9]] + [0] * 8
                return {"busy": v[0] + v[1] + v[2] + v[5] + v[6] + v[7], "idle": v[3], "iowait": v[4]}
    return None


def snapshot(out, database, roles):
    processes = []
    for item in roles:
        role, _, pid = item.partition("=")
        entry = {"role": role, "pid": int(pid), "alive": False}
        try:
            entry.update(read_stat(pid), alive=True)
            entry["vm_hwm_kb"] = status_kb(pid, "VmHWM")
            entry["vm_rss_kb"] = status_kb(pid, "VmRSS")
        except (OSError, ValueError, IndexError):
            pass
        processes.append(entry)
    postgres, others = [], []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = read_stat(pid)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if st["comm"] == "postgres":
            st["title"] = title(pid)
            postgres.append(st)
        elif st["ticks"]:
            # Everything else, to name what else used the cores during a run.
            others.append({k: st[k] for k in ("pid", "comm", "ticks")})
    snap = {
        "time": time.time(),
        "monotonic": time.monotonic(),
        "clk_tck": os.sysconf("SC_CLK_TCK"),  # what `getconf CLK_TCK` prints
        "cpus": os.cpu_count(),
        "database": database,
        "machine": machine_cpu(),
        "processes": processes,
        "postgres": postgres,
        "others": others,
    }
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(snap, f)
    os.replace(tmp, out)


# ----------------------------------------------------------------------------------------------
# offsets: Kafka ListOffsets v1 (nisshi 0.8.1 serves versions 0-6), request and response not flexible


def _kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _recv(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def list_offsets(bootstrap, topic, partitions, timestamp, correlation_id=1):
    """{partition: offset} for timestamp -1 (latest: the high watermark) or -2 (earliest)."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    body = struct.pack(">i", -1)  # replica_id: a consumer
    body += struct.pack(">i", 1) + _kstr(topic) + struct.pack(">i", len(partitions))
    for p in partitions:
        body += struct.pack(">iq", p, timestamp)
    header = struct.pack(">hhi", 2, 1, correlation_id) + _kstr("fitness-bench")
    request = header + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv(sock, 4))
        data = _recv(sock, size)
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    (corr,) = take(">i")
    if corr != correlation_id:
        raise ValueError(f"answer to request {corr}, not {correlation_id}")
    offsets = {}
    (ntopics,) = take(">i")
    for _ in range(ntopics):
        (n,) = take(">h")
        name = data[pos:pos + n].decode()
        pos += n
        (nparts,) = take(">i")
        for _ in range(nparts):
            partition, error, _ts, offset = take(">ihqq")
            if name != topic:
                continue
            if error != 0:
                raise ValueError(f"{topic} partition {partition}: Kafka error code {error}")
            offsets[partition] = offset
    missing = set(partitions) - set(offsets)
    if missing:
        raise ValueError(f"{topic}: no offsets for partitions {sorted(missing)}")
    return offsets


def clean_devsim(report):
    """202s of a devsim run or load report, when every request was answered 202 (else None)."""
    if "by_status" in report:  # devsim run
        statuses = {str(k): v for k, v in report["by_status"].items()}
        clean = set(statuses) <= {"202"} and report.get("transport_errors", 0) == 0 and report.get("requests") == report.get("accepted")
    else:  # devsim load
        clean = not report.get("errors") and report.get("requests") == report.get("accepted")
    return report["accepted"] if clean else None


def offsets(bootstrap, topic, partitions, base=None, reports=()):
    parts = list(range(partitions))
    try:
        latest = list_offsets(bootstrap, topic, parts, -1, 1)
        earliest = list_offsets(bootstrap, topic, parts, -2, 2)
        return {
            "topic": topic,
            "method": "ListOffsets",
            "partitions": {str(p): {"earliest": earliest[p], "latest": latest[p]} for p in parts},
            "records": sum(latest[p] - earliest[p] for p in parts),
        }
    except (OSError, ValueError, struct.error) as e:
        print(f"bench_report: asking {bootstrap} for the offsets of {topic} failed: {e}", file=sys.stderr)
        if base is None:
            raise SystemExit(1)
    total = int(base)
    for path in reports:
        with open(path) as f:
            accepted = clean_devsim(json.load(f))
        if accepted is None:
            print(f"bench_report: {path} has answers other than 202, so its record count is unknown", file=sys.stderr)
            raise SystemExit(1)
        total += accepted
    print(f"bench_report: counting {total} records from the 202s instead (every request was answered 202)", file=sys.stderr)
    return {"topic": topic, "method": "devsim 202s", "partitions": None, "records": total}


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


def watch_sql(topic, offsets_path):
    with open(offsets_path) as f:
        o = json.load(f)
    if o.get("partitions"):
        values = ", ".join(f"({int(p)}, {int(v['earliest'])}::bigint, {int(v['latest'])}::bigint)" for p, v in o["partitions"].items())
        return (
            "SELECT coalesce(sum(GREATEST(LEAST(coalesce(w.committed_offset, -1) + 1, t.hi) - t.lo, 0)), 0)::bigint"
            " || ' ' || count(*) FILTER (WHERE coalesce(w.committed_offset, -1) + 1 < t.hi)\n"
            f"FROM (VALUES {values}) AS t(p, lo, hi)\n"
            f"LEFT JOIN partition_watermarks w ON w.topic = {sql_literal(topic)} AND w.kafka_partition = t.p\n"
        )
    # Offsets unknown: the topic is fresh (offsets from 0, one per record), so the watermarks add up
    # to the number of records applied.
    n = int(o["records"])
    return (
        "SELECT coalesce(sum(committed_offset + 1), 0)::bigint || ' ' ||"
        f" CASE WHEN coalesce(sum(committed_offset + 1), 0) >= {n} THEN 0 ELSE 1 END\n"
        f"FROM partition_watermarks WHERE topic = {sql_literal(topic)}\n"
    )


# ----------------------------------------------------------------------------------------------
# render: reading what bench.sh left


class Run:
    def __init__(self, run_dir):
        self.dir = run_dir

    def path(self, *name):
        return os.path.join(self.dir, *name)

    def json(self, *name):
        try:
            with open(self.path(*name)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def text(self, *name):
        try:
            with open(self.path(*name)) as f:
                return f.read()
        except OSError:
            return None

    def facts(self):
        out = {}
        for line in (self.text("facts.txt") or "").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip()
        return out


def metric(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`; None when there is none."""
    if not text:
        return None
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            seen = True
    return total if seen else None


def histogram(text, name):
    buckets = {}
    for line in (text or "").splitlines():
        m = re.match(name + r'_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            buckets[m.group(1)] = float(m.group(2))
    return buckets


def quantile(before, after, q):
    """Upper bound of the bucket holding quantile q of the observations between the two scrapes."""
    deltas = sorted(((float("inf") if k == "+Inf" else float(k)), after[k] - before.get(k, 0)) for k in after)
    total = deltas[-1][1] if deltas else 0
    if total <= 0:
        return None
    for le, count in deltas:
        if count >= q * total:
            return le
    return None


def micro(text):
    out, name = [], None
    for line in (text or "").splitlines():
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


MICRO_SCALE = {"ns": 1e-3, "µs": 1.0, "\u03bcs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}


def micro_us(entries, needle):
    for name, (value, unit) in entries:
        if needle in name and unit in MICRO_SCALE:
            try:
                return float(value) * MICRO_SCALE[unit]
            except ValueError:
                return None
    return None


def micro_prefixed(entries, *prefixes):
    """(name, µs) of the first benchmark whose name starts with the first prefix that has one;
    benchmarks kept "for comparison" do not count."""
    for prefix in prefixes:
        for name, (value, unit) in entries:
            if name.startswith(prefix) and "comparison" not in name and unit in MICRO_SCALE:
                try:
                    return name, float(value) * MICRO_SCALE[unit]
                except ValueError:
                    return name, None
    return None, None


def kb_to_mb(kb):
    """/proc's kB (KiB) in MB (10^6 bytes), the unit of the issue's memory goals."""
    return None if kb is None else kb * 1024 / 1e6


def saturation_figures(start, end, load, times_text):
    """CPU per accepted sync of ingest-api and the broker over the saturation run (two snapshots),
    the machine's busy cores, ingest-api's VmRSS and VmHWM at its end, and devsim's CPU: its own
    figure (while sending, from its JSON) and its whole process's (set-up included, bash `times`)."""
    out = {}
    accepted = (load or {}).get("accepted") or 0
    completed = (load or {}).get("completed") or 0
    if load:
        out["devsim_cpu_us_per_request"] = load.get("cpu_us_per_request")
        out["devsim_cpu_s"] = load.get("cpu_s")
    # `times` in the subshell: line 1 the shell itself, line 2 its children (devsim): user system.
    lines = (times_text or "").strip().splitlines()
    if len(lines) >= 2 and completed:
        secs = [int(m) * 60 + float(x) for m, x in re.findall(r"(\d+)m([\d.]+)s", lines[1])]
        if len(secs) == 2:
            out["devsim_cpu_s_whole_process"] = round(sum(secs), 3)
            out["devsim_cpu_us_per_request_whole_process"] = round(sum(secs) * 1e6 / completed, 1)
    if not start or not end:
        return out
    clk = float(end["clk_tck"])
    wall = end["monotonic"] - start["monotonic"]
    out["wall_s"] = round(wall, 2)
    before = {p["role"]: p for p in start["processes"] if p.get("alive")}
    for p in end["processes"]:
        if not p.get("alive"):
            continue
        role, b = p["role"], before.get(p["role"])
        if b and b["pid"] == p["pid"]:
            cpu_s = (p["ticks"] - b["ticks"]) / clk
            out[f"{role}_cpu_s"] = round(cpu_s, 2)
            out[f"{role}_cores"] = round(cpu_s / wall, 2) if wall > 0 else None
            if accepted:
                out[f"{role}_cpu_us_per_sync"] = round(cpu_s * 1e6 / accepted, 1)
        out[f"{role}_vm_rss_kb"] = p.get("vm_rss_kb")
        out[f"{role}_vm_hwm_kb"] = p.get("vm_hwm_kb")
    m0, m1 = start.get("machine"), end.get("machine")
    if m0 and m1 and wall > 0:
        out["busy_cores"] = round((m1["busy"] - m0["busy"]) / clk / wall, 2)
    # What else ran, as far as /proc shows it: processes alive at both ends, not the measured ones
    # and not devsim. (Children reaped meanwhile are left out: a reaped child brings its whole
    # lifetime's time, most of it from before the run.)
    skip = {p["pid"] for p in end["processes"]}
    first = {p["pid"]: p for p in start.get("others") or []}
    busy_others = []
    for p in end.get("others") or []:
        b = first.get(p["pid"])
        if not b or p["pid"] in skip or p["comm"] != b["comm"] or p["comm"] == "devsim" or wall <= 0:
            continue
        cores = (p["ticks"] - b["ticks"]) / clk / wall
        if cores >= 0.05:
            busy_others.append({"comm": p["comm"], "pid": p["pid"], "cores": round(cores, 2)})
    out["other_processes"] = sorted(busy_others, key=lambda p: -p["cores"])[:5]
    three = [out.get("ingest_cores"), out.get("broker_cores"),
             out["devsim_cpu_s"] / wall if out.get("devsim_cpu_s") is not None and wall > 0 else None]
    if out.get("busy_cores") is not None and None not in three:
        out["unaccounted_cores"] = round(out["busy_cores"] - sum(three), 2)
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def memory_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024)
    except (OSError, ValueError):
        pass
    return None


def postgres_ticks(snap, root):
    """CPU ticks of a PostgreSQL cluster so far: every live process of it (the postmaster `root`
    and its children) plus what the postmaster reaped of its exited children (cutime + cstime).
    root None: every process named postgres, with the reaped time of those whose parent is not one."""
    procs = snap.get("postgres") or []
    if not procs:
        return None
    pids = {p["pid"] for p in procs}
    if root is None:
        return sum(p["ticks"] for p in procs) + sum(p["child_ticks"] for p in procs if p["ppid"] not in pids)
    mine = [p for p in procs if p["pid"] == root or p["ppid"] == root]
    if not any(p["pid"] == root for p in mine):
        return None
    return sum(p["ticks"] for p in mine) + sum(p["child_ticks"] for p in mine if p["pid"] == root)


def database_backends(snap, database):
    return {p["pid"]: p for p in snap.get("postgres") or [] if f" {database} " in f" {p.get('title', '')} "}


def catch_up(run, label, records):
    """The figures of one catch-up run (RUN_DIR/catchup-LABEL), or None when it did not run."""
    start, end = run.json(f"catchup-{label}", "start.json"), run.json(f"catchup-{label}", "end.json")
    if not start or not end:
        return None
    clk = float(end["clk_tck"])
    wall = end["monotonic"] - start["monotonic"]
    metrics = []
    i = 0
    while True:
        text = run.text(f"catchup-{label}", f"metrics-{i}.txt")
        if text is None:
            break
        metrics.append(text)
        i += 1

    def total(name, **labels):
        values = [metric(t, name, **labels) for t in metrics]
        values = [v for v in values if v is not None]
        return sum(values) if values else None

    before = {p["pid"]: p for p in start["processes"] if p.get("alive")}

    def ticks(role):
        procs = [p for p in end["processes"] if p["role"] == role and p.get("alive")]
        if not procs:
            return None, []
        return sum(p["ticks"] - before.get(p["pid"], {}).get("ticks", 0) for p in procs), procs

    proc_ticks, processors = ticks("processor")
    broker_ticks, _ = ticks("broker")
    applied = total("processor_events_total", outcome="applied")
    per_sync = applied if applied else records
    us = lambda t: None if t is None or not per_sync else t / clk * 1e6 / per_sync

    # PostgreSQL: the cluster that serves the benchmark database (the parent of its backends).
    backends = database_backends(end, end["database"])
    roots = {p["ppid"] for p in backends.values()}
    root = roots.pop() if len(roots) == 1 else None
    pg_start, pg_end = postgres_ticks(start, root), postgres_ticks(end, root)
    pg_ticks = None if pg_start is None or pg_end is None else pg_end - pg_start
    start_backends = database_backends(start, end["database"])
    db_ticks = sum(p["ticks"] - start_backends.get(pid, {}).get("ticks", 0) for pid, p in backends.items()) if backends else None

    m0, m1 = start.get("machine"), end.get("machine")
    busy_cores = iowait_cores = None
    if m0 and m1 and wall > 0:
        busy_cores = (m1["busy"] - m0["busy"]) / clk / wall
        iowait_cores = (m1["iowait"] - m0["iowait"]) / clk / wall
    accounted = sum(t for t in (proc_ticks, pg_ticks, broker_ticks) if t is not None) / clk / wall if wall > 0 else None
    statements = total("processor_sql_statements_total")
    batches = total("processor_batch_events_count")
    batch_events = total("processor_batch_events_sum")
    batch_seconds = total("processor_batch_seconds_sum")
    hits, misses = total("processor_cache_hits_total"), total("processor_cache_misses_total")
    hwm = [p.get("vm_hwm_kb") for p in processors if p.get("vm_hwm_kb")]
    outcomes = {}
    for t in metrics:
        for m in re.finditer(r'^processor_events_total\{outcome="([^"]+)"\} (\S+)', t, re.M):
            outcomes[m.group(1)] = outcomes.get(m.group(1), 0) + int(float(m.group(2)))
    return {
        "instances": len([p for p in end["processes"] if p["role"] == "processor"]),
        "seconds": round(wall, 2),
        "records": records,
        "applied": int(applied) if applied is not None else None,
        "syncs_per_s": round(records / wall, 1) if wall > 0 else None,
        "processor_cpu_us_per_sync": rnd(us(proc_ticks), 1),
        "postgres_cpu_us_per_sync": rnd(us(pg_ticks), 1),
        "postgres_method": "cluster" if root is not None else ("all postgres processes" if pg_ticks is not None else None),
        "postgres_db_backends_cpu_us_per_sync": rnd(us(db_ticks), 1),
        "broker_cpu_us_per_sync": rnd(us(broker_ticks), 1),
        "busy_cores": rnd(busy_cores, 2),
        "iowait_cores": rnd(iowait_cores, 2),
        "accounted_cores": rnd(accounted, 2),
        "rss_mib": rnd(max(hwm) / 1024, 1) if hwm else None,
        "rss_mib_each": [rnd(h / 1024, 1) for h in hwm],
        "statements": int(statements) if statements is not None else None,
        "statements_per_sync": rnd(statements / per_sync, 4) if statements is not None and per_sync else None,
        "batches": int(batches) if batches is not None else None,
        "mean_batch_events": rnd(batch_events / batches, 1) if batches else None,
        "mean_batch_ms": rnd(batch_seconds / batches * 1000, 1) if batches and batch_seconds is not None else None,
        "statements_per_batch": rnd(statements / batches, 1) if batches and statements is not None else None,
        "cache_hits": int(hits) if hits is not None else None,
        "cache_misses": int(misses) if misses is not None else None,
        "cache_hit_ratio": rnd(hits / (hits + misses), 3) if hits is not None and misses is not None and hits + misses > 0 else None,
        "cache_mib": rnd(total("processor_cache_bytes") / 1024 / 1024, 1) if total("processor_cache_bytes") is not None else None,
        "cache_users": int(total("processor_cache_users")) if total("processor_cache_users") is not None else None,
        "events": outcomes,
        "retries": int(total("processor_retries_total")) if total("processor_retries_total") is not None else None,
    }


def rnd(v, digits):
    return None if v is None else round(v, digits)


def tables(run, syncs):
    """Per-table sizes after the one-instance catch-up: relname|total|heap|indexes|toast and relname|rows."""
    rows = {}
    for line in (run.text("catchup-1", "rows.txt") or "").splitlines():
        parts = line.split("|")
        if len(parts) == 2 and parts[1].strip().isdigit():
            rows[parts[0]] = int(parts[1])
    out = []
    for line in (run.text("catchup-1", "tables.txt") or "").splitlines():
        parts = line.split("|")
        if len(parts) != 5 or not all(p.strip().isdigit() for p in parts[1:]):
            continue
        name, total, heap, indexes, toast = parts[0], *(int(p) for p in parts[1:])
        out.append({
            "table": name, "rows": rows.get(name), "bytes": total, "heap_bytes": heap, "index_bytes": indexes,
            "toast_bytes": toast, "bytes_per_sync": round(total / syncs, 1) if syncs else None,
        })
    out.sort(key=lambda t: -t["bytes"])
    return out


def fnum(v, digits=0, unit=""):
    if v is None:
        return "not measured"
    if digits == 0:
        return f"{v:,.0f}{unit}"
    return f"{v:,.{digits}f}{unit}"


def bucket(v):
    if v is None:
        return "not measured"
    return "> 300 s" if v == float("inf") else f"≤ {v:g} s"


def cli_run(run, name, pattern):
    """A CLI run of the bench (RUN_DIR/NAME): its output line matched by `pattern`, its wall and CPU
    time from time(1) (`%e %U %S`), and PostgreSQL's CPU between the snapshots around it."""
    out = run.text(name, "out.txt") or ""
    m = re.search(pattern, out)
    times = (run.text(name, "time.txt") or "").split()
    start, end = run.json(name, "start.json"), run.json(name, "end.json")
    if not m or len(times) < 3:
        return None
    wall, cpu = float(times[-3]), float(times[-2]) + float(times[-1])
    pg_s = None
    if start and end:
        a, b = postgres_ticks(start, None), postgres_ticks(end, None)
        if a is not None and b is not None:
            pg_s = (b - a) / float(end["clk_tck"])
    return {"match": m, "wall_s": wall, "cpu_s": cpu, "postgres_cpu_s": pg_s}


def issue17(run, rate1):
    """Live updates, recompute and rebuild: the figures and goals of issue 17."""
    watch = run.json("e2e", "watch.json")
    sse_p99 = watch["delivery_ms"]["p99"] if watch and watch.get("sync_events") else None
    rb = cli_run(run, "rebuild", r"rebuilt the model from (\d+) record\(s\) of (\d+) partition\(s\) in ([\d.]+) s")
    rebuild = None
    if rb:
        records, seconds = int(rb["match"].group(1)), float(rb["match"].group(3))
        rebuild = {
            "records": records,
            "seconds": seconds,
            "syncs_per_s": rnd(records / seconds, 0) if seconds > 0 else None,
            "processor_cpu_us_per_sync": rnd(rb["cpu_s"] / records * 1e6, 1) if records else None,
            "postgres_cpu_us_per_sync": rnd(rb["postgres_cpu_s"] / records * 1e6, 1) if records and rb["postgres_cpu_s"] is not None else None,
        }
    rc = cli_run(run, "recompute", r"recomputed (\d+) user\(s\), (\d+) user-day\(s\)")
    recompute = None
    if rc:
        users, days = int(rc["match"].group(1)), int(rc["match"].group(2))
        recompute = {
            "users": users,
            "user_days": days,
            "seconds": rc["wall_s"],
            "user_days_per_s": rnd(days / rc["wall_s"], 0) if rc["wall_s"] > 0 else None,
            "processor_cpu_us_per_user_day": rnd(rc["cpu_s"] / days * 1e6, 1) if days else None,
            "postgres_cpu_us_per_user_day": rnd(rc["postgres_cpu_s"] / days * 1e6, 1) if days and rc["postgres_cpu_s"] is not None else None,
        }
    sse = None
    if watch:
        sse = {
            "streams": watch.get("streams"),
            "sync_events": watch.get("sync_events"),
            "reopened": watch.get("reopened"),
            "delivery_p50_ms": watch["delivery_ms"]["p50"],
            "delivery_p90_ms": watch["delivery_ms"]["p90"],
            "delivery_p99_ms": sse_p99,
            "delivery_max_ms": watch["delivery_ms"]["max"],
        }
    rb_rate = rebuild["syncs_per_s"] if rebuild else None
    goals = [
        {"figure": "live update delivery p99 (commit to SSE client), 1,000 streams, 50% of ingest saturation",
         "key": "sse.delivery_p99_ms", "goal": f"≤ {GOAL17_SSE_P99_MS:g} ms", "measured": sse_p99,
         "measured_text": fnum(sse_p99, 1, " ms"), "met": None if sse_p99 is None else sse_p99 <= GOAL17_SSE_P99_MS},
        {"figure": "recompute after a model version bump", "key": "recompute.user_days_per_s",
         "goal": f"≥ {GOAL17_RECOMPUTE:,.0f} user-days/s", "measured": recompute and recompute["user_days_per_s"],
         "measured_text": fnum(recompute and recompute["user_days_per_s"], 0, " user-days/s"),
         "met": None if not recompute else (recompute["user_days_per_s"] or 0) >= GOAL17_RECOMPUTE},
        {"figure": "rebuild from the log", "key": "rebuild.syncs_per_s",
         "goal": "= the catch-up rate" + (f" ({rate1:,.0f} syncs/s)" if rate1 else ""), "measured": rb_rate,
         "measured_text": fnum(rb_rate, 0, " syncs/s"),
         "met": None if not rb_rate or not rate1 else rb_rate >= 0.9 * rate1},
    ]
    return {"sse": sse, "recompute": recompute, "rebuild": rebuild}, goals


def render(run_dir, md_out, json_out):
    run = Run(run_dir)
    facts = run.facts()
    cores = os.cpu_count() or 1
    command = facts.get("command", "make bench")
    micro_entries = micro(run.text("micro.txt"))
    micro_text = run.text("micro.txt") or ""

    # ---- ingest
    sat = run.json("saturation.json")
    sat_v = float(sat["accepted_per_s"]) if sat else None
    rates = {pct: run.json(f"rate{pct}.json") for pct in (25, 50, 75)}
    r50 = rates[50]["latency_ms"]["p99_ms"] if rates[50] else None
    ingest_rss_kb = facts.get("ingest_rss_kb")
    ingest_rss_mib = int(ingest_rss_kb) / 1024 if ingest_rss_kb and ingest_rss_kb.isdigit() else None
    satx = saturation_figures(run.json("saturation-start.json"), run.json("saturation-end.json"), sat,
                              run.text("saturation-devsim-times.txt"))
    abuse = run.json("abuse.json")
    abuse_end = run.json("abuse-end.json")
    abuse_ingest = next((p for p in (abuse_end or {}).get("processes", []) if p["role"] == "ingest" and p.get("alive")), None)
    alive_after_abuse = {"1": True, "0": False}.get(facts.get("ingest_alive_after_abuse"))
    base_sat, base_same, base_own = run.json("base-saturation.report"), run.json("base-rate-same.report"), run.json("base-rate-own.report")
    ratio_p99 = None
    if base_same and rates[50]:
        ratio_p99 = base_same["latency_ms"]["p99_ms"] / max(rates[50]["latency_ms"]["p99_ms"], 1e-9)

    # ---- backlog and catch-up
    backlog_offsets = run.json("backlog-offsets.json") or {}
    records = backlog_offsets.get("records")
    backlog = run.json("backlog.json")
    one, two = catch_up(run, "1", records), catch_up(run, "2", records)
    rows_one = tables(run, (one or {}).get("applied") or records)
    stored_total = sum(t["bytes"] for t in rows_one) if rows_one else None
    syncs_one = (one or {}).get("applied") or records
    stored_per_sync = stored_total / syncs_one if stored_total is not None and syncs_one else None
    distinct_syncs = next((t["rows"] for t in rows_one if t["table"] == "sync_status"), None)
    rate1 = one["syncs_per_s"] if one else None
    rate2 = two["syncs_per_s"] if two else None
    scaling = round(rate2 / rate1, 2) if rate1 and rate2 else None
    cache_budget = int(facts.get("cache_budget_mb") or DEFAULT_CACHE_BUDGET_MB)
    batch_wait_ms = int(facts.get("batch_max_wait_ms") or DEFAULT_BATCH_MAX_WAIT_MS)

    # ---- end to end
    before, after = run.text("e2e", "metrics-before.txt"), run.text("e2e", "metrics-after.txt")
    hb, ha = histogram(before, "processor_end_to_end_lag_seconds"), histogram(after, "processor_end_to_end_lag_seconds")
    p50, p99 = quantile(hb, ha, 0.5), quantile(hb, ha, 0.99)
    e2e_load = run.json("e2e", "e2e-load.json")
    e2e_rate = (e2e_load or {}).get("target_rate_per_s")
    e2e_caught_up = facts.get("e2e_caught_up") == "1"
    e2e_drain_s = float(facts["e2e_drain_s"]) if facts.get("e2e_drain_s") else None
    observed = None
    if ha:
        observed = ha.get("+Inf", 0) - hb.get("+Inf", 0)
    e2e_batch_ms = None
    bc0, bc1 = metric(before, "processor_batch_seconds_count"), metric(after, "processor_batch_seconds_count")
    bs0, bs1 = metric(before, "processor_batch_seconds_sum"), metric(after, "processor_batch_seconds_sum")
    if None not in (bc0, bc1, bs0, bs1) and bc1 > bc0:
        e2e_batch_ms = (bs1 - bs0) / (bc1 - bc0) * 1000

    # ---- rules: what bounds each figure
    # The processor's own path for the latest schema (direct); older writers resolve through Value.
    decode_us = micro_us(micro_entries, "decode one DeviceSynced directly")
    # The ingest benchmarks by prefix: "ingest: parse…", and "ingest: encode…" (the production
    # path) or else the older "ingest: build and Avro-encode…".
    parse_name, parse_us = micro_prefixed(micro_entries, "ingest: parse")
    encode_name, encode_us = micro_prefixed(micro_entries, "ingest: encode", "ingest: build")

    def cpu_parts(r):
        parts = [f"processor {fnum(r['processor_cpu_us_per_sync'])} µs", f"PostgreSQL {fnum(r['postgres_cpu_us_per_sync'])} µs"]
        if r.get("broker_cpu_us_per_sync") is not None:
            parts.append(f"broker {fnum(r['broker_cpu_us_per_sync'])} µs")
        return " + ".join(parts) + " per sync"

    def per_sync_total(r):
        vals = [r.get(k) for k in ("processor_cpu_us_per_sync", "postgres_cpu_us_per_sync", "broker_cpu_us_per_sync")]
        return sum(v for v in vals if v is not None) if any(v is not None for v in vals) else None

    def cpu_bound(r):
        return r and r.get("busy_cores") is not None and r["busy_cores"] >= CPU_BOUND_SHARE * cores

    def rate_bound(r):
        if not r:
            return "not measured (the catch-up did not run; see the bench logs)"
        t = per_sync_total(r)
        ceiling = f", a ceiling of {cores * 1e6 / t:,.0f} syncs/s on {cores} cores" if t else ""
        if cpu_bound(r):
            return (f"CPU: the {cores} cores were {r['busy_cores'] / cores:.0%} busy; {cpu_parts(r)}"
                    f" = {fnum(t)} µs of CPU per sync{ceiling}")
        if r.get("iowait_cores") is not None and r["iowait_cores"] >= 0.25:
            return (f"I/O: {r['iowait_cores']:.2f} cores' worth of time went to I/O wait while the cores were only "
                    f"{r['busy_cores'] / cores:.0%} busy ({cpu_parts(r)})")
        busy = f"{r['busy_cores'] / cores:.0%}" if r.get("busy_cores") is not None else "an unmeasured share"
        return (f"waiting, not CPU: the {cores} cores were {busy} busy ({cpu_parts(r)}); batches averaged "
                f"{fnum(r.get('mean_batch_events'))} events and {fnum(r.get('mean_batch_ms'))} ms from first event to commit, "
                "so the pipeline's batch waits and round trips to PostgreSQL bound it")

    def scaling_bound():
        if not one or not two:
            return "not measured"
        if cpu_bound(one):
            return (f"CPU: one instance already kept the {cores} cores {one['busy_cores'] / cores:.0%} busy ({cpu_parts(one)}), "
                    "so a second instance has no idle core to use")
        if cpu_bound(two):
            return (f"CPU: with two instances the {cores} cores were {two['busy_cores'] / cores:.0%} busy ({cpu_parts(two)}; "
                    f"one instance: {cpu_parts(one)})")
        if one.get("busy_cores") is None or two.get("busy_cores") is None:
            return "not CPU-bound by the figures at hand"
        ceiling = cores / one["busy_cores"] if one["busy_cores"] else None
        text = (f"the {cores} cores are shared: one instance already kept {one['busy_cores']:.2f} of them busy "
                f"({cpu_parts(one)}), so a second instance on the same cores can add at most "
                f"{fnum(ceiling, 2)}× ({two['busy_cores'] / cores:.0%} busy with two)")
        if one.get("seconds") is not None:
            text += (f"; and in a {fnum(one['seconds'], 1)} s run the fixed part (processes starting, the group's join and "
                     "rebalance, the last batch) does not shrink with a second instance")
        return text

    def processor_cpu_bound():
        if not one or one.get("processor_cpu_us_per_sync") is None:
            return "not measured"
        us = one["processor_cpu_us_per_sync"]
        if decode_us:
            return (f"Avro decoding alone costs {decode_us:.0f} µs per event (micro benchmark, direct path), "
                    f"{min(decode_us / us, 1):.0%} of the {us:.0f} µs; the rest is merging samples, the day and series "
                    "recomputation and librdkafka")
        return f"{us:.0f} µs per sync: decoding, merging samples, the day and series recomputation and librdkafka"

    def postgres_cpu_bound():
        if not one or one.get("postgres_cpu_us_per_sync") is None:
            return "not measured (no PostgreSQL process visible in /proc)"
        biggest = rows_one[0] if rows_one else None
        text = (f"{fnum(one.get('statements_per_sync'), 3)} statements per sync in polled batches of "
                f"{fnum(one.get('mean_batch_events'))} events on average (one transaction per partition of a batch), so the "
                "work is writing rows and indexes")
        if stored_per_sync is not None:
            text += f": {fnum(stored_per_sync)} bytes stored per sync"
        if biggest:
            text += f", most in {biggest['table']} ({fnum(biggest['bytes_per_sync'])} bytes per sync)"
        return text

    def statements_bound():
        if not one or one.get("statements_per_batch") is None:
            return "not measured"
        return (f"about {one['statements_per_batch']:.0f} statements per polled batch (one transaction per partition in it) "
                f"and {one['mean_batch_events']:.0f} events per batch on average: statements per sync = statements per "
                f"batch ÷ events per batch, so fuller batches (PROCESSOR_BATCH_MAX_EVENTS {facts.get('batch_max_events') or DEFAULT_BATCH_MAX_EVENTS}, "
                f"PROCESSOR_BATCH_MAX_WAIT_MS {batch_wait_ms}) lower it")

    def stored_bound():
        if not rows_one:
            return "not measured"
        b = rows_one[0]
        return (f"{b['table']} holds {fnum(b['bytes_per_sync'])} bytes per sync ({b['bytes'] / max(stored_total, 1):.0%} of "
                "the total, table, indexes and TOAST together)")

    def rss_bound():
        if not one or one.get("rss_mib") is None:
            return "not measured"
        return (f"the model cache (budget {cache_budget} MiB; {fnum(one.get('cache_mib'), 1)} MiB for "
                f"{fnum(one.get('cache_users'))} users at the end) plus librdkafka's fetch queues and the batch in flight")

    def e2e_bound():
        if p99 is None:
            return "not measured"
        if rate1 and e2e_rate and e2e_rate > rate1:
            return (f"processor throughput: one processor applies {rate1:,.0f} syncs/s here, less than the "
                    f"{e2e_rate:,.0f}/s load, so the lag grows for the length of the run")
        if not e2e_caught_up:
            return "the processor had not applied the whole load when the measurement ended, so the lag grew during the run"
        text = (f"batching and shared cores: the processor kept up (catch-up {fnum(rate1)} syncs/s vs a {fnum(e2e_rate)}/s load) "
                f"and p99 fell in the {bucket(p99)} bucket; a batch waits up to {batch_wait_ms} ms to fill")
        if e2e_batch_ms is not None:
            text += f" and took {e2e_batch_ms:.0f} ms on average from first event to commit"
        text += f", on {cores} cores shared with ingest-api, the broker and the load generator"
        ingest_p99 = e2e_load["latency_ms"]["p99_ms"] if e2e_load else None
        if ingest_p99 is not None:
            # Freshness starts at ingest-api's clock, so ingest's own latency under the shared load is in it.
            text += (f"; freshness starts when ingest-api accepts the request, and ingest-api's own p99 in this run "
                     f"was {ingest_p99:,.0f} ms")
        return text

    def ingest_bound():
        # Per process CPU, from the saturation run, as the "Ingest goals" section works it out.
        cpu = [satx.get("ingest_cpu_us_per_sync"), satx.get("broker_cpu_us_per_sync"), satx.get("devsim_cpu_us_per_request")]
        if all(v is not None for v in cpu):
            return (f"CPU and waiting on {cores} shared cores: per sync ingest-api {cpu[0]:.0f} µs (parsing and validating "
                    f"{parse_us or 0:.0f} µs, encoding {encode_us or 0:.0f} µs, the rest HTTP and the Kafka client), the broker "
                    f"{cpu[1]:.0f} µs and the load generator {cpu[2]:.0f} µs; see [Ingest goals](#ingest-goals-issue-13)")
        return f"CPU: parsing, validating and encoding on the same {cores} cores as the broker and the load generator"

    def p99_bound():
        if r50 is None:
            return "not measured"
        over = float(r50) / GOAL_INGEST_P99_MS - 1
        where = f"{over:.0%} over" if over > 0 else f"{-over:.0%} under"
        return f"{where}: the broker, the load generator and ingest-api share {cores} cores"

    def goal(figure, key, goal_text, measured, unit, met, bound_by):
        return {"figure": figure, "key": key, "goal": goal_text, "measured": measured, "unit": unit,
                "met": bool(met), "bound_by": bound_by}

    proc_us = one.get("processor_cpu_us_per_sync") if one else None
    pg_us = one.get("postgres_cpu_us_per_sync") if one else None
    stmts = one.get("statements_per_sync") if one else None
    rss = one.get("rss_mib") if one else None
    p99_num = None if p99 is None or p99 == float("inf") else p99
    goals = [
        goal("ingest throughput", "ingest.saturation_syncs_per_s", f"≥ {GOAL_INGEST:,.0f} syncs/s", sat_v, "syncs/s",
             sat_v is not None and sat_v >= GOAL_INGEST, ingest_bound()),
        goal("ingest p99 at 50% of saturation", "ingest.p99_at_50pct_ms", f"≤ {GOAL_INGEST_P99_MS:g} ms", r50, "ms",
             r50 is not None and float(r50) <= GOAL_INGEST_P99_MS, p99_bound()),
        goal("ingest RSS at saturation", "ingest.rss_mb", f"≤ {GOAL_INGEST_RSS_MB:g} MB",
             rnd(ingest_rss_mib * 1.048576, 0) if ingest_rss_mib else None, "MB",
             ingest_rss_mib is not None and ingest_rss_mib * 1.048576 <= GOAL_INGEST_RSS_MB,
             "the producer queue and connections (peak over the saturation and fixed-rate runs)"),
        goal("baseline p99 ÷ pattern p99 (same load)", "ingest.baseline_p99_over_pattern_p99", f"≥ {GOAL_BASELINE_RATIO:g}",
             rnd(ratio_p99, 1), "×", ratio_p99 is not None and ratio_p99 >= GOAL_BASELINE_RATIO,
             "the baseline's own processing speed" if ratio_p99 is not None else "the baseline run failed"),
        goal("processor catch-up, one instance", "processor.catch_up_syncs_per_s_1", f"≥ {GOAL_CATCH_UP:,.0f} syncs/s", rate1,
             "syncs/s", rate1 is not None and rate1 >= GOAL_CATCH_UP, rate_bound(one)),
        goal("catch-up with two instances ÷ one", "processor.scaling_2_over_1", f"report; ≥ {GOAL_SCALING:g} given a core per instance",
             scaling, "×", scaling is not None and scaling >= GOAL_SCALING, scaling_bound()),
        goal("processor CPU per applied sync", "processor.cpu_us_per_sync", f"≤ {GOAL_PROCESSOR_CPU_US:g} µs", proc_us, "µs",
             proc_us is not None and proc_us <= GOAL_PROCESSOR_CPU_US, processor_cpu_bound()),
        goal("PostgreSQL CPU per applied sync", "postgres.cpu_us_per_sync", f"≤ {GOAL_POSTGRES_CPU_US:g} µs", pg_us, "µs",
             pg_us is not None and pg_us <= GOAL_POSTGRES_CPU_US, postgres_cpu_bound()),
        goal("SQL statements per applied sync", "processor.statements_per_sync", f"≤ {GOAL_STATEMENTS:g}", stmts, "statements",
             stmts is not None and stmts <= GOAL_STATEMENTS, statements_bound()),
        goal("stored bytes per sync", "processor.stored_bytes_per_sync", "≤ 1.5 KiB", rnd(stored_per_sync, 0), "bytes",
             stored_per_sync is not None and stored_per_sync <= GOAL_STORED_BYTES, stored_bound()),
        goal(f"processor peak RSS at the {'default ' if cache_budget == DEFAULT_CACHE_BUDGET_MB else ''}cache budget ({cache_budget} MiB)",
             "processor.rss_mib", "report (counts as met when measured)", rss, "MiB", rss is not None, rss_bound()),
        goal("end-to-end freshness p99 at 50% of ingest saturation", "e2e.freshness_p99_s", f"≤ {GOAL_FRESHNESS_S:g} s", p99_num, "s",
             p99_num is not None and p99_num <= GOAL_FRESHNESS_S, e2e_bound()),
    ]
    measured_text = {
        "ingest.saturation_syncs_per_s": lambda v: f"{fnum(v)} syncs/s" + (f" ({v / GOAL_INGEST:.0%} of the goal)" if v else ""),
        "ingest.p99_at_50pct_ms": lambda v: fnum(v, 1, " ms"),
        "ingest.rss_mb": lambda v: fnum(v, 0, " MB"),
        "ingest.baseline_p99_over_pattern_p99": lambda v: fnum(v, 1, "×"),
        "processor.catch_up_syncs_per_s_1": lambda v: f"{fnum(v)} syncs/s" + (f" ({v / GOAL_CATCH_UP:.0%} of the goal)" if v else ""),
        "processor.scaling_2_over_1": lambda v: fnum(v, 2, "×"),
        "processor.cpu_us_per_sync": lambda v: fnum(v, 0, " µs"),
        "postgres.cpu_us_per_sync": lambda v: fnum(v, 0, " µs"),
        "processor.statements_per_sync": lambda v: fnum(v, 3),
        "processor.stored_bytes_per_sync": lambda v: "not measured" if v is None else f"{v:,.0f} bytes ({v / 1024:.2f} KiB)",
        "processor.rss_mib": lambda v: fnum(v, 1, " MiB"),
        "e2e.freshness_p99_s": lambda v: bucket(p99),
    }

    # ---- issue 13: the ingest goals
    ingest_cpu = satx.get("ingest_cpu_us_per_sync")
    broker_cpu = satx.get("broker_cpu_us_per_sync")
    devsim_cpu = satx.get("devsim_cpu_us_per_request")
    rss_sat_mb = kb_to_mb(satx.get("ingest_vm_hwm_kb"))
    rss_sat_now_mb = kb_to_mb(satx.get("ingest_vm_rss_kb"))
    rss_abuse_mb = kb_to_mb(abuse_ingest.get("vm_hwm_kb")) if abuse_ingest else None
    rss_abuse_now_mb = kb_to_mb(abuse_ingest.get("vm_rss_kb")) if abuse_ingest else None
    parts13 = {"ingest-api": ingest_cpu, "broker": broker_cpu, "devsim": devsim_cpu}
    cpu_sum = sum(parts13.values()) if all(v is not None for v in parts13.values()) else None
    ceiling = cores * 1e6 / cpu_sum if cpu_sum else None
    abuse_kinds = {k["kind"]: k for k in (abuse or {}).get("kinds", [])}

    def abuse_text(kind):
        k = abuse_kinds.get(kind)
        if not k:
            return "not run"
        statuses = ", ".join(f"{n}× {s}" for s, n in k["statuses"].items()) or "no answer"
        extra = []
        if k.get("unanswered"):
            extra.append(f"{k['unanswered']} unanswered")
        if k.get("skipped"):
            extra.append(f"{k['skipped']} skipped after a timeout")
        return statuses + (f" ({', '.join(extra)})" if extra else "")

    def abuse_ok():
        return bool(abuse_kinds) and all(k.get("all_expected") for k in abuse_kinds.values())

    def g13(figure, key, goal_text, measured, text, met):
        return {"figure": figure, "key": key, "goal": goal_text, "measured": measured, "measured_text": text,
                "met": None if met is None else bool(met)}

    goals13 = [
        g13("ingest saturation, standard syncs, everything on this machine", "ingest.saturation_syncs_per_s",
            f"≥ {GOAL13_SATURATION:,.0f} syncs/s", sat_v, fnum(sat_v, 0, " syncs/s"), sat_v is not None and sat_v >= GOAL13_SATURATION),
        g13("ingest-api CPU per accepted sync (saturation run, /proc)", "ingest.cpu_us_per_sync", f"≤ {GOAL13_INGEST_CPU_US:g} µs",
            ingest_cpu, fnum(ingest_cpu, 1, " µs"), ingest_cpu is not None and ingest_cpu <= GOAL13_INGEST_CPU_US),
        g13("devsim CPU per request (saturation run, its own /proc/self/stat)", "devsim.cpu_us_per_request",
            f"≤ {GOAL13_DEVSIM_CPU_US:g} µs", devsim_cpu, fnum(devsim_cpu, 1, " µs"),
            devsim_cpu is not None and devsim_cpu <= GOAL13_DEVSIM_CPU_US),
        g13("broker CPU per accepted sync (saturation run, /proc)", "broker.cpu_us_per_sync", "report", broker_cpu,
            fnum(broker_cpu, 1, " µs"), None if broker_cpu is None else True),
        g13("p99 at 50% of saturation", "ingest.p99_ms_at_half", f"≤ {GOAL13_P99_HALF_MS:g} ms", r50, fnum(r50, 1, " ms"),
            r50 is not None and float(r50) <= GOAL13_P99_HALF_MS),
        g13(f"parse + validate a standard sync (criterion{': ' + parse_name if parse_name else ''})", "micro.parse_validate_us",
            f"≤ {GOAL13_PARSE_US:g} µs", rnd(parse_us, 2), fnum(parse_us, 1, " µs"), parse_us is not None and parse_us <= GOAL13_PARSE_US),
        g13(f"encode DeviceSynced (criterion{': ' + encode_name if encode_name else ''})", "micro.encode_us",
            f"≤ {GOAL13_ENCODE_US:g} µs", rnd(encode_us, 2), fnum(encode_us, 1, " µs"), encode_us is not None and encode_us <= GOAL13_ENCODE_US),
        g13("ingest-api RSS at saturation (VmHWM at the end of the saturation run)", "ingest.rss_mb", f"≤ {GOAL13_RSS_MB:g} MB",
            rnd(rss_sat_mb, 1), fnum(rss_sat_mb, 1, " MB"), rss_sat_mb is not None and rss_sat_mb <= GOAL13_RSS_MB),
        g13("ingest-api RSS after 20 gzip-bomb and violation-flood requests (VmHWM)", "ingest.rss_mb_after_abuse",
            f"≤ {GOAL13_RSS_ABUSE_MB:g} MB", rnd(rss_abuse_mb, 1),
            fnum(rss_abuse_mb, 1, " MB") if alive_after_abuse is not False else "ingest-api exited",
            alive_after_abuse is not False and rss_abuse_mb is not None and rss_abuse_mb <= GOAL13_RSS_ABUSE_MB),
    ]

    def ceiling_paragraph():
        if cpu_sum is None:
            missing = ", ".join(k for k, v in parts13.items() if v is None)
            return f"The CPU ceiling of this machine could not be computed: not measured for {missing}."
        terms = " + ".join(f"{v:,.1f} ({k})" for k, v in parts13.items())
        text = (f"**The {cores}-core ceiling.** Every accepted sync costs ingest-api, the broker and the load generator "
                f"{terms} = {cpu_sum:,.1f} µs of CPU, measured from /proc during the saturation run. {cores} cores give "
                f"{cores * 1e6:,.0f} µs of CPU a second, so this machine can accept at most {cores * 1e6:,.0f} ÷ {cpu_sum:,.1f} = "
                f"**{ceiling:,.0f} syncs/s** with all three on it.")
        biggest = max(parts13, key=parts13.get)
        share = parts13[biggest] / cpu_sum
        if sat_v is None:
            return text
        if sat_v >= GOAL13_SATURATION:
            return text + f" The {GOAL13_SATURATION:,.0f}/s goal is met: {sat_v:,.0f} syncs/s were accepted."
        text += f" The {GOAL13_SATURATION:,.0f}/s goal is **missed**: {sat_v:,.0f} syncs/s were accepted."
        busy = satx.get("busy_cores")
        busy_text = f" (the cores were {busy / cores:.0%} busy during the run)" if busy is not None else ""
        unaccounted = satx.get("unaccounted_cores")
        named = ", ".join(f"{p['comm']} {p['cores']:.2f}" for p in satx.get("other_processes") or [])
        others_text = (f" Other work used about {unaccounted:.2f} of the {cores} cores during the run"
                       f"{f' (of it, in cores: {named})' if named else ''}: the machine was not quiet, so the saturation figure is "
                       "low for this machine, while the per-sync CPU figures hold.") if unaccounted is not None and unaccounted > 0.25 else ""
        if ceiling < GOAL13_SATURATION:
            need = cores * 1e6 / GOAL13_SATURATION
            text += (f" What bounds it is CPU{busy_text}: {GOAL13_SATURATION:,.0f}/s on {cores} cores leaves {need:,.0f} µs per sync "
                     f"for all three processes together, and they use {cpu_sum:,.1f} µs; {biggest} alone takes {share:.0%} of it.")
            others = cpu_sum - (ingest_cpu or 0)
            if others >= need:
                text += (f" The broker and devsim alone ({others:,.1f} µs) already exceed that budget, so no ingest-api, "
                         f"however cheap, reaches {GOAL13_SATURATION:,.0f}/s with them on the same {cores} cores.")
            return text + others_text
        if others_text:
            return (text + f" The ceiling is above the goal, yet the cores were busy{busy_text}." + others_text
                    + f" By the per-sync figures, CPU would allow up to {ceiling:,.0f}/s on a quiet machine.")
        if busy is not None and busy < CPU_BOUND_SHARE * cores:
            return text + (f" The ceiling is above the goal and the cores were only {busy / cores:.0%} busy, so it is not CPU that "
                           "bounds it but waiting: 32 connections, each waiting for the broker's acknowledgement (acks=all, "
                           "idempotent) before its next request.")
        return text + (f" The ceiling is above the goal, yet the cores were busy{busy_text}: CPU used outside the three "
                       "processes measured here (interrupts, short-lived processes) makes the difference.")

    # ---- JSON
    data = {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": cores, "model_name": cpu_model(), "memory_gib": memory_gib(),
                    "kernel": f"{platform.system()} {platform.release()}"},
        "settings": {
            "saturation_seconds": int(facts.get("saturation_seconds") or 10),
            "rate_seconds": int(facts.get("rate_seconds") or 10),
            "backlog_users": int(facts["backlog_users"]) if facts.get("backlog_users") else None,
            "backlog_days": float(facts["backlog_days"]) if facts.get("backlog_days") else None,
            "backlog_topic": facts.get("backlog_topic"),
            "backlog_partitions": int(facts["backlog_partitions"]) if facts.get("backlog_partitions") else None,
            "processor_cache_budget_mb": cache_budget,
            "environment": facts.get("environment") or "",
        },
        "micro": {
            "benchmarks": [{"benchmark": n, "median": float(v), "unit": u} for n, (v, u) in micro_entries if re.match(r"^[0-9.]+$", v)],
            "parse_validate_us": rnd(parse_us, 3),
            "parse_validate_benchmark": parse_name,
            "encode_us": rnd(encode_us, 3),
            "encode_benchmark": encode_name,
        },
        "ingest": {
            "saturation_syncs_per_s": sat_v,
            "saturation_p99_ms": sat["latency_ms"]["p99_ms"] if sat else None,
            "p99_at_50pct_ms": r50,
            "p99_ms_at_half": r50,
            "rss_mib": rnd(ingest_rss_mib, 1),
            "cpu_us_per_sync": ingest_cpu,
            "cores_at_saturation": satx.get("ingest_cores"),
            "machine_busy_cores_at_saturation": satx.get("busy_cores"),
            "other_cores_at_saturation": satx.get("unaccounted_cores"),
            "other_processes_at_saturation": satx.get("other_processes"),
            "rss_mb": rnd(rss_sat_mb, 1),
            "vm_rss_mb_at_saturation_end": rnd(rss_sat_now_mb, 1),
            "vm_hwm_mb_at_saturation_end": rnd(rss_sat_mb, 1),
            "rss_mb_after_abuse": rnd(rss_abuse_mb, 1),
            "vm_rss_mb_after_abuse": rnd(rss_abuse_now_mb, 1),
            "vm_hwm_mb_after_abuse": rnd(rss_abuse_mb, 1),
            "alive_after_abuse": alive_after_abuse,
            "abuse": [{k: v for k, v in kind.items() if k != "requests"} | {"ms": [r.get("ms") for r in kind["requests"]]}
                      for kind in abuse_kinds.values()],
            "cpu_ceiling_syncs_per_s": rnd(ceiling, 0),
            "cpu_us_per_sync_all_processes": rnd(cpu_sum, 1),
            "baseline_saturation_syncs_per_s": base_sat["accepted_per_s"] if base_sat else None,
            "baseline_p99_over_pattern_p99": rnd(ratio_p99, 1),
        },
        "devsim": {
            "cpu_us_per_request": devsim_cpu,
            "cpu_s": satx.get("devsim_cpu_s"),
            "cpu_us_per_request_whole_process": satx.get("devsim_cpu_us_per_request_whole_process"),
            "method": "devsim's own /proc/self/stat (utime + stime) from its first request to its last, saturation run",
        },
        "processor": {
            "backlog_syncs": records,
            "backlog_count_method": backlog_offsets.get("method"),
            "backlog_distinct_sync_ids": distinct_syncs,
            "catch_up_seconds_1": one["seconds"] if one else None,
            "catch_up_seconds_2": two["seconds"] if two else None,
            "catch_up_syncs_per_s_1": rate1,
            "catch_up_syncs_per_s_2": rate2,
            "scaling_2_over_1": scaling,
            "cpu_us_per_sync": proc_us,
            "cpu_us_per_sync_2": two.get("processor_cpu_us_per_sync") if two else None,
            "statements_per_sync": stmts,
            "stored_bytes_per_sync": rnd(stored_per_sync, 0),
            "stored_bytes": stored_total,
            "rss_mib": rss,
            "rss_mib_2": two.get("rss_mib") if two else None,
            "cache_budget_mib": cache_budget,
            "cache_hit_ratio": one.get("cache_hit_ratio") if one else None,
            "tables": rows_one,
            "runs": [r for r in (one, two) if r],
        },
        "postgres": {
            "cpu_us_per_sync": pg_us,
            "cpu_us_per_sync_2": two.get("postgres_cpu_us_per_sync") if two else None,
            "cpu_us_per_sync_db_backends": one.get("postgres_db_backends_cpu_us_per_sync") if one else None,
            "method": one.get("postgres_method") if one else None,
        },
        # cpu_us_per_sync: per sync accepted by ingest-api (saturation run, producing); the catch-up's
        # (consuming) is cpu_us_per_sync_catch_up, also in processor.runs.
        "broker": {
            "cpu_us_per_sync": broker_cpu,
            "cores_at_saturation": satx.get("broker_cores"),
            "cpu_us_per_sync_catch_up": one.get("broker_cpu_us_per_sync") if one else None,
        },
        "e2e": {
            "freshness_p50_s": None if p50 in (None, float("inf")) else p50,
            "freshness_p99_s": p99_num,
            "freshness_p99_over_s": 300 if p99 == float("inf") else None,
            "load_syncs_per_s": e2e_rate,
            "observed_events": int(observed) if observed is not None else None,
            "caught_up": e2e_caught_up if facts.get("e2e_caught_up") else None,
            "drain_seconds": e2e_drain_s,
            "ingest_p50_ms": e2e_load["latency_ms"]["p50_ms"] if e2e_load else None,
            "ingest_p99_ms": e2e_load["latency_ms"]["p99_ms"] if e2e_load else None,
        },
        "goals": goals,
        "goals_issue_13": goals13,
    }
    figures17, goals17 = issue17(run, rate1)
    data.update(figures17)
    data["goals_issue_17"] = goals17

    # ---- Markdown
    md = []
    w = md.append
    kernel = f"{platform.system()} {platform.release()}"
    w("# Benchmarks\n")
    w(f"Produced by `{command}` (`deploy/bench.sh`) on {data['date']}: {cores} cores ({cpu_model()}), {memory_gib()} GiB, {kernel}.")
    w(f"Release builds; broker nisshi {facts.get('nisshi_version', '')} with memory storage; PostgreSQL on the same machine.")
    w(f"Everything (load generator, services, broker, database) shares the {cores} cores, so the absolute numbers are")
    w("a floor for this machine, not a capacity estimate for a cluster. The same figures, for tools:")
    w("[benchmarks.json](benchmarks.json) (same run, same command).\n")

    w(f"## Goals on this {cores}-core machine\n")
    w("| what | goal | measured | met | what bounds it |\n|---|---|---|---|---|")
    for g in goals:
        w(f"| {g['figure']} | {g['goal']} | {measured_text[g['key']](g['measured'])} | {'yes' if g['met'] else '**no**'} | {g['bound_by']} |")
    missed = [g for g in goals if not g["met"]]
    w("")
    if missed:
        w(f"**Missed ({len(missed)} of {len(goals)}):**\n")
        for g in missed:
            w(f"- {g['figure']}: {measured_text[g['key']](g['measured'])}, goal {g['goal']}. What bounds it: {g['bound_by']}.")
    else:
        w("**Every goal is met.**")
    w("")

    w("## Ingest goals (issue 13)\n")
    w("| figure | goal | measured | met? |\n|---|---|---|---|")
    for g in goals13:
        met = "reported" if g["goal"] == "report" and g["met"] else ("not measured" if g["met"] is None else ("yes" if g["met"] else "**no**"))
        w(f"| {g['figure']} | {g['goal']} | {g['measured_text']} | {met} |")
    w("")
    w(ceiling_paragraph() + "\n")
    w("How these are measured:\n")
    w("- CPU of ingest-api and the broker: utime + stime from `/proc/PID/stat` (clock ticks, `getconf CLK_TCK`) just")
    w("  before and just after `devsim load --rate max --concurrency 32`, divided by the syncs it had answered 202;")
    cores_text = []
    for role, label in (("ingest", "ingest-api"), ("broker", "the broker")):
        if satx.get(f"{role}_cores") is not None:
            cores_text.append(f"{label} {satx[f'{role}_cores']:.2f}")
    if satx.get("busy_cores") is not None:
        cores_text.append(f"the whole machine {satx['busy_cores']:.2f} (`/proc/stat`)")
    if cores_text:
        w(f"  cores busy over the run: {', '.join(cores_text)} of {cores};")
    whole = satx.get("devsim_cpu_us_per_request_whole_process")
    w("- devsim: its own utime + stime (`/proc/self/stat`) from its first request to its last, per request, as its JSON")
    w(f"  report gives it (`cpu_us_per_request`){f'; the whole process, set-up included (bash `times`): {whole:,.1f} µs per request' if whole is not None else ''};")
    w(f"- RSS: VmHWM (peak) from `/proc/PID/status` at the end of the saturation run; VmRSS then: {fnum(rss_sat_now_mb, 1, ' MB')}.")
    w(f"  After the abuse requests: VmHWM {fnum(rss_abuse_mb, 1, ' MB')}, VmRSS {fnum(rss_abuse_now_mb, 1, ' MB')} (MB = 10^6 bytes).")
    if abuse_kinds:
        w("\nAbuse (`deploy/abuse.py`, after the fixed-rate runs, each request on a connection of its own with a valid device token):\n")
        w("| requests | on the wire | inflated | expected | answers | median ms | max ms | largest answer |\n|---|---|---|---|---|---|---|---|")
        for name, k in abuse_kinds.items():
            w(f"| {k['sent']} × {name} | {k['body_bytes']:,} B | {k['inflated_bytes']:,} B | {k['expected_status']} | {abuse_text(name)} | "
              f"{fnum(k.get('ms_median'), 1)} | {fnum(k.get('ms_max'), 1)} | {fnum(k.get('max_response_bytes'))} B |")
        if alive_after_abuse is False:
            w("\n**ingest-api exited during the abuse requests** (see its log in the bench run directory).")
    else:
        w("\nThe abuse requests did not run (see the bench logs).")
    w("")

    w("## Live updates, recompute and rebuild (issue 17)\n")
    w("| figure | goal | measured | met? |\n|---|---|---|---|")
    for g in goals17:
        met = "not measured" if g["met"] is None else ("yes" if g["met"] else "**no**")
        w(f"| {g['figure']} | {g['goal']} | {g['measured_text']} | {met} |")
    w("")
    sse, rc, rb = figures17["sse"], figures17["recompute"], figures17["rebuild"]
    if sse:
        w(f"- Live updates: {sse['streams']:,} streams (`devsim watch`, one per user of `devsim load --devices 1000`) open during the")
        w(f"  end-to-end run; {sse['sync_events']:,} sync events arrived, {sse['reopened']} streams reopened. Delivery is timed from the")
        w("  event's `committed_at` (the processor's clock in its transaction's second-to-last statement, just before COMMIT)")
        w(f"  to the event's arrival in devsim: p50 {fnum(sse['delivery_p50_ms'], 1)} ms, p90 {fnum(sse['delivery_p90_ms'], 1)} ms,")
        w(f"  p99 {fnum(sse['delivery_p99_ms'], 1)} ms, max {fnum(sse['delivery_max_ms'], 1)} ms. It includes the commit itself, the")
        w("  listener's 5 ms wake-up tick, one indexed query per commit for the users with a stream, and the wait for a core")
        w("  (the load generator, ingest-api, the broker, the processor and PostgreSQL share them).")
    if rc:
        w(f"- Recompute: `processor recompute` of {rc['users']:,} users, {rc['user_days']:,} user-days (every row of the one-instance")
        w(f"  database marked as an older version) in {rc['seconds']:.1f} s; CPU per user-day: the processor {fnum(rc['processor_cpu_us_per_user_day'], 1)} µs,")
        w(f"  PostgreSQL {fnum(rc['postgres_cpu_us_per_user_day'], 1)} µs. One user per transaction, on one connection per core (`--jobs`,")
        w("  default the number of cores). What bounds it: the health model's cost per user-day (the micro benchmark's dense day")
        w("  is a few ms), and for users with a day or two (most here) the per-user round trips and commit.")
    if rb:
        w(f"- Rebuild: `processor rebuild` of {rb['records']:,} records (the backlog and the end-to-end load) into a new database in")
        w(f"  {rb['seconds']:.1f} s, {fnum(rb['syncs_per_s'])} records/s; CPU per record: the processor {fnum(rb['processor_cpu_us_per_sync'], 1)} µs,")
        w(f"  PostgreSQL {fnum(rb['postgres_cpu_us_per_sync'], 1)} µs (migration and start-up included). It is the catch-up path itself")
        w("  with a new group and database, so it is bound by what bounds the catch-up.")
    w("")

    w("## Micro (criterion, `cargo bench -p health-model -p ingest-api`)\n")
    w("| benchmark | median time |\n|---|---|")
    for name, (value, unit) in micro_entries:
        w(f"| {name} | {value} {unit} |")
    sync_bytes = re.search(r"standard sync: (\d+) bytes of JSON, (\d+) bytes of Avro", micro_text)
    if sync_bytes:
        w(f"\nA standard sync is {sync_bytes.group(1)} bytes of JSON and {sync_bytes.group(2)} bytes of Avro (DeviceSynced v2).")

    w("\n## Ingest (`devsim load`, standard syncs, 1,000 devices)\n")
    if sat:
        w(f"Saturation: `devsim load --rate max --concurrency 32`: **{sat['accepted_per_s']} syncs/s** accepted (202), "
          f"p50 {sat['latency_ms']['p50_ms']} ms, p99 {sat['latency_ms']['p99_ms']} ms, errors {sat['errors'] or 'none'}.\n")
    w("| load | rate | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |\n|---|---|---|---|---|---|---|---|")
    for pct, r in rates.items():
        if r:
            l = r["latency_ms"]
            w(f"| {pct}% | {r['target_rate_per_s']}/s | {l['p50_ms']} | {l['p90_ms']} | {l['p99_ms']} | {l['p99_9_ms']} | {l['max_ms']} | {r['errors'] or 'none'} |")
    w("\nLatency at a fixed rate is measured from each request's intended send time (no coordinated omission).")
    w(f"ingest-api peak RSS over the runs: {fnum(ingest_rss_mib, 1, ' MiB')}.")
    if sat and sat.get("cpu_us_per_request") is not None:
        w(f"At saturation, ingest-api used {fnum(ingest_cpu, 1, ' µs')} and the broker {fnum(broker_cpu, 1, ' µs')} of CPU per accepted sync, "
          f"devsim {fnum(devsim_cpu, 1, ' µs')} per request (see [Ingest goals](#ingest-goals-issue-13)).")
    w("")

    w("### Baseline: the same endpoint with the processing and the database write inside the request\n")
    w("`crates/baseline` (bench-only binary): same auth and validation, then the health model computed and written")
    w("to PostgreSQL in the request's transaction; no Kafka. The design this pattern replaces.\n")
    if base_sat and base_same and rates[50] and sat_v:
        bs, bl, pl = base_sat["accepted_per_s"], base_same["latency_ms"], rates[50]["latency_ms"]
        w("| | throughput (syncs/s) | p50 ms at the pattern's 50% load | p99 ms at that load | errors at that load |\n|---|---|---|---|---|")
        w(f"| pattern (ingest-api) | {sat_v:.0f} | {pl['p50_ms']} | {pl['p99_ms']} | {rates[50]['errors'] or 'none'} |")
        w(f"| baseline | {bs} | {bl['p50_ms']} | {bl['p99_ms']} | {base_same['errors'] or 'none'} |")
        w(f"| pattern ÷ baseline throughput, baseline ÷ pattern latency | {sat_v / max(bs, 1e-9):.1f}× | "
          f"{bl['p50_ms'] / max(pl['p50_ms'], 1e-9):.1f}× | {ratio_p99:.1f}× | |")
        if base_own:
            ol = base_own["latency_ms"]
            w(f"\nAt its own 50% load ({base_own['target_rate_per_s']}/s) the baseline answers p50 {ol['p50_ms']} ms, p99 {ol['p99_ms']} ms.")
        w("At the pattern's 50% load the baseline is past its own saturation, so requests queue: that is the point.\n")
    else:
        w("The baseline run produced no report (see the bench logs).\n")

    topic = facts.get("backlog_topic", "device-synced-backlog")
    w(f"## Processor catch-up ({fnum(records)} records on `{topic}`)\n")
    users, days = facts.get("backlog_users", "?"), facts.get("backlog_days", "?")
    w(f"The backlog has a topic of its own (`{topic}`, {facts.get('backlog_partitions', '6')} partitions), filled through a second")
    w(f"ingest-api (`INGEST_TOPIC={topic}`) by `devsim run --users {users} --backfill-days {days} --backfill-only --concurrency 32`:")
    w(f"{users} users' 15-minute syncs over {days} days, with the simulator's resends, overlapping re-syncs, late batches and chest straps.")
    if backlog:
        w(f"devsim sent {fnum(backlog.get('syncs'))} syncs in {fnum(backlog.get('requests'))} requests ({fnum(backlog.get('resent'))} resent, "
          f"{fnum(backlog.get('overlapping'))} overlapping, {fnum(backlog.get('late'))} late; {fnum(backlog.get('samples'))} samples) "
          f"in {backlog.get('elapsed_s')} s; answers {backlog.get('by_status')}.")
    how = ("the sum over partitions of the high watermark minus the log start, asked of the broker with ListOffsets"
           if backlog_offsets.get("method") == "ListOffsets"
           else "counted from the devsim run's 202s: the broker could not be asked, and every request was answered 202")
    w(f"Records in the topic: **{fnum(records)}** ({how}); distinct sync ids: {fnum(distinct_syncs)}.")
    w("Each run starts processors on a fresh database and consumer group and ends when every partition's watermark")
    w("(`partition_watermarks.committed_offset`, raised in the transaction that applies the records) reaches the")
    w("partition's last offset.\n")
    w("| instances | seconds | syncs/s | processor CPU µs/sync | PostgreSQL CPU µs/sync | broker CPU µs/sync | cores busy | peak RSS MiB | statements/sync | events/batch | cache hits |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in (one, two):
        if not r:
            continue
        busy = f"{r['busy_cores']:.2f} of {cores}" if r.get("busy_cores") is not None else "not measured"
        rss_each = " + ".join(fnum(x, 1) for x in r["rss_mib_each"]) if len(r["rss_mib_each"]) > 1 else fnum(r.get("rss_mib"), 1)
        hit = f"{r['cache_hit_ratio']:.1%}" if r.get("cache_hit_ratio") is not None else "not measured"
        w(f"| {r['instances']} | {r['seconds']} | {fnum(r['syncs_per_s'])} | {fnum(r['processor_cpu_us_per_sync'])} | "
          f"{fnum(r['postgres_cpu_us_per_sync'])} | {fnum(r['broker_cpu_us_per_sync'])} | {busy} | {rss_each} | "
          f"{fnum(r['statements_per_sync'], 3)} | {fnum(r['mean_batch_events'])} | {hit} |")
    w("")
    if scaling is not None:
        w(f"Two instances ÷ one: **{scaling:.2f}×**. What bounds it: {scaling_bound()}.\n")
    for r in (one, two):
        if not r:
            continue
        notes = []
        if r.get("applied") is not None and records is not None and r["applied"] != records:
            notes.append(f"the processors counted {r['applied']:,} events applied, not {records:,}: per-sync figures divide by their count")
        if r.get("busy_cores") is not None and r.get("accounted_cores") is not None and r["busy_cores"] - r["accounted_cores"] > 0.25:
            notes.append(f"other processes used about {r['busy_cores'] - r['accounted_cores']:.2f} cores during the run, so the machine was not quiet")
        if r.get("events"):
            notes.append("events by outcome: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r["events"].items())))
        if r.get("retries"):
            notes.append(f"{r['retries']} batch retries")
        if notes:
            w(f"- {r['instances']} instance{'s' if r['instances'] > 1 else ''}: " + "; ".join(notes) + ".")
    w("")
    w("How these are measured:\n")
    w("- wall time: from just before the processors start to the poll (every 0.1 s, one psql session running `\\watch`, so")
    w("  polling opens no connection per poll) that sees every partition applied; syncs/s = records ÷ wall time;")
    w("- CPU: utime + stime from `/proc/PID/stat` (clock ticks, `getconf CLK_TCK`), the difference between a snapshot")
    w("  before the processors start and one when the backlog is applied, divided by the events the processors counted")
    w("  applied (`processor_events_total{outcome=\"applied\"}`, one per record);")
    pg_method = one.get("postgres_method") if one else None
    if pg_method == "cluster":
        w("- PostgreSQL CPU: the cluster serving the benchmark database (the postmaster that is the parent of its")
        w("  backends): utime + stime of every live process of it, plus the postmaster's cutime + cstime (its exited")
        w("  children: ended backends, autovacuum and parallel workers), so work moved between processes is counted once.")
        w("  This includes background writers, checkpoints and any other database's activity on that cluster during the")
        w(f"  run; the benchmark database's own backends alone: {fnum(data['postgres']['cpu_us_per_sync_db_backends'])} µs per sync;")
    else:
        w("- PostgreSQL CPU: utime + stime of every live process named `postgres`, plus cutime + cstime of each postmaster")
        w("  (its exited children); includes every cluster and database on the machine;")
    w("- peak RSS: VmHWM from `/proc/PID/status` at the end (the processor's lifetime peak), at cache budget"
      f" {cache_budget} MiB{' (the default)' if cache_budget == DEFAULT_CACHE_BUDGET_MB else ''};")
    w("- statements: `processor_sql_statements_total` (every statement, BEGIN and COMMIT included), scraped from each")
    w("  processor's `/metrics` before it stops; cache figures from `processor_cache_*`;")
    w("- cores busy: the machine's busy time in `/proc/stat` over the run (all processes).\n")

    w("### Storage after the one-instance run\n")
    if rows_one:
        w("| table | rows | total MiB | table MiB | indexes MiB | TOAST MiB | bytes per sync |\n|---|---|---|---|---|---|---|")
        for t in rows_one:
            w(f"| {t['table']} | {fnum(t['rows'])} | {t['bytes'] / 2**20:.2f} | {t['heap_bytes'] / 2**20:.2f} | "
              f"{t['index_bytes'] / 2**20:.2f} | {t['toast_bytes'] / 2**20:.2f} | {fnum(t['bytes_per_sync'])} |")
        w(f"\nTotal `sum(pg_total_relation_size)` over `pg_stat_user_tables`: {stored_total / 2**20:.1f} MiB, "
          f"**{fnum(stored_per_sync)} bytes per applied sync** ({stored_per_sync / 1024:.2f} KiB). It includes indexes, TOAST")
        w("and the dead row versions of upserted rows that autovacuum has not reclaimed yet.\n")
    else:
        w("Not measured (see the bench logs).\n")

    w("## End to end\n")
    w(f"Freshness lag (ingest time to committed effects, the processor's `processor_end_to_end_lag_seconds`) at 50% of")
    w(f"ingest saturation: p50 {bucket(p50)}, p99 **{bucket(p99)}** (upper bounds of the histogram's buckets: 0.01, 0.05, 0.1,")
    w("0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 s).")
    if e2e_load:
        w(f"The load: `devsim load` at {e2e_rate}/s for {e2e_load.get('elapsed_s')} s through the backlog topic's ingest-api, with one")
        w("processor (the one-instance database and group, already caught up) running alongside on the same cores;")
        w(f"ingest answered p50 {e2e_load['latency_ms']['p50_ms']} ms, p99 {e2e_load['latency_ms']['p99_ms']} ms from the schedule.")
    if observed is None:
        pass
    elif facts.get("e2e_caught_up") == "1":
        w(f"The processor had applied the whole load {fnum(e2e_drain_s, 1)} s after it ended; the histogram counts "
          f"{fnum(observed)} events.")
    elif facts.get("e2e_caught_up") == "0":
        w(f"The processor had **not** applied the whole load {fnum(e2e_drain_s, 1)} s after it ended; the histogram counts only the "
          f"{fnum(observed)} events applied by then, so the p99 is a lower bound.")
    w(f"What bounds it: {e2e_bound()}.\n")

    w("## Commands\n")
    w(f"This report: `{command}`.\n")
    w("```sh")
    w("make bench   # writes docs/benchmarks.md and docs/benchmarks.json")
    w("# knobs (environment), with their defaults:")
    w("#   BENCH_SATURATION_SECONDS=10 BENCH_RATE_SECONDS=10   ingest run lengths")
    w("#   BENCH_BACKLOG_USERS=1000 BENCH_BACKLOG_DAYS=1.05    the catch-up backlog (fewer for a quick iteration)")
    w("#   BENCH_CATCHUP_TIMEOUT=1800 BENCH_E2E_DRAIN_TIMEOUT=120   seconds")
    w("#   PROCESSOR_* and INGEST_* tuning variables reach the services and are named in the command above")
    w("```")

    write_atomically(md_out, "\n".join(md) + "\n")
    write_atomically(json_out, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    usage = __doc__
    if len(argv) < 2:
        raise SystemExit(usage)
    cmd, args = argv[1], argv[2:]
    if cmd == "snapshot" and len(args) >= 2:
        snapshot(args[0], args[1], args[2:])
    elif cmd == "offsets" and len(args) >= 3:
        base = args[3] if len(args) >= 4 else None
        print(json.dumps(offsets(args[0], args[1], int(args[2]), base, args[4:])))
    elif cmd == "watch-sql" and len(args) == 2:
        print(watch_sql(args[0], args[1]), end="")
    elif cmd == "render" and len(args) == 3:
        render(*args)
    else:
        raise SystemExit(usage)


if __name__ == "__main__":
    main(sys.argv)
