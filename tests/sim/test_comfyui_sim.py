#!/usr/bin/env python3
"""Self-test of comfyui_sim.py: starts it on port 0 and drives it like a client would.

Run: python3 -m unittest tests/sim/test_comfyui_sim.py   (stdlib only, well under 20 s)
"""

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
import zlib
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "comfyui_sim.py")
sys.path.insert(0, HERE)
import comfyui_sim  # noqa: E402  (for make_png only)
from testca import make_test_ca  # noqa: E402


def workflow(text="a red fox", seed=1, steps=4, ckpt="sd15.safetensors", prefix="genq", width=512, height=512):
    """The minimal SD1.5 text-to-image workflow in API format."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["8", 0]}},
    }


def png_chunks(data):
    """[(type, ok_crc, body)] of a PNG file; asserts the signature."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    out, i = [], 8
    while i < len(data):
        n, = struct.unpack(">I", data[i:i + 4])
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        crc, = struct.unpack(">I", data[i + 8 + n:i + 12 + n])
        out.append((kind, zlib.crc32(kind + body) == crc, body))
        i += 12 + n
    return out


class Sim:
    """One simulator process, and a keep-alive HTTP connection to it."""

    def __init__(self, *extra):
        self.dir = tempfile.TemporaryDirectory(prefix="comfyui_sim_test_")
        self.out = os.path.join(self.dir.name, "output")
        self.proc = subprocess.Popen([sys.executable, SIM, "--port", "0", "--output-dir", self.out, "--run-ms", "100",
                                      "--log", os.path.join(self.dir.name, "log"), *extra],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening port="), line
        self.port = int(line.split("=")[1])
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def request(self, method, path, body=None, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            r = self.conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        except Exception:
            self.conn.close()  # next request starts a fresh connection
            raise

    def json(self, method, path, body=None):
        status, _, data = self.request(method, path, body)
        return status, json.loads(data) if data else None

    def submit(self, prompt, **kw):
        return self.json("POST", "/prompt", {"prompt": prompt, **kw})

    def history(self, pid, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, h = self.json("GET", f"/history/{pid}")
            if h:
                return h[pid]
            time.sleep(0.02)
        raise AssertionError(f"{pid} did not finish")

    def wait_running(self, pid, timeout=3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.json("GET", "/sim/stats")[1]["running"] == pid:
                return
            time.sleep(0.02)
        raise AssertionError(f"{pid} never ran")

    def stop(self):
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(5)
        self.proc.stdout.close()
        self.dir.cleanup()
        return rc


class WSClient:
    """Just enough RFC 6455 client: handshake, masked frames out, frames in."""

    def __init__(self, port, client_id):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.f = self.sock.makefile("rb")
        status = self.f.readline()
        assert b" 101 " in status, status
        headers = {}
        while (line := self.f.readline().strip()):
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert headers["sec-websocket-accept"] == want.decode()

    def send(self, opcode, payload=b""):
        mask = os.urandom(4)
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask +
                          bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))

    def recv(self):
        b0, b1 = self.f.read(2)
        n = b1 & 0x7F
        if n >= 126:
            n = struct.unpack(">H" if n == 126 else ">Q", self.f.read(2 if n == 126 else 8))[0]
        return b0 & 0x0F, self.f.read(n)

    def recv_json(self):
        while True:
            opcode, payload = self.recv()
            if opcode == 0x1:
                return json.loads(payload)

    def close(self):
        self.f.close()
        self.sock.close()


class ComfyUISimTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        assert cls.sim.stop() == 0, "SIGTERM should end the simulator cleanly"

    def test_success_history_and_png(self):
        pid = str(uuid.uuid4())
        status, r = self.sim.submit(workflow(seed=101), prompt_id=pid, client_id="c1")
        self.assertEqual((status, r["prompt_id"], r["node_errors"]), (200, pid, {}))
        _, h = self.sim.json("GET", f"/history/{pid}")
        self.assertEqual(h, {}, "history is empty until the prompt finishes")
        entry = self.sim.history(pid)
        self.assertEqual(entry["status"]["status_str"], "success")
        self.assertTrue(entry["status"]["completed"])
        self.assertEqual([m[0] for m in entry["status"]["messages"]],
                         ["execution_start", "execution_cached", "execution_success"])
        number, hid, prompt, extra, outputs = entry["prompt"]
        self.assertEqual((number, hid, outputs, extra["client_id"]), (r["number"], pid, ["9"], "c1"))
        image = entry["outputs"]["9"]["images"][0]
        self.assertRegex(image["filename"], r"^genq_\d{5}_\.png$")
        self.assertEqual((image["subfolder"], image["type"]), ("", "output"))
        self.assertEqual(entry["meta"]["9"]["node_id"], "9")
        status, headers, data = self.sim.request("GET", f"/view?filename={image['filename']}&subfolder=&type=output")
        self.assertEqual((status, headers["Content-Type"]), (200, "image/png"))
        chunks = png_chunks(data)
        self.assertTrue(all(ok for _, ok, _ in chunks))
        self.assertEqual([c[0] for c in chunks][0::len(chunks) - 1], [b"IHDR", b"IEND"])
        self.assertEqual(struct.unpack(">II", chunks[0][2][:8]), (64, 64))
        zlib.decompress(b"".join(body for kind, _, body in chunks if kind == b"IDAT"))
        # Another seed: another file, other bytes, next counter.
        other = self.sim.history(self.sim.submit(workflow(seed=102))[1]["prompt_id"])
        name2 = other["outputs"]["9"]["images"][0]["filename"]
        self.assertGreater(name2, image["filename"])
        self.assertNotEqual(self.sim.request("GET", f"/view?filename={name2}")[2], data)
        self.assertEqual(self.sim.json("GET", "/sim/stats")[1]["submissions"][pid], 1)

    def test_identical_resubmission_is_served_from_cache(self):
        first = self.sim.history(self.sim.submit(workflow(seed=202))[1]["prompt_id"])
        again = self.sim.history(self.sim.submit(workflow(seed=202))[1]["prompt_id"])
        self.assertEqual(again["outputs"], first["outputs"])
        self.assertEqual(sorted(again["status"]["messages"][1][1]["nodes"]), sorted(workflow()))

    def test_validation_errors(self):
        status, r = self.sim.json("POST", "/prompt", {"client_id": "x"})
        self.assertEqual((status, r["error"]["type"], r["node_errors"]), (400, "no_prompt", {}))
        status, _, body = self.sim.request("POST", "/prompt", "{not json")
        self.assertEqual(status, 500)  # what aiohttp answers when request.json() raises
        status, r = self.sim.submit(workflow(), prompt_id="NOT-A-UUID")
        self.assertEqual((status, r["error"]["type"]), (400, "invalid_prompt_id"))
        status, r = self.sim.submit({"1": {"class_type": "NoSuchNode", "inputs": {}}})
        self.assertEqual((status, r["error"]["type"]), (400, "missing_node_type"))
        status, r = self.sim.submit({"5": workflow()["5"]})
        self.assertEqual((status, r["error"]["type"]), (400, "prompt_no_outputs"))
        status, r = self.sim.json("POST", "/api/prompt", {"prompt": workflow(ckpt="missing.safetensors")})
        self.assertEqual((status, r["error"]["type"]), (400, "prompt_outputs_failed_validation"))
        self.assertEqual(list(r["node_errors"]), ["4"])
        err = r["node_errors"]["4"]
        self.assertEqual((err["class_type"], err["dependent_outputs"]), ("CheckpointLoaderSimple", ["9"]))
        self.assertEqual(err["errors"][0]["type"], "value_not_in_list")
        self.assertEqual(err["errors"][0]["details"],
                         "ckpt_name: 'missing.safetensors' not in ['sd15.safetensors', 'sdxl.safetensors']")
        bad = workflow()
        del bad["3"]["inputs"]["seed"]
        status, r = self.sim.submit(bad)
        self.assertEqual(r["node_errors"]["3"]["errors"][0]["type"], "required_input_missing")

    def test_interrupt_only_hits_the_named_running_prompt(self):
        pid = self.sim.submit(workflow(text="a cat SIM_HANG", seed=301))[1]["prompt_id"]
        self.sim.wait_running(pid)
        self.assertEqual(self.sim.request("POST", "/interrupt", {"prompt_id": str(uuid.uuid4())})[0], 200)
        time.sleep(0.2)
        self.assertEqual(self.sim.json("GET", "/sim/stats")[1]["running"], pid)
        self.sim.request("POST", "/interrupt", {"prompt_id": pid})
        entry = self.sim.history(pid)
        self.assertEqual((entry["status"]["status_str"], entry["status"]["completed"]), ("error", False))
        last = entry["status"]["messages"][-1]
        self.assertEqual((last[0], last[1]["node_id"], last[1]["node_type"]),
                         ("execution_interrupted", "3", "KSampler"))

    def test_queue_order_delete_and_clear(self):
        hang = self.sim.submit(workflow(text="SIM_HANG", seed=401))[1]["prompt_id"]
        self.sim.wait_running(hang)
        b = self.sim.submit(workflow(seed=402))[1]
        c = self.sim.submit(workflow(seed=403), front=True)[1]
        self.assertLess(c["number"], 0)
        _, q = self.sim.json("GET", "/queue")
        self.assertEqual(q["queue_running"][0][1], hang)
        self.assertEqual(sorted(p[1] for p in q["queue_pending"]), sorted([b["prompt_id"], c["prompt_id"]]))
        self.assertEqual(self.sim.json("GET", "/prompt")[1], {"exec_info": {"queue_remaining": 3}})
        status, _, body = self.sim.request("POST", "/queue", {"delete": [b["prompt_id"], str(uuid.uuid4())]})
        self.assertEqual((status, body), (200, b""))
        self.assertEqual([p[1] for p in self.sim.json("GET", "/queue")[1]["queue_pending"]], [c["prompt_id"]])
        self.sim.request("POST", "/queue", {"clear": True})
        self.assertEqual(self.sim.json("GET", "/queue")[1]["queue_pending"], [])
        self.sim.request("POST", "/interrupt", b"")  # no body: interrupts whatever runs
        self.sim.history(hang)
        self.assertEqual(self.sim.json("GET", f"/history/{b['prompt_id']}")[1], {})

    def test_upload_then_load_image(self):
        png = comfyui_sim.make_png(8, 8, "upload", {})
        name = f"in_{uuid.uuid4().hex[:8]}.png"

        def upload(data, **fields):
            boundary = uuid.uuid4().hex
            parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                     for k, v in fields.items()]
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                         f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            return self.sim.request("POST", "/upload/image", body,
                                    {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        status, _, body = upload(png)
        self.assertEqual((status, json.loads(body)), (200, {"name": name, "subfolder": "", "type": "input"}))
        self.assertEqual(json.loads(upload(png)[2])["name"], name, "same bytes, same name: reused")
        other = png + b"\r\n\x00trailing\r\n"
        renamed = json.loads(upload(other)[2])["name"]
        self.assertEqual(renamed, name.replace(".png", " (1).png"))
        self.assertEqual(self.sim.request("GET", f"/view?filename={quote(renamed)}&type=input")[2], other)
        self.assertEqual(json.loads(upload(png, overwrite="true")[2])["name"], name)
        _, info = self.sim.json("GET", "/object_info")
        self.assertIn(name, info["LoadImage"]["input"]["required"]["image"][0])
        prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
                  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "loaded"}}}
        status, r = self.sim.submit(prompt)
        self.assertEqual(self.sim.history(r["prompt_id"])["status"]["status_str"], "success")
        prompt["1"]["inputs"]["image"] = "nope.png"
        status, r = self.sim.submit(prompt)
        self.assertEqual((status, r["node_errors"]["1"]["errors"][0]["type"]), (400, "custom_validation_failed"))
        self.assertEqual(upload(png, type="bogus")[0], 500)

    def test_websocket_events(self):
        ws = WSClient(self.sim.port, "ws-client")
        hello = ws.recv_json()
        self.assertEqual((hello["type"], hello["data"]["sid"]), ("status", "ws-client"))
        ws.send(0x9, b"hi")
        while (frame := ws.recv())[0] != 0xA:
            pass
        self.assertEqual(frame[1], b"hi")
        pid = self.sim.submit(workflow(seed=501, steps=3), client_id="ws-client")[1]["prompt_id"]
        events = []
        while True:
            msg = ws.recv_json()
            if msg["type"] == "status":
                continue
            events.append(msg)
            if msg["type"] == "executing" and msg["data"]["node"] is None:
                break
        kinds = [e["type"] for e in events]
        self.assertEqual(kinds[:2], ["execution_start", "execution_cached"])
        self.assertEqual([e["data"]["value"] for e in events if e["type"] == "progress"], [1, 2, 3])
        self.assertIn({"node": "3", "display_node": "3", "prompt_id": pid}, [e["data"] for e in events])
        executed = [e["data"] for e in events if e["type"] == "executed"]
        self.assertEqual(executed[0]["node"], "9")
        self.assertEqual(kinds[-2:], ["execution_success", "executing"])
        ws.send(0x8, struct.pack(">H", 1000))
        self.assertEqual(ws.recv()[0], 0x8)
        ws.close()

    def test_websocket_tenants_and_knobs(self):
        def texts_until_pong(ws):
            """Text messages that arrived before a ping's answer."""
            ws.send(0x9, b"sync")
            out = []
            while (frame := ws.recv())[0] != 0xA:
                if frame[0] == 0x1:
                    out.append(json.loads(frame[1]))
            return out

        a, b = WSClient(self.sim.port, "tenant-a"), WSClient(self.sim.port, "tenant-b")
        a.recv_json(), b.recv_json()
        pid = self.sim.submit(workflow(seed=511, steps=2), client_id="tenant-a")[1]["prompt_id"]
        while not ((m := a.recv_json())["type"] == "executing" and m["data"]["node"] is None):
            pass
        # A prompt's events go only to the socket of its client_id; status goes to all.
        self.assertEqual({m["type"] for m in texts_until_pong(b)} - {"status"}, set())
        # Without a client_id, ComfyUI's progress hook broadcasts: tenants see each other's.
        anon = self.sim.submit(workflow(seed=512, steps=2))[1]["prompt_id"]
        self.sim.history(anon)
        seen = [m for m in texts_until_pong(b) if m["type"] == "progress"]
        self.assertEqual({m["data"]["prompt_id"] for m in seen}, {anon})
        # previews: binary frames, type 1 (PREVIEW_IMAGE) then the image type.
        self.sim.json("POST", "/sim/control", {"previews": True})
        pv = self.sim.submit(workflow(seed=514, steps=2), client_id="tenant-b")[1]["prompt_id"]
        binary = []
        while True:
            op, payload = b.recv()
            if op == 0x2:
                binary.append(payload)
            elif op == 0x1 and (m := json.loads(payload))["type"] == "executing" and \
                    m["data"]["node"] is None and m["data"]["prompt_id"] == pv:
                break
        self.sim.json("POST", "/sim/control", {"previews": False})
        self.assertEqual(len(binary), 2)
        self.assertEqual(struct.unpack(">II", binary[0][:8]), (1, 1))
        # ws_stall: the socket stays open and silent.
        self.sim.json("POST", "/sim/control", {"ws_stall": True})
        quiet = self.sim.submit(workflow(seed=513, steps=2), client_id="tenant-b")[1]["prompt_id"]
        self.sim.history(quiet)
        self.assertEqual(texts_until_pong(b), [])
        self.sim.json("POST", "/sim/control", {"ws_stall": False})
        # ws_off: open sockets are closed and the upgrade is refused.
        opened = self.sim.json("GET", "/sim/stats")[1]["ws_opened"]
        self.sim.json("POST", "/sim/control", {"ws_off": True})
        while (frame := b.recv())[0] != 0x8:
            pass
        with self.assertRaises(AssertionError):
            WSClient(self.sim.port, "tenant-c")
        self.sim.json("POST", "/sim/control", {"ws_off": False})
        c = WSClient(self.sim.port, "tenant-c")
        self.assertEqual(c.recv_json()["type"], "status")
        stats = self.sim.json("GET", "/sim/stats")[1]
        self.assertEqual(stats["ws_opened"], opened + 1)
        self.assertGreaterEqual(stats["history_requests"], 2)
        for ws in (a, b, c):
            ws.close()
        self.assertTrue(pid)

    def test_failures_and_oom(self):
        entry = self.sim.history(self.sim.submit(workflow(text="SIM_FAIL", seed=601))[1]["prompt_id"])
        err = entry["status"]["messages"][-1]
        self.assertEqual((err[0], err[1]["exception_type"], err[1]["node_id"]),
                         ("execution_error", "RuntimeError", "3"))
        for key in ("prompt_id", "node_type", "executed", "exception_message", "traceback", "current_inputs",
                    "current_outputs"):
            self.assertIn(key, err[1])
        entry = self.sim.history(self.sim.submit(workflow(text="SIM_OOM", seed=602))[1]["prompt_id"])
        err = entry["status"]["messages"][-1][1]
        self.assertEqual(err["exception_type"], "torch.OutOfMemoryError")
        self.assertIn("CUDA out of memory", err["exception_message"])
        self.sim.json("POST", "/sim/control", {"fail_next": 1})
        failed = self.sim.history(self.sim.submit(workflow(seed=603))[1]["prompt_id"])
        self.assertEqual(failed["status"]["status_str"], "error")
        ok = self.sim.history(self.sim.submit(workflow(seed=604))[1]["prompt_id"])
        self.assertEqual(ok["status"]["status_str"], "success")

    def test_http_500_and_delay_knobs(self):
        self.sim.json("POST", "/sim/control", {"http_500_next": 2, "delay_ms": 150})
        started = time.monotonic()
        self.assertEqual([self.sim.request("GET", "/prompt")[0] for _ in range(3)], [500, 500, 200])
        self.assertGreater(time.monotonic() - started, 0.4)
        _, knobs = self.sim.json("POST", "/sim/control", {"delay_ms": 0})
        self.assertEqual((knobs["http_500_next"], knobs["delay_ms"]), (0, 0))

    def test_view_refuses_escapes(self):
        for query, want in [("filename=/etc/passwd", 400), ("filename=a/../b.png", 400),
                            ("filename=x.png&subfolder=../..", 403), ("filename=none.png", 404), ("", 404)]:
            self.assertEqual(self.sim.request("GET", f"/view?{query}")[0], want, query)

    def test_keep_alive_reuses_one_connection(self):
        self.sim.request("GET", "/system_stats")
        sock = self.sim.conn.sock
        for path in ("/queue", "/history?max_items=2", "/object_info", "/api/system_stats"):
            self.assertEqual(self.sim.request("GET", path)[0], 200)
        self.assertIs(self.sim.conn.sock, sock)

    def test_zz_forget_drops_queue_history_and_running(self):
        done = self.sim.history(self.sim.submit(workflow(seed=701))[1]["prompt_id"])
        hang = self.sim.submit(workflow(text="SIM_HANG", seed=702))[1]["prompt_id"]
        self.sim.wait_running(hang)
        pending = self.sim.submit(workflow(seed=703))[1]["prompt_id"]
        ws = WSClient(self.sim.port, "watcher")
        ws.recv_json()  # status: the socket is registered
        self.sim.json("POST", "/sim/control", {"forget": True})
        while (frame := ws.recv())[0] != 0x8:  # a restart drops every socket
            pass
        ws.close()
        self.assertEqual(self.sim.json("GET", "/queue")[1], {"queue_running": [], "queue_pending": []})
        self.assertEqual(self.sim.json("GET", f"/history/{done['prompt'][1]}")[1], {})
        time.sleep(0.3)
        self.assertEqual(self.sim.json("GET", f"/history/{hang}")[1], {})
        self.assertEqual(self.sim.json("GET", f"/history/{pending}")[1], {})
        stats = self.sim.json("GET", "/sim/stats")[1]
        self.assertEqual((stats["restarts"], stats["running"]), (1, None))
        self.assertEqual(self.sim.submit(workflow(seed=704))[1]["number"], 0)


class InProcessTest(unittest.TestCase):
    """The simulator's cheap paths give the answers of their plain definitions."""

    def test_png_pixels_follow_the_key(self):
        # make_png draws its noise in bulk; the pixels must be those of one randrange(96) per pixel.
        import random
        for w, h, key in ((64, 64, "abc|0"), (13, 9, "odd|1"), (8, 100, "tall|2")):
            chunks = png_chunks(comfyui_sim.make_png(w, h, key, {"prompt": "{}"}))
            self.assertTrue(all(ok for _, ok, _ in chunks))
            raw = zlib.decompress(b"".join(body for kind, _, body in chunks if kind == b"IDAT"))
            seed = hashlib.sha256(key.encode()).digest()
            rng, want = random.Random(seed), bytearray()
            for y in range(h):
                want.append(0)
                for x in range(w):
                    want += bytes(((seed[0] + x * 256 // w) & 255, (seed[1] + y * 256 // h) & 255,
                                   (seed[2] + rng.randrange(96)) & 255))
            self.assertEqual(raw, bytes(want), (w, h, key))

    def test_save_counter_is_highest_on_disk_plus_one(self):
        with tempfile.TemporaryDirectory() as base:
            def touch(name):
                open(os.path.join(base, name), "w").close()

            def counter():
                return comfyui_sim.save_image_path("genq", base, 64, 64)[2]
            self.assertEqual(counter(), 1)
            touch("genq_00001_.png")
            touch("genq_00002_.png")
            touch("genqx_00009_.png")  # another prefix
            self.assertEqual(counter(), 3)
            touch("genq_00007_.png")   # written by someone else
            self.assertEqual(counter(), 8)
            os.unlink(os.path.join(base, "genq_00007_.png"))  # a deletion is seen too
            self.assertEqual(counter(), 3)


class TLSTest(unittest.TestCase):
    def test_tls_serves_system_stats_to_a_client_of_the_ca(self):
        with tempfile.TemporaryDirectory(prefix="comfyui_sim_tls_") as d:
            ca, crt, key = make_test_ca(d)
            sim = Sim("--tls-cert", crt, "--tls-key", key)
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", sim.port, timeout=5,
                                                   context=ssl.create_default_context(cafile=ca))
                conn.request("GET", "/system_stats")
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                self.assertIn("devices", json.loads(r.read()))
                conn.close()
                # Plain HTTP is not answered, and a client without the CA refuses the server.
                with self.assertRaises((http.client.HTTPException, OSError)):
                    sim.request("GET", "/system_stats")
                strict = http.client.HTTPSConnection("127.0.0.1", sim.port, timeout=5,
                                                     context=ssl.create_default_context())
                with self.assertRaises(ssl.SSLCertVerificationError):
                    strict.request("GET", "/system_stats")
                strict.close()
            finally:
                self.assertEqual(sim.stop(), 0)


class CrashTest(unittest.TestCase):
    def test_crash_exits_with_status_1(self):
        sim = Sim("--name", "crashy")
        try:
            self.assertEqual(sim.json("POST", "/sim/control", {"crash": True})[1], {"crashing": True})
            self.assertEqual(sim.proc.wait(5), 1)
        finally:
            sim.stop()


if __name__ == "__main__":
    unittest.main()
