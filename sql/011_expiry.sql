-- genq schema 011: the ttl sweep reads only the jobs that have expired.
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.
--
-- A queued job expires ttl_s after the later of its creation and its last
-- retry's not-before (SPEC §4). As a computed column with an index, the
-- sweep (daemon/sweep.c) finds the expired ones with one index range
-- instead of reading every queued job every few seconds, so its cost does
-- not grow with the depth of the queue (SPEC §8, bench/dispatch.py scale).
ALTER TABLE jobs
  ADD COLUMN expires_at DATETIME(6)
    AS (GREATEST(created_at, not_before) + INTERVAL ttl_s SECOND) PERSISTENT AFTER not_before,
  ADD KEY jobs_expiry (status, expires_at);
