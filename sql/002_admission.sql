-- genq schema, version 2: what admission needs beyond the job row (SPEC §2, §3).
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.

-- The submit token bucket of each user, kept as GCRA's "theoretical arrival
-- time": with T = 60 s / tiers.rate_per_min and a bucket of rate_burst
-- tokens, a submit at time now is admitted when GREATEST(tat, now) + T - now
-- <= rate_burst * T, and then tat becomes GREATEST(tat, now) + T. One
-- timestamp per user is the whole state, updated while the submit holds the
-- user's row lock, so every handler process on every host shares it. No row
-- yet: a full bucket.
CREATE TABLE rate_buckets (
  user_id     BIGINT UNSIGNED NOT NULL,
  tat         DATETIME(6)  NOT NULL,
  PRIMARY KEY (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Idempotency-Key of POST /v1/jobs: one row per (user, key) for 24 hours.
-- 'in_flight' while the first request with the key is being admitted
-- (owner = the id of the job that request will create); 'done' once the
-- job exists, with the answer written in the job's own transaction. A
-- refused request deletes its row, so the client may fix the cause and send
-- the key again. Rows older than 24 hours are ignored and purged.
CREATE TABLE idempotency_keys (
  user_id       BIGINT UNSIGNED NOT NULL,
  idem_key      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  request_hash  CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- SHA-256 of the body
  state         ENUM('in_flight','done') NOT NULL,
  owner         CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status        SMALLINT     NULL,
  body          MEDIUMTEXT   NULL,
  created_at    DATETIME(6)  NOT NULL,
  updated_at    DATETIME(6)  NOT NULL,
  PRIMARY KEY (user_id, idem_key),
  KEY idempotency_keys_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Monthly quotas count one user's jobs in one queue created since the first
-- of the month by status: a range of this index, no table rows read.
CREATE INDEX jobs_quota ON jobs (user_id, queue, created_at, status);
