#!/usr/bin/env python3
"""genqd's OpenAI-compatible backend against the C simulator (tests/sim/oaisim,
the dispatch benchmark's): every case of test_openai.py again, with oaisim
in place of openai_sim.py. tests/sim/test_oaisim.py holds the two
simulators to the same wire; this holds genqd to the same behaviour with
each, so what `bench/dispatch.py drain --openai` measures is the genqd the
tests check."""

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
