#include "autoconf.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "store.h"

/* Running attempts on a backend whose lease this genqd holds, as the
 * database says (not only as this process believes). The backend lease is
 * the authority: whoever claimed such a job before (a genqd that died or
 * lost the lease, or this one before a restart) no longer drives it. A job
 * lease that outlives the backend lease must not hide its prompt, or this
 * genqd would fill the backend's slots with new prompts on top of it. The
 * caller skips the runs it has in memory. */
static const char SQL_ORPHANS[] =
    "SELECT j.seq, j.id, j.queue, j.prompt_id, j.attempts, j.timeout_s, "
    "TIMESTAMPDIFF(MICROSECOND, a.started_at, UTC_TIMESTAMP(6)) "
    "FROM jobs j JOIN backends b ON b.id = j.backend_id "
    "LEFT JOIN job_attempts a ON a.job_seq = j.seq AND a.attempt = j.attempts "
    "WHERE j.status = 'running' AND j.backend_id = ? "
    "AND b.lease_owner = ? AND b.lease_until > UTC_TIMESTAMP(6) "
    "LIMIT 200";
static const char SQL_TAKE_OVER[] =
    "UPDATE jobs SET claimed_by = ?, lease_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND "
    "WHERE seq = ? AND status = 'running' AND prompt_id = ? AND backend_id IN "
    "(SELECT id FROM backends WHERE lease_owner = ? AND lease_until > UTC_TIMESTAMP(6))";

struct orphan {
	uint64_t seq;
	char id[GQ_UUID_LEN];
	char queue[33];
	char prompt_id[GQ_UUID_LEN];
	int attempt;
	int timeout_s;
	int64_t age_us;
};

/* Claim the job for this genqd; true when it is now ours. */
static bool
take_over(struct genqd *g, const struct orphan *o)
{
	struct db_stmt *st = db_prepare(g->db, SQL_TAKE_OVER);
	int rc;

	if (st == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "take_over");
		return false;
	}
	db_bind_str(st, 0, g->id);
	db_bind_i64(st, 1, g->cfg->lease_s);
	db_bind_i64(st, 2, (int64_t)o->seq);
	db_bind_str(st, 3, o->prompt_id);
	db_bind_str(st, 4, g->id);
	if ((rc = db_exec(st)) != DB_OK) {
		gqd_db_failed(g, rc, "take_over");
		return false;
	}
	return db_affected_rows(st) == 1;
}

/* A genqd killed while storing the job's outputs left its temporary files
 * behind; nobody else writes there now that this genqd owns the job, and the
 * outputs are fetched again. */
static void
remove_stale_temps(struct genqd *g, const struct orphan *o)
{
	int n = store_remove_temps(g->cfg->output_dir, o->id);

	if (n > 0)
		log_info("stale_outputs_removed", "job=%s files=%d", o->id, n);
}

static void
adopt(struct genqd *g, struct backend *b, const struct orphan *o)
{
	struct run *r;

	if (!take_over(g, o))
		return;
	remove_stale_temps(g, o);
	if ((r = run_new(g, b)) == NULL) {
		log_error("out_of_memory", "step=recover job=%s", o->id);
		return;
	}
	r->seq = o->seq;
	memcpy(r->job_id, o->id, sizeof r->job_id);
	memcpy(r->queue, o->queue, sizeof r->queue);
	memcpy(r->prompt_id, o->prompt_id, sizeof r->prompt_id);
	r->attempt = o->attempt;
	r->timeout_s = o->timeout_s;
	r->started_mono = gq_mono_us() - (o->age_us > 0 ? o->age_us : 0);
	run_log(info, "job_recovering", r, " age_ms=%lld", (long long)(o->age_us / 1000));
	if (!b->healthy) {
		/* Nobody can ask a backend that is down; forget the prompt
		 * when it returns and run the job elsewhere. */
		backend_add_orphan(b, r->prompt_id);
		run_fail(g, r, "backend_unreachable", true, "backend %s is down", b->name);
		return;
	}
	b->proto->reattach(g, r);
}

static void
recover_backend(struct genqd *g, struct backend *b)
{
	struct db_stmt *st = db_prepare(g->db, SQL_ORPHANS);
	struct orphan *list = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (st == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "recover");
		return;
	}
	db_bind_i64(st, 0, (int64_t)b->id);
	db_bind_str(st, 1, g->id);
	if ((rc = db_exec(st)) != DB_OK) {
		gqd_db_failed(g, rc, "recover");
		return;
	}
	while ((rc = db_next(st)) == 1) {
		uint64_t seq = (uint64_t)db_i64(st, 0);
		const char *id = db_text(st, 1, NULL), *queue = db_text(st, 2, NULL);
		const char *prompt_id = db_text(st, 3, NULL);
		struct orphan *o;

		if (run_find(g, seq) != NULL)
			continue;              /* ours, and alive */
		if (id == NULL || prompt_id == NULL || !gq_is_uuid(prompt_id)) {
			log_error("recover_skipped", "job=%s backend=%s why=\"no prompt_id\"",
			    id ? id : "?", b->name);
			continue;
		}
		if (n == cap) {
			struct orphan *grown = realloc(list, (cap = cap ? cap * 2 : 8) * sizeof *list);
			if (grown == NULL)
				break;
			list = grown;
		}
		o = &list[n++];
		o->seq = seq;
		snprintf(o->id, sizeof o->id, "%s", id);
		snprintf(o->queue, sizeof o->queue, "%s", queue ? queue : "");
		snprintf(o->prompt_id, sizeof o->prompt_id, "%s", prompt_id);
		o->attempt = (int)db_i64(st, 4);
		o->timeout_s = (int)db_i64(st, 5);
		o->age_us = db_i64(st, 6);
	}
	/* Adopting runs statements of its own: the rows are copied first. */
	for (size_t i = 0; i < n && gqd_db_ready(g); i++)
		adopt(g, b, &list[i]);
	free(list);
}

void
recover_tick(struct genqd *g)
{
	for (struct backend *b = g->backends; b != NULL && gqd_db_ready(g); b = b->next)
		if (b->proto != NULL && b->leased && b->seen)
			recover_backend(g, b);
}
