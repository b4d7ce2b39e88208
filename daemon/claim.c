#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "jobevent.h"

/* The best claimable jobs of one queue, locked; rows other genqds hold are
 * skipped rather than waited for. Jobs past their ttl are left to sweep.c. */
static const char SQL_HEADS[] =
    "SELECT seq, priority FROM jobs WHERE queue = ? AND status = 'queued' "
    "AND not_before <= UTC_TIMESTAMP(6) "
    "AND GREATEST(created_at, not_before) + INTERVAL ttl_s SECOND > UTC_TIMESTAMP(6) "
    "ORDER BY priority, seq LIMIT ? FOR UPDATE SKIP LOCKED";
static const char SQL_JOB[] =
    "SELECT id, attempts, timeout_s, input FROM jobs WHERE seq = ?";
static const char SQL_START[] =
    "UPDATE jobs SET status = 'running', attempts = attempts + 1, backend_id = ?, prompt_id = ?, "
    "claimed_by = ?, lease_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND, "
    "started_at = COALESCE(started_at, UTC_TIMESTAMP(6)), progress = 0, "
    "error_code = NULL, error_message = NULL, error_retryable = NULL "
    "WHERE seq = ? AND status = 'queued'";
static const char SQL_ATTEMPT[] =
    "INSERT INTO job_attempts (job_seq, attempt, backend_id, prompt_id, started_at) "
    "VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))";

#define US_PER_MS 1000LL

/* A queued job found at the head of one of the backend's queues. */
struct head {
	uint64_t seq;
	int priority;
	size_t queue;                /* index into backend->queues */
};

/* A job this claim took. */
struct claimed {
	uint64_t seq;
	char id[GQ_UUID_LEN];
	char prompt_id[GQ_UUID_LEN];
	size_t queue;
	int attempt;
	int timeout_s;
	char *input;                 /* owned until handed to its run */
	size_t input_len;
};

struct claim {
	struct genqd *g;
	struct backend *b;
	int want;
	struct head *heads;
	size_t nheads;
	struct claimed *jobs;        /* want entries */
	size_t njobs;
};

static void
claim_reset(struct claim *c)
{
	for (size_t i = 0; i < c->njobs; i++) {
		free(c->jobs[i].input);
		c->jobs[i].input = NULL;
	}
	c->njobs = 0;
	c->nheads = 0;
}

static int
by_priority_then_age(const void *a, const void *b)
{
	const struct head *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Lock up to want heads of every queue the backend serves. */
static int
find_heads(struct db *db, struct claim *c)
{
	struct backend *b = c->b;
	int rc;

	for (size_t q = 0; q < b->nqueues; q++) {
		struct db_stmt *st = db_prepare(db, SQL_HEADS);

		if (st == NULL)
			return db_last_status(db);
		db_bind_str(st, 0, b->queues[q]);
		db_bind_i64(st, 1, c->want);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
		while ((rc = db_next(st)) == 1) {
			struct head *h = &c->heads[c->nheads++];
			h->seq = (uint64_t)db_i64(st, 0);
			h->priority = (int)db_i64(st, 1);
			h->queue = q;
		}
		if (rc < 0)
			return rc;
	}
	qsort(c->heads, c->nheads, sizeof *c->heads, by_priority_then_age);
	return DB_OK;
}

/* Read one locked job and move it to running with a new attempt. */
static int
start_job(struct db *db, struct claim *c, const struct head *h)
{
	struct genqd *g = c->g;
	struct claimed *j = &c->jobs[c->njobs];
	struct db_stmt *st = db_prepare(db, SQL_JOB);
	const char *id, *input;
	size_t input_len;
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)h->seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_OK;     /* gone: nothing to start */
	memset(j, 0, sizeof *j);
	j->seq = h->seq;
	j->queue = h->queue;
	id = db_text(st, 0, NULL);
	snprintf(j->id, sizeof j->id, "%s", id ? id : "");
	j->attempt = (int)db_i64(st, 1) + 1;
	j->timeout_s = (int)db_i64(st, 2);
	input = db_text(st, 3, &input_len);
	if (input == NULL)
		input = "{}", input_len = 2;
	if ((j->input = malloc(input_len + 1)) == NULL)
		return DB_NOMEM;
	memcpy(j->input, input, input_len);
	j->input[input_len] = '\0';
	j->input_len = input_len;
	/* The njobs slot owns the input from here, whatever happens next. */
	c->njobs++;
	if (gq_uuid4(j->prompt_id) < 0)
		return DB_ERR;

	if ((st = db_prepare(db, SQL_START)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)c->b->id);
	db_bind_str(st, 1, j->prompt_id);
	db_bind_str(st, 2, g->id);
	db_bind_i64(st, 3, g->cfg->lease_s);
	db_bind_i64(st, 4, (int64_t)j->seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1) {
		free(j->input);
		c->njobs--;
		return DB_OK;
	}
	if ((st = db_prepare(db, SQL_ATTEMPT)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)j->seq);
	db_bind_i64(st, 1, j->attempt);
	db_bind_i64(st, 2, (int64_t)c->b->id);
	db_bind_str(st, 3, j->prompt_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	return job_event_add(db, j->seq, "queued", "running", g->actor, c->b->name,
	    j->attempt, c->b->id);
}

static int
claim_txn(struct db *db, void *arg)
{
	struct claim *c = arg;
	int rc;

	claim_reset(c);
	if ((rc = find_heads(db, c)) != DB_OK)
		return rc;
	for (size_t i = 0; i < c->nheads && (int)c->njobs < c->want; i++)
		if ((rc = start_job(db, c, &c->heads[i])) != DB_OK)
			return rc;
	return DB_OK;
}

/* Hand the claimed jobs to runs and submit them. */
static void
launch(struct genqd *g, struct claim *c)
{
	struct backend *b = c->b;

	for (size_t i = 0; i < c->njobs; i++) {
		struct claimed *j = &c->jobs[i];
		struct run *r = run_new(g, b);

		if (r == NULL) {
			/* Recovery finds it running without a genqd and retries it. */
			log_error("out_of_memory", "step=launch job=%s", j->id);
			continue;
		}
		r->seq = j->seq;
		memcpy(r->job_id, j->id, sizeof r->job_id);
		memcpy(r->prompt_id, j->prompt_id, sizeof r->prompt_id);
		snprintf(r->queue, sizeof r->queue, "%s", b->queues[j->queue]);
		r->attempt = j->attempt;
		r->timeout_s = j->timeout_s;
		r->input = j->input;
		r->input_len = j->input_len;
		j->input = NULL;
		run_log(info, "job_started", r, "%s", "");
		b->proto->submit(g, r);
	}
}

static void
claim_backend(struct genqd *g, struct backend *b, int64_t now)
{
	struct claim c;
	int rc;

	memset(&c, 0, sizeof c);
	c.g = g;
	c.b = b;
	c.want = b->max_running + b->prefetch - b->inflight;
	c.heads = calloc((size_t)c.want * b->nqueues, sizeof *c.heads);
	c.jobs = calloc((size_t)c.want, sizeof *c.jobs);
	if (c.heads == NULL || c.jobs == NULL) {
		log_error("out_of_memory", "step=claim backend=%s", b->name);
		b->next_claim_at = now + g->cfg->poll_interval_ms * US_PER_MS;
		goto out;
	}
	rc = db_txn(g->db, claim_txn, &c);
	if (rc != DB_OK) {
		claim_reset(&c);
		gqd_db_failed(g, rc, "claim");
		b->next_claim_at = now + g->cfg->poll_interval_ms * US_PER_MS;
		goto out;
	}
	/* A short claim means the queues are empty: wait for a wake-up or
	 * the poll interval. A full one may be followed by more at once. */
	b->next_claim_at = (int)c.njobs < c.want ? now + g->cfg->poll_interval_ms * US_PER_MS : 0;
	launch(g, &c);
out:
	claim_reset(&c);
	free(c.heads);
	free(c.jobs);
}

void
claim_due(struct genqd *g, int64_t now)
{
	for (struct backend *b = g->backends; b != NULL && gqd_db_ready(g); b = b->next)
		if (backend_has_room(g, b) && now >= b->next_claim_at)
			claim_backend(g, b, now);
}

void
claim_soon(struct genqd *g)
{
	for (struct backend *b = g->backends; b != NULL; b = b->next)
		b->next_claim_at = 0;
}

int64_t
claim_next_deadline(const struct genqd *g)
{
	int64_t next = INT64_MAX;

	for (const struct backend *b = g->backends; b != NULL; b = b->next)
		if (backend_has_room(g, b) && b->next_claim_at < next)
			next = b->next_claim_at;
	return next;
}
