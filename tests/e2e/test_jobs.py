"""A job's whole path through the real stack: curl → nginx → genq-fcgi →
MariaDB → genqd → simulated ComfyUI → output store → nginx download."""

import glob
import hashlib
import json
import os
import subprocess

import harness
from harness import StackTestCase, load_workflow


class JobLifecycleTest(StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("alice", tier="pro", credits="50")

    def test_job_submitted_with_curl_succeeds_and_output_is_the_simulators_png(self):
        body = json.dumps(load_workflow(text="a red fox in snow"))
        headers_file = os.path.join(self.tmp, "curl-headers")
        payload = subprocess.run(
            ["curl", "-sS", "-D", headers_file, "-X", "POST", self.url + "/v1/jobs",
             "-H", f"Authorization: Bearer {self.key}",
             "-H", "Content-Type: application/json", "--data-binary", body],
            capture_output=True, text=True, check=True).stdout
        with open(headers_file) as f:
            head = f.read().strip().split("\n\n")[-1]   # the final answer, after any 100
        self.assertTrue(head.startswith("HTTP/1.1 201"), head)
        job = json.loads(payload)
        self.assertIn(f"location: /v1/jobs/{job['id']}", head.lower())
        self.assertIn(job["status"], ("queued", "running"))
        self.assertEqual(job["queue"], "image")
        self.assertEqual(job["metadata"], {"source": "quickstart"})

        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["attempts"], 1)
        self.assertIsNone(done["error"])
        self.assertIn(done["backend"], ("sim1", "sim2"))
        self.assertEqual(len(done["outputs"]), 1)
        output = done["outputs"][0]
        self.assertEqual(output["content_type"], "image/png")

        r = self.api("GET", f"/v1/jobs/{job['id']}/outputs/0", key=self.key)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.content_type, "image/png")
        self.assertEqual(r.body[:8], b"\x89PNG\r\n\x1a\n")
        digest = hashlib.sha256(r.body).hexdigest()
        self.assertEqual(digest, output["sha256"])
        self.assertEqual(len(r.body), output["bytes"])

        # The very bytes the simulator wrote into its own output folder.
        made = [p for p in glob.glob(os.path.join(self.stack.root, "sim*", "**", "*.png"),
                                     recursive=True)
                if harness.sha256_file(p) == digest]
        self.assertEqual(len(made), 1, "downloaded output matches no simulator file")

    def test_success_charges_the_price_and_releases_the_rest(self):
        before = int(self.stack.scalar("SELECT balance FROM users WHERE name='alice'"))
        job = self.submit(self.key, load_workflow())
        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "succeeded")
        # The image queue costs 1 credit per job and nothing per second.
        self.assertEqual(done["cost"], {"held": 1, "charged": 1, "refunded": 0})
        after = int(self.stack.scalar("SELECT balance FROM users WHERE name='alice'"))
        self.assertEqual(before - after, 1_000_000)
        kinds = [r[0] for r in self.stack.query(
            "SELECT l.kind FROM ledger l JOIN jobs j ON j.seq = l.job_seq "
            f"WHERE j.id = '{job['id']}' ORDER BY l.id")]
        self.assertEqual(kinds, ["hold", "release", "charge"])

    def test_metered_jobs_ending_together_are_each_charged_their_own_run_time(self):
        # Many jobs of one user end in the same completion batch, whose
        # ledger rows are written together: each job must still get exactly
        # its hold, its release and its own charge (SPEC §5), and every
        # row's balance_after the running sum (checked at teardown).
        self.stack.genqctl("queue", "add", "metered", "--price-per-job", "0.5",
                           "--price-per-second", "1", "--timeout", "10")
        self.stack.genqctl("backend", "add", "meter1", "--type", "comfyui",
                           "--url", self.stack.sim_url(0), "--queues", "metered",
                           "--max-running", "1", "--prefetch", "8")
        key = self.stack.add_user("meter", tier="pro", credits="1000")
        # Alternately instant and over a second: two prices in one batch.
        ids = [self.submit(key, load_workflow(
            queue="metered", text=f"metered {n}" + (" SIM_MS=1100" if n % 4 == 0 else "")))["id"]
            for n in range(10)]
        charged_total = 0
        for n, job_id in enumerate(ids):
            done = self.wait_terminal(key, job_id, timeout=60)
            self.assertEqual(done["status"], "succeeded", done)
            cost = done["cost"]
            self.assertEqual(cost["held"], 10.5)
            # 0.5 per job + 1 per started second of the backend's run time.
            self.assertIn(cost["charged"], (2.5,) if n % 4 == 0 else (0.5, 1.5), (n, cost))
            self.assertEqual(cost["charged"] + cost["refunded"], 10.5)
            rows = self.stack.query(
                "SELECT l.kind, l.amount FROM ledger l JOIN jobs j ON j.seq = l.job_seq "
                f"WHERE j.id = '{job_id}' ORDER BY l.id")
            self.assertEqual([(k, int(a)) for k, a in rows],
                             [("hold", -10_500_000), ("release", 10_500_000),
                              ("charge", -int(round(cost["charged"] * 1_000_000)))])
            charged_total += cost["charged"]
        balance = int(self.stack.scalar("SELECT balance FROM users WHERE name='meter'"))
        self.assertEqual(balance, int(round((1000 - charged_total) * 1_000_000)))

    def test_backend_validation_error_fails_the_job_without_retry(self):
        job = self.submit(self.key, load_workflow(ckpt="no-such-model.safetensors"))
        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "failed")
        self.assertEqual(done["error"]["code"], "validation_error")
        self.assertFalse(done["error"]["retryable"])
        self.assertIn("no-such-model.safetensors", done["error"]["message"])
        self.assertEqual(done["attempts"], 1)
        self.assertEqual(done["outputs"], [])
        self.assertEqual(done["cost"]["charged"], 0)
        self.assertEqual(done["cost"]["refunded"], done["cost"]["held"])

    def test_workflow_execution_error_fails_the_job(self):
        job = self.submit(self.key, load_workflow(text="SIM_FAIL please"))
        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "failed")
        self.assertEqual(done["error"]["code"], "execution_error")
        self.assertFalse(done["error"]["retryable"])
        self.assertEqual(done["attempts"], 1)

    def test_events_record_every_state_change(self):
        job = self.submit(self.key, load_workflow())
        self.wait_terminal(self.key, job["id"])
        r = self.api("GET", f"/v1/jobs/{job['id']}/events", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        steps = [(e["from"], e["to"]) for e in r.json["events"]]
        self.assertEqual(steps, [(None, "queued"), ("queued", "running"),
                                 ("running", "succeeded")])
        for e in r.json["events"]:
            self.assertTrue(e["at"].endswith("Z"))
            self.assertTrue(e["actor"])

    def test_another_users_job_is_not_found(self):
        job = self.submit(self.key, load_workflow())
        bob = self.stack.add_user("bob", tier="pro", credits="5")
        for path in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/events",
                     f"/v1/jobs/{job['id']}/outputs/0"):
            r = self.api("GET", path, key=bob)
            self.assertProblem(r, 404, "not_found")
        self.wait_terminal(self.key, job["id"])


    def test_zz_genqd_exits_cleanly_on_sigterm_and_a_restart_carries_on(self):
        # Named to run last: it restarts the daemon under the other tests.
        job = self.submit(self.key, load_workflow(text="before the restart"))
        self.wait_terminal(self.key, job["id"])
        child = self.stack._children["genqd"]
        self.stack.stop("genqd")
        self.assertEqual(child.returncode, 0)
        with open(os.path.join(self.stack.logdir, "genqd.log")) as f:
            log = f.read()
        self.assertIn("event=shutdown_done", log)
        self.stack.start_genqd()
        job = self.submit(self.key, load_workflow(text="after the restart"))
        self.assertEqual(self.wait_terminal(self.key, job["id"])["status"], "succeeded")


if __name__ == "__main__":
    harness.main()
