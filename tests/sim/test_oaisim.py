#!/usr/bin/env python3
"""The C simulator (tests/sim/oaisim) says the same things on the wire as
openai_sim.py: both are started with the same flags, sent the same
requests, and their answers compared (status, content type, JSON keys and
value types, whole error bodies, the event sequence of a stream, the
counters of /sim/stats). The answers' words differ by design (each is
deterministic per request body on its own); their counts must not. The
binary comes from $GENQ_BUILDDIR.

Run: GENQ_BUILDDIR=build python3 tests/sim/test_oaisim.py
"""

import base64
import concurrent.futures
import http.client
import json
import os
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simpair import PairTest, SimProcess  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BUILDDIR = os.environ.get("GENQ_BUILDDIR", os.path.join(HERE, "..", "..", "build"))
CSIM = os.path.join(BUILDDIR, "tests", "sim", "oaisim")
FLAGS = ["--token-ms", "1", "--run-ms", "10", "--tokens", "6"]


class Proc(SimProcess):
    """One simulator process and a keep-alive connection to it."""

    def __init__(self, argv, log):
        self.log = log
        super().__init__(argv + ["--log", log] + FLAGS)

    def request(self, method, path, body=None, headers=None):
        r, data = self.exchange(method, path, body, headers)
        return r.status, r.getheader("Content-Type"), data, r

    def json(self, method, path, body=None, headers=None):
        status, ctype, data, _ = self.request(method, path, body, headers)
        return status, ctype, (json.loads(data) if data else None)

    def stats(self):
        return self.json("GET", "/sim/stats")[2]

    def control(self, **knobs):
        return self.json("POST", "/sim/control", knobs)[2]


def shape(v):
    """Keys and value types, recursively."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(x) for x in v]
    return type(v).__name__


def sse_events(raw):
    """The data: payloads of a text/event-stream body, in order."""
    out = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def chat(text, **extra):
    return {"model": "sim-llm", "messages": [{"role": "user", "content": text}], **extra}


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    return struct.unpack(">II", data[16:24])


class SameWireTest(PairTest):
    csim = CSIM

    @classmethod
    def start(cls, python, folder, *extra):
        return Proc(([sys.executable, os.path.join(HERE, "openai_sim.py")] if python else [CSIM])
                    + list(extra), folder + ".log")

    def setUp(self):
        for s in self.sims:
            s.control(fail_next=0, http_500_next=0, http_503_next=0, hang=False, loading=False,
                      delay_ms=0)

    def both(self, method, path, body=None, headers=None):
        """(py, c) answers as (status, content type, body, response); status
        and type must agree."""
        a, b = (s.request(method, path, body, headers) for s in self.sims)
        self.assertEqual(a[:2], b[:2], f"{method} {path} {body!r:.200}: {a[:3]} vs {b[:3]}")
        return a, b

    def same_error(self, method, path, body, status):
        a, b = self.both(method, path, body)
        self.assertEqual(a[0], status, a)
        self.assertEqual(json.loads(a[2]), json.loads(b[2]), f"{method} {path} {body!r:.200}")

    def test_models_and_health(self):
        a, b = self.both("GET", "/v1/models")
        ja, jb = json.loads(a[2]), json.loads(b[2])
        self.assertEqual(shape(ja), shape(jb))
        for m in ja["data"] + jb["data"]:
            m.pop("created")
        self.assertEqual(ja, jb)
        a, b = self.both("GET", "/health")
        self.assertEqual(json.loads(a[2]), json.loads(b[2]))
        self.assertEqual(a[3].getheader("Server"), b[3].getheader("Server"))

    def test_chat_answers_have_the_same_shape_and_length(self):
        for body in (chat("hello SIM_TOKENS=5"), chat("capped SIM_TOKENS=9", max_tokens=3),
                     {"messages": [{"role": "system", "content": "be brief"},
                                   {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}):
            a, b = self.both("POST", "/v1/chat/completions", body)
            self.assertEqual(a[0], 200)
            ja, jb = json.loads(a[2]), json.loads(b[2])
            self.assertEqual(shape(ja), shape(jb))
            for j in (ja, jb):
                self.assertTrue(j["id"].startswith("chatcmpl-"))
                self.assertEqual(j["object"], "chat.completion")
            words = [len(j["choices"][0]["message"]["content"].split()) for j in (ja, jb)]
            self.assertEqual(words[0], words[1])
            self.assertEqual(ja["usage"]["completion_tokens"], words[0])
            self.assertEqual(jb["usage"]["completion_tokens"], words[1])
            self.assertEqual(ja["choices"][0]["finish_reason"], jb["choices"][0]["finish_reason"])
            self.assertEqual(ja["model"], jb["model"])
        self.assertEqual(json.loads(a[2])["model"], "sim-llm")   # absent: the first model
        # Deterministic per request body.
        again = self.c.json("POST", "/v1/chat/completions", chat("hello SIM_TOKENS=5"))[2]
        first = self.c.json("POST", "/v1/chat/completions", chat("hello SIM_TOKENS=5"))[2]
        self.assertEqual(again["choices"][0]["message"]["content"],
                         first["choices"][0]["message"]["content"])

    def test_streams_send_the_same_events(self):
        body = chat("stream SIM_TOKENS=4", stream=True, stream_options={"include_usage": True})
        a, b = self.both("POST", "/v1/chat/completions", body)
        ea, eb = sse_events(a[2]), sse_events(b[2])
        self.assertEqual([shape(e) for e in ea], [shape(e) for e in eb])
        self.assertEqual(len(ea), 1 + 4 + 1 + 1 + 1)   # role, tokens, finish, usage, [DONE]
        self.assertEqual(ea[-1], "[DONE]")
        self.assertEqual([e["choices"][0]["finish_reason"] for e in ea[:-2]],
                         [e["choices"][0]["finish_reason"] for e in eb[:-2]])
        self.assertEqual(eb[-2]["usage"]["completion_tokens"], 4)
        self.assertEqual(len({e["id"] for e in eb[:-1]}), 1)
        self.assertEqual(a[3].getheader("Cache-Control"), b[3].getheader("Cache-Control"))
        # SIM_FAIL: an error event halfway, then the end of the stream.
        a, b = self.both("POST", "/v1/chat/completions", chat("SIM_FAIL SIM_TOKENS=4", stream=True))
        ea, eb = sse_events(a[2]), sse_events(b[2])
        self.assertEqual([shape(e) for e in ea], [shape(e) for e in eb])
        self.assertEqual(ea[-1], eb[-1])
        self.assertEqual(eb[-1]["error"]["type"], "server_error")

    def test_refusals_are_the_same(self):
        for body, status in (
                ({"messages": []}, 400),
                ({"messages": [{"role": "wizard", "content": "x"}]}, 400),
                ({"messages": [{"role": "user"}]}, 400),
                (chat("x") | {"model": "gpt-9"}, 404),
                (chat("x") | {"model": 7}, 400),
                (chat("x") | {"max_tokens": 0}, 400),
                (chat("x") | {"max_completion_tokens": 1.5}, 400),
                (chat("x") | {"stream": "yes"}, 400),
                (chat("x") | {"stream": None}, 400),
                (chat("please SIM_400"), 400),
                (chat("please SIM_503"), 503),
                ([1, 2], 400),
                ({"messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}]}, 400)):
            self.same_error("POST", "/v1/chat/completions", body, status)
        self.same_error("POST", "/v1/chat/completions", "{not json", 400)
        self.same_error("GET", "/v1/nothing", None, 404)
        self.same_error("DELETE", "/v1/models", None, 404)

    def test_images(self):
        for fmt in ("b64_json", "url"):
            body = {"prompt": "a red fox", "size": "512x512", "n": 2, "response_format": fmt, "seed": 3}
            a, b = self.both("POST", "/v1/images/generations", body)
            self.assertEqual(a[0], 200)
            ja, jb = json.loads(a[2]), json.loads(b[2])
            self.assertEqual(shape(ja), shape(jb))
            for j, sim in ((ja, self.py), (jb, self.c)):
                self.assertEqual(len(j["data"]), 2)
                for item in j["data"]:
                    self.assertEqual(item["revised_prompt"], "a red fox")
                    if fmt == "b64_json":
                        png = base64.b64decode(item["b64_json"])
                    else:
                        path = item["url"].split(str(sim.port), 1)[1]
                        st, ct, png, _ = sim.request("GET", path)
                        self.assertEqual((st, ct), (200, "image/png"))
                    self.assertEqual(png_size(png), (64, 64))
        for body, status in (({"size": "512x512"}, 400), ({"prompt": "x", "n": 11}, 400),
                             ({"prompt": "x", "size": "3x3"}, 400),
                             ({"prompt": "x", "response_format": "gif"}, 400),
                             ({"prompt": "x", "model": "nope"}, 404),
                             ({"prompt": "SIM_400"}, 400), ({"prompt": "SIM_FAIL"}, 500)):
            self.same_error("POST", "/v1/images/generations", body, status)
        self.same_error("GET", "/files/none.png", None, 404)

    def test_knobs(self):
        for s in self.sims:
            s.control(http_500_next=1)
        self.same_error("POST", "/v1/chat/completions", chat("x"), 500)
        for s in self.sims:
            s.control(http_503_next=1)
        self.same_error("POST", "/v1/chat/completions", chat("x"), 503)
        for s in self.sims:
            s.control(fail_next=1)
        self.same_error("POST", "/v1/chat/completions", chat("x"), 500)
        for s in self.sims:
            s.control(loading=True)
        self.same_error("GET", "/health", None, 503)
        for s in self.sims:
            s.control(loading=False)
        a, b = (s.control() for s in self.sims)
        self.assertEqual(a, b)
        a, b = self.both("GET", "/v1/models")      # back to normal
        self.assertEqual(a[0], 200)

    def test_a_hung_request_ends_when_its_client_leaves(self):
        for s in self.sims:
            before = s.stats()["aborted"]
            sock = socket.create_connection(("127.0.0.1", s.port))
            body = json.dumps(chat("wait SIM_HANG")).encode()
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\n\r\n" + body)
            deadline = time.monotonic() + 5
            while s.stats()["in_flight"] == 0:
                self.assertLess(time.monotonic(), deadline, "the hung request never started")
                time.sleep(0.02)
            sock.close()
            while s.stats()["aborted"] == before:
                self.assertLess(time.monotonic(), deadline, "the hang outlived its client")
                time.sleep(0.02)
            self.assertEqual(s.stats()["in_flight"], 0)

    def test_stats_and_request_ids(self):
        for s in self.sims:
            s.request("POST", "/v1/chat/completions", chat("x"), {"X-Request-Id": "rid-1"})
        a, b = (s.stats() for s in self.sims)
        self.assertEqual(set(a), set(b))
        self.assertEqual(shape(a["knobs"]), shape(b["knobs"]))
        for st in (a, b):
            self.assertGreaterEqual(st["request_ids"].get("rid-1", 0), 1)
            self.assertGreaterEqual(st["requests"]["/v1/chat/completions"], 1)
        a, b = self.both("POST", "/v1/chat/completions", chat("y"), {"X-Request-Id": "rid-2"})
        self.assertEqual(a[3].getheader("X-Request-Id"), "rid-2")
        self.assertEqual(b[3].getheader("X-Request-Id"), "rid-2")

    def test_body_limit_and_log(self):
        st, ct, data, _ = self.c.request("POST", "/v1/chat/completions", b"x" * (33 << 20))
        self.assertEqual((st, json.loads(data)["error"]["message"]), (413, "Request body too large"))
        self.c.conn.close()
        # The line is written when the request is done on the simulator's
        # side, which may be just after the client has its answer.
        deadline = time.monotonic() + 5
        while True:
            with open(self.c.log) as f:
                log = f.read()
            if "POST /v1/chat/completions 413" in log or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertIn("POST /v1/chat/completions 413", log)


class WorkersTest(PairTest):
    """--workers 2 (epoll threads, the drain benchmark's mode) answers as a
    thread per connection does: here the pair is the C simulator in both
    modes."""
    csim = CSIM

    @classmethod
    def start(cls, python, folder):
        return Proc([CSIM] + ([] if python else ["--workers", "2"]), folder + ".log")

    def test_the_same_answers_from_two_epoll_threads(self):
        for body in (chat("hello SIM_TOKENS=5 SIM_TOKEN_MS=0"), chat("s SIM_TOKEN_MS=0", stream=True),
                     {"model": "sim-image", "prompt": "a cat", "response_format": "b64_json"}):
            path = "/v1/images/generations" if "prompt" in body else "/v1/chat/completions"
            a, b = (s.request("POST", path, body) for s in self.sims)
            self.assertEqual((a[0], a[1]), (b[0], b[1]), path)
            self.assertEqual(a[0], 200)
            if body.get("stream"):
                self.assertEqual(len(sse_events(a[2])), len(sse_events(b[2])))
            else:
                self.assertEqual(shape(json.loads(a[2])), shape(json.loads(b[2])))

    def test_many_connections_at_once_are_all_answered(self):
        port = self.c.port

        def one(k):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                for i in range(5):
                    conn.request("POST", "/v1/chat/completions",
                                 json.dumps(chat(f"{k} {i} SIM_TOKEN_MS=0", max_tokens=1)),
                                 {"Content-Type": "application/json", "X-Request-Id": f"w{k}-{i}"})
                    r = conn.getresponse()
                    r.read()
                    self.assertEqual(r.status, 200)
            finally:
                conn.close()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(16)))
        ids = self.c.stats()["request_ids"]
        self.assertEqual(sum(1 for k in ids if k.startswith("w")), 80)


class ApiKeyTest(PairTest):
    csim = CSIM

    @classmethod
    def start(cls, python, folder):
        return SameWireTest.start(python, folder, "--api-key", "k1")

    def test_an_api_key_guards_v1_routes_alike(self):
        answers = [s.json("GET", "/v1/models") for s in self.sims]
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0][0], 401)
        for s in self.sims:
            self.assertEqual(s.json("GET", "/health")[0], 200)
            self.assertEqual(s.json("GET", "/v1/models", headers={"Authorization": "Bearer k1"})[0], 200)
            self.assertEqual(s.stats()["unauthorized"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
