-- genq schema, version 1.
-- Rules that keep this portable to a Galera cluster: InnoDB only, every table
-- has a primary key, times are DATETIME(6) in UTC (every connection sets
-- time_zone = '+00:00'). Money-like amounts are BIGINT micro-credits
-- (1 credit = 1,000,000) so arithmetic is exact.
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.

CREATE TABLE tiers (
  name          VARCHAR(32)  NOT NULL,
  priority      TINYINT      NOT NULL DEFAULT 2,      -- 0 runs first .. 3 last
  max_active    INT          NOT NULL DEFAULT 1,      -- queued+held+waiting+running
  rate_per_min  INT          NOT NULL DEFAULT 10,     -- submit token bucket refill
  rate_burst    INT          NOT NULL DEFAULT 10,     -- token bucket size
  created_at    DATETIME(6)  NOT NULL DEFAULT UTC_TIMESTAMP(6),
  PRIMARY KEY (name),
  CONSTRAINT tiers_priority CHECK (priority BETWEEN 0 AND 3),
  CONSTRAINT tiers_max_active CHECK (max_active >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Monthly per-queue job quota of a tier (absent row: unlimited).
CREATE TABLE tier_quotas (
  tier          VARCHAR(32)  NOT NULL,
  queue         VARCHAR(32)  NOT NULL,
  monthly_jobs  INT          NOT NULL,
  PRIMARY KEY (tier, queue)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE users (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name            VARCHAR(64)  NOT NULL,
  tier            VARCHAR(32)  NOT NULL,
  -- Available credits; always equal to SUM(ledger.amount) for the user.
  balance         BIGINT       NOT NULL DEFAULT 0,
  webhook_secret  VARCHAR(128) NULL,
  created_at      DATETIME(6)  NOT NULL DEFAULT UTC_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY users_name (name),
  CONSTRAINT users_balance CHECK (balance >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE api_keys (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  user_id       BIGINT UNSIGNED NOT NULL,
  prefix        CHAR(11)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- "gq_XXXXXXXX"
  secret_hash   BINARY(32)   NOT NULL,                  -- SHA-256 of the whole key
  is_admin      TINYINT(1)   NOT NULL DEFAULT 0,
  created_at    DATETIME(6)  NOT NULL DEFAULT UTC_TIMESTAMP(6),
  revoked_at    DATETIME(6)  NULL,
  PRIMARY KEY (id),
  UNIQUE KEY api_keys_prefix (prefix),
  KEY api_keys_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE queues (
  name              VARCHAR(32)  NOT NULL,
  price_per_job     BIGINT       NOT NULL DEFAULT 0,     -- micro-credits
  price_per_second  BIGINT       NOT NULL DEFAULT 0,     -- micro-credits per second of run
  timeout_s         INT          NOT NULL DEFAULT 600,   -- one attempt's run time
  ttl_s             INT          NOT NULL DEFAULT 86400, -- time allowed in the queue
  max_attempts      INT          NOT NULL DEFAULT 3,
  max_queued        INT          NOT NULL DEFAULT 10000,
  requires_approval TINYINT(1)   NOT NULL DEFAULT 0,
  priority_aging_s  INT          NOT NULL DEFAULT 0,     -- 0 = no aging
  paused            TINYINT(1)   NOT NULL DEFAULT 0,
  created_at        DATETIME(6)  NOT NULL DEFAULT UTC_TIMESTAMP(6),
  PRIMARY KEY (name),
  CONSTRAINT queues_prices CHECK (price_per_job >= 0 AND price_per_second >= 0),
  CONSTRAINT queues_limits CHECK (timeout_s > 0 AND ttl_s > 0 AND max_attempts > 0 AND max_queued >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE backends (
  id              INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name            VARCHAR(64)  NOT NULL,
  type            ENUM('comfyui','openai') NOT NULL,
  url             VARCHAR(1024) NOT NULL,
  max_running     INT          NOT NULL DEFAULT 1,
  prefetch        INT          NOT NULL DEFAULT 1,
  draining        TINYINT(1)   NOT NULL DEFAULT 0,
  healthy         TINYINT(1)   NOT NULL DEFAULT 1,
  fail_count      INT          NOT NULL DEFAULT 0,      -- consecutive failed probes/requests
  last_ok_at      DATETIME(6)  NULL,
  -- The genqd that drives this backend, until lease_until.
  lease_owner     VARCHAR(128) NULL,
  lease_until     DATETIME(6)  NULL,
  created_at      DATETIME(6)  NOT NULL DEFAULT UTC_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY backends_name (name),
  CONSTRAINT backends_capacity CHECK (max_running >= 1 AND prefetch >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE backend_queues (
  backend_id  INT UNSIGNED NOT NULL,
  queue       VARCHAR(32)  NOT NULL,
  PRIMARY KEY (backend_id, queue),
  KEY backend_queues_queue (queue)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE jobs (
  seq             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,  -- internal key, age order
  id              CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- public UUIDv4
  user_id         BIGINT UNSIGNED NOT NULL,
  queue           VARCHAR(32)  NOT NULL,
  status          ENUM('held','waiting','queued','running','succeeded','failed','canceled','expired') NOT NULL,
  priority        TINYINT      NOT NULL,
  input           MEDIUMTEXT   NOT NULL,                 -- opaque JSON for the backend
  metadata        TEXT         NULL,                     -- client's JSON object, echoed back
  webhook_url     VARCHAR(2048) NULL,
  webhook_events  VARCHAR(64)  NULL,                     -- comma list
  max_attempts    INT          NOT NULL,
  timeout_s       INT          NOT NULL,
  ttl_s           INT          NOT NULL,
  attempts        INT          NOT NULL DEFAULT 0,       -- attempts started
  created_at      DATETIME(6)  NOT NULL,
  not_before      DATETIME(6)  NOT NULL,                 -- retry backoff: not claimable before
  started_at      DATETIME(6)  NULL,
  finished_at     DATETIME(6)  NULL,
  progress        DOUBLE       NULL,
  -- The attempt in flight: who claimed it, until when, on which backend.
  backend_id      INT UNSIGNED NULL,
  prompt_id       CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NULL,
  claimed_by      VARCHAR(128) NULL,
  lease_until     DATETIME(6)  NULL,
  cancel_requested TINYINT(1)  NOT NULL DEFAULT 0,
  error_code      VARCHAR(64)  NULL,
  error_message   VARCHAR(2048) NULL,
  error_retryable TINYINT(1)   NULL,
  cost_held       BIGINT       NOT NULL DEFAULT 0,
  cost_charged    BIGINT       NOT NULL DEFAULT 0,
  cost_refunded   BIGINT       NOT NULL DEFAULT 0,
  regenerated_from CHAR(36)    CHARACTER SET ascii COLLATE ascii_bin NULL,
  PRIMARY KEY (seq),
  UNIQUE KEY jobs_id (id),
  -- The claim: queued jobs of a queue in priority then age order.
  KEY jobs_claim (queue, status, priority, seq),
  -- Listings and active-job counts per user.
  KEY jobs_user (user_id, status, seq),
  -- Lease expiry sweeps over running jobs.
  KEY jobs_status_lease (status, lease_until)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every attempt of a job on a backend; prompt_id is chosen by genq and stored
-- here before the backend is called, so a restarted genqd can re-attach.
CREATE TABLE job_attempts (
  job_seq       BIGINT UNSIGNED NOT NULL,
  attempt       INT          NOT NULL,
  backend_id    INT UNSIGNED NOT NULL,
  prompt_id     CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  started_at    DATETIME(6)  NOT NULL,
  submitted_at  DATETIME(6)  NULL,                     -- backend accepted the prompt
  finished_at   DATETIME(6)  NULL,
  outcome       VARCHAR(32)  NULL,                     -- succeeded, failed, retry, canceled, ...
  error_code    VARCHAR(64)  NULL,
  error_message VARCHAR(2048) NULL,
  PRIMARY KEY (job_seq, attempt),
  UNIQUE KEY job_attempts_prompt (prompt_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The audit trail: every state change of a job.
CREATE TABLE job_events (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  job_seq       BIGINT UNSIGNED NOT NULL,
  at            DATETIME(6)  NOT NULL,
  from_status   VARCHAR(16)  NULL,
  to_status     VARCHAR(16)  NOT NULL,
  actor         VARCHAR(128) NOT NULL,                 -- user:NAME, genqd:ID, admin:NAME
  reason        VARCHAR(1024) NULL,
  attempt       INT          NULL,
  backend_id    INT UNSIGNED NULL,
  PRIMARY KEY (id),
  KEY job_events_job (job_seq, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE job_outputs (
  job_seq       BIGINT UNSIGNED NOT NULL,
  idx           INT          NOT NULL,
  kind          ENUM('file','text') NOT NULL,
  path          VARCHAR(512) NULL,        -- relative to [storage] output_dir
  content_type  VARCHAR(128) NULL,
  bytes         BIGINT       NULL,
  sha256        CHAR(64)     CHARACTER SET ascii NULL,
  text          MEDIUMTEXT   NULL,
  created_at    DATETIME(6)  NOT NULL,
  deleted_at    DATETIME(6)  NULL,        -- retention removed the file
  PRIMARY KEY (job_seq, idx)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every change of a user's credits. amount > 0: grant, release, adjust up;
-- amount < 0: hold, charge, adjust down. SUM(amount) = users.balance.
CREATE TABLE ledger (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  user_id       BIGINT UNSIGNED NOT NULL,
  job_seq       BIGINT UNSIGNED NULL,
  kind          ENUM('grant','hold','charge','release','adjust') NOT NULL,
  amount        BIGINT       NOT NULL,
  balance_after BIGINT       NOT NULL,
  at            DATETIME(6)  NOT NULL,
  actor         VARCHAR(128) NOT NULL,
  note          VARCHAR(512) NULL,
  PRIMARY KEY (id),
  KEY ledger_user (user_id, id),
  KEY ledger_job (job_seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Sensible defaults: the tiers of SPEC §1 and an image queue.
INSERT INTO tiers (name, priority, max_active, rate_per_min, rate_burst) VALUES
  ('free', 3, 1, 6, 3),
  ('starter', 2, 3, 30, 10),
  ('pro', 1, 10, 120, 30),
  ('enterprise', 0, 100, 1200, 200);

INSERT INTO queues (name, price_per_job, price_per_second, timeout_s, ttl_s, max_attempts, max_queued)
  VALUES ('image', 1000000, 0, 600, 86400, 3, 10000);
