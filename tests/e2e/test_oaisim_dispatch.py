#!/usr/bin/env python3
"""genqd's OpenAI-compatible backend against the C simulator (tests/sim/oaisim,
the dispatch benchmark's): test_openai.py's cases for each kind of request
and ending again (a whole reply, a stream with progress, b64_json images, a
500 retried, a stream canceled), with oaisim in place of openai_sim.py.
tests/sim/test_oaisim.py holds the two simulators to the same wire; this
holds genqd to the same behaviour with each, so what `bench/dispatch.py
drain --openai` measures is the genqd the tests check. (All twelve cases
pass against oaisim too; the rest stay with the Python simulator to keep
`make check` short.)"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import test_openai  # noqa: E402


class OaisimOpenAITest(test_openai.OpenAITest):
    sim_impl = "c"

    def test_the_backend_is_the_c_simulator(self):
        pid = self.stack._read_pids("oai1")[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0")[0]
        self.assertTrue(argv0.endswith(b"/tests/sim/oaisim"), argv0)


CASES = ("test_the_backend_is_the_c_simulator", "test_chat_whole_reply_is_a_text_output",
         "test_stream_shows_progress_then_text", "test_image_b64_json_becomes_png_outputs",
         "test_500_once_is_retried", "test_cancel_of_a_stream_closes_it_and_refunds")


def load_tests(loader, tests, pattern):
    return unittest.TestSuite(OaisimOpenAITest(name) for name in CASES)


if __name__ == "__main__":
    unittest.main(verbosity=2)
