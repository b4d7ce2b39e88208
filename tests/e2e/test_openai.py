#!/usr/bin/env python3
"""End to end: the OpenAI-compatible backend (SPEC §1, §4, §6) against the
real stack and tests/sim/openai_sim.py. A job's input is the OpenAI request
body; "messages" sends it to /v1/chat/completions (whole or streamed),
"prompt" to /v1/images/generations as b64_json. The simulator answers
deterministically, so each test asks it directly what the job's output must
be."""

import base64
import hashlib
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import StackTestCase, request  # noqa: E402


def chat(text, **kw):
    body = {"model": "sim-llm", "messages": [{"role": "system", "content": "be brief"},
                                             {"role": "user", "content": text}]}
    body.update(kw)
    return body


class OpenAITest(StackTestCase):
    backends = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.stack.nopenai = 1
            cls.stack.start_openai_sim(0)
            cls.stack.seed()
            cls.key = cls.stack.add_user("ada", tier="pro", credits="1000")
        except BaseException:
            cls.tearDownClass()
            raise
        cls.sim = cls.stack.openai_url(0)

    # ---- helpers -----------------------------------------------------------
    def sim_call(self, method, path, body=None):
        r = request(self.sim + path, method=method, body=body)
        return r.status, json.loads(r.body)

    def sim_stats(self):
        return self.sim_call("GET", "/sim/stats")[1]

    def expected_text(self, body):
        """What the simulator answers this chat body with (not streamed)."""
        direct = dict(body, stream=False)
        status, reply = self.sim_call("POST", "/v1/chat/completions", direct)
        self.assertEqual(status, 200, reply)
        return reply["choices"][0]["message"]["content"]

    def job(self, job_id):
        r = self.api("GET", f"/v1/jobs/{job_id}", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        return r.json

    def wait_running(self, job_id, until=lambda j: True, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            j = self.job(job_id)
            if j["status"] == "running" and until(j):
                return j
            self.assertEqual(j["status"] in ("queued", "running"), True, j)
            time.sleep(0.02)
        self.fail(f"job {job_id} not running as wanted: {j}")

    def attempts(self, job_id):
        """(attempt, prompt_id, outcome, error_code) rows of the job."""
        return self.stack.query(
            "SELECT a.attempt, a.prompt_id, COALESCE(a.outcome, ''), COALESCE(a.error_code, '') "
            f"FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq WHERE j.id = '{job_id}' "
            "ORDER BY a.attempt")

    def assertRequestedOnce(self, job_id):
        """Every attempt's request reached the backend exactly once."""
        seen = self.sim_stats()["request_ids"]
        for attempt, prompt_id, _, _ in self.attempts(job_id):
            self.assertEqual(seen.get(prompt_id), 1, f"attempt {attempt}: {prompt_id} {seen}")

    def assertSettled(self, job, charged):
        held = float(job["cost"]["held"])
        self.assertGreater(held, 0)
        if charged:
            self.assertGreater(float(job["cost"]["charged"]), 0)
        else:
            self.assertEqual(float(job["cost"]["charged"]), 0)
            self.assertEqual(float(job["cost"]["refunded"]), held)

    # ---- chat ----------------------------------------------------------------
    def test_chat_whole_reply_is_a_text_output(self):
        body = chat("tell me about lighthouses", max_tokens=12)
        job = self.submit(self.key, {"queue": "llm", "input": body})
        job = self.wait_terminal(self.key, job["id"])
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["outputs"], [{"index": 0, "text": self.expected_text(body)}])
        self.assertEqual(len(job["outputs"][0]["text"].split()), 12)
        self.assertEqual(job["progress"], 1)
        self.assertEqual(job["attempts"], 1)
        self.assertEqual(job["backend"], "oai1")
        self.assertSettled(job, charged=True)
        self.assertRequestedOnce(job["id"])
        # The backend reports no run time: the attempt's age in the
        # database is charged, 0.1 a job and 0.01 a started second
        # (tests/e2e/stack.py's llm queue); twelve tokens take 0.24 s.
        ran_ms = int(self.stack.scalar(
            "SELECT TIMESTAMPDIFF(MICROSECOND, a.started_at, a.finished_at) DIV 1000 "
            "FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq "
            f"WHERE j.id = '{job['id']}'"))
        charged = float(job["cost"]["charged"])
        self.assertGreaterEqual(charged, 0.11 - 1e-9)
        self.assertLessEqual(charged, 0.1 + 0.01 * (ran_ms // 1000 + 2) + 1e-9)

    def test_stream_shows_progress_then_text(self):
        body = chat("stream a story SIM_TOKENS=40 SIM_TOKEN_MS=60", max_tokens=40, stream=True)
        job = self.submit(self.key, {"queue": "llm", "input": body})
        seen = self.wait_running(job["id"], lambda j: (j["progress"] or 0) > 0)
        self.assertGreater(seen["progress"], 0)
        self.assertLess(seen["progress"], 1)
        job = self.wait_terminal(self.key, job["id"])
        self.assertEqual(job["status"], "succeeded", job)
        expected = self.expected_text(body)
        self.assertEqual(len(expected.split()), 40)
        self.assertEqual(job["outputs"], [{"index": 0, "text": expected}])
        self.assertEqual(job["progress"], 1)
        self.assertRequestedOnce(job["id"])

    # ---- images --------------------------------------------------------------
    def test_image_b64_json_becomes_png_outputs(self):
        body = {"prompt": "a lighthouse at dusk", "n": 2, "size": "512x512", "response_format": "url"}
        job = self.submit(self.key, {"queue": "llm", "input": body})
        job = self.wait_terminal(self.key, job["id"])
        self.assertEqual(job["status"], "succeeded", job)
        status, direct = self.sim_call("POST", "/v1/images/generations",
                                       dict(body, response_format="b64_json"))
        self.assertEqual(status, 200)
        self.assertEqual(len(job["outputs"]), 2)
        for out, item in zip(job["outputs"], direct["data"]):
            want = base64.b64decode(item["b64_json"])
            self.assertEqual(out["content_type"], "image/png")
            self.assertEqual(out["bytes"], len(want))
            r = self.api("GET", f"/v1/jobs/{job['id']}/outputs/{out['index']}", key=self.key)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body[:8], b"\x89PNG\r\n\x1a\n")
            self.assertEqual(r.body, want)
            self.assertEqual(out["sha256"], hashlib.sha256(r.body).hexdigest())

    # ---- after: parent outputs in the child's request ------------------------
    def test_after_hands_a_parents_text_to_a_chat_child(self):
        parent = self.submit(self.key, {"queue": "llm", "input": chat("name a colour",
                                                                       max_tokens=5)})
        child_body = chat("genq:after/0/outputs/0", max_tokens=8)
        child = self.submit(self.key, {"queue": "llm", "input": child_body,
                                       "after": [parent["id"]]})
        parent = self.wait_terminal(self.key, parent["id"])
        self.assertEqual(parent["status"], "succeeded", parent)
        child = self.wait_terminal(self.key, child["id"])
        self.assertEqual(child["status"], "succeeded", child)
        # The child was asked the parent's answer, not the reference.
        handed = chat(parent["outputs"][0]["text"], max_tokens=8)
        self.assertEqual(child["outputs"], [{"index": 0, "text": self.expected_text(handed)}])
        self.assertNotEqual(self.expected_text(handed), self.expected_text(child_body))

    def test_after_hands_a_parents_image_to_a_vision_child_as_a_data_url(self):
        parent = self.submit(self.key, {"queue": "llm", "input": {
            "prompt": "a red kite", "size": "256x256"}})
        child = self.submit(self.key, {"queue": "llm", "after": [parent["id"]], "input": {
            "model": "sim-llm", "max_tokens": 4, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is in the picture?"},
                {"type": "image_url", "image_url": {"url": "genq:after/0/outputs/0"}}]}]}})
        parent = self.wait_terminal(self.key, parent["id"])
        self.assertEqual(parent["status"], "succeeded", parent)
        child = self.wait_terminal(self.key, child["id"])
        self.assertEqual(child["status"], "succeeded", child)
        # The very bytes of the parent's stored PNG reached the server.
        self.assertIn(parent["outputs"][0]["sha256"], self.sim_stats()["image_inputs"])

    # ---- failures ------------------------------------------------------------
    def test_400_fails_without_retry(self):
        job = self.submit(self.key, {"queue": "llm", "input": chat("SIM_400 please")})
        job = self.wait_terminal(self.key, job["id"])
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["code"], "invalid_request")
        self.assertIs(job["error"]["retryable"], False)
        self.assertIn("HTTP 400", job["error"]["message"])
        self.assertEqual(job["attempts"], 1)
        self.assertSettled(job, charged=False)

    def test_unknown_model_fails_without_retry(self):
        job = self.submit(self.key, {"queue": "llm", "input": chat("hi", model="gpt-9")})
        job = self.wait_terminal(self.key, job["id"])
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["code"], "model_not_found")
        self.assertIs(job["error"]["retryable"], False)
        self.assertEqual(job["attempts"], 1)

    def test_input_of_no_known_shape_fails(self):
        before = self.sim_stats()["requests"]
        job = self.submit(self.key, {"queue": "llm", "input": {"model": "sim-llm"}})
        job = self.wait_terminal(self.key, job["id"])
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["code"], "invalid_request")
        self.assertIn("messages", job["error"]["message"])
        after = self.sim_stats()["requests"]
        self.assertEqual(after.get("/v1/chat/completions"), before.get("/v1/chat/completions"))

    def test_500_once_is_retried(self):
        self.sim_call("POST", "/sim/control", {"http_500_next": 1})
        body = chat("retry me", max_tokens=5)
        job = self.submit(self.key, {"queue": "llm", "input": body})
        job = self.wait_terminal(self.key, job["id"], timeout=30)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["attempts"], 2)
        rows = self.attempts(job["id"])
        self.assertEqual([(r[2], r[3]) for r in rows], [("retry", "backend_error"), ("succeeded", "")])
        self.assertEqual(job["outputs"], [{"index": 0, "text": self.expected_text(body)}])
        self.assertRequestedOnce(job["id"])

    # ---- stopping ------------------------------------------------------------
    def wait_sim_idle(self, aborted_before):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = self.sim_stats()
            if stats["aborted"] > aborted_before and stats["in_flight"] == 0:
                return stats
            time.sleep(0.05)
        self.fail(f"the simulator did not see the request closed: {stats}")

    def test_cancel_of_a_stream_closes_it_and_refunds(self):
        aborted = self.sim_stats()["aborted"]
        body = chat("a long one SIM_TOKENS=2000 SIM_TOKEN_MS=20", max_tokens=2000, stream=True)
        job = self.submit(self.key, {"queue": "llm", "input": body})
        self.wait_running(job["id"], lambda j: (j["progress"] or 0) > 0)
        r = self.api("POST", f"/v1/jobs/{job['id']}/cancel", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        job = self.wait_terminal(self.key, job["id"])
        self.assertEqual(job["status"], "canceled", job)
        self.assertEqual(job["outputs"], [])
        self.assertSettled(job, charged=False)
        self.wait_sim_idle(aborted)

    def test_timeout_closes_the_request(self):
        aborted = self.sim_stats()["aborted"]
        job = self.submit(self.key, {"queue": "llm", "input": chat("SIM_HANG", stream=True),
                                     "timeout_s": 2, "max_attempts": 1})
        job = self.wait_terminal(self.key, job["id"], timeout=20)
        self.assertEqual(job["status"], "failed", job)
        self.assertEqual(job["error"]["code"], "timeout")
        self.assertSettled(job, charged=False)
        self.wait_sim_idle(aborted)

    def test_genqd_crash_mid_stream_retries_once_charged_once(self):
        aborted = self.sim_stats()["aborted"]
        body = chat("survive a crash SIM_TOKENS=60 SIM_TOKEN_MS=40", max_tokens=60, stream=True)
        job = self.submit(self.key, {"queue": "llm", "input": body})
        self.wait_running(job["id"], lambda j: (j["progress"] or 0) > 0)
        self.stack.kill("genqd")
        # The connection died with genqd, and the generation with it.
        self.wait_sim_idle(aborted)
        self.stack.start_genqd()
        job = self.wait_terminal(self.key, job["id"], timeout=40)
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["attempts"], 2)
        rows = self.attempts(job["id"])
        self.assertEqual([(r[2], r[3]) for r in rows], [("retry", "lost"), ("succeeded", "")])
        self.assertEqual(job["outputs"], [{"index": 0, "text": self.expected_text(body)}])
        self.assertRequestedOnce(job["id"])
        kinds = self.stack.query(
            "SELECT l.kind FROM ledger l JOIN jobs j ON j.seq = l.job_seq "
            f"WHERE j.id = '{job['id']}' ORDER BY l.id")
        self.assertEqual([k[0] for k in kinds], ["hold", "release", "charge"])


if __name__ == "__main__":
    unittest.main()
