/* submit: POST /v1/jobs. The body is checked first (jobspec.c), then one
 * transaction does the admission of SPEC §3 and the insert: lock the
 * user's row, queue exists and runs, user's active jobs below the tier's
 * max_active, submit rate (token bucket, ratelimit.c), monthly quota
 * (quota.c), queue depth below max_queued, hold the job's maximum price,
 * insert the job and its first event (and, with an Idempotency-Key, the
 * stored answer: idempotency.c). The lock's statement also reads the
 * user's side of the limits (SQL_LOCK_ADMIT), so the later steps cost a
 * round trip only where they write or count more. Any refusal rolls
 * everything back; only the rate-limit bookkeeping is then written again
 * (admit_bookkeeping). */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "deps.h"
#include "fairshare.h"
#include "jobevent.h"
#include "jobjson.h"
#include "jobspec.h"
#include "jsonutil.h"
#include "ledger.h"
#include "log.h"
#include "wake.h"

/* The user's row lock alone (bookkeeping_txn): every writer of the bucket
 * holds it. */
static const char SQL_LOCK_USER[] =
    "SELECT id FROM users WHERE id = ? FOR UPDATE";
/* The admission's lock, which serializes one user's submits (so the counts
 * of admission are exact), with what §3's user limits need read in the same
 * round trip: the active jobs (max_active), the tier's rate and the bucket
 * (ratelimit.c) and the tier's quota for the queue (quota.c). Only the
 * users row is locked: FOR UPDATE does not reach into subqueries, which are
 * plain reads. They are correlated with u, so they run after its row is
 * read, i.e. after the lock is granted, and (READ COMMITTED: a snapshot per
 * statement, taken at its first plain read) see every commit of whoever
 * held the lock before: as exact as separate statements after the lock.
 * SYSDATE, not UTC_TIMESTAMP: the time of the read, after any wait for the
 * lock, not of the statement's start (the session's time zone is UTC). */
static const char SQL_LOCK_ADMIT[] =
    "SELECT (SELECT COUNT(*) FROM jobs WHERE user_id = u.id "
    "  AND status IN ('held', 'waiting', 'queued', 'running')), "
    "(SELECT rate_per_min FROM tiers WHERE name = u.tier), "
    "(SELECT rate_burst FROM tiers WHERE name = u.tier), "
    "(SELECT tat FROM rate_buckets WHERE user_id = u.id), SYSDATE(6), "
    "(SELECT monthly_jobs FROM tier_quotas WHERE tier = u.tier AND queue = ?) "
    "FROM users u WHERE u.id = ? FOR UPDATE";
static const char SQL_QUEUE[] =
    "SELECT price_per_job, price_per_second, timeout_s, ttl_s, max_attempts, "
    "max_queued, requires_approval, paused FROM queues WHERE name = ?";
/* Counting stops at the limit, so a deep queue costs no more than that. */
static const char SQL_QUEUE_DEPTH[] =
    "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE queue = ? "
    "AND status IN ('queued', 'held', 'waiting') LIMIT ?) d";
static const char SQL_INSERT_JOB[] =
    "INSERT INTO jobs (id, user_id, queue, status, priority, input, metadata, "
    "webhook_url, webhook_events, max_attempts, timeout_s, ttl_s, cost_held, "
    "regenerated_from, turn, created_at, not_before) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))";
static const char SQL_JOB_SEQ[] =
    "SELECT seq FROM jobs WHERE id = ? AND user_id = ?";

#define RETRY_AFTER_ACTIVE_S 5
#define RETRY_AFTER_FULL_S 10

/* Why the transaction refused (positive, so db_txn rolls back and returns it). */
enum refusal {
	REFUSE_NONE = 0,
	REFUSE_QUEUE_UNKNOWN = 1,
	REFUSE_LIMITS,            /* a limit looser than the queue's: errors */
	REFUSE_PAUSED,
	REFUSE_ACTIVE,
	REFUSE_FULL,
	REFUSE_CREDITS,
	ALREADY_INSERTED,         /* a retried transaction whose commit had landed */
};

struct queue_row {
	int64_t price_per_job, price_per_second;
	int64_t timeout_s, ttl_s, max_attempts, max_queued;
	bool requires_approval, paused;
};

struct submit {
	const struct job_spec *spec;
	const struct caller *caller;
	const char *regenerated_from;   /* or NULL */
	char id[GQ_UUID_LEN];
	const char *input;
	size_t input_len;
	char events[64];
	char actor[80];
	/* Filled by the transaction (again on each run). */
	struct json_object *errors;
	struct queue_row q;
	const char *status;
	struct deps_parents deps;     /* the jobs in spec->after (lib/deps.h) */
	int64_t max_attempts, timeout_s, ttl_s, hold;
	int priority;
	int64_t turn;             /* fair share (lib/fairshare.h) */
	int64_t active;           /* the user's active jobs (SQL_LOCK_ADMIT) */
	struct rate_bucket bucket;
	bool quota_limited;       /* the tier has a quota for the queue */
	int64_t quota_limit;
	uint64_t seq;
	int runs;                 /* times submit_txn has started */
	/* Admission limits (admit_limits; reset on each run). */
	struct rate_state rate;
	bool rate_known;          /* rate describes the bucket after this run */
	bool token_taken;         /* this run took a submit token */
	struct quota_state quota;
	/* Idempotency-Key: the claim, and the 201 body stored with the job. */
	struct idem *idem;        /* or NULL; the caller's */
	const char *base_url;
	char *answer;             /* owned */
	size_t answer_len;
};

static int
count_one(struct db_stmt *st, int64_t *n)
{
	int rc = db_exec(st);

	if (rc != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	*n = db_i64(st, 0);
	return DB_OK;
}

/* Lock the user's row and read the user's side of the limits. */
static int
lock_user(struct db *db, struct submit *s)
{
	struct db_stmt *st = db_prepare(db, SQL_LOCK_ADMIT);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, s->spec->queue);
	db_bind_i64(st, 1, (int64_t)s->caller->user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	/* No user row, or a user without a tier row (the bucket's join
	 * failed in ratelimit.c before): a broken schema either way. */
	if ((rc = db_next(st)) != 1 || db_is_null(st, 1))
		return rc < 0 ? rc : DB_ERR;
	s->active = db_i64(st, 0);
	s->bucket.rate_per_min = db_i64(st, 1);
	s->bucket.burst = db_i64(st, 2);
	s->bucket.tat = db_is_null(st, 3) ? 0 : db_time_us(st, 3);
	s->bucket.now = db_time_us(st, 4);
	s->quota_limited = !db_is_null(st, 5);
	s->quota_limit = db_i64(st, 5);
	return DB_OK;
}

static int
load_queue(struct db *db, const char *name, struct queue_row *q)
{
	struct db_stmt *st = db_prepare(db, SQL_QUEUE);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, name);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : REFUSE_QUEUE_UNKNOWN;
	q->price_per_job = db_i64(st, 0);
	q->price_per_second = db_i64(st, 1);
	q->timeout_s = db_i64(st, 2);
	q->ttl_s = db_i64(st, 3);
	q->max_attempts = db_i64(st, 4);
	q->max_queued = db_i64(st, 5);
	q->requires_approval = db_i64(st, 6) != 0;
	q->paused = db_i64(st, 7) != 0;
	return DB_OK;
}

/* A requested limit may only tighten the queue's. */
static int64_t
tighten(struct submit *s, const char *field, int64_t requested, int64_t queue_max)
{
	char msg[96];

	if (requested == 0)
		return queue_max;
	if (requested > queue_max) {
		snprintf(msg, sizeof msg, "may be at most %lld (the queue's limit)",
		    (long long)queue_max);
		problem_error_add(s->errors, field, msg);
	}
	return requested;
}

/* ALREADY_INSERTED when our job id exists: an earlier run's commit went
 * through before the connection dropped. DB_OK when it does not. */
static int
find_inserted(struct db *db, struct submit *s)
{
	struct db_stmt *st = db_prepare(db, SQL_JOB_SEQ);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, s->id);
	db_bind_i64(st, 1, (int64_t)s->caller->user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc;
	s->seq = (uint64_t)db_i64(st, 0);
	return ALREADY_INSERTED;
}

static int
insert_job(struct db *db, struct submit *s)
{
	const struct job_spec *sp = s->spec;
	struct db_stmt *st = db_prepare(db, SQL_INSERT_JOB);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, s->id);
	db_bind_i64(st, 1, (int64_t)s->caller->user_id);
	db_bind_str(st, 2, sp->queue);
	db_bind_str(st, 3, s->status);
	db_bind_i64(st, 4, s->priority);
	db_bind_text(st, 5, s->input, s->input_len);
	db_bind_text(st, 6, sp->metadata, sp->metadata_len);
	db_bind_str(st, 7, sp->webhook);
	db_bind_str(st, 8, sp->webhook ? s->events : NULL);
	db_bind_i64(st, 9, s->max_attempts);
	db_bind_i64(st, 10, s->timeout_s);
	db_bind_i64(st, 11, s->ttl_s);
	db_bind_i64(st, 12, s->hold);
	db_bind_str(st, 13, s->regenerated_from);
	db_bind_i64(st, 14, s->turn);
	rc = db_exec(st);
	if (rc == DB_DUP) {
		rc = find_inserted(db, s);
		return rc == DB_OK ? DB_DUP : rc;
	}
	if (rc != DB_OK)
		return rc;
	s->seq = db_insert_id(st);
	return DB_OK;
}

/* §3's limits after max_active, in its order: the submit rate, then the
 * monthly quota. The token is taken here, inside the admission transaction
 * and under the user's row lock, rather than in a transaction of its own
 * before it: so a submit refused for max_active (or a paused queue, or a
 * bad field) spends no token and gets the refusal §3 puts first, and
 * concurrent submits of one user never share a token. A refusal after this
 * point rolls the token back with everything else; admit() then takes it
 * again in a short transaction of its own (admit_bookkeeping), because a
 * refused submit still counts against the rate. */
static int
admit_limits(struct db *db, struct submit *s)
{
	int rc = rate_take_read(db, s->caller->user_id, &s->bucket, &s->rate);

	if (rc == DB_OK || rc == RATE_REFUSED)
		s->rate_known = true;
	if (rc != DB_OK)
		return rc;
	s->token_taken = s->rate.limited;
	return quota_check_limit(db, s->caller->user_id, s->spec->queue, s->quota_limited,
	    s->quota_limit, &s->quota);
}

/* With an Idempotency-Key, the 201 body is rendered here, inside the
 * transaction, and stored with the job: a replay gets these very bytes, and
 * there is never a job without its stored answer or the other way round. */
static int
admit_idem_finish(struct db *db, struct submit *s)
{
	struct json_object *job = NULL;
	const char *text;
	size_t len;
	int rc;

	if (s->idem == NULL)
		return DB_OK;
	free(s->answer);
	s->answer = NULL;
	if ((rc = jobjson_load(db, s->base_url, s->id, 0, &job)) != DB_OK)
		return rc < 0 ? rc : DB_ERR;
	text = gq_json_text(job, &len);
	if (text == NULL || (s->answer = malloc(len + 1)) == NULL) {
		json_object_put(job);
		return DB_NOMEM;
	}
	memcpy(s->answer, text, len + 1);
	s->answer_len = len;
	json_object_put(job);
	return idem_finish(db, s->idem, 201, s->answer, s->answer_len);
}

static int
submit_txn(struct db *db, void *arg)
{
	struct submit *s = arg;
	const struct job_spec *sp = s->spec;
	struct db_stmt *st;
	int64_t n;
	int rc;

	/* This function may run again after a retry: start clean, and after
	 * a lost connection first look whether the last run's commit landed
	 * (its job would now count against the limits below). */
	json_object_put(s->errors);
	if ((s->errors = json_object_new_array()) == NULL)
		return DB_NOMEM;
	s->rate_known = s->token_taken = false;
	if (s->runs++ > 0 && (rc = find_inserted(db, s)) != DB_OK)
		return rc;

	if ((rc = lock_user(db, s)) != DB_OK)
		return rc;
	if ((rc = load_queue(db, sp->queue, &s->q)) != DB_OK)
		return rc;
	s->max_attempts = tighten(s, "max_attempts", sp->max_attempts, s->q.max_attempts);
	s->timeout_s = tighten(s, "timeout_s", sp->timeout_s, s->q.timeout_s);
	s->ttl_s = tighten(s, "ttl_s", sp->ttl_s, s->q.ttl_s);
	if ((rc = spec_after_lookup(db, s->caller->user_id, sp, &s->deps, s->errors)) != DB_OK)
		return rc;
	if (json_object_array_length(s->errors) > 0)
		return REFUSE_LIMITS;
	if (s->q.paused)
		return REFUSE_PAUSED;

	if (s->active >= s->caller->max_active)
		return REFUSE_ACTIVE;

	if ((rc = admit_limits(db, s)) != DB_OK)
		return rc;

	if ((st = db_prepare(db, SQL_QUEUE_DEPTH)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, sp->queue);
	db_bind_i64(st, 1, s->q.max_queued);
	if ((rc = count_one(st, &n)) != DB_OK)
		return rc;
	if (n >= s->q.max_queued)
		return REFUSE_FULL;

	if (__builtin_mul_overflow(s->q.price_per_second, s->timeout_s, &s->hold) ||
	    __builtin_add_overflow(s->hold, s->q.price_per_job, &s->hold))
		return REFUSE_CREDITS;

	/* A tier's priority is the best a job gets; a request may lower it. */
	s->priority = sp->priority > s->caller->tier_priority ? sp->priority : s->caller->tier_priority;
	s->status = s->q.requires_approval ? "held" : deps_initial_status(&s->deps);
	if ((rc = fairshare_next_turn(db, s->caller->user_id, sp->queue, s->priority,
	    &s->turn)) != DB_OK)
		return rc;
	if ((rc = insert_job(db, s)) != DB_OK)
		return rc;
	if ((rc = deps_link(db, s->seq, &s->deps)) != DB_OK)
		return rc;
	if (s->hold > 0) {
		rc = ledger_apply(db, s->caller->user_id, s->seq, "hold", -s->hold, s->actor, NULL);
		if (rc == LEDGER_INSUFFICIENT)
			return REFUSE_CREDITS;
		if (rc != DB_OK)
			return rc;
	}
	if ((rc = job_event_add(db, s->seq, NULL, s->status, s->actor, "submitted", 0, 0)) != DB_OK)
		return rc;
	/* Last, so that the stored answer shows the whole job. */
	return admit_idem_finish(db, s);
}

struct render {
	const char *base_url;
	const char *id;
	struct json_object *job;
};

static int
render_job(struct db *db, void *arg)
{
	struct render *r = arg;

	return jobjson_load(db, r->base_url, r->id, 0, &r->job);
}

/* 201 with the job; the job exists even when rendering it fails. */
static void
answer_created(struct ctx *c, struct submit *s)
{
	struct render r = { c->app->cfg->base_url, s->id, NULL };
	int rc;

	resp_header(c->resp, "Location", "/v1/jobs/%s", s->id);
	if (s->answer != NULL) {
		/* Exactly what a replay of its Idempotency-Key will send. */
		resp_raw(c->resp, 201, "application/json", s->answer, s->answer_len);
		return;
	}
	if ((rc = app_read(c->app, render_job, &r)) == DB_OK) {
		resp_json(c->resp, 201, r.job);
		json_object_put(r.job);
		return;
	}
	log_warn("job_render_failed", "job=%s status=%d", s->id, rc);
	r.job = json_object_new_object();
	if (r.job == NULL) {
		c->resp->failed = true;
		return;
	}
	json_object_object_add(r.job, "id", json_object_new_string(s->id));
	json_object_object_add(r.job, "queue", json_object_new_string(s->spec->queue));
	json_object_object_add(r.job, "status", json_object_new_string(s->status));
	resp_json(c->resp, 201, r.job);
	json_object_put(r.job);
}

/* The refusals of the rate limit, the quota and a lost idempotency claim;
 * false for any other rc. */
static bool
answer_limit_refusal(struct ctx *c, struct submit *s, int rc)
{
	char detail[192], renews[32];

	switch (rc) {
	case RATE_REFUSED:
		snprintf(detail, sizeof detail,
		    "Your tier allows bursts of %d submits; the next one is possible in %d s.",
		    s->rate.limit, s->rate.retry_after_s);
		resp_header(c->resp, "Retry-After", "%d", s->rate.retry_after_s);
		resp_problem(c->resp, P_RATE_LIMITED, detail, NULL);
		return true;
	case QUOTA_EXCEEDED:
		quota_period_end(renews);
		snprintf(detail, sizeof detail,
		    "Your tier allows %lld jobs a month in queue '%s'; the quota renews at %s.",
		    (long long)s->quota.limit, s->spec->queue, renews);
		resp_problem(c->resp, P_QUOTA_EXCEEDED, detail, NULL);
		return true;
	case IDEM_LOST:
		idem_answer(c, s->idem, IDEM_LOST);
		return true;
	default:
		return false;
	}
}

static void
answer_refusal(struct ctx *c, struct submit *s, int rc)
{
	struct json_object *errors;

	switch (rc) {
	case REFUSE_QUEUE_UNKNOWN:
		if ((errors = json_object_new_array()) != NULL)
			problem_error_add(errors, "queue", "unknown queue");
		resp_problem(c->resp, P_INVALID_REQUEST, "The request has invalid fields.", errors);
		break;
	case REFUSE_LIMITS:
		resp_problem(c->resp, P_INVALID_REQUEST, "The request has invalid fields.", s->errors);
		s->errors = NULL;
		break;
	case REFUSE_PAUSED:
		resp_header(c->resp, "Retry-After", "%d", RETRY_AFTER_FULL_S);
		resp_problem(c->resp, P_QUEUE_PAUSED, "The queue is paused; try again later.", NULL);
		break;
	case REFUSE_ACTIVE: {
		char detail[128];
		snprintf(detail, sizeof detail,
		    "Your tier allows %d active jobs at a time.", c->caller.max_active);
		resp_header(c->resp, "Retry-After", "%d", RETRY_AFTER_ACTIVE_S);
		resp_problem(c->resp, P_TOO_MANY_ACTIVE_JOBS, detail, NULL);
		break;
	}
	case REFUSE_FULL:
		resp_header(c->resp, "Retry-After", "%d", RETRY_AFTER_FULL_S);
		resp_problem(c->resp, P_QUEUE_FULL, "The queue holds as many jobs as it may.", NULL);
		break;
	case REFUSE_CREDITS: {
		char need[32], detail[96];
		ledger_format_credits(need, s->hold);
		snprintf(detail, sizeof detail, "This job needs %s credits held.", need);
		resp_problem(c->resp, P_INSUFFICIENT_CREDITS, detail, NULL);
		break;
	}
	default:
		if (answer_limit_refusal(c, s, rc))
			break;
		resp_db_error(c->resp, c->app->db, "submit", rc < 0 ? rc : DB_ERR);
		break;
	}
}

int
submit_read_body(struct ctx *c, struct buf *body)
{
	const char *cl = req_param(c->req, "CONTENT_LENGTH");
	long max = c->app->cfg->max_body_bytes;
	long declared = -1;
	char *end;
	int rc;

	if (cl != NULL && *cl) {
		errno = 0;
		declared = strtol(cl, &end, 10);
		if (errno != 0 || *end != '\0' || declared < 0) {
			resp_problem(c->resp, P_INVALID_REQUEST, "Content-Length is malformed.", NULL);
			return -1;
		}
		if (declared > max)
			goto too_large;
	}
	rc = req_read_body(c->req, body, (size_t)max);
	if (rc < 0) {
		resp_problem(c->resp, P_INVALID_REQUEST, "The body could not be read.", NULL);
		return -1;
	}
	if (rc > 0 || (declared >= 0 && (long)body->len > declared))
		goto too_large;
	if (declared >= 0 && (long)body->len < declared) {
		resp_problem(c->resp, P_INVALID_REQUEST, "The body is shorter than Content-Length.", NULL);
		return -1;
	}
	return 0;
too_large: {
		char detail[96];
		snprintf(detail, sizeof detail, "The body may be at most %ld bytes.", max);
		resp_problem(c->resp, P_PAYLOAD_TOO_LARGE, detail, NULL);
		return -1;
	}
}

/* After a refused admission, in a short transaction of its own: the
 * submit token that the rollback gave back is taken again (a refused submit
 * counts against the rate too; when a concurrent submit got it first, the
 * bucket is simply empty), and the request's own Idempotency-Key claim is
 * dropped so the key can be used again. Nothing else is left behind. */
static int
bookkeeping_txn(struct db *db, void *arg)
{
	struct submit *s = arg;
	struct db_stmt *st;
	int64_t n;
	int rc;

	if (s->token_taken) {
		/* Every writer of the bucket holds the user's row lock. */
		if ((st = db_prepare(db, SQL_LOCK_USER)) == NULL)
			return db_last_status(db);
		db_bind_i64(st, 0, (int64_t)s->caller->user_id);
		if ((rc = count_one(st, &n)) != DB_OK)
			return rc;
		rc = rate_take(db, s->caller->user_id, &s->rate);
		if (rc != DB_OK && rc != RATE_REFUSED)
			return rc;
	}
	return s->idem != NULL ? idem_release(db, s->idem) : DB_OK;
}

static void
admit_bookkeeping(struct db *db, struct submit *s)
{
	int rc;

	if (!s->token_taken && s->idem == NULL)
		return;
	if ((rc = db_txn(db, bookkeeping_txn, s)) != DB_OK)
		log_warn("submit_bookkeeping_failed", "user=%s status=%d", s->caller->name, rc);
}

static int
peek_rate(struct db *db, void *arg)
{
	struct submit *s = arg;

	return rate_peek(db, s->caller->user_id, &s->rate);
}

/* RateLimit-* on every submit answer: the state the admission saw, or,
 * when it stopped before the rate step, the bucket as it is. */
static void
admit_rate_headers(struct ctx *c, struct submit *s)
{
	if (!s->rate_known && app_read(c->app, peek_rate, s) != DB_OK)
		return;
	rate_headers(c->resp, &s->rate);
}

/* The admission of SPEC §3 for a checked spec, then the answer: 201 with
 * the job, or the refusal. idem: the request's claimed Idempotency-Key, or
 * NULL; with one, the job gets the id the claim named. */
static void
admit(struct ctx *c, const struct job_spec *spec, const char *regenerated_from,
    struct idem *idem)
{
	struct submit s;
	struct db *db;
	int rc;

	memset(&s, 0, sizeof s);
	s.regenerated_from = regenerated_from;
	s.spec = spec;
	s.caller = &c->caller;
	s.idem = idem;
	s.base_url = c->app->cfg->base_url;
	if (idem != NULL)
		memcpy(s.id, idem->owner, sizeof s.id);
	else if (gq_uuid4(s.id) < 0)
		s.id[0] = '\0';
	if (s.id[0] == '\0' || (s.input = gq_json_text(spec->input, &s.input_len)) == NULL) {
		c->resp->failed = true;
		goto out;
	}
	spec_events_text(spec->events, s.events);
	snprintf(s.actor, sizeof s.actor, "user:%s", c->caller.name);

	if ((db = app_db(c->app)) == NULL) {
		resp_db_error(c->resp, NULL, "submit", DB_GONE);
		goto out;
	}
	rc = db_txn(db, submit_txn, &s);
	if (rc != DB_OK && rc != ALREADY_INSERTED) {
		admit_bookkeeping(db, &s);
		answer_refusal(c, &s, rc);
		admit_rate_headers(c, &s);
		if (rc > 0)
			log_debug("submit_refused", "user=%s queue=%s reason=%d",
			    c->caller.name, log_v(spec->queue), rc);
		goto out;
	}
	log_debug("job_submitted", "job=%s user=%s queue=%s status=%s priority=%d",
	    s.id, c->caller.name, log_v(spec->queue), s.status ? s.status : "?", s.priority);
	if (s.status != NULL && strcmp(s.status, "queued") == 0 && c->app->cfg->wake_socket[0])
		wake_send(c->app->cfg->wake_socket, spec->queue);
	answer_created(c, &s);
	admit_rate_headers(c, &s);
out:
	json_object_put(s.errors);
	free(s.answer);
}

void
submit_admit(struct ctx *c, const struct job_spec *spec, const char *regenerated_from)
{
	admit(c, spec, regenerated_from, NULL);
}

/* The RateLimit-* headers for a submit answered without an admission. */
static void
submit_peek_headers(struct ctx *c)
{
	struct submit s;

	memset(&s, 0, sizeof s);
	s.caller = &c->caller;
	admit_rate_headers(c, &s);
}

/* POST /v1/jobs with a checked spec: the Idempotency-Key, when there is
 * one, is claimed (or answered from) before the admission. */
static void
submit_keyed(struct ctx *c, const struct job_spec *spec, const struct buf *body)
{
	char key[IDEM_KEY_MAX + 1];
	struct json_object *errors;
	struct idem im;
	struct db *db;
	int rc;

	switch (idem_parse_key(req_param(c->req, "HTTP_IDEMPOTENCY_KEY"), key)) {
	case 0:
		admit(c, spec, NULL, NULL);
		return;
	case 1:
		break;
	default:
		if ((errors = json_object_new_array()) != NULL)
			problem_error_add(errors, "Idempotency-Key",
			    "must be 1 to 255 printable ASCII characters");
		resp_problem(c->resp, P_INVALID_REQUEST, "The Idempotency-Key header is malformed.",
		    errors);
		submit_peek_headers(c);
		return;
	}
	if (idem_init(&im, c->caller.user_id, key, body->data ? body->data : "", body->len) < 0) {
		c->resp->failed = true;
		return;
	}
	if ((db = app_db(c->app)) == NULL)
		rc = DB_GONE;
	else
		rc = idem_claim(db, &im);
	if (rc == IDEM_CLAIMED) {
		admit(c, spec, NULL, &im);
	} else {
		idem_answer(c, &im, rc);
		submit_peek_headers(c);
	}
	idem_free(&im);
}

void
submit_job(struct ctx *c)
{
	struct job_spec spec;
	struct json_object *errors = NULL;
	struct buf body;
	const char *why = NULL;

	memset(&spec, 0, sizeof spec);
	buf_init(&body, 0);

	if (!http_content_type_is_json(req_param(c->req, "CONTENT_TYPE"))) {
		resp_problem(c->resp, P_UNSUPPORTED_MEDIA_TYPE,
		    "Send the job as Content-Type: application/json.", NULL);
		goto out;
	}
	if (submit_read_body(c, &body) < 0)
		goto out;
	if ((errors = json_object_new_array()) == NULL) {
		c->resp->failed = true;
		goto out;
	}
	switch (spec_parse(&spec, body.data ? body.data : "", body.len, errors, &why)) {
	case SPEC_OK:
		break;
	case SPEC_BAD_JSON:
		resp_problem(c->resp, P_INVALID_JSON, why, NULL);
		goto out;
	case SPEC_INVALID:
		resp_problem(c->resp, P_INVALID_REQUEST, "The request has invalid fields.", errors);
		errors = NULL;
		goto out;
	}
	submit_keyed(c, &spec, &body);
	goto done;
out:
	/* Refused before the admission: RateLimit-* all the same. */
	submit_peek_headers(c);
done:
	json_object_put(errors);
	spec_free(&spec);
	buf_free(&body);
}
