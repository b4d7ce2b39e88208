"""The admin API against the real stack: approve and reject held jobs (with
their credits), pause and resume a queue, drain and undrain a backend, grant
credits; admin keys only, unknown names and ids 404."""

import uuid

import harness
from harness import StackTestCase, load_workflow


class AdminTest(StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = cls.stack.add_user("boss", tier="pro", credits="", admin=True)
        cls.key = cls.stack.add_user("alice", tier="pro", credits="100")
        ctl = cls.stack.genqctl
        ctl("queue", "add", "reviewed", "--requires-approval", "--price-per-job", "2")
        ctl("backend", "add", "sim1-reviewed", "--type", "comfyui",
            "--url", cls.stack.sim_url(0), "--queues", "reviewed")
        # Two backends for one queue: draining one sends everything to the other.
        ctl("queue", "add", "drainq", "--price-per-job", "1")
        for i, name in enumerate(("bd1", "bd2")):
            ctl("backend", "add", name, "--type", "comfyui",
                "--url", cls.stack.sim_url(i), "--queues", "drainq")

    def admin_post(self, path, body=None, key=None):
        return self.api("POST", "/v1/admin" + path, body=body, key=key or self.admin)

    def available(self, key=None):
        r = self.api("GET", "/v1/me", key=key or self.key)
        self.assertEqual(r.status, 200, r.body)
        return r.json["credits"]["available"]

    def events(self, job_id):
        r = self.api("GET", f"/v1/jobs/{job_id}/events", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        return r.json["events"]

    def held_job(self, text):
        job = self.submit(self.key, load_workflow(queue="reviewed", text=text))
        self.assertEqual(job["status"], "held")
        return job

    # ---- approve and reject ----------------------------------------------
    def test_approve_queues_the_job_and_it_runs_and_is_charged(self):
        job = self.held_job("approve me")
        r = self.admin_post(f"/jobs/{job['id']}/approve")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["id"], job["id"])
        self.assertIn(r.json["status"], ("queued", "running", "succeeded"))
        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "succeeded")
        self.assertEqual(done["cost"], {"held": 2, "charged": 2, "refunded": 0})
        steps = [(e["from"], e["to"], e["actor"]) for e in self.events(job["id"])]
        self.assertEqual(steps[1], ("held", "queued", "admin:boss"))
        # Approving it again is a conflict, not a second transition.
        self.assertProblem(self.admin_post(f"/jobs/{job['id']}/approve"), 409, "conflict")

    def test_reject_cancels_and_refunds_in_full(self):
        before = self.available()
        job = self.held_job("reject me")
        self.assertEqual(self.available(), before - 2)
        r = self.admin_post(f"/jobs/{job['id']}/reject", body={"reason": "not this one"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["status"], "canceled")
        self.assertEqual(r.json["cost"], {"held": 2, "charged": 0, "refunded": 2})
        self.assertEqual(r.json["error"]["code"], "rejected")
        self.assertEqual(self.available(), before)
        last = self.events(job["id"])[-1]
        self.assertEqual((last["from"], last["to"], last["actor"], last["reason"]),
                         ("held", "canceled", "admin:boss", "not this one"))
        rows = self.stack.query(
            "SELECT l.kind, l.amount, l.actor FROM ledger l JOIN jobs j ON j.seq = l.job_seq "
            f"WHERE j.id = '{job['id']}' ORDER BY l.id")
        self.assertEqual(rows, [["hold", "-2000000", "user:alice"],
                                ["release", "2000000", "admin:boss"]])
        self.assertProblem(self.admin_post(f"/jobs/{job['id']}/reject"), 409, "conflict")
        self.assertProblem(self.admin_post(f"/jobs/{job['id']}/approve"), 409, "conflict")

    def test_reject_body_is_checked(self):
        job = self.held_job("bad reason")
        self.assertProblem(self.admin_post(f"/jobs/{job['id']}/reject", body={"why": "x"}),
                           400, "invalid_request")
        self.assertProblem(self.admin_post(f"/jobs/{job['id']}/reject",
                                           body={"reason": "x" * 513}), 400, "invalid_request")
        self.assertProblem(self.admin_post(f"/jobs/{job['id']}/reject", body="{"),
                           415, "unsupported_media_type")
        r = self.api("POST", f"/v1/admin/jobs/{job['id']}/reject", body="{", key=self.admin,
                     headers={"Content-Type": "application/json"})
        self.assertProblem(r, 400, "invalid_json")
        # Nothing of that changed the job.
        self.assertEqual(self.api("GET", f"/v1/jobs/{job['id']}", key=self.key).json["status"],
                         "held")
        self.assertEqual(self.admin_post(f"/jobs/{job['id']}/reject").status, 200)

    def test_genqctl_and_the_api_are_one_implementation(self):
        job = self.held_job("ctl approves")
        self.stack.genqctl("job", "approve", job["id"])
        self.assertProblem(self.admin_post(f"/jobs/{job['id']}/approve"), 409, "conflict")
        r = self.stack.genqctl("job", "reject", job["id"], check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not held", r.stderr)
        self.assertEqual(self.wait_terminal(self.key, job["id"])["status"], "succeeded")

    # ---- who may ----------------------------------------------------------
    def test_only_admin_keys(self):
        job = self.held_job("not yours to approve")
        paths = [f"/jobs/{job['id']}/approve", f"/jobs/{job['id']}/reject",
                 "/queues/image/pause", "/queues/image/resume",
                 "/backends/sim1/drain", "/backends/sim1/undrain", "/credits"]
        for path in paths:
            self.assertProblem(self.admin_post(path, key=self.key), 403, "forbidden")
            r = self.api("POST", "/v1/admin" + path)
            self.assertProblem(r, 401, "unauthorized")
        self.assertProblem(self.admin_post("/credits", key=self.key,
                                           body={"user": "alice", "amount": "1000"}),
                           403, "forbidden")
        self.assertEqual(self.api("GET", f"/v1/jobs/{job['id']}", key=self.key).json["status"],
                         "held")
        self.assertEqual(self.stack.scalar("SELECT paused FROM queues WHERE name = 'image'"), "0")
        self.assertEqual(self.stack.scalar("SELECT draining FROM backends WHERE name = 'sim1'"),
                         "0")
        # Only GET is not a way around it.
        r = self.api("GET", "/v1/admin/queues/image/pause", key=self.admin)
        self.assertProblem(r, 405, "method_not_allowed")
        self.assertEqual(r.headers["Allow"], "POST")

    def test_unknown_things_are_404(self):
        cases = [f"/jobs/{uuid.uuid4()}/approve", f"/jobs/{uuid.uuid4()}/reject",
                 "/jobs/not-a-job/approve", "/queues/nope/pause", "/queues/nope/resume",
                 "/queues/bad%20name/pause", "/queues/" + "q" * 33 + "/pause",
                 "/backends/nope/drain", "/backends/nope/undrain"]
        for path in cases:
            self.assertProblem(self.admin_post(path), 404, "not_found")
        self.assertProblem(self.admin_post("/credits", body={"user": "nobody", "amount": "1"}),
                           404, "not_found")
        self.assertProblem(self.admin_post("/frobnicate"), 404, "not_found")

    # ---- queues -----------------------------------------------------------
    def test_pause_refuses_submits_and_resume_takes_them_again(self):
        r = self.admin_post("/queues/image/pause")
        try:
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json["name"], "image")
            self.assertIs(r.json["paused"], True)
            before = self.available()
            refused = self.api("POST", "/v1/jobs", body=load_workflow(text="paused"), key=self.key)
            self.assertProblem(refused, 503, "queue_paused")
            self.assertEqual(self.available(), before)
            # Pausing twice is harmless.
            self.assertIs(self.admin_post("/queues/image/pause").json["paused"], True)
        finally:
            r = self.admin_post("/queues/image/resume")
        self.assertEqual(r.status, 200, r.body)
        self.assertIs(r.json["paused"], False)
        job = self.submit(self.key, load_workflow(text="resumed"))
        self.assertEqual(self.wait_terminal(self.key, job["id"])["status"], "succeeded")

    # ---- backends ---------------------------------------------------------
    def test_drained_backend_gets_no_new_jobs(self):
        r = self.admin_post("/backends/bd1/drain")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["name"], "bd1")
        self.assertIs(r.json["draining"], True)
        self.assertEqual(r.json["queues"], ["drainq"])
        try:
            jobs = [self.submit(self.key, load_workflow(queue="drainq", text=f"drain {i}"))
                    for i in range(4)]
            done = [self.wait_terminal(self.key, j["id"]) for j in jobs]
            self.assertEqual([d["status"] for d in done], ["succeeded"] * 4)
            self.assertEqual({d["backend"] for d in done}, {"bd2"})
        finally:
            r = self.admin_post("/backends/bd1/undrain")
        self.assertEqual(r.status, 200, r.body)
        self.assertIs(r.json["draining"], False)
        self.assertEqual(self.stack.scalar("SELECT draining FROM backends WHERE name = 'bd1'"), "0")

    # ---- credits ----------------------------------------------------------
    def test_grant_moves_the_balance_through_the_ledger(self):
        self.stack.add_user("carol", tier="starter", credits="")
        r = self.admin_post("/credits", body={"user": "carol", "amount": "12.5",
                                              "reason": "welcome"})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json, {"user": "carol", "granted": 12.5,
                                  "credits": {"available": 12.5, "held": 0}})
        r = self.admin_post("/credits", body={"user": "carol", "amount": 3})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["credits"]["available"], 15.5)
        self.assertEqual(self.stack.query(
            "SELECT kind, amount, actor, COALESCE(note, '-') FROM ledger l "
            "JOIN users u ON u.id = l.user_id WHERE u.name = 'carol' ORDER BY l.id"),
            [["grant", "12500000", "admin:boss", "welcome"],
             ["grant", "3000000", "admin:boss", "-"]])

    def test_grant_refuses_bad_bodies(self):
        bad = [{"user": "alice", "amount": "-1"}, {"user": "alice", "amount": "0"},
               {"user": "alice", "amount": "1.1234567"}, {"user": "alice", "amount": "ten"},
               {"user": "alice", "amount": 1.5}, {"user": "alice", "amount": -3},
               {"user": "alice"}, {"amount": "1"}, {"user": 7, "amount": "1"},
               {"user": "alice", "amount": "1", "extra": True},
               {"user": "alice", "amount": "1", "reason": "r" * 257}, ["alice", "1"],
               {"user": "alice", "amount": "99999999999999999999"}]
        before = self.stack.scalar("SELECT COUNT(*) FROM ledger")
        for body in bad:
            self.assertProblem(self.admin_post("/credits", body=body), 400, "invalid_request")
        self.assertProblem(self.admin_post("/credits", body="user=alice"),
                           415, "unsupported_media_type")
        self.assertProblem(self.admin_post("/credits"), 415, "unsupported_media_type")
        self.assertEqual(self.stack.scalar("SELECT COUNT(*) FROM ledger"), before)


if __name__ == "__main__":
    harness.main()
