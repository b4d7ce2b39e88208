"""genqctl against the real database: idempotent migrations, keys printed
once and alone, one-line errors with a non-zero exit."""

import os
import subprocess

import harness
from harness import StackTestCase
from stack import wait_for


class GenqctlTest(StackTestCase):
    backends = 1

    def ctl(self, *args):
        return self.stack.genqctl(*args, check=False)

    def test_migrate_twice_is_harmless(self):
        before = self.stack.scalar("SELECT COUNT(*) FROM schema_migrations")
        r = self.ctl("migrate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.stack.scalar("SELECT COUNT(*) FROM schema_migrations"), before)

    # What genqd's claim and completion write (daemon/claim.c, finish.c):
    # each must keep its size from NULL to a value, so those updates stay
    # in place (sql/012_inplace.sql).
    HOT_COLUMNS = {
        "jobs": ("status", "attempts", "backend_id", "prompt_id", "claimed_by", "lease_until",
                 "started_at", "finished_at", "progress", "cost_charged", "cost_refunded",
                 "retry_avoid_backend", "error_retryable", "not_before"),
        "job_attempts": ("submitted_at", "finished_at", "outcome"),
    }
    FIXED_TYPES = {"tinyint", "int", "bigint", "double", "datetime", "enum", "char"}

    def test_migrations_leave_the_busy_columns_fixed_width(self):
        for table, columns in self.HOT_COLUMNS.items():
            fmt = self.stack.scalar(
                "SELECT ROW_FORMAT FROM information_schema.TABLES "
                f"WHERE TABLE_SCHEMA = 'genq' AND TABLE_NAME = '{table}'")
            self.assertEqual(fmt, "Redundant", table)
            got = {r[0]: (r[1], r[2]) for r in self.stack.query(
                "SELECT COLUMN_NAME, DATA_TYPE, IFNULL(CHARACTER_SET_NAME, '') "
                "FROM information_schema.COLUMNS "
                f"WHERE TABLE_SCHEMA = 'genq' AND TABLE_NAME = '{table}'")}
            for column in columns:
                self.assertIn(column, got, f"{table}.{column}")
                kind, charset = got[column]
                self.assertIn(kind, self.FIXED_TYPES, f"{table}.{column}")
                if kind == "char":
                    self.assertEqual(charset, "ascii", f"{table}.{column}")

    def test_genqd_refuses_an_id_claimed_by_cannot_hold(self):
        for name, daemon_id, why in (("genqd-nonascii", "gpu-h\u00f6st-1", "only visible ASCII"),
                                     ("genqd-long", "g" * 101, "at most 100 characters")):
            conf = self.stack.write_genqd_config(name, daemon_id)
            proc = subprocess.run([self.stack.bin("genqd"), "--config", conf],
                                  capture_output=True, text=True, timeout=30)
            self.assertEqual(proc.returncode, 1, proc.stderr)
            self.assertIn("[daemon] id: " + why, proc.stderr)
        # At the limit it starts, under that id.
        conf = self.stack.write_genqd_config("genqd-100", "g" * 100)
        self.stack.start_genqd("genqd-100", conf)
        log = os.path.join(self.stack.logdir, "genqd-100.log")
        try:
            wait_for("genqd with a 100-character id",
                     lambda: os.path.exists(log) and "event=start id=" + "g" * 100 + " " in
                     open(log, errors="replace").read(), timeout=20)
        finally:
            self.stack.stop("genqd-100")

    def test_key_create_prints_only_the_key(self):
        self.assertEqual(self.ctl("user", "add", "dave", "--tier", "free").returncode, 0)
        r = self.ctl("key", "create", "dave")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1)
        self.assertRegex(lines[0], r"^gq_[A-Za-z0-9]{8}_[A-Za-z0-9]{43}$")
        # Stored only as a hash.
        self.assertEqual(self.stack.scalar(
            f"SELECT COUNT(*) FROM api_keys WHERE secret_hash = UNHEX(SHA2('{lines[0]}', 256))"), "1")
        self.assertIsNone(self.stack.scalar(
            f"SELECT 1 FROM api_keys WHERE HEX(secret_hash) LIKE '%{lines[0][12:20]}%'"))

    def test_credits_grant_writes_a_ledger_row(self):
        self.ctl("user", "add", "erin", "--tier", "starter")
        r = self.ctl("credits", "grant", "erin", "2.5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.stack.scalar("SELECT balance FROM users WHERE name='erin'"), "2500000")
        self.assertEqual(self.stack.query(
            "SELECT kind, amount FROM ledger l JOIN users u ON u.id = l.user_id "
            "WHERE u.name='erin'"), [["grant", "2500000"]])

    def test_errors_exit_non_zero_with_one_line(self):
        cases = [("user", "add", "frank", "--tier", "no-such-tier"),
                 ("credits", "grant", "nobody-here", "5"),
                 ("credits", "grant", "dave", "-5"),
                 ("backend", "add", "b1", "--type", "comfyui", "--url", "ftp://x", "--queues", "image"),
                 ("no-such-verb",)]
        for args in cases:
            r = self.ctl(*args)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, (args, r.stderr))
            self.assertTrue(r.stderr.startswith("genqctl: "), r.stderr)

    def test_help_on_every_verb(self):
        for args in (("--help",), ("migrate", "--help"), ("user", "add", "--help"),
                     ("key", "create", "--help"), ("backend", "add", "--help")):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 0, (args, r.stderr))
            self.assertIn("genqctl", r.stdout + r.stderr)

    def test_backend_list_shows_the_simulator(self):
        r = self.ctl("backend", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("sim1", r.stdout)
        self.assertIn(self.stack.sim_url(0), r.stdout)


if __name__ == "__main__":
    harness.main()
