#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"
#include "jobevent.h"

static const char SQL_PROGRESS[] =
    "UPDATE jobs SET progress = ? WHERE seq = ? AND status = 'running' AND prompt_id = ?";

#define PROGRESS_EVERY_US 1000000LL
/* An attempt's first progress is written only this long after it was
 * reported: a job that ends sooner (fast backends) writes its end alone,
 * one statement less per job, and a long one shows progress all the same. */
#define PROGRESS_FIRST_US 300000LL

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
	run_vacate(g, r);
	r->state = RUN_DEAD;
	g->nruns--;
	r->backend->inflight--;
	r->backend->vacated--;
}

void
run_vacate(struct genqd *g, struct run *r)
{
	(void)g;
	if (r->vacated)
		return;
	r->vacated = true;
	r->backend->vacated++;
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
		for (size_t i = 0; r->out.outputs != NULL && i < r->out.noutputs; i++)
			free(r->out.outputs[i].text);
		free(r->out.outputs);
		free(r);
	}
}

void
run_mark_submitted(struct genqd *g, struct run *r)
{
	(void)g;
	/* Only informative, so it waits for finish_flush's transaction
	 * rather than costing a commit of its own per job. */
	r->submit_noted = true;
}

struct run *
run_find(struct genqd *g, uint64_t seq)
{
	for (struct run *r = g->runs; r != NULL; r = r->next)
		if (r->seq == seq && r->state != RUN_DEAD)
			return r;
	return NULL;
}

/* Does r wait on a timer (rather than on a request in flight)? Ended
 * runs wait for finish_flush (finish_next_deadline). */
static bool
waits_on_timer(const struct run *r)
{
	if (r->req != NULL || r->submitting)
		return false;
	return r->state == RUN_ACTIVE || r->state == RUN_FETCHING;
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

int
run_progress_write(struct db *db, const struct progress_note *p)
{
	struct db_stmt *st = db_prepare(db, SQL_PROGRESS);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_double(st, 0, p->value);
	db_bind_i64(st, 1, (int64_t)p->seq);
	db_bind_str(st, 2, p->prompt_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1 || p->no_webhook)
		return DB_OK;                 /* ended meanwhile, no change, or no webhook */
	return job_progress_notify(db, p->seq);
}

void
run_progress(struct genqd *g, struct run *r, double value)
{
	int64_t now = gq_mono_us();

	if (!(value >= 0) || value <= r->progress || now < r->progress_at)
		return;
	r->progress_at = now + PROGRESS_EVERY_US;
	if (r->progress <= 0)
		r->progress_write_at = now + PROGRESS_FIRST_US;
	r->progress = value;
	/* Written with the next batch of completions (finish.c), in the same
	 * turn of the loop: no commit of its own. */
	r->progress_noted = true;
}

/* Room left for the request to reach the backend before the lease ends. */
#define LEASE_MARGIN_US 1000000LL

bool
run_lease_fresh(const struct genqd *g, const struct run *r)
{
	int64_t since = r->started_mono > g->job_lease_ok ? r->started_mono : g->job_lease_ok;

	return gq_mono_us() < since + (int64_t)g->cfg->lease_s * 1000000LL - LEASE_MARGIN_US;
}

void
run_abandon(struct genqd *g, struct run *r)
{
	run_log(warn, "run_abandoned", r, " why=%s", "job lease may have expired before submit");
	run_release(g, r);
	g->recover_now = true;      /* find out what became of it at once */
}

bool
run_request_failed(struct genqd *g, struct run *r, const struct http_result *res,
    const char *what)
{
	char why[256];
	enum run_state before = r->state;

	if (res->curl_code != 0)
		snprintf(why, sizeof why, "%s: %s", what, res->error);
	else
		snprintf(why, sizeof why, "%s: HTTP %ld", what, res->status);
	run_log(debug, "request_failed", r, " step=%s why=\"%s\"", what, log_q(why));
	backend_failed(g, r->backend, why);
	return r->state == before;
}
