#!/usr/bin/env python3
"""The statements that find jobs by status alone use an index, not a scan of
the whole table, against the real schema with every migration applied.

The jobs table mostly holds finished jobs; genqd's sweeps, recovery and
hand-backs, the dependency pass and the operators' counts ask only for the
few running or waiting ones. They name no indexed column but status, so an
index led by status must answer them (sql/013_lease_index.sql dropped the
one that did no more than that). The table here holds 4,000 finished jobs
and a handful of active ones, with fresh statistics, and each statement's
plan (EXPLAIN, as MariaDB would run it) must read jobs along an index. The
statements are written as genq's C code writes them, with literals for the
parameters. genqd is stopped, so nothing moves the rows meanwhile."""

import harness
from harness import StackTestCase

FINISHED = 4000

# (where in genq, statement)
STATEMENTS = (
    ("daemon/deps.c: is any job waiting",
     "SELECT 1 FROM jobs WHERE status = 'waiting' LIMIT 1"),
    ("daemon/deps.c: waiting jobs that can move",
     "SELECT c.seq FROM jobs c JOIN job_deps d ON d.child = c.seq "
     "JOIN jobs p ON p.seq = d.parent WHERE c.status = 'waiting' GROUP BY c.seq LIMIT 100"),
    ("daemon/sweep.c: cancels to carry out",
     "SELECT seq FROM jobs WHERE claimed_by = 'genqd-1' AND status = 'running' "
     "AND cancel_requested = 1"),
    ("daemon/sweep.c: lease renewal",
     "UPDATE jobs SET lease_until = UTC_TIMESTAMP(6) + INTERVAL 30 SECOND "
     "WHERE claimed_by = 'genqd-1' AND status = 'running'"),
    ("daemon/finish.c: hand back a backend's jobs",
     "UPDATE jobs SET claimed_by = NULL, lease_until = UTC_TIMESTAMP(6) "
     "WHERE claimed_by = 'genqd-1' AND status = 'running' AND backend_id = 1"),
    ("daemon/recover.c: orphans on a backend",
     "SELECT j.seq FROM jobs j JOIN backends b ON b.id = j.backend_id "
     "LEFT JOIN job_attempts a ON a.job_seq = j.seq AND a.attempt = j.attempts "
     "WHERE j.status = 'running' AND j.backend_id = 1 AND b.lease_owner = 'genqd-1' "
     "AND b.lease_until > UTC_TIMESTAMP(6) LIMIT 200"),
    ("ctl/backends.c: a backend's running jobs",
     "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND backend_id = 1"),
)


class QueryPlanTest(StackTestCase):
    backends = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            st = cls.stack
            st.stop("genqd")
            st.add_user("plans", tier="pro", credits=None)
            user = st.scalar("SELECT id FROM users WHERE name = 'plans'")
            backend = st.scalar("SELECT MIN(id) FROM backends")
            common = ("(id, user_id, queue, status, priority, input, max_attempts, timeout_s, "
                      "ttl_s, created_at, not_before, started_at, finished_at, backend_id, "
                      "claimed_by, lease_until)")
            st.sql(f"INSERT INTO jobs {common} SELECT UUID(), {user}, 'image', 'succeeded', 1, "
                   "'{}', 1, 60, 600, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), "
                   f"UTC_TIMESTAMP(6), {backend}, NULL, NULL FROM seq_1_to_{FINISHED}",
                   database="genq")
            st.sql(f"INSERT INTO jobs {common} SELECT UUID(), {user}, 'image', 'running', 1, "
                   "'{}', 1, 60, 600, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), "
                   f"NULL, {backend}, 'genqd-1', UTC_TIMESTAMP(6) + INTERVAL 30 SECOND "
                   "FROM seq_1_to_3", database="genq")
            st.sql(f"INSERT INTO jobs {common} SELECT UUID(), {user}, 'image', 'waiting', 1, "
                   "'{}', 1, 60, 600, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), NULL, NULL, NULL, "
                   "NULL, NULL FROM seq_1_to_3", database="genq")
            # The backend leased to the genqd the statements name, as
            # recovery reads it.
            st.sql("UPDATE backends SET lease_owner = 'genqd-1', "
                   f"lease_until = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR WHERE id = {backend}",
                   database="genq")
            st.sql("ANALYZE TABLE jobs", database="genq")
        except BaseException:
            cls.tearDownClass()
            raise

    def plan(self, statement):
        """EXPLAIN's rows for the jobs table: (alias, type, key, rows)."""
        rows = self.stack.query("EXPLAIN " + statement)
        # id, select_type, table, type, possible_keys, key, key_len, ref, rows, Extra
        return [(r[2], r[3], r[5], r[8]) for r in rows if r[2] in ("jobs", "j", "c", "p")]

    def test_the_schema_has_no_lease_index(self):
        keys = {r[0] for r in self.stack.query(
            "SELECT INDEX_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = 'genq' AND TABLE_NAME = 'jobs'")}
        self.assertNotIn("jobs_status_lease", keys)
        self.assertTrue({"jobs_expiry", "jobs_finished"} <= keys, keys)

    def test_status_only_statements_read_along_an_index(self):
        self.assertEqual(self.stack.scalar("SELECT COUNT(*) FROM jobs"), str(FINISHED + 6))
        for where, statement in STATEMENTS:
            with self.subTest(where):
                plan = self.plan(statement)
                self.assertTrue(plan, f"{where}: no jobs row in the plan")
                for alias, kind, key, rows in plan:
                    self.assertNotEqual(kind, "ALL", f"{where}: {alias} scanned whole: {plan}")
                    self.assertNotEqual(key, "NULL", f"{where}: {alias} without an index: {plan}")
                    self.assertLess(int(rows), FINISHED // 10,
                                    f"{where}: {alias} reads {rows} rows: {plan}")


if __name__ == "__main__":
    harness.main()
