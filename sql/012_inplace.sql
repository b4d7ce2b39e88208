-- genq schema 012: a job's busy transitions update its rows in place.
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.
--
-- A claim sets a queued job's backend, prompt, claimant, lease and start
-- time, all NULL until then, and its completion sets finished_at and the
-- attempt's outcome. In the compact row formats a NULL column takes no
-- room, so each of those updates grew the row: InnoDB moved it within its
-- page, and a page full of moved rows had to be reorganized (copied and
-- redo-logged whole). ROW_FORMAT=REDUNDANT keeps the room of a NULL
-- fixed-length column, and the two variable-length columns those updates
-- set become fixed-length ASCII, so every column a claim or a completion
-- writes keeps its size and the row is updated where it stands.
-- bench/dispatch.py drain --openai: redo 6.0 KB a job before, 3.1 KB after;
-- page reorganizations 0.27 to 0.42 a job before, 0.07 after.
-- claimed_by holds a genqd id ([daemon] id: visible ASCII, at most 100).
ALTER TABLE jobs ROW_FORMAT=REDUNDANT,
  MODIFY claimed_by CHAR(100) CHARACTER SET ascii COLLATE ascii_bin NULL;
ALTER TABLE job_attempts ROW_FORMAT=REDUNDANT,
  MODIFY outcome CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL;
