-- genq schema 010: a retry prefers another backend (SPEC §4).
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.
--
-- The backend the last failed attempt ran on, set when a running job goes
-- back to queued for a retry and cleared when it starts again. The claim
-- keeps such a job from that backend for a short grace period so another
-- backend gets the first chance (daemon/claim.c). No index: it is read only
-- with the heads the claim already locked.
ALTER TABLE jobs
  ADD COLUMN retry_avoid_backend INT UNSIGNED NULL AFTER backend_id;
