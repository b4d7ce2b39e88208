"""SPEC §4: a retry prefers another backend. Two simulated ComfyUI backends
serve one queue; a job whose every attempt runs out of GPU memory (SIM_OOM,
retryable) must move to the other backend on each retry, and with the other
backend drained it must still be retried on the one that failed, not wait
forever for another."""

import harness
from harness import StackTestCase, load_workflow


class RetryBackendTest(StackTestCase):
    backends = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("rita", tier="enterprise", credits="100")
        ctl = cls.stack.genqctl
        # A queue of its own so the stack's default backends cannot take
        # these jobs: only rb1 and rb2, one per simulator.
        ctl("queue", "add", "retryq", "--price-per-job", "1")
        for i, name in enumerate(("rb1", "rb2")):
            ctl("backend", "add", name, "--type", "comfyui",
                "--url", cls.stack.sim_url(i), "--queues", "retryq")

    def attempt_backends(self, job_id):
        rows = self.stack.query(
            "SELECT a.attempt, b.name FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq "
            f"JOIN backends b ON b.id = a.backend_id WHERE j.id = '{job_id}' "
            "ORDER BY a.attempt")
        self.assertEqual([int(r[0]) for r in rows], list(range(1, len(rows) + 1)), rows)
        return [r[1] for r in rows]

    def run_oom_job(self, text, max_attempts):
        job = self.submit(self.key, load_workflow(queue="retryq", text=f"SIM_OOM {text}",
                                                  max_attempts=max_attempts))
        done = self.wait_terminal(self.key, job["id"], timeout=45)
        # Every attempt failed retryably and was retried until none was left.
        self.assertEqual(done["status"], "failed", done)
        self.assertEqual(done["error"]["code"], "out_of_memory", done)
        self.assertEqual(done["attempts"], max_attempts, done)
        self.assertEqual(done["cost"]["charged"], 0, done)
        # The avoidance ends with the attempt that started.
        self.assertEqual(self.stack.scalar(
            f"SELECT COALESCE(retry_avoid_backend, 0) FROM jobs WHERE id = '{job['id']}'"), "0")
        return self.attempt_backends(job["id"])

    def test_each_retry_runs_on_the_other_backend(self):
        backends = self.run_oom_job("alternate", 3)
        self.assertEqual(len(backends), 3, backends)
        self.assertTrue(set(backends) <= {"rb1", "rb2"}, backends)
        # Each retry avoids the backend of the attempt before it.
        self.assertNotEqual(backends[1], backends[0], backends)
        self.assertNotEqual(backends[2], backends[1], backends)

    def test_with_one_backend_the_retry_runs_on_it_again(self):
        self.stack.genqctl("backend", "drain", "rb2")
        try:
            backends = self.run_oom_job("alone", 2)
        finally:
            self.stack.genqctl("backend", "drain", "rb2", "--undrain")
        self.assertEqual(backends, ["rb1", "rb1"])


if __name__ == "__main__":
    harness.main()
