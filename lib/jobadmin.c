/* jobadmin: operator actions shared by genqctl and the admin API. Every
 * job change is a conditional update plus its job_events row (and ledger
 * rows where credits move) in one transaction, like every other transition
 * (docs/design.md). */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "db.h"
#include "deps.h"
#include "fairshare.h"
#include "gqtime.h"
#include "jobadmin.h"
#include "jobevent.h"
#include "ledger.h"

static const char SQL_LOCK_JOB[] =
    "SELECT seq, user_id, status, cost_held FROM jobs WHERE id = ? FOR UPDATE";
/* The time to live counts from the approval: a job is not "queued" while
 * it waits for a person. It goes to 'waiting' while a job in its `after`
 * has not succeeded (lib/deps.h). */
static const char SQL_APPROVE[] =
    "UPDATE jobs SET status = ?, not_before = GREATEST(not_before, UTC_TIMESTAMP(6))"
    " WHERE seq = ? AND status = 'held'";
static const char SQL_REJECT[] =
    "UPDATE jobs SET status = 'canceled', finished_at = UTC_TIMESTAMP(6),"
    " cost_refunded = cost_held, error_code = 'rejected', error_message = ?,"
    " error_retryable = 0, progress = NULL WHERE seq = ? AND status = 'held'";
static const char SQL_LOCK_USER[] =
    "SELECT id, balance FROM users WHERE name = ? FOR UPDATE";
/* After a lost connection the grant's commit may have landed: a rerun
 * first looks for the row it would have written. */
static const char SQL_GRANTED[] =
    "SELECT 1 FROM ledger WHERE user_id = ? AND kind = 'grant' AND amount = ?"
    " AND actor = ? AND note <=> ? AND at >= ? LIMIT 1";
static const char SQL_USER_CREDITS[] =
    "SELECT u.balance, (SELECT COALESCE(SUM(j.cost_held), 0) FROM jobs j"
    "  WHERE j.user_id = u.id AND j.status IN ('held','waiting','queued','running'))"
    " FROM users u WHERE u.id = ?";
static const char SQL_LOCK_QUEUE[] =
    "SELECT 1 FROM queues WHERE name = ? FOR UPDATE";
static const char SQL_PAUSE[] =
    "UPDATE queues SET paused = ? WHERE name = ?";
static const char SQL_LOCK_BACKEND[] =
    "SELECT 1 FROM backends WHERE name = ? FOR UPDATE";
static const char SQL_DRAIN[] =
    "UPDATE backends SET draining = ? WHERE name = ?";

const char *
jobadmin_strerror(int refusal)
{
	switch (refusal) {
	case JOBADMIN_NOT_FOUND:
		return "not found";
	case JOBADMIN_NOT_HELD:
		return "the job is not held";
	case JOBADMIN_TOO_MUCH:
		return "the balance would be out of range";
	}
	return "refused";
}

/* ---- approve and reject ---- */

/* Lock the job's row and note its state in j. 1 found, 0 not, < 0 error. */
static int
lock_job(struct db *db, struct jobadmin_job *j, int64_t *held)
{
	struct db_stmt *st = db_prepare(db, SQL_LOCK_JOB);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, j->id);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) <= 0)
		return rc;
	j->seq = (uint64_t)db_i64(st, 0);
	j->user_id = (uint64_t)db_i64(st, 1);
	snprintf(j->from, sizeof j->from, "%s", db_text(st, 2, NULL));
	*held = db_i64(st, 3);
	return 1;
}

static int
approve_txn(struct db *db, void *arg)
{
	struct jobadmin_job *j = arg;
	struct db_stmt *st;
	int64_t held;
	int rc;

	/* db_txn runs this again after a lost connection: runs tells a first
	 * run from a rerun. */
	j->runs++;
	if ((rc = lock_job(db, j, &held)) <= 0)
		return rc < 0 ? rc : JOBADMIN_NOT_FOUND;
	if (strcmp(j->from, "held") != 0) {
		/* A rerun whose first commit landed finds its own work done. */
		if (j->runs > 1 && (strcmp(j->from, "queued") == 0 ||
		    strcmp(j->from, "waiting") == 0)) {
			j->to = strcmp(j->from, "waiting") == 0 ? "waiting" : "queued";
			snprintf(j->from, sizeof j->from, "held");
			return DB_OK;
		}
		return JOBADMIN_NOT_HELD;
	}
	if ((rc = deps_pending(db, j->seq)) < 0)
		return rc;
	j->to = rc ? "waiting" : "queued";
	if ((st = db_prepare(db, SQL_APPROVE)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, j->to);
	db_bind_i64(st, 1, (int64_t)j->seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1)
		return DB_RETRY;        /* changed under our lock: cannot happen */
	if ((rc = fairshare_readmit(db, j->seq)) != DB_OK)    /* fair share: a turn from now */
		return rc;
	return job_event_add(db, j->seq, "held", j->to, j->actor,
	    j->reason ? j->reason : "approved", 0, 0);
}

int
jobadmin_approve(struct db *db, struct jobadmin_job *j)
{
	j->runs = 0;
	j->to = NULL;
	j->released = 0;
	return db_txn(db, approve_txn, j);
}

static int
reject_txn(struct db *db, void *arg)
{
	struct jobadmin_job *j = arg;
	const char *reason = j->reason ? j->reason : "rejected";
	struct db_stmt *st;
	int64_t held;
	int rc;

	j->released = 0;
	j->runs++;
	if ((rc = lock_job(db, j, &held)) <= 0)
		return rc < 0 ? rc : JOBADMIN_NOT_FOUND;
	if (strcmp(j->from, "held") != 0) {
		if (j->runs > 1 && strcmp(j->from, "canceled") == 0) {
			snprintf(j->from, sizeof j->from, "held");
			j->to = "canceled";
			j->released = held;
			return DB_OK;
		}
		return JOBADMIN_NOT_HELD;
	}
	if ((st = db_prepare(db, SQL_REJECT)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, reason);
	db_bind_i64(st, 1, (int64_t)j->seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1)
		return DB_RETRY;
	if (held > 0) {
		rc = ledger_apply(db, j->user_id, j->seq, "release", held, j->actor, "rejected");
		if (rc != DB_OK)
			return rc < 0 ? rc : DB_ERR;   /* a release never lacks credits */
	}
	j->released = held;
	j->to = "canceled";
	return job_event_add(db, j->seq, "held", j->to, j->actor, reason, 0, 0);
}

int
jobadmin_reject(struct db *db, struct jobadmin_job *j)
{
	j->runs = 0;
	j->to = NULL;
	return db_txn(db, reject_txn, j);
}

/* ---- credits ---- */

static int
user_credits(struct db *db, struct jobadmin_grant *g)
{
	struct db_stmt *st = db_prepare(db, SQL_USER_CREDITS);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)g->user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	g->balance = db_i64(st, 0);
	g->held = db_i64(st, 1);
	return DB_OK;
}

static int
grant_txn(struct db *db, void *arg)
{
	struct jobadmin_grant *g = arg;
	struct db_stmt *st;
	int64_t balance;
	int rc;

	if ((st = db_prepare(db, SQL_LOCK_USER)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, g->user);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0)
		return rc;
	if (rc == 0)
		return JOBADMIN_NOT_FOUND;
	g->user_id = (uint64_t)db_i64(st, 0);
	balance = db_i64(st, 1);

	if (g->runs++ > 0) {
		if ((st = db_prepare(db, SQL_GRANTED)) == NULL)
			return db_last_status(db);
		db_bind_i64(st, 0, (int64_t)g->user_id);
		db_bind_i64(st, 1, g->amount);
		db_bind_str(st, 2, g->actor);
		db_bind_str(st, 3, g->note);
		db_bind_str(st, 4, g->since);
		if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0)
			return rc;
		if (rc == 1)
			return user_credits(db, g);
	}
	if (g->amount <= 0 || balance > INT64_MAX - g->amount)
		return JOBADMIN_TOO_MUCH;
	rc = ledger_apply(db, g->user_id, 0, "grant", g->amount, g->actor, g->note);
	if (rc != DB_OK)
		return rc < 0 ? rc : DB_ERR;
	return user_credits(db, g);
}

int
jobadmin_grant(struct db *db, struct jobadmin_grant *g)
{
	g->runs = 0;
	/* A second of slack for a database clock a little behind ours. */
	gq_time_sql(g->since, gq_now_us() - 1000000);
	return db_txn(db, grant_txn, g);
}

/* ---- queues and backends: one flag each ---- */

struct flag {
	const char *lock_sql, *set_sql;
	const char *name;
	bool value;
};

static int
flag_txn(struct db *db, void *arg)
{
	struct flag *f = arg;
	struct db_stmt *st = db_prepare(db, f->lock_sql);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, f->name);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0)
		return rc;
	if (rc == 0)
		return JOBADMIN_NOT_FOUND;
	if ((st = db_prepare(db, f->set_sql)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, f->value);
	db_bind_str(st, 1, f->name);
	return db_exec(st);
}

int
jobadmin_queue_pause(struct db *db, const char *queue, bool paused)
{
	struct flag f = { SQL_LOCK_QUEUE, SQL_PAUSE, queue, paused };

	return db_txn(db, flag_txn, &f);
}

int
jobadmin_backend_drain(struct db *db, const char *backend, bool draining)
{
	struct flag f = { SQL_LOCK_BACKEND, SQL_DRAIN, backend, draining };

	return db_txn(db, flag_txn, &f);
}
