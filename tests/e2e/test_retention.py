"""Output retention (SPEC §6): with [storage] retention_days set, genqd
deletes output files of jobs that finished longer ago than that, marks
their rows deleted_at, and the API says so: the job's output entry has no
url and a deleted_at, and GET .../outputs/{n} answers 404 not_found.
Younger outputs stay."""

import os
import time

import harness
from harness import StackTestCase, load_workflow


class RetentionTest(StackTestCase):

    backends = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = cls.stack.add_user("carol", tier="pro", credits="20")

    def restart_genqd_with_storage(self, *settings):
        """Stop genqd and start it again with extra [storage] settings."""
        st = self.stack
        with open(st.config_path) as f:
            lines = f.read().split("\n")
        at = lines.index("[storage]") + 1
        path = st.path("genqd-retention.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines[:at] + list(settings) + lines[at:]))
        st.stop("genqd")
        st.start_genqd(config=path)

    def output_file(self, job_id, n=0):
        rel = self.stack.scalar(
            "SELECT o.path FROM job_outputs o JOIN jobs j ON j.seq = o.job_seq "
            f"WHERE j.id = '{job_id}' AND o.idx = {n}")
        return os.path.join(self.stack.path("outputs"), rel)

    def move_to_old_layout(self, job_id):
        """Put a job's output where stores before the shard layout had it,
        <job id>/0.<ext> (daemon/store.h), and point its row there."""
        src = self.output_file(job_id)
        rel = f"{job_id}/0{os.path.splitext(src)[1]}"
        dst = os.path.join(self.stack.path("outputs"), rel)
        os.mkdir(os.path.dirname(dst))
        os.rename(src, dst)
        self.stack.sql(f"UPDATE job_outputs o JOIN jobs j ON j.seq = o.job_seq SET o.path = "
                       f"'{rel}' WHERE j.id = '{job_id}'", database="genq")
        return dst

    def test_old_outputs_are_deleted_and_the_api_says_so(self):
        old = self.submit(self.key, load_workflow(text="an old picture"))
        older = self.submit(self.key, load_workflow(text="an older picture"))
        young = self.submit(self.key, load_workflow(text="a new picture"))
        for job in (old, older, young):
            self.assertEqual(self.wait_terminal(self.key, job["id"])["status"], "succeeded")
        old_file, young_file = self.output_file(old["id"]), self.output_file(young["id"])
        self.assertTrue(os.path.isfile(old_file))
        self.assertTrue(os.path.isfile(young_file))
        # Sharded by the id's first two hex digits, not a folder per job.
        self.assertEqual(os.path.relpath(old_file, self.stack.path("outputs")),
                         f"{old['id'][:2]}/{old['id']}.0.png")
        older_file = self.move_to_old_layout(older["id"])

        # The old jobs ended two days ago, as far as their output rows know.
        for job in (old, older):
            self.stack.sql(
                "UPDATE job_outputs o JOIN jobs j ON j.seq = o.job_seq "
                "SET o.created_at = o.created_at - INTERVAL 2 DAY, "
                "j.finished_at = j.finished_at - INTERVAL 2 DAY "
                f"WHERE j.id = '{job['id']}'", database="genq")
        self.restart_genqd_with_storage("retention_days = 1")

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.stack.scalar(
                    "SELECT COUNT(*) FROM job_outputs o JOIN jobs j ON j.seq = o.job_seq "
                    f"WHERE j.id IN ('{old['id']}', '{older['id']}') "
                    "AND o.deleted_at IS NOT NULL") == "2":
                break
            time.sleep(0.1)
        else:
            self.fail("retention never marked the old outputs deleted")

        self.assertFalse(os.path.exists(old_file))
        self.assertFalse(os.path.exists(older_file))
        # An old layout's job folder goes with its last file; shards stay.
        self.assertFalse(os.path.exists(os.path.dirname(older_file)))
        self.assertTrue(os.path.isdir(os.path.dirname(old_file)))
        job = self.api("GET", f"/v1/jobs/{old['id']}", key=self.key).json
        self.assertEqual(job["status"], "succeeded")     # terminal states never change
        entry = job["outputs"][0]
        self.assertIsNone(entry["url"])
        self.assertTrue(entry["deleted_at"])
        self.assertEqual(entry["content_type"], "image/png")   # what it was stays known
        r = self.api("GET", f"/v1/jobs/{old['id']}/outputs/0", key=self.key)
        self.assertProblem(r, 404, "not_found")
        self.assertIn("retention", r.json["detail"])

        # The young job keeps its file and its url.
        self.assertTrue(os.path.isfile(young_file))
        job = self.api("GET", f"/v1/jobs/{young['id']}", key=self.key).json
        self.assertTrue(job["outputs"][0]["url"])
        self.assertNotIn("deleted_at", job["outputs"][0])
        r = self.api("GET", f"/v1/jobs/{young['id']}/outputs/0", key=self.key)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body[:8], b"\x89PNG\r\n\x1a\n")

    def test_a_child_of_a_parent_whose_output_was_deleted_fails(self):
        parent = self.submit(self.key, load_workflow(text="short-lived parent"))
        self.assertEqual(self.wait_terminal(self.key, parent["id"])["status"], "succeeded")
        self.stack.sql(
            "UPDATE job_outputs o JOIN jobs j ON j.seq = o.job_seq "
            "SET o.deleted_at = UTC_TIMESTAMP(6) "
            f"WHERE j.id = '{parent['id']}'", database="genq")
        child = self.submit(self.key, {"queue": "image", "after": [parent["id"]], "input": {
            "1": {"class_type": "LoadImage", "inputs": {"image": "genq:after/0/outputs/0"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "c"}},
        }})
        done = self.wait_terminal(self.key, child["id"])
        self.assertEqual(done["status"], "failed", done)
        self.assertEqual(done["error"]["code"], "dependency_failed")
        self.assertIn("deleted", done["error"]["message"])


if __name__ == "__main__":
    harness.main()
