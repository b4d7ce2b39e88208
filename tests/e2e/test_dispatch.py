"""genqd's failure handling against simulated ComfyUI backends: retries with
backoff, non-retryable errors, timeouts and cancels that interrupt exactly
the job's own prompt, and restarts that re-attach instead of resubmitting."""

import time

import harness
from harness import StackTestCase, load_workflow, request


class DispatchTest(StackTestCase):
    backends = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("dora", tier="enterprise", credits="100")

    def sim(self, i, path, body=None):
        r = request(self.stack.sim_url(i) + path, method="POST" if body else "GET", body=body)
        self.assertEqual(r.status, 200, r.body)
        return r.json

    def sim_stats(self):
        return [self.sim(i, "/sim/stats") for i in range(self.backends)]

    def test_backend_5xx_is_retried_and_then_succeeds(self):
        for i in range(self.backends):
            self.sim(i, "/sim/control", {"http_500_next": 1})
        job = self.submit(self.key, load_workflow(text="retry after a 500"))
        done = self.wait_terminal(self.key, job["id"], timeout=40)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertGreaterEqual(done["attempts"], 2)
        events = self.api("GET", f"/v1/jobs/{job['id']}/events", key=self.key).json["events"]
        self.assertIn(("running", "queued"), [(e["from"], e["to"]) for e in events])
        self.assertEqual(done["cost"]["charged"], 1)

    def test_out_of_memory_is_retryable_and_fails_after_max_attempts(self):
        job = self.submit(self.key, load_workflow(text="SIM_OOM big batch", max_attempts=2))
        done = self.wait_terminal(self.key, job["id"], timeout=40)
        self.assertEqual(done["status"], "failed")
        self.assertEqual(done["error"]["code"], "out_of_memory")
        self.assertTrue(done["error"]["retryable"])
        self.assertEqual(done["attempts"], 2)
        self.assertEqual(done["cost"]["charged"], 0)

    def test_timeout_interrupts_the_prompt_on_its_backend(self):
        before = sum(s["interrupts"] for s in self.sim_stats())
        job = self.submit(self.key, load_workflow(text="SIM_HANG forever", timeout_s=1,
                                                  max_attempts=1))
        done = self.wait_terminal(self.key, job["id"], timeout=30)
        self.assertEqual(done["status"], "failed")
        self.assertEqual(done["error"]["code"], "timeout")
        after = sum(s["interrupts"] for s in self.sim_stats())
        self.assertEqual(after - before, 1)
        self.assertEqual(done["cost"]["refunded"], done["cost"]["held"])

    def test_cancel_of_a_running_job_interrupts_exactly_its_prompt(self):
        before = sum(s["interrupts_effective"] for s in self.sim_stats())
        job = self.submit(self.key, load_workflow(text="SIM_HANG until canceled"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            cur = self.api("GET", f"/v1/jobs/{job['id']}", key=self.key).json
            if cur["status"] == "running":
                break
            time.sleep(0.05)
        self.assertEqual(cur["status"], "running")
        time.sleep(0.5)   # the prompt has reached its backend
        r = self.api("POST", f"/v1/jobs/{job['id']}/cancel", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "canceled")
        self.assertEqual(done["cost"]["refunded"], done["cost"]["held"])
        prompt_id = self.stack.scalar(
            f"SELECT a.prompt_id FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq "
            f"WHERE j.id = '{job['id']}'")
        sims = self.sim_stats()
        self.assertTrue(any(prompt_id in s["submissions"] for s in sims))
        # Exactly one prompt was interrupted: this job's.
        self.assertEqual(sum(s["interrupts_effective"] for s in sims) - before, 1)

    def test_restarted_genqd_reattaches_instead_of_resubmitting(self):
        job = self.submit(self.key, load_workflow(text="SIM_MS=2500 survives a crash"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.api("GET", f"/v1/jobs/{job['id']}", key=self.key).json["status"] == "running":
                break
            time.sleep(0.02)
        time.sleep(0.3)   # the prompt is on the backend now
        self.stack.kill("genqd")
        self.stack.start_genqd()
        done = self.wait_terminal(self.key, job["id"], timeout=40)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["attempts"], 1)
        prompt_id = self.stack.scalar(
            f"SELECT a.prompt_id FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq "
            f"WHERE j.id = '{job['id']}'")
        counts = [s["submissions"].get(prompt_id, 0) for s in self.sim_stats()]
        self.assertEqual(sum(counts), 1, "the prompt was submitted more than once")


    def test_queued_job_past_its_ttl_expires_and_is_refunded(self):
        # A queue no backend serves: the job can only wait.
        self.stack.genqctl("queue", "add", "nowhere", "--price-per-job", "2")
        job = self.submit(self.key, load_workflow(queue="nowhere", ttl_s=1))
        self.assertEqual(job["status"], "queued")
        done = self.wait_terminal(self.key, job["id"], timeout=30)
        self.assertEqual(done["status"], "expired")
        self.assertEqual(done["attempts"], 0)
        self.assertEqual(done["cost"], {"held": 2, "charged": 0, "refunded": 2})

    def test_held_job_waits_for_approval_and_rejection_refunds_it(self):
        self.stack.genqctl("queue", "add", "reviewed", "--requires-approval")
        self.stack.genqctl("backend", "add", "sim1-reviewed", "--type", "comfyui",
                           "--url", self.stack.sim_url(0), "--queues", "reviewed")
        first = self.submit(self.key, load_workflow(queue="reviewed", text="approve me"))
        second = self.submit(self.key, load_workflow(queue="reviewed", text="reject me"))
        self.assertEqual(first["status"], "held")
        time.sleep(1.0)   # genqd must leave held jobs alone
        self.assertEqual(self.api("GET", f"/v1/jobs/{first['id']}", key=self.key).json["status"],
                         "held")
        self.stack.genqctl("job", "approve", first["id"])
        self.assertEqual(self.wait_terminal(self.key, first["id"])["status"], "succeeded")
        self.stack.genqctl("job", "reject", second["id"])
        done = self.wait_terminal(self.key, second["id"])
        self.assertEqual(done["status"], "canceled")
        self.assertEqual(done["cost"]["refunded"], done["cost"]["held"])
        steps = [(e["from"], e["to"]) for e in
                 self.api("GET", f"/v1/jobs/{first['id']}/events", key=self.key).json["events"]]
        self.assertEqual(steps[:2], [(None, "held"), ("held", "queued")])


if __name__ == "__main__":
    harness.main()
