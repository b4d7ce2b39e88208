/* claim: taking queued jobs for the backends this genqd drives.
 *
 * One transaction serves every backend that has room: for each queue those
 * backends serve, it locks the best claimable jobs (priority, then fair-share
 * turn, then age; SKIP LOCKED so other genqds are not waited for), hands
 * them out to the backends, and moves each to running with a new attempt and
 * a prompt id chosen here. Only after the commit are the prompts submitted.
 * One commit for many jobs is what makes a deep queue drain fast.
 *
 * The transaction runs in a thread of its own (g->claimer, committer.h) on
 * a connection of its own, while the loop goes on serving the backends: the
 * loop plans a claim (claim_plan), posts it, and launches what it started
 * when it comes back (claim_end). The thread sees copies only (backend ids,
 * names, queue names), never the loop's backends, and the loop leaves the
 * claim alone while it is posted.
 *
 * There are GQD_CLAIMERS such threads. A claim takes every backend with
 * room; backends that were full then and free up while it is in the
 * database claim on another thread instead of waiting for it. A backend is
 * in one claim at a time (b->claiming), and SKIP LOCKED keeps two claims
 * off each other's jobs: the second takes the heads after the first's. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "committer.h"
#include "config.h"
#include "db.h"
#include "fairshare.h"
#include "genqd.h"
#include "gqtime.h"
#include "jobevent.h"
#include "log.h"
#include "sqlrows.h"

/* The best claimable jobs of one queue, locked, with what starting them
 * needs. Jobs past their ttl are left to sweep.c. The order is the index
 * jobs_turn (queue, status, priority, turn, seq): a claim reads only the
 * rows it takes, however deep the queue. The ttl test is written out, not
 * as expires_at: on that column the optimizer would take jobs_expiry and
 * read every unexpired queued job to sort them. The last column is the
 * queue's current turn at the head's priority, a plain read (the lock is
 * the outer query's alone): when it is already at the last turn this claim
 * serves, raising it would change nothing, and the claim skips that
 * statement. */
static const char SQL_HEADS[] =
    "SELECT seq, priority, turn, id, attempts, timeout_s, input, retry_avoid_backend, "
    "TIMESTAMPDIFF(MICROSECOND, not_before, UTC_TIMESTAMP(6)), webhook_url IS NULL, "
    "(SELECT c.turn FROM queue_turns c WHERE c.queue = jobs.queue AND c.priority = jobs.priority) "
    "FROM jobs "
    "WHERE queue = ? AND status = 'queued' AND not_before <= UTC_TIMESTAMP(6) "
    "AND GREATEST(created_at, not_before) + INTERVAL ttl_s SECOND > UTC_TIMESTAMP(6) "
    "ORDER BY priority, turn, seq LIMIT ? FOR UPDATE SKIP LOCKED";
/* A backend may take jobs only while it is not draining and its lease is
 * ours. The shared lock makes a drain (genqctl or the admin API) wait for
 * this claim's commit, so it stops new jobs at once, not at the next table
 * reload, and a genqd whose backend lease ran out starts nothing there.
 * One statement asks for every backend of the claim. */
static struct sql_rows sql_backends_open = SQL_ROWS_INIT(
    "SELECT id FROM backends WHERE draining = 0 AND lease_owner = ? "
    "AND lease_until > UTC_TIMESTAMP(6) AND id IN (",
    "?", ") LOCK IN SHARE MODE");
/* Every job a claim starts, many to a statement: the attempt rows first,
 * then the jobs take their backend and prompt id from them. */
static struct sql_rows sql_attempts = SQL_ROWS_INIT(
    "INSERT INTO job_attempts (job_seq, attempt, backend_id, prompt_id, started_at) VALUES ",
    "(?, ?, ?, ?, UTC_TIMESTAMP(6))", "");
static struct sql_rows sql_start = SQL_ROWS_INIT(
    "UPDATE jobs j JOIN job_attempts a ON a.job_seq = j.seq AND a.attempt = j.attempts + 1 "
    "SET j.status = 'running', j.attempts = a.attempt, j.backend_id = a.backend_id, "
    "j.prompt_id = a.prompt_id, j.claimed_by = ?, "
    "j.lease_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND, "
    "j.started_at = COALESCE(j.started_at, UTC_TIMESTAMP(6)), j.progress = 0, "
    "j.retry_avoid_backend = NULL, j.error_code = NULL, j.error_message = NULL, "
    "j.error_retryable = NULL WHERE j.status = 'queued' AND j.seq IN (",
    "?", ")");

#define US_PER_MS 1000LL
/* Jobs one claim transaction may take from one queue: bounds the time its
 * locks are held and the memory of the inputs read. */
#define CLAIM_QUEUE_MAX 256
#define PRIORITIES 4
/* Queue names are at most 32 bytes (genqctl checks; a run's queue has the
 * same room): a longer one is not served. */
#define QUEUE_NAME_MAX 33
/* How long a retry is kept from the backend its failed attempt ran on,
 * counted from when its backoff ended (SPEC §4: a retry prefers another
 * backend). Long enough for every other backend serving the queue to claim
 * a few times (poll_interval_ms defaults to 500), short enough that a job
 * whose only live backend is the one that failed barely waits for it. */
#define RETRY_AVOID_GRACE_US 5000000LL

/* A locked queued job. */
struct head {
	uint64_t seq;
	int priority;
	int64_t turn;
	char id[GQ_UUID_LEN];
	int attempt;                 /* the one this claim starts */
	int timeout_s;
	char *input;                 /* owned until handed to its run */
	size_t input_len;
	struct taker *tk;            /* assigned to; NULL: left queued */
	char prompt_id[GQ_UUID_LEN];
	bool started;                /* moved to running in this transaction */
	uint64_t avoid;              /* backend of the failed attempt; 0: none */
	int64_t ready_us;            /* since its backoff ended */
	bool no_webhook;
	int64_t clock;               /* the queue's turn at its priority; -1: none */
};

/* One queue that backends with room serve, and its locked heads in claim
 * order. */
struct qheads {
	char name[QUEUE_NAME_MAX];
	int want;
	struct head *v;
	size_t n;
	size_t taken;                /* every head before this one is assigned */
};

/* A backend with room, and how many jobs it may take. */
struct taker {
	struct backend *b;           /* the loop's: never read by the thread */
	uint64_t id;                 /* copies of what the transaction needs */
	char name[65];
	struct qheads **queues;      /* the claim's queues it serves, owned */
	size_t nqueues;
	int want, got;
	bool held_back;              /* passed over a retry kept from it */
	bool open;                   /* may take jobs in this transaction */
};

struct claim {
	const char *owner, *actor;   /* g->id, g->actor: fixed at start */
	int lease_s;
	struct taker *takers;
	size_t ntakers;
	struct qheads *queues;
	size_t nqueues;
	int rc;                      /* the transaction's result */
};


static void
claim_reset(struct claim *c)
{
	for (size_t q = 0; q < c->nqueues; q++) {
		struct qheads *qh = &c->queues[q];
		for (size_t i = 0; i < qh->n; i++)
			free(qh->v[i].input);
		qh->n = 0;
		qh->taken = 0;
	}
	for (size_t t = 0; t < c->ntakers; t++) {
		c->takers[t].got = 0;
		c->takers[t].held_back = false;
	}
}

static void
claim_free(struct claim *c)
{
	if (c == NULL)
		return;
	claim_reset(c);
	for (size_t q = 0; q < c->nqueues; q++)
		free(c->queues[q].v);
	for (size_t t = 0; t < c->ntakers; t++)
		free(c->takers[t].queues);
	free(c->queues);
	free(c->takers);
	free(c);
}

/* Lock up to qh->want heads of one queue. */
static int
lock_heads(struct db *db, struct qheads *qh)
{
	struct db_stmt *st = db_prepare(db, SQL_HEADS);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, qh->name);
	db_bind_i64(st, 1, qh->want);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while (qh->n < (size_t)qh->want && (rc = db_next(st)) == 1) {
		struct head *h = &qh->v[qh->n];
		const char *id, *input;
		size_t input_len;

		memset(h, 0, sizeof *h);
		h->seq = (uint64_t)db_i64(st, 0);
		h->priority = (int)db_i64(st, 1);
		h->turn = db_i64(st, 2);
		id = db_text(st, 3, NULL);
		snprintf(h->id, sizeof h->id, "%s", id ? id : "");
		h->attempt = (int)db_i64(st, 4) + 1;
		h->timeout_s = (int)db_i64(st, 5);
		input = db_text(st, 6, &input_len);
		if (input == NULL)
			input = "{}", input_len = 2;
		if ((h->input = malloc(input_len + 1)) == NULL)
			return DB_NOMEM;
		memcpy(h->input, input, input_len);
		h->input[input_len] = '\0';
		h->input_len = input_len;
		h->avoid = (uint64_t)db_i64(st, 7);
		h->ready_us = db_i64(st, 8);
		h->no_webhook = db_i64(st, 9) != 0;
		h->clock = db_is_null(st, 10) ? -1 : db_i64(st, 10);
		qh->n++;
	}
	return rc < 0 ? rc : DB_OK;
}

/* Is x claimed before y? Within a queue the lists are already in claim
 * order; across queues a backend takes the higher priority, then the older. */
static bool
before(const struct head *x, const struct head *y)
{
	if (x->priority != y->priority)
		return x->priority < y->priority;
	return x->seq < y->seq;
}

/* May b start h now? Not a retry of an attempt that failed on b while it
 * is young: another backend gets the first chance. After the grace period
 * b may, so a job never waits for backends that are busy, down or absent. */
static bool
may_take(const struct head *h, const struct taker *tk)
{
	return h->avoid == 0 || h->avoid != tk->id || h->ready_us >= RETRY_AVOID_GRACE_US;
}

/* The first unassigned head of qh that tk may take, or NULL. */
static struct head *
next_for(struct qheads *qh, struct taker *tk)
{
	while (qh->taken < qh->n && qh->v[qh->taken].tk != NULL)
		qh->taken++;
	for (size_t i = qh->taken; i < qh->n; i++) {
		struct head *h = &qh->v[i];

		if (h->tk != NULL)
			continue;
		if (may_take(h, tk))
			return h;
		tk->held_back = true;
	}
	return NULL;
}

/* Hand the locked heads to the takers: each takes the best head of the
 * queues it serves until it is full or they are empty. A head kept from a
 * taker (may_take) stays for the others, or queued for a later claim. */
static void
assign(struct claim *c)
{
	bool more = true;

	/* One job per taker per round, so backends sharing a queue share a
	 * short list evenly instead of the first one taking it all. */
	while (more) {
		more = false;
		for (size_t t = 0; t < c->ntakers; t++) {
			struct taker *tk = &c->takers[t];
			struct head *best = NULL;

			if (tk->got >= tk->want)
				continue;
			for (size_t i = 0; i < tk->nqueues; i++) {
				struct head *h = next_for(tk->queues[i], tk);

				if (h == NULL)
					continue;
				if (best == NULL || before(h, best))
					best = h;
			}
			if (best == NULL)
				continue;
			best->tk = tk;
			tk->got++;
			more = true;
		}
	}
}

/* Which of the takers v[0..n) may take jobs in this transaction
 * (sql_backends_open): each one's open flag. */
static int
backends_open(struct db *db, const struct claim *c, struct taker **v, size_t n)
{
	struct db_stmt *st;
	int rc;

	if ((st = sql_rows_prepare(db, &sql_backends_open, n, &rc)) == NULL)
		return rc;
	db_bind_str(st, 0, c->owner);
	for (size_t i = 0; i < n; i++) {
		v[i]->open = false;
		db_bind_i64(st, (unsigned)(1 + i), (int64_t)v[i]->id);
	}
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		uint64_t id = (uint64_t)db_i64(st, 0);

		for (size_t i = 0; i < n; i++)
			if (v[i]->id == id)
				v[i]->open = true;
	}
	return rc < 0 ? rc : DB_OK;
}

/* Move up to SQL_ROWS_MAX heads, each assigned to an open backend, to
 * running with a new attempt: three statements for all of them. */
static int
start_jobs(struct db *db, const struct claim *c, struct head **v, size_t n)
{
	struct job_event ev[SQL_ROWS_MAX];
	char prompt_ids[SQL_ROWS_MAX][GQ_UUID_LEN];
	struct db_stmt *st;
	int rc;

	if ((st = sql_rows_prepare(db, &sql_attempts, n, &rc)) == NULL)
		return rc;
	if (gq_uuid4_many(prompt_ids, n) < 0)
		return DB_ERR;
	for (size_t i = 0; i < n; i++) {
		unsigned k = (unsigned)(4 * i);

		memcpy(v[i]->prompt_id, prompt_ids[i], GQ_UUID_LEN);
		db_bind_i64(st, k, (int64_t)v[i]->seq);
		db_bind_i64(st, k + 1, v[i]->attempt);
		db_bind_i64(st, k + 2, (int64_t)v[i]->tk->id);
		db_bind_str(st, k + 3, v[i]->prompt_id);
	}
	if ((rc = db_exec(st)) != DB_OK)
		return rc;

	if ((st = sql_rows_prepare(db, &sql_start, n, &rc)) == NULL)
		return rc;
	db_bind_str(st, 0, c->owner);
	db_bind_i64(st, 1, c->lease_s);
	for (size_t i = 0; i < n; i++)
		db_bind_i64(st, (unsigned)(2 + i), (int64_t)v[i]->seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	/* The rows are locked by this transaction and were queued: every one
	 * moves, or something is badly wrong and nothing may. */
	if (db_affected_rows(st) != n) {
		log_error("claim_mismatch", "expected=%zu updated=%llu", n,
		    (unsigned long long)db_affected_rows(st));
		return DB_ERR;
	}

	for (size_t i = 0; i < n; i++) {
		ev[i] = (struct job_event){ v[i]->seq, "queued", "running", v[i]->tk->name,
		    v[i]->attempt, v[i]->tk->id, v[i]->no_webhook };
		v[i]->started = true;
	}
	return job_events_add(db, ev, n, c->actor);
}

/* Find out which takers are open, SQL_ROWS_MAX to a statement. */
static int
check_open(struct db *db, struct claim *c)
{
	struct taker *v[SQL_ROWS_MAX];
	size_t n = 0;
	int rc;

	for (size_t t = 0; t < c->ntakers; t++) {
		c->takers[t].open = false;
		if (c->takers[t].got == 0)
			continue;
		v[n++] = &c->takers[t];
		if (n == SQL_ROWS_MAX) {
			if ((rc = backends_open(db, c, v, n)) != DB_OK)
				return rc;
			n = 0;
		}
	}
	return n > 0 ? backends_open(db, c, v, n) : DB_OK;
}

/* Start every assigned head whose backend is open, SQL_ROWS_MAX at a time.
 * The heads of a backend that is not (draining, or no longer ours) stay
 * queued. */
static int
start_assigned(struct db *db, struct claim *c)
{
	struct head *batch[SQL_ROWS_MAX];
	size_t n = 0;
	int rc;

	if ((rc = check_open(db, c)) != DB_OK)
		return rc;
	for (size_t q = 0; q < c->nqueues; q++) {
		struct qheads *qh = &c->queues[q];

		for (size_t i = 0; i < qh->n; i++) {
			if (qh->v[i].tk == NULL)
				continue;
			if (!qh->v[i].tk->open) {
				qh->v[i].tk = NULL;
				continue;
			}
			batch[n++] = &qh->v[i];
			if (n == SQL_ROWS_MAX) {
				if ((rc = start_jobs(db, c, batch, n)) != DB_OK)
					return rc;
				n = 0;
			}
		}
	}
	return n > 0 ? start_jobs(db, c, batch, n) : DB_OK;
}

static int
claim_txn(struct db *db, void *arg)
{
	struct claim *c = arg;
	int rc;

	claim_reset(c);
	for (size_t q = 0; q < c->nqueues; q++)
		if ((rc = lock_heads(db, &c->queues[q])) != DB_OK)
			return rc;
	assign(c);
	if ((rc = start_assigned(db, c)) != DB_OK)
		return rc;
	for (size_t q = 0; q < c->nqueues; q++) {
		struct qheads *qh = &c->queues[q];
		int64_t top[PRIORITIES], clock[PRIORITIES];
		bool any[PRIORITIES] = { false };

		for (size_t i = 0; i < qh->n; i++) {
			struct head *h = &qh->v[i];
			int p = h->priority;

			if (p < 0 || p >= PRIORITIES || !h->started)
				continue;
			if (!any[p] || h->turn > top[p])
				top[p] = h->turn;
			if (!any[p] || h->clock > clock[p])
				clock[p] = h->clock;
			any[p] = true;
		}
		/* The queue's current turn moves up to the last one served:
		 * users who join now start there (lib/fairshare.h). It only
		 * ever rises, so a clock read at or past that turn is final. */
		for (int p = 0; p < PRIORITIES; p++)
			if (any[p] && clock[p] < top[p] &&
			    (rc = fairshare_claimed(db, qh->name, p, top[p])) != DB_OK)
				return rc;
	}
	return DB_OK;
}

/* Hand the started jobs to runs, into fresh (room for every started
 * head): the caller submits them. A backend whose lease was lost while the
 * claim was away starts nothing: its jobs are handed back (running,
 * unowned) for recovery to decide, as after a crash. */
static void
launch(struct genqd *g, struct claim *c, struct run **fresh, size_t *nfresh)
{
	for (size_t t = 0; t < c->ntakers; t++) {
		struct backend *b = c->takers[t].b;

		if (c->takers[t].got > 0 && !b->leased && !g->stopping)
			finish_hand_back(g, b->id);
	}
	for (size_t q = 0; q < c->nqueues; q++) {
		struct qheads *qh = &c->queues[q];

		for (size_t i = 0; i < qh->n; i++) {
			struct head *h = &qh->v[i];
			struct backend *b = h->tk != NULL ? h->tk->b : NULL;
			struct run *r;

			if (!h->started || !b->leased || g->stopping)
				continue;
			if ((r = run_new(g, b)) == NULL) {
				/* Recovery finds it running without a genqd and retries it. */
				log_error("out_of_memory", "step=launch job=%s", h->id);
				continue;
			}
			r->seq = h->seq;
			memcpy(r->job_id, h->id, sizeof r->job_id);
			memcpy(r->prompt_id, h->prompt_id, sizeof r->prompt_id);
			snprintf(r->queue, sizeof r->queue, "%s", qh->name);
			r->attempt = h->attempt;
			r->timeout_s = h->timeout_s;
			r->no_webhook = h->no_webhook;
			r->input = h->input;
			r->input_len = h->input_len;
			h->input = NULL;
			run_log(info, "job_started", r, "%s", "");
			fresh[(*nfresh)++] = r;
		}
	}
}

static int
by_name(const void *a, const void *b)
{
	const struct qheads *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Is b's claim due? A backend that still has prompts waiting in its own
 * queue (prefetch) is topped up once half its prefetch has drained, not
 * after every single completion: one commit then starts several jobs, and
 * the GPU still never waits. One down to its running jobs asks at once. */
static bool
claim_is_due(const struct genqd *g, const struct backend *b, int64_t now)
{
	int free, batch;

	if (b->claiming || !backend_has_room(g, b) || now < b->next_claim_at)
		return false;
	free = b->max_running + b->prefetch - backend_busy(b);
	batch = (b->prefetch + 1) / 2;
	return backend_busy(b) <= b->max_running || free >= batch;
}

/* Does b take part in a claim that is due for some backend? Every backend
 * with room and no reason to wait does: one commit tops them all up, and
 * their next claims fall due together instead of one after another. */
static bool
claim_joins(const struct genqd *g, const struct backend *b, int64_t now, bool any_due)
{
	if (claim_is_due(g, b, now))
		return true;
	return any_due && !b->claiming && backend_has_room(g, b) && now >= b->next_claim_at;
}

/* The claim's entry for queue name, added when new; NULL when the claim
 * has no room for it (nq entries allocated) or the name does not fit. */
static struct qheads *
queue_add(struct claim *c, const char *name, size_t nq)
{
	struct qheads *qh = NULL;

	for (size_t q = 0; q < c->nqueues && qh == NULL; q++)
		if (strcmp(c->queues[q].name, name) == 0)
			qh = &c->queues[q];
	if (qh != NULL || c->nqueues == nq || strlen(name) >= QUEUE_NAME_MAX)
		return qh;
	qh = &c->queues[c->nqueues++];
	memcpy(qh->name, name, strlen(name) + 1);
	return qh;
}

/* Point tk at the claim's entries for the queues its backend serves
 * (tk->queues has room for all of them). */
static void
taker_link(struct claim *c, struct taker *tk)
{
	tk->nqueues = 0;
	for (size_t i = 0; i < tk->b->nqueues; i++) {
		struct qheads *qh = queue_add(c, tk->b->queues[i], c->nqueues);

		if (qh != NULL)
			tk->queues[tk->nqueues++] = qh;
	}
}

/* Is a claim due for any backend? */
static bool
any_claim_due(const struct genqd *g, int64_t now)
{
	for (const struct backend *b = g->backends; b != NULL; b = b->next)
		if (claim_is_due(g, b, now))
			return true;
	return false;
}

/* The backends taking part in this claim, and the queues they serve: a
 * claim ready to post (c->ntakers > 0), or an empty one. -1 when out of
 * memory. */
static int
claim_plan(struct genqd *g, struct claim *c, int64_t now)
{
	size_t nb = 0, nq = 0;
	bool any_due = any_claim_due(g, now);

	if (!any_due)
		return 0;
	for (struct backend *b = g->backends; b != NULL; b = b->next)
		if (claim_joins(g, b, now, any_due)) {
			nb++;
			nq += b->nqueues;
		}
	c->takers = calloc(nb, sizeof *c->takers);
	c->queues = calloc(nq, sizeof *c->queues);
	if (c->takers == NULL || c->queues == NULL)
		return -1;
	for (struct backend *b = g->backends; b != NULL; b = b->next) {
		struct taker *tk;

		if (!claim_joins(g, b, now, any_due))
			continue;
		tk = &c->takers[c->ntakers++];
		tk->b = b;
		tk->id = b->id;
		memcpy(tk->name, b->name, sizeof tk->name);
		tk->want = b->max_running + b->prefetch - backend_busy(b);
		if (b->nqueues > 0 && (tk->queues = calloc(b->nqueues, sizeof *tk->queues)) == NULL)
			return -1;
		for (size_t i = 0; i < b->nqueues; i++) {
			struct qheads *qh = queue_add(c, b->queues[i], nq);

			if (qh == NULL)
				continue;
			qh->want += tk->want;
			if (qh->want > CLAIM_QUEUE_MAX)
				qh->want = CLAIM_QUEUE_MAX;
		}
	}
	/* Name order: two genqds raising the same queues' turns lock those
	 * rows in the same order and never deadlock on them. */
	qsort(c->queues, c->nqueues, sizeof *c->queues, by_name);
	for (size_t q = 0; q < c->nqueues; q++)
		if ((c->queues[q].v = calloc((size_t)c->queues[q].want, sizeof(struct head))) == NULL)
			return -1;
	for (size_t t = 0; t < c->ntakers; t++)
		taker_link(c, &c->takers[t]);
	return (int)c->ntakers;
}

static bool
taker_saw_empty(const struct taker *tk)
{
	if (tk->got >= tk->want)
		return false;
	/* Retries kept from it may have filled the list: asking again at once
	 * would only find them again until their grace period ends. */
	if (tk->held_back)
		return true;
	for (size_t i = 0; i < tk->nqueues; i++)
		if (tk->queues[i]->n >= (size_t)tk->queues[i]->want)
			return false;
	return true;
}

/* committer_fn: the claim's transaction, in the claimer's thread. */
static int
claim_run(struct db *db, void *arg)
{
	struct claim *c = arg;

	c->rc = db != NULL ? db_txn(db, claim_txn, c) : DB_GONE;
	if (c->rc != DB_OK && db != NULL)
		committer_log_failure(db, c->rc, "claim");
	return c->rc;
}

/* The claim came back: the next claims' times, then runs for the jobs it
 * started, in *fresh (allocated; NULL when none) for the caller to
 * submit. */
static void
claim_end(struct genqd *g, struct claim *c, int64_t now, struct run ***fresh, size_t *nfresh)
{
	int64_t later = now + g->cfg->poll_interval_ms * US_PER_MS;
	size_t started = 0;

	for (size_t t = 0; t < c->ntakers; t++)
		c->takers[t].b->claiming = false;
	if (c->rc != DB_OK) {
		for (size_t t = 0; t < c->ntakers; t++)
			c->takers[t].b->next_claim_at = later;
		return;
	}
	/* A backend whose queues all ran dry waits for a wake-up or the poll
	 * interval; one that filled up, or whose queue had more, asks again. */
	for (size_t t = 0; t < c->ntakers; t++)
		c->takers[t].b->next_claim_at = taker_saw_empty(&c->takers[t]) ? later : 0;
	for (size_t q = 0; q < c->nqueues; q++)
		for (size_t i = 0; i < c->queues[q].n; i++)
			started += c->queues[q].v[i].started;
	if (started == 0)
		return;
	if ((*fresh = calloc(started, sizeof **fresh)) == NULL) {
		/* Recovery finds them running without a genqd and retries them. */
		log_error("out_of_memory", "step=launch jobs=%zu", started);
		return;
	}
	launch(g, c, *fresh, nfresh);
}

/* Plan the next claim and post it on claimer i (free), when one is due. */
static void
claim_post(struct genqd *g, int i, int64_t now)
{
	struct claim *c;
	int n;

	/* Most turns of the loop have nothing to claim: ask before allocating. */
	if (!gqd_db_ready(g) || g->stopping || g->claim_hold || !any_claim_due(g, now))
		return;
	if ((c = calloc(1, sizeof *c)) == NULL || (n = claim_plan(g, c, now)) < 0) {
		log_error("out_of_memory", "step=claim");
		for (struct backend *b = g->backends; b != NULL; b = b->next)
			if (claim_is_due(g, b, now))
				b->next_claim_at = now + g->cfg->poll_interval_ms * US_PER_MS;
		claim_free(c);
		return;
	}
	if (n == 0) {
		claim_free(c);
		return;
	}
	c->owner = g->id;
	c->actor = g->actor;
	c->lease_s = g->cfg->lease_s;
	/* Its backends stay (backend_reload) and claim nothing else until it
	 * is back: see claim_end. */
	for (size_t t = 0; t < c->ntakers; t++)
		c->takers[t].b->claiming = true;
	g->claim[i] = c;
	committer_post(g->claimer[i], claim_run, c);
}

void
claim_due(struct genqd *g, int64_t now)
{
	struct run **fresh[GQD_CLAIMERS] = { NULL };
	size_t nfresh[GQD_CLAIMERS] = { 0 };

	/* Claims that are back first, even while stopping (they launch
	 * nothing then) or with the loop's connection away. */
	for (int i = 0; i < GQD_CLAIMERS; i++) {
		if (g->claim[i] == NULL || !committer_done(g->claimer[i]))
			continue;
		claim_end(g, g->claim[i], now, &fresh[i], &nfresh[i]);
		claim_free(g->claim[i]);
		g->claim[i] = NULL;
	}
	/* The next claims go out before these prompts (their runs already
	 * count on their backends): the claimers work on them while the loop
	 * sends the prompts. */
	for (int i = 0; i < GQD_CLAIMERS; i++)
		if (g->claim[i] == NULL)
			claim_post(g, i, now);
	for (int i = 0; i < GQD_CLAIMERS; i++) {
		for (size_t k = 0; k < nfresh[i]; k++)
			fresh[i][k]->backend->proto->submit(g, fresh[i][k]);
		free(fresh[i]);
	}
}

bool
claim_pending(const struct genqd *g)
{
	for (int i = 0; i < GQD_CLAIMERS; i++)
		if (g->claim[i] != NULL)
			return true;
	return false;
}

void
claim_drain(struct genqd *g)
{
	for (int i = 0; i < GQD_CLAIMERS; i++) {
		struct run **fresh = NULL;
		size_t nfresh = 0;

		if (g->claim[i] == NULL)
			continue;
		committer_wait(g->claimer[i]);
		committer_done(g->claimer[i]);
		/* Stopping: no runs are made, the jobs stay for finish_hand_back. */
		claim_end(g, g->claim[i], gq_mono_us(), &fresh, &nfresh);
		free(fresh);
		claim_free(g->claim[i]);
		g->claim[i] = NULL;
	}
}

void
claim_soon(struct genqd *g)
{
	for (struct backend *b = g->backends; b != NULL; b = b->next)
		b->next_claim_at = 0;
}

void
claim_soon_for(struct genqd *g, const char *queue)
{
	for (struct backend *b = g->backends; b != NULL; b = b->next)
		for (size_t i = 0; i < b->nqueues; i++)
			if (strcmp(b->queues[i], queue) == 0) {
				b->next_claim_at = 0;
				break;
			}
}

int64_t
claim_next_deadline(const struct genqd *g)
{
	int64_t next = INT64_MAX;
	bool any_free = false;

	/* A claim in flight wakes the loop when it is back (its fd); with
	 * every claimer busy, no other claim can start before that. */
	for (int i = 0; i < GQD_CLAIMERS; i++)
		any_free |= g->claim[i] == NULL;
	if (!any_free)
		return INT64_MAX;
	for (const struct backend *b = g->backends; b != NULL; b = b->next)
		if (claim_is_due(g, b, INT64_MAX) && b->next_claim_at < next)
			next = b->next_claim_at;
	return next;
}
