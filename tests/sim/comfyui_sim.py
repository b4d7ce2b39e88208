#!/usr/bin/env python3
"""A stand-in for a ComfyUI server, for genq's tests and local stack.

It speaks ComfyUI's HTTP + WebSocket API with the same JSON shapes and status
codes as the real server (see /work/shared/COMFYUI.md and ComfyUI's server.py,
execution.py, main.py): prompts are validated like ComfyUI validates them,
queued in `number` order, run one at a time by a worker thread, and their
SaveImage nodes write real PNG files. Python 3.11 standard library only.

Usage:
  comfyui_sim.py --port N [--host 127.0.0.1] [--run-ms 200] [--output-dir DIR]
                 [--input-dir DIR] [--temp-dir DIR] [--name NAME] [--pidfile F]
                 [--log F] [--checkpoints a.safetensors,b.safetensors]
                 [--fail-next N] [--http-500-next N] [--hang] [--delay-ms N]
                 [--cache-none] [--ws-off] [--previews]
Prints `listening port=N` on stdout once bound (port 0 picks a free port).

Steering a single prompt (words in the positive CLIPTextEncode text):
  SIM_MS=<n>  run time in ms   SIM_FAIL  RuntimeError   SIM_OOM  CUDA OOM
  SIM_HANG    runs until interrupted
Test-harness routes (not ComfyUI; never faulted or delayed):
  POST /sim/control {"run_ms", "fail_next", "http_500_next", "hang", "delay_ms",
                     "cache", "ws_off", "ws_stall", "previews", "forget": true, "crash": true}
                    ws_off: /ws refuses the upgrade (as behind a proxy that drops it)
                    and open sockets are closed; ws_stall: sockets stay open but
                    carry no events (the stall ComfyUI users report on long jobs);
                    previews: binary preview frames while sampling
  GET  /sim/stats   counters (submissions per prompt_id, interrupts, ...) and
                    "uploads": every /upload/image as {name, subfolder, type, bytes, sha256}
"""

import argparse
import base64
import collections
import copy
import email.parser
import email.policy
import hashlib
import heapq
import json
import mimetypes
import os
import random
import re
import signal
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

HISTORY_CAP = 10000          # ComfyUI's MAXIMUM_HISTORY_SIZE
MAX_RESOLUTION = 16384
PNG_MAX_SIDE = 512           # keeps huge latents from making slow, huge files
AIOHTTP_500 = b"500 Internal Server Error\n\nServer got itself in trouble"
OOM_TIPS = ("This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow "
            "worked before you might have accidentally set the batch_size to a large number.")
SAMPLERS = ("euler euler_cfg_pp euler_ancestral euler_ancestral_cfg_pp heun heunpp2 dpm_2 dpm_2_ancestral lms "
            "dpm_fast dpm_adaptive dpmpp_2s_ancestral dpmpp_2s_ancestral_cfg_pp dpmpp_sde dpmpp_sde_gpu dpmpp_2m "
            "dpmpp_2m_cfg_pp dpmpp_2m_sde dpmpp_2m_sde_gpu dpmpp_3m_sde dpmpp_3m_sde_gpu ddpm lcm ipndm ipndm_v deis "
            "res_multistep gradient_estimation er_sde ddim uni_pc uni_pc_bh2").split()
SCHEDULERS = "simple sgm_uniform karras exponential ddim_uniform beta normal linear_quadratic kl_optimal".split()


def now_ms():
    return int(time.time() * 1000)


# ----------------------------------------------------------------------------- PNG

def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _blue_noise(rng, count):
    """`count` draws of rng.randrange(96), computed in bulk: randrange(96) takes the top 7
    bits of one 32-bit Mersenne Twister word and rejects values >= 96, and getrandbits(32 * n)
    returns n such words, least significant first. The same bytes as the draws one by one,
    at a fraction of the Python calls (this was most of a prompt's CPU)."""
    out = b""
    while len(out) < count:
        n = (count - len(out)) * 4 // 3 + 16
        words = rng.getrandbits(32 * n).to_bytes(4 * n, "little")
        out += words[3::4].translate(_TOP7, _REJECT)  # a top byte >= 192 is a 7-bit value >= 96
    return out[:count]


_TOP7 = bytes(b >> 1 for b in range(256))
_REJECT = bytes(range(192, 256))


def make_png(width, height, key, texts):
    """An RGB PNG whose pixels follow from `key`, so different jobs give different bytes."""
    seed = hashlib.sha256(key.encode()).digest()
    rng = random.Random(seed)
    r0, g0, b0 = seed[0], seed[1], seed[2]
    # Pixel (x, y) is (r0 + x*256/width, g0 + y*256/height, b0 + noise) mod 256, noise drawn row by row.
    reds = bytes((r0 + x * 256 // width) & 255 for x in range(width))
    blues = _blue_noise(rng, width * height).translate(bytes((b0 + v) & 255 for v in range(256)))
    stride = 3 * width + 1
    raw = bytearray(stride * height)  # each row starts with filter type 0 (none)
    for y in range(height):
        row = y * stride + 1
        raw[row:row + stride - 1:3] = reds
        raw[row + 1:row + stride - 1:3] = bytes([(g0 + y * 256 // height) & 255]) * width
        raw[row + 2:row + stride - 1:3] = blues[y * width:(y + 1) * width]
    out = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    for k, v in texts.items():  # ComfyUI embeds the prompt as tEXt metadata
        out += _png_chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1", "replace"))
    return out + _png_chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + _png_chunk(b"IEND", b"")


def png_size(data):
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


# ----------------------------------------------------------------------------- nodes

class Value(SimpleNamespace):
    """What flows along a link: stands in for ComfyUI's models, tensors and latents."""
    def __str__(self):
        return f"<{self.kind} object>"


class OutOfMemoryError(RuntimeError):
    """Reported as torch.OutOfMemoryError, the type name ComfyUI puts in execution_error."""
OutOfMemoryError.__module__ = "torch"


def full_type_name(cls):
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _ckpt_loader(run, nid, a):
    name = a["ckpt_name"]
    return (Value(kind="MODEL", ckpt=name), Value(kind="CLIP", ckpt=name), Value(kind="VAE", ckpt=name)), None


def _clip_encode(run, nid, a):
    return (Value(kind="CONDITIONING", text=a["text"]),), None


def _empty_latent(run, nid, a):
    return (Value(kind="LATENT", width=a["width"], height=a["height"], batch=a["batch_size"], key=""),), None


def _ksampler(run, nid, a):
    lat, pos, neg = a["latent_image"], a["positive"], a["negative"]
    key = json.dumps([getattr(a["model"], "ckpt", ""), a["seed"], getattr(pos, "text", ""), getattr(neg, "text", ""),
                      a["steps"], a["cfg"], a["sampler_name"], a["scheduler"], a.get("denoise"), lat.key])
    return (Value(kind="LATENT", width=lat.width, height=lat.height, batch=lat.batch, key=key),), None


def _vae_decode(run, nid, a):
    s = a["samples"]
    return (Value(kind="IMAGE", width=s.width, height=s.height, batch=s.batch, key=s.key),), None


def _load_image(run, nid, a):
    name, base = annotated_filepath(run.sim, a["image"], "input")
    with open(os.path.join(base, name), "rb") as f:
        data = f.read()
    w, h = png_size(data) or (512, 512)
    img = Value(kind="IMAGE", width=w, height=h, batch=1, key=hashlib.sha256(data).hexdigest())
    return (img, Value(kind="MASK")), None


def _save_images(run, nid, a, temp=False):
    images, prefix = a["images"], a["filename_prefix"]
    if temp:  # PreviewImage: a random suffix and the temp folder, like ComfyUI
        prefix += "_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
    base = run.sim.temp_dir if temp else run.sim.output_dir
    folder, name, counter, subfolder = save_image_path(prefix, base, images.width, images.height)
    side = lambda px: max(8, min(PNG_MAX_SIDE, px // 8))
    texts = {"prompt": json.dumps(run.prompt)}
    for k, v in (run.extra_data.get("extra_pnginfo") or {}).items():
        texts[str(k)] = json.dumps(v)
    results = []
    for b in range(images.batch):
        file = f"{name.replace('%batch_num%', str(b))}_{counter:05}_.png"
        data = make_png(side(images.width), side(images.height), f"{images.key}|{b}", texts)
        tmp = os.path.join(folder, f".{file}.part")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(folder, file))  # /view never sees half a file
        results.append({"filename": file, "subfolder": subfolder, "type": "temp" if temp else "output"})
        counter += 1
    return (images,), {"images": results}


def save_image_path(prefix, base, width, height):
    """ComfyUI's folder_paths.get_save_image_path: next free counter for this prefix."""
    prefix = prefix.replace("%width%", str(width)).replace("%height%", str(height))
    subfolder = os.path.dirname(os.path.normpath(prefix))
    name = os.path.basename(os.path.normpath(prefix))
    folder = os.path.join(base, subfolder)
    if os.path.commonpath((base, os.path.abspath(folder))) != base:
        raise Exception("Saving image outside the output folder is not allowed.\n"
                        f" full_output_folder: {os.path.abspath(folder)}\n         output_dir: {base}")
    try:
        files = set(os.listdir(folder))
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        files = set()
    # The folder grows by a file per image, so parsing every name on every save made a
    # prompt's cost grow with the folder. Names already parsed for this prefix are skipped;
    # a deletion (a seen name gone) means a full rescan, so the answer is always the
    # listing's highest counter + 1, as in ComfyUI.
    key = (folder, name)
    seen, highest = _counter_scans.get(key, (set(), 0))
    if not seen <= files:
        seen, highest = set(), 0
    lead = name + "_"
    for f in files - seen:
        if f.startswith(lead):
            try:
                highest = max(highest, int(f[len(lead):].split("_")[0]))
            except ValueError:
                pass
    _counter_scans[key] = (files, highest)
    return folder, name, highest + 1, subfolder


_counter_scans = {}  # (folder, prefix name) -> (names seen by the last scan, highest counter among them)


def _input_images(sim):
    files = [f for f in os.listdir(sim.input_dir) if os.path.isfile(os.path.join(sim.input_dir, f))]
    return sorted(f for f in files if (mimetypes.guess_type(f)[0] or "").startswith("image/"))


def _validate_load_image(sim, inputs):
    name, base = annotated_filepath(sim, inputs["image"], "input")
    if not os.path.exists(os.path.join(base, name)):
        return f"Invalid image file: {inputs['image']}"
    return True


def _node(name, display, category, required, returns, fn, **kw):
    return SimpleNamespace(name=name, display=display, category=category, required=required,
                           returns=returns, fn=fn, names=kw.get("names"), output=kw.get("output", False),
                           hidden=kw.get("hidden"), validate=kw.get("validate"),
                           validated_inputs=kw.get("validated_inputs", ()), description=kw.get("desc", ""))


_INT = lambda default, lo, hi, **kw: ["INT", dict(default=default, min=lo, max=hi, **kw)]
_SAVE_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
NODES = {n.name: n for n in [
    _node("CheckpointLoaderSimple", "Load Checkpoint", "loaders",
          lambda sim: {"ckpt_name": [list(sim.checkpoints),
                                     {"tooltip": "The name of the checkpoint (model) to load."}]},
          ("MODEL", "CLIP", "VAE"), _ckpt_loader, desc="Loads a diffusion model checkpoint."),
    _node("CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning",
          lambda sim: {"text": ["STRING", {"multiline": True, "dynamicPrompts": True}], "clip": ["CLIP", {}]},
          ("CONDITIONING",), _clip_encode),
    _node("EmptyLatentImage", "Empty Latent Image", "latent",
          lambda sim: {"width": _INT(512, 16, MAX_RESOLUTION, step=8), "height": _INT(512, 16, MAX_RESOLUTION, step=8),
                       "batch_size": _INT(1, 1, 4096)},
          ("LATENT",), _empty_latent),
    _node("KSampler", "KSampler", "sampling",
          lambda sim: {"model": ["MODEL", {}], "seed": _INT(0, 0, 0xffffffffffffffff, control_after_generate=True),
                       "steps": _INT(20, 1, 10000),
                       "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
                       "sampler_name": [SAMPLERS, {}], "scheduler": [SCHEDULERS, {}],
                       "positive": ["CONDITIONING", {}], "negative": ["CONDITIONING", {}],
                       "latent_image": ["LATENT", {}],
                       "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]},
          ("LATENT",), _ksampler),
    _node("VAEDecode", "VAE Decode", "latent",
          lambda sim: {"samples": ["LATENT", {}], "vae": ["VAE", {}]}, ("IMAGE",), _vae_decode),
    _node("SaveImage", "Save Image", "image",
          lambda sim: {"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
          ("IMAGE",), _save_images, names=("images",), output=True, hidden=_SAVE_HIDDEN),
    _node("PreviewImage", "Preview Image", "image", lambda sim: {"images": ["IMAGE", {}]},
          (), lambda run, nid, a: _save_images(run, nid, dict(a, filename_prefix="ComfyUI"), temp=True),
          output=True, hidden=_SAVE_HIDDEN),
    _node("LoadImage", "Load Image", "image",
          lambda sim: {"image": [_input_images(sim), {"image_upload": True}]},
          ("IMAGE", "MASK"), _load_image, validate=_validate_load_image, validated_inputs=("image",)),
]}


def node_info(sim, nd):
    """One class as GET /object_info shows it."""
    inputs = {"required": nd.required(sim)}
    if nd.hidden:
        inputs["hidden"] = nd.hidden
    return {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()}, "is_input_list": False,
            "output": list(nd.returns), "output_is_list": [False] * len(nd.returns),
            "output_name": list(nd.names or nd.returns), "name": nd.name, "display_name": nd.display,
            "description": nd.description, "python_module": "nodes", "category": nd.category,
            "output_node": nd.output, "has_intermediate_output": False, "search_aliases": []}


# ----------------------------------------------------------------------------- validation
# Mirrors execution.validate_prompt / validate_inputs, including their quirks:
# `error.details` lists only the output node's own reasons (often ""), and links to
# unknown nodes end as exception_during_validation.

def _err(kind, message, details, extra):
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def validate_prompt(sim, prompt, partial=None):
    """(ok, error, good_outputs, node_errors), like ComfyUI."""
    outputs = []
    for nid, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            title = node.get("_meta", {}).get("title") if isinstance(node, dict) else None
            return False, _err("missing_node_type", f"Node '{title or f'ID #{nid}'}' has no class_type. The workflow "
                               "may be corrupted or a custom node is missing.", f"Node ID '#{nid}'",
                               {"node_id": nid, "class_type": None, "node_title": title}), [], {}
        nd = NODES.get(node["class_type"])
        if nd is None:
            title = node.get("_meta", {}).get("title", node["class_type"])
            return False, _err("missing_node_type", f"Node '{title}' not found. The custom node may not be installed.",
                               f"Node ID '#{nid}'", {"node_id": nid, "class_type": node["class_type"],
                                                     "node_title": title}), [], {}
        if nd.output and (partial is None or nid in partial):
            outputs.append(nid)
    if not outputs:
        return False, _err("prompt_no_outputs", "Prompt has no outputs", "", {}), [], {}
    validated, good, failed, node_errors = {}, [], [], {}
    for o in outputs:
        try:
            ok, reasons, _ = validate_inputs(sim, prompt, o, validated, [])
        except Exception as ex:
            ok, reasons = False, [_err("exception_during_validation", "Exception when validating node", str(ex),
                                       {"exception_type": full_type_name(type(ex)),
                                        "traceback": traceback.format_tb(ex.__traceback__)})]
            validated[o] = (False, reasons, o)
        if ok:
            good.append(o)
            continue
        failed.append((o, reasons))
        for nid, (valid, rs, _) in validated.items():
            if valid is not True and rs:
                entry = node_errors.setdefault(nid, {"errors": rs, "dependent_outputs": [],
                                                     "class_type": prompt[nid]["class_type"]})
                entry["dependent_outputs"].append(o)
    if not good:
        details = "\n".join(f"{r['message']}: {r['details']}" for _, rs in failed for r in rs)
        return False, _err("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                           details, {}), [], node_errors
    return True, None, good, node_errors


def _convert(kind, val):
    conv = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(kind) if isinstance(kind, str) else None
    return conv(val) if conv else val


def validate_inputs(sim, prompt, nid, validated, visiting):
    if nid in validated:
        return validated[nid]
    if nid in visiting:  # a dependency cycle: every node on it gets the error
        path = visiting[visiting.index(nid):] + [nid]
        cycle = list(dict.fromkeys(path))
        details = " -> ".join(f"{n} ({prompt[n]['class_type']})" for n in path)
        for n in cycle:
            validated[n] = (False, [_err("dependency_cycle", "Dependency cycle detected", details,
                                         {"node_id": n, "cycle_nodes": cycle})], n)
        return validated[nid]
    nd = NODES[prompt[nid]["class_type"]]
    inputs = prompt[nid]["inputs"]
    errors, valid = [], True
    for name, (kind, opts) in nd.required(sim).items():
        info = [kind, opts]
        if name not in inputs:
            errors.append(_err("required_input_missing", "Required input is missing", name, {"input_name": name}))
            continue
        val = inputs[name]
        if isinstance(val, list):
            if len(val) != 2:
                errors.append(_err("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, "
                                   "slot_index]", name,
                                   {"input_name": name, "input_config": info, "received_value": val}))
                continue
            received = NODES[prompt[val[0]]["class_type"]].returns[val[1]]
            if received != kind:
                errors.append(_err("return_type_mismatch", "Return type mismatch between linked nodes",
                                   f"{name}, received_type({received}) mismatch input_type({kind})",
                                   {"input_name": name, "input_config": info, "received_type": received,
                                    "linked_node": val}))
                continue
            visiting.append(nid)
            try:
                if validate_inputs(sim, prompt, val[0], validated, visiting)[0] is False:
                    valid = False
            finally:
                visiting.pop()
            continue
        try:
            val = inputs[name] = _convert(kind, val)  # ComfyUI stores the converted value
        except Exception as ex:
            errors.append(_err("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                               f"{name}, {val}, {ex}", {"input_name": name, "input_config": info,
                                                        "received_value": val, "exception_message": str(ex)}))
            continue
        if name not in nd.validated_inputs:  # a node's own validator replaces the range/list checks
            errors += _range_errors(name, kind, opts, val, info)
    if nd.validate and all(n in inputs for n in nd.validated_inputs):
        r = nd.validate(sim, inputs)
        if r is not True:
            errors += [_err("custom_validation_failed", "Custom validation failed for node", f"{x} - {r}",
                            {"input_name": x}) for x in nd.validated_inputs]
    prev = validated.get(nid, (True, [], nid))
    validated[nid] = (prev[0] and valid and not errors, prev[1] + [e for e in errors if e not in prev[1]], nid)
    return validated[nid]


def _range_errors(name, kind, opts, val, info):
    extra = {"input_name": name, "input_config": info, "received_value": val}
    if "min" in opts and val < opts["min"]:
        return [_err("value_smaller_than_min", f"Value {val} smaller than min of {opts['min']}", name, extra)]
    if "max" in opts and val > opts["max"]:
        return [_err("value_bigger_than_max", f"Value {val} bigger than max of {opts['max']}", name, extra)]
    if isinstance(kind, list) and val not in kind:
        big = len(kind) > 20  # ComfyUI does not echo long lists back
        extra["input_config"] = None if big else info
        listing = f"(list of length {len(kind)})" if big else str(kind)
        return [_err("value_not_in_list", "Value not in list", f"{name}: {val!r} not in {listing}", extra)]
    return []


# ----------------------------------------------------------------------------- execution

class Interrupted(Exception):
    pass


class Forgotten(Exception):
    """The simulated restart dropped the running prompt: no history, no events."""


class PromptRun:
    """Executes one queue item the way PromptExecutor does, emitting the same events."""

    def __init__(self, sim, item, generation):
        self.sim, self.generation = sim, generation
        self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs = item
        self.client_id = self.extra_data.get("client_id")
        self.messages, self.executed, self.values = [], [], {}
        self.ui_outputs, self.meta, self.current = {}, {}, None
        text = " ".join(self._positive_texts())
        ms = re.search(r"SIM_MS=(\d+)", text)
        self.run_ms = int(ms.group(1)) if ms else sim.knobs["run_ms"]
        self.fault = "oom" if "SIM_OOM" in text else "fail" if "SIM_FAIL" in text else \
            "hang" if "SIM_HANG" in text else None
        with sim.lock:
            forced = sim.knobs["fail_next"] > 0
            if forced:
                sim.knobs["fail_next"] -= 1
            # Injected faults must land on a sampler, so they bypass the output cache.
            use_cache = sim.knobs["cache"] and not forced and not sim.knobs["hang"]
            self.old_cache = sim.cache if use_cache else {}
        self.fault = self.fault or ("fail" if forced else None)
        self.sigs = {}
        self.cached = [n for n in self.prompt if self._signature(n) in self.old_cache]
        self.order = self._execution_order()
        todo = [n for n in self.order if n not in self.cached]
        self.work_nodes = [n for n in todo if self.prompt[n]["class_type"] == "KSampler"] or todo[:1]

    def _positive_texts(self):
        p, texts = self.prompt, []
        for node in p.values():
            link = node.get("inputs", {}).get("positive") if node.get("class_type") == "KSampler" else None
            if isinstance(link, list) and link and p.get(link[0], {}).get("class_type") == "CLIPTextEncode":
                texts.append(str(p[link[0]]["inputs"].get("text", "")))
        return texts or [str(n["inputs"].get("text", "")) for n in p.values() if n["class_type"] == "CLIPTextEncode"]

    def _signature(self, nid):
        """Cache key: the node's class and inputs, with links replaced by their source's key."""
        if nid not in self.sigs:
            node = self.prompt[nid]
            parts = [node["class_type"]]
            for name, val in sorted(node["inputs"].items()):
                parts.append([name, [self._signature(val[0]), val[1]] if isinstance(val, list) else val])
            if node["class_type"] == "LoadImage":  # IS_CHANGED: the file's content counts
                parts.append(self._file_hash(node))
            self.sigs[nid] = hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
        return self.sigs[nid]

    def _file_hash(self, node):
        name, base = annotated_filepath(self.sim, node["inputs"]["image"], "input")
        try:
            with open(os.path.join(base, name), "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except OSError:  # gone since validation: LoadImage itself will fail, as in ComfyUI
            return None

    def _execution_order(self):
        order, seen = [], set()

        def visit(nid):
            if nid in seen:
                return
            seen.add(nid)
            for val in self.prompt[nid]["inputs"].values():
                if isinstance(val, list):
                    visit(val[0])
            order.append(nid)
        for o in self.outputs:
            visit(o)
        return order

    # -- events
    def message(self, event, data, broadcast=False):
        """PromptExecutor.add_message: kept for /history, sent to the prompt's client."""
        data = {**data, "timestamp": now_ms()}
        self.messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.sim.send(event, data, self.client_id)

    def check(self):
        if self.sim.generation != self.generation:
            raise Forgotten()
        if self.sim.interrupt_flag.is_set():
            raise Interrupted()

    def wait(self, seconds):
        if seconds > 0:  # an instant prompt skips Event.wait(0): same outcome, less CPU per step
            self.sim.interrupt_flag.wait(seconds)  # forget() and interrupts set the flag: wake early
        self.check()

    def sample(self, nid, steps):
        """The simulated GPU work: run time split into progress steps; faults land here."""
        share = self.run_ms / 1000.0 / len(self.work_nodes) / steps
        fault, self.fault = self.fault, None
        for i in range(steps):
            if fault in ("fail", "oom") and i == steps // 2:
                if fault == "oom":
                    raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity "
                                           "of 79.19 GiB of which 1.06 GiB is free. Of the allocated memory 75.20 GiB "
                                           "is allocated by PyTorch.")
                raise RuntimeError("Simulated failure in the sampler (comfyui_sim)")
            self.wait(share)
            while (fault == "hang" and i == steps // 2) or self.sim.knobs["hang"]:
                self.wait(0.05)
            self.sim.send("progress", {"value": i + 1, "max": steps, "prompt_id": self.prompt_id, "node": nid},
                          self.client_id)
            # Recent ComfyUI also reports every node's state (WebUIProgressHandler).
            self.sim.send("progress_state", {"prompt_id": self.prompt_id, "nodes": {nid: {
                "value": i + 1, "max": steps, "state": "running", "node_id": nid, "prompt_id": self.prompt_id,
                "display_node_id": nid, "parent_node_id": None, "real_node_id": nid}}}, self.client_id)
            if self.sim.knobs["previews"]:
                # A latent preview: binary frame, type 1 (PREVIEW_IMAGE), then image type 1 (JPEG).
                self.sim.send_binary(struct.pack(">II", 1, 1) + b"\xff\xd8\xff\xe0" + bytes(60) + b"\xff\xd9",
                                     self.client_id)

    def run_node(self, nid):
        node = self.prompt[nid]
        nd = NODES[node["class_type"]]
        if nid in self.cached:
            self.values[nid], ui = self.old_cache[self._signature(nid)]
            self.new_cache[self._signature(nid)] = (self.values[nid], ui)
            if ui:
                self._record_ui(nid, ui)
            return
        self.current = nid
        self.check()
        if self.client_id is not None:
            self.sim.last_node_id = nid
            self.sim.send("executing", {"node": nid, "display_node": nid, "prompt_id": self.prompt_id}, self.client_id)
        args = {k: self.values[v[0]][v[1]] if isinstance(v, list) else v for k, v in node["inputs"].items()}
        self.current_inputs = {k: [v if isinstance(v, (int, float, bool, str)) or v is None else str(v)]
                               for k, v in args.items()}
        if nid in self.work_nodes:
            self.sample(nid, int(args.get("steps", 1)))
        self.values[nid], ui = nd.fn(self, nid, args)
        self.new_cache[self._signature(nid)] = (self.values[nid], ui)
        if ui:
            self._record_ui(nid, ui)
        self.executed.append(nid)

    def _record_ui(self, nid, ui):
        self.ui_outputs[nid] = ui
        self.meta[nid] = {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
        if self.client_id is not None:
            self.sim.send("executed", {"node": nid, "display_node": nid, "output": ui, "prompt_id": self.prompt_id},
                          self.client_id)

    def execute(self):
        """Runs the prompt; returns its /history entry. Raises Forgotten after a simulated restart."""
        self.new_cache = {}
        self.message("execution_start", {"prompt_id": self.prompt_id})
        self.message("execution_cached", {"nodes": self.cached, "prompt_id": self.prompt_id})
        success = False
        try:
            for nid in self.order:
                self.run_node(nid)
            self.message("execution_success", {"prompt_id": self.prompt_id})
            success = True
        except Interrupted:
            self.message("execution_interrupted", self._where(), broadcast=True)
        except Forgotten:
            raise
        except Exception as ex:
            tips = OOM_TIPS if isinstance(ex, OutOfMemoryError) else ""
            self.message("execution_error", {**self._where(), "exception_message": f"{ex}\n{tips}",
                                             "exception_type": full_type_name(type(ex)),
                                             "traceback": traceback.format_tb(ex.__traceback__),
                                             "current_inputs": getattr(self, "current_inputs", {}),
                                             "current_outputs": list(self.cached)})
        with self.sim.lock:
            if self.sim.generation == self.generation and self.sim.knobs["cache"]:
                self.sim.cache = {**{s: v for s, v in self.sim.cache.items() if s in self.sigs.values()},
                                  **self.new_cache}
        return {"prompt": [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs],
                "outputs": self.ui_outputs,
                "status": {"status_str": "success" if success else "error", "completed": success,
                           "messages": self.messages},
                "meta": self.meta}

    def _where(self):
        nid = self.current or self.order[0]
        return {"prompt_id": self.prompt_id, "node_id": nid, "node_type": self.prompt[nid]["class_type"],
                "executed": list(self.executed)}


# ----------------------------------------------------------------------------- websocket

class WebSocket:
    """Server side of RFC 6455. A writer thread sends, so a stalled client never blocks the worker."""
    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, conn, rfile, wfile, sid):
        self.conn, self.rfile, self.wfile, self.sid = conn, rfile, wfile, sid
        # Frames to send, None last. A deque plus an Event costs far less per frame than a
        # queue.Queue (one lock, no Condition per put) for the ~60 frames of every prompt.
        self.outbox, self.pending, self.closed = collections.deque(), threading.Event(), False
        self.writer = threading.Thread(target=self._writer, daemon=True)
        self.writer.start()

    @classmethod
    def accept_key(cls, key):
        return base64.b64encode(hashlib.sha1((key + cls.GUID).encode()).digest()).decode()

    @staticmethod
    def frame(opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        head += bytes([n]) if n < 126 else struct.pack(">BH", 126, n) if n < 65536 else struct.pack(">BQ", 127, n)
        return head + payload

    def send_json(self, obj):
        self._put(self.frame(0x1, json.dumps(obj).encode()))

    def send_frame(self, frame):
        """An already built frame (one encoding shared by every socket of a broadcast)."""
        self._put(frame)

    def send_bytes(self, data):
        self._put(self.frame(0x2, data))

    def _put(self, data):
        if not self.closed:
            self._enqueue(data)

    def _enqueue(self, data):
        self.outbox.append(data)
        if not self.pending.is_set():  # the writer clears it before it drains the deque
            self.pending.set()

    def _writer(self):
        # Frames queued while this thread waited go out in one write: an instant prompt
        # queues ~60 frames in a burst, and a wake-up plus a send() per frame was a large
        # share of the simulator's CPU. The byte stream is the same.
        done = False
        while not done:
            self.pending.wait()
            self.pending.clear()
            batch = []
            while self.outbox:
                batch.append(self.outbox.popleft())
            if None in batch:  # the end: nothing queued after it is sent
                done, batch = True, batch[:batch.index(None)]
            if not batch:
                continue
            try:
                self.wfile.write(b"".join(batch))
            except (OSError, ValueError):  # peer gone, or the handler already closed the file
                break
        self.closed = True

    def close(self, code=1001):
        """Closes from the server side (a simulated restart): close frame, then hang up."""
        self._put(self.frame(0x8, struct.pack(">H", code)))
        self._enqueue(None)
        threading.Timer(0.2, self._hang_up).start()

    def _hang_up(self):
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) < n:
            raise EOFError()
        return data

    def serve(self):
        """Reads client frames until close or EOF, answering pings; data frames are dropped."""
        try:
            while True:
                b0, b1 = self._read_exact(2)
                n = b1 & 0x7F
                if n >= 126:
                    n = struct.unpack(">H" if n == 126 else ">Q", self._read_exact(2 if n == 126 else 8))[0]
                mask = self._read_exact(4) if b1 & 0x80 else b"\0\0\0\0"
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(self._read_exact(n)))
                opcode = b0 & 0x0F
                if opcode == 0x8:
                    self._put(self.frame(0x8, payload[:2]))
                    break
                if opcode == 0x9:
                    self._put(self.frame(0xA, payload))
        except (EOFError, OSError, ValueError):
            pass
        self._enqueue(None)
        self.writer.join(2)  # let the close reply go out before the handler closes the socket


# ----------------------------------------------------------------------------- simulator state

def annotated_filepath(sim, name, default_type):
    """'x.png [output]' names its folder, as folder_paths.annotated_filepath allows."""
    for kind in ("output", "input", "temp"):
        if name.endswith(f"[{kind}]"):
            return name[:-len(kind) - 3], sim.dir_by_type(kind)
    return name, sim.dir_by_type(default_type)


class Simulator:
    def __init__(self, args):
        self.name = args.name
        self.checkpoints = [c for c in args.checkpoints.split(",") if c]
        if args.output_dir:
            self.output_dir = os.path.abspath(args.output_dir)
            parent = os.path.dirname(self.output_dir)  # ComfyUI keeps output/, input/, temp/ side by side
        else:
            parent = tempfile.mkdtemp(prefix="comfyui_sim_")
            self.output_dir = os.path.join(parent, "output")
        self.input_dir = os.path.abspath(args.input_dir or os.path.join(parent, "input"))
        self.temp_dir = os.path.abspath(args.temp_dir or os.path.join(parent, "temp"))
        for d in (self.output_dir, self.input_dir, self.temp_dir):
            os.makedirs(d, exist_ok=True)
        self.knobs = {"run_ms": args.run_ms, "fail_next": args.fail_next, "http_500_next": args.http_500_next,
                      "hang": args.hang, "delay_ms": args.delay_ms, "cache": not args.cache_none,
                      "ws_off": args.ws_off, "ws_stall": False,
                      "previews": args.previews}
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.interrupt_flag = threading.Event()
        self.queue, self.history, self.cache, self.sockets = [], {}, {}, {}
        self.running, self.number, self.seq, self.generation, self.last_node_id = None, 0, 0, 0, None
        self.stats = {"submissions": {}, "rejected": 0, "interrupts": 0, "interrupts_effective": 0, "deletes": 0,
                      "deleted": 0, "prompts_run": 0, "succeeded": 0, "failed": 0, "interrupted": 0,
                      "restarts": 0, "http_500_served": 0, "max_outstanding": 0,
                      "history_requests": 0, "ws_opened": 0,
                      "uploads": []}
        self.log_file = open(args.log, "a", buffering=1) if args.log else sys.stderr
        self.log_lock = threading.Lock()
        self.port = None

    def log(self, line):
        with self.log_lock:
            self.log_file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {self.name}: {line}\n")
            self.log_file.flush()

    def dir_by_type(self, kind):
        return {"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir}.get(kind)

    # -- queue
    def queue_info(self):
        with self.lock:
            return {"exec_info": {"queue_remaining": len(self.queue) + (self.running is not None)}}

    def queue_snapshot(self):
        with self.lock:  # pending stays in heap order, as ComfyUI returns it
            return {"queue_running": [self.running] if self.running else [],
                    "queue_pending": [entry[3] for entry in self.queue]}

    def submit(self, data):
        """POST /prompt: (status, body)."""
        data = data if isinstance(data, dict) else {}
        with self.lock:  # ComfyUI spends a number on every POST, valid or not
            if "number" in data:
                number = float(data["number"])
            else:
                number = -self.number if data.get("front") else self.number
                self.number += 1
        if "prompt" not in data:
            return 400, {"error": _err("no_prompt", "No prompt provided", "No prompt provided", {}), "node_errors": {}}
        prompt_id = data.get("prompt_id")
        if prompt_id is None:
            prompt_id = str(uuid.uuid4())
        elif not _canonical_uuid(prompt_id):
            return 400, {"error": _err("invalid_prompt_id", "prompt_id must be a valid UUID",
                                       "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
                                       "omit it to let the server generate one", {}), "node_errors": {}}
        prompt = data["prompt"]
        if not isinstance(prompt, dict):
            raise TypeError("prompt is not an object")  # ComfyUI crashes here too: HTTP 500
        ok, error, outputs, node_errors = validate_prompt(self, prompt, data.get("partial_execution_targets"))
        extra_data = data.get("extra_data", {})
        if "client_id" in data:
            extra_data["client_id"] = data["client_id"]
        if not ok:
            with self.lock:
                self.stats["rejected"] += 1
            return 400, {"error": error, "node_errors": node_errors}
        extra_data["create_time"] = now_ms()
        with self.cond:
            self.seq += 1
            heapq.heappush(self.queue, (number, prompt_id, self.seq, [number, prompt_id, prompt, extra_data, outputs]))
            subs = self.stats["submissions"]
            subs[prompt_id] = subs.get(prompt_id, 0) + 1
            # Prompts held at once (pending + running): what a dispatcher may not exceed.
            outstanding = len(self.queue) + (self.running is not None)
            self.stats["max_outstanding"] = max(self.stats["max_outstanding"], outstanding)
            self.cond.notify()
        self.log(f"prompt {prompt_id} accepted number={number}")
        self.broadcast_status()
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": node_errors}

    def delete(self, ids):
        with self.lock:
            for pid in ids:
                self.stats["deletes"] += 1
                for i, entry in enumerate(self.queue):
                    if entry[1] == pid:  # like ComfyUI: only the first match goes
                        self.queue.pop(i)
                        heapq.heapify(self.queue)
                        self.stats["deleted"] += 1
                        break
        self.broadcast_status()

    def clear(self):
        with self.lock:
            self.queue = []
        self.broadcast_status()

    def interrupt(self, prompt_id):
        """A prompt_id interrupts only that prompt if it runs; none interrupts whatever runs."""
        with self.lock:
            self.stats["interrupts"] += 1
            hit = not prompt_id or (self.running is not None and self.running[1] == prompt_id)
            if hit:
                self.stats["interrupts_effective"] += self.running is not None
                self.interrupt_flag.set()
        return hit

    def history_json(self, prompt_id=None, max_items=None, offset=-1):
        """GET /history's body, encoded under the lock: no deep copy needed for a consistent view."""
        with self.lock:
            return json.dumps(self._history_view(prompt_id, max_items, offset)).encode()

    def _history_view(self, prompt_id, max_items, offset):
        """The entries GET /history shows (the stored objects themselves: caller holds the lock)."""
        if prompt_id is not None:
            return {prompt_id: self.history[prompt_id]} if prompt_id in self.history else {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out = {}
        for i, (k, v) in enumerate(self.history.items()):
            if i >= offset:
                out[k] = v
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def forget(self):
        """A restart: queue, history, running prompt and sockets are gone; files on disk stay."""
        with self.lock:
            self.generation += 1
            self.queue, self.history, self.cache, self.running, self.number = [], {}, {}, None, 0
            self.stats["restarts"] += 1
            self.interrupt_flag.set()  # wakes the worker so it drops the running prompt now
            sockets, self.sockets = list(self.sockets.values()), {}
        for ws in sockets:
            ws.close()

    # -- worker
    def start_worker(self):
        threading.Thread(target=self._worker, name="prompt-worker", daemon=True).start()

    def _worker(self):
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                item = heapq.heappop(self.queue)[3]
                self.running, generation = item, self.generation
                self.interrupt_flag.clear()  # a stale interrupt never hits the next prompt
                self.stats["prompts_run"] += 1
            self.broadcast_status()
            try:
                entry = PromptRun(self, item, generation).execute()
            except Forgotten:
                continue
            except Exception:  # a simulator bug: say so loudly, free the queue, keep serving
                self.log(f"simulator error on prompt {item[1]}:\n{traceback.format_exc()}")
                with self.lock:
                    if self.generation == generation:
                        self.running = None
                continue
            self._finish(item, generation, entry)

    def _finish(self, item, generation, entry):
        status = entry["status"]
        with self.lock:
            if self.generation != generation:
                return
            self.running, self.last_node_id = None, None
            if len(self.history) > HISTORY_CAP:
                self.history.pop(next(iter(self.history)))
            self.history[item[1]] = entry
            outcome = "succeeded" if status["completed"] else \
                "interrupted" if status["messages"][-1][0] == "execution_interrupted" else "failed"
            self.stats[outcome] += 1
        self.log(f"prompt {item[1]} {outcome}")
        self.broadcast_status()
        client_id = item[3].get("client_id")
        if client_id is not None:
            self.send("executing", {"node": None, "prompt_id": item[1]}, client_id)

    # -- websocket fan-out
    def send(self, event, data, sid=None):
        """To one client's socket, or to every socket when sid is None (as ComfyUI does)."""
        with self.lock:
            if self.knobs["ws_stall"]:
                return
            targets = list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        if targets:  # encoded once, and not at all when nobody listens
            frame = WebSocket.frame(0x1, json.dumps({"type": event, "data": data}).encode())
            for ws in targets:
                ws.send_frame(frame)

    def send_binary(self, data, sid=None):
        """A binary frame, addressed like send()."""
        with self.lock:
            if self.knobs["ws_stall"]:
                return
            targets = list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        for ws in targets:
            ws.send_bytes(data)

    def broadcast_status(self):
        self.send("status", {"status": self.queue_info()})

    def attach(self, ws):
        with self.lock:
            self.sockets[ws.sid] = ws
            running_client = self.running[3].get("client_id") if self.running else None
        ws.send_json({"type": "status", "data": {"status": self.queue_info(), "sid": ws.sid}})
        if running_client == ws.sid and self.last_node_id is not None:
            ws.send_json({"type": "executing", "data": {"node": self.last_node_id}})

    def detach(self, ws):
        with self.lock:
            if self.sockets.get(ws.sid) is ws:
                del self.sockets[ws.sid]

    # -- harness
    def control(self, data):
        with self.lock:
            for key in ("run_ms", "fail_next", "http_500_next", "delay_ms"):
                if key in data:
                    self.knobs[key] = int(data[key])
            for key in ("hang", "cache", "ws_off", "ws_stall", "previews"):
                if key in data:
                    self.knobs[key] = bool(data[key])
            knobs = dict(self.knobs)
            dropped = list(self.sockets.values()) if knobs["ws_off"] else []
            if dropped:
                self.sockets = {}
        for ws in dropped:
            ws.close()
        if data.get("forget"):
            self.forget()
        return knobs

    def snapshot_stats(self):
        with self.lock:
            return {**copy.deepcopy(self.stats), "name": self.name,
                    "running": self.running[1] if self.running else None, "queue_pending": len(self.queue),
                    "history": len(self.history), "knobs": dict(self.knobs),
                    "output_dir": self.output_dir, "input_dir": self.input_dir, "temp_dir": self.temp_dir}


def _canonical_uuid(value):
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


# ----------------------------------------------------------------------------- HTTP

def parse_multipart(content_type, body):
    """multipart/form-data -> {name: (filename or None, bytes)}, via the stdlib email parser."""
    if not content_type.lower().startswith("multipart/form-data"):
        return {}
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is not None and name not in fields:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive: every reply carries Content-Length

    def version_string(self):
        return "Python/3.11 aiohttp/3.11.18"

    def log_message(self, fmt, *args):
        pass  # one line per request is written by dispatch()

    def send_response(self, code, message=None):
        self.status = code
        super().send_response(code, message)

    do_GET = lambda self: self.dispatch("GET")
    do_POST = lambda self: self.dispatch("POST")
    do_PUT = lambda self: self.dispatch("PUT")
    do_DELETE = lambda self: self.dispatch("DELETE")
    do_PATCH = lambda self: self.dispatch("PATCH")

    @property
    def sim(self):
        return self.server.sim

    # -- replies
    def reply(self, status, body=b"", ctype="application/octet-stream", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body and self.request_version != "HTTP/0.9":
            # Head and body in one send(): the same bytes, one syscall and one segment
            # fewer per reply. (end_headers() adds the blank line, then flushes the buffer.)
            self._headers_buffer.extend((b"\r\n", body))
            self.flush_headers()
        else:
            self.end_headers()
            self.wfile.write(body)
        self.sent = len(body)

    def reply_json(self, status, obj):
        self.reply(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def reply_text(self, status, text):
        self.reply(status, text.encode() if isinstance(text, str) else text, "text/plain; charset=utf-8")

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                out += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    # -- routing
    ROUTES = {
        "/prompt": {"GET": "get_prompt", "POST": "post_prompt"},
        "/queue": {"GET": "get_queue", "POST": "post_queue"},
        "/interrupt": {"POST": "post_interrupt"},
        "/history": {"GET": "get_history"},
        "/history/": {"GET": "get_history_item"},
        "/view": {"GET": "get_view"},
        "/upload/image": {"POST": "post_upload"},
        "/system_stats": {"GET": "get_system_stats"},
        "/object_info": {"GET": "get_object_info"},
        "/object_info/": {"GET": "get_object_info_node"},
        "/ws": {"GET": "get_ws"},
    }
    SIM_ROUTES = {"/sim/control": {"GET": "sim_get_control", "POST": "sim_control"},
                  "/sim/stats": {"GET": "sim_stats"}}

    def dispatch(self, method):
        started, self.status, self.sent = time.monotonic(), 0, 0
        url = urlsplit(self.path)
        path, query = url.path, dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            body = self.read_body()  # always drained, or the next keep-alive request would misparse
            if path.startswith("/sim/"):
                self.route(self.SIM_ROUTES, path, method, query, body)
            else:
                self.comfy_request(path, method, query, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            self.sim.log(f"error handling {method} {path}:\n{traceback.format_exc()}")
            if not self.status:
                self.reply_text(500, AIOHTTP_500)  # what aiohttp answers for an unhandled exception
            else:
                self.close_connection = True  # a reply was half sent: this connection is unusable
        finally:
            ms = (time.monotonic() - started) * 1000
            self.sim.log(f'{self.client_address[0]} "{method} {self.path}" {self.status} {self.sent} {ms:.1f}ms')

    def comfy_request(self, path, method, query, body):
        """Every ComfyUI route, also under /api, with the harness's faults applied first."""
        with self.sim.lock:
            delay_ms = self.sim.knobs["delay_ms"]
            fault = self.sim.knobs["http_500_next"] > 0
            if fault:
                self.sim.knobs["http_500_next"] -= 1
                self.sim.stats["http_500_served"] += 1
        if delay_ms > 0:
            time.sleep(delay_ms / 1000)
        if fault:
            return self.reply_text(500, AIOHTTP_500)
        if path.startswith("/api/"):
            path = path[4:]
        self.route(self.ROUTES, path, method, query, body)

    def route(self, table, path, method, query, body):
        methods, arg = table.get(path), None
        if methods is None:
            prefix = path[:path.find("/", 1) + 1] if path.find("/", 1) > 0 else None
            if prefix in table and len(path) > len(prefix):
                methods, arg = table[prefix], path[len(prefix):]
        if methods is None:
            return self.reply_text(404, "404: Not Found")
        if method not in methods:
            return self.reply(405, b"405: Method Not Allowed", "text/plain; charset=utf-8",
                              {"Allow": ",".join(methods)})
        handler = getattr(self, "r_" + methods[method])
        return handler(query, body, arg) if arg is not None else handler(query, body)

    # -- ComfyUI routes
    def r_get_prompt(self, q, body):
        self.reply_json(200, self.sim.queue_info())

    def r_post_prompt(self, q, body):
        self.reply_json(*self.sim.submit(json.loads(body)))  # bad JSON -> 500, as in ComfyUI

    def r_get_queue(self, q, body):
        self.reply_json(200, self.sim.queue_snapshot())

    def r_post_queue(self, q, body):
        data = json.loads(body)
        if data.get("clear"):
            self.sim.clear()
        if "delete" in data:
            self.sim.delete(data["delete"])
        self.reply(200)

    def r_post_interrupt(self, q, body):
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            data = {}
        self.sim.interrupt(data.get("prompt_id"))
        self.reply(200)

    def r_get_history(self, q, body):
        max_items = int(q["max_items"]) if "max_items" in q else None
        offset = int(q["offset"]) if "offset" in q else -1
        self.reply(200, self.sim.history_json(max_items=max_items, offset=offset), "application/json; charset=utf-8")

    def r_get_history_item(self, q, body, prompt_id):
        with self.sim.lock:
            self.sim.stats["history_requests"] += 1
        self.reply(200, self.sim.history_json(prompt_id), "application/json; charset=utf-8")

    def r_get_view(self, q, body):
        if "filename" not in q:
            return self.reply(404)
        filename, base = annotated_filepath(self.sim, q["filename"], q.get("type", "output"))
        if not filename:
            return self.reply(400)
        if filename[0] == "/" or ".." in filename:
            return self.reply(400)
        if base is None:
            return self.reply(400)
        if "subfolder" in q:
            full = os.path.join(base, q["subfolder"])
            if os.path.commonpath((os.path.abspath(full), base)) != base:
                return self.reply(403)
            base = full
        filename = os.path.basename(filename)
        path = os.path.join(base, filename)
        if not os.path.isfile(path):
            return self.reply(404)
        with open(path, "rb") as f:
            data = f.read()
        self.reply(200, data, mimetypes.guess_type(filename)[0] or "application/octet-stream",
                   {"Content-Disposition": f'filename="{filename}"', "X-Content-Type-Options": "nosniff"})

    def r_post_upload(self, q, body):
        form = parse_multipart(self.headers.get("Content-Type", ""), body)
        image = form.get("image")
        if not image or not image[0]:
            return self.reply(400)
        text = lambda k: form[k][1].decode("utf-8", "replace") if k in form else None
        kind = text("type") or "input"
        upload_dir = self.sim.dir_by_type(kind)
        if upload_dir is None:
            raise ValueError(f"unknown upload type {kind!r}")  # ComfyUI fails the same way: 500
        filename, data, subfolder = image[0], image[1], text("subfolder") or ""
        folder = os.path.join(upload_dir, os.path.normpath(subfolder))
        path = os.path.abspath(os.path.join(folder, filename))
        if os.path.commonpath((upload_dir, path)) != upload_dir:
            return self.reply(400)
        os.makedirs(folder, exist_ok=True)
        stem, ext = os.path.splitext(filename)
        duplicate, i = False, 1
        if text("overwrite") not in ("true", "1"):
            while os.path.exists(path):
                with open(path, "rb") as f:
                    if f.read() == data:  # same bytes under the same name: reuse it
                        duplicate = True
                        break
                filename = f"{stem} ({i}){ext}"
                path, i = os.path.join(folder, filename), i + 1
        if not duplicate:
            with open(path, "wb") as f:
                f.write(data)
        with self.sim.lock:  # for tests: what arrived, under which name
            self.sim.stats["uploads"].append({"name": filename, "subfolder": subfolder, "type": kind,
                                              "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        self.reply_json(200, {"name": filename, "subfolder": subfolder, "type": kind})

    def r_get_system_stats(self, q, body):
        page = os.sysconf("SC_PAGE_SIZE")
        busy = self.sim.running is not None
        vram_total = 85_899_345_920
        vram_free = vram_total - (21_474_836_480 if busy else 2_147_483_648)
        self.reply_json(200, {
            "system": {"os": sys.platform, "ram_total": os.sysconf("SC_PHYS_PAGES") * page,
                       "ram_free": os.sysconf("SC_AVPHYS_PAGES") * page, "comfyui_version": "0.3.66",
                       "required_frontend_version": "1.28.8", "python_version": sys.version,
                       "pytorch_version": "2.8.0+cu128", "embedded_python": False,
                       "argv": ["main.py", "--port", str(self.sim.port)]},
            "devices": [{"name": "cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync", "type": "cuda", "index": 0,
                         "vram_total": vram_total, "vram_free": vram_free, "torch_vram_total": vram_total - vram_free,
                         "torch_vram_free": 1_073_741_824}]})

    def r_get_object_info(self, q, body):
        self.reply_json(200, {name: node_info(self.sim, nd) for name, nd in NODES.items()})

    def r_get_object_info_node(self, q, body, name):
        self.reply_json(200, {name: node_info(self.sim, NODES[name])} if name in NODES else {})

    def r_get_ws(self, q, body):
        key = self.headers.get("Sec-WebSocket-Key")
        upgrade = "" if self.sim.knobs["ws_off"] else self.headers.get("Upgrade", "")
        if upgrade.lower() != "websocket" or not key:
            return self.reply_text(400, 'No WebSocket UPGRADE hdr: None\n Can "Upgrade" only to "WebSocket".')
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", WebSocket.accept_key(key))
        self.end_headers()
        self.close_connection = True
        ws = WebSocket(self.connection, self.rfile, self.wfile, q.get("clientId") or uuid.uuid4().hex)
        self.sim.log(f'{self.client_address[0]} "GET {self.path}" 101 websocket open sid={ws.sid}')
        with self.sim.lock:
            self.sim.stats["ws_opened"] += 1
        self.sim.attach(ws)
        ws.serve()  # client text frames are read and ignored
        self.sim.detach(ws)

    # -- harness routes (not ComfyUI)
    def r_sim_get_control(self, q, body):
        self.reply_json(200, self.sim.control({}))

    def r_sim_control(self, q, body):
        data = json.loads(body or b"{}")
        knobs = self.sim.control(data)
        if data.get("crash"):
            self.reply_json(200, {"crashing": True})
            self.sim.log("crash requested: exiting with status 1")
            os._exit(1)
        self.reply_json(200, knobs)

    def r_sim_stats(self, q, body):
        self.reply_json(200, self.sim.snapshot_stats())


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a client opening more
    # connections at once than that (genqd with a deep prefetch) got
    # resets, not the server's answers. A real server listens with more.
    request_queue_size = 128

    def __init__(self, address, sim, tls=None):
        self.sim = sim
        self.tls = tls  # an ssl.SSLContext: HTTP and /ws both over TLS
        super().__init__(address, Handler)

    def get_request(self):
        # aiohttp (ComfyUI's server) sets TCP_NODELAY; without it a reply
        # written as headers then body waits ~40 ms for a delayed ACK.
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            # The handshake waits for the request's own thread (finish_request):
            # a slow or hostile client must not hold up accept().
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def finish_request(self, request, client_address):
        if self.tls is not None:
            try:
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                # A client that does not trust our certificate ends up here.
                self.sim.log(f"tls handshake failed from {client_address[0]}: {e}")
                with self.sim.lock:
                    self.sim.stats["tls_handshakes_failed"] = self.sim.stats.get("tls_handshakes_failed", 0) + 1
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            self.sim.log(f"connection error from {client_address}:\n{traceback.format_exc()}")


# ----------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="Simulated ComfyUI server for genq tests.")
    p.add_argument("--port", type=int, required=True, help="0 picks a free port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--run-ms", type=int, default=200, help="default run time of one prompt")
    p.add_argument("--output-dir", help="default: a fresh temporary directory")
    p.add_argument("--input-dir", help="default: input/ beside the output dir")
    p.add_argument("--temp-dir", help="default: temp/ beside the output dir")
    p.add_argument("--name", default="comfyui-sim", help="tag for log lines")
    p.add_argument("--pidfile")
    p.add_argument("--log", help="request log file (default: stderr)")
    p.add_argument("--checkpoints", default="sd15.safetensors,sdxl.safetensors")
    p.add_argument("--fail-next", type=int, default=0, help="the next N prompts fail")
    p.add_argument("--http-500-next", type=int, default=0, help="the next N ComfyUI requests answer 500")
    p.add_argument("--hang", action="store_true", help="prompts stall until interrupted (or hang is cleared)")
    p.add_argument("--delay-ms", type=int, default=0, help="latency added to every ComfyUI reply")
    p.add_argument("--cache-none", action="store_true", help="like ComfyUI's --cache-none: rerun every node")
    p.add_argument("--ws-off", action="store_true", help="/ws refuses the WebSocket upgrade")
    p.add_argument("--previews", action="store_true", help="send binary latent previews while sampling")
    p.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTP and /ws over TLS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return args


def tls_context(args):
    if not args.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    return ctx


def main(argv=None):
    args = parse_args(argv)
    sim = Simulator(args)
    server = SimHTTPServer((args.host, args.port), sim, tls_context(args))
    sim.port = server.server_address[1]
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sim.start_worker()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    sim.log(f"listening on {args.host}:{sim.port} tls={'on' if server.tls else 'off'} "
            f"output={sim.output_dir} input={sim.input_dir}")
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
