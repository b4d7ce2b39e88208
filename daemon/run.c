#include "autoconf.h"

#include <stdlib.h>

#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"

static const char SQL_SUBMITTED[] =
    "UPDATE job_attempts SET submitted_at = UTC_TIMESTAMP(6) "
    "WHERE job_seq = ? AND attempt = ? AND submitted_at IS NULL";

struct run *
run_new(struct genqd *g, struct backend *b)
{
	struct run *r = calloc(1, sizeof *r);

	if (r == NULL)
		return NULL;
	r->g = g;
	r->backend = b;
	r->state = RUN_ACTIVE;
	r->out.run_ms = -1;
	r->started_mono = gq_mono_us();
	r->next = g->runs;
	if (g->runs != NULL)
		g->runs->prev = r;
	g->runs = r;
	g->nruns++;
	b->inflight++;
	return r;
}

void
run_release(struct genqd *g, struct run *r)
{
	if (r->state == RUN_DEAD)
		return;
	http_cancel(g->http, r->req);
	r->req = NULL;
	outputs_abort(g, r);
	free(r->input);
	r->input = NULL;
	r->state = RUN_DEAD;
	g->nruns--;
	r->backend->inflight--;
	/* A slot opened: fill it without waiting for the poll interval. */
	r->backend->next_claim_at = 0;
}

void
run_reap(struct genqd *g)
{
	struct run *r, *next;

	for (r = g->runs; r != NULL; r = next) {
		next = r->next;
		if (r->state != RUN_DEAD)
			continue;
		if (r->prev != NULL)
			r->prev->next = r->next;
		else
			g->runs = r->next;
		if (r->next != NULL)
			r->next->prev = r->prev;
		free(r->out.outputs);
		free(r);
	}
}

void
run_mark_submitted(struct genqd *g, struct run *r)
{
	struct db_stmt *st;
	int rc;

	/* Only informative: nothing depends on it, so a missed one is fine. */
	if (!gqd_db_ready(g))
		return;
	if ((st = db_prepare(g->db, SQL_SUBMITTED)) == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "mark_submitted");
		return;
	}
	db_bind_i64(st, 0, (int64_t)r->seq);
	db_bind_i64(st, 1, r->attempt);
	if ((rc = db_exec(st)) != DB_OK)
		gqd_db_failed(g, rc, "mark_submitted");
}

struct run *
run_find(struct genqd *g, uint64_t seq)
{
	for (struct run *r = g->runs; r != NULL; r = r->next)
		if (r->seq == seq && r->state != RUN_DEAD)
			return r;
	return NULL;
}

/* Does r wait on a timer (rather than on a request in flight)? */
static bool
waits_on_timer(const struct run *r)
{
	if (r->req != NULL || r->submitting)
		return false;
	return r->state == RUN_ACTIVE || r->state == RUN_FETCHING || r->state == RUN_ENDED;
}

void
run_tick(struct genqd *g, int64_t now)
{
	/* A step may release runs (never free them), so the list stays whole. */
	for (struct run *r = g->runs; r != NULL; r = r->next) {
		if (!waits_on_timer(r) || now < r->next_at)
			continue;
		switch (r->state) {
		case RUN_ACTIVE:
			r->backend->proto->poll(g, r);
			break;
		case RUN_FETCHING:
			outputs_poll(g, r);
			break;
		case RUN_ENDED:
			if (gqd_db_ready(g))
				finish_commit(g, r);
			break;
		default:
			break;
		}
	}
}

int64_t
run_next_deadline(const struct genqd *g)
{
	int64_t next = INT64_MAX;

	for (const struct run *r = g->runs; r != NULL; r = r->next)
		if (waits_on_timer(r) && r->next_at < next)
			next = r->next_at;
	return next;
}
