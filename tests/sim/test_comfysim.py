#!/usr/bin/env python3
"""The C simulator (tests/sim/comfysim) says the same things on the wire as
comfyui_sim.py for the part of ComfyUI's API it serves: both are started,
sent the same requests, and their answers compared (status, content type,
JSON keys and value types, and whole bodies where nothing in them is random),
as are the /ws message sequences. The binary comes from $GENQ_BUILDDIR.

Run: GENQ_BUILDDIR=build python3 tests/sim/test_comfysim.py
"""

import copy
import json
import os
import random
import struct
import sys
import time
import unittest
import uuid
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from simpair import PairTest, SimProcess  # noqa: E402
from test_comfyui_sim import WSClient, png_chunks, workflow  # noqa: E402

BUILDDIR = os.environ.get("GENQ_BUILDDIR", os.path.join(HERE, "..", "..", "build"))
CSIM = os.path.join(BUILDDIR, "tests", "sim", "comfysim")


class Proc(SimProcess):
    """One simulator process and a keep-alive connection to it."""

    def __init__(self, argv, tmp):
        self.out = os.path.join(tmp, "output")
        self.log = os.path.join(tmp, "log")
        super().__init__(argv + ["--output-dir", self.out, "--run-ms", "30", "--log", self.log])

    def request(self, method, path, body=None):
        r, data = self.exchange(method, path, body)
        return r.status, r.getheader("Content-Type"), data

    def json(self, method, path, body=None):
        status, ctype, data = self.request(method, path, body)
        return status, ctype, (json.loads(data) if data else None)

    def history(self, pid, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.json("GET", f"/history/{pid}")[2]
            if h:
                return h[pid]
            time.sleep(0.01)
        raise AssertionError(f"{pid} did not finish")

    def wait_running(self, pid, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = self.json("GET", "/queue")[2]["queue_running"]
            if running and running[0][1] == pid:
                return
            time.sleep(0.01)
        raise AssertionError(f"{pid} never ran")


def shape(v):
    """Keys and value types, recursively; list elements one by one (a
    traceback's lines are the implementation's own: only their type counts)."""
    if isinstance(v, dict):
        return {k: shape(x) if k != "traceback" else [type(y).__name__ for y in x[:1]] for k, x in v.items()}
    if isinstance(v, list):
        return [shape(x) for x in v]
    return type(v).__name__


def ws_events(ws, until_pid):
    """The text messages of prompt until_pid, up to its executing {node:
    null} (status left out: its interleaving is a race in both, as are
    other prompts' broadcast progress events)."""
    out = []
    while True:
        m = ws.recv_json()
        if m["type"] == "status" or m["data"].get("prompt_id") != until_pid:
            continue
        out.append(m)
        if m["type"] == "executing" and m["data"]["node"] is None and m["data"]["prompt_id"] == until_pid:
            return out


class SameWireTest(PairTest):
    csim = CSIM

    @classmethod
    def start(cls, python, folder):
        return Proc([sys.executable, os.path.join(HERE, "comfyui_sim.py")] if python else [CSIM], folder)

    def both(self, method, path, body=None):
        """(py, c) answers as (status, content type, body bytes); status and type must agree."""
        a, b = (s.request(method, path, body) for s in self.sims)
        self.assertEqual(a[:2], b[:2], f"{method} {path}: {a} vs {b}")
        return a, b

    def same_json(self, method, path, body=None, exact=False):
        a, b = self.both(method, path, body)
        ja, jb = json.loads(a[2]), json.loads(b[2])
        self.assertEqual(shape(ja), shape(jb), f"{method} {path}")
        if exact:
            self.assertEqual(ja, jb, f"{method} {path}")
        return ja, jb

    def test_probe_and_routes(self):
        self.same_json("GET", "/system_stats")
        self.same_json("GET", "/api/system_stats")
        self.same_json("GET", "/prompt", exact=True)
        a, _ = self.both("GET", "/no/such/route")
        self.assertEqual((a[0], a[2]), (404, b"404: Not Found"))
        a, b = self.both("DELETE", "/prompt")
        self.assertEqual((a[0], a[2], b[2]), (405, b"405: Method Not Allowed", b"405: Method Not Allowed"))
        a, b = self.both("POST", "/prompt", "{not json")
        self.assertEqual((a[0], a[2]), (500, b[2]))
        a, b = self.both("GET", "/ws")   # no upgrade
        self.assertEqual((a[0], a[2]), (400, b[2]))

    def test_validation_errors_are_the_same(self):
        def bad(mutate):
            w = workflow()
            mutate(w)
            return {"prompt": w}
        cases = [
            {"client_id": "x"},
            {"prompt": workflow(), "prompt_id": "NOT-A-UUID"},
            {"prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}}},
            {"prompt": {"1": {"inputs": {}, "_meta": {"title": "Mine"}}}},
            {"prompt": {"5": workflow()["5"]}},
            {"prompt": workflow(ckpt="missing.safetensors")},
            bad(lambda w: w["3"]["inputs"].pop("seed")),
            bad(lambda w: w["3"]["inputs"].update(model=["4", 0, 1])),             # bad link
            bad(lambda w: w["3"]["inputs"].update(model=["4", 1])),                # CLIP into MODEL
            bad(lambda w: w["3"]["inputs"].update(steps=0, cfg=101.5)),
            bad(lambda w: w["3"]["inputs"].update(steps="many")),
            bad(lambda w: w["3"]["inputs"].update(sampler_name="nope", scheduler="nope")),
            bad(lambda w: w["5"]["inputs"].update(width=8.0)),
            bad(lambda w: (w["8"]["inputs"].update(samples=["3", 0]), w["3"]["inputs"].update(latent_image=["8", 0]))),
        ]
        for body in cases:
            with self.subTest(body=json.dumps(body)[:120]):
                a, b = self.same_json("POST", "/prompt", body, exact=True)
                self.assertIn("error", a)
        # A link to a node that is not there: an exception, whose traceback differs.
        a, b = self.same_json("POST", "/prompt", bad(lambda w: w["3"]["inputs"].update(model=["99", 0])))
        self.assertEqual(a["error"], b["error"])
        self.assertEqual(a["node_errors"]["9"]["errors"][0]["type"], "exception_during_validation")
        self.assertEqual(b["node_errors"]["9"]["errors"][0]["details"], "'99'")

    def test_prompt_over_ws_history_and_view(self):
        cid = "bench-" + uuid.uuid4().hex[:8]
        sockets = [WSClient(s.port, cid) for s in self.sims]
        hellos = [ws.recv_json() for ws in sockets]
        self.assertEqual(shape(hellos[0]), shape(hellos[1]))
        self.assertEqual(hellos[1]["data"]["sid"], cid)
        streams, entries, pngs = [], [], []
        for s, ws in zip(self.sims, sockets):
            w = workflow(text="a fox at dawn", seed=11, steps=3, width=256, height=128)
            st, ct, r = s.json("POST", "/prompt", {"prompt": w, "client_id": cid})
            self.assertEqual((st, ct, sorted(r)), (200, "application/json; charset=utf-8",
                                                   ["node_errors", "number", "prompt_id"]))
            streams.append(ws_events(ws, r["prompt_id"]))
            entries.append(s.history(r["prompt_id"]))
            img = entries[-1]["outputs"]["9"]["images"][0]
            st, ct, data = s.request("GET", f"/view?filename={img['filename']}&subfolder=&type=output")
            self.assertEqual((st, ct), (200, "image/png"))
            pngs.append(data)
            with open(os.path.join(s.out, img["filename"]), "rb") as f:
                self.assertEqual(f.read(), data)
        for ws in sockets:
            ws.close()
        py, c = streams
        self.assertEqual([m["type"] for m in py], [m["type"] for m in c])
        self.assertEqual([shape(m) for m in py], [shape(m) for m in c])
        self.assertIn("progress", [m["type"] for m in c])
        self.assertEqual([m["data"].get("node") for m in py], [m["data"].get("node") for m in c])
        self.assertEqual(shape(entries[0]), shape(entries[1]))
        self.assertEqual(entries[0]["outputs"], entries[1]["outputs"])
        self.assertEqual([m[0] for m in entries[1]["status"]["messages"]],
                         ["execution_start", "execution_cached", "execution_success"])
        # The PNG: valid chunks, a deflate stream, and sized from EmptyLatentImage as the Python sim does.
        for data in pngs:
            chunks = png_chunks(data)
            self.assertTrue(all(ok for _, ok, _ in chunks))
            self.assertEqual((chunks[0][0], chunks[-1][0]), (b"IHDR", b"IEND"))
            self.assertEqual(struct.unpack(">II", chunks[0][2][:8]), (32, 16))
            raw = zlib.decompress(b"".join(body for kind, _, body in chunks if kind == b"IDAT"))
            self.assertEqual(len(raw), 16 * (32 * 3 + 1))
        # The same prompt again: served from the cache by both, the same events.
        again = []
        for s in self.sims:
            pid = s.json("POST", "/prompt", {"prompt": workflow(text="a fox at dawn", seed=11, steps=3,
                                                                 width=256, height=128)})[2]["prompt_id"]
            again.append(s.history(pid))
        self.assertEqual(sorted(again[0]["status"]["messages"][1][1]["nodes"]),
                         sorted(again[1]["status"]["messages"][1][1]["nodes"]))
        self.assertEqual(again[0]["outputs"], again[1]["outputs"])
        # Another seed: another file with other bytes (both sims get it: their states stay alike).
        for s, png in zip(self.sims, pngs):
            pid = s.json("POST", "/prompt", {"prompt": workflow(seed=12, width=256, height=128)})[2]["prompt_id"]
            other = s.history(pid)["outputs"]["9"]["images"][0]["filename"]
            self.assertNotEqual(s.request("GET", f"/view?filename={other}")[2], png)
        # History listing and the /view refusals.
        for path in ("/history?max_items=1", "/api/history?max_items=2&offset=0"):
            a, b = self.both("GET", path)
            ha, hb = json.loads(a[2]), json.loads(b[2])   # keyed by each sim's own prompt ids
            self.assertEqual([shape(v) for v in ha.values()], [shape(v) for v in hb.values()], path)
            self.assertEqual(len(hb), 1 if "=1" in path else 2)
        self.same_json("GET", f"/history/{uuid.uuid4()}", exact=True)
        for query in ("filename=/etc/passwd", "filename=a/../b.png", "filename=x.png&subfolder=../..",
                      "filename=none.png", "", "filename=x.png&type=bogus"):
            self.both("GET", f"/view?{query}")
        a, _ = self.both("GET", "/history?max_items=x")
        self.assertEqual(a[0], 500)

    def test_random_workflows_get_the_same_answers(self):
        """Mutated workflows (wrong types, bad links, unknown classes, odd
        inputs): the same status from both, and the same 400 body."""
        rng = random.Random(3)
        values = [None, True, False, 0, -1, 1.5, 2 ** 63, "", "x", "4", [], ["4"], ["4", 0], ["99", 0],
                  ["4", 7], ["4", -1], ["4", "0"], [4, 0], {}, {"a": 1}, "a/b"]

        def strip(j):
            if isinstance(j, dict):
                return {k: strip(v) for k, v in j.items() if k not in ("traceback", "number", "prompt_id")}
            return [strip(x) for x in j] if isinstance(j, list) else j
        for n in range(300):
            w = workflow(seed=1000 + n)
            for _ in range(rng.randint(1, 3)):
                nid = rng.choice(list(w) + ["x"])
                node, r = w.get(nid), rng.random()
                if not isinstance(node, dict) or r < 0.1:
                    w[nid] = copy.deepcopy(rng.choice(values))
                elif r < 0.2:
                    node["class_type"] = rng.choice(["KSampler", "SaveImage", "PreviewImage", "x", 5, None])
                elif r < 0.25:
                    node["inputs"] = copy.deepcopy(rng.choice(values))
                elif isinstance(node.get("inputs"), dict) and node["inputs"]:
                    key = rng.choice(list(node["inputs"]) + ["filename_prefix", "steps", "batch_size"])
                    node["inputs"][key] = copy.deepcopy(rng.choice(values))
            body = json.dumps({"prompt": w})
            (sa, _, a), (sb, _, b) = (s.request("POST", "/prompt", body) for s in self.sims)
            self.assertEqual(sa, sb, body)
            if sa == 400:
                self.assertEqual(strip(json.loads(a)), strip(json.loads(b)), body)
        self.idle()

    def idle(self):
        """Until both simulators have nothing queued or running."""
        for s in self.sims:
            deadline = time.monotonic() + 20
            while s.json("GET", "/prompt")[2]["exec_info"]["queue_remaining"]:
                self.assertLess(time.monotonic(), deadline, "the queue does not drain")
                time.sleep(0.02)

    def test_ws_ping_close_and_abrupt_clients(self):
        self.idle()
        for s in self.sims:
            ws = WSClient(s.port, "pinger")
            self.assertEqual(ws.recv_json()["type"], "status")
            ws.send(0x9, b"hi")
            while (frame := ws.recv())[0] != 0xA:
                pass
            self.assertEqual(frame[1], b"hi")
            ws.send(0x1, b'{"ignored": true}')   # client text frames are dropped
            ws.send(0x8, struct.pack(">H", 1000))
            while (frame := ws.recv())[0] != 0x8:   # status broadcasts may come first
                self.assertEqual(frame[0], 0x1)
            ws.close()
            # A client that vanishes while its prompt streams events: the simulator goes on.
            gone = WSClient(s.port, "gone")
            gone.recv_json()
            pid = s.json("POST", "/prompt", {"prompt": workflow(seed=51, steps=50), "client_id": "gone"})[2]
            gone.sock.close()
            s.history(pid["prompt_id"])
            self.assertEqual(s.json("GET", "/prompt")[0], 200)
        # A second socket with a client id takes over its events. (C only: the
        # Python simulator loses them now and then, a race of its own.)
        first = WSClient(self.c.port, "twice")
        first.recv_json()
        second = WSClient(self.c.port, "twice")
        second.recv_json()
        pid = self.c.json("POST", "/prompt", {"prompt": workflow(seed=52, steps=2), "client_id": "twice"})[2]
        self.assertEqual(ws_events(second, pid["prompt_id"])[0]["type"], "execution_start")
        first.close()
        second.close()

    def test_queue_delete_and_interrupt(self):
        hangs, pendings = [], []
        for s in self.sims:
            hang = s.json("POST", "/prompt", {"prompt": workflow(text="SIM_HANG", seed=21),
                                              "client_id": "q"})[2]["prompt_id"]
            s.wait_running(hang)
            p1 = s.json("POST", "/prompt", {"prompt": workflow(seed=22)})[2]
            p2 = s.json("POST", "/prompt", {"prompt": workflow(seed=23), "front": True})[2]
            self.assertLess(p2["number"], 0)
            hangs.append(hang)
            pendings.append((p1["prompt_id"], p2["prompt_id"]))
        qa, qb = (s.json("GET", "/queue") for s in self.sims)
        self.assertEqual(qa[:2], qb[:2])
        self.assertEqual(shape(qa[2]), shape(qb[2]))
        self.assertEqual([len(q[2]["queue_pending"]) for q in (qa, qb)], [2, 2])
        self.same_json("GET", "/prompt", exact=True)
        for s, (p1, p2) in zip(self.sims, pendings):
            self.assertEqual(s.request("POST", "/queue", {"delete": [p1, str(uuid.uuid4())]}),
                             (200, "application/octet-stream", b""))
            self.assertEqual([p[1] for p in s.json("GET", "/queue")[2]["queue_pending"]], [p2])
        for s, hang in zip(self.sims, hangs):
            # Another prompt's id does not interrupt the running one; its own does.
            self.assertEqual(s.request("POST", "/interrupt", {"prompt_id": str(uuid.uuid4())})[0], 200)
            time.sleep(0.1)
            self.assertEqual(s.json("GET", "/queue")[2]["queue_running"][0][1], hang)
            self.assertEqual(s.request("POST", "/api/interrupt", {"prompt_id": hang}),
                             (200, "application/octet-stream", b""))
        ea, eb = (s.history(h) for s, h in zip(self.sims, hangs))
        self.assertEqual(shape(ea), shape(eb))
        last = eb["status"]["messages"][-1]
        self.assertEqual((eb["status"]["status_str"], last[0], last[1]["node_id"], last[1]["node_type"]),
                         ("error", "execution_interrupted", "3", "KSampler"))
        for s, (_, p2) in zip(self.sims, pendings):
            s.history(p2)   # the queue went on
            s.request("POST", "/queue", {"clear": True})

    def test_failure_is_the_same_shape(self):
        entries = [s.history(s.json("POST", "/prompt", {"prompt": workflow(text="SIM_OOM", seed=31)})[2]["prompt_id"])
                   for s in self.sims]
        self.assertEqual(shape(entries[0]), shape(entries[1]))
        err = entries[1]["status"]["messages"][-1]
        self.assertEqual((err[0], err[1]["exception_type"]), ("execution_error", "torch.OutOfMemoryError"))
        self.assertEqual(entries[0]["status"]["messages"][-1][1]["exception_message"],
                         err[1]["exception_message"])

    def test_body_limit_and_log(self):
        st, ct, _ = self.c.request("POST", "/prompt", b"x" * (17 << 20))
        self.assertEqual(st, 413)
        self.c.conn.close()
        for s in self.sims:
            pid = s.json("POST", "/prompt", {"prompt": workflow(seed=41)})[2]["prompt_id"]
            s.history(pid)
            with open(s.log) as f:
                log = f.read()
            self.assertIn(f"prompt {pid} accepted", log)
            self.assertIn(f"prompt {pid} succeeded", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
