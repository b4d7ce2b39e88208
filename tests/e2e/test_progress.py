"""Live progress and fast completion through ComfyUI's /ws event stream
(SPEC §4 Completion): genqd follows each ComfyUI backend's WebSocket with
its own clientId, writes the job's progress while it runs, and fetches
/history as soon as the stream says a prompt ended. /history stays the only
proof of completion, and polling it stays the fallback: with the stream
refused or stalled, jobs still finish."""

import json
import os
import signal
import sys
import time
import uuid

import harness
from harness import StackTestCase


class ProgressStreamTest(StackTestCase):
    backends = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("pia", tier="pro", credits="100")
        cls.sim = cls.stack.sim_url(0)

    def sim_control(self, **knobs):
        r = harness.request(self.sim + "/sim/control", method="POST", body=knobs)
        self.assertEqual(r.status, 200, r.body)

    def sim_stats(self):
        return harness.request(self.sim + "/sim/stats").json

    def genqd_log(self):
        with open(os.path.join(self.stack.logdir, "genqd.log"), errors="replace") as f:
            return f.read()

    def stream_up(self):
        """Whether genqd's last word on its stream to the simulator was that it opened."""
        last = None
        for line in self.genqd_log().splitlines():
            for event in ("ws_connected", "ws_lost", "ws_connect_failed", "ws_closed"):
                if f" {event} " in f" {line} " or f"event={event}" in line:
                    last = event
        return last == "ws_connected"

    def wait_stream(self, up, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stream_up() == up:
                return
            time.sleep(0.05)
        self.fail(f"genqd's stream never {'opened' if up else 'dropped'}")

    def test_1_progress_is_live_and_monotonic(self):
        self.wait_stream(up=True)
        # With binary preview frames mixed in, which genqd skips.
        self.sim_control(previews=True)
        try:
            done, seen = self.run_job(3000)
        finally:
            self.sim_control(previews=False)
        self.assertEqual(done["status"], "succeeded", done)
        # ComfyUI's progress events became the job's progress while it ran.
        self.assertTrue(any(p is not None and 0 < p < 1 for p in seen), seen)
        numbers = [p for p in seen if p is not None]
        self.assertEqual(numbers, sorted(numbers), "progress went backwards within an attempt")
        self.assertTrue(all(0 <= p < 1 for p in numbers), numbers)
        # Done means 1, and nothing else (lib/jobjson.c: progress 0..1).
        self.assertEqual(done["progress"], 1)
        # The stream was opened with genqd's id, the client_id its prompts carry.
        with open(os.path.join(self.stack.logdir, "sim1.log"), errors="replace") as f:
            self.assertIn("websocket open sid=genqd-1", f.read())
        sys.stderr.write(f"progress seen while running: {seen}\n")

    def test_2_stream_saves_history_polls_and_fallback_still_works(self):
        self.wait_stream(up=True)
        before = self.sim_stats()["history_requests"]
        done, _ = self.run_job(2000, "with the stream")
        self.assertEqual(done["status"], "succeeded", done)
        with_stream = self.sim_stats()["history_requests"] - before

        # The stream refused (sockets closed, upgrades answered 400):
        # /history polling alone must still finish jobs.
        self.sim_control(ws_off=True)
        try:
            self.wait_stream(up=False)
            before = self.sim_stats()["history_requests"]
            done, seen = self.run_job(2000, "without the stream")
            self.assertEqual(done["status"], "succeeded", done)
            self.assertEqual(done["progress"], 1)
            without_stream = self.sim_stats()["history_requests"] - before
        finally:
            self.sim_control(ws_off=False)
        sys.stderr.write(f"/history requests for one 2 s job: {with_stream} with the stream, "
                         f"{without_stream} without\n")
        # Counted, not timed: the stream's end event replaces most polls.
        self.assertGreaterEqual(with_stream, 1)
        self.assertLess(with_stream * 3, without_stream,
                        f"history requests: {with_stream} with the stream, {without_stream} without")

    def test_3_stalled_stream_falls_back_to_polling(self):
        # Open but silent (the stall seen on long ComfyUI jobs): the job
        # still ends, confirmed from /history by the slower fallback polls.
        self.wait_stream(up=True)
        self.sim_control(ws_stall=True)
        try:
            done, seen = self.run_job(600, "stalled stream")
        finally:
            self.sim_control(ws_stall=False)
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["progress"], 1)
        self.assertTrue(all(p in (0, None) for p in seen), seen)

    def test_4_other_tenants_events_are_ignored(self):
        # Another client of the same ComfyUI, without a client_id: ComfyUI
        # broadcasts its progress to every socket, genqd's included.
        with open(os.path.join(harness.SRCDIR, "examples", "txt2img.json")) as f:
            prompt = json.load(f)["input"]
        prompt["6"]["inputs"]["text"] = "someone else's SIM_MS=800"
        foreign = str(uuid.uuid4())
        r = harness.request(self.sim + "/prompt", method="POST",
                            body={"prompt": prompt, "prompt_id": foreign})
        self.assertEqual(r.status, 200, r.body)
        done, _ = self.run_job(300, "mine")
        self.assertEqual(done["status"], "succeeded", done)
        stats = self.sim_stats()
        # genq never touched the foreign prompt: it ran to success, unstopped.
        self.assertEqual(stats["submissions"].get(foreign), 1)
        hist = harness.request(self.sim + f"/history/{foreign}").json
        self.assertEqual(hist[foreign]["status"]["status_str"], "success")
        self.assertEqual(stats["interrupts"], 0)
        self.assertEqual(stats["deletes"], 0)

    def set_history_poll_ms(self, ms):
        """Rewrite genqd's history_poll_ms and reload it with SIGHUP."""
        self.stack.daemon_settings["history_poll_ms"] = ms
        self.stack.write_config()
        before = self.genqd_log().count("event=config_reloaded")
        for pid in self.stack._read_pids("genqd"):
            os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.genqd_log().count("event=config_reloaded") == before:
            self.assertLess(time.monotonic(), deadline, "genqd did not reload")
            time.sleep(0.05)

    def test_5_end_event_alone_brings_completion(self):
        # Polling all but off (a minute between polls): a job still ends at
        # once, because the stream's end event makes genqd ask /history.
        self.wait_stream(up=True)
        self.set_history_poll_ms(60000)
        try:
            before = self.sim_stats()["history_requests"]
            done, _ = self.run_job(1500, "event driven")
            asked = self.sim_stats()["history_requests"] - before
        finally:
            self.set_history_poll_ms(50)
        self.assertEqual(done["status"], "succeeded", done)
        # run_job gives up long before a minute: only the event can have
        # brought the /history request that confirmed the end.
        self.assertLessEqual(asked, 1 + 20, asked)
        sys.stderr.write(f"/history requests with polling at 60 s: {asked}\n")

if __name__ == "__main__":
    harness.main()
