#!/usr/bin/env python3
"""genqd against the C ComfyUI simulator (tests/sim/comfysim, the dispatch
benchmark's): jobs go through the real stack to two C simulators, succeed,
their stored outputs are the very files the simulators wrote, and every
prompt reached a simulator exactly once."""

import glob
import hashlib
import os
import re
import time

import harness
from harness import StackTestCase, load_workflow

JOBS = 40


class ComfysimDispatchTest(StackTestCase):
    backends = 2
    sim_run_ms = 0          # instant prompts, as in bench/dispatch.py drain
    sim_impl = "c"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack.genqctl("tier", "set", "many", "--priority", "1", "--max-active", "1000",
                          "--rate", "1000", "--burst", "1000")
        cls.key = cls.stack.add_user("cora", tier="many", credits="1000")

    def test_the_backends_are_the_c_simulator(self):
        for i in range(self.backends):
            pid = self.stack._read_pids(f"sim{i + 1}")[0]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0]
            self.assertTrue(argv0.endswith(b"/tests/sim/comfysim"), argv0)
            stats = harness.request(self.stack.sim_url(i) + "/system_stats").json
            self.assertIn("comfysim", stats["system"]["python_version"])

    def test_jobs_succeed_with_the_files_the_simulators_wrote_each_prompt_once(self):
        # Queued first, then genqd starts: its claim shares the jobs out one
        # per backend per round, so both simulators take some however fast
        # each finishes (submitted one by one to a running genqd, instant
        # prompts could all go to the first backend while it keeps up).
        self.stack.stop("genqd")
        ids = [self.submit(self.key, load_workflow(text=f"comfysim dispatch {n}"))["id"]
               for n in range(JOBS)]
        self.stack.start_genqd()
        deadline = time.monotonic() + 45
        done = {}
        while len(done) < JOBS and time.monotonic() < deadline:
            for job_id in [i for i in ids if i not in done]:
                job = self.api("GET", f"/v1/jobs/{job_id}", key=self.key).json
                if job["status"] in harness.TERMINAL:
                    done[job_id] = job
            time.sleep(0.1)
        self.assertEqual(len(done), JOBS, "jobs unfinished")
        for job in done.values():
            self.assertEqual(job["status"], "succeeded", job)
            self.assertEqual(job["attempts"], 1, job)
            self.assertIn(job["backend"], ("sim1", "sim2"))
        self.assertEqual({j["backend"] for j in done.values()}, {"sim1", "sim2"},
                         "both simulators took jobs")

        # Each stored output is byte for byte a file a simulator wrote, and
        # every job got its own image.
        files = {}
        for path in glob.glob(os.path.join(self.stack.root, "sim*", "**", "*.png"), recursive=True):
            files.setdefault(harness.sha256_file(path), []).append(path)
        digests = []
        for job in done.values():
            self.assertEqual(len(job["outputs"]), 1, job)
            out = job["outputs"][0]
            self.assertEqual(out["content_type"], "image/png")
            self.assertEqual(len(files.get(out["sha256"], [])), 1, f"{job['id']}: no simulator file")
            digests.append(out["sha256"])
        self.assertEqual(len(set(digests)), JOBS, "two jobs got the same image")
        first = ids[0]
        r = self.api("GET", f"/v1/jobs/{first}/outputs/0", key=self.key)
        self.assertEqual((r.status, hashlib.sha256(r.body).hexdigest()),
                         (200, done[first]["outputs"][0]["sha256"]))

        # Each attempt's prompt id was accepted exactly once, by one simulator.
        accepted = []
        for i in range(self.backends):
            with open(os.path.join(self.stack.logdir, f"sim{i + 1}.log")) as f:
                accepted += re.findall(r"prompt ([0-9a-f-]{36}) accepted", f.read())
        prompts = [row[0] for row in self.stack.query(
            "SELECT a.prompt_id FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq WHERE j.id IN (" +
            ",".join(f"'{i}'" for i in ids) + ")")]
        self.assertEqual(len(prompts), JOBS)
        for p in prompts:
            self.assertEqual(accepted.count(p), 1, f"prompt {p} accepted {accepted.count(p)} times")
        self.assertEqual(len(accepted), JOBS)


if __name__ == "__main__":
    harness.main()
