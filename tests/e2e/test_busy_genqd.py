#!/usr/bin/env python3
"""End to end: one genqd kept busy on four OpenAI-compatible backends
(tests/sim/oaisim, prefetch 16) while jobs keep arriving. genqd claims in a
thread of its own and commits the ends of attempts in another (daemon/
claim.c, finish.c, committer.c), while its loop drives the backends and
recovers orphans every two seconds: these tests hold that to the rules of
SPEC §4. Nothing is lost or done twice: every job runs exactly one attempt,
each prompt reaches a backend once, each job's events are created, started,
succeeded in that order. A SIGTERM in the middle of it all stops genqd
cleanly, and a new genqd finishes what was left, no prompt sent twice.
Bounded: 1,200 jobs answered after 200 ms, then 600 after 1 s."""

import collections
import concurrent.futures
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import StackTestCase, request  # noqa: E402
from stack import wait_for  # noqa: E402

BACKENDS = 4
PREFETCH = 16
DELAY_MS = 200
# Lines genqd writes only when an attempt's end or claim went wrong.
TROUBLE = ("event=job_lost", "event=job_finish_stale", "event=job_finish_deferred",
           "event=db_error", "event=claim_mismatch", "event=run_abandoned")


class BusyGenqdTest(StackTestCase):
    backends = 0
    sim_impl = "c"
    daemon_settings = {"poll_interval_ms": 200}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            st = cls.stack
            st.nopenai = BACKENDS
            for i in range(BACKENDS):
                st.start_openai_sim(i, ["--delay-ms", str(DELAY_MS)])
            st.seed()
            st.sql(f"UPDATE genq.backends SET prefetch = {PREFETCH}")
            st.stop("genqd")              # read the backends afresh
            st.start_genqd()
            st.genqctl("tier", "set", "busy", "--priority", "1", "--max-active", "100000",
                       "--rate", "100000", "--burst", "100000")
            cls.key = st.add_user("busy", tier="busy", credits="100000")
        except BaseException:
            cls.tearDownClass()
            raise

    # ---- helpers -----------------------------------------------------------
    def submit_many(self, n, tag):
        """n one-token chat jobs, four clients at a time (nginx's edge limit
        answers 429 past 200 requests a second: back off and resend)."""
        def one(k):
            body = {"queue": "llm", "input": {"model": "sim-llm", "max_tokens": 1, "messages": [
                {"role": "user", "content": f"{tag} {k} SIM_TOKEN_MS=0"}]}}
            for _ in range(200):
                r = request(self.url + "/v1/jobs", "POST", body, key=self.key)
                if r.status != 429:
                    break
                time.sleep(0.05)
            self.assertEqual(r.status, 201, r.body)
            return r.json["id"]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, range(n)))

    def statuses(self, ids):
        rows = self.stack.query("SELECT id, status FROM jobs WHERE id IN (%s)"
                                % ",".join(f"'{i}'" for i in ids))
        return collections.Counter(status for _, status in rows)

    def wait_succeeded(self, ids, timeout=120):
        wait_for(f"{len(ids)} jobs to succeed",
                 lambda: self.statuses(ids)["succeeded"] == len(ids), timeout=timeout)

    def prompts_requested(self):
        """X-Request-Id (the attempt's prompt id) -> requests, over all sims."""
        seen = collections.Counter()
        for i in range(BACKENDS):
            stats = request(self.stack.openai_url(i) + "/sim/stats").json
            seen.update(stats["request_ids"])
        return seen

    def attempts_of(self, ids):
        return self.stack.query(
            "SELECT j.id, a.attempt, a.prompt_id FROM job_attempts a JOIN jobs j "
            "ON j.seq = a.job_seq WHERE j.id IN (%s)" % ",".join(f"'{i}'" for i in ids))

    def txn_counters(self):
        """The server's START TRANSACTION and COMMIT statements so far."""
        rows = dict(self.stack.query("SHOW GLOBAL STATUS WHERE Variable_name IN "
                                     "('Com_begin', 'Com_commit')"))
        return int(rows["Com_begin"]), int(rows["Com_commit"])

    def genqd_log(self):
        with open(os.path.join(self.stack.logdir, "genqd.log"), errors="replace") as f:
            return f.read()

    # ---- tests -------------------------------------------------------------
    def test_1_busy_drain_runs_every_job_once(self):
        ids = self.submit_many(1200, "busy")
        self.wait_succeeded(ids)

        attempts = self.attempts_of(ids)
        self.assertEqual(len(attempts), len(ids), "one attempt per job")
        self.assertEqual({a for _, a, _ in attempts}, {"1"})
        requested = self.prompts_requested()
        prompts = {p for _, _, p in attempts}
        self.assertEqual(prompts - set(requested), set(), "every prompt reached a backend")
        self.assertEqual([p for p in prompts if requested[p] != 1], [],
                         "no prompt sent twice")
        backends = self.stack.query(
            "SELECT COUNT(DISTINCT a.backend_id) FROM job_attempts a JOIN jobs j "
            "ON j.seq = a.job_seq WHERE j.id IN (%s)" % ",".join(f"'{i}'" for i in ids))
        self.assertEqual(backends, [[str(BACKENDS)]], "every backend took jobs")

        events = collections.defaultdict(list)
        for job_id, frm, to in self.stack.query(
                "SELECT j.id, e.from_status, e.to_status FROM job_events e JOIN jobs j "
                "ON j.seq = e.job_seq WHERE j.id IN (%s) ORDER BY e.id"
                % ",".join(f"'{i}'" for i in ids)):
            events[job_id].append((frm, to))
        wrong = {j: ev for j, ev in events.items() if ev != [
            ("NULL", "queued"), ("queued", "running"), ("running", "succeeded")]}
        self.assertEqual(len(events), len(ids))
        self.assertEqual(wrong, {}, "events: created, started, succeeded")

        log = self.genqd_log()
        self.assertEqual([t for t in TROUBLE if t in log], [], "genqd logged trouble")
        # The database threads did the work, each on one connection made
        # when genqd started, before its first job (so the first claim and
        # the first batch wait for no login).
        # The genqd that ran them is the one that started the first job.
        pid = re.search(r" pid=(\d+) event=job_started ", log).group(1)
        own = [ln for ln in log.splitlines() if f" pid={pid} " in ln]
        first_job = next(i for i, ln in enumerate(own) if " event=job_started " in ln)
        for thread in ("committer", "claimer0", "claimer1"):
            at = [i for i, ln in enumerate(own)
                  if f" event=committer_db_connected thread={thread} " in ln]
            self.assertEqual(len(at), 1, thread)
            self.assertLess(at[0], first_job, f"{thread} connected before the first job")

    def test_2_sigterm_while_busy_then_a_new_genqd_finishes(self):
        before = self.prompts_requested()
        # Slower answers (about 70 jobs a second on all four), so that
        # the queue is still deep when the signal comes.
        for i in range(BACKENDS):
            r = request(self.stack.openai_url(i) + "/sim/control", "POST", {"delay_ms": 1000})
            self.assertEqual(r.status, 200, r.body)
        ids = self.submit_many(600, "term")
        wait_for("jobs running", lambda: self.statuses(ids)["succeeded"] >= 100, timeout=60)
        pid = self.stack._read_pids("genqd")[0]
        os.kill(pid, signal.SIGTERM)
        wait_for("genqd to exit", lambda: not self.stack.running("genqd"), timeout=30)
        self.assertIn("event=shutdown_done", self.genqd_log())

        # Stopped: every job queued, succeeded, or running and handed back.
        left = self.stack.query(
            "SELECT id, status, claimed_by FROM jobs WHERE status NOT IN ('queued', 'succeeded') "
            "AND id IN (%s)" % ",".join(f"'{i}'" for i in ids))
        self.assertEqual([r for r in left if r[1] != "running" or r[2] != "NULL"], [],
                         "after SIGTERM: only queued, succeeded, or handed back")
        remaining = len(ids) - self.statuses(ids)["succeeded"]
        self.assertGreater(remaining, 0, "stopped mid-way")

        # From here on genqd is the database's only client but for this
        # test's reads (autocommit: neither counter moves for them).
        before_txns = self.txn_counters()
        self.stack.start_genqd()
        self.wait_succeeded(ids)
        begun, committed = (n - b for n, b in zip(self.txn_counters(), before_txns))
        # The claims and batches run on connections with autocommit off:
        # each commits without a START TRANSACTION of its own (only the
        # loop's transactions have one). A batch ends 64 attempts at most.
        self.assertGreaterEqual(committed - begun, -(-remaining // 64),
                                f"{begun} begun, {committed} committed")
        requested = self.prompts_requested() - before
        twice = [p for p, n in requested.items() if n > 1]
        self.assertEqual(twice, [], "no prompt sent twice")
        for job_id, attempt, prompt in self.attempts_of(ids):
            self.assertLessEqual(requested[prompt], 1, (job_id, attempt))


if __name__ == "__main__":
    unittest.main(verbosity=2)
