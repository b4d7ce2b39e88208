"""The reporting views (SPEC §10): the read-only account of docs/reporting.md
is created exactly as the docs say, and every example query there runs as
that account and shows what the stack just did."""

import os
import re
import subprocess
import time

import harness
from harness import SRCDIR, StackTestCase, load_workflow

DOC = os.path.join(SRCDIR, "docs", "reporting.md")
ANALYST = "genq_analyst"
PASSWORD = "change me"


def sql_blocks():
    with open(DOC) as f:
        return re.findall(r"```sql\n(.*?)```", f.read(), re.S)


class ReportingTest(StackTestCase):
    backends = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        st = cls.stack
        st.genqctl("tier", "set", "analysed", "--priority", "2", "--max-active", "10",
                   "--rate", "600", "--quota", "image=3")
        cls.key = st.add_user("rita", tier="analysed", credits="100")
        # The account block of the docs, for another account name.
        account, *cls.examples = sql_blocks()
        st.sql(account.replace("'genq_report'", f"'{ANALYST}'"))
        # One failure first (it does not count towards the quota), then three
        # successes that use the quota up.
        # (Active jobs count too, so the failure must end first.)
        cls.submit_direct(load_workflow(text="SIM_FAIL for the report"))
        cls.wait_all()
        for i in range(3):
            cls.submit_direct(load_workflow(text=f"report job {i}"))
        cls.wait_all()

    @classmethod
    def submit_direct(cls, body):
        r = harness.request(cls.stack.url + "/v1/jobs", method="POST", body=body, key=cls.key)
        assert r.status == 201, r.body
        return r.json["id"]

    @classmethod
    def wait_all(cls):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = cls.stack.scalar(
                "SELECT COUNT(*) FROM jobs WHERE status NOT IN "
                "('succeeded','failed','canceled','expired')")
            if left == "0":
                return
            time.sleep(0.1)
        raise AssertionError("jobs did not finish")

    def analyst(self, query, check=True):
        proc = subprocess.run(
            ["mariadb", "--no-defaults", f"-u{ANALYST}", f"-p{PASSWORD}",
             f"--socket={self.stack.db_socket}", "--batch", "--skip-column-names", "genq",
             "-e", query], capture_output=True, text=True)
        if check:
            self.assertEqual(proc.returncode, 0, proc.stderr)
        return proc, [line.split("\t") for line in proc.stdout.splitlines()]

    def example(self, starts_with):
        for q in self.examples:
            if q.startswith(starts_with):
                return self.analyst(q)[1]
        self.fail(f"no example query starting {starts_with!r} in {DOC}")

    def test_every_example_query_runs_as_the_reporting_account(self):
        self.assertEqual(len(self.examples), 7)
        for q in self.examples:
            proc, rows = self.analyst(q)
            self.assertEqual(proc.stderr, "", q)

    def test_jobs_and_failure_rate(self):
        rows = self.example("SELECT queue, SUM(jobs)")
        self.assertEqual(rows, [["image", "4", "25.0"]])

    def test_wait_and_run_percentiles(self):
        rows = self.example("SELECT day, queue, jobs, wait_p50_s")
        self.assertEqual(len(rows), 1)
        day, queue, jobs, wait50, wait90, run50, run99 = rows[0]
        self.assertEqual((queue, jobs), ("image", "3"))
        self.assertGreater(float(run50), 0.1)       # the simulator runs 200 ms
        self.assertLessEqual(float(run50), float(run99))
        self.assertLessEqual(float(wait50), float(wait90))

    def test_gpu_time_per_backend_and_user(self):
        rows = self.example("SELECT backend, ROUND(SUM(busy_s) / 3600")
        self.assertEqual([(r[0], r[2]) for r in rows], [("sim1", "4")])
        rows = self.example("SELECT user, ROUND(SUM(busy_s), 1)")
        self.assertEqual([r[0] for r in rows], ["rita"])
        self.assertGreater(float(rows[0][1]), 0.4)   # 4 attempts of about 0.2 s

    def test_credits_balances_and_quota(self):
        self.assertEqual(self.example("SELECT user, -SUM(credits)"), [["rita", "3.0000"]])
        self.assertEqual(self.example("SELECT user, tier, available, held"),
                         [["rita", "analysed", "97.0000", "0.0000"]])
        rows = self.example("SELECT month, user, queue, used, quota")
        self.assertEqual([r[1:] for r in rows], [["rita", "image", "3", "3"]])

    def test_the_account_reads_only_the_views(self):
        for q in ("SELECT * FROM api_keys", "SELECT input FROM jobs",
                  "SELECT webhook_secret FROM users",
                  "DELETE FROM report_balances", "UPDATE users SET balance = 0"):
            proc, _ = self.analyst(q, check=False)
            self.assertNotEqual(proc.returncode, 0, q)
            self.assertRegex(proc.stderr, r"denied|not updatable|ERROR", q)


if __name__ == "__main__":
    harness.main()
