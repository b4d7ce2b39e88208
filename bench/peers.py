#!/usr/bin/env python3
"""SPEC §8 "Peers": genq against BullMQ (Redis) and graphile-worker
(PostgreSQL) doing the same work, in the same run.

  bench/peers.py drain    [--jobs 6000] [--backends 4] [--prefetch 32] [--rounds 1]
      Instant chat completions on OpenAI-compatible simulators (tests/sim/
      oaisim, two epoll threads each): the queue filled over HTTP first,
      then drained; jobs per second from the first start to the last
      finish, the steady rate (10th to 90th percentile completion) and each
      process's CPU per job. genq's side is `bench/dispatch.py drain
      --openai --sim-workers 2` with the same numbers.
  bench/peers.py latency  [--jobs 100] [--rounds 1]
      One job at a time to an idle simulated ComfyUI (tests/sim/comfysim):
      the submit request's send to the backend's execution_start. genq's
      side: `bench/dispatch.py latency`.
  bench/peers.py idle-gap [--jobs 20] [--run-ms 1000] [--backends 2] [--rounds 1]
      A deep queue of run-ms jobs on simulated ComfyUIs: the median time a
      backend sits idle between two jobs, from the backends' own
      timestamps. genq's side: `bench/dispatch.py idle-gap`.

  bench/peers.py submit   [--clients 64] [--duration 10] [--rounds 1]
      POST /v1/jobs from 64 keep-alive clients (bench/submit.py's load
      generator), no worker running (admission only): jobs created a
      second, p50 and p99. genq's side: `bench/submit.py submit`.
  bench/peers.py status   [--clients 64] [--duration 10] [--status-jobs 300]
      GET /v1/jobs/{id} of random existing queued jobs, same clients.
      genq's side: `bench/submit.py status`.

--peers picks who runs (default genq,bullmq,graphile); with --rounds N
they run N times in turn, so a host that changes speed shows in all of
them alike. --worker-procs N runs N Node worker processes (default: one a
core for drain), --shape pooled one consumer for all backends instead of
one per backend, --graphile-batch N graphile-worker's own batching.

Each peer does what genq's stack does for these jobs, the way its users
would build it (bench/peers/peer.js, bench/peers/README.md): an HTTP API
(`POST /v1/jobs`, `GET /v1/jobs/{id}`) that persists the job before it
answers 201; workers that send each job to its backend with as many in
flight per backend as genq's backend slots (1 + prefetch), notice its end
(ComfyUI: `/history` polled every 20 ms, genqd's fallback poll in the
benchmark; genqd itself listens on the WebSocket) and record the result.
Durability matches genq's MariaDB (every commit on disk): Redis with
`appendfsync always`, PostgreSQL with its defaults (`fsync`,
`synchronous_commit` on). genq does more per job than either peer
(authentication, rate limits, quotas, credits and their ledger, attempts,
events, outputs fetched and hashed), none of which they are asked for.

Needs a build (./dev test or make), redis-server, PostgreSQL 15 and
Node.js with npm: the first run installs the Debian packages that are
missing (as root) and runs `npm ci` in bench/peers. Every server listens
on 127.0.0.1; everything is bounded by --jobs.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from harness import load_workflow  # noqa: E402
from stack import free_port  # noqa: E402
import hostinfo  # noqa: E402  (bench/, this file's folder)
import submit as submit_bench  # noqa: E402  (bench/submit.py: its load generator)
from hostinfo import cpu_ticks, machine_ticks  # noqa: E402

PEERS_DIR = os.path.join(HERE, "peers")
BUILDDIR = os.environ.get("GENQ_BUILDDIR", os.path.join(HERE, "..", "build"))
PG_BIN = "/usr/lib/postgresql/15/bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FILL_THREADS = 8
HISTORY_POLL_MS = 20          # genqd's history_poll_ms in bench/dispatch.py


def ensure_installed():
    missing = [pkg for pkg, path in (("redis-server", "/usr/bin/redis-server"),
                                     ("postgresql-15", PG_BIN + "/postgres"),
                                     ("nodejs", "/usr/bin/node"), ("npm", "/usr/bin/npm"))
               if not os.path.exists(path)]
    if missing:
        print(f"(installing {' '.join(missing)})", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True,
                       stdout=subprocess.DEVNULL)
    if not os.path.isdir(os.path.join(PEERS_DIR, "node_modules")):
        print("(npm ci in bench/peers)", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=PEERS_DIR,
                       check=True)


def wait_for_line(logfile, proc, prefix, timeout=30):
    """The rest of the first line of logfile that starts with prefix."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(logfile) as f:
            for line in f:
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
        if proc.poll() is not None:
            raise RuntimeError(f"{logfile}: exited ({proc.returncode}) before '{prefix}'")
        time.sleep(0.02)
    raise RuntimeError(f"{logfile}: no '{prefix}' within {timeout} s")


def tree_pids(pid):
    """pid and its descendants (PostgreSQL's backends are the postmaster's children)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


class Peer:
    """One peer's whole stack in a temporary directory: its store (Redis or
    PostgreSQL), the simulated backends, its HTTP API and, once started,
    its workers. Processes are its own; stop() ends every one of them."""

    shape = "per-backend"
    graphile_batch = 0

    def __init__(self, kind, backend_type, backends, per_backend, run_ms=0):
        self.kind, self.backend_type = kind, backend_type
        self.backends, self.per_backend, self.run_ms = backends, per_backend, run_ms
        self.root = tempfile.mkdtemp(prefix=f"genq-bench-peer-{kind}-")
        self.procs = {}
        self.sim_urls = []
        self.api_port = None

    def spawn(self, name, argv, user=None, env=None):
        log = open(os.path.join(self.root, name + ".log"), "w")
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.root, env=env,
                                            start_new_session=True)
        log.close()
        return self.procs[name], os.path.join(self.root, name + ".log")

    def start(self):
        self.start_store()
        self.start_sims()
        self.reset()
        proc, log = self.spawn("api", ["node", os.path.join(PEERS_DIR, "peer.js"), "--kind",
                                       self.kind, "--role", "api", "--port", "0",
                                       *self.store_args()])
        self.api_port = int(wait_for_line(log, proc, "listening port="))

    # -- the store --

    def start_store(self):
        if self.kind == "bullmq":
            port = free_port()
            os.mkdir(os.path.join(self.root, "redis"))
            self.spawn("redis", [
                "redis-server", "--bind", "127.0.0.1", "--port", str(port),
                "--dir", os.path.join(self.root, "redis"), "--save", "",
                "--appendonly", "yes", "--appendfsync", "always",
                "--maxmemory-policy", "noeviction", "--daemonize", "no"])
            self.store_url = f"redis://127.0.0.1:{port}"
            self.wait_port(port)
            self.store_pids = lambda: [self.procs["redis"].pid]
        else:
            pgdir = os.path.join(self.root, "pg")
            os.mkdir(pgdir)
            shutil.chown(pgdir, "postgres", "postgres")
            os.chmod(self.root, 0o755)       # PostgreSQL runs as postgres, not root
            subprocess.run(["runuser", "-u", "postgres", "--", PG_BIN + "/initdb", "-D",
                            pgdir + "/data", "-A", "trust", "-U", "postgres", "--no-sync"],
                           check=True, stdout=subprocess.DEVNULL, cwd="/")
            port = free_port()
            self.spawn("postgres", [PG_BIN + "/postgres", "-D", pgdir + "/data",
                                              "-k", pgdir, "-h", "127.0.0.1", "-p", str(port),
                                              "-c", "max_connections=300"], user="postgres")
            self.wait_port(port)
            psql = ["psql", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                    "-v", "ON_ERROR_STOP=1"]
            for sql in ("CREATE ROLE bench LOGIN SUPERUSER", "CREATE DATABASE bench OWNER bench"):
                subprocess.run(psql + ["-c", sql], check=True, cwd="/")
            self.store_url = f"postgres://bench@127.0.0.1:{port}/bench"
            self.store_pids = lambda: tree_pids(self.procs["postgres"].pid)

    def store_args(self):
        return ["--redis" if self.kind == "bullmq" else "--pg", self.store_url]

    @staticmethod
    def wait_port(port, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nothing listens on port {port}")

    def reset(self):
        subprocess.run(["node", os.path.join(PEERS_DIR, "peer.js"), "--kind", self.kind,
                        "--role", "reset", *self.store_args()], check=True, cwd=self.root,
                       stdout=subprocess.DEVNULL)

    # -- simulated backends (the same programs genq's bench drives) --

    def start_sims(self):
        for i in range(self.backends):
            if self.backend_type == "openai":
                argv = [os.path.join(BUILDDIR, "tests", "sim", "oaisim"), "--port", "0",
                        "--name", f"oai{i + 1}", "--workers", "2"]
            else:
                out = os.path.join(self.root, f"sim{i + 1}")
                os.mkdir(out)
                argv = [os.path.join(BUILDDIR, "tests", "sim", "comfysim"), "--port", "0",
                        "--output-dir", out, "--name", f"sim{i + 1}",
                        "--run-ms", str(self.run_ms)]
            proc, log = self.spawn(f"sim{i + 1}", argv)
            self.sim_urls.append("http://127.0.0.1:" + wait_for_line(log, proc, "listening port="))

    def sim_pids(self):
        return [self.procs[f"sim{i + 1}"].pid for i in range(self.backends)]

    # -- workers --

    def start_workers(self, procs=1):
        """procs worker processes sharing each backend's slots (Node runs a
        process's JavaScript on one core); their pids once all are ready."""
        started = []
        for w in range(procs):
            slots = self.per_backend // procs + (w < self.per_backend % procs)
            started.append(self.spawn(f"worker{w + 1}", [
                "node", os.path.join(PEERS_DIR, "peer.js"), "--kind", self.kind,
                "--role", "worker", *self.store_args(), "--backend-type", self.backend_type,
                "--backends", ",".join(self.sim_urls), "--per-backend", str(slots),
                "--poll-ms", str(HISTORY_POLL_MS), "--shape", self.shape,
                *(["--batch", str(self.graphile_batch)] if self.kind == "graphile" else [])]))
        for proc, log in started:
            wait_for_line(log, proc, "ready", 60)
        return [proc.pid for proc, _ in started]

    def report(self):
        out = subprocess.run(["node", os.path.join(PEERS_DIR, "peer.js"), "--kind", self.kind,
                              "--role", "report", *self.store_args()], check=True,
                             cwd=self.root, capture_output=True, text=True).stdout
        return json.loads(out)

    def stop(self, keep=False):
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if keep:
            print(f"(kept {self.root})")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


# -- the API's client side --

class Client:
    """One keep-alive connection to a peer's API."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
        reply = self.conn.getresponse()
        return reply.status, json.loads(reply.read() or b"null")

    def submit(self, body):
        status, reply = self.call("POST", "/v1/jobs", body)
        assert status == 201, (status, reply)
        return reply["id"]

    def status(self, job_id):
        status, reply = self.call("GET", f"/v1/jobs/{job_id}")
        assert status == 200, (status, reply)
        return reply["status"]

    def close(self):
        self.conn.close()


def chat_body(n):
    return {"queue": "llm", "input": {"model": "sim-llm", "max_tokens": 1, "messages": [
        {"role": "user", "content": f"drain {n} SIM_TOKEN_MS=0"}]}}


def fill(port, bodies):
    """Submit every body over FILL_THREADS keep-alive connections; the ids in order."""
    ids = [None] * len(bodies)

    def run(offset):
        client = Client(port)
        for i in range(offset, len(bodies), FILL_THREADS):
            ids[i] = client.submit(bodies[i])
        client.close()
    threads = [threading.Thread(target=run, args=(t,)) for t in range(FILL_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(ids), "a submit failed"
    return ids


def wait_done(port, ids, timeout):
    """Until every job's status (read through the peer's own API) is final."""
    client = Client(port)
    deadline = time.monotonic() + timeout
    pending = list(ids)
    try:
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} jobs unfinished"
            st = client.status(pending[-1])
            if st in ("succeeded", "failed"):
                assert st == "succeeded", (pending[-1], st)
                pending.pop()
            else:
                time.sleep(0.02)
    finally:
        client.close()


# -- the measurements --

def peer_drain(kind, args):
    peer = Peer(kind, "openai", args.backends, 1 + args.prefetch)
    try:
        peer.start()
        fill(peer.api_port, [chat_body(n) for n in range(args.jobs)])
        # Looked up again at the end: PostgreSQL starts a process for each
        # connection the workers open.
        groups = {"store": peer.store_pids, "simulators": peer.sim_pids}
        machine0 = machine_ticks()
        cpu0 = {g: cpu_ticks(p()) for g, p in groups.items()}
        t0 = time.monotonic()
        worker_pids = peer.start_workers(args.worker_procs)
        groups["workers"] = lambda: worker_pids
        cpu0["workers"] = cpu_ticks(worker_pids)    # Node's start-up left out
        # One long-lived counting process asks the store ten times a second,
        # as bench/dispatch.py asks MariaDB (a Node process started for each
        # count would take most of a core).
        _, counts_log = peer.spawn("count", [
            "node", os.path.join(PEERS_DIR, "peer.js"), "--kind", kind, "--role", "count",
            *peer.store_args(), "--watch", "100"])
        deadline = time.monotonic() + 600
        while True:
            done = last_count(counts_log)
            if done >= args.jobs:
                break
            assert time.monotonic() < deadline, f"{done} of {args.jobs} jobs finished"
            assert all(peer.procs[f"worker{w + 1}"].poll() is None
                       for w in range(args.worker_procs)), "a worker exited"
            time.sleep(0.05)
        cpu1 = {g: cpu_ticks(p()) for g, p in groups.items()}
        machine1 = machine_ticks()
        wall = time.monotonic() - t0
        rep = peer.report()
        assert rep["done"] == args.jobs and rep["failed"] == 0, \
            f"{rep['done']} succeeded, {rep['failed']} failed of {args.jobs}"
        starts = [r[0] for r in rep["runs"]]
        ends = sorted(r[1] for r in rep["runs"])
        span = (ends[-1] - min(starts)) / 1000
        lo, hi = len(ends) // 10, len(ends) * 9 // 10
        print(f"drain [{kind}]: {args.jobs} instant jobs on {args.backends} OpenAI-compatible "
              f"backends, {1 + args.prefetch} in flight each, {args.worker_procs} worker "
              f"process{'es' if args.worker_procs > 1 else ''}: {args.jobs / span:.0f} jobs/s "
              f"(first start to last finish {span:.2f} s; wall {wall:.2f} s)")
        print(f"  steady: {(hi - lo) / max(ends[hi] - ends[lo], 0.001) * 1000:.0f} jobs/s "
              "between the 10th and the 90th percentile completion")
        print("  cpu per job: " + ", ".join(
            f"{g} {(cpu1[g] - cpu0[g]) / CLK_TCK * 1000 / args.jobs:.2f} ms" for g in groups)
            + " (the workers' \"ready\" to the queue's end)")
        busy, ticks = machine1[0] - machine0[0], machine1[1] - machine0[1]
        print(f"  machine: {100 * busy / max(ticks, 1):.0f} % busy, all cores")
    finally:
        peer.stop(args.keep)


def last_count(logfile):
    """done + failed in the counting process's last complete line."""
    with open(logfile) as f:
        lines = [ln for ln in f.read().split("\n")[:-1] if ln.startswith("{")]
    if not lines:
        return 0
    counts = json.loads(lines[-1])
    return counts["done"] + counts["failed"]


def sim_history(url):
    conn = http.client.HTTPConnection(url.split("//")[1], timeout=10)
    conn.request("GET", "/history?max_items=100000")
    hist = json.loads(conn.getresponse().read())
    conn.close()
    runs = {}
    for prompt, entry in hist.items():
        msgs = {m[0]: m[1] for m in entry["status"]["messages"]}
        if "execution_start" in msgs and "execution_success" in msgs:
            runs[prompt] = (msgs["execution_start"]["timestamp"],
                            msgs["execution_success"]["timestamp"])
    return runs


def peer_latency(kind, args):
    peer = Peer(kind, "comfyui", 1, 1)
    try:
        peer.start()
        peer.start_workers(args.worker_procs)
        client = Client(peer.api_port)
        seen, lat = set(), []
        for n in range(args.jobs):
            body = load_workflow(text=f"latency {n}")
            t0 = time.time() * 1000
            job_id = client.submit(body)
            time.sleep(0.03)     # as in bench/dispatch.py: no read while it travels
            wait_done(peer.api_port, [job_id], 30)
            runs = sim_history(peer.sim_urls[0])
            new = [p for p in runs if p not in seen]
            assert len(new) == 1, f"{len(new)} new prompts for one job"
            seen.add(new[0])
            lat.append(runs[new[0]][0] - t0)
        client.close()
        lat.sort()
        print(f"latency [{kind}]: submit to backend start over {args.jobs} jobs (one keep-alive "
              f"client, clock from the request's send): p50 {statistics.median(lat):.1f} ms, "
              f"p90 {lat[int(len(lat) * 0.9)]:.1f} ms")
    finally:
        peer.stop(args.keep)


def peer_idle_gap(kind, args):
    peer = Peer(kind, "comfyui", args.backends, 1 + args.prefetch, run_ms=args.run_ms)
    try:
        peer.start()
        peer.start_workers(args.worker_procs)
        ids = fill(peer.api_port, [load_workflow(text=f"gap {n} SIM_MS={args.run_ms}")
                                   for n in range(args.jobs)])
        wait_done(peer.api_port, ids, args.jobs * args.run_ms / 1000 + 60)
        gaps = []
        for url in peer.sim_urls:
            runs = sorted(sim_history(url).values())
            gaps += [b[0] - a[1] for a, b in zip(runs, runs[1:])]
        print(f"idle-gap [{kind}]: {args.jobs} jobs of {args.run_ms} ms on {args.backends} "
              f"backends, {1 + args.prefetch} in flight each: median "
              f"{statistics.median(gaps):.1f} ms, max {max(gaps):.1f} ms over {len(gaps)} gaps")
    finally:
        peer.stop(args.keep)


def api_load(peer, per_conn, warmup_s, duration):
    """bench/submit.py's load generator on the peer's API, after a
    warm-up: (rate, p50, p99, successes, other answers, tallies)."""
    submit_bench.load(peer.api_port, per_conn, 1, warmup_s)
    res = submit_bench.load(peer.api_port, per_conn, 1, duration)
    return (*submit_bench.summarize(res), res)


def peer_submit(kind, args):
    peer = Peer(kind, "openai", 1, 1)
    try:
        peer.start()
        per_conn = [[submit_bench.http_post_json("/v1/jobs", "-", chat_body(i))]
                    for i in range(args.clients)]
        rate, p50, p99, ok, other, res = api_load(peer, per_conn, 1.0, args.duration)
        print(f"submit [{kind}]: {rate:.0f} jobs/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms at "
              f"{args.clients} connections ({ok} created in {res['wall']:.1f} s, no worker "
              f"running; other answers {other or 'none'}; "
              f"{submit_bench.client_note(res, 1)})")
    finally:
        peer.stop(args.keep)


def peer_status(kind, args):
    peer = Peer(kind, "openai", 1, 1)
    try:
        peer.start()
        ids = fill(peer.api_port, [chat_body(n) for n in range(args.status_jobs)])
        # Each client reads random jobs of its own share, as bench/submit.py's
        # clients read their own user's.
        per_conn = [[submit_bench.http_get(f"/v1/jobs/{j}", "-") for j in ids[i::args.clients]]
                    for i in range(min(args.clients, len(ids)))]
        rate, p50, p99, ok, other, res = api_load(peer, per_conn, 0.5, args.duration)
        print(f"status [{kind}]: {rate:.0f} reads/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms at "
              f"{len(per_conn)} connections ({len(ids)} queued jobs; other answers "
              f"{other or 'none'}; {submit_bench.client_note(res, 1)})")
    finally:
        peer.stop(args.keep)


def genq(args):
    """genq's side, by bench/dispatch.py with the same figures."""
    argv = [sys.executable, os.path.join(HERE, "dispatch.py"), args.mode, "--jobs", str(args.jobs)]
    if args.mode == "drain":
        argv += ["--openai", "--sim-workers", "2", "--backends", str(args.backends),
                 "--prefetch", str(args.prefetch)]
    elif args.mode == "idle-gap":
        argv += ["--backends", str(args.backends), "--run-ms", str(args.run_ms),
                 "--prefetch", str(args.prefetch)]
    if args.mode in ("submit", "status"):
        argv = [sys.executable, os.path.join(HERE, "submit.py"), args.mode, "--clients",
                str(args.clients), "--duration", str(args.duration), "--status-jobs",
                str(args.status_jobs)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("(host:"):         # printed once above
            continue
        if args.mode in ("submit", "status"):
            if line.startswith("SUMMARY"):     # bench/submit.py's details: run it alone
                print(line.replace("SUMMARY ", "", 1).replace(
                    f"{args.mode}:", f"{args.mode} [genq]:", 1))
        elif not line.startswith("("):
            print(line.replace(f"{args.mode}:", f"{args.mode} [genq]:", 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["drain", "latency", "idle-gap", "submit", "status"])
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--backends", type=int)
    ap.add_argument("--prefetch", type=int)
    ap.add_argument("--run-ms", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=64, help="submit, status: connections")
    ap.add_argument("--duration", type=float, default=10.0, help="submit, status: seconds")
    ap.add_argument("--status-jobs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--worker-procs", type=int,
                    help="the peers' worker processes (default: one a core for drain, else 1; "
                         "Node runs a process's JavaScript on one core, genqd uses threads)")
    ap.add_argument("--peers", default="genq,bullmq,graphile")
    ap.add_argument("--shape", choices=["per-backend", "pooled"], default="per-backend",
                    help="the peers' consumers: one per backend with its slots, or one for "
                         "all backends, each job to the one with the fewest in flight")
    ap.add_argument("--graphile-batch", type=int, default=0, metavar="N",
                    help="graphile-worker's batching: N jobs locked at once into a local "
                         "queue, completions written together (0: off, its default)")
    ap.add_argument("--keep", action="store_true", help="keep the peers' directories (logs)")
    args = ap.parse_args()
    jobs, backends, prefetch = {"drain": (6000, 4, 32), "latency": (100, 1, 0),
                                "idle-gap": (20, 2, 1), "submit": (0, 1, 0),
                                "status": (0, 1, 0)}[args.mode]
    args.jobs = args.jobs or jobs
    args.backends = args.backends or backends
    args.prefetch = prefetch if args.prefetch is None else args.prefetch
    if args.worker_procs is None:
        args.worker_procs = os.cpu_count() if args.mode == "drain" else 1
    # Each worker process takes a share of every backend's slots.
    args.worker_procs = max(1, min(args.worker_procs, 1 + args.prefetch))
    peers = args.peers.split(",")
    unknown = set(peers) - {"genq", "bullmq", "graphile"}
    if unknown:
        ap.error(f"unknown peer {', '.join(sorted(unknown))}")
    Peer.shape = args.shape
    Peer.graphile_batch = args.graphile_batch
    ensure_installed()
    print(hostinfo.describe(), flush=True)
    run = {"drain": peer_drain, "latency": peer_latency, "idle-gap": peer_idle_gap,
           "submit": peer_submit, "status": peer_status}[args.mode]
    for _ in range(args.rounds):
        for who in peers:
            if who == "genq":
                genq(args)
            else:
                run(who, args)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
