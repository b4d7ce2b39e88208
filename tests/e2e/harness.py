"""Shared pieces of the end-to-end tests: a real stack per test module, an
HTTP client for the API, and the invariants every test module checks."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from stack import Stack, SRCDIR, wait_for  # noqa: E402

TERMINAL = {"succeeded", "failed", "canceled", "expired"}


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def content_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip()


def request(url, method="GET", body=None, key=None, headers=None, timeout=10):
    """One HTTP request; never raises for HTTP error statuses."""
    hdrs = dict(headers or {})
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        data = body.encode()
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


class LockHolder:
    """A mariadb client session that holds a row lock, sleeping inside its
    transaction, until the test ends it (KILL: rolled back, lock gone)."""

    MARK = "genq-test-lock-holder"

    def __init__(self, stack, statement):
        self.stack = stack
        self.proc = subprocess.Popen(
            ["mariadb", "--no-defaults", "-uroot", f"--socket={stack.db_socket}", "genq",
             "-e", f"START TRANSACTION; {statement}; SELECT SLEEP(120) AS `{self.MARK}`"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("the test's lock", lambda: self.session() is not None, timeout=15)

    def session(self):
        rows = self.stack.query("SELECT id FROM information_schema.PROCESSLIST "
                                f"WHERE info LIKE '%{self.MARK}%' AND info NOT LIKE '%PROCESSLIST%'")
        return rows[0][0] if rows else None

    def release(self):
        sid = self.session()
        if sid is not None:
            self.stack.sql(f"KILL {sid}", check=False)
        self.proc.wait(timeout=10)


def load_workflow(**changes):
    """The example txt2img submit body, with input tweaks for the simulator."""
    with open(os.path.join(SRCDIR, "examples", "txt2img.json")) as f:
        body = json.load(f)
    if "text" in changes:
        body["input"]["6"]["inputs"]["text"] = changes.pop("text")
    if "ckpt" in changes:
        body["input"]["4"]["inputs"]["ckpt_name"] = changes.pop("ckpt")
    body.update(changes)
    return body


class StackTestCase(unittest.TestCase):
    """Starts one real stack for the test class; checks invariants at the end."""

    backends = 2
    sim_run_ms = 200
    daemon_settings = None
    sim_impl = "python"   # "c": the benchmark's simulators (tests/sim/comfysim, oaisim)
    stack = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="genq-e2e-")
        cls.stack = Stack(cls.tmp, backends=cls.backends, sim_run_ms=cls.sim_run_ms,
                          daemon_settings=cls.daemon_settings, sim_impl=cls.sim_impl)
        try:
            cls.stack.up()
        except BaseException:
            cls._dump_logs()
            cls.stack.down()
            raise
        cls.url = cls.stack.url

    @classmethod
    def tearDownClass(cls):
        try:
            cls.check_ledger_invariant()
        finally:
            cls.stack.down()
            reports = cls.stack.sanitizer_reports()
            if reports or os.environ.get("GENQ_KEEP"):
                cls._dump_logs()
            if not os.environ.get("GENQ_KEEP"):
                shutil.rmtree(cls.tmp, ignore_errors=True)
            if reports:
                raise AssertionError("sanitizer reports:\n" + "\n".join(reports[:20]))

    @classmethod
    def _dump_logs(cls):
        logdir = os.path.join(cls.tmp, "log")
        if not os.path.isdir(logdir):
            return
        for name in sorted(os.listdir(logdir)):
            with open(os.path.join(logdir, name), errors="replace") as f:
                tail = f.readlines()[-40:]
            sys.stderr.write(f"----- {name} (last {len(tail)} lines)\n{''.join(tail)}")

    @classmethod
    def check_ledger_invariant(cls):
        """SPEC §5: for every user, balance = SUM(ledger) and never negative;
        every open hold belongs to an active job."""
        rows = cls.stack.query(
            "SELECT u.name, u.balance, COALESCE(SUM(l.amount), 0) FROM users u "
            "LEFT JOIN ledger l ON l.user_id = u.id GROUP BY u.id")
        for name, balance, total in rows:
            assert int(balance) == int(total), f"user {name}: balance {balance} != ledger {total}"
            assert int(balance) >= 0, f"user {name}: negative balance {balance}"
        # Each row's balance_after is the running sum of that user's rows,
        # in the order they were written (the user row's lock orders them).
        running = {}
        for user, row_id, amount, after in cls.stack.query(
                "SELECT user_id, id, amount, balance_after FROM ledger ORDER BY user_id, id"):
            running[user] = running.get(user, 0) + int(amount)
            assert running[user] == int(after), \
                f"ledger row {row_id}: balance_after {after}, running sum {running[user]}"
            assert running[user] >= 0, f"ledger row {row_id}: balance below zero"
        bad = cls.stack.query(
            "SELECT id, status, cost_held, cost_charged, cost_refunded FROM jobs "
            "WHERE status IN ('succeeded','failed','canceled','expired') "
            "AND cost_held <> cost_charged + cost_refunded")
        assert not bad, f"terminal jobs with unsettled holds: {bad}"

    # ---- helpers for tests ---------------------------------------------
    def api(self, method, path, body=None, key=None, headers=None):
        return request(self.url + path, method=method, body=body, key=key, headers=headers)

    def submit(self, key, body):
        r = self.api("POST", "/v1/jobs", body=body, key=key)
        self.assertEqual(r.status, 201, r.body)
        return r.json

    def wait_terminal(self, key, job_id, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.api("GET", f"/v1/jobs/{job_id}", key=key)
            self.assertEqual(r.status, 200, r.body)
            job = r.json
            if job["status"] in TERMINAL:
                return job
            time.sleep(0.05)
        self.fail(f"job {job_id} not terminal after {timeout}s: {job}")

    def wait_backends_driven(self, count, timeout=20.0):
        """Until `count` backends are up and leased (live) by a genqd."""
        deadline = time.monotonic() + timeout
        while self.stack.scalar("SELECT COUNT(*) FROM backends WHERE healthy = 1 AND "
                                "lease_owner IS NOT NULL AND lease_until > UTC_TIMESTAMP(6)") \
                != str(count):
            self.assertLess(time.monotonic(), deadline, f"{count} backends not up and leased")
            time.sleep(0.1)

    def run_job(self, ms, text="a lighthouse"):
        """Submit a job running SIM_MS=ms on the simulator and poll it to its
        end: (the job, the progress values seen while it ran)."""
        job = self.submit(self.key, load_workflow(text=f"{text} SIM_MS={ms}"))
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cur = self.api("GET", f"/v1/jobs/{job['id']}", key=self.key).json
            if cur["status"] == "running":
                seen.append(cur["progress"])
            if cur["status"] in TERMINAL:
                return cur, seen
            time.sleep(0.05)
        self.fail(f"job {job['id']} did not end")

    def assertProblem(self, r, status, code):
        """The documented error shape: application/problem+json (RFC 9457)."""
        self.assertEqual(r.status, status, r.body)
        self.assertEqual(r.content_type, "application/problem+json", r.headers)
        p = r.json
        self.assertEqual(p["status"], status)
        self.assertEqual(p["code"], code)
        for field in ("type", "title", "detail"):
            self.assertIsInstance(p[field], str, p)
        return p


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    unittest.main(verbosity=2)
