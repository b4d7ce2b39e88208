"""What the C simulators' comparison tests (test_comfysim.py,
test_oaisim.py) share: a simulator process with a keep-alive connection,
and a test class that starts the Python simulator and the C one side by
side, to send both the same requests."""

import http.client
import json
import os
import signal
import subprocess
import tempfile
import unittest


class SimProcess:
    """One simulator started with --port 0 (its `listening port=N` line
    read), and a keep-alive connection to it."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv + ["--port", "0"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening port="), line
        self.port = int(line.split("=")[1])
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def exchange(self, method, path, body=None, headers=None):
        """(response, body bytes); a dict or list body goes as JSON. The
        connection is dropped after an error and when the server ends it
        (a stream ends that way, the Python servers' without saying so)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            r = self.conn.getresponse()
            data = r.read()
        except Exception:
            self.conn.close()
            raise
        if r.will_close or (r.getheader("Content-Type") or "").startswith("text/event-stream"):
            self.conn.close()
        return r, data

    def stop(self):
        """SIGTERM; the exit status."""
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(10)
        self.proc.stdout.close()
        return rc


class PairTest(unittest.TestCase):
    """Starts cls.py and cls.c, each made by cls.start(python, folder), in
    a temporary folder each; both must end cleanly on SIGTERM."""

    csim = None                  # the C simulator's path
    python_sim = None            # the Python simulator's path

    @classmethod
    def start(cls, python, folder):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        if not os.access(cls.csim, os.X_OK):
            raise AssertionError(f"{cls.csim} is not built (set GENQ_BUILDDIR)")
        cls.tmp = tempfile.TemporaryDirectory(prefix="simpair_")
        cls.py = cls.start(True, os.path.join(cls.tmp.name, "py"))
        try:
            cls.c = cls.start(False, os.path.join(cls.tmp.name, "c"))
        except BaseException:
            cls.py.stop()
            raise
        cls.sims = (cls.py, cls.c)

    @classmethod
    def tearDownClass(cls):
        rcs = [s.stop() for s in cls.sims]
        cls.tmp.cleanup()
        assert rcs == [0, 0], f"SIGTERM should end both cleanly: {rcs}"
