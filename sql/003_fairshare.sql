-- genq schema 003: fair share between users and priority aging (SPEC §4).
-- Statements end with ';' at the end of a line: genqctl migrate splits on that.
--
-- Users of one priority take turns. Each job gets a `turn` at admission:
-- GREATEST(the user's next turn in this queue and priority, the queue's
-- current turn there). The claim takes jobs by (priority, turn, seq), so a
-- user's 1,000th job waits for everyone else's first, second, ... job, yet a
-- newcomer starts at the current turn, not behind the whole backlog. A retry
-- keeps its turn (it is low by then: the job goes back to the front).
--
-- `aged` counts the levels a job rose while it waited (priority_aging_s):
-- a queued job rises one more level once it has waited (aged + 1) intervals.
ALTER TABLE jobs
  ADD COLUMN turn BIGINT NOT NULL DEFAULT 0 AFTER priority,
  ADD COLUMN aged TINYINT NOT NULL DEFAULT 0 AFTER turn,
  ADD KEY jobs_turn (queue, status, priority, turn, seq);

-- The current turn of each queue and priority: the highest turn claimed so
-- far (genqd raises it in the claim transaction). New users start here.
CREATE TABLE queue_turns (
  queue     VARCHAR(32)  NOT NULL,
  priority  TINYINT      NOT NULL,
  turn      BIGINT       NOT NULL DEFAULT 0,
  PRIMARY KEY (queue, priority)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The turn a user's next job in a queue and priority gets at the earliest.
-- Written only under the user's row lock (admission), so never contended.
CREATE TABLE user_turns (
  user_id   BIGINT UNSIGNED NOT NULL,
  queue     VARCHAR(32)  NOT NULL,
  priority  TINYINT      NOT NULL,
  next_turn BIGINT       NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, queue, priority)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
