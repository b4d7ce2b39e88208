-- genq schema 004: `after` dependencies (SPEC §2, §4) and output retention (§6).
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.

-- One row per (child, parent): the child waits in 'waiting' until every
-- parent succeeded, and fails with dependency_failed when one does not.
-- `pos` is the parent's place in the child's `after` list (0-based): the
-- child's input names parent outputs by it ("genq:after/<pos>/outputs/<n>").
-- The state is derived from these rows and the jobs' statuses alone, so a
-- genqd that dies in the middle of resolving loses nothing.
CREATE TABLE job_deps (
  child       BIGINT UNSIGNED NOT NULL,     -- jobs.seq of the waiting job
  parent      BIGINT UNSIGNED NOT NULL,     -- jobs.seq of the job it waits for
  pos         TINYINT UNSIGNED NOT NULL,
  PRIMARY KEY (child, parent),
  UNIQUE KEY job_deps_pos (child, pos),
  KEY job_deps_parent (parent)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Retention walks the files still on disk, oldest first: a range of this
-- index, so each batch costs the same however many outputs were kept.
CREATE INDEX job_outputs_retention ON job_outputs (deleted_at, created_at);
