"""Bad requests get the documented status and a problem+json body, and
leave nothing behind in the database."""

import json

import harness
from harness import StackTestCase, load_workflow


class BadRequestTest(StackTestCase):
    backends = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("carol", tier="pro", credits="10")

    def setUp(self):
        self.jobs_before = self.stack.scalar("SELECT COUNT(*) FROM jobs")
        self.ledger_before = self.stack.scalar("SELECT COUNT(*) FROM ledger")

    def tearDown(self):
        # A refused request writes nothing.
        self.assertEqual(self.stack.scalar("SELECT COUNT(*) FROM jobs"), self.jobs_before)
        self.assertEqual(self.stack.scalar("SELECT COUNT(*) FROM ledger"), self.ledger_before)

    def post(self, body, key=None, content_type="application/json", headers=None):
        h = {"Content-Type": content_type} if content_type else {}
        h.update(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body)
        return self.api("POST", "/v1/jobs", body=body, key=key or self.key, headers=h)

    def test_malformed_json_is_invalid_json(self):
        self.assertProblem(self.post('{"queue": "image", "input": {'), 400, "invalid_json")
        self.assertProblem(self.post("not json at all"), 400, "invalid_json")
        self.assertProblem(self.post('{"queue": "image"} trailing'), 400, "invalid_json")
        self.assertProblem(self.post(b'{"queue": "\xff\xfe", "input": {}}'), 400, "invalid_json")

    def test_deep_nesting_is_refused(self):
        deep = '{"queue": "image", "input": ' + "[" * 10000 + "]" * 10000 + "}"
        self.assertProblem(self.post(deep), 400, "invalid_json")

    def test_missing_fields_are_listed(self):
        p = self.assertProblem(self.post({}), 400, "invalid_request")
        fields = {e["field"] for e in p["errors"]}
        self.assertEqual(fields, {"queue", "input"})

    def test_wrong_types_are_listed(self):
        body = load_workflow(queue=7, priority="high", metadata=[1], input="x")
        p = self.assertProblem(self.post(body), 400, "invalid_request")
        fields = {e["field"] for e in p["errors"]}
        self.assertTrue({"queue", "priority", "metadata", "input"} <= fields, p)
        for e in p["errors"]:
            self.assertTrue(e["message"])

    def test_not_an_object_is_invalid_request(self):
        self.assertProblem(self.post("[1, 2, 3]"), 400, "invalid_request")

    def test_unknown_queue_is_invalid_request(self):
        p = self.assertProblem(self.post(load_workflow(queue="video9")), 400, "invalid_request")
        self.assertIn("queue", {e["field"] for e in p["errors"]})

    def test_oversize_body_is_payload_too_large(self):
        big = '{"queue": "image", "input": {"x": "' + "a" * (2 << 20) + '"}}'
        self.assertProblem(self.post(big), 413, "payload_too_large")

    def test_wrong_content_type_is_unsupported_media_type(self):
        r = self.post(load_workflow(), content_type="text/plain")
        self.assertProblem(r, 415, "unsupported_media_type")

    def test_missing_or_wrong_key_is_unauthorized(self):
        body = json.dumps(load_workflow())
        h = {"Content-Type": "application/json"}
        r = self.api("POST", "/v1/jobs", body=body, headers=h)
        self.assertProblem(r, 401, "unauthorized")
        self.assertIn("Bearer", r.headers.get("WWW-Authenticate", ""))
        r = self.api("POST", "/v1/jobs", body=body, key="gq_AAAAAAAA_" + "B" * 43, headers=h)
        self.assertProblem(r, 401, "unauthorized")
        r = self.api("POST", "/v1/jobs", body=body, headers=dict(h, Authorization="Basic Zm9vOmJhcg=="))
        self.assertProblem(r, 401, "unauthorized")
        r = self.api("POST", "/v1/jobs", body=body, headers=dict(h, Authorization="Bearer"))
        self.assertProblem(r, 401, "unauthorized")

    def test_unknown_and_malformed_job_ids_are_not_found(self):
        for job_id in ("0b0e3c4e-1f1a-4c8e-9d5b-1c2d3e4f5a6b", "not-an-id",
                       "'%20OR%201=1--", "x" * 300):
            self.assertProblem(self.api("GET", f"/v1/jobs/{job_id}", key=self.key),
                               404, "not_found")

    def test_unknown_route_and_wrong_method(self):
        self.assertProblem(self.api("GET", "/v1/nothing-here", key=self.key), 404, "not_found")
        r = self.api("DELETE", "/v1/jobs", key=self.key)
        self.assertProblem(r, 405, "method_not_allowed")

    def test_sql_metacharacters_are_plain_data(self):
        body = load_workflow(queue="image'; DROP TABLE jobs; --")
        self.assertProblem(self.post(body), 400, "invalid_request")
        self.assertEqual(self.stack.scalar("SELECT COUNT(*) FROM jobs"), self.jobs_before)

    def test_healthz_answers_ok(self):
        r = self.api("GET", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["status"], "ok")


if __name__ == "__main__":
    harness.main()
