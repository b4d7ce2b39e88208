"""The browser job page (SPEC §10): its static page and the public view it
polls, reached with no API key. The job id is the capability: it shows that
one job's status and outputs and nothing private."""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid

import harness
from harness import StackTestCase, load_workflow, request

PRIVATE = ("metadata", "cost", "user", "webhook", "input", "workflow", "urls",
           "backend", "priority", "max_attempts", "regenerated_from", "after")


class JobPageTest(StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("carol", tier="pro", credits="50")

    def render(self, url):
        """The page's DOM after its scripts ran, from a real headless Chromium."""
        chromium = shutil.which("chromium")
        self.assertIsNotNone(chromium, "chromium is not installed (./dev installs it)")
        profile = tempfile.mkdtemp(prefix="genq-chromium-")
        try:
            proc = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                 "--virtual-time-budget=5000", "--dump-dom", url],
                capture_output=True, text=True, timeout=60)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        return proc.stdout

    def test_page_renders_the_job_in_headless_chromium(self):
        job = self.submit(self.key, load_workflow(text="a harbour in fog"))
        done = self.wait_terminal(self.key, job["id"])
        dom = self.render(done["urls"]["page"])
        self.assertRegex(dom, r'<span id="status"[^>]*>succeeded</span>')
        self.assertIn(f'<code id="job-id">{job["id"]}</code>', dom)
        # The output is shown inline, loaded from the public output URL.
        srcs = re.findall(r'<img[^>]+src="([^"]+)"', dom)
        self.assertEqual(srcs, [f"{self.url}/v1/public/jobs/{job['id']}/outputs/0"])
        failed = self.submit(self.key, load_workflow(text="SIM_FAIL on the page"))
        self.wait_terminal(self.key, failed["id"])
        dom = self.render(f"{self.url}/job.html?id={failed['id']}")
        self.assertRegex(dom, r'<span id="status"[^>]*>failed</span>')
        self.assertIn('<code id="error-code">execution_error</code>', dom)

    def test_queue_dashboard_renders_in_headless_chromium(self):
        job = self.submit(self.key, load_workflow(text="a dashboard job"))
        self.assertEqual(self.wait_terminal(self.key, job["id"])["status"], "succeeded")
        self.stack.genqctl("queue", "add", "video")
        self.stack.genqctl("queue", "pause", "video")
        dom = self.render(f"{self.url}/queues.html#key={self.key}")
        rows = dict(re.findall(r'<tr data-queue="([a-z]+)">(.*?)</tr>', dom))
        self.assertEqual(sorted(rows), ["image", "video"], dom[-3000:])
        image, video = rows["image"], rows["video"]
        succeeded = int(re.search(r'<td class="num succeeded">(\d+)</td>', image).group(1))
        self.assertGreaterEqual(succeeded, 1)
        self.assertIn('<td class="num backends">2 · 0 · 2</td>', image)
        self.assertIn('<td class="state">open</td>', image)
        self.assertIn('<td class="state paused">paused</td>', video)
        self.assertIn('<td class="num backends">0 · 0 · 0</td>', video)
        # No key, or a wrong one: the page asks for one and shows no table.
        dom = self.render(f"{self.url}/queues.html")
        self.assertRegex(dom, r'<form id="key-form">')
        self.assertRegex(dom, r'<table id="queues" hidden')
        dom = self.render(f"{self.url}/queues.html#key=gq_00000000_wrong")
        self.assertIn("did not accept", dom)
        self.assertRegex(dom, r'<table id="queues" hidden')

    def public(self, job_id):
        return self.api("GET", f"/v1/public/jobs/{job_id}")

    def test_page_and_public_view_of_a_finished_job_need_no_key(self):
        job = self.submit(self.key, load_workflow(text="a lighthouse at dusk"))
        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "succeeded", done)

        page = request(done["urls"]["page"])
        self.assertEqual(page.status, 200)
        self.assertEqual(page.content_type, "text/html")
        self.assertIn(b'<script src="job.js"></script>', page.body)
        script = self.api("GET", "/job.js")
        self.assertEqual(script.status, 200)
        self.assertIn(b"/v1/public/jobs/", script.body)
        self.assertNotIn(b"innerHTML", script.body)

        r = self.public(job["id"])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.content_type, "application/json")
        self.assertEqual(r.headers.get("Cache-Control"), "no-store")
        view = r.json
        self.assertEqual(view["id"], job["id"])
        self.assertEqual(view["queue"], "image")
        self.assertEqual(view["status"], "succeeded")
        self.assertEqual(view["attempts"], 1)
        self.assertIsNone(view["error"])
        self.assertIsNone(view["queue_position"])
        for field in ("created_at", "started_at", "finished_at"):
            self.assertEqual(view[field], done[field])
        for field in PRIVATE:
            self.assertNotIn(field, view)

        self.assertEqual(len(view["outputs"]), 1)
        out = view["outputs"][0]
        self.assertEqual(out["index"], 0)
        self.assertEqual(out["content_type"], "image/png")
        self.assertEqual(out["url"],
                         f"{self.url}/v1/public/jobs/{job['id']}/outputs/0")
        public_file = request(out["url"])
        self.assertEqual(public_file.status, 200)
        self.assertEqual(public_file.content_type, "image/png")
        private_file = self.api("GET", f"/v1/jobs/{job['id']}/outputs/0", key=self.key)
        self.assertEqual(private_file.status, 200)
        digest = hashlib.sha256(public_file.body).hexdigest()
        self.assertEqual(digest, hashlib.sha256(private_file.body).hexdigest())
        self.assertEqual(digest, done["outputs"][0]["sha256"])
        self.assertEqual(len(public_file.body), out["bytes"])

    def test_failed_job_shows_its_error(self):
        job = self.submit(self.key, load_workflow(text="SIM_FAIL please"))
        self.wait_terminal(self.key, job["id"])
        view = self.public(job["id"]).json
        self.assertEqual(view["status"], "failed")
        self.assertEqual(set(view["error"]), {"code", "message"})
        self.assertEqual(view["error"]["code"], "execution_error")
        self.assertEqual(view["outputs"], [])

    def test_unknown_or_malformed_id_is_not_found(self):
        for path in (f"/v1/public/jobs/{uuid.uuid4()}", "/v1/public/jobs/not-a-uuid",
                     f"/v1/public/jobs/{uuid.uuid4()}/outputs/0",
                     "/v1/public/jobs/not-a-uuid/outputs/0"):
            self.assertProblem(self.api("GET", path), 404, "not_found")

    def test_only_the_job_and_its_outputs_are_public(self):
        job = self.submit(self.key, load_workflow())
        self.wait_terminal(self.key, job["id"])
        for path in ("/v1/public/jobs", f"/v1/public/jobs/{job['id']}/events",
                     f"/v1/public/jobs/{job['id']}/outputs/7"):
            self.assertProblem(self.api("GET", path), 404, "not_found")
        r = self.api("POST", f"/v1/public/jobs/{job['id']}", body={})
        self.assertProblem(r, 405, "method_not_allowed")
        # Without a key the authenticated routes stay closed.
        self.assertProblem(self.api("GET", f"/v1/jobs/{job['id']}"), 401, "unauthorized")

    def test_one_jobs_id_does_not_reveal_another(self):
        first = self.submit(self.key, load_workflow(text="first"))
        dave = self.stack.add_user("dave", tier="pro", credits="5")
        second = self.submit(dave, load_workflow(text="second"))
        self.wait_terminal(self.key, first["id"])
        self.wait_terminal(dave, second["id"])
        view = self.public(second["id"]).json
        self.assertEqual(view["id"], second["id"])
        self.assertNotIn(first["id"].encode(), self.public(second["id"]).body)
        for out in view["outputs"]:
            self.assertIn(f"/v1/public/jobs/{second['id']}/", out["url"])


if __name__ == "__main__":
    harness.main()
