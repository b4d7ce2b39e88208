#!/usr/bin/env python3
"""End to end: [backend_keys] in the configuration file. genqd sends an
OpenAI-compatible backend its API key (a server started with --api-key, as
vLLM and llama.cpp are) on its health probes and its generations; a backend
whose key is wrong gets none of its routes, so it is kept down and never
given a job; a key fixed in the file takes effect on SIGHUP."""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import StackTestCase, request  # noqa: E402


def chat(text):
    return {"queue": "llm", "input": {"model": "sim-llm", "messages": [
        {"role": "user", "content": text}]}}


class BackendKeyTest(StackTestCase):
    backends = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.stack.nopenai = 2
            cls.stack.start_openai_sim(0, ["--api-key", "sk-right-0123456789"])
            cls.stack.start_openai_sim(1, ["--api-key", "sk-other-0123456789"])
            cls.stack.backend_keys = {"oai1": "sk-right-0123456789", "oai2": "sk-wrong"}
            cls.stack.write_config()
            cls.stack.stop("genqd")
            cls.stack.start_genqd()
            cls.stack.seed()
            cls.key = cls.stack.add_user("kay", tier="pro", credits="1000")
        except BaseException:
            cls.tearDownClass()
            raise

    def stats(self, i):
        return request(self.stack.openai_url(i).rsplit("/v1", 1)[0] + "/sim/stats").json

    def healthy(self, name):
        return int(self.stack.scalar(f"SELECT healthy FROM backends WHERE name = '{name}'"))

    def genqd_log(self):
        with open(os.path.join(self.stack.logdir, "genqd.log")) as f:
            return f.read()

    def wait_for(self, what, pred, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.1)
        self.fail(f"timed out waiting for {what}")

    def test_1_the_keyed_backend_runs_jobs_and_the_wrong_key_keeps_the_other_down(self):
        self.wait_for("oai2 marked down", lambda: self.healthy("oai2") == 0)
        down = [ln for ln in self.genqd_log().splitlines()
                if "event=backend_down" in ln and "backend=oai2" in ln]
        self.assertTrue(down and "HTTP 401" in down[0], down)
        ids = [self.submit(self.key, chat(f"keyed {n}"))["id"] for n in range(4)]
        for job_id in ids:
            done = self.wait_terminal(self.key, job_id)
            self.assertEqual(done["status"], "succeeded", done)
            self.assertEqual(done["backend"], "oai1")
        self.assertEqual(self.healthy("oai1"), 1)
        # Every request genqd sent to oai1 carried the key: nothing refused.
        s1 = self.stats(0)
        self.assertEqual(s1["unauthorized"], 0, s1)
        self.assertGreaterEqual(s1["chat_completions"], 4, s1)
        # oai2 refused genqd's probes and was never sent a generation.
        s2 = self.stats(1)
        self.assertGreater(s2["unauthorized"], 0, s2)
        self.assertEqual(s2["chat_completions"], 0, s2)

    def test_2_a_key_fixed_in_the_file_takes_effect_on_sighup(self):
        self.stack.backend_keys["oai2"] = "sk-other-0123456789"
        self.stack.write_config()
        for pid in self.stack._read_pids("genqd"):
            os.kill(pid, signal.SIGHUP)
        self.wait_for("oai2 probed back up", lambda: self.healthy("oai2") == 1, timeout=40)
        self.stack.sql("UPDATE genq.backends SET draining = 1 WHERE name = 'oai1'")
        done = self.wait_terminal(self.key, self.submit(self.key, chat("after the fix"))["id"])
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["backend"], "oai2")

    def test_3_a_token_that_could_break_the_header_line_is_refused_at_load(self):
        bad = os.path.join(self.tmp, "bad.conf")
        with open(self.stack.config_path) as f:
            text = f.read()
        with open(bad, "w") as f:
            f.write(text.replace("oai2 = sk-other-0123456789", "oai2 = sk-a b"))
        r = subprocess.run([self.stack.bin("genqctl"), "--config", bad, "backend", "list"],
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("[backend_keys] oai2", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
