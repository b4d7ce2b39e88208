#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "genqd.h"
#include "jobevent.h"
#include "ledger.h"

static const char SQL_CANCELS[] =
    "SELECT seq FROM jobs WHERE claimed_by = ? AND status = 'running' AND cancel_requested = 1";
static const char SQL_RENEW[] =
    "UPDATE jobs SET lease_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND "
    "WHERE claimed_by = ? AND status = 'running'";
/* Queued for ttl_s since the later of creation and the last retry's
 * not-before: expires_at (sql/011_expiry.sql), so the index jobs_expiry
 * hands over the expired ones and nothing else, however deep the queue. */
static const char SQL_EXPIRED[] =
    "SELECT seq, user_id, cost_held, ttl_s, id, queue FROM jobs WHERE status = 'queued' "
    "AND expires_at <= UTC_TIMESTAMP(6) LIMIT 100 FOR UPDATE SKIP LOCKED";
static const char SQL_EXPIRE[] =
    "UPDATE jobs SET status = 'expired', finished_at = UTC_TIMESTAMP(6), cost_charged = 0, "
    "cost_refunded = cost_held, error_code = 'expired', error_message = ?, error_retryable = 0 "
    "WHERE seq = ? AND status = 'queued'";

#define US_PER_S 1000000LL
#define TTL_EVERY_US (5 * US_PER_S)
#define EXPIRE_BATCH 100

void
sweep_stop(struct genqd *g, struct run *r)
{
	r->backend->proto->stop(g, r);
}

/* Runs whose job got a cancel request: interrupt exactly their prompt. */
static void
cancels(struct genqd *g)
{
	struct db_stmt *st = db_prepare(g->db, SQL_CANCELS);
	uint64_t *seqs = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (st == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "cancels");
		return;
	}
	db_bind_str(st, 0, g->id);
	if ((rc = db_exec(st)) != DB_OK) {
		gqd_db_failed(g, rc, "cancels");
		return;
	}
	/* Collect first: stopping a run may use the database. */
	while ((rc = db_next(st)) == 1) {
		if (n == cap) {
			uint64_t *grown = realloc(seqs, (cap = cap ? cap * 2 : 16) * sizeof *seqs);
			if (grown == NULL)
				break;
			seqs = grown;
		}
		seqs[n++] = (uint64_t)db_i64(st, 0);
	}
	for (size_t i = 0; i < n; i++) {
		struct run *r = run_find(g, seqs[i]);

		/* A run already storing its outputs has succeeded: let it. */
		if (r == NULL || r->state != RUN_ACTIVE || r->cancel_seen)
			continue;
		r->cancel_seen = true;
		r->out.kind = OUTCOME_CANCELED;
		snprintf(r->out.message, sizeof r->out.message, "canceled on request");
		run_log(info, "job_cancel", r, "%s", "");
		sweep_stop(g, r);
	}
	free(seqs);
}

static void
timeouts(struct genqd *g, int64_t now)
{
	for (struct run *r = g->runs; r != NULL; r = r->next) {
		if (r->state != RUN_ACTIVE || r->stop_wanted ||
		    now - r->started_mono <= (int64_t)r->timeout_s * US_PER_S)
			continue;
		r->out.kind = OUTCOME_FAILED;
		r->out.retryable = true;
		snprintf(r->out.code, sizeof r->out.code, "timeout");
		snprintf(r->out.message, sizeof r->out.message,
		    "the attempt ran longer than timeout_s (%d s)", r->timeout_s);
		run_log(warn, "job_timeout", r, " timeout_s=%d", r->timeout_s);
		sweep_stop(g, r);
	}
}

static void
renew_leases(struct genqd *g, int64_t now)
{
	struct db_stmt *st;
	int rc;

	if (now < g->job_lease_at)
		return;
	if ((st = db_prepare(g->db, SQL_RENEW)) == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "job_leases");
		return;
	}
	db_bind_i64(st, 0, g->cfg->lease_s);
	db_bind_str(st, 1, g->id);
	if ((rc = db_exec(st)) != DB_OK) {
		gqd_db_failed(g, rc, "job_leases");
		return;
	}
	g->job_lease_at = now + (int64_t)g->cfg->lease_s * US_PER_S / 3;
	g->job_lease_ok = now;
}

struct expired_row {
	uint64_t seq, user;
	int64_t held;
	int ttl;
	bool done;
	char id[GQ_UUID_LEN];
	char queue[33];
};

struct expiry {
	struct genqd *g;
	struct expired_row rows[EXPIRE_BATCH];
	size_t n, expired;
};

static int
expire_txn(struct db *db, void *arg)
{
	struct expiry *e = arg;
	struct db_stmt *st = db_prepare(db, SQL_EXPIRED);
	struct expired_row *rows = e->rows;
	size_t n = 0;
	int rc;

	e->expired = 0;
	e->n = 0;
	if (st == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while (n < EXPIRE_BATCH && (rc = db_next(st)) == 1) {
		const char *id = db_text(st, 4, NULL), *queue = db_text(st, 5, NULL);

		rows[n].seq = (uint64_t)db_i64(st, 0);
		rows[n].user = (uint64_t)db_i64(st, 1);
		rows[n].held = db_i64(st, 2);
		rows[n].ttl = (int)db_i64(st, 3);
		rows[n].done = false;
		snprintf(rows[n].id, sizeof rows[n].id, "%s", id ? id : "");
		snprintf(rows[n].queue, sizeof rows[n].queue, "%s", queue ? queue : "");
		n++;
	}
	if (rc < 0)
		return rc;
	e->n = n;
	for (size_t i = 0; i < n; i++) {
		char msg[96];

		snprintf(msg, sizeof msg, "queued longer than its ttl_s (%d s)", rows[i].ttl);
		if ((st = db_prepare(db, SQL_EXPIRE)) == NULL)
			return db_last_status(db);
		db_bind_str(st, 0, msg);
		db_bind_i64(st, 1, (int64_t)rows[i].seq);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
		if (db_affected_rows(st) != 1)
			continue;
		if (rows[i].held > 0 &&
		    (rc = ledger_apply(db, rows[i].user, rows[i].seq, "release", rows[i].held,
		    e->g->actor, "job expired: hold released")) != DB_OK)
			return rc < 0 ? rc : DB_ERR;
		if ((rc = job_event_add(db, rows[i].seq, "queued", "expired", e->g->actor, msg,
		    0, 0)) != DB_OK)
			return rc;
		rows[i].done = true;
		e->expired++;
	}
	return DB_OK;
}

static void
expire(struct genqd *g, int64_t now)
{
	struct expiry *e;
	int rc;

	if (now < g->ttl_at)
		return;
	g->ttl_at = now + TTL_EVERY_US;
	if ((e = calloc(1, sizeof *e)) == NULL)
		return;
	e->g = g;
	rc = db_txn(g->db, expire_txn, e);
	if (rc != DB_OK) {
		gqd_db_failed(g, rc, "expire");
		goto out;
	}
	for (size_t i = 0; i < e->n; i++)
		if (e->rows[i].done)
			log_info("job_expired", "job=%s queue=%s backend=- attempt=0 ttl_s=%d",
			    e->rows[i].id, e->rows[i].queue, e->rows[i].ttl);
	/* A full batch: there may be more right behind it. */
	if (e->n == EXPIRE_BATCH)
		g->ttl_at = now;
out:
	free(e);
}

void
sweep_tick(struct genqd *g, int64_t now)
{
	if (gqd_db_ready(g))
		renew_leases(g, now);
	if (gqd_db_ready(g))
		cancels(g);
	timeouts(g, now);
	if (gqd_db_ready(g) && !g->stopping)
		expire(g, now);
	if (gqd_db_ready(g))
		retention_tick(g, now);
}
