/* jobs: GET /v1/jobs/{id}, its outputs and events, POST .../cancel, and
 * GET /healthz. A malformed id, an unknown id and another user's job all
 * answer the same 404 (admin keys see every job). */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "gqtime.h"
#include "jobevent.h"
#include "jobjson.h"
#include "jsonutil.h"
#include "ledger.h"
#include "log.h"
#include "wake.h"

static const char SQL_JOB_OWNER[] =
    "SELECT seq, user_id FROM jobs WHERE id = ?";
static const char SQL_OUTPUT[] =
    "SELECT j.user_id, o.kind, o.path, o.content_type, o.text, o.deleted_at "
    "FROM jobs j JOIN job_outputs o ON o.job_seq = j.seq WHERE j.id = ? AND o.idx = ?";
static const char SQL_EVENTS[] =
    "SELECT at, from_status, to_status, actor, reason, attempt "
    "FROM job_events WHERE job_seq = ? ORDER BY id LIMIT 1000";
static const char SQL_CANCEL_LOCK[] =
    "SELECT seq, user_id, status, cost_held FROM jobs WHERE id = ? FOR UPDATE";
static const char SQL_CANCEL_NOW[] =
    "UPDATE jobs SET status = 'canceled', finished_at = UTC_TIMESTAMP(6), "
    "cost_refunded = cost_held, progress = NULL WHERE seq = ? AND status = ?";
static const char SQL_CANCEL_RUNNING[] =
    "UPDATE jobs SET cancel_requested = 1 WHERE seq = ? AND status = 'running'";

#define NOT_FOUND 1   /* a positive result of the readers below */
#define DELETED 2     /* an output that retention removed: 404 saying so */

/* The user whose jobs the caller may see; 0 = all (admin). */
static uint64_t
visible_owner(const struct ctx *c)
{
	return c->caller.admin ? 0 : c->caller.user_id;
}

static void
not_found(struct ctx *c)
{
	resp_problem(c->resp, P_NOT_FOUND, "No such job.", NULL);
}

/* ---- GET /v1/jobs/{id} ---- */

struct render {
	struct ctx *c;
	struct json_object *job;
};

static int
render_job(struct db *db, void *arg)
{
	struct render *r = arg;

	return jobjson_load(db, r->c->app->cfg->base_url, r->c->route.job_id,
	    visible_owner(r->c), &r->job);
}

/* Answer status with the job object (or 404 / 503). */
static void
answer_job(struct ctx *c, int status)
{
	struct render r = { c, NULL };
	int rc = app_read(c->app, render_job, &r);

	if (rc == JOBJSON_NOT_FOUND)
		not_found(c);
	else if (rc != DB_OK)
		resp_db_error(c->resp, c->app->db, "job", rc);
	else
		resp_json(c->resp, status, r.job);
	json_object_put(r.job);
}

void
jobs_get(struct ctx *c)
{
	if (c->route.job_id[0] == '\0') {
		not_found(c);
		return;
	}
	answer_job(c, 200);
}

/* ---- GET /v1/jobs/{id}/outputs/{n} ---- */

/* Paths come from genqd ("<job id>/0.png"); refuse anything that could
 * leave the output directory or break the header all the same. */
static bool
safe_output_path(const char *p)
{
	if (p == NULL || *p == '\0' || *p == '/' || strstr(p, "..") != NULL)
		return false;
	for (; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-' || ch == '/'))
			return false;
	}
	return true;
}

static int
read_output(struct db *db, void *arg)
{
	struct ctx *c = arg;
	struct db_stmt *st = db_prepare(db, SQL_OUTPUT);
	uint64_t owner = visible_owner(c);
	const char *kind, *path, *ctype, *text;
	size_t len;
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, c->route.job_id);
	db_bind_i64(st, 1, c->route.output);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : NOT_FOUND;
	if (owner != 0 && (uint64_t)db_i64(st, 0) != owner)
		return NOT_FOUND;
	if (!db_is_null(st, 5))
		return DELETED;         /* removed by retention */
	kind = db_text(st, 1, NULL);
	if (kind != NULL && strcmp(kind, "text") == 0) {
		text = db_text(st, 4, &len);
		resp_raw(c->resp, 200, "text/plain; charset=utf-8", text ? text : "", len);
		return DB_OK;
	}
	path = db_text(st, 2, NULL);
	if (!safe_output_path(path)) {
		log_error("output_path_refused", "job=%s index=%ld", c->route.job_id, c->route.output);
		return NOT_FOUND;
	}
	ctype = db_text(st, 3, NULL);
	resp_raw(c->resp, 200, ctype && *ctype ? ctype : "application/octet-stream", "", 0);
	resp_header(c->resp, "X-Accel-Redirect", "%s%s", c->app->cfg->accel_prefix, path);
	c->resp->omit_length = true;
	return DB_OK;
}

void
jobs_output(struct ctx *c)
{
	int rc;

	if (c->route.job_id[0] == '\0' || c->route.output < 0) {
		resp_problem(c->resp, P_NOT_FOUND, "No such output.", NULL);
		return;
	}
	rc = app_read(c->app, read_output, c);
	if (rc == NOT_FOUND)
		resp_problem(c->resp, P_NOT_FOUND, "No such output.", NULL);
	else if (rc == DELETED)
		resp_problem(c->resp, P_NOT_FOUND,
		    "This output was deleted after the retention period.", NULL);
	else if (rc != DB_OK)
		resp_db_error(c->resp, c->app->db, "output", rc);
}

/* ---- GET /v1/jobs/{id}/events ---- */

struct events {
	struct ctx *c;
	struct json_object *list;
};

/* The job's seq when the caller may see it. */
static int
find_job(struct db *db, struct ctx *c, uint64_t *seq)
{
	struct db_stmt *st = db_prepare(db, SQL_JOB_OWNER);
	uint64_t owner = visible_owner(c);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, c->route.job_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : NOT_FOUND;
	if (owner != 0 && (uint64_t)db_i64(st, 1) != owner)
		return NOT_FOUND;
	*seq = (uint64_t)db_i64(st, 0);
	return DB_OK;
}

static int
read_events(struct db *db, void *arg)
{
	struct events *ev = arg;
	struct db_stmt *st;
	uint64_t seq = 0;
	int rc;

	if ((rc = find_job(db, ev->c, &seq)) != DB_OK)
		return rc;
	if ((st = db_prepare(db, SQL_EVENTS)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	json_object_put(ev->list);
	if ((ev->list = json_object_new_array()) == NULL)
		return DB_NOMEM;
	while ((rc = db_next(st)) == 1) {
		struct json_object *e = json_object_new_object();
		char at[GQ_RFC3339_LEN];

		if (e == NULL)
			return DB_NOMEM;
		json_object_array_add(ev->list, e);
		gq_time_rfc3339(at, db_time_us(st, 0));
		json_object_object_add(e, "at", json_object_new_string(at));
		json_object_object_add(e, "from", gq_json_str_or_null(db_text(st, 1, NULL)));
		json_object_object_add(e, "to", gq_json_str_or_null(db_text(st, 2, NULL)));
		json_object_object_add(e, "actor", gq_json_str_or_null(db_text(st, 3, NULL)));
		json_object_object_add(e, "reason", gq_json_str_or_null(db_text(st, 4, NULL)));
		json_object_object_add(e, "attempt",
		    db_is_null(st, 5) ? NULL : json_object_new_int64(db_i64(st, 5)));
	}
	return rc < 0 ? rc : DB_OK;
}

void
jobs_events(struct ctx *c)
{
	struct events ev = { c, NULL };
	struct json_object *o;
	int rc;

	if (c->route.job_id[0] == '\0') {
		not_found(c);
		return;
	}
	rc = app_read(c->app, read_events, &ev);
	if (rc == NOT_FOUND) {
		not_found(c);
	} else if (rc != DB_OK) {
		resp_db_error(c->resp, c->app->db, "events", rc);
	} else if ((o = json_object_new_object()) == NULL) {
		c->resp->failed = true;
	} else {
		json_object_object_add(o, "events", ev.list);
		ev.list = NULL;
		resp_json(c->resp, 200, o);
		json_object_put(o);
	}
	json_object_put(ev.list);
}

/* ---- POST /v1/jobs/{id}/cancel ---- */

struct cancel {
	struct ctx *c;
	char actor[80];
	bool interrupt;         /* a running job was asked to stop */
};

static int
cancel_txn(struct db *db, void *arg)
{
	struct cancel *k = arg;
	struct ctx *c = k->c;
	struct db_stmt *st = db_prepare(db, SQL_CANCEL_LOCK);
	uint64_t owner = visible_owner(c), seq, job_user;
	char status[16];
	int64_t held;
	int rc;

	k->interrupt = false;
	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, c->route.job_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : NOT_FOUND;
	job_user = (uint64_t)db_i64(st, 1);
	if (owner != 0 && job_user != owner)
		return NOT_FOUND;
	seq = (uint64_t)db_i64(st, 0);
	snprintf(status, sizeof status, "%s", db_text(st, 2, NULL));
	held = db_i64(st, 3);
	/* Another admin's action is recorded as such. */
	snprintf(k->actor, sizeof k->actor, "%s:%s",
	    c->caller.admin && job_user != c->caller.user_id ? "admin" : "user", c->caller.name);

	if (strcmp(status, "running") == 0) {
		/* genqd interrupts it on its backend and records the change. */
		if ((st = db_prepare(db, SQL_CANCEL_RUNNING)) == NULL)
			return db_last_status(db);
		db_bind_i64(st, 0, (int64_t)seq);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
		k->interrupt = true;
		return DB_OK;
	}
	if (strcmp(status, "queued") != 0 && strcmp(status, "held") != 0 &&
	    strcmp(status, "waiting") != 0)
		return DB_OK;   /* terminal: nothing changes, the answer is the job */

	if ((st = db_prepare(db, SQL_CANCEL_NOW)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)seq);
	db_bind_str(st, 1, status);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1)
		return DB_RETRY;        /* changed under the lock: cannot happen; retry */
	if (held > 0) {
		rc = ledger_apply(db, job_user, seq, "release", held, k->actor, "canceled");
		if (rc != DB_OK)
			return rc < 0 ? rc : DB_ERR;
	}
	return job_event_add(db, seq, status, "canceled", k->actor, "canceled by request", 0, 0);
}

void
jobs_cancel(struct ctx *c)
{
	struct cancel k = { c, "", false };
	struct db *db;
	int rc;

	if (c->route.job_id[0] == '\0') {
		not_found(c);
		return;
	}
	if ((db = app_db(c->app)) == NULL) {
		resp_db_error(c->resp, NULL, "cancel", DB_GONE);
		return;
	}
	rc = db_txn(db, cancel_txn, &k);
	if (rc == NOT_FOUND) {
		not_found(c);
		return;
	}
	if (rc != DB_OK) {
		resp_db_error(c->resp, db, "cancel", rc < 0 ? rc : DB_ERR);
		return;
	}
	if (k.interrupt && c->app->cfg->wake_socket[0])
		wake_send(c->app->cfg->wake_socket, NULL);
	answer_job(c, 200);
}

/* ---- GET /healthz ---- */

void
jobs_healthz(struct ctx *c)
{
	struct db *db = app_db(c->app);
	struct json_object *o;

	if (db == NULL || db_ping(db) != DB_OK) {
		resp_db_error(c->resp, db, "healthz", DB_GONE);
		return;
	}
	if ((o = json_object_new_object()) == NULL) {
		c->resp->failed = true;
		return;
	}
	json_object_object_add(o, "status", json_object_new_string("ok"));
	resp_json(c->resp, 200, o);
	json_object_put(o);
}
