"""`after` dependencies (SPEC §2, §4): a child waits while its parents run,
runs once they succeeded with their outputs handed to its backend (ComfyUI
/upload/image), and fails with dependency_failed, refunded, when one does
not; chains cascade; foreign and unknown parents are refused alike."""

import json
import time
import uuid

import harness
from harness import StackTestCase, load_workflow, request

REF = "genq:after/{}/outputs/{}"


def child_body(after, image_ref=REF.format(0, 0), prefix="child"):
    """A workflow that loads a parent's image and saves it again."""
    return {"queue": "image", "after": after, "input": {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_ref}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }}


class DependencyTest(StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("alice", tier="pro", credits="100")
        cls.other = cls.stack.add_user("bob", tier="pro", credits="10")

    # ---- helpers --------------------------------------------------------
    def job(self, job_id, key=None):
        r = self.api("GET", f"/v1/jobs/{job_id}", key=key or self.key)
        self.assertEqual(r.status, 200, r.body)
        return r.json

    def wait_status(self, job_id, statuses, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.05)
        self.fail(f"job {job_id} never reached {statuses}: {job}")

    def sim_stats(self):
        out = []
        for i in range(self.backends):
            r = request(self.stack.sim_url(i) + "/sim/stats")
            self.assertEqual(r.status, 200)
            out.append(r.json)
        return out

    def uploads(self):
        return [u for s in self.sim_stats() for u in s["uploads"]]

    def events(self, job_id):
        r = self.api("GET", f"/v1/jobs/{job_id}/events", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        body = r.json
        return body["events"] if isinstance(body, dict) else body

    def transitions(self, job_id):
        return [(e.get("from"), e.get("to")) for e in self.events(job_id)]

    def prompt_sent(self, job_id, backend):
        """The workflow genqd sent for the job's last attempt, from the backend's history."""
        prompt_id = self.stack.scalar(
            "SELECT a.prompt_id FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq "
            f"WHERE j.id = '{job_id}' ORDER BY a.attempt DESC LIMIT 1")
        i = int(backend.removeprefix("sim")) - 1
        r = request(self.stack.sim_url(i) + f"/history/{prompt_id}")
        self.assertEqual(r.status, 200)
        return r.json[prompt_id]["prompt"][2]

    def ledger_kinds(self, job_id):
        return [r[0] for r in self.stack.query(
            "SELECT l.kind FROM ledger l JOIN jobs j ON j.seq = l.job_seq "
            f"WHERE j.id = '{job_id}' ORDER BY l.id")]

    # ---- tests ----------------------------------------------------------
    def test_child_waits_then_runs_with_the_parents_image_uploaded(self):
        parent = self.submit(self.key, load_workflow(text="a parent SIM_MS=1500"))
        child = self.submit(self.key, child_body([parent["id"]]))
        self.assertEqual(child["status"], "waiting")
        self.assertEqual(child["after"], [parent["id"]])
        self.assertIsNone(child["queue_position"])

        self.wait_status(parent["id"], {"running"})
        self.assertEqual(self.job(child["id"])["status"], "waiting")

        done_parent = self.wait_terminal(self.key, parent["id"])
        self.assertEqual(done_parent["status"], "succeeded", done_parent)
        done = self.wait_terminal(self.key, child["id"])
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(len(done["outputs"]), 1)
        self.assertEqual(done["after"], [parent["id"]])
        self.assertGreaterEqual(done["started_at"], done_parent["finished_at"])
        self.assertEqual(self.transitions(child["id"])[:2],
                         [(None, "waiting"), ("waiting", "queued")])

        # The parent's very bytes reached the child's backend, and the
        # prompt named the uploaded file the way LoadImage reads it.
        want = done_parent["outputs"][0]["sha256"]
        name = f"{parent['id']}-0.png"
        got = [u for u in self.uploads() if u["name"] == name]
        self.assertTrue(got, self.uploads())
        self.assertEqual(got[-1]["sha256"], want)
        self.assertEqual(got[-1]["subfolder"], "genq")
        self.assertEqual(got[-1]["type"], "input")
        sent = self.prompt_sent(child["id"], done["backend"])
        self.assertEqual(sent["1"]["inputs"]["image"], f"genq/{name}")

        # The child's own output downloads.
        r = self.api("GET", f"/v1/jobs/{child['id']}/outputs/0", key=self.key)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body[:8], b"\x89PNG\r\n\x1a\n")

    def test_parent_failure_fails_the_chain_and_refunds_it(self):
        before = int(self.stack.scalar("SELECT balance FROM users WHERE name='alice'"))
        parent = self.submit(self.key, load_workflow(text="doomed SIM_FAIL SIM_MS=300"))
        child = self.submit(self.key, child_body([parent["id"]]))
        grandchild = self.submit(self.key, child_body([child["id"]]))
        self.assertEqual(grandchild["status"], "waiting")

        self.assertEqual(self.wait_terminal(self.key, parent["id"])["status"], "failed")
        for job_id, cause in ((child["id"], parent["id"]), (grandchild["id"], child["id"])):
            done = self.wait_terminal(self.key, job_id)
            self.assertEqual(done["status"], "failed", done)
            self.assertEqual(done["error"]["code"], "dependency_failed")
            self.assertFalse(done["error"]["retryable"])
            self.assertIn(cause, done["error"]["message"])
            self.assertEqual(done["attempts"], 0)
            self.assertEqual(done["cost"], {"held": 1, "charged": 0, "refunded": 1})
            self.assertEqual(self.ledger_kinds(job_id), ["hold", "release"])
            self.assertEqual(self.transitions(job_id)[-1], ("waiting", "failed"))
        after = int(self.stack.scalar("SELECT balance FROM users WHERE name='alice'"))
        self.assertEqual(before, after)   # the failed parent is refunded too

    def test_chain_of_three_runs_in_order_each_with_its_parents_output(self):
        a = self.submit(self.key, load_workflow(text="chain start SIM_MS=300"))
        b = self.submit(self.key, child_body([a["id"]], prefix="chain_b"))
        c = self.submit(self.key, child_body([b["id"]], prefix="chain_c"))
        self.assertEqual((b["status"], c["status"]), ("waiting", "waiting"))
        done = [self.wait_terminal(self.key, j["id"]) for j in (a, b, c)]
        self.assertEqual([d["status"] for d in done], ["succeeded"] * 3, done)
        self.assertGreaterEqual(done[1]["started_at"], done[0]["finished_at"])
        self.assertGreaterEqual(done[2]["started_at"], done[1]["finished_at"])
        names = {u["name"]: u["sha256"] for u in self.uploads()}
        self.assertEqual(names[f"{a['id']}-0.png"], done[0]["outputs"][0]["sha256"])
        self.assertEqual(names[f"{b['id']}-0.png"], done[1]["outputs"][0]["sha256"])

    def test_two_parents_and_any_reference_position(self):
        p1 = self.submit(self.key, load_workflow(text="first parent"))
        p2 = self.submit(self.key, load_workflow(text="second parent SIM_MS=600"))
        child = self.submit(self.key, child_body([p1["id"], p2["id"]], image_ref=REF.format(1, 0)))
        self.assertEqual(child["after"], [p1["id"], p2["id"]])
        done = self.wait_terminal(self.key, child["id"])
        self.assertEqual(done["status"], "succeeded", done)
        p2done = self.job(p2["id"])
        self.assertGreaterEqual(done["started_at"], p2done["finished_at"])
        sent = self.prompt_sent(child["id"], done["backend"])
        self.assertEqual(sent["1"]["inputs"]["image"], f"genq/{p2['id']}-0.png")

    def test_parent_already_succeeded_means_queued_at_once(self):
        parent = self.submit(self.key, load_workflow(text="early parent"))
        self.assertEqual(self.wait_terminal(self.key, parent["id"])["status"], "succeeded")
        child = self.submit(self.key, child_body([parent["id"]]))
        self.assertIn(child["status"], ("queued", "running"))
        self.assertEqual(self.wait_terminal(self.key, child["id"])["status"], "succeeded")

    def test_parent_already_failed_is_admitted_then_fails(self):
        parent = self.submit(self.key, load_workflow(text="fails first SIM_FAIL"))
        self.assertEqual(self.wait_terminal(self.key, parent["id"])["status"], "failed")
        child = self.submit(self.key, child_body([parent["id"]]))
        self.assertEqual(child["status"], "waiting")
        done = self.wait_terminal(self.key, child["id"])
        self.assertEqual(done["status"], "failed")
        self.assertEqual(done["error"]["code"], "dependency_failed")
        self.assertEqual(done["cost"]["refunded"], 1)

    def test_foreign_and_unknown_parents_are_refused_alike(self):
        theirs = self.submit(self.other, load_workflow(text="bob's job"))
        jobs_before = self.stack.scalar("SELECT COUNT(*) FROM jobs")
        balance = self.stack.scalar("SELECT balance FROM users WHERE name='alice'")
        answers = []
        for foreign in (theirs["id"], str(uuid.uuid4())):
            r = self.api("POST", "/v1/jobs", key=self.key, body=child_body([foreign]))
            self.assertProblem(r, 400, "invalid_request")
            answers.append(r.json)
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0]["errors"], [{"field": "after[0]", "message": "no such job"}])
        # Position is named; other fields are still checked in the same answer.
        mine = self.submit(self.key, load_workflow(text="mine"))
        r = self.api("POST", "/v1/jobs", key=self.key,
                     body=child_body([mine["id"], theirs["id"]]))
        self.assertProblem(r, 400, "invalid_request")
        self.assertEqual([e["field"] for e in r.json["errors"]], ["after[1]"])
        self.assertEqual(int(self.stack.scalar("SELECT COUNT(*) FROM jobs")), int(jobs_before) + 1)
        self.assertEqual(self.stack.scalar("SELECT balance FROM users WHERE name='alice'"),
                         str(int(balance) - 1_000_000))
        self.wait_terminal(self.key, mine["id"])
        self.wait_terminal(self.other, theirs["id"])

    def test_malformed_after_and_references_are_refused(self):
        parent = str(uuid.uuid4())
        cases = [
            (child_body("not a list"), "after"),
            (child_body([parent, parent]), "after[1]"),
            (child_body(["nope"]), "after[0]"),
            (child_body([str(uuid.uuid4()) for _ in range(17)]), "after"),
            (child_body([parent], image_ref=REF.format(1, 0)), "input"),
            (child_body([parent], image_ref="genq:after/0/outputs/x"), "input"),
        ]
        for body, field in cases:
            r = self.api("POST", "/v1/jobs", key=self.key, body=body)
            self.assertProblem(r, 400, "invalid_request")
            self.assertIn(field, [e["field"] for e in r.json["errors"]], (body["after"], r.json))

    def test_cancel_of_a_waiting_job_releases_its_hold_and_it_never_runs(self):
        parent = self.submit(self.key, load_workflow(text="slow parent SIM_MS=1500"))
        child = self.submit(self.key, child_body([parent["id"]]))
        r = self.api("POST", f"/v1/jobs/{child['id']}/cancel", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["status"], "canceled")
        self.assertEqual(self.wait_terminal(self.key, parent["id"])["status"], "succeeded")
        time.sleep(1.5)   # give genqd's dependency pass a chance to get it wrong
        done = self.job(child["id"])
        self.assertEqual(done["status"], "canceled")
        self.assertEqual(done["attempts"], 0)
        self.assertEqual(done["cost"], {"held": 1, "charged": 0, "refunded": 1})
        self.assertEqual(self.transitions(child["id"]), [(None, "waiting"), ("waiting", "canceled")])

    def test_reference_to_a_missing_output_fails_the_child(self):
        parent = self.submit(self.key, load_workflow(text="one output only"))
        child = self.submit(self.key, child_body([parent["id"]], image_ref=REF.format(0, 5)))
        done = self.wait_terminal(self.key, child["id"])
        self.assertEqual(done["status"], "failed", done)
        self.assertEqual(done["error"]["code"], "dependency_failed")
        self.assertIn("no output 5", done["error"]["message"])
        self.assertEqual(done["cost"]["refunded"], 1)

    def test_approval_of_a_held_child_waits_for_its_parent(self):
        st = self.stack
        st.genqctl("queue", "add", "gated", "--price-per-job", "1", "--requires-approval")
        st.genqctl("backend", "add", "gated1", "--type", "comfyui", "--url", st.sim_url(0),
                   "--queues", "gated")
        parent = self.submit(self.key, load_workflow(text="gate parent SIM_MS=1500"))
        body = child_body([parent["id"]])
        body["queue"] = "gated"
        child = self.submit(self.key, body)
        self.assertEqual(child["status"], "held")
        self.wait_status(parent["id"], {"running"})
        out = st.genqctl("job", "approve", child["id"]).stdout
        self.assertIn("approved: waiting", out)
        self.assertEqual(self.job(child["id"])["status"], "waiting")
        self.assertEqual(self.wait_terminal(self.key, parent["id"])["status"], "succeeded")
        done = self.wait_terminal(self.key, child["id"])
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(self.transitions(child["id"]),
                         [(None, "held"), ("held", "waiting"), ("waiting", "queued"),
                          ("queued", "running"), ("running", "succeeded")])

    def test_simulator_refuses_a_load_image_that_was_never_uploaded(self):
        body = child_body([])
        del body["after"]
        body["input"]["1"]["inputs"]["image"] = "genq/never-uploaded.png"
        done = self.wait_terminal(self.key, self.submit(self.key, body)["id"])
        self.assertEqual(done["status"], "failed")
        self.assertEqual(done["error"]["code"], "validation_error")


    def test_regenerate_keeps_after_and_checks_override_references(self):
        parent = self.submit(self.key, load_workflow(text="a parent to regenerate from"))
        child = self.submit(self.key, child_body([parent["id"]], prefix="regen"))
        self.assertEqual(self.wait_terminal(self.key, child["id"])["status"], "succeeded")
        r = self.api("POST", f"/v1/jobs/{child['id']}/regenerate", key=self.key)
        self.assertEqual(r.status, 201, r.body)
        again = r.json
        self.assertEqual(again["after"], [parent["id"]])
        self.assertEqual(again["regenerated_from"], child["id"])
        done = self.wait_terminal(self.key, again["id"])
        self.assertEqual(done["status"], "succeeded", done)
        # The parent's image went to the backend again for the new job.
        sent = self.prompt_sent(again["id"], done["backend"])
        self.assertEqual(sent["1"]["inputs"]["image"], f"genq/{parent['id']}-0.png")
        # An override may not point past the carried-over after list.
        before = self.stack.scalar("SELECT COUNT(*) FROM jobs")
        r = self.api("POST", f"/v1/jobs/{child['id']}/regenerate", key=self.key, body={
            "input_overrides": {"1": {"class_type": "LoadImage",
                                      "inputs": {"image": REF.format(3, 0)}}}})
        self.assertProblem(r, 400, "invalid_request")
        self.assertEqual(self.stack.scalar("SELECT COUNT(*) FROM jobs"), before)

if __name__ == "__main__":
    harness.main()
