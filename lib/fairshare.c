#include "autoconf.h"

#include <stdio.h>

#include "db.h"
#include "fairshare.h"

/* Plain (non-locking) read: a claim committing meanwhile only moves the
 * clock forward, and a slightly old clock costs a newcomer at most a turn. */
static const char SQL_CLOCK[] =
    "SELECT turn FROM queue_turns WHERE queue = ? AND priority = ?";
/* A new job's turn, in one read: the queue's clock and the user's next
 * turn. A user whose turns ran ahead of the clock but who has no job left
 * at or after it, waiting or started (canceled or expired ones), is not
 * behind a backlog and starts from the clock again; one with jobs still
 * waiting queues behind their own backlog; one who was idle joins the
 * current turn and does not get credit for the time away. A job already
 * started at the current turn counts: it took the user's turn, so a user
 * who submits the next job as each one starts, never having two queued,
 * still waits for the others' turns. The probe runs along jobs_user
 * (user_id, status, seq): with a backlog the first row answers. Plain reads, as the clock's above; the user's row lock (held by
 * the caller) keeps the user's own side exact. One statement, one snapshot,
 * so the clock the probe compares with is the clock returned. */
static const char SQL_NEXT_TURN[] =
    "SELECT CASE WHEN t.next > t.clock AND EXISTS (SELECT 1 FROM jobs "
    "  WHERE user_id = ? AND status IN ('queued', 'running') AND queue = ? AND priority = ? "
    "  AND turn >= t.clock LIMIT 1) THEN t.next ELSE t.clock END "
    "FROM (SELECT COALESCE((SELECT turn FROM queue_turns WHERE queue = ? AND priority = ?), 0) "
    "  AS clock, COALESCE((SELECT next_turn FROM user_turns "
    "  WHERE user_id = ? AND queue = ? AND priority = ?), 0) AS next) t";
static const char SQL_USER_SET[] =
    "INSERT INTO user_turns (user_id, queue, priority, next_turn) VALUES (?, ?, ?, ?) "
    "ON DUPLICATE KEY UPDATE next_turn = VALUES(next_turn)";
static const char SQL_JOB[] =
    "SELECT user_id, queue, priority FROM jobs WHERE seq = ?";
static const char SQL_JOB_TURN[] =
    "UPDATE jobs SET turn = ? WHERE seq = ?";
/* Only ever raised, so claims committing in any order agree. */
static const char SQL_CLOCK_RAISE[] =
    "INSERT INTO queue_turns (queue, priority, turn) VALUES (?, ?, ?) "
    "ON DUPLICATE KEY UPDATE turn = GREATEST(turn, VALUES(turn))";

/* One BIGINT from a one-row query; 0 when there is no row. */
static int
read_one(struct db_stmt *st, int64_t *v)
{
	int rc = db_exec(st);

	*v = 0;
	if (rc != DB_OK)
		return rc;
	if ((rc = db_next(st)) < 0)
		return rc;
	if (rc == 1)
		*v = db_i64(st, 0);
	return DB_OK;
}

int
fairshare_clock(struct db *db, const char *queue, int priority, int64_t *turn)
{
	struct db_stmt *st = db_prepare(db, SQL_CLOCK);

	*turn = 0;
	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, queue);
	db_bind_i64(st, 1, priority);
	return read_one(st, turn);
}

int
fairshare_next_turn(struct db *db, uint64_t user_id, const char *queue, int priority,
    int64_t *turn)
{
	struct db_stmt *st;
	int rc;

	*turn = 0;
	if ((st = db_prepare(db, SQL_NEXT_TURN)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)user_id);
	db_bind_str(st, 1, queue);
	db_bind_i64(st, 2, priority);
	db_bind_str(st, 3, queue);
	db_bind_i64(st, 4, priority);
	db_bind_i64(st, 5, (int64_t)user_id);
	db_bind_str(st, 6, queue);
	db_bind_i64(st, 7, priority);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	*turn = db_i64(st, 0);
	if ((st = db_prepare(db, SQL_USER_SET)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)user_id);
	db_bind_str(st, 1, queue);
	db_bind_i64(st, 2, priority);
	db_bind_i64(st, 3, *turn + 1);
	return db_exec(st);
}

int
fairshare_claimed(struct db *db, const char *queue, int priority, int64_t turn)
{
	struct db_stmt *st = db_prepare(db, SQL_CLOCK_RAISE);

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, queue);
	db_bind_i64(st, 1, priority);
	db_bind_i64(st, 2, turn);
	return db_exec(st);
}

int
fairshare_readmit(struct db *db, uint64_t job_seq)
{
	struct db_stmt *st = db_prepare(db, SQL_JOB);
	char queue[129];
	const char *q;
	uint64_t user_id;
	int64_t turn;
	int priority, rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)job_seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_OK;      /* gone: nothing to do */
	user_id = (uint64_t)db_i64(st, 0);
	q = db_text(st, 1, NULL);
	snprintf(queue, sizeof queue, "%s", q ? q : "");
	priority = (int)db_i64(st, 2);
	if ((rc = fairshare_next_turn(db, user_id, queue, priority, &turn)) != DB_OK)
		return rc;
	if ((st = db_prepare(db, SQL_JOB_TURN)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, turn);
	db_bind_i64(st, 1, (int64_t)job_seq);
	return db_exec(st);
}
