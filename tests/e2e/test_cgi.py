"""genq-fcgi as a plain CGI program: one request from the environment and
standard input, the answer on standard output, against the real database."""

import json
import os
import subprocess

import harness
from harness import StackTestCase, load_workflow


class PlainCgiTest(StackTestCase):
    backends = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("cgi-user", tier="pro", credits="10")

    def cgi(self, method, uri, body=b"", key=None, content_type=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": method,
               "REQUEST_URI": uri, "SCRIPT_NAME": "", "PATH_INFO": uri.split("?")[0],
               "QUERY_STRING": uri.partition("?")[2], "SERVER_PROTOCOL": "HTTP/1.1",
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1"}
        if content_type:
            env["CONTENT_TYPE"] = content_type
        if key:
            env["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        proc = subprocess.run([self.stack.bin("genq-fcgi"), "--config", self.stack.config_path],
                              input=body, capture_output=True, env=env, timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(headers.get("status", "200").split()[0])
        return status, headers, payload

    def test_submit_and_read_a_job_over_cgi(self):
        body = json.dumps(load_workflow(text="cgi fox")).encode()
        status, headers, payload = self.cgi("POST", "/v1/jobs", body, key=self.key,
                                            content_type="application/json")
        self.assertEqual(status, 201, payload)
        job = json.loads(payload)
        self.assertEqual(headers["location"], f"/v1/jobs/{job['id']}")
        status, headers, payload = self.cgi("GET", f"/v1/jobs/{job['id']}", key=self.key)
        self.assertEqual(status, 200, payload)
        self.assertEqual(json.loads(payload)["id"], job["id"])
        # genqd runs it like any other job.
        self.assertEqual(self.wait_terminal(self.key, job["id"])["status"], "succeeded")

    def test_errors_over_cgi_are_problem_json(self):
        status, headers, payload = self.cgi("POST", "/v1/jobs", b"{", key=self.key,
                                            content_type="application/json")
        self.assertEqual(status, 400)
        self.assertTrue(headers["content-type"].startswith("application/problem+json"))
        self.assertEqual(json.loads(payload)["code"], "invalid_json")
        status, _, payload = self.cgi("GET", "/v1/jobs/not-an-id", key=self.key)
        self.assertEqual(status, 404)
        status, _, payload = self.cgi("GET", "/v1/jobs/not-an-id")
        self.assertEqual(status, 401)

    def test_healthz_over_cgi(self):
        status, _, payload = self.cgi("GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(payload)["status"], "ok")


if __name__ == "__main__":
    harness.main()
