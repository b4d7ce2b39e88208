#!/usr/bin/env python3
"""End to end: a claim starts jobs only on the backends that the database
says are still open to it, even when genqd planned the claim while it
believed otherwise.

genqd plans a claim from its copy of the backends table (reloaded every
two seconds) and checks every backend of the claim again inside the
claim's transaction, with a shared lock, in one statement: one drained
meanwhile (genqctl, the admin API, or SQL) or whose lease another genqd
now holds gets nothing from it, and its share of the locked jobs stays
queued for the next claim. Here genqd is paused (SIGSTOP) while jobs are
queued and two of its three backends are closed behind its back; when it
resumes, its first claim is due before its table reload, so it is planned
for all three backends."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import StackTestCase, load_workflow, request  # noqa: E402

JOBS = 6


class ClaimOpenTest(StackTestCase):
    backends = 3
    sim_run_ms = 100

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.key = cls.stack.add_user("olive", tier="pro", credits="100")
        except BaseException:
            cls.tearDownClass()
            raise

    def submissions(self, i):
        return sum(request(self.stack.sim_url(i) + "/sim/stats").json["submissions"].values())

    def test_backends_closed_in_the_database_get_nothing_from_a_claim_planned_before(self):
        st = self.stack
        # Every backend up and leased by this genqd before it is paused.
        self.wait_backends_driven(3)
        owner = st.scalar("SELECT lease_owner FROM backends WHERE name = 'sim3'")
        pids = st._read_pids("genqd")
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            ids = [self.submit(self.key, load_workflow(text=f"open {i}"))["id"]
                   for i in range(JOBS)]
            st.sql("UPDATE genq.backends SET draining = 1 WHERE name = 'sim1'")
            # Another genqd's live lease (it outlasts the test).
            st.sql("UPDATE genq.backends SET lease_owner = 'genqd-elsewhere', "
                   "lease_until = UTC_TIMESTAMP(6) + INTERVAL 120 SECOND WHERE name = 'sim2'")
            # Past the poll interval and the table reload: both are due when
            # genqd resumes, and the claim comes first in its turn.
            time.sleep(2.5)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        done = [self.wait_terminal(self.key, job_id) for job_id in ids]
        for job in done:
            self.assertEqual(job["status"], "succeeded", job)
            self.assertEqual(job["backend"], "sim3", job)
        self.assertEqual(st.scalar(
            "SELECT COUNT(*) FROM job_attempts a JOIN backends b ON b.id = a.backend_id "
            "WHERE b.name <> 'sim3'"), "0")
        self.assertEqual(self.submissions(0), 0)
        self.assertEqual(self.submissions(1), 0)
        self.assertEqual(self.submissions(2), JOBS)
        self.assertEqual(st.scalar("SELECT lease_owner FROM backends WHERE name = 'sim3'"), owner)
        self.check_ledger_invariant()


if __name__ == "__main__":
    unittest.main(verbosity=2)
