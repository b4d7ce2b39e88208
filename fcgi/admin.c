/* admin: the operator's actions over HTTP, for admin keys only (anyone
 * else: 403 forbidden). The actions themselves are lib/jobadmin.c's, the
 * same code genqctl runs; this file only parses, answers and logs.
 *
 *   POST /v1/admin/jobs/{id}/approve     held -> queued; answers the job
 *   POST /v1/admin/jobs/{id}/reject      held -> canceled, hold released
 *   POST /v1/admin/queues/{name}/pause   and /resume; answers the queue
 *   POST /v1/admin/backends/{name}/drain and /undrain; answers the backend
 *   POST /v1/admin/credits               {"user", "amount", "reason"}
 *
 * Approve and reject take an optional body {"reason": "..."} kept on the
 * job's event. Every change is recorded with the actor "admin:<name>". */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "jobadmin.h"
#include "jobjson.h"
#include "jsonutil.h"
#include "ledger.h"
#include "log.h"
#include "wake.h"

#define REASON_MAX 512
#define QUEUE_NAME_MAX 32

static const char SQL_QUEUE[] =
    "SELECT name, paused, requires_approval, price_per_job, price_per_second, timeout_s,"
    " ttl_s, max_attempts, max_queued, priority_aging_s FROM queues WHERE name = ?";
static const char SQL_BACKEND[] =
    "SELECT b.name, b.type, b.url, b.max_running, b.prefetch, b.draining, b.healthy,"
    " (SELECT COUNT(*) FROM jobs j WHERE j.status = 'running' AND j.backend_id = b.id),"
    " (SELECT GROUP_CONCAT(q.queue ORDER BY q.queue SEPARATOR ',')"
    "   FROM backend_queues q WHERE q.backend_id = b.id)"
    " FROM backends b WHERE b.name = ?";

#define NOT_FOUND 1

/* 403 unless the key is an admin key; true when the caller may go on. */
static bool
admin_only(struct ctx *c)
{
	if (c->caller.admin)
		return true;
	resp_problem(c->resp, P_FORBIDDEN, "This needs an admin API key.", NULL);
	return false;
}

static void
actor_of(const struct ctx *c, char *out, size_t cap)
{
	snprintf(out, cap, "admin:%s", c->caller.name);
}

/* ---- bodies ---- */

/* A body of string fields, each known by name. Parses the request body into
 * *root (owned by the caller) and checks that every member is one of
 * fields[] (a string of at most max bytes, or, where numeric[i], also an
 * integer). empty_ok: no body at all is fine (*root stays NULL). 0, or -1
 * with the answer set. */
struct field {
	const char *name;
	size_t max;
	bool required, integer_ok;
};

static int
read_fields(struct ctx *c, struct json_object **root, const struct field *fields,
    size_t nfields, bool empty_ok)
{
	struct json_object *errors = NULL;
	const char *why = NULL;
	struct buf body;
	int rc = -1;

	*root = NULL;
	buf_init(&body, 0);
	if (submit_read_body(c, &body) < 0)
		goto out;
	if (body.len == 0 && empty_ok) {
		rc = 0;
		goto out;
	}
	if (!http_content_type_is_json(req_param(c->req, "CONTENT_TYPE"))) {
		resp_problem(c->resp, P_UNSUPPORTED_MEDIA_TYPE,
		    "Send the body as Content-Type: application/json.", NULL);
		goto out;
	}
	if ((*root = gq_json_parse(body.data ? body.data : "", body.len, GQ_JSON_MAX_DEPTH,
	    &why)) == NULL) {
		resp_problem(c->resp, P_INVALID_JSON, why, NULL);
		goto out;
	}
	if ((errors = json_object_new_array()) == NULL) {
		c->resp->failed = true;
		goto out;
	}
	if (!json_object_is_type(*root, json_type_object)) {
		problem_error_add(errors, "", "must be an object");
	} else {
		json_object_object_foreach(*root, key, val) {
			size_t i;

			for (i = 0; i < nfields && strcmp(fields[i].name, key) != 0; i++)
				;
			if (i == nfields) {
				problem_error_add(errors, key, "unknown field");
			} else if (json_object_is_type(val, json_type_string)) {
				if ((size_t)json_object_get_string_len(val) > fields[i].max)
					problem_error_add(errors, key, "too long");
			} else if (!(fields[i].integer_ok && json_object_is_type(val, json_type_int))) {
				problem_error_add(errors, key, fields[i].integer_ok ?
				    "must be a decimal string or an integer" : "must be a string");
			}
		}
		for (size_t i = 0; i < nfields; i++)
			if (fields[i].required && !json_object_object_get_ex(*root, fields[i].name, NULL))
				problem_error_add(errors, fields[i].name, "required");
	}
	if (json_object_array_length(errors) > 0) {
		resp_problem(c->resp, P_INVALID_REQUEST, "The request has invalid fields.", errors);
		errors = NULL;
		goto out;
	}
	rc = 0;
out:
	json_object_put(errors);
	buf_free(&body);
	return rc;
}

/* ---- approve, reject ---- */

struct render {
	struct ctx *c;
	struct json_object *job;
};

static int
render_job(struct db *db, void *arg)
{
	struct render *r = arg;

	return jobjson_load(db, r->c->app->cfg->base_url, r->c->route.job_id, 0, &r->job);
}

static void
judge(struct ctx *c, bool approve)
{
	static const struct field fields[] = { { "reason", REASON_MAX, false, false } };
	struct jobadmin_job j = { 0 };
	struct json_object *root = NULL;
	struct render r = { c, NULL };
	char actor[96], detail[96];
	struct db *db;
	int rc;

	if (!admin_only(c))
		return;
	if (c->route.job_id[0] == '\0') {
		resp_problem(c->resp, P_NOT_FOUND, "No such job.", NULL);
		return;
	}
	if (read_fields(c, &root, fields, 1, true) < 0)
		goto out;
	if ((db = app_db(c->app)) == NULL) {
		resp_db_error(c->resp, NULL, approve ? "approve" : "reject", DB_GONE);
		goto out;
	}
	actor_of(c, actor, sizeof actor);
	j.id = c->route.job_id;
	j.actor = actor;
	j.reason = root ? gq_json_str(root, "reason") : NULL;
	rc = approve ? jobadmin_approve(db, &j) : jobadmin_reject(db, &j);
	if (rc == JOBADMIN_NOT_FOUND) {
		resp_problem(c->resp, P_NOT_FOUND, "No such job.", NULL);
		goto out;
	}
	if (rc == JOBADMIN_NOT_HELD) {
		snprintf(detail, sizeof detail, "The job is %s, not held.", j.from);
		resp_problem(c->resp, P_CONFLICT, detail, NULL);
		goto out;
	}
	if (rc != DB_OK) {
		resp_db_error(c->resp, db, approve ? "approve" : "reject", rc < 0 ? rc : DB_ERR);
		goto out;
	}
	log_info(approve ? "job_approved" : "job_rejected", "job=%s actor=%s to=%s",
	    j.id, actor, j.to);
	if (approve && strcmp(j.to, "queued") == 0 && c->app->cfg->wake_socket[0])
		wake_send(c->app->cfg->wake_socket, NULL);
	rc = app_read(c->app, render_job, &r);
	if (rc == DB_OK)
		resp_json(c->resp, 200, r.job);
	else if (rc == JOBJSON_NOT_FOUND)
		resp_problem(c->resp, P_NOT_FOUND, "No such job.", NULL);
	else
		resp_db_error(c->resp, c->app->db, "job", rc);
out:
	json_object_put(r.job);
	json_object_put(root);
}

void
admin_approve(struct ctx *c)
{
	judge(c, true);
}

void
admin_reject(struct ctx *c)
{
	judge(c, false);
}

/* ---- queues and backends ---- */

struct thing {
	const char *name;
	struct json_object *obj;
};

static int
read_queue(struct db *db, void *arg)
{
	struct thing *t = arg;
	struct db_stmt *st = db_prepare(db, SQL_QUEUE);
	struct json_object *o;
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, t->name);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : NOT_FOUND;
	json_object_put(t->obj);
	if ((t->obj = o = json_object_new_object()) == NULL)
		return DB_NOMEM;
	json_object_object_add(o, "name", json_object_new_string(db_text(st, 0, NULL)));
	json_object_object_add(o, "paused", json_object_new_boolean(db_i64(st, 1) != 0));
	json_object_object_add(o, "requires_approval", json_object_new_boolean(db_i64(st, 2) != 0));
	json_object_object_add(o, "price_per_job", jobjson_credits(db_i64(st, 3)));
	json_object_object_add(o, "price_per_second", jobjson_credits(db_i64(st, 4)));
	json_object_object_add(o, "timeout_s", json_object_new_int64(db_i64(st, 5)));
	json_object_object_add(o, "ttl_s", json_object_new_int64(db_i64(st, 6)));
	json_object_object_add(o, "max_attempts", json_object_new_int64(db_i64(st, 7)));
	json_object_object_add(o, "max_queued", json_object_new_int64(db_i64(st, 8)));
	json_object_object_add(o, "priority_aging_s", json_object_new_int64(db_i64(st, 9)));
	return DB_OK;
}

static int
read_backend(struct db *db, void *arg)
{
	struct thing *t = arg;
	struct db_stmt *st = db_prepare(db, SQL_BACKEND);
	struct json_object *o, *queues;
	const char *list;
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, t->name);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : NOT_FOUND;
	json_object_put(t->obj);
	if ((t->obj = o = json_object_new_object()) == NULL ||
	    (queues = json_object_new_array()) == NULL)
		return DB_NOMEM;
	json_object_object_add(o, "name", json_object_new_string(db_text(st, 0, NULL)));
	json_object_object_add(o, "type", json_object_new_string(db_text(st, 1, NULL)));
	json_object_object_add(o, "url", json_object_new_string(db_text(st, 2, NULL)));
	json_object_object_add(o, "queues", queues);
	for (list = db_text(st, 8, NULL); list != NULL && *list; ) {
		size_t n = strcspn(list, ",");
		json_object_array_add(queues, json_object_new_string_len(list, (int)n));
		list += n + (list[n] == ',');
	}
	json_object_object_add(o, "max_running", json_object_new_int64(db_i64(st, 3)));
	json_object_object_add(o, "prefetch", json_object_new_int64(db_i64(st, 4)));
	json_object_object_add(o, "draining", json_object_new_boolean(db_i64(st, 5) != 0));
	json_object_object_add(o, "healthy", json_object_new_boolean(db_i64(st, 6) != 0));
	json_object_object_add(o, "running", json_object_new_int64(db_i64(st, 7)));
	return DB_OK;
}

/* Set one flag through jobadmin, then answer the object as it is now. */
static void
set_flag(struct ctx *c, bool queue, bool value)
{
	struct thing t = { c->route.name, NULL };
	const char *what = queue ? "queue" : "backend";
	char actor[96], detail[64];
	struct db *db;
	int rc;

	if (!admin_only(c))
		return;
	snprintf(detail, sizeof detail, "No such %s.", what);
	if (c->route.name[0] == '\0' || (queue && strlen(c->route.name) > QUEUE_NAME_MAX)) {
		resp_problem(c->resp, P_NOT_FOUND, detail, NULL);
		return;
	}
	if ((db = app_db(c->app)) == NULL) {
		resp_db_error(c->resp, NULL, what, DB_GONE);
		return;
	}
	rc = queue ? jobadmin_queue_pause(db, t.name, value) : jobadmin_backend_drain(db, t.name, value);
	if (rc == JOBADMIN_NOT_FOUND) {
		resp_problem(c->resp, P_NOT_FOUND, detail, NULL);
		return;
	}
	if (rc != DB_OK) {
		resp_db_error(c->resp, db, what, rc < 0 ? rc : DB_ERR);
		return;
	}
	actor_of(c, actor, sizeof actor);
	if (queue)
		log_info(value ? "queue_paused" : "queue_resumed", "queue=%s actor=%s", t.name, actor);
	else
		log_info(value ? "backend_draining" : "backend_undrained", "backend=%s actor=%s",
		    t.name, actor);
	/* An undrained backend may take queued jobs at once. */
	if (!queue && !value && c->app->cfg->wake_socket[0])
		wake_send(c->app->cfg->wake_socket, NULL);
	rc = app_read(c->app, queue ? read_queue : read_backend, &t);
	if (rc == DB_OK)
		resp_json(c->resp, 200, t.obj);
	else if (rc == NOT_FOUND)        /* removed right after: say so */
		resp_problem(c->resp, P_NOT_FOUND, detail, NULL);
	else
		resp_db_error(c->resp, c->app->db, what, rc);
	json_object_put(t.obj);
}

void
admin_pause(struct ctx *c)
{
	set_flag(c, true, true);
}

void
admin_resume(struct ctx *c)
{
	set_flag(c, true, false);
}

void
admin_drain(struct ctx *c)
{
	set_flag(c, false, true);
}

void
admin_undrain(struct ctx *c)
{
	set_flag(c, false, false);
}

/* ---- credits ---- */

/* The amount: a decimal string ("12.5", at most 6 decimals) or an integer,
 * more than 0. 0, or -1 when it is not one. */
static int
parse_amount(struct json_object *v, int64_t *micro)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t n = json_object_get_int64(v);
		if (n <= 0 || n > INT64_MAX / GQ_MICRO)
			return -1;
		*micro = n * GQ_MICRO;
		return 0;
	}
	if (ledger_parse_credits(json_object_get_string(v), micro) < 0 || *micro <= 0)
		return -1;
	return 0;
}

void
admin_credits(struct ctx *c)
{
	static const struct field fields[] = {
		{ "user", 64, true, false },
		{ "amount", 32, true, true },
		{ "reason", 256, false, false },
	};
	struct jobadmin_grant g = { 0 };
	struct json_object *root = NULL, *amount, *o = NULL, *credits;
	char actor[96];
	struct db *db;
	int rc;

	if (!admin_only(c))
		return;
	if (read_fields(c, &root, fields, 3, false) < 0)
		goto out;
	json_object_object_get_ex(root, "amount", &amount);
	if (parse_amount(amount, &g.amount) < 0) {
		struct json_object *errors = json_object_new_array();
		if (errors != NULL)
			problem_error_add(errors, "amount",
			    "must be more than 0 credits, with at most 6 decimals");
		resp_problem(c->resp, P_INVALID_REQUEST, "The request has invalid fields.", errors);
		goto out;
	}
	if ((db = app_db(c->app)) == NULL) {
		resp_db_error(c->resp, NULL, "grant", DB_GONE);
		goto out;
	}
	actor_of(c, actor, sizeof actor);
	g.user = gq_json_str(root, "user");
	g.actor = actor;
	g.note = gq_json_str(root, "reason");
	rc = jobadmin_grant(db, &g);
	if (rc == JOBADMIN_NOT_FOUND) {
		resp_problem(c->resp, P_NOT_FOUND, "No such user.", NULL);
		goto out;
	}
	if (rc == JOBADMIN_TOO_MUCH) {
		resp_problem(c->resp, P_CONFLICT, "The balance would be out of range.", NULL);
		goto out;
	}
	if (rc != DB_OK) {
		resp_db_error(c->resp, db, "grant", rc < 0 ? rc : DB_ERR);
		goto out;
	}
	log_info("credits_granted", "user=%s micro=%lld actor=%s", log_v(g.user), (long long)g.amount, actor);
	if ((o = json_object_new_object()) == NULL || (credits = json_object_new_object()) == NULL) {
		c->resp->failed = true;
		goto out;
	}
	json_object_object_add(o, "user", json_object_new_string(g.user));
	json_object_object_add(o, "granted", jobjson_credits(g.amount));
	json_object_object_add(o, "credits", credits);
	json_object_object_add(credits, "available", jobjson_credits(g.balance));
	json_object_object_add(credits, "held", jobjson_credits(g.held));
	resp_json(c->resp, 200, o);
out:
	json_object_put(o);
	json_object_put(root);
}
