"""GET /metrics against the real stack: the Prometheus text format 0.0.4
parsed line by line, request counters shared by the FastCGI pool rising with
requests, job gauges and histograms equal to what the database holds."""

import concurrent.futures
import os
import re

import harness
from harness import StackTestCase, load_workflow

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(" + NAME + r")(?:\{(.*)\})? (\S+)(?: (-?\d+))?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def unescape(v):
    out, i = [], 0
    while i < len(v):
        if v[i] == "\\":
            out.append({"\\": "\\", '"': '"', "n": "\n"}[v[i + 1]])
            i += 2
        else:
            out.append(v[i])
            i += 1
    return "".join(out)


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError(f"bad labels at {pos}: {text!r}")
        if m.group(1) in labels:
            raise ValueError(f"label {m.group(1)} twice: {text!r}")
        labels[m.group(1)] = unescape(m.group(2))
        pos = m.end()
    return labels


def parse_exposition(text):
    """Strictly parse the text format; returns ({family: type},
    {(name, frozenset(labels.items())): value})."""
    types, helps, samples = {}, set(), {}
    seen_samples_of = set()
    if not text.endswith("\n"):
        raise ValueError("the last line must end with a newline")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            if not re.fullmatch(NAME, name) or name in helps:
                raise ValueError(f"line {n}: HELP for {name} bad or repeated")
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[3] not in TYPES or parts[2] in types:
                raise ValueError(f"line {n}: bad TYPE line {line!r}")
            if parts[2] in seen_samples_of:
                raise ValueError(f"line {n}: TYPE after samples of {parts[2]}")
            types[parts[2]] = parts[3]
            continue
        if line.startswith("#") or line == "":
            raise ValueError(f"line {n}: unexpected {line!r}")
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"line {n}: not a sample: {line!r}")
        name, labels, value = m.group(1), parse_labels(m.group(2) or ""), m.group(3)
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                fam = name[:-len(suffix)]
        if fam not in types:
            raise ValueError(f"line {n}: {name} has no TYPE before it")
        if types[fam] == "histogram" and name == fam:
            raise ValueError(f"line {n}: bare histogram sample {name}")
        if name.endswith("_bucket") and "le" not in labels:
            raise ValueError(f"line {n}: bucket without le")
        seen_samples_of.add(fam)
        key = (name, frozenset(labels.items()))
        if key in samples:
            raise ValueError(f"line {n}: duplicate series {line!r}")
        samples[key] = float(value)
    return types, samples


def series(samples, name, **labels):
    """Series of one metric whose labels include the given ones."""
    want = set(labels.items())
    return {k: v for k, v in samples.items() if k[0] == name and want <= set(k[1])}


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


class MetricsTest(StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("meter", tier="pro", credits="100")
        cls.stack.genqctl("queue", "add", "gated", "--requires-approval")
        cls.jobs = []
        for i in range(3):
            r = harness.request(cls.url + "/v1/jobs", method="POST",
                                body=load_workflow(text="SIM_FAIL x" if i == 2 else f"m {i}"),
                                key=cls.key)
            assert r.status == 201, r.body
            cls.jobs.append(r.json["id"])
        r = harness.request(cls.url + "/v1/jobs", method="POST",
                            body=load_workflow(queue="gated", text="held"), key=cls.key)
        assert r.status == 201, r.body
        cls.held = r.json["id"]

    def setUp(self):
        for job_id in self.jobs:
            self.wait_terminal(self.key, job_id)

    def scrape(self):
        r = self.api("GET", "/metrics")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        return parse_exposition(r.body.decode("utf-8"))

    def test_format_and_families(self):
        types, samples = self.scrape()
        expect = {"genq_jobs": "gauge", "genq_queue_depth": "gauge",
                  "genq_queue_paused": "gauge", "genq_job_wait_seconds": "histogram",
                  "genq_job_run_seconds": "histogram", "genq_backend_up": "gauge",
                  "genq_backend_busy": "gauge", "genq_backend_draining": "gauge",
                  "genq_webhook_deliveries": "gauge", "genq_webhook_attempts_total": "counter",
                  "genq_http_requests_total": "counter"}
        for fam, typ in expect.items():
            self.assertEqual(types.get(fam), typ, fam)
        # No invented webhook data: series only when the outbox table exists.
        have = self.stack.scalar(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'genq' "
            "AND TABLE_NAME = 'webhook_outbox'") == "1"
        hooks = series(samples, "genq_webhook_deliveries")
        self.assertEqual(len(hooks), 3 if have else 0)
        if have:
            pending = self.stack.scalar(
                "SELECT COUNT(*) FROM webhook_outbox WHERE state = 'pending'")
            self.assertEqual(value(samples, "genq_webhook_deliveries", state="pending"),
                             float(pending))

    def test_request_counters_are_shared_by_the_pool_and_rise(self):
        _, before = self.scrape()
        # In parallel, so that several of the four workers answer.
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda _: self.api("GET", "/v1/me", key=self.key).status,
                                     range(12)))
        self.assertEqual(statuses, [200] * 12)
        for _ in range(3):
            self.assertEqual(self.api("GET", "/v1/me").status, 401)
            self.assertEqual(self.api("GET", "/v1/nowhere").status, 404)
        _, after = self.scrape()

        def delta(**labels):
            b = value(before, "genq_http_requests_total", **labels) or 0
            a = value(after, "genq_http_requests_total", **labels) or 0
            return a - b
        # Four FastCGI workers answered these: only shared counters add up.
        self.assertEqual(delta(route="/v1/me", code="200"), 12)
        self.assertEqual(delta(route="/v1/me", code="401"), 3)
        self.assertEqual(delta(route="unmatched", code="404"), 3)
        self.assertGreaterEqual(delta(route="/metrics", code="200"), 1)
        self.assertTrue(os.path.isfile(self.stack.path("run", "fcgi-metrics")))

    def test_job_gauges_match_the_database(self):
        _, samples = self.scrape()
        rows = self.stack.query("SELECT queue, status, COUNT(*) FROM jobs GROUP BY queue, status")
        self.assertTrue(rows)
        for queue, status, count in rows:
            self.assertEqual(value(samples, "genq_jobs", queue=queue, status=status),
                             float(count), (queue, status))
        total = sum(v for v in series(samples, "genq_jobs").values())
        self.assertEqual(total, float(self.stack.scalar("SELECT COUNT(*) FROM jobs")))
        self.assertEqual(value(samples, "genq_jobs", queue="image", status="failed"),
                         float(self.stack.scalar(
                             "SELECT COUNT(*) FROM jobs WHERE queue='image' AND status='failed'")))
        self.assertEqual(value(samples, "genq_queue_depth", queue="gated", state="held"), 1.0)
        self.assertEqual(value(samples, "genq_queue_paused", queue="image"), 0.0)

    def test_histograms_count_the_last_hours_jobs(self):
        _, samples = self.scrape()
        finished = float(self.stack.scalar(
            "SELECT COUNT(*) FROM jobs WHERE queue = 'image' AND started_at IS NOT NULL "
            "AND finished_at >= UTC_TIMESTAMP(6) - INTERVAL 1 HOUR"))
        self.assertGreaterEqual(finished, 3)
        for fam in ("genq_job_wait_seconds", "genq_job_run_seconds"):
            buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in
                              series(samples, fam + "_bucket", queue="image").items()))
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), fam)           # cumulative
            self.assertEqual(buckets[-1][0], float("inf"))
            self.assertEqual(buckets[-1][1], finished)
            self.assertEqual(value(samples, fam + "_count", queue="image"), finished)
        # The simulator runs each job for 200 ms.
        run_sum = value(samples, "genq_job_run_seconds_sum", queue="image")
        self.assertGreater(run_sum, 0.1 * finished)

    def test_backends_and_pause_show(self):
        self.stack.genqctl("backend", "drain", "sim2")
        self.stack.genqctl("queue", "pause", "gated")
        try:
            _, samples = self.scrape()
        finally:
            self.stack.genqctl("backend", "resume", "sim2")
            self.stack.genqctl("queue", "resume", "gated")
        self.assertEqual(value(samples, "genq_backend_up", backend="sim1"), 1.0)
        self.assertEqual(value(samples, "genq_backend_draining", backend="sim2"), 1.0)
        self.assertEqual(value(samples, "genq_backend_draining", backend="sim1"), 0.0)
        self.assertIn(value(samples, "genq_backend_busy", backend="sim1"), (0.0, 1.0))
        self.assertEqual(value(samples, "genq_queue_paused", queue="gated"), 1.0)

    def test_label_values_are_escaped(self):
        # genqctl refuses such names; the exposition must survive them anyway.
        weird = 'we"ird\\q\nx'
        self.stack.sql("INSERT INTO genq.queues (name) VALUES ('we\"ird\\\\q\\nx')")
        try:
            self.assertEqual(self.stack.scalar(
                "SELECT COUNT(*) FROM queues WHERE name LIKE 'we%'"), "1")
            _, samples = self.scrape()
            self.assertEqual(value(samples, "genq_queue_paused", queue=weird), 0.0)
            self.assertEqual(value(samples, "genq_jobs", queue=weird, status="queued"), 0.0)
        finally:
            self.stack.sql("DELETE FROM genq.queues WHERE name LIKE 'we%'")

    def test_parser_rejects_broken_text(self):
        # The checks above rely on this parser refusing what Prometheus refuses.
        bad = ["x 1",                                         # no TYPE
               "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2",  # duplicate series
               "# TYPE x gauge\nx{a=\"\"\"} 1",              # unescaped quote
               "# TYPE x gauge\nx 1\n# TYPE x gauge",        # TYPE twice
               "# TYPE h histogram\nh 1"]                    # bare histogram sample
        for text in bad:
            with self.assertRaises(ValueError, msg=text):
                parse_exposition(text + "\n")


if __name__ == "__main__":
    harness.main()
