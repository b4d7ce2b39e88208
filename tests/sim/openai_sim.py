#!/usr/bin/env python3
"""A stand-in for an OpenAI-compatible server (llama.cpp server, vLLM), for
genq's tests and local stack.

It answers the routes genq uses with the JSON shapes and status codes those
servers use: GET /v1/models, POST /v1/chat/completions (whole reply, or a
text/event-stream of chat.completion.chunk objects ended by `data: [DONE]`),
POST /v1/images/generations (b64_json or url, carrying a real PNG), GET
/health (llama.cpp), and errors as {"error": {message, type, param, code}}.
Answers are deterministic: the same request body gives the same text, so a
test can ask the simulator itself what a job's output must be. A client that
closes the connection stops its generation (that is how OpenAI-style
requests are canceled), and the simulator counts it. Standard library only.

Usage:
  openai_sim.py --port N [--host 127.0.0.1] [--token-ms 20] [--tokens 16]
                [--run-ms 200] [--models sim-llm,sim-image] [--name NAME]
                [--pidfile F] [--log F] [--fail-next N] [--http-500-next N]
                [--hang] [--delay-ms N] [--loading] [--api-key KEY]
Prints `listening port=N` on stdout once bound (port 0 picks a free port).

Steering one request (words in the last user message, or in an image prompt):
  SIM_TOKENS=<n>    answer with n tokens (max_tokens still caps it)
  SIM_TOKEN_MS=<n>  n ms between tokens      SIM_MS=<n>  image run time
  SIM_FAIL   500 server_error (streams: an error event halfway, then close)
  SIM_HANG   stop halfway (streams) or never answer, until the client leaves
  SIM_400    400 invalid_request_error       SIM_503  503 overloaded
With --api-key, every /v1/ route wants `Authorization: Bearer KEY` and
answers anything else 401 {"error": {"code": 401, "message": "Invalid API
Key", "type": "authentication_error"}}, as llama.cpp's server started with
--api-key does (/health stays open).
Test-harness routes (not OpenAI; never faulted or delayed):
  POST /sim/control {"token_ms", "tokens", "run_ms", "fail_next",
                     "http_500_next", "http_503_next", "hang", "delay_ms",
                     "loading", "crash": true}
  GET  /sim/stats   counters (requests per route, generation requests per
                    X-Request-Id, aborted by the client, TCP connections
                    accepted, ...)
"""

import argparse
import base64
import hashlib
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PNG_MAX_SIDE = 256
MAX_BODY = 32 << 20
MAX_N = 10
WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly "
         "brew tea under amber skies and curious robots count every falling star").split()
SIZES = ("256x256", "512x512", "1024x1024", "1024x1792", "1792x1024")
ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def make_png(width, height, key):
    """An RGB PNG whose pixels follow from `key`, so different requests give different bytes."""
    seed = hashlib.sha256(key.encode()).digest()
    rng = random.Random(seed)
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        for x in range(width):
            raw += bytes(((seed[0] + x * 256 // width) & 255, (seed[1] + y * 256 // height) & 255,
                          (seed[2] + rng.randrange(96)) & 255))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b""))


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status, message, etype="invalid_request_error", param=None, code=None):
        super().__init__(message)
        self.status, self.message, self.etype, self.param, self.code = status, message, etype, param, code

    def body(self):
        return {"error": {"message": self.message, "type": self.etype, "param": self.param,
                          "code": self.code}}


def marker(text, name):
    m = re.search(rf"\b{name}=(\d+)", text)
    return int(m.group(1)) if m else None


def message_text(content):
    """A message's content as text: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


class Simulator:
    def __init__(self, args):
        self.name = args.name
        self.models = [m for m in args.models.split(",") if m]
        self.lock = threading.Lock()
        self.logf = open(args.log, "a", buffering=1) if args.log else sys.stderr
        self.created = int(time.time())
        self.knobs = {"token_ms": args.token_ms, "tokens": args.tokens, "run_ms": args.run_ms,
                      "fail_next": args.fail_next, "http_500_next": args.http_500_next,
                      "http_503_next": 0, "hang": args.hang, "delay_ms": args.delay_ms,
                      "loading": args.loading}
        self.stats = {"requests": {}, "request_ids": {}, "chat_completions": 0, "streams": 0,
                      "images": 0, "completed": 0, "aborted": 0, "failed": 0, "in_flight": 0,
                      "http_500_served": 0, "http_503_served": 0, "unauthorized": 0,
                      "connections": 0, "image_inputs": [], "errors": {}}
        self.api_key = args.api_key
        self.files = {}        # url-format images: name -> PNG bytes
        self.port = 0

    def log(self, msg):
        self.logf.write(f"{time.strftime('%H:%M:%S')} {self.name} {msg}\n")

    def control(self, data):
        with self.lock:
            for k in self.knobs:
                if k in data:
                    v = data[k]
                    self.knobs[k] = bool(v) if isinstance(self.knobs[k], bool) else int(v)
            return dict(self.knobs)

    def count(self, key, sub=None, n=1):
        with self.lock:
            if sub is None:
                self.stats[key] += n
            else:
                self.stats[key][sub] = self.stats[key].get(sub, 0) + n

    def take(self, knob):
        """Use up one of a counted knob; True if there was one."""
        with self.lock:
            if self.knobs[knob] > 0:
                self.knobs[knob] -= 1
                return True
            return False

    def snapshot_stats(self):
        with self.lock:
            out = json.loads(json.dumps(self.stats))
            out["knobs"] = dict(self.knobs)
            out["name"] = self.name
            return out

    # -- chat
    def check_model(self, body):
        model = body.get("model")
        if model is None:
            return self.models[0]   # llama.cpp serves its one model whatever is asked
        if not isinstance(model, str):
            raise ApiError(400, "'model' must be a string", param="model")
        if model not in self.models:
            raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           code="model_not_found")
        return model

    def chat_plan(self, body):
        """Validate a chat request; the answer's tokens and pacing."""
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise ApiError(400, "'messages' must be a non-empty array", param="messages")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise ApiError(400, f"Invalid value for 'messages[{i}].role'", param=f"messages[{i}].role")
            if "content" not in m and m.get("role") != "assistant":
                raise ApiError(400, f"Missing required parameter: 'messages[{i}].content'",
                               param=f"messages[{i}].content", code="missing_required_parameter")
        model = self.check_model(body)
        cap = None
        for key in ("max_completion_tokens", "max_tokens"):
            if body.get(key) is not None:
                v = body[key]
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise ApiError(400, f"Invalid '{key}': must be a positive integer", param=key,
                                   code="integer_below_min_value")
                cap = v if cap is None else min(cap, v)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise ApiError(400, "Invalid type for 'stream': expected a boolean", param="stream")
        last = ""
        for m in msgs:
            if m.get("role") == "user":
                last = message_text(m.get("content"))
        with self.lock:
            knobs = dict(self.knobs)
        want = marker(last, "SIM_TOKENS")
        want = knobs["tokens"] if want is None else want
        n = want if cap is None else min(want, cap)
        token_ms = marker(last, "SIM_TOKEN_MS")
        seed = hashlib.sha256(json.dumps(msgs, sort_keys=True).encode()).digest()
        rng = random.Random(seed)
        tokens = [("" if i == 0 else " ") + rng.choice(WORDS) for i in range(n)]
        return {"model": model, "stream": stream, "tokens": tokens,
                "finish": "length" if cap is not None and want > cap else "stop",
                "token_ms": knobs["token_ms"] if token_ms is None else token_ms,
                "fail": "SIM_FAIL" in last, "hang": "SIM_HANG" in last or knobs["hang"],
                "bad": "SIM_400" in last, "busy": "SIM_503" in last,
                "include_usage": bool((body.get("stream_options") or {}).get("include_usage"))
                if isinstance(body.get("stream_options"), dict) else False,
                "prompt_tokens": max(1, len(json.dumps(msgs)) // 4)}

    def usage(self, plan, n):
        return {"prompt_tokens": plan["prompt_tokens"], "completion_tokens": n,
                "total_tokens": plan["prompt_tokens"] + n}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "uvicorn"

    def log_message(self, fmt, *args):
        pass

    def send_response(self, code, message=None):
        self.status = code
        super().send_response(code, message)

    do_GET = lambda self: self.dispatch("GET")
    do_POST = lambda self: self.dispatch("POST")
    do_PUT = lambda self: self.dispatch("PUT")
    do_DELETE = lambda self: self.dispatch("DELETE")

    @property
    def sim(self):
        return self.server.sim

    def reply(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        rid = self.headers.get("X-Request-Id")
        if rid:
            self.send_header("X-Request-Id", rid[:128])
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, status, obj):
        self.reply(status, json.dumps(obj).encode(), "application/json")

    def reply_error(self, err):
        self.sim.count("errors", str(err.status))
        self.reply_json(err.status, err.body())

    ROUTES = {
        ("GET", "/v1/models"): "models",
        ("GET", "/health"): "health",
        ("POST", "/v1/chat/completions"): "chat",
        ("POST", "/v1/images/generations"): "images",
        ("GET", "/sim/control"): "sim_control",
        ("POST", "/sim/control"): "sim_control",
        ("GET", "/sim/stats"): "sim_stats",
    }

    def dispatch(self, method):
        self.status = 0
        path = urlsplit(self.path).path
        t0 = time.monotonic()
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                raise ApiError(413, "Request body too large")
            body = self.rfile.read(n) if n > 0 else b""
            name = self.ROUTES.get((method, path))
            if name is None and method == "GET" and path.startswith("/files/"):
                name = "file"
            if name is None:
                raise ApiError(404, f"Invalid URL ({method} {path})")
            if not name.startswith("sim_"):
                self.sim.count("requests", path if name != "file" else "/files/")
                rid = self.headers.get("X-Request-Id")
                if rid and name in ("chat", "images"):   # every arrival, faulted or not
                    self.sim.count("request_ids", rid[:128])
                self.check_key(path)
                self.fault(name)
            getattr(self, "r_" + name)(path, body)
        except ApiError as e:
            self.reply_error(e)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        finally:
            self.sim.log(f"{method} {path} {self.status} {int((time.monotonic() - t0) * 1000)}ms")

    def check_key(self, path):
        if self.sim.api_key is None or not path.startswith("/v1/"):
            return
        if self.headers.get("Authorization") != f"Bearer {self.sim.api_key}":
            self.sim.count("unauthorized")
            err = ApiError(401, "Invalid API Key", etype="authentication_error", code=401)
            err.body = lambda: {"error": {"code": 401, "message": "Invalid API Key",
                                          "type": "authentication_error"}}
            raise err

    def fault(self, name):
        """The control knobs that apply to every OpenAI route."""
        with self.sim.lock:
            delay, loading = self.sim.knobs["delay_ms"], self.sim.knobs["loading"]
        if delay:
            time.sleep(delay / 1000)
        if loading:
            # llama.cpp while its model loads (every route, /health too)
            self.sim.count("http_503_served")
            raise ApiError(503, "Loading model", etype="unavailable_error", code=503)
        if name in ("chat", "images"):
            if self.sim.take("http_500_next"):
                self.sim.count("http_500_served")
                raise ApiError(500, "The server had an error while processing your request. Sorry about that!",
                               etype="server_error")
            if self.sim.take("http_503_next"):
                self.sim.count("http_503_served")
                raise ApiError(503, "The server is overloaded or not ready yet.", etype="server_error",
                               code="overloaded")

    def parse(self, body):
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means "
                           "you aren't using your HTTP library correctly.)")
        if not isinstance(obj, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return obj

    # -- OpenAI routes
    def r_models(self, path, body):
        self.reply_json(200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": self.sim.created, "owned_by": "genq-sim"}
            for m in self.sim.models]})

    def r_health(self, path, body):
        self.reply_json(200, {"status": "ok"})

    def r_file(self, path, body):
        data = self.sim.files.get(path[len("/files/"):])
        if data is None:
            raise ApiError(404, "No such file")
        self.reply(200, data, "image/png")

    def wait_gone(self, timeout=3600):
        """Hang until the client goes away (a read sees EOF) or timeout."""
        self.connection.settimeout(0.2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.connection.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        self.sim.count("aborted")
        self.close_connection = True

    def note_image_inputs(self, req):
        """SHA-256 of every data: URL image in the messages (a vision
        request), kept in stats["image_inputs"] so a test can see what
        reached the server; a malformed one is refused as the servers do."""
        for m in req.get("messages") or []:
            parts = m.get("content") if isinstance(m, dict) else None
            for p in parts if isinstance(parts, list) else []:
                url = ((p.get("image_url") or {}).get("url") if isinstance(p, dict)
                       and p.get("type") == "image_url" else None)
                if not isinstance(url, str) or not url.startswith("data:"):
                    continue
                head, _, data = url.partition(",")
                try:
                    raw = base64.b64decode(data, validate=True)
                except ValueError:
                    raise ApiError(400, "Invalid image data URL", param="messages")
                if not head.endswith(";base64"):
                    raise ApiError(400, "Invalid image data URL", param="messages")
                with self.sim.lock:
                    seen = self.sim.stats["image_inputs"]
                    seen.append(hashlib.sha256(raw).hexdigest())
                    del seen[:-100]

    def r_chat(self, path, body):
        req = self.parse(body)
        self.note_image_inputs(req)
        plan = self.sim.chat_plan(req)
        if plan["bad"]:
            raise ApiError(400, "Invalid request: SIM_400 asked for a refusal", param="messages")
        if plan["busy"]:
            self.sim.count("http_503_served")
            raise ApiError(503, "The server is overloaded or not ready yet.", etype="server_error",
                           code="overloaded")
        self.sim.count("chat_completions")
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        fail = plan["fail"] or self.sim.take("fail_next")
        if plan["stream"]:
            self.sim.count("streams")
            self.stream_chat(plan, cid, created, fail)
            return
        self.sim.count("in_flight")
        try:
            if plan["hang"]:
                self.wait_gone()
                return
            time.sleep(plan["token_ms"] * len(plan["tokens"]) / 1000)
            if fail:
                self.sim.count("failed")
                raise ApiError(500, "The server had an error while processing your request. Sorry about that!",
                               etype="server_error")
            text = "".join(plan["tokens"])
            self.reply_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": plan["model"],
                "system_fingerprint": "fp_genqsim",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": plan["finish"]}],
                "usage": self.sim.usage(plan, len(plan["tokens"]))})
            self.sim.count("completed")
        finally:
            self.sim.count("in_flight", n=-1)

    def stream_chat(self, plan, cid, created, fail):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True

        def send(data):
            raw = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

        def chunk(delta, finish=None, usage=None):
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": plan["model"], "system_fingerprint": "fp_genqsim",
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if usage is not None:
                obj["choices"], obj["usage"] = [], usage
            send(json.dumps(obj))

        self.sim.count("in_flight")
        try:
            chunk({"role": "assistant", "content": "", "refusal": None})
            half = len(plan["tokens"]) // 2
            for i, tok in enumerate(plan["tokens"]):
                if i == half and plan["hang"]:
                    self.wait_gone()
                    return
                if i == half and fail:
                    self.sim.count("failed")
                    send(json.dumps({"error": {"message": "The server had an error while processing your "
                                               "request. Sorry about that!", "type": "server_error",
                                               "param": None, "code": None}}))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                time.sleep(plan["token_ms"] / 1000)
                chunk({"content": tok})
            chunk({}, plan["finish"])
            if plan["include_usage"]:
                chunk({}, usage=self.sim.usage(plan, len(plan["tokens"])))
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            self.sim.count("completed")
        except (ConnectionError, TimeoutError):
            self.sim.count("aborted")
        finally:
            self.sim.count("in_flight", n=-1)

    def r_images(self, path, body):
        req = self.parse(body)
        prompt = req.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise ApiError(400, "Missing required parameter: 'prompt'.", param="prompt",
                           code="missing_required_parameter")
        if "model" in req:
            self.sim.check_model(req)
        n = req.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
            raise ApiError(400, f"Invalid 'n': must be between 1 and {MAX_N}", param="n")
        size = req.get("size", "256x256")
        if size not in SIZES:
            raise ApiError(400, f"Invalid value: '{size}'. Supported values are: " +
                           ", ".join(f"'{s}'" for s in SIZES) + ".", param="size", code="invalid_value")
        fmt = req.get("response_format", "url")
        if fmt not in ("url", "b64_json"):
            raise ApiError(400, f"Invalid value: '{fmt}'. Supported values are: 'url' and 'b64_json'.",
                           param="response_format", code="invalid_value")
        if "SIM_400" in prompt:
            raise ApiError(400, "Your request was rejected as a result of our safety system.",
                           code="content_policy_violation")
        self.sim.count("images")
        self.sim.count("in_flight")
        try:
            if "SIM_HANG" in prompt or self.sim.knobs["hang"]:
                self.wait_gone()
                return
            ms = marker(prompt, "SIM_MS")
            time.sleep((self.sim.knobs["run_ms"] if ms is None else ms) / 1000)
            if "SIM_FAIL" in prompt or self.sim.take("fail_next"):
                self.sim.count("failed")
                raise ApiError(500, "The server had an error while processing your request. Sorry about that!",
                               etype="server_error")
            w, h = (int(x) for x in size.split("x"))
            data = []
            for i in range(n):
                png = make_png(max(8, min(PNG_MAX_SIDE, w // 8)), max(8, min(PNG_MAX_SIDE, h // 8)),
                               f"{prompt}|{req.get('seed', '')}|{i}")
                if fmt == "b64_json":
                    data.append({"b64_json": base64.b64encode(png).decode(), "revised_prompt": prompt})
                else:
                    name = uuid.uuid4().hex + ".png"
                    self.sim.files[name] = png
                    data.append({"url": f"http://127.0.0.1:{self.sim.port}/files/{name}",
                                 "revised_prompt": prompt})
            self.reply_json(200, {"created": int(time.time()), "data": data})
            self.sim.count("completed")
        finally:
            self.sim.count("in_flight", n=-1)

    # -- harness routes
    def r_sim_control(self, path, body):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(400, "control body is not JSON")
        knobs = self.sim.control(data)
        if data.get("crash"):
            self.reply_json(200, {"crashing": True})
            self.sim.log("crash requested: exiting with status 1")
            os._exit(1)
        self.reply_json(200, knobs)

    def r_sim_stats(self, path, body):
        self.reply_json(200, self.sim.snapshot_stats())


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a client opening more
    # connections at once than that (genqd with a deep prefetch) got
    # resets, not the server's answers. A real server listens with more.
    request_queue_size = 128

    def __init__(self, address, sim):
        self.sim = sim
        super().__init__(address, Handler)

    def get_request(self):
        # llama.cpp's and vLLM's servers send without Nagle's delay; without
        # TCP_NODELAY a reply written in two pieces waits for a delayed ACK.
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sim.count("connections")
        return conn, addr

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            self.sim.log(f"connection error from {client_address}:\n{traceback.format_exc()}")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Simulated OpenAI-compatible server for genq tests.")
    p.add_argument("--port", type=int, required=True, help="0 picks a free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--token-ms", type=int, default=20, help="delay between streamed tokens")
    p.add_argument("--tokens", type=int, default=16, help="tokens in an answer")
    p.add_argument("--run-ms", type=int, default=200, help="run time of an image generation")
    p.add_argument("--models", default="sim-llm,sim-image")
    p.add_argument("--name", default="openai-sim")
    p.add_argument("--pidfile")
    p.add_argument("--log", help="request log file (default: stderr)")
    p.add_argument("--fail-next", type=int, default=0, help="the next N generations fail (500)")
    p.add_argument("--http-500-next", type=int, default=0, help="the next N generation requests answer 500")
    p.add_argument("--hang", action="store_true", help="generations stall until the client leaves")
    p.add_argument("--delay-ms", type=int, default=0, help="latency added to every OpenAI reply")
    p.add_argument("--loading", action="store_true", help="answer 503 'Loading model' (llama.cpp)")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1/ routes")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sim = Simulator(args)
    server = SimHTTPServer((args.host, args.port), sim)
    sim.port = server.server_address[1]
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    sim.log(f"listening on {args.host}:{sim.port} models={','.join(sim.models)}")
    print(f"listening port={sim.port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    if args.pidfile:
        try:
            os.unlink(args.pidfile)
        except FileNotFoundError:
            pass
    sim.log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
