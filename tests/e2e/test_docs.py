"""docs/api.md and docs/openapi.json against the real stack.

Every ```sh block of docs/api.md is run with bash, in document order, with
the variables the document names (GENQ_URL, GENQ_KEY, GENQ_ADMIN_KEY,
JOB_ID, HELD_JOB_ID, HELD_JOB_ID2) set; it must exit 0. When a ```json block
follows it (before the next ```sh block), that is the documented answer:
the command's output must be JSON with the same fields (every documented key
present, no undocumented key, recursively through objects).

docs/openapi.json must be OpenAPI 3.1, and every path in it must be one the
router knows, with exactly the documented methods: a DELETE (which no route
takes) answers 405 with an Allow header listing them, and /metrics counts
the request under the same path pattern. Every problem code of
fcgi/resp.c's table is documented.

`python3 tests/e2e/test_docs.py --print` runs the examples and prints their
output, for writing the document."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import harness
from harness import SRCDIR, StackTestCase, load_workflow

API_MD = os.path.join(SRCDIR, "docs", "api.md")
OPENAPI = os.path.join(SRCDIR, "docs", "openapi.json")
FENCE = re.compile(r"^```(\w*)\s*$")


def blocks(path):
    """The fenced blocks of a Markdown file: [(tag, text, line)]."""
    out, tag, lines, start = [], None, [], 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            m = FENCE.match(line.rstrip("\n"))
            if tag is None and m:
                tag, lines, start = m.group(1), [], n
            elif tag is not None and line.rstrip("\n") == "```":
                out.append((tag, "".join(lines), start))
                tag = None
            elif tag is not None:
                lines.append(line)
    return out


def examples(path):
    """[(command, documented JSON text or None, line)] in document order."""
    found, pending = [], None
    for tag, text, line in blocks(path):
        if tag == "sh":
            if pending:
                found.append(pending)
            pending = (text, None, line)
        elif tag == "json" and pending and pending[1] is None:
            found.append((pending[0], text, pending[2]))
            pending = None
    if pending:
        found.append(pending)
    return found


# Objects keyed by names (queues), not by fields: only their values' shapes count.
MAPS = {"$.quota.queues"}


def shape_errors(doc, real, where="$"):
    """How real's fields differ from the documented example's."""
    errs = []
    if where in MAPS and isinstance(doc, dict) and isinstance(real, dict):
        if doc and real:
            errs += shape_errors(next(iter(doc.values())), next(iter(real.values())), where + "[*]")
    elif isinstance(doc, dict) and isinstance(real, dict):
        for k in doc.keys() - real.keys():
            errs.append(f"{where}.{k}: documented but not in the answer")
        for k in real.keys() - doc.keys():
            errs.append(f"{where}.{k}: in the answer but not documented")
        for k in doc.keys() & real.keys():
            errs += shape_errors(doc[k], real[k], f"{where}.{k}")
    elif isinstance(doc, list) and isinstance(real, list) and doc and real:
        errs += shape_errors(doc[0], real[0], where + "[0]")
    return errs


class DocsTest(StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The dev stack's names, so the examples read as they would there.
        cls.key = cls.stack.add_user("demo", tier="pro", credits="100")
        cls.admin = cls.stack.add_user("ops", tier="pro", credits="", admin=True)
        cls.stack.genqctl("queue", "add", "reviewed", "--requires-approval", "--price-per-job", "2")
        job = cls._submit(load_workflow(text="for the docs"))
        cls.held = [cls._submit(load_workflow(queue="reviewed", text=f"held {i}"))
                    for i in range(2)]
        cls.job = job
        cls.env = dict(os.environ, GENQ_URL=cls.url, GENQ_KEY=cls.key,
                       GENQ_ADMIN_KEY=cls.admin, JOB_ID=job,
                       HELD_JOB_ID=cls.held[0], HELD_JOB_ID2=cls.held[1])

    @classmethod
    def _submit(cls, body):
        r = harness.request(cls.url + "/v1/jobs", method="POST", body=body, key=cls.key)
        assert r.status == 201, r.body
        return r.json["id"]

    def run_examples(self, report=None):
        self.wait_terminal(self.key, self.job)
        work = tempfile.mkdtemp(prefix="genq-docs-")
        try:
            # The examples name files of the source tree by relative path.
            os.symlink(os.path.join(SRCDIR, "examples"), os.path.join(work, "examples"))
            for cmd, doc, line in examples(API_MD):
                proc = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], cwd=work,
                                      env=self.env, capture_output=True, text=True, timeout=60)
                if report is not None:
                    report(cmd, proc, line)
                    continue
                with self.subTest(line=line, command=cmd.strip()):
                    self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
                    self.assertTrue(proc.stdout.strip() or doc is None, "no output")
                    if doc is None:
                        continue
                    real = json.loads(proc.stdout)
                    documented = json.loads(doc)
                    self.assertEqual(shape_errors(documented, real), [], proc.stdout)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def test_every_sh_example_runs_and_answers_the_documented_shape(self):
        found = examples(API_MD)
        self.assertGreaterEqual(len(found), 15)
        self.assertGreaterEqual(sum(1 for _, doc, _ in found if doc), 12)
        self.run_examples()

    def test_openapi_paths_are_the_routers(self):
        with open(OPENAPI) as f:
            spec = json.load(f)
        self.assertTrue(spec["openapi"].startswith("3.1."))
        self.assertTrue(spec["paths"])
        with open(API_MD) as f:
            md = f.read()
        samples = {"id": str(uuid.uuid4()), "n": "0", "name": "image"}
        for path, item in spec["paths"].items():
            methods = {m.upper() for m in item if m in ("get", "post", "put", "patch", "delete")}
            self.assertTrue(path in md, f"{path} is not in docs/api.md")
            url = re.sub(r"\{(\w+)\}", lambda m: samples[m.group(1)], path)
            with self.subTest(path=path):
                r = self.api("DELETE", url, key=self.admin)
                self.assertProblem(r, 405, "method_not_allowed")
                allow = {m.strip() for m in r.headers["Allow"].split(",")}
                want = methods | ({"HEAD"} if "GET" in methods else set())
                self.assertEqual(allow, want)
                for op in item.values():
                    if isinstance(op, dict) and "responses" in op:
                        self.assertTrue(op["responses"], f"{path}: no responses")
        # The router filed each of those DELETEs under the documented pattern.
        text = self.api("GET", "/metrics").body.decode()
        counted = set(re.findall(r'genq_http_requests_total\{route="([^"]+)",code="405"\}', text))
        self.assertEqual(counted, set(spec["paths"]))

    def test_every_problem_code_is_documented(self):
        with open(os.path.join(SRCDIR, "fcgi", "resp.c")) as f:
            codes = re.findall(r'\[P_\w+\] = \{ \d+, "(\w+)"', f.read())
        self.assertGreater(len(codes), 10)
        with open(API_MD) as f:
            md = f.read()
        with open(OPENAPI) as f:
            spec = f.read()
        for code in codes:
            self.assertTrue(f"`{code}`" in md, f"{code} is not in docs/api.md")
            self.assertIn(f'"{code}"', spec)

    def test_shape_check_can_fail(self):
        self.assertTrue(shape_errors({"a": 1, "b": {"c": 1}}, {"a": 1, "b": {}}))
        self.assertTrue(shape_errors({"a": 1}, {"a": 1, "x": 2}))
        self.assertEqual(shape_errors({"a": [{"k": 1}]}, {"a": [{"k": 2}]}), [])


def print_examples():
    """Run the examples once and show what they print (for writing docs)."""
    case = DocsTest("run_examples")
    DocsTest.setUpClass()
    try:
        def show(cmd, proc, line):
            print(f"----- line {line} rc={proc.returncode}\n{cmd}{proc.stdout}{proc.stderr}")
            try:
                print(json.dumps(json.loads(proc.stdout), indent=2))
            except ValueError:
                pass
        case.run_examples(report=show)
    finally:
        DocsTest.tearDownClass()


if __name__ == "__main__":
    if sys.argv[1:] == ["--print"]:
        print_examples()
    else:
        harness.main()
