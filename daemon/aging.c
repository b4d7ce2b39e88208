#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "fairshare.h"
#include "genqd.h"
#include "aging.h"
#include "jobevent.h"

static const char SQL_QUEUES[] =
    "SELECT name, priority_aging_s FROM queues WHERE priority_aging_s > 0 ORDER BY name";
/* Oldest first along jobs_claim (queue, status, priority, seq); `old` says
 * whether the job has waited one interval at all (the scan stops at the
 * first that has not: every later seq is younger), `due` whether it has
 * waited one more interval than it has already risen. Not locking: a
 * claimer must never skip a head because aging looks at it. */
static const char SQL_CANDIDATES[] =
    "SELECT seq, created_at <= UTC_TIMESTAMP(6) - INTERVAL ? SECOND, "
    "created_at <= UTC_TIMESTAMP(6) - INTERVAL (? * (aged + 1)) SECOND FROM jobs "
    "WHERE queue = ? AND status = 'queued' AND priority = ? AND seq > ? ORDER BY seq LIMIT ?";
/* Conditional: a job claimed or canceled meanwhile is left alone. It joins
 * the new level no later than that level's current turn. */
static const char SQL_RAISE[] =
    "UPDATE jobs SET priority = priority - 1, aged = aged + 1, turn = LEAST(turn, ?) "
    "WHERE seq = ? AND status = 'queued' AND priority = ?";

#define PAGE 200
#define RAISE_MAX 1000          /* per level and tick: bounds one transaction */
#define PRIORITY_MAX 3
#define PAGES_MAX 50            /* pages scanned per level and tick */
#define QUEUE_NAME_MAX 129      /* VARCHAR(32) of utf8mb4, and a NUL */

struct level {
	struct genqd *g;
	const char *queue;
	int64_t interval_s;
	int priority;            /* the level jobs rise from */
	uint64_t *seqs;          /* PAGE due jobs */
	size_t n;
	uint64_t after;          /* scan position */
	bool done;               /* reached the young jobs */
	int raised;
};

/* One page of the level: collect the jobs that are due. */
static int
scan_page(struct db *db, struct level *lv)
{
	struct db_stmt *st = db_prepare(db, SQL_CANDIDATES);
	size_t rows = 0;
	int rc;

	lv->n = 0;
	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, lv->interval_s);
	db_bind_i64(st, 1, lv->interval_s);
	db_bind_str(st, 2, lv->queue);
	db_bind_i64(st, 3, lv->priority);
	db_bind_i64(st, 4, (int64_t)lv->after);
	db_bind_i64(st, 5, PAGE);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		rows++;
		lv->after = (uint64_t)db_i64(st, 0);
		if (db_i64(st, 1) == 0) {
			lv->done = true;
			break;
		}
		if (db_i64(st, 2) != 0)
			lv->seqs[lv->n++] = lv->after;
	}
	if (rc < 0)
		return rc;
	if (rows < PAGE)
		lv->done = true;
	return DB_OK;
}

static int
raise_txn(struct db *db, void *arg)
{
	struct level *lv = arg;
	int64_t clock;
	char reason[64];
	int rc, raised = 0;

	if ((rc = fairshare_clock(db, lv->queue, lv->priority - 1, &clock)) != DB_OK)
		return rc;
	snprintf(reason, sizeof reason, "priority aged from %d to %d", lv->priority,
	    lv->priority - 1);
	for (size_t i = 0; i < lv->n; i++) {
		struct db_stmt *st = db_prepare(db, SQL_RAISE);

		if (st == NULL)
			return db_last_status(db);
		db_bind_i64(st, 0, clock);
		db_bind_i64(st, 1, (int64_t)lv->seqs[i]);
		db_bind_i64(st, 2, lv->priority);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
		if (db_affected_rows(st) != 1)
			continue;
		if ((rc = job_event_add(db, lv->seqs[i], "queued", "queued", lv->g->actor,
		    reason, 0, 0)) != DB_OK)
			return rc;
		raised++;
	}
	lv->raised = raised;     /* set last: a rerun counts afresh */
	return DB_OK;
}

/* Raise the due jobs of one queue's level; the number raised or -1. */
static int
age_level(struct genqd *g, struct level *lv)
{
	int total = 0, pages = 0, rc;

	while (!lv->done && total < RAISE_MAX && pages++ < PAGES_MAX) {
		if ((rc = scan_page(g->db, lv)) != DB_OK) {
			gqd_db_failed(g, rc, "aging_scan");
			return -1;
		}
		if (lv->n == 0)
			continue;
		if ((rc = db_txn(g->db, raise_txn, lv)) != DB_OK) {
			gqd_db_failed(g, rc, "aging_raise");
			return -1;
		}
		total += lv->raised;
	}
	if (total > 0)
		log_info("priority_aged", "queue=%s from=%d to=%d jobs=%d", lv->queue,
		    lv->priority, lv->priority - 1, total);
	return total;
}

void
aging_tick(struct genqd *g)
{
	struct db_stmt *st;
	char (*names)[QUEUE_NAME_MAX] = NULL;
	int64_t *intervals = NULL;
	uint64_t *seqs = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if (!gqd_db_ready(g))
		return;
	if ((st = db_prepare(g->db, SQL_QUEUES)) == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "aging_queues");
		return;
	}
	if ((rc = db_exec(st)) != DB_OK) {
		gqd_db_failed(g, rc, "aging_queues");
		return;
	}
	/* Collected first: the statement's rows go at the next use. */
	while ((rc = db_next(st)) == 1) {
		const char *name = db_text(st, 0, NULL);

		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			char (*nn)[QUEUE_NAME_MAX] = realloc(names, ncap * sizeof *names);
			int64_t *ni;

			if (nn == NULL)
				break;
			names = nn;
			if ((ni = realloc(intervals, ncap * sizeof *intervals)) == NULL)
				break;
			intervals = ni;
			cap = ncap;
		}
		snprintf(names[n], sizeof names[n], "%s", name ? name : "");
		intervals[n++] = db_i64(st, 1);
	}
	if (rc < 0)
		gqd_db_failed(g, rc, "aging_queues");
	if (n == 0 || (seqs = malloc(PAGE * sizeof *seqs)) == NULL)
		goto out;
	for (size_t q = 0; q < n && gqd_db_ready(g); q++) {
		/* Level 1 first: a job rises at most one level per tick. */
		for (int p = 1; p <= PRIORITY_MAX && gqd_db_ready(g); p++) {
			struct level lv;

			memset(&lv, 0, sizeof lv);
			lv.g = g;
			lv.queue = names[q];
			lv.interval_s = intervals[q];
			lv.priority = p;
			lv.seqs = seqs;
			if (age_level(g, &lv) < 0)
				goto out;
		}
	}
out:
	free(names);
	free(intervals);
	free(seqs);
}
