"""ComfyUI backends over TLS, and by host name (SPEC §4): genqd talks to an
https:// backend for everything, its /ws event stream included, verifying
the server against [daemon] backend_ca_file (a private CA, as for a
self-signed ComfyUI behind nginx). Without that CA the verification fails:
the backend is marked down and gets no job. A backend addressed by host
name (http://localhost:PORT) gets its stream through libcurl's resolver.

The CA and the simulator's certificate are made at test time with the
openssl command line tool."""

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

import harness
from harness import StackTestCase, load_workflow
from stack import SRCDIR

sys.path.insert(0, os.path.join(SRCDIR, "tests", "sim"))
from testca import make_test_ca  # noqa: E402


class TLSBackendTest(StackTestCase):
    backends = 2

    @classmethod
    def setUpClass(cls):
        # The CA file must exist when genqd reads its configuration.
        cls.certdir = tempfile.mkdtemp(prefix="genq-e2e-tls-")
        cls.ca, crt, key = make_test_ca(cls.certdir)
        cls.daemon_settings = {"backend_ca_file": cls.ca}
        super().setUpClass()
        st = cls.stack
        cls.key = st.add_user("tia", tier="pro", credits="100")
        # sim1 again, TLS only, as https://127.0.0.1; sim2 by host name.
        st.stop("sim1")
        st.start_sim(0, ["--tls-cert", crt, "--tls-key", key])
        port1, port2 = st.state["sim_ports"][0], st.state["sim_ports"][1]
        cls.sim1 = f"https://127.0.0.1:{port1}"
        cls.sim2 = f"http://127.0.0.1:{port2}"   # the harness's own view of it
        cls.sim2_streams_before = harness.request(cls.sim2 + "/sim/stats").json["ws_opened"]
        st.sql(f"UPDATE backends SET url = '{cls.sim1}' WHERE name = 'sim1'", database="genq")
        st.sql(f"UPDATE backends SET url = 'http://localhost:{port2}' WHERE name = 'sim2'",
               database="genq")

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.certdir, ignore_errors=True)

    # ---- helpers -----------------------------------------------------------
    def sim1_stats(self):
        """The TLS simulator's counters, asked over TLS with the test CA."""
        ctx = ssl.create_default_context(cafile=self.ca)
        with urllib.request.urlopen(self.sim1 + "/sim/stats", timeout=10, context=ctx) as r:
            return json.loads(r.read())

    def sim2_stats(self):
        return harness.request(self.sim2 + "/sim/stats").json

    def genqd_log(self, name="genqd"):
        with open(os.path.join(self.stack.logdir, name + ".log"), errors="replace") as f:
            return f.read()

    def wait(self, what, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        self.fail(f"{what}: not within {timeout} s")

    def ctl(self, *args):
        self.stack.genqctl(*args)

    def assert_ran_with_live_progress(self, done, seen, sim_stats):
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(len(done["outputs"]), 1, done)
        # Progress between 0 and 1 while it ran comes only from the stream.
        self.assertTrue(any(p is not None and 0 < p < 1 for p in seen), seen)
        self.assertEqual(done["progress"], 1)
        self.assertGreaterEqual(sum(sim_stats()["submissions"].values()), 1)

    # ---- tests -------------------------------------------------------------
    def test_1_https_backend_streams_over_tls(self):
        self.ctl("backend", "drain", "sim2")
        try:
            # This simulator speaks TLS only: an open stream there went over
            # TLS, verified against the test CA.
            self.wait("genqd's stream to the TLS simulator", lambda: self.sim1_stats()["ws_opened"] >= 1)
            # (Failures before: genqd's plain http:// tries until it reloaded the URL.)
            refused = self.sim1_stats().get("tls_handshakes_failed", 0)
            done, seen = self.run_job(2500, "over tls")
            self.assert_ran_with_live_progress(done, seen, self.sim1_stats)
            self.assertEqual(self.sim1_stats().get("tls_handshakes_failed", 0), refused)
            self.assertNotIn("ws_unsupported", self.genqd_log())
        finally:
            self.ctl("backend", "resume", "sim2")

    def test_2_backend_by_host_name_gets_its_stream(self):
        self.ctl("backend", "drain", "sim1")
        try:
            # The URL changed to http://localhost:PORT: a new stream, resolved
            # by name (localhost is ::1 and 127.0.0.1; the simulator listens
            # on the latter only).
            self.wait("genqd's stream to localhost",
                      lambda: self.sim2_stats()["ws_opened"] > self.sim2_streams_before)
            before = sum(self.sim2_stats()["submissions"].values())
            done, seen = self.run_job(2500, "by host name")
            self.assert_ran_with_live_progress(done, seen, self.sim2_stats)
            self.assertGreater(sum(self.sim2_stats()["submissions"].values()), before)
        finally:
            self.ctl("backend", "resume", "sim1")

    def test_3_without_the_ca_the_backend_is_down_and_gets_no_job(self):
        st = self.stack
        self.ctl("backend", "drain", "sim2")
        st.stop("genqd")
        conf = st.write_genqd_config("genqd-noca", "genqd-1", backend_ca_file="")
        try:
            refused_before = self.sim1_stats().get("tls_handshakes_failed", 0)
            st.start_genqd("genqd-noca", conf)
            # Its probes fail verification: the simulator sees handshakes
            # aborted, and the backend is marked down.
            self.wait("sim1 marked down", lambda: st.scalar(
                "SELECT healthy FROM genq.backends WHERE name = 'sim1'") == "0")
            self.assertIn("backend_down backend=sim1", self.genqd_log("genqd-noca").replace("event=", ""))
            self.assertGreater(self.sim1_stats().get("tls_handshakes_failed", 0), refused_before)
            prompts_before = sum(self.sim1_stats()["submissions"].values())
            job = self.submit(self.key, load_workflow(text="never over an unverified link SIM_MS=100"))
            # Two more failed probes later, the job is still waiting.
            mark = self.sim1_stats()["tls_handshakes_failed"]
            self.wait("two more failed probes",
                      lambda: self.sim1_stats()["tls_handshakes_failed"] >= mark + 2)
            cur = self.api("GET", f"/v1/jobs/{job['id']}", key=self.key).json
            self.assertEqual(cur["status"], "queued", cur)
            self.assertEqual(sum(self.sim1_stats()["submissions"].values()), prompts_before)
            self.assertIn("ws_connect_failed backend=sim1", self.genqd_log("genqd-noca").replace("event=", ""))
        finally:
            st.stop("genqd-noca")
            st.start_genqd()
        # With the CA back, the same backend comes up and runs the job.
        done = self.wait_terminal(self.key, job["id"], timeout=40)
        self.assertEqual(done["status"], "succeeded", done)
        self.ctl("backend", "resume", "sim2")

    def test_4_a_ca_file_that_is_not_there_stops_genqd_at_start(self):
        conf = self.stack.write_genqd_config("genqd-badca", "genqd-bad",
                                             backend_ca_file=os.path.join(self.certdir, "missing.pem"))
        proc = subprocess.run([self.stack.bin("genqd"), "--config", conf], capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("backend_ca_file", proc.stderr)
        self.assertIn("missing.pem", proc.stderr)


if __name__ == "__main__":
    harness.main()
