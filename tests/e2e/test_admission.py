"""Admission limits under concurrency, against the real stack (SPEC §2, §3,
§5): max_active, credits, the shared submit token bucket, monthly quotas,
Idempotency-Key, and that a refused submit writes nothing but the rate-limit
bookkeeping.

Each test submits into a queue of its own that no backend serves, so its
jobs stay queued (active) for as long as the test needs them."""

import hashlib
import json
import threading
import time

import harness
from harness import StackTestCase, load_workflow

RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


class AdmissionTest(StackTestCase):

    tiers_made = set()

    def tier(self, name, max_active=1000, rate=100000, burst=100000, quotas=()):
        if name in self.tiers_made:
            return
        args = ["tier", "set", name, "--priority", "1", "--max-active", str(max_active),
                "--rate", str(rate), "--burst", str(burst)]
        for q in quotas:
            args += ["--quota", q]
        self.stack.genqctl(*args)
        self.tiers_made.add(name)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The queue of every test that needs nothing special of it.
        cls.stack.genqctl("queue", "add", "adm", "--price-per-job", "0.5")

    def queue(self, name, price="0.5"):
        self.stack.genqctl("queue", "add", name, "--price-per-job", price)
        return name

    def body(self, queue, text="admission"):
        return json.dumps(load_workflow(queue=queue, text=text)).encode()

    def post(self, key, body, headers=None):
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        return harness.request(self.url + "/v1/jobs", method="POST", body=body, key=key,
                               headers=hdrs, timeout=60)

    def burst(self, n, key, body, headers=None):
        """n submits released at once from n threads (real HTTP through nginx
        to the FastCGI pool); their responses in thread order."""
        gate = threading.Barrier(n)
        out = [None] * n

        def one(i):
            gate.wait()
            out[i] = self.post(key, body, headers)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    def user_id(self, name):
        return self.stack.scalar(f"SELECT id FROM users WHERE name = '{name}'")

    def count(self, sql):
        return int(self.stack.scalar(sql))

    def jobs_of(self, name):
        return self.count(f"SELECT COUNT(*) FROM jobs WHERE user_id = {self.user_id(name)}")

    def written(self, name):
        """Everything a submit of user `name` may write, rate bookkeeping aside."""
        uid = self.user_id(name)
        return {
            "jobs": self.jobs_of(name),
            "events": self.count("SELECT COUNT(*) FROM job_events e JOIN jobs j "
                                 f"ON j.seq = e.job_seq WHERE j.user_id = {uid}"),
            "ledger": self.count(f"SELECT COUNT(*) FROM ledger WHERE user_id = {uid}"),
            "balance": self.count(f"SELECT balance FROM users WHERE id = {uid}"),
            "idempotency": self.count(
                f"SELECT COUNT(*) FROM idempotency_keys WHERE user_id = {uid}"),
        }

    def assertRateHeaders(self, r, limit):
        for h in RATE_HEADERS:
            self.assertIsNotNone(r.headers.get(h), f"{h} missing: {r.status} {r.body}")
        self.assertEqual(int(r.headers["RateLimit-Limit"]), limit)
        remaining = int(r.headers["RateLimit-Remaining"])
        self.assertGreaterEqual(remaining, 0)
        self.assertLessEqual(remaining, limit)
        self.assertGreaterEqual(int(r.headers["RateLimit-Reset"]), 0)
        return remaining

    # ---- max_active --------------------------------------------------------
    def test_64_simultaneous_submits_with_max_active_5_admit_exactly_5(self):
        self.tier("cap5", max_active=5)
        key = self.stack.add_user("ann", tier="cap5", credits="1000")
        q = "adm"
        rs = self.burst(64, key, self.body(q))
        created = [r for r in rs if r.status == 201]
        refused = [r for r in rs if r.status != 201]
        self.assertEqual(len(created), 5, [r.status for r in rs])
        for r in refused:
            self.assertProblem(r, 429, "too_many_active_jobs")
            self.assertGreaterEqual(int(r.headers["Retry-After"]), 1)
        for r in rs:
            self.assertRateHeaders(r, 100000)
        self.assertEqual(self.jobs_of("ann"), 5)
        self.assertEqual(len({r.json["id"] for r in created}), 5)
        me = self.api("GET", "/v1/me", key=key).json
        self.assertEqual((me["active_jobs"], me["max_active"]), (5, 5))

    # ---- credits -----------------------------------------------------------
    def test_credits_for_exactly_3_jobs_admit_exactly_3_of_20(self):
        self.tier("roomy")
        key = self.stack.add_user("bea", tier="roomy", credits="3")
        q = self.queue("adm_credit", price="1")
        rs = self.burst(20, key, self.body(q))
        self.assertEqual(sorted(r.status for r in rs), [201] * 3 + [402] * 17)
        for r in rs:
            if r.status == 402:
                self.assertProblem(r, 402, "insufficient_credits")
        uid = self.user_id("bea")
        self.assertEqual(self.jobs_of("bea"), 3)
        self.assertEqual(self.count(f"SELECT balance FROM users WHERE id = {uid}"), 0)
        self.assertEqual(self.stack.query(
            f"SELECT kind, COUNT(*), SUM(amount) FROM ledger WHERE user_id = {uid} "
            "GROUP BY kind ORDER BY kind"),
            [["grant", "1", "3000000"], ["hold", "3", "-3000000"]])
        self.check_ledger_invariant()

    # ---- the token bucket ----------------------------------------------------
    def test_token_bucket_is_shared_by_every_handler_process(self):
        # 30 a minute: one token every 2 s, at most 5 in the bucket. The 20
        # requests at once are spread by nginx over the pool's 4 processes.
        self.tier("bucket", rate=30, burst=5)
        key = self.stack.add_user("cleo", tier="bucket", credits="100")
        q = "adm"
        rs = self.burst(20, key, self.body(q))
        created = [r for r in rs if r.status == 201]
        refused = [r for r in rs if r.status != 201]
        self.assertEqual(len(created), 5, [r.status for r in rs])
        remaining = sorted(self.assertRateHeaders(r, 5) for r in created)
        self.assertEqual(remaining, [0, 1, 2, 3, 4])
        waits = []
        for r in refused:
            self.assertProblem(r, 429, "rate_limited")
            self.assertEqual(self.assertRateHeaders(r, 5), 0)
            waits.append(int(r.headers["Retry-After"]))
            self.assertGreaterEqual(waits[-1], 1)
            self.assertLessEqual(waits[-1], 2)
        self.assertEqual(self.jobs_of("cleo"), 5)

        me = self.api("GET", "/v1/me", key=key).json
        self.assertEqual(me["rate_limit"]["limit"], 5)
        self.assertEqual(me["rate_limit"]["remaining"], 0)

        # A token comes back after Retry-After; then the bucket is empty again.
        time.sleep(max(waits))
        r = self.post(key, self.body(q, "after the wait"))
        self.assertEqual(r.status, 201, r.body)
        self.assertRateHeaders(r, 5)
        r = self.post(key, self.body(q, "right after"))
        self.assertProblem(r, 429, "rate_limited")
        self.assertEqual(self.jobs_of("cleo"), 6)

    # ---- monthly quota -------------------------------------------------------
    def test_monthly_quota_refuses_the_third_job_and_me_shows_the_use(self):
        q = self.queue("adm_quota")
        self.tier("quota2", quotas=[f"{q}=2"])
        key = self.stack.add_user("dana", tier="quota2", credits="100")
        first = self.post(key, self.body(q, "one"))
        self.assertEqual(first.status, 201, first.body)
        self.assertEqual(self.post(key, self.body(q, "two")).status, 201)
        before = self.written("dana")
        r = self.post(key, self.body(q, "three"))
        p = self.assertProblem(r, 403, "quota_exceeded")
        self.assertIn(q, p["detail"])
        self.assertRateHeaders(r, 100000)
        self.assertEqual(self.written("dana"), before)
        me = self.api("GET", "/v1/me", key=key).json
        self.assertEqual(me["quota"]["queues"][q], {"used": 2, "limit": 2})
        self.assertEqual(me["quota"]["queues"]["image"], {"used": 0, "limit": None})
        self.assertRegex(me["quota"]["resets_at"], r"^\d{4}-\d\d-01T00:00:00\.000Z$")

        # A canceled job gives its place back; other queues are not limited.
        r = self.api("POST", f"/v1/jobs/{first.json['id']}/cancel", key=key)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.post(key, self.body(q, "three again")).status, 201)
        self.assertProblem(self.post(key, self.body(q, "four")), 403, "quota_exceeded")
        me = self.api("GET", "/v1/me", key=key).json
        self.assertEqual(me["quota"]["queues"][q], {"used": 2, "limit": 2})

    # ---- Idempotency-Key -----------------------------------------------------
    def test_idempotent_replay_returns_the_first_answer_and_creates_nothing(self):
        self.tier("roomy")
        key = self.stack.add_user("eve", tier="roomy", credits="100")
        q = "adm"
        body = self.body(q, "replay me")
        k = {"Idempotency-Key": "order-4711"}
        first = self.post(key, body, k)
        self.assertEqual(first.status, 201, first.body)
        job_id = first.json["id"]
        self.assertEqual(first.headers["Location"], f"/v1/jobs/{job_id}")
        for _ in range(3):
            again = self.post(key, body, k)
            self.assertEqual(again.status, 201, again.body)
            self.assertEqual(again.body, first.body)
            self.assertEqual(again.headers["Location"], first.headers["Location"])
            self.assertEqual(again.headers.get("Idempotent-Replayed"), "true")
            self.assertRateHeaders(again, 100000)
        self.assertEqual(self.jobs_of("eve"), 1)
        self.assertEqual(self.count(f"SELECT COUNT(*) FROM jobs WHERE id = '{job_id}'"), 1)

        # The same key with another body; a new key; another user's same key.
        self.assertProblem(self.post(key, self.body(q, "something else"), k),
                           422, "idempotency_key_reused")
        other = self.post(key, self.body(q, "something else"), {"Idempotency-Key": "order-4712"})
        self.assertEqual(other.status, 201, other.body)
        self.assertNotEqual(other.json["id"], job_id)
        frank = self.stack.add_user("frank", tier="roomy", credits="10")
        theirs = self.post(frank, body, k)
        self.assertEqual(theirs.status, 201, theirs.body)
        self.assertNotEqual(theirs.json["id"], job_id)
        self.assertEqual(self.jobs_of("eve"), 2)

    def test_malformed_idempotency_keys_are_400(self):
        self.tier("roomy")
        key = self.stack.add_user("gil", tier="roomy", credits="10")
        q = "adm"
        for bad in ["x" * 256, "tab\there", "caf\u00e9".encode().decode("latin-1")]:
            with self.subTest(key=bad[:20]):
                r = self.post(key, self.body(q), {"Idempotency-Key": bad})
                p = self.assertProblem(r, 400, "invalid_request")
                self.assertEqual(p["errors"][0]["field"], "Idempotency-Key")
        ok = self.post(key, self.body(q), {"Idempotency-Key": "k" * 255})
        self.assertEqual(ok.status, 201, ok.body)
        self.assertEqual(self.jobs_of("gil"), 1)

    def test_20_concurrent_requests_with_one_new_key_create_one_job(self):
        self.tier("roomy")
        key = self.stack.add_user("hal", tier="roomy", credits="100")
        q = "adm"
        rs = self.burst(20, key, self.body(q, "only once"), {"Idempotency-Key": "race-1"})
        created = [r for r in rs if r.status == 201]
        self.assertTrue(created, [r.status for r in rs])
        for r in rs:
            if r.status != 201:
                self.assertProblem(r, 409, "idempotency_in_progress")
        self.assertEqual(len({r.body for r in created}), 1)
        self.assertEqual(self.jobs_of("hal"), 1)
        self.assertEqual(self.count(
            f"SELECT COUNT(*) FROM idempotency_keys WHERE user_id = {self.user_id('hal')} "
            "AND idem_key = 'race-1' AND state = 'done'"), 1)
        # Once settled, every retry gets the answer.
        again = self.post(key, self.body(q, "only once"), {"Idempotency-Key": "race-1"})
        self.assertEqual((again.status, again.body), (201, created[0].body))

    def test_in_flight_stale_and_expired_keys(self):
        self.tier("roomy")
        key = self.stack.add_user("joy", tier="roomy", credits="100")
        uid = self.user_id("joy")
        q = "adm"
        body = self.body(q, "rows")
        digest = hashlib.sha256(body).hexdigest()

        def row(k, state, age_s, h=digest):
            self.stack.sql(
                "INSERT INTO idempotency_keys (user_id, idem_key, request_hash, state, owner, "
                f"status, body, created_at, updated_at) VALUES ({uid}, '{k}', '{h}', '{state}', "
                "'00000000-0000-4000-8000-000000000000', 201, '{}', "
                f"UTC_TIMESTAMP(6) - INTERVAL {age_s} SECOND, "
                f"UTC_TIMESTAMP(6) - INTERVAL {age_s} SECOND)", database="genq")

        # A request still in flight: 409, and nothing is created.
        row("busy", "in_flight", 1)
        r = self.post(key, body, {"Idempotency-Key": "busy"})
        self.assertProblem(r, 409, "idempotency_in_progress")
        self.assertGreaterEqual(int(r.headers["Retry-After"]), 1)
        self.assertEqual(self.jobs_of("joy"), 0)
        # An in-flight claim whose handler died long ago is taken over.
        row("orphan", "in_flight", 120)
        r = self.post(key, body, {"Idempotency-Key": "orphan"})
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(self.stack.query(
            "SELECT state, owner FROM idempotency_keys "
            f"WHERE user_id = {uid} AND idem_key = 'orphan'"), [["done", r.json["id"]]])
        # A key older than 24 hours is forgotten, whatever its body was.
        row("old", "done", 25 * 3600, h="0" * 64)
        r = self.post(key, body, {"Idempotency-Key": "old"})
        self.assertEqual(r.status, 201, r.body)
        self.assertNotEqual(r.body, b"{}")
        self.assertEqual(self.jobs_of("joy"), 2)

    def test_a_refused_request_leaves_its_key_free_for_a_retry(self):
        self.tier("roomy")
        key = self.stack.add_user("ida", tier="roomy", credits="")
        q = self.queue("adm_idem_refused", price="2")
        body = self.body(q, "pay later")
        k = {"Idempotency-Key": "retry-after-topup"}
        self.assertProblem(self.post(key, body, k), 402, "insufficient_credits")
        self.assertEqual(self.written("ida")["idempotency"], 0)
        self.stack.genqctl("credits", "grant", "ida", "2")
        r = self.post(key, body, k)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(self.post(key, body, k).body, r.body)
        self.assertEqual(self.jobs_of("ida"), 1)

    # ---- refusals write nothing but the rate bookkeeping --------------------
    def test_refusals_write_nothing_but_the_rate_bookkeeping(self):
        free_q = self.queue("adm_refuse")
        zero_q = self.queue("adm_refuse_zero")
        self.tier("strict", max_active=1, rate=30, burst=3, quotas=[f"{zero_q}=0"])
        key = self.stack.add_user("jo", tier="strict", credits="1")
        before = self.written("jo")

        # Refusals before the rate step spend no token.
        bad = self.post(key, b'{"queue": 5}')
        self.assertProblem(bad, 400, "invalid_request")
        self.assertEqual(self.assertRateHeaders(bad, 3), 3)
        self.assertProblem(self.post(key, b"{", {"Idempotency-Key": "a"}), 400, "invalid_json")
        r = self.post(key, b"{}", {"Content-Type": "text/plain"})
        self.assertProblem(r, 415, "unsupported_media_type")
        self.assertRateHeaders(r, 3)
        self.stack.genqctl("queue", "pause", free_q)
        r = self.post(key, self.body(free_q), {"Idempotency-Key": "b"})
        self.assertProblem(r, 503, "queue_paused")
        self.assertEqual(self.assertRateHeaders(r, 3), 3)
        self.stack.genqctl("queue", "resume", free_q)
        self.assertEqual(self.written("jo"), before)
        self.assertEqual(self.count("SELECT COUNT(*) FROM rate_buckets "
                                    f"WHERE user_id = {self.user_id('jo')}"), 0)

        # Refusals after the rate step (quota) do spend one: three of them
        # empty the bucket, and the fourth submit is rate limited.
        for i in range(3):
            r = self.post(key, self.body(zero_q), {"Idempotency-Key": f"z{i}"})
            self.assertProblem(r, 403, "quota_exceeded")
            self.assertEqual(self.assertRateHeaders(r, 3), 2 - i)
        r = self.post(key, self.body(free_q))
        self.assertProblem(r, 429, "rate_limited")
        self.assertEqual(self.written("jo"), before)
        self.assertEqual(self.count("SELECT COUNT(*) FROM rate_buckets "
                                    f"WHERE user_id = {self.user_id('jo')}"), 1)

        # max_active comes before the rate in §3: with the bucket empty a
        # user at max_active hears about active jobs, not the rate.
        self.stack.sql(f"DELETE FROM rate_buckets WHERE user_id = {self.user_id('jo')}",
                       database="genq")
        job = self.post(key, self.body(free_q))
        self.assertEqual(job.status, 201, job.body)
        for _ in range(5):
            self.assertProblem(self.post(key, self.body(free_q)), 429, "too_many_active_jobs")
        # (2 left after the job; a slow run may have refilled one more.)
        me = self.api("GET", "/v1/me", key=key).json
        self.assertGreaterEqual(me["rate_limit"]["remaining"], 2)
        self.assertEqual(self.written("jo")["jobs"], 1)
        self.assertEqual(self.written("jo")["idempotency"], 0)

        # Credits: a job that needs more than the user has.
        self.assertEqual(self.api("POST", f"/v1/jobs/{job.json['id']}/cancel",
                                  key=key).status, 200)
        dear = self.queue("adm_refuse_dear", price="1.5")
        before = self.written("jo")
        self.assertProblem(self.post(key, self.body(dear), {"Idempotency-Key": "c"}),
                           402, "insufficient_credits")
        self.assertEqual(self.written("jo"), before)


if __name__ == "__main__":
    harness.main()
