#!/usr/bin/env python3
"""The chaos suite's orchestrator (issue 14), started by deploy/chaos.sh, which builds, picks the
ports, creates the databases and exports what this needs (see `Settings.from_env`). Standard
library only.

It starts the stack (broker with PostgreSQL storage through deploy/lib.sh's start_broker, the
registry, ingest-api, the processor), puts two fault-injecting proxies in the way, and runs the
phases, each under `devsim load` at a fixed rate with retries (the same sync id) and a ledger of
every answer:

  0. logs      10,000 syncs through the stack as `make run` runs it; the logs stay under a cap
  1. processor kill -9 of the processor, N times at random moments, with restart
  2. ingest    kill -9 of ingest-api, N times, with restart, while devsim retries
  3. broker    the broker stopped for F s: ingest answers 503, never 202, and recovers
  4. registry  the registry answering 500 for F s (HTTP proxy), then stopped for F s; the
               services restart inside each window, so they meet it with cold caches
  5. postgres  the processor's PostgreSQL connections cut for F s (TCP proxy)
  6. rebalance a second and a third processor join and leave, N times
  7. poison    undecodable bytes, an unknown schema id and an apply-stage failure, produced
               straight to the topic; then a kill -9 and a join/leave, so they are redelivered

Then it checks the model against every acknowledged sync (see `check_model` for the exact
definitions) and writes the figures as JSON (and, for the full form, docs/reliability.md).
`--soak DURATION` runs the same stack at half the load with no faults and samples RSS and open
file descriptors of each service from /proc instead.
"""

import argparse
import collections
import datetime
import http.client
import http.server
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

# Goals of issue 14.
GOAL_RECOVERY_S = 10.0
# How long a fault's recovery is waited for before the suite intervenes (restarts the service).
RECOVERY_TIMEOUT_S = 60.0
# How long the processor gets to apply everything acknowledged after a phase or at the end
# (CHAOS_DRAIN_TIMEOUT_S; the short form waits less).
# Flatness of the soak: the last quarter's median against the second quarter's.
SOAK_RSS_GROWTH = 0.10
SOAK_FD_GROWTH = 0.10
SOAK_FD_SLACK = 5


def say(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def note(msg):
    print(f"    {msg}", file=sys.stderr, flush=True)


class Fatal(Exception):
    """The suite cannot go on; the message says what to do."""


# ------------------------------------------------------------------------------------------------
# Settings


class Settings:
    """What chaos.sh prepared, from the environment (CHAOS_* and the services' variables)."""

    def __init__(self, args):
        env = os.environ
        self.short = args.short
        self.soak = args.soak
        self.run_dir = env["CHAOS_RUN_DIR"]
        self.log_dir = os.path.join(self.run_dir, "logs")
        self.bin = env["CHAOS_BIN_DIR"]
        self.kafka_tool = env["CHAOS_KAFKA_TOOL"]
        self.pids_file = os.path.join(self.run_dir, "pids")
        self.pg = (env.get("PG_HOST", "127.0.0.1"), int(env.get("PG_PORT", "5432")))
        self.model_db = env["CHAOS_MODEL_DB"]
        self.registry_db = env["CHAOS_REGISTRY_DB"]
        self.broker_db = env["CHAOS_BROKER_DB"]
        ports = {k: int(env[f"CHAOS_{k.upper()}_PORT"]) for k in
                 ("broker", "registry", "registry_proxy", "pg_proxy", "ingest", "ops1", "ops2", "ops3")}
        self.ports = ports
        self.bootstrap = f"127.0.0.1:{ports['broker']}"
        self.secret = env["AUTH_TOKEN_SECRET"]
        self.seed = int(env.get("CHAOS_SEED", "1"))
        self.rate = float(env["CHAOS_RATE"])
        self.devices = int(env.get("CHAOS_DEVICES", "100"))
        self.fault_s = float(env["CHAOS_FAULT_SECONDS"])
        self.processor_kills = int(env["CHAOS_PROCESSOR_KILLS"])
        self.ingest_kills = int(env["CHAOS_INGEST_KILLS"])
        self.storm_cycles = int(env["CHAOS_STORM_CYCLES"])
        self.poison_sets = int(env["CHAOS_POISON_SETS"])
        self.log_records = int(env["CHAOS_LOG_RECORDS"])
        self.log_limit_bytes = int(float(env["CHAOS_LOG_LIMIT_MB"]) * 1_000_000)
        self.command = env.get("CHAOS_COMMAND", "deploy/chaos.sh")
        self.json_out = env["CHAOS_JSON_OUT"]
        self.md_out = env.get("CHAOS_MD_OUT", "")
        self.soak_rate = float(env.get("CHAOS_SOAK_RATE", str(self.rate / 2)))
        self.drain_timeout_s = float(env.get("CHAOS_DRAIN_TIMEOUT_S", "180"))
        self.topic = "device-synced"

    def pg_url(self, db, port=None):
        return f"postgres://postgres@{self.pg[0]}:{port or self.pg[1]}/{db}"


# ------------------------------------------------------------------------------------------------
# Processes


def alive(pid):
    """True while the process runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


class Service:
    """One process of the stack: its output goes through deploy/rotate_log.py into its log, as
    `make run` does, and it runs in its own session so that Ctrl-C reaches only the suite."""

    def __init__(self, stack, name, argv, env):
        self.stack, self.name, self.argv, self.env = stack, name, argv, env
        self.proc = None
        self.rotator = None
        self.log = os.path.join(stack.s.log_dir, f"{name}.log")

    def start(self):
        rotator = [sys.executable, os.path.join(self.stack.deploy, "rotate_log.py"), self.log,
                   "--max-bytes", os.environ["LOG_MAX_BYTES"], "--keep", os.environ.get("LOG_KEEP", "3")]
        self.rotator = subprocess.Popen(rotator, stdin=subprocess.PIPE, start_new_session=True)
        env = dict(os.environ, **self.env)
        self.proc = subprocess.Popen(self.argv, env=env, stdout=self.rotator.stdin, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.rotator.stdin.close()
        self.stack.record_pid(self.proc.pid)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, grace=20.0):
        """Signals it and waits; KILL after the grace period."""
        if not self.running():
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self):
        self.stop(signal.SIGKILL)

    def tail(self, n=20):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


class Broker:
    """nisshi through deploy/lib.sh's start_broker (PostgreSQL storage, BROKER_RUST_LOG, the log
    rotator), in a bash that waits for it: stopping the broker ends that bash."""

    def __init__(self, stack):
        self.stack = stack
        self.shell = None
        self.pid = None
        self.log = os.path.join(stack.s.log_dir, "broker.log")

    def start(self):
        s = self.stack.s
        storage = f"{s.pg_url(s.broker_db)}?sslmode=disable"
        script = 'source "$1/lib.sh" && start_broker "$2" "$3" "$4" && echo "$BROKER_PID" && wait "$BROKER_PID"'
        self.shell = subprocess.Popen(["bash", "-c", script, "start_broker", self.stack.deploy,
                                       str(s.ports["broker"]), storage, self.log],
                                      stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.stack.record_pid(self.shell.pid)
        line = self.shell.stdout.readline().strip()
        if not line.isdigit():
            raise Fatal(f"the broker did not start; its log: {self.log}\n{Service.tail(self)}")
        self.pid = int(line)
        self.stack.record_pid(self.pid)

    def stop(self, sig=signal.SIGTERM, grace=20.0):
        if self.pid and alive(self.pid):
            os.kill(self.pid, sig)
            if not wait_gone(self.pid, grace):
                os.kill(self.pid, signal.SIGKILL)
                wait_gone(self.pid, 5)
        if self.shell:
            try:
                self.shell.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.shell.kill()
                self.shell.wait()
        self.pid = None


def http_status(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, http.client.HTTPException):
        return None


class Stack:
    def __init__(self, settings):
        self.s = settings
        self.deploy = os.path.dirname(os.path.abspath(__file__))
        self.broker = Broker(self)
        self.registry = None
        self.ingest = None
        self.processors = {}
        self.pg_proxy = None
        self.registry_proxy = None
        self.restarts = collections.Counter()

    def record_pid(self, pid):
        # chaos.sh stops whatever is listed here if this orchestrator dies without cleaning up.
        with open(self.s.pids_file, "a") as f:
            f.write(f"{pid}\n")

    def service_env(self):
        s = self.s
        return {
            "KAFKA_BOOTSTRAP_SERVERS": s.bootstrap,
            "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{s.ports['registry_proxy']}",
            "AUTH_TOKEN_SECRET": s.secret,
        }

    # -- the registry --
    def start_registry(self):
        s = self.s
        env = {"SCHEMA_REGISTRY_LISTEN_ADDR": f"127.0.0.1:{s.ports['registry']}",
               "SCHEMA_REGISTRY_DATABASE_URL": s.pg_url(s.registry_db),
               # chaos.sh made the users; the services get the writer's SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO.
               "SCHEMA_REGISTRY_AUTH_FILE": os.environ.get("CHAOS_REGISTRY_AUTH_FILE", "")}
        self.registry = Service(self, "schema-registry", [f"{s.bin}/schema-registry"], env).start()
        self.wait_http(f"http://127.0.0.1:{s.ports['registry']}/healthz", self.registry, 60)

    # -- ingest-api --
    def ingest_url(self):
        return f"http://127.0.0.1:{self.s.ports['ingest']}"

    def start_ingest(self, wait_ready=True):
        s = self.s
        env = dict(self.service_env(), INGEST_LISTEN_ADDR=f"127.0.0.1:{s.ports['ingest']}",
                   DATABASE_URL=s.pg_url(s.model_db))
        self.ingest = Service(self, "ingest-api", [f"{s.bin}/ingest-api"], env).start()
        self.restarts["ingest-api"] += 1
        if wait_ready:
            self.wait_http(f"{self.ingest_url()}/readyz", self.ingest, 60)

    # -- processors --
    def ops_url(self, n):
        return f"http://127.0.0.1:{self.s.ports[f'ops{n}']}"

    def processor_env(self, n):
        s = self.s
        # The processor reaches PostgreSQL through the cuttable proxy; everything else does not.
        env = dict(self.service_env(), DATABASE_URL=s.pg_url(s.model_db, s.ports["pg_proxy"]),
                   PROCESSOR_OPS_ADDR=f"127.0.0.1:{s.ports[f'ops{n}']}")
        if n == 1:
            # Static membership, as a Kubernetes pod restarting its container has it: the
            # restarted processor takes its partitions back at once. The joiners of the
            # rebalance storm stay dynamic, so they leave the group when they stop.
            env["PROCESSOR_GROUP_INSTANCE_ID"] = "chaos-processor-1"
        return env

    def start_processor(self, n=1, wait_healthy=True):
        self.processors[n] = Service(self, f"processor-{n}", [f"{self.s.bin}/processor", "run"],
                                     self.processor_env(n)).start()
        self.restarts[f"processor-{n}"] += 1
        if wait_healthy:
            self.wait_http(f"{self.ops_url(n)}/healthz", self.processors[n], 60)

    def run_once(self, *args):
        """A one-shot processor command (create-topics, migrate) straight to the database."""
        s = self.s
        env = dict(os.environ, **self.service_env(), DATABASE_URL=s.pg_url(s.model_db))
        out = subprocess.run([f"{s.bin}/processor", *args], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise Fatal(f"processor {' '.join(args)} failed:\n{out.stdout}{out.stderr}")

    def wait_http(self, url, service, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if http_status(url) == 200:
                return
            if service is not None and not service.running():
                raise Fatal(f"{service.name} exited during start-up; its log: {service.log}\n{service.tail()}")
            time.sleep(0.1)
        raise Fatal(f"{url} did not answer 200 within {timeout:.0f} s; see {self.s.log_dir}")

    def services(self):
        out = {"broker": self.broker.pid}
        for name, svc in [("schema-registry", self.registry), ("ingest-api", self.ingest),
                          *[(f"processor-{n}", p) for n, p in sorted(self.processors.items())]]:
            if svc is not None and svc.running():
                out[name] = svc.pid
        return out

    def stop_all(self):
        for p in list(self.processors.values()):
            p.stop(grace=10)
        for svc in (self.ingest, self.registry):
            if svc is not None:
                svc.stop(grace=10)
        self.broker.stop(grace=10)
        for proxy in (self.pg_proxy, self.registry_proxy):
            if proxy is not None:
                proxy.close()


# ------------------------------------------------------------------------------------------------
# Fault-injecting proxies


class TcpProxy:
    """A TCP relay; `cut()` closes every connection and the listening socket (new connections
    are refused) until `restore()`."""

    def __init__(self, listen_port, target):
        self.port, self.target = listen_port, target
        self.lock = threading.Lock()
        self.conns = set()
        self.listener = None
        self.cuts = 0
        self.closed_connections = 0
        self.restore()

    def restore(self):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        with self.lock:
            self.listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def cut(self):
        with self.lock:
            listener, self.listener = self.listener, None
            conns, self.conns = list(self.conns), set()
            self.cuts += 1
            self.closed_connections += len(conns) // 2
        if listener:
            # shutdown wakes the thread blocked in accept(); close alone would not.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    close = cut

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self.conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            self.conns.discard(src)
            self.conns.discard(dst)


class RegistryProxy:
    """An HTTP proxy in front of the schema registry. Mode `pass` forwards (and, when the registry
    does not answer, closes the connection unanswered, as a stopped registry would leave its
    clients); mode `fail` answers every request 500 itself."""

    def __init__(self, listen_port, upstream_port):
        proxy = self
        self.mode = "pass"
        self.counts = collections.Counter()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.mode == "fail":
                    proxy.counts["500"] += 1
                    payload = b'{"error_code":50001,"message":"chaos: injected registry failure"}'
                    self.send_response(500)
                    self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=10)
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    conn.close()
                except OSError:
                    proxy.counts["unanswered"] += 1
                    self.close_connection = True
                    return
                proxy.counts["forwarded"] += 1
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", listen_port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------------
# The database


def psql(settings, sql):
    """Rows of a query against the model database, as lists of strings (tab-separated)."""
    host, port = settings.pg
    out = subprocess.run(["psql", "-X", "-q", "-tA", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", str(port),
                          "-U", "postgres", "-d", settings.model_db, "-c", sql], capture_output=True, text=True)
    if out.returncode != 0:
        raise Fatal(f"psql on {settings.model_db} failed: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def processed_ids(settings):
    """Sync ids with a sync status (processed or failed)."""
    return {r[0] for r in psql(settings, "SELECT sync_id FROM sync_status")}


def last_applied_at(settings):
    """When the processor last wrote a sync status (epoch seconds), or 0."""
    rows = psql(settings, "SELECT coalesce(extract(epoch FROM max(processed_at)), 0) FROM sync_status")
    return float(rows[0][0])


# ------------------------------------------------------------------------------------------------
# Load


class Load:
    """`devsim load` at a fixed rate with retries and a ledger, until stopped."""

    def __init__(self, stack, name, rate, count=None, max_rate=False):
        s = stack.s
        self.name = name
        self.ledger = os.path.join(s.run_dir, f"ledger-{name}.jsonl")
        self.report = os.path.join(s.run_dir, f"devsim-{name}.json")
        argv = [f"{s.bin}/devsim", "load", "--url", stack.ingest_url(), "--devices", str(s.devices),
                "--retries", "40", "--timeout", "10s", "--progress-every", "0", "--seed", str(s.seed),
                "--ledger", self.ledger, "--json", self.report]
        if max_rate:
            argv += ["--rate", "max", "--concurrency", "16"]
        else:
            argv += ["--rate", f"{rate}/s"]
        argv += ["--count", str(count)] if count else ["--duration", "24h"]
        self.out = open(os.path.join(s.log_dir, f"devsim-{name}.log"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=dict(os.environ, AUTH_TOKEN_SECRET=s.secret))
        stack.record_pid(self.proc.pid)
        self.started = time.time()

    def stop(self):
        """Stops sending (SIGTERM: in-flight requests and their retries finish) and reads the ledger."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, timeout=300):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        return read_ledger(self.ledger)


def read_ledger(path):
    lines = []
    try:
        with open(path) as f:
            for line in f:
                lines.append(json.loads(line))
    except FileNotFoundError:
        pass
    return lines


def ledger_figures(lines):
    """What clients saw in one phase: requests, 202s, errors by status, retries, given up."""
    acked = {l["sync_id"] for l in lines if l["status"] == 202}
    ids = {l["sync_id"] for l in lines}
    errors = collections.Counter("transport" if l["status"] is None else str(l["status"])
                                 for l in lines if l["status"] != 202)
    return {
        "requests": len(ids),
        "acked": len(acked),
        "attempts": len(lines),
        "retries": sum(1 for l in lines if l["attempt"] > 0),
        "gave_up": len(ids - acked),
        "errors_seen_by_clients": dict(sorted(errors.items())),
    }


# ------------------------------------------------------------------------------------------------
# The suite


class Suite:
    def __init__(self, settings):
        self.s = settings
        self.stack = Stack(settings)
        self.rng = random.Random(settings.seed)
        self.phases = []
        self.acked = {}  # sync id -> phase name
        self.ack_times = {}  # sync id -> first 202's answer time
        self.poison = []  # (kind, sync id, partition, offset)
        self.notes = []
        self.started = time.time()

    # -- stack --
    def start_stack(self):
        st, s = self.stack, self.s
        os.makedirs(s.log_dir, exist_ok=True)
        st.pg_proxy = TcpProxy(s.ports["pg_proxy"], s.pg)
        st.registry_proxy = RegistryProxy(s.ports["registry_proxy"], s.ports["registry"])
        say(f"starting the broker (nisshi, PostgreSQL database {s.broker_db}) on {s.bootstrap}")
        st.broker.start()
        say("starting the schema registry, behind a fault-injecting HTTP proxy")
        st.start_registry()
        st.run_once("create-topics")
        st.run_once("migrate")
        say("starting the processor (PostgreSQL through a cuttable TCP proxy) and ingest-api")
        st.start_processor(1)
        st.start_ingest()
        st.wait_http(f"{st.ops_url(1)}/readyz", st.processors[1], 60)

    # -- waiting --
    def ready(self, targets):
        """Whether every target answers /readyz 200: 'ingest' and processor numbers."""
        for t in targets:
            url = f"{self.stack.ingest_url()}/readyz" if t == "ingest" else f"{self.stack.ops_url(t)}/readyz"
            if http_status(url) != 200:
                return False
        return True

    def wait_recovery(self, fault_end, targets):
        """Seconds from the fault's end until every target is ready and the processor has written
        a sync status after the fault's end (it applies again); None past RECOVERY_TIMEOUT_S."""
        deadline = fault_end + RECOVERY_TIMEOUT_S
        ready_at = applying_at = None
        while time.time() < deadline:
            now = time.time()
            if ready_at is None and self.ready(targets):
                ready_at = now
            if applying_at is None and last_applied_at(self.s) > fault_end:
                applying_at = now
            if ready_at and applying_at:
                return round(max(ready_at, applying_at) - fault_end, 2)
            time.sleep(0.2)
        return None

    def intervene(self, phase, targets):
        """A service still not ready after RECOVERY_TIMEOUT_S is restarted (an operator would), so
        that the next phases measure their own faults; the phase records it."""
        st = self.stack
        for t in targets:
            url = f"{st.ingest_url()}/readyz" if t == "ingest" else f"{st.ops_url(t)}/readyz"
            if http_status(url) == 200:
                continue
            name = "ingest-api" if t == "ingest" else f"processor-{t}"
            msg = f"{name} was not ready {RECOVERY_TIMEOUT_S:.0f} s after the fault; the suite restarted it"
            note(f"  ! {msg}")
            phase["interventions"].append(msg)
            if t == "ingest":
                st.ingest.stop()
                st.start_ingest(wait_ready=False)
            else:
                st.processors[t].stop()
                st.start_processor(t, wait_healthy=False)

    def wait_drained(self, ids, timeout=None):
        """Seconds until every sync id has a sync status, or None at the timeout."""
        timeout = timeout or self.s.drain_timeout_s
        started = time.time()
        missing = set(ids)
        while time.time() - started < timeout:
            missing -= processed_ids(self.s)
            if not missing:
                return round(time.time() - started, 1)
            time.sleep(1.0)
        return None

    # -- phases --
    def phase(self, name, title, run):
        """Runs one phase: load at the fixed rate, the faults (`run(phase)` returns when they are
        over), the load stopped, then waiting until the processor applied what was acknowledged."""
        n = len(self.phases)
        say(f"phase {n}: {title}")
        phase = {"name": name, "title": title, "faults": [], "interventions": [], "started": time.time()}
        traffic = Load(self.stack, name, self.s.rate)
        time.sleep(2.0)  # a little traffic before the first fault
        try:
            run(phase)
            time.sleep(3.0)
        finally:
            lines = traffic.stop()
        phase["ended"] = time.time()
        self.account(phase, lines)
        recovery = [f["recovery_s"] for f in phase["faults"]]
        phase["recovery_s"] = None if any(r is None for r in recovery) else max(recovery, default=0.0)
        phase_ids = [i for i, p in self.acked.items() if p == name]
        phase["drained_s"] = self.wait_drained(phase_ids)
        if phase["drained_s"] is None:
            note(f"  ! the processor had not applied every acknowledged sync {self.s.drain_timeout_s:.0f} s after the load")
        note(f"phase {name}: {phase['acked']} acknowledged, client errors {phase['errors_seen_by_clients'] or 'none'}, "
             f"recovery {fmt_s(phase['recovery_s'])}, drained in {fmt_s(phase['drained_s'])}")
        self.phases.append(phase)
        return phase

    def account(self, phase, lines):
        phase.update(ledger_figures(lines))
        for l in lines:
            if l["status"] == 202 and l["sync_id"] not in self.acked:
                self.acked[l["sync_id"]] = phase["name"]
                self.ack_times[l["sync_id"]] = l["answered"]
        phase["ledger"] = lines  # dropped before the report is written

    def fault(self, phase, kind, start, end, targets, label, unready_s=None):
        recovery = self.wait_recovery(end, targets)
        if recovery is None:
            self.intervene(phase, targets)
        phase["faults"].append({"kind": kind, "start": round(start, 3), "end": round(end, 3), "recovery_s": recovery,
                                "not_ready_during_fault_s": unready_s})
        seen = "" if unready_s is None else f"; /readyz not 200 for {unready_s:.1f} s of it"
        note(f"{label}{seen}: recovered in {fmt_s(recovery)}")

    def hold_fault(self, seconds, targets):
        """Keeps a fault for `seconds`, probing /readyz of the targets every 0.5 s; returns how long
        some target was seen not ready (whether the fault was felt at all)."""
        end = time.time() + seconds
        unready = 0.0
        while time.time() < end:
            t = time.time()
            ok = self.ready(targets)  # a probe may itself take seconds while a dependency is down
            time.sleep(max(0.0, min(0.5 - (time.time() - t), end - time.time())))
            if not ok:
                unready += time.time() - t
        return round(unready, 1)

    def phase_logs(self):
        """10,000 syncs (CHAOS_LOG_RECORDS) through the stack as fast as it takes them; then the
        total size of every log the stack wrote must stay under CHAOS_LOG_LIMIT_MB."""
        say(f"phase 0: logs — {self.s.log_records} syncs through the stack as `make run` logs them")
        started = time.time()
        traffic = Load(self.stack, "logs", None, count=self.s.log_records, max_rate=True)
        lines = traffic.wait(timeout=600)
        phase = {"name": "logs", "title": f"{self.s.log_records} syncs, logs bounded", "faults": [],
                 "interventions": [], "started": started}
        self.account(phase, lines)
        phase["drained_s"] = self.wait_drained([i for i, p in self.acked.items() if p == "logs"])
        phase["ended"] = time.time()
        phase["recovery_s"] = None
        sizes = {}
        for name in sorted(os.listdir(self.s.log_dir)):
            sizes[name] = os.path.getsize(os.path.join(self.s.log_dir, name))
        phase["log_bytes"] = sizes
        phase["log_bytes_total"] = sum(sizes.values())
        phase["log_limit_bytes"] = self.s.log_limit_bytes
        phase["records_applied"] = phase["acked"] if phase["drained_s"] is not None else None
        note(f"logs: {phase['log_bytes_total'] / 1e6:.2f} MB in {len(sizes)} files after {phase['acked']} syncs "
             f"(limit {self.s.log_limit_bytes / 1e6:.1f} MB); largest "
             + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:3]))
        self.phases.append(phase)

    def phase_processor_kills(self, phase):
        st = self.stack
        for k in range(1, self.s.processor_kills + 1):
            time.sleep(self.rng.uniform(0.5, 4.0))
            start = time.time()
            st.processors[1].kill9()
            st.start_processor(1, wait_healthy=False)
            self.fault(phase, "kill -9 processor", start, time.time(), [1],
                       f"kill -9 processor ({k}/{self.s.processor_kills})")

    def phase_ingest_kills(self, phase):
        st = self.stack
        for k in range(1, self.s.ingest_kills + 1):
            time.sleep(self.rng.uniform(1.0, 4.0))
            start = time.time()
            st.ingest.kill9()
            st.start_ingest(wait_ready=False)
            self.fault(phase, "kill -9 ingest-api", start, time.time(), ["ingest", 1],
                       f"kill -9 ingest-api ({k}/{self.s.ingest_kills})")

    def phase_broker(self, phase):
        st = self.stack
        start = time.time()
        st.broker.stop()
        down = time.time()  # the broker process is gone: no 202 may be answered from here on
        unready = self.hold_fault(self.s.fault_s, ["ingest", 1])
        up = time.time()
        st.broker.start()
        phase["broker_down"] = [round(down, 3), round(up, 3)]
        self.fault(phase, "broker stopped", start, time.time(), ["ingest", 1],
                   f"broker down {up - down:.1f} s", unready)

    def phase_registry(self, phase):
        st = self.stack
        proxy = st.registry_proxy
        # 500s: the services restart inside the window, so they meet it with cold caches.
        start = time.time()
        proxy.mode = "fail"
        before = proxy.counts["500"]
        self.restart_services_gracefully()
        unready = self.hold_fault(self.s.fault_s, ["ingest", 1])
        proxy.mode = "pass"
        phase["registry_500s_served"] = proxy.counts["500"] - before
        self.fault(phase, "registry answers 500", start, time.time(), ["ingest", 1],
                   f"registry 500 for {self.s.fault_s:.0f} s ({phase['registry_500s_served']} answers 500)", unready)
        # Stopped: the registry process is gone and the proxy leaves its clients unanswered.
        start = time.time()
        st.registry.stop()
        before = proxy.counts["unanswered"]
        self.restart_services_gracefully()
        unready = self.hold_fault(self.s.fault_s, ["ingest", 1])
        phase["registry_unanswered"] = proxy.counts["unanswered"] - before
        st.start_registry()
        self.fault(phase, "registry stopped", start, time.time(), ["ingest", 1],
                   f"registry stopped for {self.s.fault_s:.0f} s ({phase['registry_unanswered']} requests unanswered)",
                   unready)

    def restart_services_gracefully(self):
        st = self.stack
        st.processors[1].stop()
        st.start_processor(1, wait_healthy=False)
        st.ingest.stop()
        st.start_ingest(wait_ready=False)

    def phase_postgres(self, phase):
        proxy = self.stack.pg_proxy
        start = time.time()
        proxy.cut()
        phase["connections_cut"] = proxy.closed_connections
        unready = self.hold_fault(self.s.fault_s, [1])
        proxy.restore()
        self.fault(phase, "PostgreSQL cut", start, time.time(), [1],
                   f"PostgreSQL cut for {self.s.fault_s:.0f} s ({proxy.closed_connections} connections closed)", unready)

    def phase_rebalance(self, phase):
        st = self.stack
        for k in range(1, self.s.storm_cycles + 1):
            start = time.time()
            st.start_processor(2, wait_healthy=False)
            st.start_processor(3, wait_healthy=False)
            time.sleep(self.rng.uniform(2.0, 5.0))
            st.processors[2].stop()
            st.processors[3].stop()
            self.fault(phase, "2nd and 3rd processor joined and left", start, time.time(), [1],
                       f"rebalance {k}/{self.s.storm_cycles}: processors 2 and 3 joined and left")

    def phase_poison(self, phase):
        st, s = self.stack, self.s
        tool = subprocess.run([s.kafka_tool, "poison", "--bootstrap", s.bootstrap,
                               "--registry", f"http://127.0.0.1:{s.ports['registry']}", "--topic", s.topic,
                               "--run", f"{os.getpid()}", "--sets", str(s.poison_sets)],
                              capture_output=True, text=True, env=dict(os.environ, RUST_LOG="warn"))
        if tool.returncode != 0:
            raise Fatal(f"producing the poison records failed:\n{tool.stderr}")
        produced = [tuple(line.split("\t")) for line in tool.stdout.splitlines() if line]
        self.poison.extend((k, sid, int(p), int(o)) for k, sid, p, o in produced)
        note(f"produced {len(produced)} records straight to {s.topic}: "
             + ", ".join(f"{k} {n}" for k, n in collections.Counter(k for k, *_ in produced).items()))
        # Once they are handled, make the processor see them again: kill -9 (uncommitted offsets
        # are redelivered) and a join and leave of a second processor.
        waited = self.wait_drained([sid for _, sid, _, _ in produced], timeout=60)
        phase["poison_handled_s"] = waited
        start = time.time()
        st.processors[1].kill9()
        st.start_processor(1, wait_healthy=False)
        self.fault(phase, "kill -9 processor after poison", start, time.time(), [1], "kill -9 processor after the poison")
        start = time.time()
        st.start_processor(2, wait_healthy=False)
        time.sleep(4.0)
        st.processors[2].stop()
        self.fault(phase, "2nd processor joined and left after poison", start, time.time(), [1],
                   "processor 2 joined and left")

    def run_chaos(self):
        self.phase_logs()
        s = self.s
        self.phase("processor", f"kill -9 of the processor, {s.processor_kills} times, with restart",
                   self.phase_processor_kills)
        self.phase("ingest", f"kill -9 of ingest-api, {s.ingest_kills} times, with restart; devsim retries",
                   self.phase_ingest_kills)
        self.phase("broker", f"the broker stopped for {s.fault_s:.0f} s", self.phase_broker)
        self.phase("registry", f"the registry answering 500 for {s.fault_s:.0f} s, then stopped for {s.fault_s:.0f} s",
                   self.phase_registry)
        self.phase("postgres", f"PostgreSQL unreachable for the processor for {s.fault_s:.0f} s", self.phase_postgres)
        self.phase("rebalance", f"a second and a third processor join and leave, {s.storm_cycles} times",
                   self.phase_rebalance)
        self.phase("poison", f"poison events: {s.poison_sets} × (undecodable, unknown schema id, apply-stage failure)",
                   self.phase_poison)

    # -- soak --
    def run_soak(self, duration_s):
        s, st = self.s, self.stack
        say(f"soak: {s.soak_rate:g} syncs/s for {duration_s / 60:.1f} min, no faults; sampling RSS and open files")
        interval = max(5.0, duration_s / 180)
        samples = []
        traffic = Load(st, "soak", s.soak_rate)
        started = time.time()
        next_say = started
        try:
            while time.time() - started < duration_s:
                samples.append(proc_sample(time.time() - started, st.services()))
                if time.time() >= next_say:
                    last = samples[-1]["services"]
                    note(f"soak {time.time() - started:5.0f} s: "
                         + ", ".join(f"{k} {v['rss_kb'] / 1024:.0f} MB/{v['fds']} fds" for k, v in last.items()))
                    next_say = time.time() + max(60.0, interval)
                if traffic.proc.poll() is not None:
                    raise Fatal(f"devsim load exited during the soak; its log: {s.log_dir}/devsim-soak.log")
                time.sleep(interval)
        finally:
            lines = traffic.stop()
        phase = {"name": "soak", "title": "soak", "faults": [], "interventions": [], "started": started,
                 "ended": time.time()}
        self.account(phase, lines)
        phase["drained_s"] = self.wait_drained(list(self.acked))
        phase["recovery_s"] = None
        self.phases.append(phase)
        return soak_verdict(samples, s.soak_rate, duration_s)


def fmt_s(v):
    return "—" if v is None else f"{v:.1f} s"


# ------------------------------------------------------------------------------------------------
# /proc sampling for the soak


def proc_sample(t, services):
    out = {}
    for name, pid in services.items():
        if not pid or not alive(pid):
            continue
        try:
            rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            continue
        out[name] = {"pid": pid, "rss_kb": rss, "fds": fds}
    return {"t_s": round(t, 1), "services": out}


def soak_verdict(samples, rate, duration_s):
    """Flat: the median of the last quarter of the samples within 10% (RSS) and within
    max(5, 10%) (file descriptors) of the second quarter's; the first quarter is warm-up."""
    names = sorted({n for smp in samples for n in smp["services"]})
    services = {}
    for name in names:
        series = [(smp["t_s"], smp["services"][name]) for smp in samples if name in smp["services"]]
        q = len(series) // 4
        if q < 1:
            services[name] = {"flat": None, "why": "too few samples"}
            continue
        second, last = series[q:2 * q], series[3 * q:]
        rss2, rss4 = statistics.median(v["rss_kb"] for _, v in second), statistics.median(v["rss_kb"] for _, v in last)
        fd2, fd4 = statistics.median(v["fds"] for _, v in second), statistics.median(v["fds"] for _, v in last)
        rss_growth = (rss4 - rss2) / rss2 if rss2 else 0.0
        fd_flat = fd4 - fd2 <= max(SOAK_FD_SLACK, SOAK_FD_GROWTH * fd2)
        services[name] = {
            "rss_mb_second_quarter": round(rss2 / 1024, 1), "rss_mb_last_quarter": round(rss4 / 1024, 1),
            "rss_growth": round(rss_growth, 3),
            "rss_mb_max": round(max(v["rss_kb"] for _, v in series) / 1024, 1),
            "fds_second_quarter": fd2, "fds_last_quarter": fd4, "fds_max": max(v["fds"] for _, v in series),
            "flat": rss_growth <= SOAK_RSS_GROWTH and fd_flat,
        }
    return {"rate_per_s": rate, "duration_s": duration_s, "samples": samples, "services": services,
            "flat": all(v.get("flat") for v in services.values()) if services else None}


# ------------------------------------------------------------------------------------------------
# Checks


def count_chunk_samples(blob):
    """Samples in one stored chunk (day_samples.samples, crates/processor/src/chunk_codec.rs
    version 1), counted as the processor counts them (Chunk::samples: an RR interval is one)."""
    pos = 0

    def byte():
        nonlocal pos
        b = blob[pos]
        pos += 1
        return b

    def varint():
        v = shift = 0
        while True:
            b = byte()
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def skip(n):
        nonlocal pos
        pos += n

    if byte() != 1:
        raise Fatal("a stored chunk has a format version other than 1: update count_chunk_samples in deploy/chaos.py "
                    "to crates/processor/src/chunk_codec.rs")
    total = 0
    n = varint()  # heart rate: (time, bpm) each, then (run length, source) runs
    total += n
    for _ in range(2 * n):
        varint()
    for _ in range(varint()):
        varint()
        skip(1)
    for _ in range(varint()):  # RR runs: first beat, count, intervals
        varint()
        k = varint()
        total += k
        for _ in range(k):
            varint()
    n = varint()  # steps: time, duration, steps, f32 distance
    total += n
    for _ in range(n):
        varint(), varint(), varint()
        skip(4)
    n = varint()  # sleep: start, length, stage byte
    total += n
    for _ in range(n):
        varint(), varint()
        skip(1)
    n = varint()  # SpO2: time, percent
    total += n
    for _ in range(2 * n):
        varint()
    n = varint()  # skin temperature: night end, f32
    total += n
    for _ in range(n):
        varint()
        skip(4)
    n = varint()  # wear: time, byte
    total += n
    for _ in range(n):
        varint()
        skip(1)
    if pos != len(blob):
        raise Fatal("a stored chunk has trailing bytes: deploy/chaos.py's reader and chunk_codec.rs disagree")
    return total


def check_model(suite):
    """The model against every acknowledged sync.

    - lost: acknowledged (a 202 in a ledger, or an anchor record the broker acknowledged) but
      without a `processed` row in sync_status, or without a row in day_samples (not in the model);
    - double_counted: user-days whose daily_metrics.samples_received is more than the samples of
      that user-day's chunks in day_samples (one row per distinct sync id, counted from the stored
      chunk); samples_received is exactly that sum when every chunk was merged once
      (crates/processor/src/day_state.rs), so more means a chunk was counted twice;
    - under_counted: the same sum is more than samples_received: a stored chunk missing from the
      day's figures (a loss inside the model);
    - poison_status_wrong: a poison record without a `failed` sync status.
    """
    s = suite.s
    status = {r[0]: r for r in psql(s, "SELECT sync_id, outcome, extract(epoch FROM ingested_at), "
                                       "extract(epoch FROM processed_at) FROM sync_status")}
    in_model = {r[0] for r in psql(s, "SELECT DISTINCT sync_id FROM day_samples")}
    must_process = dict(suite.acked)
    for kind, sid, _, _ in suite.poison:
        if kind == "anchor":
            must_process[sid] = "poison"
    lost = sorted(sid for sid in must_process
                  if sid not in status or status[sid][1] != "processed" or sid not in in_model)
    poison_wrong = sorted(sid for kind, sid, _, _ in suite.poison
                          if kind != "anchor" and (sid not in status or status[sid][1] != "failed"))

    expected = collections.Counter()
    for user, day, blob in psql(s, "SELECT user_id, local_date, encode(samples, 'hex') FROM day_samples"):
        expected[(user, day)] += count_chunk_samples(bytes.fromhex(blob))
    double, under = [], []
    daily = psql(s, "SELECT user_id, local_date, samples_received FROM daily_metrics")
    for user, day, received in daily:
        want = expected.get((user, day), 0)
        if int(received) > want:
            double.append({"user": user, "day": day, "samples_received": int(received), "chunk_samples": want})
        elif int(received) < want:
            under.append({"user": user, "day": day, "samples_received": int(received), "chunk_samples": want})

    # Lag per phase: from ingest to the processor's commit, over the syncs acknowledged in it.
    for phase in suite.phases:
        lags = [float(status[sid][3]) - float(status[sid][2]) for sid, p in suite.acked.items()
                if p == phase["name"] and sid in status]
        phase["max_lag_s"] = round(max(lags), 2) if lags else None
    return {
        "acked": len(suite.acked),
        "lost": len(lost),
        "lost_sync_ids": lost[:20],
        "lost_by_phase": dict(collections.Counter(must_process[sid] for sid in lost)),
        "double_counted": len(double),
        "double_counted_days": double[:20],
        "under_counted": len(under),
        "under_counted_days": under[:20],
        "user_days_checked": len(daily),
        "poison_status_wrong": len(poison_wrong),
    }


def check_dlq(suite):
    """The dead-letter topic against the poison produced.

    - dlq_expected: poison records produced (undecodable, unknown schema, apply-stage failure);
    - dlq_actual: records in the DLQ;
    - dlq_duplicates: DLQ records whose source (partition, offset) or sync id an earlier DLQ
      record already had;
    - dlq_unexpected / dlq_missing: DLQ records of no poison record, and poison records absent.
    """
    s = suite.s
    out = subprocess.run([s.kafka_tool, "dlq", "--bootstrap", s.bootstrap, "--topic", f"{s.topic}.dlq"],
                         capture_output=True, text=True, env=dict(os.environ, RUST_LOG="warn"))
    if out.returncode != 0:
        raise Fatal(f"reading {s.topic}.dlq failed:\n{out.stderr}")
    records = [line.split("\t") for line in out.stdout.splitlines() if line]
    poison = {(p, o): (kind, sid) for kind, sid, p, o in suite.poison if kind != "anchor"}
    seen_pos, seen_ids, duplicates, unexpected = set(), set(), 0, []
    for _, _, src_p, src_o, sid, stage, cls in records:
        pos = (int(src_p), int(src_o)) if src_p and src_o else None
        if (pos is not None and pos in seen_pos) or (sid and sid in seen_ids):
            duplicates += 1
        seen_pos.add(pos)
        if sid:
            seen_ids.add(sid)
        if pos not in poison:
            unexpected.append({"source": pos, "sync_id": sid, "stage": stage, "class": cls})
    missing = [{"kind": k, "sync_id": sid} for pos, (k, sid) in poison.items() if pos not in seen_pos]
    return {
        "dlq_expected": len(poison),
        "dlq_actual": len(records),
        "dlq_duplicates": duplicates,
        "dlq_unexpected": len(unexpected),
        "dlq_unexpected_records": unexpected[:20],
        "dlq_missing": missing,
    }


def acks_while_broker_down(suite):
    for phase in suite.phases:
        if "broker_down" in phase:
            down, up = phase["broker_down"]
            answered = [l for l in phase["ledger"] if down < l["answered"] < up]
            phase["answers_while_down"] = dict(collections.Counter(
                "transport" if l["status"] is None else str(l["status"]) for l in answered))
            return sum(1 for l in answered if l["status"] == 202)
    return None


def goals(result):
    """Each goal of issue 14 with the measured value and whether it is met."""
    rows = [
        ("lost", "0", result["lost"], result["lost"] == 0),
        ("double_counted", "0", result["double_counted"], result["double_counted"] == 0),
        ("under_counted", "0", result["under_counted"], result["under_counted"] == 0),
        ("dlq_actual", f"= dlq_expected ({result['dlq_expected']})", result["dlq_actual"],
         result["dlq_actual"] == result["dlq_expected"] and result["dlq_unexpected"] == 0 and not result["dlq_missing"]),
        ("dlq_duplicates", "0", result["dlq_duplicates"], result["dlq_duplicates"] == 0),
        ("poison with a failed sync status", "all", f"{result['poison_status_wrong']} wrong",
         result["poison_status_wrong"] == 0),
    ]
    if result.get("acks_while_broker_down") is not None:
        rows.append(("202s while the broker is down", "0", result["acks_while_broker_down"],
                     result["acks_while_broker_down"] == 0))
        # The other half of "ingest answers 503, never 202, while it is down": requests are
        # answered (within INGEST_DELIVERY_TIMEOUT_MS), not held until the broker is back.
        broker = next(p for p in result["phases"] if "broker_down" in p)
        answered = broker.get("answers_while_down", {})
        rows.append(("503s answered while the broker is down", "> 0",
                     ", ".join(f"{k}: {v}" for k, v in answered.items()) or "no answer at all",
                     answered.get("503", 0) > 0))
    for phase in result["phases"]:
        if phase["faults"]:
            r = phase["recovery_s"]
            rows.append((f"recovery after each fault: {phase['name']}", f"≤ {GOAL_RECOVERY_S:.0f} s",
                         "not recovered" if r is None else f"{r:.1f} s (max)", r is not None and r <= GOAL_RECOVERY_S))
    logs = next((p for p in result["phases"] if p["name"] == "logs"), None)
    if logs:
        rows.append((f"logs after {logs['acked']} syncs", f"< {logs['log_limit_bytes'] / 1e6:.0f} MB",
                     f"{logs['log_bytes_total'] / 1e6:.2f} MB",
                     logs["log_bytes_total"] < logs["log_limit_bytes"] and logs["drained_s"] is not None))
    return [{"figure": f, "goal": g, "value": v, "met": bool(m)} for f, g, v, m in rows]


# Goals whose miss fails the run (exit 1): correctness. Recovery times are reported, not enforced:
# they depend on the machine (debug builds in CI).
CORRECTNESS = ("lost", "double_counted", "under_counted", "dlq_actual", "dlq_duplicates",
               "poison with a failed sync status", "202s while the broker is down")


# ------------------------------------------------------------------------------------------------
# Reports


def public_phase(phase):
    p = {k: v for k, v in phase.items() if k not in ("ledger",)}
    p["started"] = iso(phase["started"])
    p["ended"] = iso(phase["ended"])
    p["duration_s"] = round(phase["ended"] - phase["started"], 1)
    return p


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def load_existing(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_reports(settings, section, body):
    """Writes `section` ("chaos" or "soak") of the JSON, keeping the other one, and re-renders the
    Markdown (full form only) from the whole JSON."""
    doc = load_existing(settings.json_out) if settings.md_out else {}
    doc[section] = body
    with open(settings.json_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    if settings.md_out:
        with open(settings.md_out, "w") as f:
            f.write(render_markdown(doc))


def render_markdown(doc):
    out = ["# Reliability: the chaos suite and the soak (issue 14)", "",
           "Written by `deploy/chaos.sh` (`make chaos`, `make chaos SOAK=30m`) from "
           "[reliability.json](reliability.json); every figure is measured by the run named below.", ""]
    chaos = doc.get("chaos")
    if chaos:
        out += render_chaos(chaos)
    soak = doc.get("soak")
    if soak:
        out += render_soak(soak)
    return "\n".join(out) + "\n"


def render_chaos(c):
    out = ["## Chaos", "",
           f"Command: `{c['command']}` · {c['started']} · {c['binaries']} binaries · devsim load at "
           f"{c['rate_per_s']:g} syncs/s from {c['devices']} devices, retries with the same sync id · seed {c['seed']} · "
           f"{c['duration_s'] / 60:.1f} min", "",
           "| figure | goal | measured | |", "|---|---|---|---|"]
    for g in c["goals"]:
        out.append(f"| {g['figure']} | {g['goal']} | {g['value']} | {'met' if g['met'] else '**missed**'} |")
    out += ["", f"{c['acked']} syncs acknowledged (202) in all; {c['user_days_checked']} user-days checked.", "",
            "| phase | fault | acked | errors seen by clients | not ready during the fault | recovery (max) | max lag "
            "| drained after |",
            "|---|---|---|---|---|---|---|---|"]
    for p in c["phases"]:
        errors = ", ".join(f"{k}: {v}" for k, v in p["errors_seen_by_clients"].items()) or "none"
        felt = [f["not_ready_during_fault_s"] for f in p["faults"] if f.get("not_ready_during_fault_s") is not None]
        out.append(f"| {p['name']} | {p['title']} | {p['acked']} | {errors} | {fmt_s(max(felt)) if felt else '—'} | "
                   f"{fmt_s(p['recovery_s'])} | {fmt_s(p.get('max_lag_s'))} | {fmt_s(p['drained_s'])} |")
    findings = []
    if c["lost"]:
        findings.append(f"- **{c['lost']} acknowledged syncs lost**, by phase: {c['lost_by_phase']}; "
                        f"for example {', '.join(c['lost_sync_ids'][:3])}.")
    if c["double_counted"]:
        findings.append(f"- **{c['double_counted']} user-days double counted**, e.g. {c['double_counted_days'][:2]}.")
    if c["under_counted"]:
        findings.append(f"- **{c['under_counted']} user-days under-counted**, e.g. {c['under_counted_days'][:2]}.")
    if c["dlq_duplicates"] or c["dlq_unexpected"] or c["dlq_missing"]:
        findings.append(f"- DLQ: {c['dlq_actual']} records for {c['dlq_expected']} poison records; "
                        f"{c['dlq_duplicates']} duplicates, {c['dlq_unexpected']} of no poison record "
                        f"(e.g. {c['dlq_unexpected_records'][:2]}), missing {c['dlq_missing'][:3]}.")
    broker = next((p for p in c["phases"] if "answers_while_down" in p), None)
    if broker is not None and not broker["answers_while_down"].get("503"):
        findings.append(f"- broker: while it was down ({broker['broker_down'][1] - broker['broker_down'][0]:.0f} s) "
                        f"ingest-api answered {broker['answers_while_down'] or 'nothing'}: requests were held until the "
                        f"broker was back, not answered 503 within INGEST_DELIVERY_TIMEOUT_MS.")
    for p in c["phases"]:
        for i in p["interventions"]:
            findings.append(f"- {p['name']}: {i}.")
        slow = [f for f in p["faults"] if f["recovery_s"] is None or f["recovery_s"] > GOAL_RECOVERY_S]
        if slow:
            findings.append(f"- {p['name']}: {len(slow)} of {len(p['faults'])} faults recovered later than "
                            f"{GOAL_RECOVERY_S:.0f} s ({', '.join(fmt_s(f['recovery_s']) for f in slow[:5])}).")
    out += ["", "### Findings", ""] + (findings or ["- none: every goal above is met."])
    out += ["", "### Definitions", "",
            "- `acked`: sync ids answered 202 in devsim's ledgers (`devsim load --ledger`, one line per attempt).",
            "- `lost`: acknowledged (or a poison phase's valid anchor record) but without a `processed` row in "
            "`sync_status` or without a row in `day_samples`.",
            "- `double_counted`: user-days whose `daily_metrics.samples_received` exceeds the samples of that "
            "user-day's chunks in `day_samples` (one row per distinct sync id, counted from the stored chunk); "
            "`under_counted`: the reverse.",
            "- `dlq_expected`: poison records produced (undecodable, unknown schema id, apply-stage failure); "
            "`dlq_actual`: records in `device-synced.dlq`; `dlq_duplicates`: DLQ records whose source "
            "partition/offset (`__connect.errors.*` headers) or sync id an earlier one had.",
            "- `errors_seen_by_clients`: every non-202 answer of the phase, retries included (`transport`: no answer).",
            "- `recovery_s`: from a fault's end (the replacement started, the component back) to the affected "
            "services' `/readyz` answering 200 and the processor writing a sync status again; a phase shows its "
            "slowest fault. Not recovered within 60 s: the suite restarts the service and says so above.",
            "- `max_lag_s`: the largest `processed_at − ingested_at` of the phase's acknowledged syncs.",
            "- 202s while the broker is down: answers 202 after the broker process exited and before it was "
            "started again.", ""]
    return out


def render_soak(k):
    v = k["verdict"]
    out = ["## Soak", "",
           f"Command: `{k['command']}` · {k['started']} · {k['binaries']} binaries · {v['rate_per_s']:g} syncs/s "
           f"(half the chaos load) for {v['duration_s'] / 60:.1f} min, no faults · {k['acked']} syncs acknowledged, "
           f"{k['lost']} lost · verdict: **{'flat' if v['flat'] else 'not flat'}**", "",
           "Flat: the median of the last quarter of the samples within 10% (RSS) and within max(5, 10%) (open file "
           "descriptors) of the second quarter's (the first quarter is warm-up).", "",
           "| service | RSS 2nd quarter | RSS last quarter | growth | RSS max | fds 2nd quarter | fds last quarter | fds max | flat |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, s in v["services"].items():
        if s.get("flat") is None:
            out.append(f"| {name} | {s.get('why', '')} | | | | | | | |")
            continue
        out.append(f"| {name} | {s['rss_mb_second_quarter']} MB | {s['rss_mb_last_quarter']} MB | "
                   f"{s['rss_growth'] * 100:+.1f}% | {s['rss_mb_max']} MB | {s['fds_second_quarter']} | "
                   f"{s['fds_last_quarter']} | {s['fds_max']} | {'yes' if s['flat'] else '**no**'} |")
    out += ["", "Samples over time (RSS MB / open fds):", "", "| t | " + " | ".join(v["services"]) + " |",
            "|---|" + "---|" * len(v["services"])]
    samples = v["samples"]
    step = max(1, len(samples) // 12)
    for smp in samples[::step]:
        cells = [f"{smp['services'][n]['rss_kb'] / 1024:.0f} / {smp['services'][n]['fds']}"
                 if n in smp["services"] else "—" for n in v["services"]]
        out.append(f"| {smp['t_s'] / 60:.1f} min | " + " | ".join(cells) + " |")
    return out + [""]


# ------------------------------------------------------------------------------------------------


def parse_duration(text):
    units = {"s": 1, "m": 60, "h": 3600}
    t = text.strip()
    if t[-1:] in units:
        return float(t[:-1]) * units[t[-1]]
    return float(t)


def common_result(suite, form):
    s = suite.s
    return {"command": s.command, "form": form, "started": iso(suite.started),
            "binaries": "debug" if s.short else "release", "seed": s.seed, "devices": s.devices,
            "nisshi_version": os.environ.get("NISSHI_VERSION", "")}


def main():
    parser = argparse.ArgumentParser(description="the chaos suite's orchestrator; run it through deploy/chaos.sh")
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--soak", default=None, help="a duration such as 30m: soak instead of faults")
    args = parser.parse_args()
    settings = Settings(args)
    suite = Suite(settings)

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    try:
        suite.start_stack()
        if args.soak:
            duration = parse_duration(args.soak)
            verdict = suite.run_soak(duration)
            model = check_model(suite)
            body = dict(common_result(suite, "soak"), verdict=verdict, acked=model["acked"], lost=model["lost"],
                        double_counted=model["double_counted"], duration_s=round(time.time() - suite.started, 1))
            write_reports(settings, "soak", body)
            say(f"soak verdict: {'flat' if verdict['flat'] else 'NOT flat'}; {model['lost']} lost; "
                f"written to {settings.json_out}" + (f" and {settings.md_out}" if settings.md_out else ""))
            return 0 if verdict["flat"] and model["lost"] == 0 and model["double_counted"] == 0 else 1
        suite.run_chaos()
        say("checking the model against every acknowledged sync")
        drained = suite.wait_drained(list(suite.acked))
        if drained is None:
            note("! not every acknowledged sync has a sync status yet; they count as lost")
        result = common_result(suite, "short" if settings.short else "full")
        result["rate_per_s"] = settings.rate
        result.update(check_model(suite))
        result.update(check_dlq(suite))
        result["acks_while_broker_down"] = acks_while_broker_down(suite)
        result["restarts"] = dict(suite.stack.restarts)
        result["phases"] = [public_phase(p) for p in suite.phases]
        result["goals"] = goals(result)
        result["duration_s"] = round(time.time() - suite.started, 1)
        write_reports(settings, "chaos", result)
        failed = [g for g in result["goals"] if not g["met"] and g["figure"] in CORRECTNESS]
        for g in result["goals"]:
            note(f"{'met   ' if g['met'] else 'MISSED'} {g['figure']}: {g['value']} (goal {g['goal']})")
        say(f"written to {settings.json_out}" + (f" and {settings.md_out}" if settings.md_out else ""))
        if failed:
            say("FAILED: " + "; ".join(f"{g['figure']} = {g['value']}" for g in failed)
                + f". Logs and ledgers: {settings.run_dir}")
            return 1
        return 0
    except Fatal as e:
        print(f"chaos: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("chaos: interrupted; stopping everything it started", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        suite.stack.stop_all()


if __name__ == "__main__":
    sys.exit(main())
