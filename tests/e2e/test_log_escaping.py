"""Log lines stay one key=value record whatever outside data they carry
(SPEC §10, issue 3): a backend message that echoes a user's input, with
quotes, '=' and a forged pair in it, is written escaped inside its quotes,
so a logfmt reader sees exactly the pairs genqd meant to write."""

import os
import re

import harness
from harness import StackTestCase, load_workflow

# A logfmt pair: key=bare or key="escaped" (\" and \\ inside quotes).
PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def parse_logfmt(line):
    """The pairs of one line; raises ValueError when it is not logfmt."""
    pairs, at = [], 0
    while at < len(line):
        m = PAIR.match(line, at)
        if m is None:
            raise ValueError(f"not logfmt at {at}: {line[at:at + 40]!r}")
        pairs.append((m.group(1), m.group(2)))
        at = m.end()
    return pairs


class LogEscapingTest(StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("mallory", tier="pro", credits="50")

    def read_log(self, name):
        with open(os.path.join(self.stack.logdir, name), "rb") as f:
            data = f.read()
        # Valid UTF-8 throughout: this raises otherwise.
        return data.decode("utf-8").splitlines()

    def test_backend_message_echoing_user_input_cannot_forge_pairs(self):
        # The simulator, like ComfyUI, answers an unknown checkpoint with
        # "ckpt_name: '<value>' not in [...]": the value comes back verbatim.
        hostile = 'x" forged="yes" level="error \\ caf\u00e9'
        job = self.submit(self.key, load_workflow(ckpt=hostile))
        done = self.wait_terminal(self.key, job["id"])
        self.assertEqual(done["status"], "failed", done)
        self.assertEqual(done["error"]["code"], "validation_error", done)

        lines = [ln for ln in self.read_log("genqd.log")
                 if "event=job_failed" in ln and f"job={job['id']}" in ln]
        self.assertEqual(len(lines), 1, lines)
        pairs = parse_logfmt(lines[0])
        keys = [k for k, _ in pairs]
        self.assertNotIn("forged", keys, lines[0])
        self.assertEqual(keys.count("level"), 1, lines[0])
        msg = dict(pairs)["msg"]
        # The message is all there, escaped, and reads back to the original.
        self.assertIn(repr(hostile), re.sub(r'\\(.)', r'\1', msg[1:-1]), msg)
        self.assertIn('x\\" forged=\\"yes\\"', msg)

    def test_every_log_line_is_logfmt(self):
        # Whatever ran before in this module: genqd's and the handler's
        # lines all parse as pairs.
        job = self.submit(self.key, load_workflow(ckpt='a"b'))
        self.wait_terminal(self.key, job["id"])
        for name in ("genqd.log", "genq-fcgi.log"):
            for line in self.read_log(name):
                if not line.startswith("ts="):
                    continue        # a sanitizer or libc line, not ours
                parse_logfmt(line)


if __name__ == "__main__":
    harness.main()
