-- genq schema 008: indexes for reads that grew with the jobs table.
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.
--
-- GET /v1/jobs without a status filter walks a user's jobs newest first:
-- (user_id, seq) serves that order directly instead of sorting every job
-- the user ever had.
-- GET /v1/queues, /metrics and the reporting views read the last hour's
-- finished jobs: (status, finished_at) makes that a range per terminal
-- status instead of a scan of all of them.
ALTER TABLE jobs
  ADD KEY jobs_user_seq (user_id, seq),
  ADD KEY jobs_finished (status, finished_at);
