#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "committer.h"
#include "config.h"
#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"
#include "jobevent.h"
#include "ledger.h"
#include "policy.h"
#include "sqlrows.h"

/* The batch's job rows, locked in one statement. The checks after it
 * (still running, this prompt, claimed by us) make the whole transaction a
 * no-op for a job when it runs again after a commit whose answer was lost.
 * The last column is the current attempt's age in the database, what a
 * price per second charges when the backend keeps no run time of its own
 * (OpenAI-compatible ones): read here for the whole batch, not once per
 * job. */
static struct sql_rows sql_lock_jobs = SQL_ROWS_INIT(
    "SELECT seq, user_id, status, prompt_id, claimed_by, attempts, max_attempts, cost_held, "
    "cancel_requested, webhook_url IS NULL, "
    "(SELECT TIMESTAMPDIFF(MICROSECOND, a.started_at, UTC_TIMESTAMP(6)) DIV 1000 "
    "FROM job_attempts a WHERE a.job_seq = jobs.seq AND a.attempt = jobs.attempts) "
    "FROM jobs WHERE seq IN (", "?", ") FOR UPDATE");
static const char SQL_QUEUE_PRICE[] =
    "SELECT price_per_job, price_per_second FROM queues WHERE name = ?";
static const char SQL_END[] =
    "UPDATE jobs SET status = ?, finished_at = UTC_TIMESTAMP(6), claimed_by = NULL, "
    "lease_until = NULL, cost_charged = 0, cost_refunded = cost_held, error_code = ?, "
    "error_message = LEFT(?, 2048), error_retryable = ? "
    "WHERE seq = ? AND status = 'running' AND prompt_id = ?";
static const char SQL_REQUEUE[] =
    "UPDATE jobs SET status = 'queued', not_before = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, "
    "retry_avoid_backend = backend_id, "   /* before backend_id = NULL: left to right */
    "backend_id = NULL, prompt_id = NULL, claimed_by = NULL, lease_until = NULL, progress = NULL "
    "WHERE seq = ? AND status = 'running' AND prompt_id = ?";
/* submitted_at too when the backend's acceptance was not noted yet (the
 * attempt ended within one turn of the loop). */
static const char SQL_ATTEMPT_END[] =
    "UPDATE job_attempts SET finished_at = UTC_TIMESTAMP(6), outcome = ?, error_code = ?, "
    "error_message = LEFT(?, 2048), "
    "submitted_at = IF(?, COALESCE(submitted_at, UTC_TIMESTAMP(6)), submitted_at) "
    "WHERE job_seq = ? AND attempt = ?";
static const char SQL_HAND_BACK_ALL[] =
    "UPDATE jobs SET claimed_by = NULL, lease_until = UTC_TIMESTAMP(6) "
    "WHERE claimed_by = ? AND status = 'running'";
static const char SQL_HAND_BACK_BACKEND[] =
    "UPDATE jobs SET claimed_by = NULL, lease_until = UTC_TIMESTAMP(6) "
    "WHERE claimed_by = ? AND status = 'running' AND backend_id = ?";

/* Positive db_txn result: the job is no longer this attempt's to end. */
#define FINISH_STALE 1

/* An ended attempt waits up to this long for others to share its commit
 * (each commit is a log flush, ~1 ms here): fast backends end many jobs a
 * millisecond apart. A prefetched prompt keeps the GPU busy meanwhile. */
#define FINISH_GATHER_US 2000LL
#define FINISH_GATHER_MIN 16

#define COMMIT_RETRY_MIN_US 500000LL
#define COMMIT_RETRY_MAX_US 30000000LL

enum verdict { V_SUCCEEDED, V_FAILED, V_CANCELED, V_RETRY };

static const char *const verdict_status[] = { "succeeded", "failed", "canceled", "queued" };
static const char *const verdict_outcome[] = { "succeeded", "failed", "canceled", "retry" };

/* What became of an attempt handed to the committer. */
enum finish_result {
	F_COMMITTED,               /* its end is recorded */
	F_STALE,                   /* the job was no longer this attempt's: nothing written */
	F_DEFERRED,                /* not recorded (database away, sync failed): retry later */
};

/* One ended attempt of a batch. The committer's thread reads the run's
 * outcome and identity (r->out, seq, prompt_id, queue, attempt, backend
 * id), which the loop leaves alone while the run is RUN_COMMITTING, and
 * writes only here. */
struct finish {
	struct genqd *g;           /* for its id and actor only (fixed at start) */
	struct run *r;
	int64_t backoff_ms;        /* chosen once, so a rerun decides the same */
	/* Results, valid after a commit. */
	enum verdict verdict;
	int64_t held, charged;
	char reason[GQD_MSG_MAX + 64];
	enum finish_result result;
	/* The job row, as locked by lock_batch. */
	bool ours;                 /* running this attempt's prompt, claimed by us */
	uint64_t user_id;
	int attempts, max_attempts;
	bool cancel;
	bool no_webhook;
	int64_t age_ms;            /* the attempt's age in the database; 0 if none */
	bool settle;               /* a success, written by settle_successes */
};

/* The successes of a batch are written together (settle_successes): their
 * outputs, job rows (one statement per distinct price), attempts and
 * credits. Each row was checked to be this attempt's under its lock. */
static struct sql_rows sql_outputs = SQL_ROWS_INIT(
    "INSERT INTO job_outputs (job_seq, idx, kind, path, content_type, bytes, sha256, text, "
    "created_at) VALUES ", "(?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))", "");
static struct sql_rows sql_succeed = SQL_ROWS_INIT(
    "UPDATE jobs SET status = 'succeeded', finished_at = UTC_TIMESTAMP(6), progress = 1, "
    "claimed_by = NULL, lease_until = NULL, cost_charged = ?, cost_refunded = ?, "
    "error_code = NULL, error_message = NULL, error_retryable = NULL "
    "WHERE status = 'running' AND seq IN (", "?", ")");
/* A success was accepted by its backend, noted or not. */
static struct sql_rows sql_attempts_succeeded = SQL_ROWS_INIT(
    "UPDATE job_attempts SET finished_at = UTC_TIMESTAMP(6), outcome = 'succeeded', "
    "error_code = NULL, error_message = NULL, "
    "submitted_at = COALESCE(submitted_at, UTC_TIMESTAMP(6)) WHERE prompt_id IN (", "?", ")");

/* A queue's price, read once per batch transaction. */
struct price {
	const char *queue;         /* borrowed from a run */
	bool found;
	int64_t per_job, per_second;
};

#define PRICES_MAX 16

/* Attempts ended in one transaction: one commit (one log flush) for many
 * completions is what lets a busy genqd keep up with fast backends. */
#define FINISH_BATCH_MAX SQL_ROWS_MAX

struct batch {
	struct genqd *g;             /* for its id, actor and output dir only */
	struct finish *f;            /* n ended runs */
	size_t n;
	/* Copies, not runs: the loop goes on with those runs meanwhile. */
	char (*marks)[GQ_UUID_LEN];  /* nmarks prompts whose submit is to be noted */
	size_t nmarks;
	struct progress_note *prog;  /* nprog progress values to write */
	size_t nprog;
	/* Per transaction: */
	struct price prices[PRICES_MAX];
	size_t nprices;
	struct job_event ev[FINISH_BATCH_MAX];
	size_t nev;
};

static int
exec_or(struct db *db, struct db_stmt *st)
{
	return st == NULL ? db_last_status(db) : db_exec(st);
}

/* The price of a queue, from the batch's cache or the database. */
static int
price_of(struct db *db, struct batch *bt, const char *queue, const struct price **out)
{
	struct db_stmt *st;
	struct price *p;
	int rc;

	for (size_t i = 0; i < bt->nprices; i++)
		if (strcmp(bt->prices[i].queue, queue) == 0) {
			*out = &bt->prices[i];
			return DB_OK;
		}
	if (bt->nprices == PRICES_MAX)
		bt->nprices = 0;             /* many queues in one batch: start over */
	p = &bt->prices[bt->nprices];
	memset(p, 0, sizeof *p);
	p->queue = queue;
	if ((st = db_prepare(db, SQL_QUEUE_PRICE)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, queue);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) < 0)
		return rc;
	if (rc == 1) {
		p->found = true;
		p->per_job = db_i64(st, 0);
		p->per_second = db_i64(st, 1);
		while ((rc = db_next(st)) == 1)
			;
		if (rc < 0)
			return rc;
	}
	bt->nprices++;
	*out = p;
	return DB_OK;
}

/* Run time to charge: the backend's own record when it has one, else the
 * age of the attempt in the database (lock_batch read it). */
static int
charge_of(struct db *db, struct batch *bt, struct finish *f, int64_t *charge)
{
	struct run *r = f->r;
	const struct price *price = NULL;
	int64_t per_job, per_second, run_ms = r->out.run_ms;
	int rc;

	if ((rc = price_of(db, bt, r->queue, &price)) != DB_OK)
		return rc;
	if (!price->found) {
		/* The queue is gone: charge what was held. */
		*charge = f->held;
		return DB_OK;
	}
	per_job = price->per_job;
	per_second = price->per_second;
	if (run_ms < 0)
		run_ms = f->age_ms;
	*charge = policy_charge(f->held, per_job, per_second, run_ms);
	return DB_OK;
}

static int
end_unsuccessful(struct db *db, struct finish *f, uint64_t user_id)
{
	struct run *r = f->r;
	struct db_stmt *st;
	int rc;

	if ((st = db_prepare(db, SQL_END)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, verdict_status[f->verdict]);
	if (f->verdict == V_FAILED) {
		db_bind_str(st, 1, r->out.code);
		db_bind_str(st, 2, r->out.message);
		db_bind_i64(st, 3, r->out.retryable);
	} else {
		db_bind_null(st, 1);
		db_bind_null(st, 2);
		db_bind_null(st, 3);
	}
	db_bind_i64(st, 4, (int64_t)r->seq);
	db_bind_str(st, 5, r->prompt_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (f->held > 0 &&
	    (rc = ledger_apply(db, user_id, r->seq, "release", f->held, f->g->actor,
	    f->verdict == V_FAILED ? "job failed: hold released" :
	    "job canceled: hold released")) != DB_OK)
		return rc < 0 ? rc : DB_ERR;
	return DB_OK;
}

static int
requeue(struct db *db, struct finish *f)
{
	struct run *r = f->r;
	struct db_stmt *st = db_prepare(db, SQL_REQUEUE);

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, f->backoff_ms * 1000);
	db_bind_i64(st, 1, (int64_t)r->seq);
	db_bind_str(st, 2, r->prompt_id);
	return db_exec(st);
}

static int
record_attempt(struct db *db, struct finish *f)
{
	struct run *r = f->r;
	struct db_stmt *st = db_prepare(db, SQL_ATTEMPT_END);

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, verdict_outcome[f->verdict]);
	if (r->out.kind == OUTCOME_FAILED) {
		db_bind_str(st, 1, r->out.code);
		db_bind_str(st, 2, r->out.message);
	} else {
		db_bind_null(st, 1);
		db_bind_null(st, 2);
	}
	db_bind_i64(st, 3, r->submit_noted);
	db_bind_i64(st, 4, (int64_t)r->seq);
	db_bind_i64(st, 5, r->attempt);
	return exec_or(db, st);
}

/* Lock the batch's job rows and note which are still their attempt's. */
static int
lock_batch(struct db *db, struct batch *bt)
{
	struct db_stmt *st;
	int rc;

	for (size_t i = 0; i < bt->n; i++)
		bt->f[i].ours = false;
	if ((st = sql_rows_prepare(db, &sql_lock_jobs, bt->n, &rc)) == NULL)
		return rc;
	for (size_t i = 0; i < bt->n; i++)
		db_bind_i64(st, (unsigned)i, (int64_t)bt->f[i].r->seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		uint64_t seq = (uint64_t)db_i64(st, 0);
		const char *status = db_text(st, 2, NULL);
		const char *prompt_id = db_text(st, 3, NULL);
		const char *owner = db_text(st, 4, NULL);

		for (size_t i = 0; i < bt->n; i++) {
			struct finish *f = &bt->f[i];

			if (f->r->seq != seq)
				continue;
			f->ours = status != NULL && strcmp(status, "running") == 0 &&
			    prompt_id != NULL && strcmp(prompt_id, f->r->prompt_id) == 0 &&
			    owner != NULL && strcmp(owner, bt->g->id) == 0;
			f->user_id = (uint64_t)db_i64(st, 1);
			f->attempts = (int)db_i64(st, 5);
			f->max_attempts = (int)db_i64(st, 6);
			f->held = db_i64(st, 7);
			f->cancel = db_i64(st, 8) != 0;
			f->no_webhook = db_i64(st, 9) != 0;
			f->age_ms = db_is_null(st, 10) ? 0 : db_i64(st, 10);
		}
	}
	return rc < 0 ? rc : DB_OK;
}

/* End one attempt inside the batch's transaction, its row locked by
 * lock_batch. FINISH_STALE (nothing written) when the job is no longer
 * this attempt's. */
static int
finish_one(struct db *db, struct batch *bt, struct finish *f)
{
	struct run *r = f->r;
	uint64_t user_id = f->user_id;
	int attempts = f->attempts, max_attempts = f->max_attempts, rc = DB_OK;
	bool cancel = f->cancel;

	if (!f->ours)
		return FINISH_STALE;
	f->charged = 0;

	switch (r->out.kind) {
	case OUTCOME_SUCCEEDED:
		f->verdict = V_SUCCEEDED;
		break;
	case OUTCOME_CANCELED:
		f->verdict = V_CANCELED;
		break;
	case OUTCOME_FAILED:
		if (cancel)
			f->verdict = V_CANCELED;
		else if (r->out.retryable && attempts < max_attempts)
			f->verdict = V_RETRY;
		else
			f->verdict = V_FAILED;
		break;
	}

	switch (f->verdict) {
	case V_SUCCEEDED:
		/* Written with the batch's other successes. */
		snprintf(f->reason, sizeof f->reason, "%zu output(s)", r->out.noutputs);
		f->settle = true;
		return charge_of(db, bt, f, &f->charged);
	case V_RETRY:
		rc = requeue(db, f);
		snprintf(f->reason, sizeof f->reason, "retry in %.1f s after %s: %s",
		    (double)f->backoff_ms / 1000.0, r->out.code, r->out.message);
		break;
	case V_FAILED:
		rc = end_unsuccessful(db, f, user_id);
		snprintf(f->reason, sizeof f->reason, "%s: %s", r->out.code, r->out.message);
		break;
	case V_CANCELED:
		rc = end_unsuccessful(db, f, user_id);
		snprintf(f->reason, sizeof f->reason, "canceled on request");
		break;
	}
	if (rc != DB_OK)
		return rc;
	policy_utf8_fix(f->reason);
	if ((rc = record_attempt(db, f)) != DB_OK)
		return rc;
	bt->ev[bt->nev++] = (struct job_event){ r->seq, "running", verdict_status[f->verdict],
	    f->reason, r->attempt, r->backend->id, f->no_webhook };
	return DB_OK;
}

static void
log_verdict(struct finish *f)
{
	struct run *r = f->r;
	char held[32], charged[32];

	switch (f->verdict) {
	case V_SUCCEEDED:
		ledger_format_credits(held, f->held);
		ledger_format_credits(charged, f->charged);
		run_log(info, "job_succeeded", r, " outputs=%zu run_ms=%lld held=%s charged=%s",
		    r->out.noutputs, (long long)r->out.run_ms, held, charged);
		break;
	case V_RETRY:
		run_log(warn, "job_retry", r, " code=%s retry_in_ms=%lld msg=\"%s\"",
		    r->out.code, (long long)f->backoff_ms, log_q(r->out.message));
		break;
	case V_FAILED:
		run_log(warn, "job_failed", r, " code=%s retryable=%d msg=\"%s\"",
		    r->out.code, r->out.retryable, log_q(r->out.message));
		break;
	case V_CANCELED:
		run_log(info, "job_canceled", r, "%s", "");
		break;
	}
}

/* ---- the successes of a batch, written together ------------------- */

/* One job_outputs row of settle_outputs. */
struct output_row {
	uint64_t seq;
	size_t idx;
	const struct stored_output *o;
};

static int
insert_output_rows(struct db *db, const struct output_row *rows, size_t k)
{
	struct db_stmt *st;
	int rc;

	if ((st = sql_rows_prepare(db, &sql_outputs, k, &rc)) == NULL)
		return rc;
	for (size_t x = 0; x < k; x++) {
		const struct stored_output *o = rows[x].o;
		unsigned c = (unsigned)(8 * x);

		db_bind_i64(st, c, (int64_t)rows[x].seq);
		db_bind_i64(st, c + 1, (int64_t)rows[x].idx);
		if (o->text != NULL) {          /* text outputs live in the row (SPEC §6) */
			db_bind_str(st, c + 2, "text");
			db_bind_null(st, c + 3);
			db_bind_str(st, c + 4, "text/plain; charset=utf-8");
			db_bind_i64(st, c + 5, (int64_t)o->text_len);
			db_bind_null(st, c + 6);
			db_bind_text(st, c + 7, o->text, o->text_len);
		} else {
			db_bind_str(st, c + 2, "file");
			db_bind_str(st, c + 3, o->path);
			db_bind_str(st, c + 4, o->content_type);
			db_bind_i64(st, c + 5, o->bytes);
			db_bind_str(st, c + 6, o->sha256);
			db_bind_null(st, c + 7);
		}
	}
	return db_exec(st);
}

/* Every output of the successes, SQL_ROWS_MAX rows to a statement. */
static int
settle_outputs(struct db *db, struct finish **v, size_t n)
{
	struct output_row rows[SQL_ROWS_MAX];
	size_t k = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < v[i]->r->out.noutputs; j++) {
			rows[k++] = (struct output_row){ v[i]->r->seq, j, &v[i]->r->out.outputs[j] };
			if (k == SQL_ROWS_MAX) {
				if ((rc = insert_output_rows(db, rows, k)) != DB_OK)
					return rc;
				k = 0;
			}
		}
	return k > 0 ? insert_output_rows(db, rows, k) : DB_OK;
}

/* The job rows, one statement per distinct (charged, refunded). */
static int
settle_jobs(struct db *db, struct finish **v, size_t n)
{
	bool done[SQL_ROWS_MAX] = { false };
	int rc;

	for (size_t i = 0; i < n; i++) {
		struct finish *same[SQL_ROWS_MAX];
		struct db_stmt *st;
		size_t k = 0;

		if (done[i])
			continue;
		for (size_t j = i; j < n; j++)
			if (!done[j] && v[j]->charged == v[i]->charged && v[j]->held == v[i]->held) {
				same[k++] = v[j];
				done[j] = true;
			}
		if ((st = sql_rows_prepare(db, &sql_succeed, k, &rc)) == NULL)
			return rc;
		db_bind_i64(st, 0, v[i]->charged);
		db_bind_i64(st, 1, v[i]->held - v[i]->charged);
		for (size_t j = 0; j < k; j++)
			db_bind_i64(st, (unsigned)(2 + j), (int64_t)same[j]->r->seq);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
		/* Every row was locked and checked as running by lock_batch. */
		if (db_affected_rows(st) != k)
			return DB_ERR;
	}
	return DB_OK;
}

/* The credits, one ledger_settle_jobs per user. */
static int
settle_credits(struct db *db, struct batch *bt, struct finish **v, size_t n)
{
	bool done[SQL_ROWS_MAX] = { false };
	int rc;

	for (size_t i = 0; i < n; i++) {
		struct ledger_settlement items[SQL_ROWS_MAX];
		size_t k = 0;

		if (done[i])
			continue;
		for (size_t j = i; j < n; j++)
			if (!done[j] && v[j]->user_id == v[i]->user_id) {
				items[k++] = (struct ledger_settlement){ v[j]->r->seq, v[j]->held,
				    v[j]->charged };
				done[j] = true;
			}
		rc = ledger_settle_jobs(db, v[i]->user_id, items, k, bt->g->actor,
		    "job succeeded: hold released", "job succeeded");
		if (rc != DB_OK)
			return rc < 0 ? rc : DB_ERR;
	}
	return DB_OK;
}

static int
settle_successes(struct db *db, struct batch *bt)
{
	struct finish *v[SQL_ROWS_MAX];
	struct db_stmt *st;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < bt->n; i++)
		if (bt->f[i].settle)
			v[n++] = &bt->f[i];
	if (n == 0)
		return DB_OK;
	if ((rc = settle_outputs(db, v, n)) != DB_OK ||
	    (rc = settle_jobs(db, v, n)) != DB_OK ||
	    (rc = settle_credits(db, bt, v, n)) != DB_OK)
		return rc;
	if ((st = sql_rows_prepare(db, &sql_attempts_succeeded, n, &rc)) == NULL)
		return rc;
	for (size_t i = 0; i < n; i++)
		db_bind_str(st, (unsigned)i, v[i]->r->prompt_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		struct run *r = v[i]->r;

		bt->ev[bt->nev++] = (struct job_event){ r->seq, "running", "succeeded",
		    v[i]->reason, r->attempt, r->backend->id, v[i]->no_webhook };
	}
	return DB_OK;
}

/* Backends' acceptances of prompts still running, noted in the batch. A
 * prompt id names one attempt (unique key job_attempts_prompt). */
static struct sql_rows sql_submitted = SQL_ROWS_INIT(
    "UPDATE job_attempts SET submitted_at = UTC_TIMESTAMP(6) "
    "WHERE submitted_at IS NULL AND prompt_id IN (", "?", ")");

static int
note_submitted(struct db *db, char (*prompt_ids)[GQ_UUID_LEN], size_t n)
{
	struct db_stmt *st;
	int rc;

	if ((st = sql_rows_prepare(db, &sql_submitted, n, &rc)) == NULL)
		return rc;
	for (size_t i = 0; i < n; i++)
		db_bind_str(st, (unsigned)i, prompt_ids[i]);
	return db_exec(st);
}

static int
batch_txn(struct db *db, void *arg)
{
	struct batch *bt = arg;
	int rc;

	bt->nprices = 0;
	bt->nev = 0;
	if (bt->n > 0 && (rc = lock_batch(db, bt)) != DB_OK)
		return rc;
	for (size_t i = 0; i < bt->n; i++) {
		struct finish *f = &bt->f[i];

		f->result = F_COMMITTED;
		f->settle = false;
		rc = finish_one(db, bt, f);
		if (rc == FINISH_STALE)
			f->result = F_STALE;    /* nothing written for it; go on */
		else if (rc != DB_OK)
			return rc;
	}
	if ((rc = settle_successes(db, bt)) != DB_OK)
		return rc;
	if (bt->nev > 0 && (rc = job_events_add(db, bt->ev, bt->nev, bt->g->actor)) != DB_OK)
		return rc;
	if (bt->nmarks > 0 && (rc = note_submitted(db, bt->marks, bt->nmarks)) != DB_OK)
		return rc;
	for (size_t i = 0; i < bt->nprog; i++)
		if ((rc = run_progress_write(db, &bt->prog[i])) != DB_OK)
			return rc;
	return DB_OK;
}

/* A batch as handed to the committer, with room for its copies. */
struct batch_buf {
	struct batch bt;
	bool sync;                   /* sync the output store before committing */
	struct finish f[FINISH_BATCH_MAX];
	char marks[FINISH_BATCH_MAX][GQ_UUID_LEN];
	struct progress_note prog[FINISH_BATCH_MAX];
};

/* One batch buffer for each the committer may hold, reused in turn: batch
 * k is in buf[k % COMMITTER_DEPTH], and the committer hands them back in
 * the order they were posted. */
struct finishing {
	struct batch_buf buf[COMMITTER_DEPTH];
	uint64_t posted, collected;
};

/* ---- in the committer's thread ----------------------------------- */

/* syncfs() on the output store. */
static int
sync_outputs(const char *output_dir)
{
	int fd, rc;

	if ((fd = open(output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = syncfs(fd);
	close(fd);
	return rc;
}

static void
defer_all(struct batch *bt)
{
	for (size_t i = 0; i < bt->n; i++)
		bt->f[i].result = F_DEFERRED;
}

/* committer_fn: the batch's transaction. Each attempt's result says what
 * became of it; db is NULL while the database cannot be reached. */
static int
commit_batch(struct db *db, void *arg)
{
	struct batch_buf *buf = arg;
	struct batch *bt = &buf->bt;
	int rc;

	defer_all(bt);
	if (db == NULL)
		return DB_GONE;
	/* Output files are written and renamed without a sync each
	 * (outputs.c): one sync of the file system here makes every one of
	 * the batch durable before any job says succeeded. */
	if (buf->sync && sync_outputs(bt->g->cfg->output_dir) < 0) {
		log_error("output_sync_failed", "error=\"%s\"", strerror(errno));
		return DB_OK;
	}
	if ((rc = db_txn(db, batch_txn, bt)) == DB_OK)
		return DB_OK;
	defer_all(bt);
	committer_log_failure(db, rc, "finish_batch");
	if (rc == DB_GONE || bt->n <= 1)
		return rc;
	/* Not the connection: maybe one attempt the database refuses. Each
	 * on its own then, so it cannot hold the others back. */
	for (size_t i = 0; i < bt->n; i++) {
		struct batch one = { .g = bt->g, .f = &bt->f[i], .n = 1 };

		if ((rc = db_txn(db, batch_txn, &one)) != DB_OK) {
			bt->f[i].result = F_DEFERRED;
			committer_log_failure(db, rc, "finish");
			if (rc == DB_GONE)
				return rc;
		}
	}
	return DB_OK;
}

/* ---- in the loop ------------------------------------------------- */

static void
defer(struct run *r)
{
	int64_t wait = COMMIT_RETRY_MIN_US << (r->tries < 6 ? r->tries : 6);

	if (wait > COMMIT_RETRY_MAX_US)
		wait = COMMIT_RETRY_MAX_US;
	r->tries++;
	r->next_at = gq_mono_us() + wait;
	run_log(warn, "job_finish_deferred", r, " tries=%d", r->tries);
}

/* Did one of the ended attempts store files? */
static bool
stored_files(const struct finish *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct outcome *o = &f[i].r->out;

		if (o->kind == OUTCOME_SUCCEEDED)
			for (size_t k = 0; k < o->noutputs; k++)
				if (o->outputs[k].text == NULL)
					return true;
	}
	return false;
}

/* The committer is done with the oldest batch: act on what became of
 * each run. */
static void
take_results(struct genqd *g)
{
	struct finishing *fin = g->finishing;
	struct batch *bt = &fin->buf[fin->collected++ % COMMITTER_DEPTH].bt;

	for (size_t i = 0; i < bt->n; i++) {
		struct finish *f = &bt->f[i];
		struct run *r = f->r;

		r->state = RUN_ENDED;
		switch (f->result) {
		case F_DEFERRED:
			defer(r);
			continue;
		case F_STALE:
			run_log(warn, "job_finish_stale", r,
			    " note=\"the job changed under this attempt\"");
			break;
		case F_COMMITTED:
			log_verdict(f);
			if (f->verdict != V_RETRY)
				g->deps_due = true;     /* a parent may have ended: deps.c looks soon */
			break;
		}
		run_release(g, r);
	}
	bt->n = bt->nmarks = bt->nprog = 0;
}

/* Would a batch gathered now be full? */
static bool
batch_would_fill(const struct genqd *g)
{
	size_t ended = 0;

	for (const struct run *r = g->runs; r != NULL; r = r->next)
		if (r->state == RUN_ENDED && r->tries == 0 && ++ended >= FINISH_BATCH_MAX)
			return true;
	return false;
}

/* Gather what is due into the batch; false when there is nothing. */
static bool
gather(struct genqd *g, struct batch_buf *buf, int64_t now)
{
	struct batch *bt = &buf->bt;
	size_t ended = 0;
	bool full = false;

	bt->n = bt->nmarks = bt->nprog = 0;
	/* Enough ended attempts for a good batch: no need to wait for more. */
	for (struct run *r = g->runs; r != NULL && !full; r = r->next)
		full = r->state == RUN_ENDED && r->tries == 0 && ++ended >= FINISH_GATHER_MIN;
	for (struct run *r = g->runs; r != NULL; r = r->next) {
		if (r->state == RUN_DEAD || r->state == RUN_COMMITTING)
			continue;
		if (r->state == RUN_ENDED && (r->next_at <= now || (full && r->tries == 0)) &&
		    bt->n < FINISH_BATCH_MAX) {
			struct finish *x = &buf->f[bt->n++];

			memset(x, 0, sizeof *x);
			x->g = g;
			x->r = r;
			/* Chosen once, so a rerun of the transaction decides the same. */
			x->backoff_ms = policy_backoff_ms(r->attempt, gq_random_u32());
		}
		/* The submit marks and progress are informative only: one try,
		 * never retried. An ended run's acceptance is written with its
		 * end; progress of a run that ended is moot. */
		if (r->submit_noted && r->state != RUN_ENDED && bt->nmarks < FINISH_BATCH_MAX) {
			memcpy(buf->marks[bt->nmarks++], r->prompt_id, GQ_UUID_LEN);
			r->submit_noted = false;
		}
		if (r->progress_noted && r->state == RUN_ACTIVE && now >= r->progress_write_at &&
		    bt->nprog < FINISH_BATCH_MAX) {
			buf->prog[bt->nprog++] = (struct progress_note){ r->seq, { 0 }, r->progress,
			    r->no_webhook };
			memcpy(buf->prog[bt->nprog - 1].prompt_id, r->prompt_id, GQ_UUID_LEN);
			r->progress_noted = false;
		}
	}
	buf->sync = stored_files(buf->f, bt->n);
	return bt->n > 0 || bt->nmarks > 0 || bt->nprog > 0;
}

void
finish_flush(struct genqd *g, int64_t now)
{
	struct finishing *fin = g->finishing;
	struct batch_buf *next;

	if (fin == NULL) {
		if ((fin = calloc(1, sizeof *fin)) == NULL) {
			log_error("out_of_memory", "step=finish");
			return;
		}
		for (size_t i = 0; i < COMMITTER_DEPTH; i++)
			fin->buf[i].bt = (struct batch){ .g = g, .f = fin->buf[i].f,
			    .marks = fin->buf[i].marks, .prog = fin->buf[i].prog };
		g->finishing = fin;
	}
	while (committer_done(g->committer))
		take_results(g);
	if (!committer_has_room(g->committer))
		return;
	/* With a batch in hand, the next waits behind it already gathered, so
	 * the committer goes from one to the other without a turn of the loop
	 * between them; but only a full one: a part batch is better left to
	 * grow meanwhile. */
	if (committer_busy(g->committer) && !batch_would_fill(g))
		return;
	next = &fin->buf[fin->posted % COMMITTER_DEPTH];
	if (!gather(g, next, now))
		return;
	/* Left alone by the loop until collect: see struct finish. */
	for (size_t i = 0; i < next->bt.n; i++)
		next->f[i].r->state = RUN_COMMITTING;
	fin->posted++;
	committer_post(g->committer, commit_batch, next);
}

int64_t
finish_next_deadline(const struct genqd *g)
{
	int64_t next = INT64_MAX;

	/* A batch in hand: the committer's fd wakes the loop when it is back,
	 * and the next one gathers meanwhile. */
	if (committer_busy(g->committer))
		return INT64_MAX;
	for (const struct run *r = g->runs; r != NULL; r = r->next)
		if (r->state == RUN_ENDED && r->next_at < next)
			next = r->next_at;
	return next;
}

void
finish_drain(struct genqd *g)
{
	/* Twice: what ended while the first batch committed goes too. A run
	 * whose end still cannot be recorded stays running, and is handed
	 * back (finish_hand_back) for recovery to decide. */
	for (int pass = 0; pass < 2; pass++) {
		committer_wait(g->committer);
		finish_flush(g, INT64_MAX);   /* takes the results, sends what is left */
	}
	committer_wait(g->committer);
	while (committer_done(g->committer))
		take_results(g);
}

void
finish_free(struct genqd *g)
{
	free(g->finishing);
	g->finishing = NULL;
}

void
run_end(struct genqd *g, struct run *r)
{
	http_cancel(g->http, r->req);
	r->req = NULL;
	r->submitting = false;
	r->state = RUN_ENDED;
	r->tries = 0;
	run_vacate(g, r);
	r->next_at = gq_mono_us() + FINISH_GATHER_US;
	policy_utf8_fix(r->out.message);
	/* Committed by finish_flush within FINISH_GATHER_US, together with
	 * every other attempt that ended meanwhile. */
}

void
run_fail(struct genqd *g, struct run *r, const char *code, bool retryable, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	r->out.kind = OUTCOME_FAILED;
	snprintf(r->out.code, sizeof r->out.code, "%s", code);
	r->out.retryable = retryable;
	va_start(ap, fmt);
	vsnprintf(r->out.message, sizeof r->out.message, fmt, ap);
	va_end(ap);
	/* Exception texts often end in a newline; it helps no one. */
	n = strlen(r->out.message);
	while (n > 0 && (r->out.message[n - 1] == '\n' || r->out.message[n - 1] == ' ' ||
	    r->out.message[n - 1] == '\r' || r->out.message[n - 1] == '\t'))
		r->out.message[--n] = '\0';
	run_end(g, r);
}

int
finish_hand_back(struct genqd *g, uint64_t backend_id)
{
	struct db_stmt *st;
	int rc;

	st = db_prepare(g->db, backend_id ? SQL_HAND_BACK_BACKEND : SQL_HAND_BACK_ALL);
	if (st == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "hand_back");
		return -1;
	}
	db_bind_str(st, 0, g->id);
	if (backend_id)
		db_bind_i64(st, 1, (int64_t)backend_id);
	if ((rc = db_exec(st)) != DB_OK) {
		gqd_db_failed(g, rc, "hand_back");
		return -1;
	}
	return (int)db_affected_rows(st);
}
