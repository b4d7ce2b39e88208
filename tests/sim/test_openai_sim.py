#!/usr/bin/env python3
"""Self-test of openai_sim.py: starts it on port 0 and drives it like an
OpenAI client would (shapes, streaming, errors, knobs).

Run: python3 -m unittest tests/sim/test_openai_sim.py   (stdlib only, a few seconds)
"""

import base64
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "openai_sim.py")


def chat(text, **kw):
    body = {"model": "sim-llm", "messages": [{"role": "system", "content": "be brief"},
                                             {"role": "user", "content": text}]}
    body.update(kw)
    return body


def sse_events(raw):
    """The data: payloads of an event stream, in order."""
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                out.append(line[6:])
    return out


class Sim:
    def __init__(self, *extra):
        self.dir = tempfile.TemporaryDirectory(prefix="openai_sim_test_")
        self.proc = subprocess.Popen([sys.executable, SIM, "--port", "0", "--token-ms", "5",
                                      "--run-ms", "20", "--log", os.path.join(self.dir.name, "log"), *extra],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening port="), line
        self.port = int(line.split("=")[1])

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.dir.cleanup()


class OpenAISimTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.close()

    def assertError(self, status, body, want_status, etype="invalid_request_error"):
        self.assertEqual(status, want_status, body)
        self.assertEqual(set(body), {"error"})
        self.assertEqual(set(body["error"]), {"message", "type", "param", "code"})
        self.assertEqual(body["error"]["type"], etype)
        self.assertTrue(body["error"]["message"])

    def test_models_and_health(self):
        status, body = self.sim.json("GET", "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual(body["object"], "list")
        self.assertEqual([m["id"] for m in body["data"]], ["sim-llm", "sim-image"])
        self.assertTrue(all(m["object"] == "model" for m in body["data"]))
        self.assertEqual(self.sim.json("GET", "/health"), (200, {"status": "ok"}))

    def test_chat_completion_shape_and_determinism(self):
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("hello there"))
        self.assertEqual(status, 200, body)
        self.assertTrue(body["id"].startswith("chatcmpl-"))
        self.assertEqual(body["object"], "chat.completion")
        self.assertIsInstance(body["created"], int)
        self.assertEqual(body["model"], "sim-llm")
        choice, = body["choices"]
        self.assertEqual(choice["index"], 0)
        self.assertEqual(choice["message"]["role"], "assistant")
        self.assertEqual(choice["finish_reason"], "stop")
        self.assertEqual(len(choice["message"]["content"].split()), 16)
        u = body["usage"]
        self.assertEqual(u["completion_tokens"], 16)
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])
        again = self.sim.json("POST", "/v1/chat/completions", chat("hello there"))[1]
        self.assertEqual(again["choices"][0]["message"]["content"], choice["message"]["content"])
        other = self.sim.json("POST", "/v1/chat/completions", chat("something else"))[1]
        self.assertNotEqual(other["choices"][0]["message"]["content"], choice["message"]["content"])

    def test_max_tokens_caps_with_length(self):
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("SIM_TOKENS=30", max_tokens=5))
        self.assertEqual(status, 200)
        self.assertEqual(body["choices"][0]["finish_reason"], "length")
        self.assertEqual(body["usage"]["completion_tokens"], 5)

    def test_streaming(self):
        whole = self.sim.json("POST", "/v1/chat/completions", chat("stream me SIM_TOKENS=8"))[1]
        status, hdrs, raw = self.sim.request(
            "POST", "/v1/chat/completions",
            chat("stream me SIM_TOKENS=8", stream=True, stream_options={"include_usage": True}))
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["Content-Type"].startswith("text/event-stream"))
        events = sse_events(raw)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertTrue(all(c["object"] == "chat.completion.chunk" for c in chunks))
        self.assertEqual(len({c["id"] for c in chunks}), 1)
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        self.assertEqual(text, whole["choices"][0]["message"]["content"])
        finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
        self.assertEqual([c["choices"][0]["finish_reason"] for c in finals], ["stop"])
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 8)

    def test_stream_failure_is_an_error_event(self):
        status, _, raw = self.sim.request("POST", "/v1/chat/completions",
                                          chat("SIM_FAIL SIM_TOKENS=6", stream=True))
        self.assertEqual(status, 200)
        events = sse_events(raw)
        self.assertNotIn("[DONE]", events)
        self.assertEqual(json.loads(events[-1])["error"]["type"], "server_error")

    def test_errors(self):
        status, body = self.sim.json("POST", "/v1/chat/completions", "{not json")
        self.assertError(status, body, 400)
        status, body = self.sim.json("POST", "/v1/chat/completions", {"model": "sim-llm"})
        self.assertError(status, body, 400)
        self.assertEqual(body["error"]["param"], "messages")
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("hi", model="gpt-9"))
        self.assertError(status, body, 404)
        self.assertEqual(body["error"]["code"], "model_not_found")
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("hi", max_tokens=0))
        self.assertError(status, body, 400)
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("SIM_400"))
        self.assertError(status, body, 400)
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("SIM_FAIL"))
        self.assertError(status, body, 500, "server_error")
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("SIM_503"))
        self.assertError(status, body, 503, "server_error")
        status, body = self.sim.json("GET", "/v1/nothing")
        self.assertError(status, body, 404)

    def test_images_b64_json_is_a_png(self):
        status, body = self.sim.json("POST", "/v1/images/generations",
                                     {"prompt": "a lighthouse", "n": 2, "size": "512x512",
                                      "response_format": "b64_json"})
        self.assertEqual(status, 200, body)
        self.assertIsInstance(body["created"], int)
        self.assertEqual(len(body["data"]), 2)
        pngs = [base64.b64decode(d["b64_json"], validate=True) for d in body["data"]]
        for png in pngs:
            self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
            self.assertEqual((png[8:12], png[12:16]), (struct.pack(">I", 13), b"IHDR"))
            self.assertEqual(struct.unpack(">I", png[29:33])[0], zlib.crc32(png[12:29]))
            self.assertEqual(png[-8:-4], b"IEND")
            self.assertEqual(struct.unpack(">II", png[16:24]), (64, 64))
        self.assertNotEqual(pngs[0], pngs[1])
        status, body = self.sim.json("POST", "/v1/images/generations", {"prompt": "a lighthouse"})
        self.assertEqual(status, 200)
        url = body["data"][0]["url"]
        status, hdrs, data = self.sim.request("GET", url[url.index("/files/"):])
        self.assertEqual((status, hdrs["Content-Type"], data[:4]), (200, "image/png", b"\x89PNG"))
        status, body = self.sim.json("POST", "/v1/images/generations", {"n": 1})
        self.assertError(status, body, 400)
        status, body = self.sim.json("POST", "/v1/images/generations",
                                     {"prompt": "x", "response_format": "gif"})
        self.assertError(status, body, 400)

    def test_request_ids_counted(self):
        self.sim.request("POST", "/v1/chat/completions", chat("count me"), {"X-Request-Id": "rid-1"})
        self.sim.request("POST", "/v1/chat/completions", chat("count me"), {"X-Request-Id": "rid-1"})
        stats = self.sim.json("GET", "/sim/stats")[1]
        self.assertEqual(stats["request_ids"]["rid-1"], 2)
        self.assertGreaterEqual(stats["requests"]["/v1/chat/completions"], 2)


class KnobTest(unittest.TestCase):
    def setUp(self):
        self.sim = Sim()

    def tearDown(self):
        self.sim.close()

    def test_http_500_next_and_fail_next(self):
        self.sim.json("POST", "/sim/control", {"http_500_next": 1, "fail_next": 1})
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("a"))
        self.assertEqual((status, body["error"]["type"]), (500, "server_error"))
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("b"))
        self.assertEqual(status, 500)
        status, body = self.sim.json("POST", "/v1/chat/completions", chat("c"))
        self.assertEqual(status, 200)
        stats = self.sim.json("GET", "/sim/stats")[1]
        self.assertEqual((stats["http_500_served"], stats["failed"], stats["completed"]), (1, 1, 1))

    def test_loading_answers_503(self):
        self.sim.json("POST", "/sim/control", {"loading": True})
        status, body = self.sim.json("GET", "/health")
        self.assertEqual(status, 503)
        self.assertEqual(body["error"]["type"], "unavailable_error")
        self.assertEqual(self.sim.json("GET", "/v1/models")[0], 503)
        self.sim.json("POST", "/sim/control", {"loading": False})
        self.assertEqual(self.sim.json("GET", "/health")[0], 200)

    def test_api_key_is_required_on_v1_routes(self):
        self.sim.close()
        self.sim = Sim("--api-key", "sk-test")
        status, body = self.sim.json("GET", "/v1/models")
        self.assertEqual(status, 401)
        self.assertEqual(body["error"], {"code": 401, "message": "Invalid API Key",
                                         "type": "authentication_error"})
        wrong = {"Authorization": "Bearer sk-other"}
        self.assertEqual(self.sim.json("POST", "/v1/chat/completions", chat("a"), wrong)[0], 401)
        right = {"Authorization": "Bearer sk-test"}
        self.assertEqual(self.sim.json("GET", "/v1/models", headers=right)[0], 200)
        self.assertEqual(self.sim.json("POST", "/v1/chat/completions", chat("b"), right)[0], 200)
        self.assertEqual(self.sim.json("GET", "/health")[0], 200)     # open, as llama.cpp's
        stats = self.sim.json("GET", "/sim/stats")[1]
        self.assertEqual((stats["unauthorized"], stats["completed"]), (2, 1))

    def test_client_leaving_aborts_the_stream(self):
        s = socket.create_connection(("127.0.0.1", self.sim.port))
        body = json.dumps(chat("SIM_TOKENS=500 SIM_TOKEN_MS=20", stream=True)).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        got = b""
        while b"chat.completion.chunk" not in got:     # headers and events may come apart
            part = s.recv(65536)
            self.assertTrue(part, got)
            got += part
        s.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            stats = self.sim.json("GET", "/sim/stats")[1]
            if stats["aborted"] == 1 and stats["in_flight"] == 0:
                break
            time.sleep(0.05)
        self.assertEqual((stats["aborted"], stats["in_flight"], stats["completed"]), (1, 0, 0))

    def test_hang_until_client_leaves(self):
        s = socket.create_connection(("127.0.0.1", self.sim.port))
        body = json.dumps(chat("SIM_HANG")).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                  str(len(body)).encode() + b"\r\n\r\n" + body)
        s.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            s.recv(100)
        s.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.sim.json("GET", "/sim/stats")[1]["aborted"] != 1:
            time.sleep(0.05)
        self.assertEqual(self.sim.json("GET", "/sim/stats")[1]["aborted"], 1)

    def test_crash(self):
        status, body = self.sim.json("POST", "/sim/control", {"crash": True})
        self.assertEqual(body, {"crashing": True})
        self.assertEqual(self.sim.proc.wait(timeout=5), 1)


if __name__ == "__main__":
    unittest.main()
