#include "autoconf.h"

#include <string.h>

#include "db.h"
#include "jobevent.h"

static const char SQL_INSERT_EVENT[] =
    "INSERT INTO job_events (job_seq, at, from_status, to_status, actor, reason, attempt, backend_id) "
    "VALUES (?, UTC_TIMESTAMP(6), ?, ?, ?, LEFT(?, 1024), ?, ?)";
/* Adds nothing unless the job has a webhook subscribed to the event, so a
 * job without one pays a primary-key lookup. */
static const char SQL_OUTBOX[] =
    "INSERT INTO webhook_outbox (job_seq, event, created_at, next_attempt_at) "
    "SELECT seq, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) FROM jobs "
    "WHERE seq = ? AND webhook_url IS NOT NULL AND FIND_IN_SET(?, webhook_events) > 0";
/* At most one progress message per job per second (SPEC §7). */
static const char SQL_OUTBOX_PROGRESS[] =
    "INSERT INTO webhook_outbox (job_seq, event, created_at, next_attempt_at) "
    "SELECT seq, 'progress', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) FROM jobs j "
    "WHERE seq = ? AND status = 'running' AND webhook_url IS NOT NULL "
    "AND FIND_IN_SET('progress', webhook_events) > 0 "
    "AND NOT EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.job_seq = j.seq "
    "AND o.event = 'progress' AND o.created_at > UTC_TIMESTAMP(6) - INTERVAL 1 SECOND)";

static const char *const terminal[] = { "succeeded", "failed", "canceled", "expired" };

/* The webhook event a change to status `to` is, or NULL. */
static const char *
webhook_event(const char *to)
{
	if (to == NULL)
		return NULL;
	if (strcmp(to, "running") == 0)
		return "started";
	for (size_t i = 0; i < sizeof terminal / sizeof terminal[0]; i++)
		if (strcmp(to, terminal[i]) == 0)
			return "completed";
	return NULL;
}

static int
outbox_add(struct db *db, uint64_t job_seq, const char *event)
{
	struct db_stmt *st = db_prepare(db, SQL_OUTBOX);

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, event);
	db_bind_i64(st, 1, (int64_t)job_seq);
	db_bind_str(st, 2, event);
	return db_exec(st);
}

int
job_event_add(struct db *db, uint64_t job_seq, const char *from, const char *to,
    const char *actor, const char *reason, int attempt, uint64_t backend_id)
{
	struct db_stmt *st = db_prepare(db, SQL_INSERT_EVENT);
	const char *event = webhook_event(to);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)job_seq);
	db_bind_str(st, 1, from);
	db_bind_str(st, 2, to);
	db_bind_str(st, 3, actor);
	db_bind_str(st, 4, reason);
	if (attempt > 0)
		db_bind_i64(st, 5, attempt);
	else
		db_bind_null(st, 5);
	if (backend_id)
		db_bind_i64(st, 6, (int64_t)backend_id);
	else
		db_bind_null(st, 6);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	return event != NULL ? outbox_add(db, job_seq, event) : DB_OK;
}

int
job_progress_notify(struct db *db, uint64_t job_seq)
{
	struct db_stmt *st = db_prepare(db, SQL_OUTBOX_PROGRESS);

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)job_seq);
	return db_exec(st);
}
