"""genqd under systemd's notify protocol (sd_notify(3)), as genqd.service
runs it (Type=notify, WatchdogSec): READY=1 once it is up, WATCHDOG=1 at
half the watchdog interval while it is healthy, none while a database
thread is stuck on one job past [daemon] stall_s (so that systemd restarts
it), and STOPPING=1 at SIGTERM. The test plays the service manager: it
binds the NOTIFY_SOCKET datagram socket and sets WATCHDOG_USEC, as systemd
does, and records what arrives and when.

The stuck thread is the committer (progress and completion batches): the
test holds the lock on a running job's row, so the committer's next write
of that job waits, holding nothing the loop needs, while the loop runs
on."""

import os
import re
import signal
import socket
import threading
import time

import harness
from harness import LockHolder, StackTestCase, load_workflow
from stack import pid_alive, wait_for

WATCHDOG_S = 1.0          # WATCHDOG_USEC: genqd pings every 0.5 s
STALL_S = 2               # [daemon] stall_s; checked every stall_s / 2
RUN_MS = 1000             # the job that finishes while its row is locked
# genqd pings at half the interval, and systemd needs one within each
# whole interval: the gap a ping may take (a busy machine delays the loop).
PING_GAP_MAX_S = WATCHDOG_S


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: every datagram, with the
    monotonic time it arrived."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []          # [(time, "KEY=VALUE")]
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            now = time.monotonic()
            with self.lock:
                self.messages += [(now, line) for line in data.decode().split("\n") if line]

    def times(self, message):
        with self.lock:
            return [t for t, m in self.messages if m == message]

    def close(self):
        self.done = True
        self.thread.join(timeout=5)
        self.sock.close()
        os.unlink(self.path)


def built_with_systemd(builddir):
    with open(os.path.join(builddir, "autoconf.h")) as f:
        return re.search(r"^#define HAVE_SYSTEMD 1$", f.read(), re.M) is not None


class SystemdNotifyTest(StackTestCase):
    backends = 1
    sim_run_ms = 0
    # Long leases: the loop renews its running jobs' leases every
    # lease_s / 3, and that UPDATE would wait for the test's lock on the
    # job's row, stopping the loop itself, not just the pings; with 60 s no
    # renewal falls inside a test.
    daemon_settings = {"stall_s": STALL_S, "lease_s": 60}

    def setUp(self):
        # ./dev installs libsystemd-dev: without it genqd cannot notify, and
        # that is a failure here, not a skip.
        self.assertTrue(built_with_systemd(self.stack.builddir),
                        "genqd was built without libsystemd (configure found no libsystemd)")
        self.stack.stop("genqd")
        self.listener = NotifyListener(self.stack.path("run", "notify.sock"))
        self.stack.start_genqd(env={"NOTIFY_SOCKET": self.listener.path,
                                    "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))})
        wait_for("READY=1", lambda: self.listener.times("READY=1"), timeout=30)

    def tearDown(self):
        self.stack.stop("genqd")
        self.listener.close()
        self.stack.start_genqd()      # as the class's other tests and checks expect

    def pings_between(self, start, end):
        return [t for t in self.listener.times("WATCHDOG=1") if start <= t <= end]

    def test_ready_then_pings_at_half_the_interval_then_stopping_at_sigterm(self):
        ready = self.listener.times("READY=1")
        self.assertEqual(len(ready), 1)
        t0 = time.monotonic()
        time.sleep(3)
        pings = self.pings_between(t0, time.monotonic())
        self.assertGreaterEqual(len(pings), 4, pings)
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertLessEqual(max(gaps), PING_GAP_MAX_S, gaps)
        self.assertGreater(min(self.listener.times("WATCHDOG=1")), ready[0])

        pid = self.stack._read_pids("genqd")[0]
        os.kill(pid, signal.SIGTERM)
        wait_for("STOPPING=1", lambda: self.listener.times("STOPPING=1"), timeout=10)
        wait_for("genqd to exit", lambda: not pid_alive(pid), timeout=15)

    def test_a_database_thread_stuck_past_stall_s_stops_the_pings_until_it_moves(self):
        st = self.stack
        key = st.add_user("notify", credits="100")
        job_id = self.submit(key, load_workflow(text=f"stuck batch SIM_MS={RUN_MS}"))["id"]
        wait_for("the job to run", lambda: self.status(key, job_id) == "running", timeout=15)
        seq = st.scalar(f"SELECT seq FROM jobs WHERE id = '{job_id}'")
        # The job's row locked by the test: genqd's committer thread, which
        # writes the job's progress and then its end, waits on it.
        holder = LockHolder(st, f"SELECT * FROM jobs WHERE seq = {seq} FOR UPDATE")
        try:
            wait_for("genqd's completion batch to wait on the job's row", self.batch_waiting,
                     timeout=15)
            waiting_since = time.monotonic()
            # Pinging while the wait is young: a lock wait is not a stall.
            time.sleep(1.2)
            self.assertTrue(self.pings_between(waiting_since, time.monotonic()))
            # Past stall_s (and the next check, stall_s / 2 later): silence,
            # longer than systemd's WatchdogSec.
            time.sleep(STALL_S + STALL_S / 2 + PING_GAP_MAX_S - 1.2)
            silent_from = time.monotonic()
            time.sleep(2 * WATCHDOG_S)
            self.assertEqual(self.pings_between(silent_from, time.monotonic()), [])
            self.assertTrue(self.batch_waiting(), "the batch should still be waiting")
        finally:
            holder.release()
        released = time.monotonic()
        # The batch goes on; at the next check the pings come back.
        wait_for("the pings to come back",
                 lambda: self.pings_between(released, time.monotonic()),
                 timeout=STALL_S / 2 + PING_GAP_MAX_S + 2)
        with open(os.path.join(st.logdir, "genqd.log")) as f:
            self.assertIn("event=db_thread_stalled thread=committer", f.read())
        done = self.wait_terminal(key, job_id, timeout=30)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(st.scalar(f"SELECT attempts FROM jobs WHERE seq = {seq}"), "1")

    def status(self, key, job_id):
        return self.api("GET", f"/v1/jobs/{job_id}", key=key).json["status"]

    def batch_waiting(self):
        """Is one of genqd's sessions waiting on the job's row (the
        committer's progress write or its batch's locking read)?"""
        return bool(self.stack.query(
            "SELECT id FROM information_schema.PROCESSLIST WHERE user = 'genq' "
            "AND (info LIKE 'SELECT%FROM jobs WHERE seq IN%FOR UPDATE' OR info LIKE 'UPDATE jobs %') "
            "AND TIME_MS > 300"))


if __name__ == "__main__":
    harness.main()
