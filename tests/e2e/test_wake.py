#!/usr/bin/env python3
"""End to end: the handlers' wake-up datagram (lib/wake.c) is what starts a
new job on an idle backend, not genqd's polling. genqd here polls once a
minute; a submit to either queue (`image` on the ComfyUI simulator, `llm`
on the OpenAI-compatible one) names its queue in the wake-up and the job
runs within seconds, and so does a job approved out of `held` (a wake-up
about everything). A lost wake-up would leave the job queued for the rest
of the minute: each wait below gives up long before that."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import StackTestCase, load_workflow  # noqa: E402

POLL_MS = 60000
WITHIN_S = 15          # a quarter of the poll interval


class WakeTest(StackTestCase):
    backends = 1
    sim_run_ms = 50
    daemon_settings = {"poll_interval_ms": POLL_MS}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            st = cls.stack
            st.nopenai = 1
            st.start_openai_sim(0)
            st.seed()
            cls.key = st.add_user("wanda", tier="pro", credits="1000")
        except BaseException:
            cls.tearDownClass()
            raise

    def test_a_submit_wakes_its_queue(self):
        # Twice each, alternating: every backend has gone back to waiting
        # for the next poll (it found its queue empty) before its job comes.
        for n in range(2):
            for body in (load_workflow(text=f"wake {n}"),
                         {"queue": "llm", "input": {"model": "sim-llm", "messages": [
                             {"role": "user", "content": f"wake {n}"}]}}):
                job = self.submit(self.key, body)
                done = self.wait_terminal(self.key, job["id"], timeout=WITHIN_S)
                self.assertEqual(done["status"], "succeeded", (body["queue"], done))

    def test_an_approval_wakes_genqd(self):
        self.stack.genqctl("queue", "set", "image", "--requires-approval")
        try:
            job = self.submit(self.key, load_workflow(text="held"))
            self.assertEqual(job["status"], "held")
        finally:
            self.stack.genqctl("queue", "set", "image", "--no-requires-approval")
        self.stack.genqctl("job", "approve", job["id"])
        done = self.wait_terminal(self.key, job["id"], timeout=WITHIN_S)
        self.assertEqual(done["status"], "succeeded", done)


if __name__ == "__main__":
    unittest.main(verbosity=2)
