-- genq schema 007: webhook delivery (SPEC §7).
-- Every job state change that a job's webhook subscribes to adds one outbox
-- row in the same transaction as the change (lib/jobevent.c); genqd delivers
-- the rows at least once, in order per job, and records every attempt.
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.

-- Every user gets the key for their webhook signatures (Standard Webhooks:
-- "whsec_" then the base64 of 24 random key bytes); `genqctl user add` makes
-- one for new users and `genqctl user webhook-secret` shows or rotates it.
UPDATE users SET webhook_secret = CONCAT('whsec_', TO_BASE64(RANDOM_BYTES(24))) WHERE webhook_secret IS NULL;

CREATE TABLE webhook_outbox (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,  -- also the message id
  job_seq         BIGINT UNSIGNED NOT NULL,
  event           ENUM('started','progress','completed') NOT NULL,
  created_at      DATETIME(6)  NOT NULL,
  state           ENUM('pending','delivered','failed') NOT NULL DEFAULT 'pending',
  attempts        INT          NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(6)  NOT NULL,
  -- The genqd sending it now; another one may take it after lease_until.
  lease_owner     VARCHAR(128) NULL,
  lease_until     DATETIME(6)  NULL,
  -- Fixed at the first attempt, so every retry sends the same bytes.
  payload         MEDIUMTEXT   NULL,
  last_status     INT          NULL,
  last_error      VARCHAR(300) NULL,
  finished_at     DATETIME(6)  NULL,
  PRIMARY KEY (id),
  KEY webhook_outbox_due (state, next_attempt_at),
  KEY webhook_outbox_job (job_seq, state, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE webhook_attempts (
  outbox_id       BIGINT UNSIGNED NOT NULL,
  attempt         INT          NOT NULL,
  at              DATETIME(6)  NOT NULL,
  http_status     INT          NULL,         -- NULL: no answer (refused, timeout, ...)
  error           VARCHAR(300) NULL,
  duration_ms     INT          NOT NULL,
  PRIMARY KEY (outbox_id, attempt)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
