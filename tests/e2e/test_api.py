"""The read side of the API and regenerate, against the real stack:
GET /v1/jobs (filters, keyset pages), GET /v1/me, GET /v1/queues and
POST /v1/jobs/{id}/regenerate."""

import datetime
import json
import time
import urllib.parse

import harness
from harness import StackTestCase, load_workflow


class ApiTest(StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("lister", tier="pro", credits="100")
        cls.other = cls.stack.add_user("other", tier="pro", credits="10")
        # Seven finished jobs, oldest first; the fourth fails.
        cls.jobs = []
        for i in range(7):
            text = "SIM_FAIL please" if i == 3 else f"listing job {i}"
            r = harness.request(cls.url + "/v1/jobs", method="POST",
                                body=load_workflow(text=text), key=cls.key)
            assert r.status == 201, r.body
            cls.jobs.append(r.json["id"])
            time.sleep(0.02)            # distinct created_at milliseconds
        cls.newest_first = list(reversed(cls.jobs))

    def setUp(self):
        for job_id in self.jobs:
            self.wait_terminal(self.key, job_id)

    def listing(self, key=None, **params):
        path = "/v1/jobs"
        if params:
            path += "?" + urllib.parse.urlencode(params)
        r = self.api("GET", path, key=key or self.key)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.content_type, "application/json")
        return r.json

    # ---- GET /v1/jobs ----------------------------------------------------
    def test_listing_is_newest_first_with_full_job_objects(self):
        page = self.listing()
        ids = [j["id"] for j in page["jobs"]]
        self.assertEqual([j for j in ids if j in self.jobs], self.newest_first)
        self.assertIsNone(page["next_cursor"])
        first = page["jobs"][ids.index(self.jobs[0])]
        self.assertEqual(first["status"], "succeeded")
        for field in ("queue", "created_at", "outputs", "cost", "urls", "regenerated_from"):
            self.assertIn(field, first)

    def test_limit_and_cursor_walk_the_pages(self):
        seen, sizes, cursor = [], [], None
        while True:
            params = {"limit": 3, "queue": "image"}
            if cursor:
                params["cursor"] = cursor
            page = self.listing(**params)
            sizes.append(len(page["jobs"]))
            seen += [j["id"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            self.assertIsInstance(cursor, str)
            self.assertLess(len(sizes), 10)
        own = [j for j in seen if j in self.jobs]
        self.assertEqual(own, self.newest_first)
        if seen == own:                 # no other test's jobs in between
            self.assertEqual(sizes, [3, 3, 1])

    def test_filters(self):
        failed = self.listing(status="failed")["jobs"]
        self.assertIn(self.jobs[3], [j["id"] for j in failed])
        self.assertTrue(all(j["status"] == "failed" for j in failed))
        ok = self.listing(status="succeeded")["jobs"]
        self.assertNotIn(self.jobs[3], [j["id"] for j in ok])
        self.assertTrue(all(j["status"] == "succeeded" for j in ok))
        self.assertEqual(self.listing(queue="no-such-queue")["jobs"], [])
        self.assertEqual(self.listing(status="held")["jobs"], [])

        # created_after: strictly later; both Z and a percent-encoded offset.
        # created_at shows milliseconds (truncated): 1 ms on is after job 4.
        r = self.api("GET", f"/v1/jobs/{self.jobs[4]}", key=self.key)
        t = datetime.datetime.strptime(r.json["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        at = (t + datetime.timedelta(milliseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        later = [j["id"] for j in self.listing(created_after=at, queue="image")["jobs"]]
        self.assertEqual([j for j in later if j in self.jobs], self.newest_first[:2])
        offset = at.replace("Z", "+00:00")
        later2 = [j["id"] for j in self.listing(created_after=offset, queue="image")["jobs"]]
        self.assertEqual(later, later2)
        raw = self.api("GET", "/v1/jobs?created_after=" + at.replace(":", "%3a"), key=self.key)
        self.assertEqual(raw.status, 200, raw.body)
        self.assertEqual([j["id"] for j in raw.json["jobs"]], later)

    def test_bad_parameters_are_400_with_the_field(self):
        cases = [
            ("status=bogus", "status"), ("status=", "status"),
            ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"),
            ("limit=1.5", "limit"), ("limit=-1", "limit"), ("limit=007", "limit"),
            ("cursor=garbage", "cursor"), ("cursor=AAAAAAAAAAA", "cursor"),
            ("created_after=yesterday", "created_after"),
            ("limit=3&limit=4", "limit"), ("colour=red", "query"),
            ("status", "query"), ("queue=%zz", "query"), ("queue=ab%2", "query"), ("queue=a%00b", "query"),
        ]
        for query, field in cases:
            with self.subTest(query=query):
                r = self.api("GET", "/v1/jobs?" + query, key=self.key)
                p = self.assertProblem(r, 400, "invalid_request")
                self.assertIn(field, [e["field"] for e in p["errors"]], p)

    def test_another_user_sees_none_of_these_jobs(self):
        page = self.listing(key=self.other)
        self.assertFalse(set(j["id"] for j in page["jobs"]) & set(self.jobs))
        r = self.api("POST", f"/v1/jobs/{self.jobs[0]}/regenerate", key=self.other)
        self.assertProblem(r, 404, "not_found")
        self.assertProblem(self.api("GET", "/v1/jobs"), 401, "unauthorized")

    def test_admin_listing_sees_every_user(self):
        admin = self.stack.add_user("boss", tier="pro", credits="", admin=True)
        job = self.submit(self.other, load_workflow(text="other's job"))
        self.wait_terminal(self.other, job["id"])
        ids = [j["id"] for j in self.listing(key=admin, limit=100)["jobs"]]
        self.assertIn(job["id"], ids)
        self.assertIn(self.jobs[0], ids)

    # ---- GET /v1/me --------------------------------------------------------
    def test_me_reports_credits_holds_and_active_jobs(self):
        key = self.stack.add_user("mia", tier="pro", credits="10")
        self.stack.genqctl("queue", "add", "gated", "--price-per-job", "2.5",
                           "--requires-approval")
        me = self.api("GET", "/v1/me", key=key).json
        # The pro tier: bursts of 30 submits, no monthly quotas.
        self.assertEqual(me.pop("rate_limit"), {"limit": 30, "remaining": 30, "reset": 0})
        self.assertEqual(me.pop("quota")["queues"]["image"], {"used": 0, "limit": None})
        self.assertEqual(me, {"user": "mia", "tier": "pro", "priority": 1,
                              "credits": {"available": 10, "held": 0},
                              "active_jobs": 0, "max_active": 10})
        done = self.wait_terminal(key, self.submit(key, load_workflow())["id"])
        self.assertEqual(done["status"], "succeeded")
        held = self.submit(key, load_workflow(queue="gated"))
        self.assertEqual(held["status"], "held")
        me = self.api("GET", "/v1/me", key=key).json
        self.assertEqual(me["credits"], {"available": 6.5, "held": 2.5})
        self.assertEqual(me["active_jobs"], 1)
        r = self.api("POST", f"/v1/jobs/{held['id']}/cancel", key=key)
        self.assertEqual(r.status, 200, r.body)
        me = self.api("GET", "/v1/me", key=key).json
        self.assertEqual(me["credits"], {"available": 9, "held": 0})
        self.assertEqual(me["active_jobs"], 0)
        self.assertProblem(self.api("POST", "/v1/me", key=key, body={}), 405,
                           "method_not_allowed")

    # ---- GET /v1/queues ------------------------------------------------------
    def test_queues_counts_backends_and_medians(self):
        key = self.stack.add_user("quinn", tier="pro", credits="20")
        self.stack.genqctl("queue", "add", "review", "--requires-approval")
        a = self.submit(key, load_workflow(queue="review"))
        b = self.submit(key, load_workflow(queue="review"))
        self.assertEqual(self.api("POST", f"/v1/jobs/{b['id']}/cancel", key=key).status, 200)

        r = self.api("GET", "/v1/queues", key=key)
        self.assertEqual(r.status, 200, r.body)
        queues = {q["name"]: q for q in r.json["queues"]}
        review = queues["review"]
        self.assertEqual(review, {
            "name": "review", "paused": False, "requires_approval": True,
            "held": 1, "waiting": 0, "queued": 0, "running": 0,
            "succeeded": 0, "failed": 0, "canceled": 1, "expired": 0,
            "backends": {"up": 0, "busy": 0, "total": 0},
            "median_wait_s": None, "median_run_s": None})

        image = queues["image"]
        self.assertFalse(image["requires_approval"])
        self.assertEqual(image["backends"]["total"], 2)
        self.assertEqual(image["backends"]["up"], 2)
        self.assertLessEqual(image["backends"]["busy"], 2)
        db_ok = int(self.stack.scalar(
            "SELECT COUNT(*) FROM jobs WHERE queue='image' AND status='succeeded' "
            "AND finished_at >= UTC_TIMESTAMP(6) - INTERVAL 1 HOUR"))
        self.assertGreaterEqual(image["succeeded"], 6)
        self.assertLessEqual(image["succeeded"], db_ok)
        self.assertGreaterEqual(image["failed"], 1)
        self.assertGreater(image["median_run_s"], 0)
        self.assertGreaterEqual(image["median_wait_s"], 0)
        self.api("POST", f"/v1/jobs/{a['id']}/cancel", key=key)
        self.assertProblem(self.api("GET", "/v1/queues"), 401, "unauthorized")

    # ---- POST /v1/jobs/{id}/regenerate --------------------------------------
    def test_regenerate_with_overrides_makes_a_linked_job(self):
        original = self.jobs[0]
        node = load_workflow(text="a different prompt")["input"]["6"]
        r = self.api("POST", f"/v1/jobs/{original}/regenerate", key=self.key,
                     body={"input_overrides": {"6": node}})
        self.assertEqual(r.status, 201, r.body)
        job = r.json
        self.assertEqual(r.headers["Location"], f"/v1/jobs/{job['id']}")
        self.assertNotEqual(job["id"], original)
        self.assertEqual(job["regenerated_from"], original)
        self.assertEqual(job["queue"], "image")
        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["regenerated_from"], original)
        old_input = json.loads(self.stack.scalar(
            f"SELECT input FROM jobs WHERE id = '{original}'"))
        new_input = json.loads(self.stack.scalar(
            f"SELECT input FROM jobs WHERE id = '{job['id']}'"))
        self.assertEqual(new_input["6"]["inputs"]["text"], "a different prompt")
        self.assertEqual(old_input["6"]["inputs"]["text"], "listing job 0")
        del new_input["6"], old_input["6"]
        self.assertEqual(new_input, old_input)
        # The same admission: a hold and its settlement in the ledger.
        kinds = [row[0] for row in self.stack.query(
            "SELECT l.kind FROM ledger l JOIN jobs j ON j.seq = l.job_seq "
            f"WHERE j.id = '{job['id']}' ORDER BY l.id")]
        self.assertEqual(kinds, ["hold", "release", "charge"])

    def test_regenerate_without_body_and_bad_bodies(self):
        r = self.api("POST", f"/v1/jobs/{self.jobs[1]}/regenerate", key=self.key)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json["regenerated_from"], self.jobs[1])
        self.wait_terminal(self.key, r.json["id"])
        path = f"/v1/jobs/{self.jobs[1]}/regenerate"
        p = self.assertProblem(self.api("POST", path, key=self.key,
                                        body={"input_overrides": 5}), 400, "invalid_request")
        self.assertEqual([e["field"] for e in p["errors"]], ["input_overrides"])
        p = self.assertProblem(self.api("POST", path, key=self.key, body={"queue": "x"}),
                               400, "invalid_request")
        self.assertEqual([e["field"] for e in p["errors"]], ["queue"])
        self.assertProblem(self.api("POST", path, key=self.key, body="{nope",
                                    headers={"Content-Type": "application/json"}),
                           400, "invalid_json")
        self.assertProblem(self.api("POST", path, key=self.key, body="x=1",
                                    headers={"Content-Type": "text/plain"}),
                           415, "unsupported_media_type")
        self.assertProblem(self.api("POST", "/v1/jobs/0b8e4c1e-7c2a-4d3f-9a1b-2c3d4e5f6a7b"
                                    "/regenerate", key=self.key), 404, "not_found")
        self.assertProblem(self.api("GET", path, key=self.key), 405, "method_not_allowed")

    def test_regenerate_refused_by_admission_leaves_nothing(self):
        key = self.stack.add_user("poor", tier="pro", credits="1")
        job = self.submit(key, load_workflow())
        self.wait_terminal(key, job["id"])
        before = self.stack.scalar("SELECT COUNT(*) FROM jobs")
        r = self.api("POST", f"/v1/jobs/{job['id']}/regenerate", key=key)
        self.assertProblem(r, 402, "insufficient_credits")
        self.assertEqual(self.stack.scalar("SELECT COUNT(*) FROM jobs"), before)


if __name__ == "__main__":
    harness.main()
