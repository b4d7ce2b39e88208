"""Two genqd (ids genqd-1 and genqd-2) against one database and the same two
backends (SPEC §4): each backend is driven by one genqd at a time and never
holds more than max_running + prefetch of genq's prompts; when one genqd is
killed with kill -9 the other takes over its backend and its running jobs
within the lease time, re-attaching to prompts already on the backend; a
stalled genqd gives its backends up; random kills of either one move the
backends back and forth; and every job ends exactly once."""

import os
import random
import signal
import sys
import threading
import time

import crashcheck
import harness
from harness import StackTestCase, load_workflow, request
from stack import wait_for

LEASE_S = 3
JOBS = 30


class TwoGenqdTest(StackTestCase):
    backends = 2
    daemon_settings = {"lease_s": LEASE_S}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack.genqctl("tier", "set", "twotest", "--priority", "1", "--max-active", "1000",
                          "--rate", "100000", "--burst", "100000")
        cls.key = cls.stack.add_user("twin", tier="twotest", credits="10000")

    def owners(self):
        return dict(self.stack.query(
            "SELECT name, COALESCE(lease_owner, '-') FROM backends "
            "WHERE lease_until > UTC_TIMESTAMP(6) ORDER BY name"))

    def sim_stats(self, i):
        r = request(self.stack.sim_url(i) + "/sim/stats")
        self.assertEqual(r.status, 200, r.body)
        return r.json

    def started_by(self):
        """(backend, actor) of every start of an attempt, in order."""
        return self.stack.query(
            "SELECT b.name, e.actor, e.job_seq FROM job_events e JOIN backends b "
            "ON b.id = e.backend_id WHERE e.to_status = 'running' ORDER BY e.id")

    def test_backends_are_shared_and_taken_over_after_kill_9(self):
        st = self.stack
        # A deterministic split: genqd-1 gives its leases back (SIGTERM), sim2's
        # lease is made genqd-2's as if it had held it, and both start.
        st.stop("genqd")
        st.sql("UPDATE genq.backends SET lease_owner = 'genqd-2', "
               f"lease_until = UTC_TIMESTAMP(6) + INTERVAL {LEASE_S} SECOND WHERE name = 'sim2'")
        st.start_genqd()
        wait_for("genqd-1 to lease sim1", lambda: self.owners().get("sim1") == "genqd-1")
        st.start_genqd("genqd2", st.write_genqd_config("genqd2", "genqd-2", lease_s=LEASE_S))
        wait_for("a lease each", lambda: self.owners() == {"sim1": "genqd-1", "sim2": "genqd-2"},
                 timeout=15)

        rng = random.Random(7)
        ids = []
        for i in range(JOBS):
            # The first four outlast the lease: the kill leaves sim1 with a
            # running and a pending prompt when genqd-2 takes it over.
            ms = 5000 if i < 4 else rng.randrange(800, 1500)
            body = load_workflow(text=f"twin job {i} SIM_MS={ms}")
            ids.append(self.submit(self.key, body)["id"])

        # Both genqd work; then genqd-1 dies with prompts on sim1.
        wait_for("both genqds to start jobs",
                 lambda: {a for _, a, _ in self.started_by()} >= {"genqd:genqd-1", "genqd:genqd-2"},
                 timeout=20)
        wait_for("sim1 to hold a running and a prefetched prompt",
                 lambda: self.sim_stats(0)["queue_pending"] >= 1, timeout=20)
        running_on_sim1 = [r[0] for r in st.query(
            "SELECT j.id FROM jobs j JOIN backends b ON b.id = j.backend_id "
            "WHERE j.status = 'running' AND b.name = 'sim1'")]
        self.assertTrue(running_on_sim1)
        st.kill("genqd")
        killed_at = time.monotonic()
        # Its job leases may outlive its backend lease (renewed on another
        # timer, just before the end): make them, so the takeover cannot
        # wait for them to run out while it fills sim1 with new prompts.
        st.sql("UPDATE genq.jobs SET lease_until = UTC_TIMESTAMP(6) + INTERVAL 20 SECOND "
               "WHERE claimed_by = 'genqd-1' AND status = 'running'")
        wait_for("genqd-2 to take sim1 over", lambda: self.owners().get("sim1") == "genqd-2",
                 timeout=4 * LEASE_S + 5)
        takeover_s = time.monotonic() - killed_at

        wait_for("every job to end", lambda: st.scalar(
            "SELECT COUNT(*) FROM jobs WHERE status NOT IN "
            "('succeeded','failed','canceled','expired')") == "0", timeout=60, interval=0.25)
        summary = crashcheck.check_all(self, self.key, ids)
        print(f"\ntest_two_genqd {summary} takeover_s={takeover_s:.1f} lease_s={LEASE_S}",
              file=sys.stderr)

        # Never more than max_running + prefetch (1 + 1) prompts on a backend.
        for i in range(self.backends):
            self.assertLessEqual(self.sim_stats(i)["max_outstanding"], 2, f"sim{i + 1} overloaded")
        # One driver per backend at a time: sim2 only ever genqd-2; sim1
        # genqd-1 until the kill, then genqd-2, never back and forth.
        starts = self.started_by()
        self.assertEqual({a for b, a, _ in starts if b == "sim2"}, {"genqd:genqd-2"})
        sim1 = [a for b, a, _ in starts if b == "sim1"]
        switches = sum(1 for x, y in zip(sim1, sim1[1:]) if x != y)
        self.assertEqual(sim1[0], "genqd:genqd-1")
        self.assertLessEqual(switches, 1, sim1)
        # The running jobs of the dead genqd were finished by the other one,
        # on the attempt genqd-1 started (re-attached, not resubmitted).
        for jid in running_on_sim1:
            last = st.query(
                "SELECT e.actor, e.attempt, e.to_status FROM job_events e JOIN jobs j "
                f"ON j.seq = e.job_seq WHERE j.id = '{jid}' ORDER BY e.id DESC LIMIT 1")[0]
            self.assertEqual(last[0], "genqd:genqd-2", last)
            self.assertEqual(last[2], "succeeded", last)
        reattached = [st.scalar(
            "SELECT COUNT(*) FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq "
            f"WHERE j.id = '{jid}'") for jid in running_on_sim1]
        self.assertIn("1", reattached, "no running job was re-attached on its first attempt")

    def test_stalled_genqd_gives_its_backends_up(self):
        """A genqd that stops (SIGSTOP, like a paused VM) for longer than its
        leases loses its backends to the other one and, when it runs again,
        stops driving them: no new prompts from it, jobs end once."""
        st = self.stack
        if not st.running("genqd2"):
            st.start_genqd("genqd2", st.write_genqd_config("genqd2", "genqd-2", lease_s=LEASE_S))
        wait_for("genqd-2 to hold both backends",
                 lambda: self.owners() == {"sim1": "genqd-2", "sim2": "genqd-2"}, timeout=20)
        if not st.running("genqd"):
            st.start_genqd()
        rng = random.Random(8)
        ids = [self.submit(self.key, load_workflow(
            text=f"stall job {i} SIM_MS={rng.randrange(300, 900)}"))["id"] for i in range(24)]
        wait_for("genqd-2 to run the new jobs", lambda: st.scalar(
            "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND claimed_by = 'genqd-2'") != "0")
        pid = st._read_pids("genqd2")[0]
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_for("genqd-1 to take both backends",
                     lambda: self.owners() == {"sim1": "genqd-1", "sim2": "genqd-1"},
                     timeout=4 * LEASE_S + 5)
            time.sleep(1.0)
            resumed_at = st.scalar("SELECT UTC_TIMESTAMP(6)")
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for("every job to end", lambda: st.scalar(
            "SELECT COUNT(*) FROM jobs WHERE status NOT IN "
            "('succeeded','failed','canceled','expired')") == "0", timeout=60, interval=0.25)
        summary = crashcheck.check_all(self, self.key, ids)
        late = st.query("SELECT job_seq, at FROM job_events WHERE to_status = 'running' "
                        f"AND actor = 'genqd:genqd-2' AND at > '{resumed_at}'")
        self.assertEqual(late, [], "the stalled genqd started jobs after it lost its leases")
        with open(os.path.join(st.logdir, "genqd2.log")) as f:
            self.assertIn("backend_lease_lost", f.read())
        print(f"\ntest_two_genqd stalled: {summary}", file=sys.stderr)
        for i in range(self.backends):
            self.assertLessEqual(self.sim_stats(i)["max_outstanding"], 2, f"sim{i + 1} overloaded")

    def test_takeovers_back_and_forth_under_random_kill_9(self):
        """Either genqd killed at random instants and restarted, ten times,
        while jobs flow: backends change hands both ways, and still no
        backend is overloaded and every job ends exactly once."""
        st = self.stack
        cfg2 = st.write_genqd_config("genqd2", "genqd-2", lease_s=LEASE_S)
        for name, cfg in (("genqd", None), ("genqd2", cfg2)):
            if not st.running(name):
                st.start_genqd(name, cfg)
        seed = int(os.environ.get("GENQ_CRASH_SEED") or random.SystemRandom().randrange(1 << 30))
        print(f"\ntest_two_genqd seed={seed} (GENQ_CRASH_SEED={seed} reruns it)", file=sys.stderr)
        rng = random.Random(seed)
        texts = [f"chaos job {i} seed {seed} SIM_MS={rng.randrange(100, 600)}" for i in range(100)]
        schedule = [(rng.uniform(0.5, 2.5), rng.choice(["genqd", "genqd2"]), rng.uniform(0, 1.0))
                    for _ in range(10)]
        ids = []

        def submitter():
            for text in texts:
                ids.append(self.submit(self.key, load_workflow(text=text))["id"])
                time.sleep(0.12)

        t = threading.Thread(target=submitter)
        t.start()
        for up_s, name, down_s in schedule:
            time.sleep(up_s)
            st.kill(name)
            time.sleep(down_s)
            st.start_genqd(name, cfg2 if name == "genqd2" else None)
        t.join()
        self.assertEqual(len(ids), len(texts))
        wait_for("every job to end", lambda: st.scalar(
            "SELECT COUNT(*) FROM jobs WHERE status NOT IN "
            "('succeeded','failed','canceled','expired')") == "0", timeout=60, interval=0.25)
        summary = crashcheck.check_all(self, self.key, ids)
        print(f"test_two_genqd seed={seed} {summary}", file=sys.stderr)
        for i in range(self.backends):
            self.assertLessEqual(self.sim_stats(i)["max_outstanding"], 2, f"sim{i + 1} overloaded")


if __name__ == "__main__":
    harness.main()
