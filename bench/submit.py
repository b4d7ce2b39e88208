#!/usr/bin/env python3
"""Submit and status benchmarks (SPEC §8, first two lines) against a real
local stack.

  bench/submit.py submit [--clients 64] [--users 64] [--duration 10]
      POST /v1/jobs through nginx + FastCGI + MariaDB from `clients`
      keep-alive connections, against mariadb-slap's rate of committed
      single-row INSERTs from 64 clients on the same MariaDB, measured in
      the same run (half before, half after the submits).
  bench/submit.py status [--clients 64] [--status-jobs 300] [--duration 10]
      GET /v1/jobs/{id} of random existing jobs against nginx serving a
      static file (/style.css of the status pages), same client, same
      connections, same time (the two alternate in halves).
  bench/submit.py all       submit, then status on the jobs it left behind.
  bench/submit.py scale [--rows 131072]
      Status reads of the same 300 jobs with about 1k rows in the jobs
      table, then after INSERT ... SELECT doubling to `rows` rows (the
      filler rows finished, so queue positions stay as they were).

--profile S adds, after each measurement, S seconds with MariaDB's slow
log at long_query_time=0: the statements one request costs, by time.
--job-state succeeded (status) first marks every queued job succeeded in
SQL, so reads skip the queue-position count: the floor of a status read.

genqd is stopped and the stack has no backend, so only admission and
reads are measured: jobs stay queued. The load generator is one or more
processes (--procs, default 1) each running an epoll loop over raw
keep-alive sockets (one request in flight per connection), not
http.client threads, whose per-request cost under the GIL would cap the
static side far lower; the same loop drives both sides of each ratio,
and each figure says how busy the client was. Each connection binds its
own 127.0.0.x source address, so nginx's per-address edge limit (200 r/s,
nginx/genq-site.conf.in) applies per client as it would to real clients.
Every server listens on 127.0.0.1; every phase is bounded by --duration.
"""

import argparse
import array
import json
import multiprocessing
import os
import random
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from harness import load_workflow, request  # noqa: E402
from stack import Stack  # noqa: E402
import hostinfo  # noqa: E402  (bench/, this file's folder)
from hostinfo import cpu_ticks, machine_ticks  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
STATIC_PATH = "/style.css"
DB_COUNTERS = ("Questions", "Com_stmt_prepare", "Com_stmt_execute", "Com_select",
               "Com_insert", "Com_update", "Com_begin", "Com_commit", "Com_rollback",
               "Handler_read_next", "Handler_read_key", "Innodb_rows_read", "Innodb_rows_inserted",
               "Innodb_rows_updated", "Innodb_data_fsyncs",
               "Innodb_row_lock_waits", "Innodb_row_lock_time")


# ---- the load generator ------------------------------------------------

def _parse(buf):
    """(length of the first complete response in buf, status, close) or None."""
    h = buf.find(b"\r\n\r\n")
    if h < 0:
        return None
    head = bytes(buf[:h]).lower()
    status = int(head[9:12])
    body = h + 4
    i = head.find(b"\r\ncontent-length:")
    if i >= 0:
        j = head.find(b"\r\n", i + 2)
        end = body + int(head[i + 17:j if j > 0 else len(head)])
        if len(buf) < end:
            return None
    elif b"\r\ntransfer-encoding: chunked" in head:
        pos = body
        while True:
            k = buf.find(b"\r\n", pos)
            if k < 0:
                return None
            size = int(bytes(buf[pos:k]).split(b";")[0], 16)
            pos = k + 2 + size + 2
            if len(buf) < pos:
                return None
            if size == 0:
                break
        end = pos
    else:
        end = body
    return end, status, b"\r\nconnection: close" in head


def _client(port, conns_spec, duration, pipe):
    """One process: a keep-alive connection per (source address, requests)
    in conns_spec, each sending a random one of its requests as soon as the
    last answer is in, until `duration` is over. Tallies go to `pipe`."""
    sel = selectors.DefaultSelector()
    lat = array.array("d")
    done_at = array.array("d")
    statuses = {}
    reconnects = 0
    choice = random.Random(os.getpid()).choice

    def connect(conn):
        s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=(conn["src"], 0))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        conn["sock"] = s
        conn["buf"].clear()
        sel.register(s, selectors.EVENT_READ, conn)

    def drop(conn):
        sel.unregister(conn["sock"])
        conn["sock"].close()

    def send(conn):
        reqs = conn["reqs"]
        conn["t0"] = time.monotonic()
        # Requests are small and one is in flight: the send buffer is empty.
        n = conn["sock"].send(reqs[0] if len(reqs) == 1 else choice(reqs))
        assert n > 0

    cpu0 = time.process_time()
    start = time.monotonic()
    deadline = start + duration
    conns = []
    for src, reqs in conns_spec:
        conn = {"src": src, "reqs": reqs, "buf": bytearray(), "t0": 0.0}
        connect(conn)
        conns.append(conn)
    for conn in conns:
        send(conn)
    active = len(conns)
    while active:
        for key, _ in sel.select(timeout=30):
            conn = key.data
            data = conn["sock"].recv(262144)
            if not data:            # closed under us: reconnect, ask again
                drop(conn)
                connect(conn)
                reconnects += 1
                send(conn)
                continue
            buf = conn["buf"]
            buf += data
            got = _parse(buf)
            if got is None:
                continue
            end, status, close = got
            now = time.monotonic()
            del buf[:end]
            lat.append(now - conn["t0"])
            done_at.append(now - start)
            statuses[status] = statuses.get(status, 0) + 1
            if close:               # nginx's keepalive_requests: a new connection
                drop(conn)
                connect(conn)
                reconnects += 1
            if now < deadline:
                send(conn)
            else:
                drop(conn)
                active -= 1
    pipe.send({"lat": lat.tobytes(), "done_at": done_at.tobytes(), "statuses": statuses,
               "reconnects": reconnects, "cpu": time.process_time() - cpu0,
               "wall": time.monotonic() - start})
    pipe.close()


def load(port, per_conn, procs, duration):
    """Run the load generator: one connection per entry of per_conn (its
    list of request bytes), spread over `procs` processes (forked, so the
    lists are shared, not copied). Returns the merged tallies."""
    ctx = multiprocessing.get_context("fork")
    spec = [(f"127.0.{1 + i // 250}.{1 + i % 250}", reqs) for i, reqs in enumerate(per_conn)]
    children = []
    for p in range(procs):
        mine = spec[p::procs]
        if not mine:
            continue
        rx, tx = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client, args=(port, mine, duration, tx))
        proc.start()
        tx.close()
        children.append((proc, rx))
    out = {"lat": array.array("d"), "done_at": array.array("d"), "statuses": {},
           "reconnects": 0, "cpu": 0.0, "wall": 0.0}
    for proc, rx in children:
        part = rx.recv()
        proc.join()
        for k in ("lat", "done_at"):
            a = array.array("d")
            a.frombytes(part[k])
            out[k].extend(a)
        for st, n in part["statuses"].items():
            out["statuses"][st] = out["statuses"].get(st, 0) + n
        out["reconnects"] += part["reconnects"]
        out["cpu"] += part["cpu"]
        out["wall"] = max(out["wall"], part["wall"])
    return out


def http_get(path, key, host="127.0.0.1"):
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}"
            "Accept: application/json\r\n\r\n").encode()


def http_post_json(path, key, body, host="127.0.0.1"):
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode() + data


# ---- what the servers spent ----------------------------------------------

def _children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


class Meter:
    """CPU seconds of each stack component, of the machine, and MariaDB's
    counters, between start() and stop()."""

    def __init__(self, stack):
        self.stack = stack
        nginx = stack._read_pids("nginx")
        self.groups = {
            "nginx": nginx + [k for p in nginx for k in _children_of(p)],
            "fcgi": stack._read_pids("fcgi"),
            "mariadb": stack._read_pids("mariadb"),
        }

    def _db_status(self):
        out = self.stack.sql("SHOW GLOBAL STATUS").stdout
        return {k: int(v) for k, v in (line.split("\t") for line in out.splitlines())
                if k in DB_COUNTERS}

    def start(self):
        self.t0 = time.monotonic()
        self.cpu0 = {g: cpu_ticks(pids) for g, pids in self.groups.items()}
        self.machine0 = machine_ticks()
        self.kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.db0 = self._db_status()

    def stop(self):
        wall = time.monotonic() - self.t0
        cpu = {g: (cpu_ticks(pids) - self.cpu0[g]) / CLK_TCK for g, pids in self.groups.items()}
        busy = (machine_ticks()[0] - self.machine0[0]) / CLK_TCK
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu["children"] = (kids.ru_utime + kids.ru_stime -
                           self.kids0.ru_utime - self.kids0.ru_stime)
        db1 = self._db_status()
        return {"wall": wall, "cpu": cpu, "machine_busy": busy,
                "db": {k: db1.get(k, 0) - self.db0.get(k, 0) for k in DB_COUNTERS}}


def cpu_line(m, n, client_cpu=None):
    """Each component's CPU per request (ms) and share of one core."""
    w = m["wall"]
    parts = [f"{g} {c * 1000 / max(n, 1):.2f} ms/req ({100 * c / w:.0f}%)"
             for g, c in m["cpu"].items() if g != "children"]
    if client_cpu is not None:
        parts.append(f"client {client_cpu * 1000 / max(n, 1):.2f} ms/req "
                     f"({100 * client_cpu / w:.0f}%)")
    parts.append(f"whole machine {100 * m['machine_busy'] / w:.0f}% of 1 core "
                 f"(of {100 * os.cpu_count()}%)")
    return "  cpu: " + ", ".join(parts)


def db_line(m, n):
    per = [f"{k} {v / max(n, 1):.2f}" for k, v in m["db"].items() if v]
    return "  mariadb per request: " + ", ".join(per)


def pct(sorted_lat, p):
    if not sorted_lat:
        return float("nan")
    return sorted_lat[min(len(sorted_lat) - 1, int(len(sorted_lat) * p))] * 1000


def summarize(res):
    """(successes per second, p50 ms, p99 ms, successes, {other status: n})."""
    lat = sorted(res["lat"])
    ok = sum(n for st, n in res["statuses"].items() if 200 <= st < 300)
    rate = ok / res["wall"]
    other = {st: n for st, n in res["statuses"].items() if not 200 <= st < 300}
    return rate, pct(lat, 0.5), pct(lat, 0.99), ok, other


def thirds(res):
    """Successful completions per second in the first and last third."""
    t = sorted(res["done_at"])
    if not t:
        return 0, 0
    span = res["wall"] / 3
    first = sum(1 for x in t if x < span)
    last = sum(1 for x in t if x >= 2 * span)
    return first / span, last / span


# ---- the stack -------------------------------------------------------------

def start_stack(args):
    print(hostinfo.describe(), flush=True)
    root = tempfile.mkdtemp(prefix="genq-bench-submit-")
    stack = Stack(root, backends=0, fcgi_workers=args.fcgi_workers)
    try:
        stack.up()
        # Admission only: no daemon claims, no backend runs; jobs stay queued.
        stack.stop("genqd")
        stack.genqctl("tier", "set", "bench", "--priority", "1", "--max-active", "1000000",
                      "--rate", "1000000", "--burst", "1000000")
        stack.genqctl("queue", "set", "image", "--max-queued", "100000000")
        keys = [stack.add_user(f"bench{i}", tier="bench", credits="100000000")
                for i in range(args.users)]
    except BaseException:
        stop_stack(stack, root)
        raise
    return stack, keys, root


def stop_stack(stack, root):
    stack.down()
    if stack.sanitizer_reports():
        print("sanitizer reports:\n" + "\n".join(stack.sanitizer_reports()[:20]))
    shutil.rmtree(root, ignore_errors=True)


# ---- mariadb-slap ------------------------------------------------------------

SLAP_TABLE = "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB"


def slap(stack, queries, concurrency):
    """mariadb-slap, autocommit INSERTs into a fresh table of its own schema
    (created and dropped by slap): (inserts per second, seconds)."""
    argv = ["mariadb-slap", "--no-defaults", "-uroot", f"--socket={stack.db_socket}",
            f"--concurrency={concurrency}", "--iterations=1",
            f"--number-of-queries={queries}", "--create-schema=slap",
            f"--create={SLAP_TABLE}", "--query=INSERT INTO t (v) VALUES ('x')"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"mariadb-slap failed: {proc.stderr.strip()}")
    m = re.search(r"Average number of seconds to run all queries: ([0-9.]+)", proc.stdout)
    secs = float(m.group(1))
    return queries / secs, secs


def slap_phase(stack, queries, concurrency):
    meter = Meter(stack)
    meter.start()
    rate, secs = slap(stack, queries, concurrency)
    m = meter.stop()
    print(f"  mariadb-slap: {queries} autocommit INSERTs from {concurrency} clients in "
          f"{secs:.2f} s: {rate:.0f} inserts/s")
    # mariadb-slap is our child: its CPU is in "children".
    mcpu = m["cpu"]["mariadb"]
    print(f"  cpu: mariadb {mcpu * 1000 / queries:.3f} ms/insert ({100 * mcpu / m['wall']:.0f}%), "
          f"slap client {100 * m['cpu']['children'] / m['wall']:.0f}%, whole machine "
          f"{100 * m['machine_busy'] / m['wall']:.0f}% of 1 core; fsyncs/insert "
          f"{m['db']['Innodb_data_fsyncs'] / queries:.3f}")
    return rate


# ---- the modes -----------------------------------------------------------------

def _normalize(sql):
    sql = re.sub(r"'(?:[^'\\]|\\.)*'", "?", sql)
    sql = re.sub(r"\b\d+(?:\.\d+)?\b", "?", sql)
    return re.sub(r"\s+", " ", sql).strip()


def profile(args, stack, per_conn, label):
    """A short extra run with MariaDB's slow log at long_query_time=0 (its
    own phase: logging every statement slows the server): the statements
    one request costs, by total time. The FastCGI workers are restarted so
    their sessions pick up the setting."""
    path = stack.path("log", f"slow-{label}.log")
    stack.sql(f"SET GLOBAL slow_query_log_file = '{path}'; SET GLOBAL long_query_time = 0; "
              "SET GLOBAL slow_query_log = 1")
    stack.stop("fcgi")
    stack.start_fcgi()
    try:
        res = load(stack.state["port"], per_conn, args.procs, args.profile)
    finally:
        stack.sql("SET GLOBAL slow_query_log = 0; SET GLOBAL long_query_time = 10")
    n = sum(c for st, c in res["statuses"].items() if 200 <= st < 300)
    stats = {}
    qt = rows = None
    text = []

    def flush():
        if qt is not None and text:
            q = _normalize(" ".join(text))
            if q.startswith("SET timestamp"):
                return
            e = stats.setdefault(q, [0, 0.0, 0])
            e[0] += 1
            e[1] += qt
            e[2] += rows
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("# Query_time:"):
                flush()
                m = re.search(r"Query_time: ([0-9.]+).*Rows_examined: (\d+)", line)
                qt, rows, text = float(m.group(1)), int(m.group(2)), []
            elif line.startswith("#") or line.startswith("use ") or \
                    line.startswith("SET timestamp"):
                continue
            elif qt is not None:
                text.append(line.strip())
    flush()
    total = sum(e[1] for e in stats.values())
    print(f"  {label} profile ({args.profile:g} s, slow log on, {n} requests): statement time "
          f"{total * 1000 / max(n, 1):.2f} ms/request; top statements (per request: calls, "
          "ms, rows examined):")
    for q, (c, t, r) in sorted(stats.items(), key=lambda kv: -kv[1][1])[:args.top]:
        print(f"    {c / max(n, 1):5.2f}  {t * 1000 / max(n, 1):6.3f} ms  {r / max(n, 1):8.1f}  "
              f"{q[:150]}")


def client_note(res, procs):
    """Whether the load generator itself was the ceiling."""
    share = res["cpu"] / res["wall"] / procs
    return f"client cpu {100 * share:.0f}% of its {procs} process(es)" + \
        (" (client-bound: the server may do more)" if share > 0.85 else "")


def submit_bench(args, stack, keys):
    body = load_workflow(text="submit bench")
    port = stack.state["port"]
    # Client i submits with key i % users.
    per_conn = [[http_post_json("/v1/jobs", keys[i % len(keys)], body)]
                for i in range(args.clients)]
    print(f"submit: POST /v1/jobs from {args.clients} keep-alive clients over {len(keys)} "
          f"users, {args.fcgi_workers} FastCGI workers, genqd stopped and no backend "
          f"(admission only), {args.duration:g} s; mariadb-slap {args.slap_clients} clients, "
          f"half its time before and half after")
    # mariadb-slap: a short calibration, then about duration/2 on each side.
    cal_n = args.slap_clients * 16
    cal, _ = slap(stack, cal_n, args.slap_clients)
    n = max(cal_n, int(cal * args.duration / 2) // args.slap_clients * args.slap_clients)
    slap_rates = [slap_phase(stack, n, args.slap_clients)]

    load(port, per_conn, args.procs, 1.0)       # warm-up: workers connected, prepared
    depth0 = stack.scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
    meter = Meter(stack)
    meter.start()
    res = load(port, per_conn, args.procs, args.duration)
    m = meter.stop()
    depth1 = stack.scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
    slap_rates.append(slap_phase(stack, n, args.slap_clients))

    rate, p50, p99, ok, other = summarize(res)
    first, last = thirds(res)
    slap_rate = sum(slap_rates) / len(slap_rates)
    print(f"  submits: {ok} created (201) in {res['wall']:.2f} s; other answers "
          f"{other or 'none'}; reconnects {res['reconnects']}; {client_note(res, args.procs)}")
    print(f"  rate in the first third {first:.0f}/s, in the last third {last:.0f}/s "
          f"(queued jobs {depth0} -> {depth1})")
    print(cpu_line(m, ok, res["cpu"]))
    print(db_line(m, ok))
    ratio = 100 * rate / slap_rate
    verdict = "PASS" if ratio >= 50 and p99 <= 20 else "FAIL"
    print(f"SUMMARY submit: {rate:.0f} jobs/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms at "
          f"{args.clients} connections; mariadb-slap {slap_rate:.0f} inserts/s "
          f"(before {slap_rates[0]:.0f}, after {slap_rates[1]:.0f}); ratio {ratio:.0f}% "
          f"(target >= 50 %, p99 <= 20 ms): {verdict}")
    if args.profile:
        profile(args, stack, per_conn, "submit")


def pick_jobs(stack, keys, count):
    """About `count` random existing jobs, spread evenly over the users:
    {user index: [job id, ...]}."""
    per = max(1, -(-count // len(keys)))
    rows = stack.query(
        "SELECT name, id FROM (SELECT u.name, j.id, ROW_NUMBER() OVER "
        "(PARTITION BY j.user_id ORDER BY RAND()) AS rn FROM jobs j "
        f"JOIN users u ON u.id = j.user_id) x WHERE rn <= {per}")
    jobs = {}
    for name, job_id in rows:
        jobs.setdefault(int(name[len("bench"):]), []).append(job_id)
    return jobs


def ensure_jobs(stack, keys, count):
    """At least `count` jobs, submitted through the API, round robin."""
    have = int(stack.scalar("SELECT COUNT(*) FROM jobs"))
    body = load_workflow(text="status bench")
    for n in range(have, count):
        r = request(stack.url + "/v1/jobs", "POST", body, key=keys[n % len(keys)])
        assert r.status == 201, r.body


def status_requests(keys, jobs, clients):
    """Client i reads random jobs of user i % users with that user's key."""
    per_conn = []
    for i in range(clients):
        u = i % len(keys)
        per_conn.append([http_get(f"/v1/jobs/{j}", keys[u]) for j in jobs[u]])
    return per_conn


def measure_status(args, stack, keys, jobs, label):
    """Alternating halves: static, status, static, status. Returns the
    status rate, the static rate, and their tallies."""
    port = stack.state["port"]
    status_reqs = status_requests(keys, jobs, args.clients)
    static_reqs = [[http_get(STATIC_PATH, keys[i % len(keys)])] for i in range(args.clients)]
    sample = next(iter(jobs.items()))
    job_bytes = len(request(f"{stack.url}/v1/jobs/{sample[1][0]}", key=keys[sample[0]]).body)
    static_bytes = len(request(stack.url + STATIC_PATH).body)
    load(port, status_reqs, args.procs, 0.5)      # warm-up
    load(port, static_reqs, args.procs, 0.5)
    tallies = {"static": [], "status": []}
    meters = {"static": [], "status": []}
    for kind in ("static", "status", "static", "status"):
        meter = Meter(stack)
        meter.start()
        res = load(port, static_reqs if kind == "static" else status_reqs, args.procs,
                   args.duration / 2)
        meters[kind].append(meter.stop())
        tallies[kind].append(res)
    out = {}
    for kind in ("static", "status"):
        res = merge(tallies[kind])
        m = merge_meters(meters[kind])
        rate, p50, p99, ok, other = summarize(res)
        out[kind] = (rate, p50, p99)
        what = (f"GET {STATIC_PATH} ({static_bytes} B, nginx static)" if kind == "static"
                else f"GET /v1/jobs/{{id}} ({job_bytes} B, {sum(map(len, jobs.values()))} "
                f"jobs over {len(jobs)} users)")
        print(f"  {label}{kind}: {what}: {rate:.0f}/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
              f"other answers {other or 'none'}; reconnects {res['reconnects']}; "
              f"{client_note(res, args.procs)}")
        print("  " + cpu_line(m, ok, res["cpu"]))
        if kind == "status":
            print("  " + db_line(m, ok))
    return out


def merge(parts):
    out = {"lat": array.array("d"), "done_at": array.array("d"), "statuses": {},
           "reconnects": 0, "cpu": 0.0, "wall": 0.0}
    for p in parts:
        out["lat"].extend(p["lat"])
        for st, n in p["statuses"].items():
            out["statuses"][st] = out["statuses"].get(st, 0) + n
        for k in ("reconnects", "cpu", "wall"):
            out[k] += p[k]
    return out


def merge_meters(parts):
    out = {"wall": 0.0, "machine_busy": 0.0, "cpu": {}, "db": {}}
    for p in parts:
        out["wall"] += p["wall"]
        out["machine_busy"] += p["machine_busy"]
        for sect in ("cpu", "db"):
            for k, v in p[sect].items():
                out[sect][k] = out[sect].get(k, 0) + v
    return out


FINISH_SQL = (
    "UPDATE jobs SET status = 'succeeded', attempts = 1, started_at = created_at, "
    "finished_at = created_at + INTERVAL 1 SECOND, cost_charged = cost_held "
    "WHERE status = 'queued'")


def status_bench(args, stack, keys):
    ensure_jobs(stack, keys, args.status_jobs)
    if args.job_state == "succeeded":
        # Finished jobs have no queue position to count: the floor of a read.
        stack.sql(FINISH_SQL, database="genq")
    jobs = pick_jobs(stack, keys, args.status_jobs)
    total, queued = stack.query(
        "SELECT COUNT(*), COALESCE(SUM(status = 'queued'), 0) FROM jobs")[0]
    print(f"status: {args.clients} keep-alive clients, the same client and connections for "
          f"both, alternating halves of {args.duration / 2:g} s (total {args.duration:g} s "
          f"each); jobs table {total} rows, {queued} queued (genqd stopped)")
    out = measure_status(args, stack, keys, jobs, "")
    ratio = 100 * out["status"][0] / out["static"][0]
    print(f"SUMMARY status: {out['status'][0]:.0f} reads/s (p50 {out['status'][1]:.2f} ms, "
          f"p99 {out['status'][2]:.2f} ms) vs nginx static {out['static'][0]:.0f}/s "
          f"(p50 {out['static'][1]:.2f} ms); ratio {ratio:.0f}% (target >= 35 %): "
          f"{'PASS' if ratio >= 35 else 'FAIL'} at {args.clients} connections")
    if args.profile:
        profile(args, stack, status_requests(keys, jobs, args.clients), "status")


FILLER_SQL = (
    "INSERT INTO jobs (id, user_id, queue, status, priority, turn, input, metadata, "
    "max_attempts, timeout_s, ttl_s, attempts, created_at, not_before, started_at, "
    "finished_at, cost_held, cost_charged) "
    "SELECT UUID(), user_id, queue, 'succeeded', priority, turn, '{{}}', NULL, "
    "max_attempts, timeout_s, ttl_s, 1, created_at, not_before, created_at, "
    "created_at + INTERVAL 1 SECOND, cost_held, cost_held FROM jobs LIMIT {n}")


def grow(stack, rows):
    """Double the jobs table with finished copies up to `rows` rows."""
    have = int(stack.scalar("SELECT COUNT(*) FROM jobs"))
    while have < rows:
        n = min(have, rows - have)
        stack.sql(FILLER_SQL.format(n=n), database="genq")
        have += n
    stack.sql("ANALYZE TABLE jobs", database="genq")
    return have


def scale_bench(args, stack, keys):
    ensure_jobs(stack, keys, args.status_jobs)
    jobs = pick_jobs(stack, keys, args.status_jobs)
    print(f"scale: status reads of the same {sum(map(len, jobs.values()))} queued jobs, "
          f"{args.clients} clients, {args.duration:g} s each, as the jobs table grows with "
          "finished rows (INSERT ... SELECT doubling)")
    results = []
    for rows in (1000, args.rows):
        t0 = time.monotonic()
        have = grow(stack, rows)
        print(f"  jobs table: {have} rows (filled in {time.monotonic() - t0:.1f} s)")
        out = measure_status(args, stack, keys, jobs, f"{have} rows: ")
        results.append((have, out["status"]))
    (r1, s1), (r2, s2) = results
    print(f"SUMMARY scale: status {s1[0]:.0f}/s p50 {s1[1]:.2f} ms at {r1} rows, "
          f"{s2[0]:.0f}/s p50 {s2[1]:.2f} ms at {r2} rows: cost x{s1[0] / s2[0]:.2f} "
          f"(target within 2x): {'PASS' if s1[0] / s2[0] <= 2 else 'FAIL'}")


def main():
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("mode", choices=["submit", "status", "all", "scale"])
    ap.add_argument("--clients", type=int, default=64, help="keep-alive connections")
    ap.add_argument("--users", type=int, default=64, help="users (keys), client i uses i %% users")
    ap.add_argument("--procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    ap.add_argument("--fcgi-workers", type=int, default=8,
                    help="genq-fcgi processes (the shipped unit runs 8)")
    ap.add_argument("--slap-clients", type=int, default=64)
    ap.add_argument("--status-jobs", type=int, default=300)
    ap.add_argument("--job-state", choices=["queued", "succeeded"], default="queued",
                    help="status: read the jobs as they are (queued), or first mark every "
                    "queued job succeeded in SQL (no queue position to count)")
    ap.add_argument("--profile", type=float, default=0,
                    help="seconds of an extra run with the slow log on (0: none)")
    ap.add_argument("--top", type=int, default=12, help="statements the profile shows")
    ap.add_argument("--rows", type=int, default=131072, help="scale: rows at the end")
    args = ap.parse_args()
    if not 1 <= args.clients <= 60000 or not 1 <= args.users <= 10000:
        ap.error("--clients 1..60000, --users 1..10000")
    stack, keys, root = start_stack(args)
    try:
        print(f"stack {stack.url}, build {stack.builddir}, {os.cpu_count()} cpus, "
              f"load average {os.getloadavg()[0]:.2f} before the run")
        if args.mode in ("submit", "all"):
            submit_bench(args, stack, keys)
        if args.mode in ("status", "all"):
            status_bench(args, stack, keys)
        if args.mode == "scale":
            scale_bench(args, stack, keys)
    finally:
        stop_stack(stack, root)


if __name__ == "__main__":
    main()
