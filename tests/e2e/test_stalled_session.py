"""A genqd stopped in the middle of a transaction (SIGSTOP, as a paused VM
or a debugger would) does not keep its row locks: every genq session sets
idle_transaction_timeout (lib/db.c), so MariaDB ends the stalled session
and rolls its transaction back, and the job's row is free for any other
genqd. When the stopped one continues it reconnects, and the job runs
exactly once.

The stop is placed deterministically: the test holds the lock on the
queue's turn row, so genqd's claim, which raises that turn last, waits
there with the job's row already locked; genqd is stopped while it waits,
and the test's lock is let go, which leaves genqd's transaction idle."""

import os
import signal
import time

import harness
from harness import LockHolder, StackTestCase, load_workflow
from stack import wait_for

IDLE_TIMEOUT_S = 10       # DB_IDLE_TXN_TIMEOUT_S in lib/db.c
RELOAD_S = 2.5            # genqd re-reads the backends table every 2 s


class StalledSessionTest(StackTestCase):
    backends = 1
    sim_run_ms = 0

    def lock_free(self, job_id):
        """Can another session lock the job's row right now?"""
        r = self.stack.sql(f"SELECT seq FROM genq.jobs WHERE id = '{job_id}' FOR UPDATE NOWAIT",
                           check=False)
        return r.returncode == 0

    def waiting_session(self):
        """The connection id of genqd's claim waiting on the turn row, or None."""
        rows = self.stack.query("SELECT id FROM information_schema.PROCESSLIST "
                                "WHERE user = 'genq' AND info LIKE 'INSERT INTO queue_turns%'")
        return rows[0][0] if rows else None

    def test_a_stopped_genqd_loses_its_locks_and_its_job_runs_once(self):
        st = self.stack
        key = st.add_user("stalled", credits="100")
        st.genqctl("backend", "drain", "sim1")
        time.sleep(RELOAD_S)                 # genqd has seen it: the job stays queued
        job_id = self.submit(key, load_workflow(text="stalled claim"))["id"]
        seq, priority, turn = st.query(
            f"SELECT seq, priority, turn FROM jobs WHERE id = '{job_id}'")[0]
        # The queue's turn behind the job's, so the claim raises it, and
        # that row locked by the test.
        st.sql(f"INSERT INTO genq.queue_turns (queue, priority, turn) VALUES "
               f"('image', {priority}, {int(turn) - 1}) ON DUPLICATE KEY UPDATE turn = {int(turn) - 1}")
        holder = LockHolder(st, f"SELECT * FROM queue_turns WHERE queue = 'image' "
                                f"AND priority = {priority} FOR UPDATE")
        released = False
        pid = st._read_pids("genqd")[0]
        try:
            st.genqctl("backend", "resume", "sim1")
            wait_for("genqd's claim to wait on the turn row",
                     lambda: self.waiting_session() is not None, timeout=15)
            genqd_session = self.waiting_session()
            self.assertFalse(self.lock_free(job_id))     # the claim holds the job's row
            os.kill(pid, signal.SIGSTOP)
            holder.release()
            released = True
            # genqd's statement has its lock now; its transaction waits on
            # a process that does not run.
            time.sleep(1)
            self.assertFalse(self.lock_free(job_id), "the stalled claim should hold the row")
            stopped_at = time.monotonic()
            wait_for("the stalled session's locks to go",
                     lambda: self.lock_free(job_id), timeout=IDLE_TIMEOUT_S + 15)
            self.assertGreater(time.monotonic() - stopped_at, IDLE_TIMEOUT_S - 3)
            sessions = [r[0] for r in st.query("SELECT id FROM information_schema.PROCESSLIST")]
            self.assertNotIn(genqd_session, sessions)
            # Rolled back: the job is queued again, with no attempt.
            self.assertEqual(st.scalar(f"SELECT status FROM jobs WHERE seq = {seq}"), "queued")
            self.assertEqual(st.scalar(
                f"SELECT COUNT(*) FROM job_attempts WHERE job_seq = {seq}"), "0")
        finally:
            if not released:
                holder.release()
            os.kill(pid, signal.SIGCONT)
        done = self.wait_terminal(key, job_id, timeout=60)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(st.scalar(f"SELECT attempts FROM jobs WHERE seq = {seq}"), "1")
        prompts = harness.request(st.sim_url(0) + "/sim/stats").json["submissions"]
        self.assertEqual(len(prompts), 1, prompts)
        self.assertEqual(list(prompts.values()), [1])


if __name__ == "__main__":
    harness.main()
