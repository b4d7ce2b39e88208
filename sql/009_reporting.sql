-- genq schema 009: reporting views (SPEC §10), for analysts with plain
-- MySQL/MariaDB clients and a read-only account (docs/reporting.md). They
-- read the live tables; money is in credits (the tables keep micro-credits).
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.

-- Jobs created per day, queue and current status.
CREATE OR REPLACE SQL SECURITY DEFINER VIEW report_jobs_daily AS
SELECT DATE(created_at) AS day, queue, status, COUNT(*) AS jobs,
       SUM(cost_charged) / 1000000 AS credits_charged
FROM jobs GROUP BY DATE(created_at), queue, status;

-- Wait (created to first start) and run (first start to finish) time
-- percentiles of the jobs that succeeded, per day of finishing and queue.
CREATE OR REPLACE SQL SECURITY DEFINER VIEW report_times_daily AS
SELECT DISTINCT day, queue,
  COUNT(*) OVER (PARTITION BY day, queue) AS jobs,
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY wait_s) OVER (PARTITION BY day, queue) AS wait_p50_s,
  PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY wait_s) OVER (PARTITION BY day, queue) AS wait_p90_s,
  PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY wait_s) OVER (PARTITION BY day, queue) AS wait_p99_s,
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY run_s) OVER (PARTITION BY day, queue) AS run_p50_s,
  PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY run_s) OVER (PARTITION BY day, queue) AS run_p90_s,
  PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY run_s) OVER (PARTITION BY day, queue) AS run_p99_s
FROM (SELECT DATE(finished_at) AS day, queue,
             TIMESTAMPDIFF(MICROSECOND, created_at, started_at) / 1000000 AS wait_s,
             TIMESTAMPDIFF(MICROSECOND, started_at, finished_at) / 1000000 AS run_s
      FROM jobs WHERE status = 'succeeded') s;

-- GPU time: seconds each finished attempt held a backend (from the backend
-- accepting the prompt, or from the claim when that is unknown, to the end),
-- per day, backend, queue and user; sum over the columns you do not need.
CREATE OR REPLACE SQL SECURITY DEFINER VIEW report_gpu_seconds_daily AS
SELECT DATE(a.started_at) AS day, COALESCE(b.name, CONCAT('#', a.backend_id)) AS backend,
       j.queue, u.name AS user, COUNT(*) AS attempts,
       SUM(TIMESTAMPDIFF(MICROSECOND, COALESCE(a.submitted_at, a.started_at), a.finished_at)) / 1000000 AS busy_s
FROM job_attempts a JOIN jobs j ON j.seq = a.job_seq JOIN users u ON u.id = j.user_id
LEFT JOIN backends b ON b.id = a.backend_id
WHERE a.finished_at IS NOT NULL
GROUP BY DATE(a.started_at), COALESCE(b.name, CONCAT('#', a.backend_id)), j.queue, u.name;

-- Credit movements per day, user and kind (grant, hold, charge, release,
-- adjust; holds and charges are negative).
CREATE OR REPLACE SQL SECURITY DEFINER VIEW report_credits_daily AS
SELECT DATE(l.at) AS day, u.name AS user, l.kind, COUNT(*) AS entries,
       SUM(l.amount) / 1000000 AS credits
FROM ledger l JOIN users u ON u.id = l.user_id
GROUP BY DATE(l.at), u.name, l.kind;

-- Each user's available credits and open holds now.
CREATE OR REPLACE SQL SECURITY DEFINER VIEW report_balances AS
SELECT u.name AS user, u.tier, u.balance / 1000000 AS available,
       COALESCE(SUM(j.cost_held), 0) / 1000000 AS held
FROM users u LEFT JOIN jobs j ON j.user_id = u.id AND j.status IN ('held', 'waiting', 'queued', 'running')
GROUP BY u.id, u.name, u.tier, u.balance;

-- Monthly quota use per user and queue (SPEC §5: succeeded and active jobs
-- count), with the tier's quota (NULL: unlimited).
CREATE OR REPLACE SQL SECURITY DEFINER VIEW report_quota_use AS
SELECT DATE_FORMAT(j.created_at, '%Y-%m') AS month, u.name AS user, u.tier, j.queue,
       SUM(j.status IN ('succeeded', 'held', 'waiting', 'queued', 'running')) AS used,
       q.monthly_jobs AS quota
FROM jobs j JOIN users u ON u.id = j.user_id
LEFT JOIN tier_quotas q ON q.tier = u.tier AND q.queue = j.queue
GROUP BY DATE_FORMAT(j.created_at, '%Y-%m'), u.name, u.tier, j.queue, q.monthly_jobs;
