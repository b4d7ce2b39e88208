/* queues: GET /v1/queues, for any authenticated caller. Per queue: paused,
 * requires_approval, jobs now held/waiting/queued/running, jobs finished in
 * the last hour by outcome, its backends (up = healthy, busy = running at
 * least one job, total), and the median wait (created to started) and run
 * (started to finished) of the last hour's finished jobs, null when none. */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "db.h"
#include "jobstatus.h"

static const char SQL_QUEUES[] =
    "SELECT name, paused, requires_approval FROM queues ORDER BY name LIMIT 1000";
static const char SQL_ACTIVE[] =
    "SELECT queue, status, COUNT(*) FROM jobs "
    "WHERE status IN ('held', 'waiting', 'queued', 'running') GROUP BY queue, status";
/* A range of jobs_finished (status, finished_at) per terminal status;
 * bounded all the same. */
static const char SQL_FINISHED[] =
    "SELECT queue, status, TIMESTAMPDIFF(MICROSECOND, created_at, started_at), "
    "TIMESTAMPDIFF(MICROSECOND, started_at, finished_at) FROM jobs "
    "WHERE status IN ('succeeded', 'failed', 'canceled', 'expired') "
    "AND finished_at >= UTC_TIMESTAMP(6) - INTERVAL 1 HOUR LIMIT 200000";
static const char SQL_BACKENDS[] =
    "SELECT bq.queue, b.healthy, (SELECT COUNT(*) FROM jobs j "
    " WHERE j.status = 'running' AND j.backend_id = b.id) "
    "FROM backend_queues bq JOIN backends b ON b.id = bq.backend_id";


/* A growable list of microsecond samples. */
struct samples {
	int64_t *v;
	size_t n, cap;
};

struct qstat {
	char name[40];
	bool paused, requires_approval;
	int64_t count[JOB_NSTATUS];
	int64_t up, busy, total;
	struct samples wait, run;
};

struct board {
	struct qstat *q;
	size_t n;
};

static void
board_free(struct board *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->q[i].wait.v);
		free(b->q[i].run.v);
	}
	free(b->q);
	b->q = NULL;
	b->n = 0;
}

static struct qstat *
find(struct board *b, const char *name)
{
	for (size_t i = 0; name && i < b->n; i++)
		if (strcmp(b->q[i].name, name) == 0)
			return &b->q[i];
	return NULL;
}

static int
sample_add(struct samples *s, int64_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		int64_t *nv = realloc(s->v, cap * sizeof *nv);
		if (nv == NULL)
			return -1;
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The median in seconds (ms precision), or JSON null without samples. */
static struct json_object *
median_s(struct samples *s)
{
	char text[32];
	int64_t us;

	if (s->n == 0)
		return NULL;
	qsort(s->v, s->n, sizeof s->v[0], cmp_i64);
	us = s->n % 2 ? s->v[s->n / 2] : (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
	snprintf(text, sizeof text, "%.3f", (double)us / 1e6);
	return json_object_new_double_s((double)us / 1e6, text);
}

static int
read_board(struct db *db, void *arg)
{
	struct board *b = arg;
	struct db_stmt *st;
	struct qstat *q;
	int rc;

	board_free(b);
	if ((st = db_prepare(db, SQL_QUEUES)) == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((b->q = calloc(1000, sizeof *b->q)) == NULL)
		return DB_NOMEM;
	while ((rc = db_next(st)) == 1 && b->n < 1000) {
		q = &b->q[b->n++];
		snprintf(q->name, sizeof q->name, "%s", db_text(st, 0, NULL));
		q->paused = db_i64(st, 1) != 0;
		q->requires_approval = db_i64(st, 2) != 0;
	}
	if (rc < 0)
		return rc;

	if ((st = db_prepare(db, SQL_ACTIVE)) == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		int k = job_status_index(db_text(st, 1, NULL));
		if ((q = find(b, db_text(st, 0, NULL))) != NULL && k >= 0)
			q->count[k] += db_i64(st, 2);
	}
	if (rc < 0)
		return rc;

	if ((st = db_prepare(db, SQL_FINISHED)) == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		int k = job_status_index(db_text(st, 1, NULL));
		if ((q = find(b, db_text(st, 0, NULL))) == NULL || k < 0)
			continue;
		q->count[k]++;
		if (!db_is_null(st, 2) && sample_add(&q->wait, db_i64(st, 2)) < 0)
			return DB_NOMEM;
		if (!db_is_null(st, 3) && sample_add(&q->run, db_i64(st, 3)) < 0)
			return DB_NOMEM;
	}
	if (rc < 0)
		return rc;

	if ((st = db_prepare(db, SQL_BACKENDS)) == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		if ((q = find(b, db_text(st, 0, NULL))) == NULL)
			continue;
		q->total++;
		q->up += db_i64(st, 1) != 0;
		q->busy += db_i64(st, 2) > 0;
	}
	return rc < 0 ? rc : DB_OK;
}

static struct json_object *
queue_object(struct qstat *q)
{
	struct json_object *o = json_object_new_object(), *be;

	if (o == NULL)
		return NULL;
	json_object_object_add(o, "name", json_object_new_string(q->name));
	json_object_object_add(o, "paused", json_object_new_boolean(q->paused));
	json_object_object_add(o, "requires_approval", json_object_new_boolean(q->requires_approval));
	for (int k = 0; k < JOB_NSTATUS; k++)
		json_object_object_add(o, job_statuses[k], json_object_new_int64(q->count[k]));
	if ((be = json_object_new_object()) == NULL) {
		json_object_put(o);
		return NULL;
	}
	json_object_object_add(o, "backends", be);
	json_object_object_add(be, "up", json_object_new_int64(q->up));
	json_object_object_add(be, "busy", json_object_new_int64(q->busy));
	json_object_object_add(be, "total", json_object_new_int64(q->total));
	json_object_object_add(o, "median_wait_s", median_s(&q->wait));
	json_object_object_add(o, "median_run_s", median_s(&q->run));
	return o;
}

void
queues_get(struct ctx *c)
{
	struct board b = { NULL, 0 };
	struct json_object *o = NULL, *list;
	int rc = app_read(c->app, read_board, &b);

	if (rc != DB_OK) {
		resp_db_error(c->resp, c->app->db, "queues", rc);
		goto out;
	}
	if ((o = json_object_new_object()) == NULL || (list = json_object_new_array()) == NULL) {
		c->resp->failed = true;
		goto out;
	}
	json_object_object_add(o, "queues", list);
	for (size_t i = 0; i < b.n; i++) {
		struct json_object *q = queue_object(&b.q[i]);
		if (q == NULL || json_object_array_add(list, q) != 0) {
			json_object_put(q);
			c->resp->failed = true;
			goto out;
		}
	}
	resp_json(c->resp, 200, o);
out:
	json_object_put(o);
	board_free(&b);
}
