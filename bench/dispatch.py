#!/usr/bin/env python3
"""Dispatch benchmarks (SPEC §8) against a real local stack.

  bench/dispatch.py idle-gap  [--jobs 20] [--run-ms 1000] [--backends 2]
      A deep queue of run-ms jobs: how long each simulated GPU sits idle
      between two jobs, from the backends' own execution timestamps.
  bench/dispatch.py latency   [--jobs 50]
      One job at a time to an idle backend: submit (HTTP 201) to the
      backend's execution_start.
  bench/dispatch.py drain     [--jobs 2000] [--backends 4] [--prefetch 1] [--openai]
      Instant jobs: jobs per second from the first claim to the last
      completion, through one genqd (and between the 10th and the 90th
      percentile completion, without the start and the tail), and the CPU
      each process spent per job. --openai drains chat completions through OpenAI-compatible
      backends instead (answering at once): one
      request per job and no file to store, so genqd's and MariaDB's CPU
      per job there is genq's own cost with the cheapest protocol.
  bench/dispatch.py scale     [--jobs 600] [--rows 1048576] [--depth 100000]
      SPEC §8 "Scale": drains `jobs` instant jobs with a small table, then
      again after filling the jobs table with `rows` finished rows and a
      backlog of `depth` queued jobs: the rate, the rows MariaDB reads per
      job (flat when the claim reads only what it takes) and genqd's peak
      memory (flat with the queue's depth).
  bench/dispatch.py sim       [--jobs 400] [--clients 8]
      The simulated ComfyUI alone, no genq: prompts per second that
      `clients` keep-alive clients get through one simulator (submit, poll
      /history, fetch the output), the ceiling for one backend in `drain`.

--prefetch sets every backend's prefetch (jobs handed over ahead of time).
--sim c|python picks the simulators (idle-gap, latency, drain, scale, sim):
`c` (the default) is tests/sim/comfysim, and tests/sim/oaisim with
--openai, whose own CPU per request is small, so the numbers are genq's;
`python` is tests/sim/comfyui_sim.py and tests/sim/openai_sim.py, the
tests' simulators. Each run prints which one it used, and what creating a
file costs where it runs (see create_cost_us).

Needs a build (./dev test or make) and the packages ./dev installs. Every
server listens on 127.0.0.1; everything is bounded by --jobs.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from harness import load_workflow, request  # noqa: E402
from stack import Stack  # noqa: E402
import hostinfo  # noqa: E402  (bench/, this file's folder)
from hostinfo import cpu_ticks, machine_ticks  # noqa: E402


CREATE_PROBE_FILES = 300
CREATE_SLOW_US = 50


def create_cost_us(root):
    """What creating one file costs in root now, in µs. On an ext4 without a
    journal (this machine's /) the inode allocator steps past every inode
    freed in the last one to five minutes, so a run that follows the
    deletion of many files (the previous run's clean-up) pays several times
    as much for every output genqd and the simulators create: genqd spent
    43 % of its time in open() in such a run. The probe files stay, to go
    with root at the end."""
    probe = os.path.join(root, "create-probe")
    os.mkdir(probe)
    t0 = time.perf_counter()
    for n in range(CREATE_PROBE_FILES):
        os.close(os.open(os.path.join(probe, str(n)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return (time.perf_counter() - t0) / CREATE_PROBE_FILES * 1e6


def start(args, run_ms, backends):
    print(hostinfo.describe(), flush=True)
    root = tempfile.mkdtemp(prefix="genq-bench-")
    cost = create_cost_us(root)
    print(f"(creating a file here costs {cost:.0f} µs"
          + (f": over {CREATE_SLOW_US} µs, likely inodes freed in the last minutes "
             "(a run just before this one?); figures will be low, wait five minutes"
             if cost > CREATE_SLOW_US else "") + ")", flush=True)
    openai = getattr(args, "openai", False)
    workers = getattr(args, "sim_workers", 0)
    stack = Stack(root, backends=0 if openai else backends, sim_run_ms=run_ms,
                  sim_impl=args.sim, openai_backends=backends if openai else 0,
                  openai_sim_args=("--workers", str(workers)) if workers and args.sim == "c" else (),
                  daemon_settings={"history_poll_ms": 20, "poll_interval_ms": 200})
    print("(simulated backends: " + (f"OpenAI-compatible, {OAI_SIM_NAMES[args.sim]}"
                                     if openai else f"ComfyUI, {SIM_NAMES[args.sim]}") + ")",
          flush=True)
    stack.up()
    if args.prefetch != 1:
        stack.sql(f"UPDATE genq.backends SET prefetch = {int(args.prefetch)}")
        stack.stop("genqd")           # read the backends afresh
        stack.start_genqd()
    stack.genqctl("tier", "set", "bench", "--priority", "1", "--max-active", "1000000",
                  "--rate", "1000000", "--burst", "1000000")
    key = stack.add_user("bench", tier="bench", credits="1000000")
    return stack, key, root


SIM_NAMES = {"c": "tests/sim/comfysim (C)", "python": "tests/sim/comfyui_sim.py (Python)"}
OAI_SIM_NAMES = {"c": "tests/sim/oaisim (C)", "python": "tests/sim/openai_sim.py (Python)"}


def submit(stack, key, text, openai=False):
    body = load_workflow(text=text)
    if openai:       # one short chat completion, answered at once
        body = {"queue": "llm", "input": {"model": "sim-llm", "max_tokens": 1, "messages": [
            {"role": "user", "content": f"{text} SIM_TOKEN_MS=0"}]}}
    # nginx's edge limit (200 requests/s per address) answers a fill that
    # runs faster than that with 429: back off as a client would.
    for _ in range(100):
        r = request(stack.url + "/v1/jobs", "POST", body, key=key)
        if r.status != 429:
            break
        time.sleep(0.05)
    assert r.status == 201, r.body
    return r.json["id"]


def wait_all(stack, key, ids, timeout):
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for job_id in list(pending)[:50]:
            st = request(f"{stack.url}/v1/jobs/{job_id}", key=key).json["status"]
            if st in ("succeeded", "failed", "canceled", "expired"):
                assert st == "succeeded", (job_id, st)
                pending.discard(job_id)
        time.sleep(0.05)
    assert not pending, f"{len(pending)} jobs unfinished"


class Session:
    """One long-lived mariadb client for the bench's own polling: a client
    started per count (Stack.query) cost a fifth of a core at ten counts a
    second, CPU taken from the very processes being measured."""

    END = "-- end of reply --"

    def __init__(self, stack):
        self.proc = subprocess.Popen(
            ["mariadb", "--no-defaults", "-uroot", f"--socket={stack.db_socket}",
             "--batch", "--skip-column-names", "--unbuffered", "genq"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def scalar(self, statement):
        self.proc.stdin.write(f"{statement};\nSELECT '{self.END}';\n")
        self.proc.stdin.flush()
        lines = []
        while (line := self.proc.stdout.readline()) and line.rstrip("\n") != self.END:
            lines.append(line.rstrip("\n"))
        assert line, "the bench's mariadb client exited"
        return lines[0].split("\t")[0] if lines else None

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def wait_drained(stack, n, timeout):
    """Until no job is queued or running, by one probe per 0.1 s on one
    connection (the status API would cost the database more than the
    dispatch it measures: a queued job's read counts the jobs ahead of it);
    then every one of the n jobs must have succeeded. The probe asks for one
    such job, not their count: counting read up to every queued job's index
    entry each time, some 3 ms of MariaDB's time a probe at 6,000 jobs."""
    deadline = time.monotonic() + timeout
    db = Session(stack)
    try:
        while db.scalar("SELECT 1 FROM jobs WHERE status IN ('queued', 'running') LIMIT 1"):
            assert time.monotonic() < deadline, "jobs unfinished"
            time.sleep(0.1)
        done = int(db.scalar("SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'"))
    finally:
        db.close()
    assert done == n, f"{done} of {n} jobs succeeded"


def sim_runs(stack, i):
    """(start_ms, end_ms) of every prompt a simulator ran, from /history."""
    hist = request(stack.sim_url(i) + "/history?max_items=100000").json
    runs = []
    for entry in hist.values():
        msgs = {m[0]: m[1] for m in entry["status"]["messages"]}
        if "execution_start" in msgs and "execution_success" in msgs:
            runs.append((msgs["execution_start"]["timestamp"],
                         msgs["execution_success"]["timestamp"]))
    return sorted(runs)


def idle_gap(args):
    stack, key, root = start(args, args.run_ms, args.backends)
    try:
        ids = [submit(stack, key, f"gap {n} SIM_MS={args.run_ms}") for n in range(args.jobs)]
        wait_all(stack, key, ids, timeout=args.jobs * args.run_ms / 1000 + 60)
        gaps = []
        for i in range(args.backends):
            runs = sim_runs(stack, i)
            gaps += [b[0] - a[1] for a, b in zip(runs, runs[1:])]
        print(f"idle-gap: {args.jobs} jobs of {args.run_ms} ms on {args.backends} backends: "
              f"median {statistics.median(gaps):.1f} ms, max {max(gaps):.1f} ms "
              f"over {len(gaps)} gaps")
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


def latency(args):
    import http.client
    import json
    stack, key, root = start(args, 0, 1)
    try:
        # Like an API client: one keep-alive connection, the body built
        # beforehand, the clock started as the request goes out.
        conn = http.client.HTTPConnection("127.0.0.1", stack.state["port"], timeout=10)
        headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
        lat, parts = [], []
        for n in range(args.jobs):
            body = json.dumps(load_workflow(text=f"latency {n}"))
            t0 = time.time() * 1000
            conn.request("POST", "/v1/jobs", body, headers)
            reply = conn.getresponse()
            data = reply.read()
            assert reply.status == 201, data
            job_id = json.loads(data)["id"]
            # No status read while the job is on its way: the bench's own
            # request would compete for the CPU with what it measures.
            time.sleep(0.03)
            wait_all(stack, key, [job_id], timeout=30)
            # Where the time went, by the database's own clock: the job
            # row's insert (in the handler's transaction) and the attempt
            # row's (in genqd's claim), both UTC_TIMESTAMP(6).
            prompt, inserted, claimed = stack.query(
                "SELECT a.prompt_id, UNIX_TIMESTAMP(j.created_at) * 1000, "
                "UNIX_TIMESTAMP(a.started_at) * 1000 FROM job_attempts a JOIN jobs j "
                f"ON j.seq = a.job_seq WHERE j.id = '{job_id}'")[0]
            entry = request(stack.sim_url(0) + f"/history/{prompt}").json[prompt]
            msgs = {m[0]: m[1] for m in entry["status"]["messages"]}
            began = msgs["execution_start"]["timestamp"]
            lat.append(began - t0)
            parts.append((float(inserted) - t0, float(claimed) - float(inserted),
                          began - float(claimed)))
        lat.sort()
        conn.close()
        print(f"latency: submit to backend start over {args.jobs} jobs (one keep-alive "
              f"client, clock from the request's send): "
              f"p50 {statistics.median(lat):.1f} ms, p90 {lat[int(len(lat) * 0.9)]:.1f} ms")
        print("  p50 of its parts: send to the job row's insert {:.1f} ms, insert to the "
              "claim's attempt row {:.1f} ms, attempt row to the backend's start {:.1f} ms"
              .format(*(statistics.median(p[i] for p in parts) for i in range(3))))
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


# Innodb_lsn_current: the bytes of redo log written.
DB_COUNTERS = ("Com_stmt_execute", "Com_commit", "Innodb_data_fsyncs", "Innodb_lsn_current")


def db_counters(stack):
    names = ", ".join(f"'{n}'" for n in DB_COUNTERS)
    return {r[0]: int(r[1]) for r in stack.query(
        f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")}


def start_profile(path):
    """perf record of the whole machine, call graphs included, while the
    drain runs (--profile): where every process's CPU time goes."""
    if not path:
        return None
    events = os.environ.get("GENQ_PERF_EVENTS")   # e.g. sched:sched_switch: where they wait
    argv = ["perf", "record", "-q", "-a", "--call-graph", os.environ.get("GENQ_PERF_CALLGRAPH", "fp"), "-o", path]
    argv += ["-e", events] if events else ["-F", "997"]
    proc = subprocess.Popen(argv,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)            # perf maps the machine's processes first
    return proc


def stop_profile(proc, path):
    if proc is None:
        return
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    print(f"(profile written to {path}: perf report -i {path} --sort comm,dso,sym)")


def drain(args):
    stack, key, root = start(args, 0, args.backends)
    try:
        stack.stop("genqd")       # fill the queue first, then time the drain alone
        ids = [submit(stack, key, f"drain {n}", args.openai) for n in range(args.jobs)]
        sim = "oai" if args.openai else "sim"
        groups = {"mariadb": stack._read_pids("mariadb"),
                  "simulators": [p for i in range(args.backends)
                                 for p in stack._read_pids(f"{sim}{i + 1}")]}
        db0 = db_counters(stack)
        profiler = start_profile(args.profile)
        t0 = time.monotonic()
        stack.start_genqd()
        groups["genqd"] = stack._read_pids("genqd")
        cpu0 = {g: cpu_ticks(p) for g, p in groups.items()}
        machine0 = machine_ticks()
        wait_drained(stack, len(ids), timeout=600)
        cpu1 = {g: cpu_ticks(p) for g, p in groups.items()}
        machine1 = machine_ticks()
        stop_profile(profiler, args.profile)
        db1 = db_counters(stack)
        first, last = stack.query(
            "SELECT MIN(started_at), MAX(finished_at) FROM jobs")[0]
        span = float(stack.scalar(
            f"SELECT TIMESTAMPDIFF(MICROSECOND, '{first}', '{last}')")) / 1e6
        print(f"drain: {args.jobs} instant jobs on {args.backends} "
              f"{'OpenAI-compatible' if args.openai else 'ComfyUI'} backends through one genqd: "
              f"{args.jobs / span:.0f} jobs/s (first start to last finish {span:.2f} s; "
              f"wall {time.monotonic() - t0:.2f} s)")
        # The middle 80 % of the completions: the rate once every backend is
        # busy, without genqd's start (its first claim, its first TCP
        # connections) or the last jobs' tail.
        ends = [int(r[0]) for r in stack.query(
            f"SELECT TIMESTAMPDIFF(MICROSECOND, '{first}', finished_at) FROM jobs "
            "ORDER BY finished_at")]
        lo, hi = len(ends) // 10, len(ends) * 9 // 10
        print(f"  steady: {(hi - lo) / max(ends[hi] - ends[lo], 1) * 1e6:.0f} jobs/s between the "
              f"10th and the 90th percentile completion; the first ended "
              f"{ends[0] / 1000:.1f} ms after the first start")
        tick = os.sysconf("SC_CLK_TCK")
        per_job = {g: (cpu1[g] - cpu0[g]) / tick * 1000 / args.jobs for g in groups}
        print("  cpu per job: " + ", ".join(f"{g} {ms:.2f} ms" for g, ms in per_job.items())
              + " (genqd's start to the queue's end; mariadb's share includes the "
              "bench's one probe per 0.1 s on one connection)")
        busy, ticks = machine1[0] - machine0[0], machine1[1] - machine0[1]
        print(f"  machine: {100 * busy / max(ticks, 1):.0f} % busy, all cores, from genqd's start "
              "to the drain's end")
        print("  database per job: " + ", ".join(
            f"{n} {(db1[n] - db0[n]) / args.jobs:.2f}" for n in DB_COUNTERS))
    finally:
        stack.down()
        if args.keep:
            print(f"(stack kept in {root}: logs in {root}/log)")
        else:
            shutil.rmtree(root, ignore_errors=True)


def vm_hwm_kb(pid):
    """Peak resident memory of a process (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


FILL_COLUMNS = ("user_id, queue, priority, metadata, max_attempts, timeout_s, ttl_s, "
                "created_at, not_before, turn")


def fill(stack, status, rows, tiny_input):
    """Double jobs of one status by INSERT ... SELECT until there are `rows`
    (fresh ids; finished filler keeps a tiny input, queued filler the
    template's workflow so the simulators can run it)."""
    have = int(stack.scalar(f"SELECT COUNT(*) FROM jobs WHERE status = '{status}'"))
    if have == 0:
        stack.sql(f"INSERT INTO genq.jobs (id, status, input, attempts, {FILL_COLUMNS}) "
                  f"SELECT UUID(), '{status}', input, 0, {FILL_COLUMNS} FROM genq.jobs "
                  "ORDER BY seq LIMIT 1")
        have = 1
    finished = status == "succeeded"
    while have < rows:
        n = min(have, rows - have)
        stack.sql(
            f"INSERT INTO genq.jobs (id, status, input, attempts, started_at, finished_at, "
            f"progress, {FILL_COLUMNS}) SELECT UUID(), status, "
            f"{repr('{}') if tiny_input else 'input'}, {1 if finished else 0}, "
            f"{'started_at, finished_at, 1' if finished else 'NULL, NULL, NULL'}, "
            f"{FILL_COLUMNS} FROM genq.jobs WHERE status = '{status}' LIMIT {n}")
        have += n


def scale_drain(stack, args, label):
    """Start genqd on the queued jobs, time the next args.jobs completions,
    stop it. (jobs/s, rows read per job, genqd peak KiB). Rows read are
    MariaDB's Handler_read_* counters: every row or index entry any
    statement read, the bench's own counting included."""
    rows_read = lambda: sum(int(v) for _, v in stack.query(  # noqa: E731
        "SHOW GLOBAL STATUS LIKE 'Handler_read%'"))
    t0 = stack.scalar("SELECT UTC_TIMESTAMP(6)")
    r0 = rows_read()
    stack.start_genqd()
    pid = stack._read_pids("genqd")[0]
    deadline = time.monotonic() + 600
    done_sql = f"SELECT COUNT(*) FROM jobs WHERE status = 'succeeded' AND finished_at > '{t0}'"
    db = Session(stack)
    try:
        while int(db.scalar(done_sql)) < args.jobs:
            assert time.monotonic() < deadline, "jobs unfinished"
            time.sleep(0.2)
    finally:
        db.close()
    hwm = vm_hwm_kb(pid)
    r1 = rows_read()
    stack.stop("genqd")
    first, last = stack.query(
        f"SELECT MIN(started_at), MAX(finished_at) FROM jobs WHERE finished_at > '{t0}'")[0]
    done = int(stack.scalar(done_sql))
    span = float(stack.scalar(
        f"SELECT TIMESTAMPDIFF(MICROSECOND, '{first}', '{last}')")) / 1e6
    total = int(stack.scalar("SELECT COUNT(*) FROM jobs"))
    queued = int(stack.scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'"))
    print(f"  {label}: {total} rows in jobs, {queued} still queued: {done / span:.0f} jobs/s over "
          f"{done} jobs, {(r1 - r0) / done:.1f} rows read per job, genqd peak RSS {hwm / 1024:.1f} MiB")
    return done / span, (r1 - r0) / done, hwm


def scale(args):
    """SPEC §8 "Scale": the claim's cost against the size of the jobs table
    and genqd's memory against the depth of the queue. Drains args.jobs
    jobs with a small table and a short queue, then again with args.rows
    finished rows and args.depth queued ones."""
    stack, key, root = start(args, 0, args.backends)
    try:
        stack.stop("genqd")
        for n in range(args.jobs):
            submit(stack, key, f"scale {n}")
        small = scale_drain(stack, args, "small")
        t0 = time.monotonic()
        fill(stack, "succeeded", args.rows, tiny_input=True)
        fill(stack, "queued", args.depth, tiny_input=False)
        print(f"  (filled to {args.rows} finished and {args.depth} queued rows in "
              f"{time.monotonic() - t0:.0f} s)")
        large = scale_drain(stack, args, "large")
        print(f"scale: rate x{large[0] / small[0]:.2f}, rows read per job x{large[1] / small[1]:.2f}, "
              f"genqd peak memory x{large[2] / small[2]:.2f} from the small to the large table")
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


def sim_alone(args):
    """One simulator, `clients` threads each: POST /prompt, poll /history
    until done, GET /view of its output."""
    import http.client
    import json
    import subprocess
    import threading
    import uuid
    if args.sim == "c":
        builddir = os.environ.get("GENQ_BUILDDIR",
                                  os.path.join(os.path.dirname(__file__), "..", "build"))
        argv = [os.path.join(builddir, "tests", "sim", "comfysim")]
    else:
        argv = [sys.executable, os.path.join(os.path.dirname(__file__), "..", "tests", "sim",
                                             "comfyui_sim.py")]
    print(f"(simulated ComfyUI: {SIM_NAMES[args.sim]})", flush=True)
    out = tempfile.mkdtemp(prefix="genq-bench-sim-")
    proc = subprocess.Popen(argv + ["--port", "0", "--run-ms", "0", "--log", os.devnull,
                                    "--output-dir", os.path.join(out, "output")],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline().strip().split("=")[1])
        workflow = load_workflow(text="x")["input"]

        def client(n):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for _ in range(n):
                w = json.loads(json.dumps(workflow))
                w["6"]["inputs"]["text"] = f"sim bench {uuid.uuid4()}"
                pid = str(uuid.uuid4())
                c.request("POST", "/prompt", json.dumps({"prompt": w, "prompt_id": pid}),
                          {"Content-Type": "application/json"})
                assert c.getresponse().read()
                while True:
                    c.request("GET", f"/history/{pid}")
                    h = json.loads(c.getresponse().read())
                    if h:
                        break
                    time.sleep(0.002)
                for node in h[pid]["outputs"].values():
                    for img in node.get("images", []):
                        c.request("GET", f"/view?filename={img['filename']}&type=output")
                        c.getresponse().read()

        per = max(1, args.jobs // args.clients)
        t0 = time.monotonic()
        cpu0 = cpu_ticks([proc.pid])
        threads = [threading.Thread(target=client, args=(per,)) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        span = time.monotonic() - t0
        cpu = (cpu_ticks([proc.pid]) - cpu0) / os.sysconf("SC_CLK_TCK")
        n = per * args.clients
        print(f"sim: {n} instant prompts, {args.clients} clients, one simulator: "
              f"{n / span:.0f} prompts/s; simulator CPU {cpu * 1000 / n:.3f} ms per prompt "
              "(submit, /history polls, /view)")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(out, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["idle-gap", "latency", "drain", "scale", "sim"])
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--run-ms", type=int, default=1000)
    ap.add_argument("--backends", type=int)
    ap.add_argument("--prefetch", type=int, default=1)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--sim", choices=["c", "python"], default="c",
                    help="simulated ComfyUI: c (tests/sim/comfysim) or python (comfyui_sim.py)")
    ap.add_argument("--openai", action="store_true",
                    help="drain: OpenAI-compatible backends and chat completions")
    ap.add_argument("--sim-workers", type=int, default=0, metavar="N",
                    help="drain --openai with oaisim: N epoll threads per simulator "
                         "instead of a thread per connection (instant replies only)")
    ap.add_argument("--keep", action="store_true",
                    help="drain: keep the stack's directory (logs) afterwards")
    ap.add_argument("--profile", metavar="PATH",
                    help="drain: perf record the machine while it drains, into PATH")
    ap.add_argument("--rows", type=int, default=1 << 20, help="scale: finished rows")
    ap.add_argument("--depth", type=int, default=100000, help="scale: queued rows")
    args = ap.parse_args()
    defaults = {"idle-gap": (20, 2), "latency": (50, 1), "drain": (2000, 4), "scale": (600, 4),
                "sim": (400, 1)}[args.mode]
    args.jobs = args.jobs or defaults[0]
    args.backends = args.backends or defaults[1]
    {"idle-gap": idle_gap, "latency": latency, "drain": drain, "scale": scale,
     "sim": sim_alone}[args.mode](args)


if __name__ == "__main__":
    main()
