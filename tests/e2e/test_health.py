#!/usr/bin/env python3
"""Backend health end to end (SPEC §4 "Backend health"), against the real
stack: a backend whose process dies is marked down (backends.healthy = 0, a
backend_down log line) after repeated failures, its in-flight job is retried
and succeeds elsewhere, and new work goes only to the healthy backends; a
backend that comes back on its port, but answers its probe with 500, stays
down until the probe succeeds; then it is marked up and gets jobs again.
The same cycle for an OpenAI-compatible backend (probe GET /v1/models).
GET /v1/queues' backends up/busy counts follow every transition.

States and counts only: every wait is a generous loop, nothing is timed."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import StackTestCase, load_workflow, request  # noqa: E402
from stack import wait_for  # noqa: E402

# A probe answered 500 this many times in a row, the backend still down.
REFUSED_PROBES = 3


def chat(text):
    return {"model": "sim-llm", "messages": [{"role": "user", "content": text}]}


class HealthTest(StackTestCase):
    backends = 2
    sim_run_ms = 200

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            st = cls.stack
            st.nopenai = 1
            st.start_openai_sim(0)
            st.seed()
            # Retries are the point here: never run out of attempts while a
            # backend is being found dead.
            st.genqctl("queue", "set", "image", "--max-attempts", "10")
            st.genqctl("queue", "set", "llm", "--max-attempts", "10")
            cls.key = st.add_user("hal", tier="pro", credits="1000")
        except BaseException:
            cls.tearDownClass()
            raise

    # ---- helpers -------------------------------------------------------------
    def backend_id(self, name):
        return self.stack.scalar(f"SELECT id FROM backends WHERE name = '{name}'")

    def healthy(self, name):
        return self.stack.scalar(f"SELECT healthy FROM backends WHERE name = '{name}'")

    def job_row(self, job_id):
        """(status, backend name or '') of a job, from the database."""
        rows = self.stack.query(
            "SELECT j.status, COALESCE(b.name, '') FROM jobs j "
            f"LEFT JOIN backends b ON b.id = j.backend_id WHERE j.id = '{job_id}'")
        return tuple(rows[0])

    def attempts(self, job_id):
        """(attempt, backend name, outcome, error_code) per attempt of a job."""
        return [tuple(r) for r in self.stack.query(
            "SELECT a.attempt, b.name, COALESCE(a.outcome, ''), COALESCE(a.error_code, '') "
            "FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq "
            f"JOIN backends b ON b.id = a.backend_id WHERE j.id = '{job_id}' "
            "ORDER BY a.attempt")]

    def queue_backends(self, queue):
        r = self.api("GET", "/v1/queues", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        return {q["name"]: q for q in r.json["queues"]}[queue]["backends"]

    def wait_queue_backends(self, queue, up, busy=None, timeout=30):
        """Wait until GET /v1/queues shows `up` (and `busy`) for queue."""
        seen = []

        def match():
            be = self.queue_backends(queue)
            seen[:] = [be]
            return be["up"] == up and (busy is None or be["busy"] == busy)
        try:
            wait_for(f"{queue} backends up={up} busy={busy}", match, timeout=timeout,
                     interval=0.05)
        except TimeoutError:
            self.fail(f"/v1/queues {queue} backends: {seen}, wanted up={up} busy={busy}")
        return seen[0]

    def genqd_log(self):
        with open(self.stack.path("log", "genqd.log"), errors="replace") as f:
            return f.read().splitlines()

    def log_lines(self, event, backend):
        return [ln for ln in self.genqd_log()
                if event in ln.split() or f"event={event}" in ln.split()
                if f"backend={backend}" in ln.split()]

    def sim_stats(self, url):
        r = request(url + "/sim/stats")
        self.assertEqual(r.status, 200, r.body)
        return r.json

    # ---- ComfyUI -------------------------------------------------------------
    def test_comfyui_down_and_up_again(self):
        st = self.stack
        be = self.wait_queue_backends("image", up=2, busy=0)
        self.assertEqual(be["total"], 2)

        # A job that runs long enough to be in flight when its backend dies.
        job = self.submit(self.key, load_workflow(text="health victim SIM_MS=3000"))
        wait_for("the job to run", lambda: self.job_row(job["id"])[0] == "running"
                 and self.job_row(job["id"])[1] != "", timeout=20)
        victim = self.job_row(job["id"])[1]
        other = "sim2" if victim == "sim1" else "sim1"
        vi = int(victim[3:]) - 1
        wait_for("the prompt to run on the simulator",
                 lambda: self.sim_stats(st.sim_url(vi))["running"] is not None, timeout=20)
        self.assertEqual(self.queue_backends("image")["busy"], 1)

        st.kill(victim)
        # Down after repeated failures: the row, the log and /v1/queues say so.
        wait_for(f"{victim} to be marked down", lambda: self.healthy(victim) == "0",
                 timeout=30, interval=0.1)
        self.assertEqual(self.healthy(other), "1")
        self.assertTrue(self.log_lines("backend_down", victim), "no backend_down log line")
        # The retried job runs on the other backend: one up, one busy.
        self.wait_queue_backends("image", up=1, busy=1)
        done = self.wait_terminal(self.key, job["id"], timeout=40)
        self.assertEqual(done["status"], "succeeded", done)
        tries = self.attempts(job["id"])
        self.assertGreaterEqual(len(tries), 2, tries)
        self.assertEqual(tries[0][1], victim, tries)
        self.assertEqual(tries[0][2], "retry", tries)
        self.assertIn(tries[0][3], ("backend_unreachable", "backend_error", "lost"), tries)
        self.assertEqual(tries[-1][1:3], (other, "succeeded"), tries)
        self.assertEqual(self.wait_queue_backends("image", up=1, busy=0)["total"], 2)

        # While it is down, new jobs go to the healthy backend only.
        ids = [self.submit(self.key, load_workflow(text=f"health while down {i}"))["id"]
               for i in range(4)]
        for jid in ids:
            self.assertEqual(self.wait_terminal(self.key, jid)["status"], "succeeded")
            self.assertEqual({t[1] for t in self.attempts(jid)}, {other}, self.attempts(jid))

        # Back on its port, but its probe (/system_stats) answers 500: down.
        st.start_sim(vi, extra_args=["--http-500-next", "1000000"])
        wait_for("probes to be refused", lambda: self.sim_stats(
            st.sim_url(vi))["http_500_served"] >= REFUSED_PROBES, timeout=30, interval=0.1)
        self.assertEqual(self.healthy(victim), "0")
        self.assertEqual(self.queue_backends("image")["up"], 1)
        stats = self.sim_stats(st.sim_url(vi))
        self.assertEqual(stats["submissions"], {}, "a down backend was sent prompts")
        self.assertFalse(self.log_lines("backend_up", victim), "marked up on a 500 probe")

        # The probe succeeds: up again, and it gets jobs again.
        r = request(st.sim_url(vi) + "/sim/control", method="POST", body={"http_500_next": 0})
        self.assertEqual(r.status, 200, r.body)
        wait_for(f"{victim} to be marked up", lambda: self.healthy(victim) == "1",
                 timeout=30, interval=0.1)
        self.assertTrue(self.log_lines("backend_up", victim), "no backend_up log line")
        self.wait_queue_backends("image", up=2)
        ids = [self.submit(self.key, load_workflow(text=f"health after up {i} SIM_MS=1500"))["id"]
               for i in range(4)]
        # Both busy at once: the revived backend takes its share.
        self.wait_queue_backends("image", up=2, busy=2)
        for jid in ids:
            self.assertEqual(self.wait_terminal(self.key, jid)["status"], "succeeded")
        used = [t[1] for jid in ids for t in self.attempts(jid)]
        self.assertIn(victim, used, used)
        self.assertGreater(self.sim_stats(st.sim_url(vi))["succeeded"], 0)
        self.wait_queue_backends("image", up=2, busy=0)

    # ---- OpenAI-compatible ---------------------------------------------------
    def test_openai_down_and_up_again(self):
        st = self.stack
        url = st.openai_url(0)
        self.wait_queue_backends("llm", up=1, busy=0)

        # A slow answer (40 tokens, 100 ms apart) is in flight when the
        # server dies; with no other llm backend it waits for this one.
        job = self.submit(self.key, {"queue": "llm", "input": chat(
            "health SIM_TOKENS=40 SIM_TOKEN_MS=100")})
        wait_for("the request to be in flight",
                 lambda: self.sim_stats(url)["in_flight"] > 0, timeout=20)
        self.wait_queue_backends("llm", up=1, busy=1)

        st.kill("oai1")
        wait_for("oai1 to be marked down", lambda: self.healthy("oai1") == "0",
                 timeout=40, interval=0.1)
        self.assertTrue(self.log_lines("backend_down", "oai1"), "no backend_down log line")
        self.wait_queue_backends("llm", up=0, busy=0)
        status = self.job_row(job["id"])[0]
        self.assertIn(status, ("queued", "running"), "the job must wait, not fail")
        tries = self.attempts(job["id"])
        self.assertTrue(tries and tries[0][2] == "retry", tries)
        self.assertEqual(self.healthy("sim1"), "1")

        # Back on the same port: the probe (/v1/models) marks it up, and the
        # job runs there to the end.
        st.start_openai_sim(0)
        self.assertEqual(st.openai_url(0), url)
        wait_for("oai1 to be marked up", lambda: self.healthy("oai1") == "1",
                 timeout=30, interval=0.1)
        self.assertTrue(self.log_lines("backend_up", "oai1"), "no backend_up log line")
        self.wait_queue_backends("llm", up=1)
        done = self.wait_terminal(self.key, job["id"], timeout=40)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(self.sim_stats(url)["completed"], 1)
        self.assertEqual(self.attempts(job["id"])[-1][1:3], ("oai1", "succeeded"))
        self.wait_queue_backends("llm", up=1, busy=0)


if __name__ == "__main__":
    harness.main()
