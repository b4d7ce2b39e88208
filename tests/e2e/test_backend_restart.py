"""A backend restart that forgets its history while jobs run (SPEC §4): one
simulator forgets (its queue, running prompt and history vanish, as in a
ComfyUI restart), the other crashes and a new one starts on the same port.
genqd notices the prompts the backends no longer know, records those attempts
as lost (or the backend as unreachable while it is gone), retries them with
new prompt ids, never resubmits one prompt id, and every job ends succeeded
with its credits settled."""

import random
import sys
import threading
import time

import crashcheck
import harness
from harness import StackTestCase, load_workflow, request
from stack import wait_for

JOBS = 50


class BackendRestartTest(StackTestCase):
    backends = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.stack.genqctl("tier", "set", "bktest", "--priority", "1", "--max-active", "5000",
                          "--rate", "100000", "--burst", "100000")
        cls.stack.genqctl("queue", "set", "image", "--max-attempts", "5")
        cls.key = cls.stack.add_user("bkuser", tier="bktest", credits="100000")

    def control(self, i, body):
        r = request(self.stack.sim_url(i) + "/sim/control", method="POST", body=body)
        self.assertEqual(r.status, 200, r.body)

    def pending(self, i):
        r = request(self.stack.sim_url(i) + "/sim/stats")
        return r.json["queue_pending"] + (r.json["running"] is not None) if r.status == 200 else 0

    def test_forgotten_prompts_are_retried_never_duplicated(self):
        st = self.stack
        rng = random.Random(5)
        ids = []

        def submitter():
            for i in range(JOBS):
                body = load_workflow(text=f"bk job {i} SIM_MS={rng.randrange(200, 600)}")
                ids.append(self.submit(self.key, body)["id"])
                time.sleep(0.05)

        t = threading.Thread(target=submitter)
        t.start()
        # sim1 forgets everything while it holds genq's prompts.
        wait_for("sim1 to hold two prompts", lambda: self.pending(0) >= 2, timeout=20)
        self.control(0, {"forget": True})
        # sim2 crashes with prompts on it; a new one starts on its port.
        wait_for("sim2 to hold two prompts", lambda: self.pending(1) >= 2, timeout=20)
        r = request(st.sim_url(1) + "/sim/control", method="POST", body={"crash": True})
        self.assertEqual(r.status, 200, r.body)
        wait_for("sim2 to exit", lambda: not st.running("sim2"))
        st.stop("sim2")   # reaps it
        time.sleep(1.0)
        st.start_sim(1)
        t.join()

        wait_for("every job to end", lambda: st.scalar(
            "SELECT COUNT(*) FROM jobs WHERE status NOT IN "
            "('succeeded','failed','canceled','expired')") == "0", timeout=75, interval=0.25)
        summary = crashcheck.check_all(self, self.key, ids, once=False)
        codes = dict(st.query(
            "SELECT error_code, COUNT(*) FROM job_attempts WHERE outcome = 'retry' "
            "GROUP BY error_code"))
        print(f"\ntest_backend_restart {summary} retried={codes}", file=sys.stderr)
        # The forgotten prompts were found out as lost, and retried.
        self.assertIn("lost", codes)
        self.assertGreaterEqual(sum(int(n) for n in codes.values()), 3)


if __name__ == "__main__":
    harness.main()
