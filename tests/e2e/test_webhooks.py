"""Webhooks (SPEC §7) from a real genqd to a real HTTP receiver: Standard
Webhooks signatures, per-job order, retries with the same message, every
attempt recorded on the job, no redirects followed, and non-public
destinations refused unless allow-listed (the test stack allows only
127.0.0.1/32)."""

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import harness
from harness import StackTestCase, load_workflow


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request. fail_first[path]
    = n answers the first n requests to path with 500."""

    def __init__(self):
        self.requests = []
        self.fail_first = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers), body))
                    left = receiver.fail_first.get(self.path, 0)
                    if left:
                        receiver.fail_first[self.path] = left - 1
                if self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", "/ok/after-redirect")
                elif left:
                    self.send_response(500)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path):
        with self.lock:
            return [r for r in self.requests if r[0] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def verify(secret, headers, body):
    """Standard Webhooks verification, as a receiver would do it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    sigs = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, s) for s in sigs)


class WebhookTest(StackTestCase):
    backends = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("hana", tier="pro", credits="100")
        cls.secret = cls.stack.genqctl("user", "webhook-secret", "hana").stdout.strip()
        cls.receiver = Receiver()

    @classmethod
    def tearDownClass(cls):
        cls.receiver.close()
        super().tearDownClass()

    def wait_for(self, what, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        self.fail(f"timed out waiting for {what}")

    def job(self, job_id):
        r = self.api("GET", f"/v1/jobs/{job_id}", key=self.key)
        self.assertEqual(r.status, 200, r.body)
        return r.json

    def test_started_and_completed_are_signed_and_in_order(self):
        path = "/ok/signed"
        job = self.submit(self.key, load_workflow(text="webhook me SIM_MS=1500", webhook=self.receiver.url(path)))
        self.assertEqual(job["webhook"]["url"], self.receiver.url(path))
        self.assertEqual(sorted(job["webhook"]["events"]), ["completed", "progress", "started"])
        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "succeeded", done)
        got = self.wait_for("the completed message", lambda: (
            r := self.receiver.received(path)) and
            json.loads(r[-1][2])["type"] == "job.completed" and r)
        messages = [json.loads(body) for _, _, body in got]
        types = [m["type"] for m in messages]
        self.assertEqual(types[0], "job.started", types)
        self.assertEqual(types[-1], "job.completed", types)
        self.assertEqual(types.count("job.started"), 1, types)
        self.assertEqual(types.count("job.completed"), 1, types)
        self.assertEqual(set(types), {"job.started", "job.progress", "job.completed"})
        # Progress messages come between, at most one per second of the 1.5 s run.
        progress = [m for m in messages if m["type"] == "job.progress"]
        self.assertTrue(1 <= len(progress) <= 3, types)
        self.assertTrue(all(0 <= m["data"]["progress"] < 1 for m in progress), progress)
        for (_, headers, body), message in zip(got, messages):
            headers = {k.lower(): v for k, v in headers.items()}
            self.assertTrue(verify(self.secret, headers, body), headers)
            self.assertTrue(headers["webhook-id"].startswith("msg_"))
            self.assertLess(abs(int(headers["webhook-timestamp"]) - time.time()), 60)
            self.assertEqual(message["data"]["id"], job["id"])
            self.assertTrue(message["timestamp"].endswith("Z"))
        self.assertEqual(messages[-1]["data"]["status"], "succeeded")
        self.assertEqual(len({h["webhook-id"] for _, h, _ in got}), len(got))
        # A tampered body does not verify with the same headers.
        _, headers, body = got[0]
        headers = {k.lower(): v for k, v in headers.items()}
        self.assertFalse(verify(self.secret, headers, body + b" "))
        # The job shows each message delivered on its first attempt.
        deliveries = self.wait_for("deliveries settled", lambda: (
            d := self.job(job["id"])["webhook"]["deliveries"]) and
            all(x["state"] == "delivered" for x in d) and d)
        self.assertEqual([d["event"] for d in deliveries if d["event"] != "progress"],
                         ["started", "completed"])
        self.assertTrue(all(d["attempts"] == 1 and d["last_status"] == 200 for d in deliveries))

    def test_failed_delivery_is_retried_with_the_same_message_and_order_kept(self):
        path = "/ok/flaky"
        self.receiver.fail_first[path] = 1
        job = self.submit(self.key, load_workflow(text="webhook retry", webhook=self.receiver.url(path),
                                                  webhook_events=["started", "completed"]))
        self.wait_terminal(self.key, job["id"])
        # The first started message gets a 500; completed must wait behind it.
        got = self.wait_for("three requests", lambda: len(self.receiver.received(path)) >= 3 and
                            self.receiver.received(path), timeout=30)
        types = [json.loads(b)["type"] for _, _, b in got]
        self.assertEqual(types, ["job.started", "job.started", "job.completed"])
        (_, h1, b1), (_, h2, b2) = got[0], got[1]
        self.assertEqual(h1["webhook-id"], h2["webhook-id"])
        self.assertEqual(b1, b2)
        for _, headers, body in got:
            self.assertTrue(verify(self.secret, {k.lower(): v for k, v in headers.items()}, body))
        deliveries = self.wait_for("deliveries settled", lambda: (
            d := self.job(job["id"])["webhook"]["deliveries"]) and
            all(x["state"] == "delivered" for x in d) and d)
        self.assertEqual([(d["event"], d["attempts"]) for d in deliveries],
                         [("started", 2), ("completed", 1)])
        rows = self.stack.query(
            "SELECT a.attempt, COALESCE(a.http_status, 0) FROM webhook_attempts a "
            "JOIN webhook_outbox o ON o.id = a.outbox_id JOIN jobs j ON j.seq = o.job_seq "
            f"WHERE j.id = '{job['id']}' AND o.event = 'started' ORDER BY a.attempt")
        self.assertEqual([(int(a), int(s)) for a, s in rows], [(1, 500), (2, 200)])

    def test_only_subscribed_events_are_sent(self):
        path = "/ok/completed-only"
        job = self.submit(self.key, load_workflow(text="webhook completed", webhook=self.receiver.url(path),
                                                  webhook_events=["completed"]))
        self.wait_terminal(self.key, job["id"])
        got = self.wait_for("completed", lambda: self.receiver.received(path))
        time.sleep(0.5)    # room for a wrongly sent extra message to show up
        got = self.receiver.received(path)
        self.assertEqual([json.loads(b)["type"] for _, _, b in got], ["job.completed"])

    def test_redirects_are_not_followed(self):
        job = self.submit(self.key, load_workflow(text="webhook redirect",
                                                  webhook=self.receiver.url("/redirect"),
                                                  webhook_events=["completed"]))
        self.wait_terminal(self.key, job["id"])
        d = self.wait_for("a failed attempt", lambda: (
            x := self.job(job["id"])["webhook"]["deliveries"]) and x[0]["attempts"] >= 1 and x[0])
        self.assertEqual(d["last_status"], 302)
        self.assertEqual(d["state"], "pending")       # retried later, never followed
        self.assertIn("redirect", d["last_error"])
        self.assertEqual(self.receiver.received("/ok/after-redirect"), [])

    def test_non_public_destination_is_refused(self):
        # 127.0.0.2 is loopback but outside the stack's allow-list.
        url = f"http://127.0.0.2:{self.receiver.port}/ok/private"
        job = self.submit(self.key, load_workflow(text="webhook private", webhook=url,
                                                  webhook_events=["completed"]))
        self.wait_terminal(self.key, job["id"])
        d = self.wait_for("a refused attempt", lambda: (
            x := self.job(job["id"])["webhook"]["deliveries"]) and x[0]["attempts"] >= 1 and x[0])
        self.assertIsNone(d["last_status"])
        self.assertIn("not public", d["last_error"])
        self.assertEqual(self.receiver.received("/ok/private"), [])


if __name__ == "__main__":
    harness.main()
