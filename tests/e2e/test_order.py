"""Dispatch order (SPEC §4): strict priority, then users of one priority
taking turns (fair share), then age; priority aging lifts old jobs.

One simulated backend (max_running 1, prefetch 1: two jobs in its hands at
a time). The order is read from the audit trail: the id order of the
`queued -> running` events is the order genqd claimed the jobs in. A
drained backend holds the queue still while a scenario is set up; the
simulator's run time (SIM_MS in the prompt) paces a live queue."""

import time

import harness
from harness import StackTestCase, load_workflow
from stack import wait_for

SLOTS = 2          # backends x (max_running + prefetch)
RELOAD_S = 2.5     # genqd re-reads the backends table every 2 s


class OrderTest(StackTestCase):
    backends = 1
    sim_run_ms = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        g = cls.stack.genqctl
        for name, prio in (("fair", 2), ("vip", 0), ("low", 3)):
            g("tier", "set", name, "--priority", str(prio), "--max-active", "200",
              "--rate", "100000", "--burst", "100000")
        cls.n = 0

    # ---- helpers -----------------------------------------------------
    def user(self, name, tier="fair"):
        return self.stack.add_user(name, tier=tier, credits="1000")

    def job(self, key, ms=0, queue="image"):
        type(self).n += 1
        text = f"order {self.n}" + (f" SIM_MS={ms}" if ms else "")
        return self.submit(key, load_workflow(text=text, queue=queue))["id"]

    def drain(self, backend="sim1"):
        self.stack.genqctl("backend", "drain", backend)
        time.sleep(RELOAD_S)      # genqd has seen it: nothing more is claimed

    def resume(self, backend="sim1"):
        self.stack.genqctl("backend", "resume", backend)

    def wait_all(self, keys_ids, timeout=60):
        for key, job_id in keys_ids:
            done = self.wait_terminal(key, job_id, timeout=timeout)
            self.assertEqual(done["status"], "succeeded", done)

    def start_order(self, ids):
        """Job ids in the order genqd started them (first attempts)."""
        quoted = ",".join(f"'{i}'" for i in ids)
        rows = self.stack.query(
            "SELECT j.id FROM job_events e JOIN jobs j ON j.seq = e.job_seq "
            f"WHERE e.to_status = 'running' AND e.attempt = 1 AND j.id IN ({quoted}) "
            "ORDER BY e.id")
        return [r[0] for r in rows]

    def running_backlog(self, key, jobs, started):
        """jobs 250 ms jobs of key's user, once `started` of them have
        started. Long enough that a few submits land between two claims."""
        ids = [self.job(key, ms=250) for _ in range(jobs)]
        wait_for("the backlog to start", lambda: len(self.start_order(ids)) >= started,
                         timeout=30)
        return ids

    def interleaving(self, a, a_ids, b, b_ids):
        """Once all of users a's and b's jobs have run: the start order as
        a string of 'a' and 'b', and how many of A's jobs started between
        B's first and last."""
        self.wait_all([(a, i) for i in a_ids] + [(b, i) for i in b_ids])
        order = self.start_order(a_ids + b_ids)
        owner = {i: "a" for i in a_ids} | {i: "b" for i in b_ids}
        seq = "".join(owner[i] for i in order)
        self.assertEqual([i for i in order if owner[i] == "b"], b_ids)   # B's own, in order
        return seq, seq[seq.index("b"):seq.rindex("b") + 1].count("a")

    # ---- tests -------------------------------------------------------
    def test_single_job_is_not_stuck_behind_a_deep_queue(self):
        """A enqueues 30 jobs, then B one: B starts within the next SLOTS
        starts, not after A's backlog."""
        a, b = self.user("deep_a"), self.user("deep_b")
        a_ids = [self.job(a, ms=60) for _ in range(30)]
        b_id = self.job(b, ms=60)
        b_created = self.stack.scalar(f"SELECT created_at FROM jobs WHERE id = '{b_id}'")
        self.wait_all([(b, b_id)])
        started_between = int(self.stack.scalar(
            "SELECT COUNT(*) FROM job_attempts t JOIN jobs j ON j.seq = t.job_seq "
            f"WHERE j.id IN ({','.join(repr(i) for i in a_ids)}) "
            f"AND t.started_at > '{b_created}' AND t.started_at < "
            f"(SELECT t2.started_at FROM job_attempts t2 JOIN jobs j2 ON j2.seq = t2.job_seq "
            f" WHERE j2.id = '{b_id}' AND t2.attempt = 1)"))
        self.assertLessEqual(started_between, SLOTS)
        self.wait_all([(a, i) for i in a_ids])
        # The scenario was a real one: A still had a backlog when B's job
        # started (without fair share B would have started last).
        order = self.start_order(a_ids + [b_id])
        self.assertGreater(len(order) - 1 - order.index(b_id), SLOTS, order)

    def test_three_users_take_turns(self):
        keys = {n: self.user(f"rr_{n}") for n in "abc"}
        self.drain()
        try:
            ids = {n: [self.job(keys[n]) for _ in range(4)] for n in "abc"}
        finally:
            self.resume()
        self.wait_all([(keys[n], i) for n in "abc" for i in ids[n]])
        order = self.start_order([i for n in "abc" for i in ids[n]])
        owner = {i: n for n in "abc" for i in ids[n]}
        self.assertEqual("".join(owner[i] for i in order), "abc" * 4)
        # Each user's own jobs still run oldest first.
        for n in "abc":
            self.assertEqual([i for i in order if owner[i] == n], ids[n])

    def test_canceled_backlog_does_not_push_later_jobs_back(self):
        """A user who canceled their queued jobs starts again from the
        current turn, not behind the turns those jobs had taken."""
        c, d = self.user("cancel_c"), self.user("cancel_d")
        self.drain()
        try:
            for job_id in [self.job(c) for _ in range(5)]:
                r = self.api("POST", f"/v1/jobs/{job_id}/cancel", key=c)
                self.assertEqual(r.status, 200, r.body)
            d_ids = [self.job(d) for _ in range(3)]
            c_id = self.job(c)
        finally:
            self.resume()
        self.wait_all([(d, i) for i in d_ids] + [(c, c_id)])
        order = self.start_order(d_ids + [c_id])
        # c's job shares d's first turn (d came first), then d's others.
        self.assertEqual(order, [d_ids[0], c_id] + d_ids[1:])

    def test_late_user_takes_turns_with_a_running_backlog(self):
        """B joins while A's backlog runs: B's jobs start at the queue's
        current turn and alternate with A's, not all ahead of them (each
        claim raises the queue's turn to the last one it served)."""
        a, b = self.user("late_a"), self.user("late_b")
        a_ids = self.running_backlog(a, 14, started=6)
        b_ids = [self.job(b, ms=250) for _ in range(4)]
        seq, between = self.interleaving(a, a_ids, b, b_ids)
        # Strictly "bababab"; a claim committing while B's first submit
        # reads the turn can start B one turn behind ("bbabab"). Ahead of
        # the whole backlog would be "bbbb".
        self.assertGreaterEqual(between, 2, seq)

    def test_a_user_who_submits_as_each_job_starts_still_takes_turns(self):
        """B keeps exactly one job queued, submitting the next as soon as
        the last one starts, while A has a backlog: B's jobs alternate with
        A's. A job B already has running counts as B's turn taken, so B
        cannot take every turn by never having two queued."""
        a, b = self.user("pipe_a"), self.user("pipe_b")
        a_ids = self.running_backlog(a, 12, started=3)
        b_ids = []
        for _ in range(4):
            b_ids.append(self.job(b, ms=250))
            wait_for("B's job to start", lambda: self.start_order(b_ids[-1:]),
                             timeout=30, interval=0.01)
        seq, between = self.interleaving(a, a_ids, b, b_ids)
        self.assertGreaterEqual(between, 3, seq)        # "bababab"

    def test_higher_tier_overtakes_earlier_lower_tier_jobs(self):
        low, vip = self.user("tier_low"), self.user("tier_vip", tier="vip")
        self.drain()
        try:
            low_ids = [self.job(low) for _ in range(3)]
            vip_id = self.job(vip)
        finally:
            self.resume()
        self.wait_all([(low, i) for i in low_ids] + [(vip, vip_id)])
        order = self.start_order(low_ids + [vip_id])
        self.assertEqual(order, [vip_id] + low_ids)

    def test_aging_lifts_an_old_low_priority_job(self):
        g = self.stack.genqctl
        g("queue", "add", "aging", "--priority-aging", "1", "--price-per-job", "1")
        g("backend", "add", "agesim", "--type", "comfyui", "--url", self.stack.sim_url(0),
          "--queues", "aging")
        self.drain("agesim")
        old, fresh = self.user("age_old", tier="low"), self.user("age_fresh")
        try:
            old_id = self.job(old, queue="aging")
            # Three intervals: priority 3 -> 0 one level at a time.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                job = self.api("GET", f"/v1/jobs/{old_id}", key=old).json
                if job["priority"] == 0:
                    break
                time.sleep(0.2)
            self.assertEqual(job["priority"], 0, job)
            self.assertEqual(job["status"], "queued")
            fresh_ids = [self.job(fresh, queue="aging") for _ in range(3)]
        finally:
            self.resume("agesim")
        self.wait_all([(old, old_id)] + [(fresh, i) for i in fresh_ids])
        order = self.start_order([old_id] + fresh_ids)
        self.assertEqual(order[0], old_id, order)
        events = self.api("GET", f"/v1/jobs/{old_id}/events", key=old).json["events"]
        aged = [e for e in events if e["from"] == "queued" and e["to"] == "queued"]
        self.assertEqual(len(aged), 3, events)
        self.assertIn("priority aged from 3 to 2", aged[0]["reason"])
        # The fresh jobs, aged or not, keep their own order behind it.
        self.assertEqual(order[1:], fresh_ids)


if __name__ == "__main__":
    harness.main()
