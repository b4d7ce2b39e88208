#include "autoconf.h"

#include <string.h>

#include "db.h"
#include "jobevent.h"
#include "sqlrows.h"

/* Events are written many rows to a statement: a claim or a batch of
 * completions changes many jobs in one transaction. */
static struct sql_rows sql_insert_events = SQL_ROWS_INIT(
    "INSERT INTO job_events (job_seq, at, from_status, to_status, actor, reason, attempt, "
    "backend_id) VALUES ",
    "(?, UTC_TIMESTAMP(6), ?, ?, ?, LEFT(?, 1024), ?, ?)", "");
/* Adds nothing for jobs without a webhook subscribed to the event, so a job
 * without one pays a primary-key lookup. */
static struct sql_rows sql_outbox = SQL_ROWS_INIT(
    "INSERT INTO webhook_outbox (job_seq, event, created_at, next_attempt_at) "
    "SELECT seq, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) FROM jobs WHERE seq IN (",
    "?", ") AND webhook_url IS NOT NULL AND FIND_IN_SET(?, webhook_events) > 0");
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

/* Outbox rows for those of v[0..n) whose change is the webhook event. */
static int
outbox_add(struct db *db, const struct job_event *v, size_t n, const char *event)
{
	uint64_t seqs[SQL_ROWS_MAX];
	struct db_stmt *st;
	size_t k = 0;
	int rc;

	for (size_t i = 0; i < n; i++) {
		const char *e = webhook_event(v[i].to);
		if (!v[i].no_webhook && e != NULL && strcmp(e, event) == 0)
			seqs[k++] = v[i].job_seq;
	}
	if (k == 0)
		return DB_OK;
	if ((st = sql_rows_prepare(db, &sql_outbox, k, &rc)) == NULL)
		return rc;
	db_bind_str(st, 0, event);
	for (size_t i = 0; i < k; i++)
		db_bind_i64(st, (unsigned)(1 + i), (int64_t)seqs[i]);
	db_bind_str(st, (unsigned)(1 + k), event);
	return db_exec(st);
}

/* Up to SQL_ROWS_MAX events. */
static int
events_add_chunk(struct db *db, const struct job_event *v, size_t n, const char *actor)
{
	struct db_stmt *st;
	int rc;

	if ((st = sql_rows_prepare(db, &sql_insert_events, n, &rc)) == NULL)
		return rc;
	for (size_t i = 0; i < n; i++) {
		unsigned c = (unsigned)(7 * i);

		db_bind_i64(st, c, (int64_t)v[i].job_seq);
		db_bind_str(st, c + 1, v[i].from);
		db_bind_str(st, c + 2, v[i].to);
		db_bind_str(st, c + 3, actor);
		db_bind_str(st, c + 4, v[i].reason);
		if (v[i].attempt > 0)
			db_bind_i64(st, c + 5, v[i].attempt);
		else
			db_bind_null(st, c + 5);
		if (v[i].backend_id)
			db_bind_i64(st, c + 6, (int64_t)v[i].backend_id);
		else
			db_bind_null(st, c + 6);
	}
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = outbox_add(db, v, n, "started")) != DB_OK)
		return rc;
	return outbox_add(db, v, n, "completed");
}

int
job_events_add(struct db *db, const struct job_event *v, size_t n, const char *actor)
{
	int rc;

	for (size_t at = 0; at < n; at += SQL_ROWS_MAX) {
		size_t k = n - at < SQL_ROWS_MAX ? n - at : SQL_ROWS_MAX;

		if ((rc = events_add_chunk(db, v + at, k, actor)) != DB_OK)
			return rc;
	}
	return DB_OK;
}

int
job_event_add(struct db *db, uint64_t job_seq, const char *from, const char *to,
    const char *actor, const char *reason, int attempt, uint64_t backend_id)
{
	struct job_event ev = { job_seq, from, to, reason, attempt, backend_id, false };

	return job_events_add(db, &ev, 1, actor);
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
