/* regenerate: POST /v1/jobs/{id}/regenerate. A new job in the original's
 * queue with the original's input, each top-level key of the optional
 * {"input_overrides": {...}} replacing the input's (for a ComfyUI workflow:
 * whole nodes) and the original's `after` (so parent output references in
 * the input resolve as before). The new job names the original in
 * regenerated_from and goes
 * through the same admission as POST /v1/jobs (submit_admit); its limits
 * and priority are the queue's and the tier's, like a fresh submit's.
 * Another user's job answers 404 like an unknown id. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "app.h"
#include "db.h"
#include "jobspec.h"
#include "jsonutil.h"

static const char SQL_ORIGINAL[] =
    "SELECT user_id, queue, input, seq FROM jobs WHERE id = ?";
/* Its `after`, in order: the new job waits for the same parents, so the
 * input's parent output references still point where they did. */
static const char SQL_PARENTS[] =
    "SELECT p.id FROM job_deps d JOIN jobs p ON p.seq = d.parent WHERE d.child = ? "
    "ORDER BY d.pos";

#define NOT_FOUND 1

struct original {
	struct ctx *c;
	char queue[SPEC_QUEUE_MAX + 1];
	struct json_object *input;      /* owned */
	char after[SPEC_AFTER_MAX][GQ_UUID_LEN];
	size_t nafter;
};

static int
read_parents(struct db *db, struct original *o, int64_t seq)
{
	struct db_stmt *st = db_prepare(db, SQL_PARENTS);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	o->nafter = 0;
	while ((rc = db_next(st)) == 1 && o->nafter < SPEC_AFTER_MAX)
		snprintf(o->after[o->nafter++], GQ_UUID_LEN, "%s", db_text(st, 0, NULL));
	return rc < 0 ? rc : DB_OK;
}

static int
read_original(struct db *db, void *arg)
{
	struct original *o = arg;
	struct db_stmt *st = db_prepare(db, SQL_ORIGINAL);
	const char *text;
	size_t len;
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, o->c->route.job_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : NOT_FOUND;
	if (!o->c->caller.admin && (uint64_t)db_i64(st, 0) != o->c->caller.user_id)
		return NOT_FOUND;
	snprintf(o->queue, sizeof o->queue, "%s", db_text(st, 1, NULL));
	text = db_text(st, 2, &len);
	json_object_put(o->input);
	o->input = gq_json_parse(text ? text : "", len, GQ_JSON_MAX_DEPTH, NULL);
	if (o->input == NULL || !json_object_is_type(o->input, json_type_object))
		return DB_ERR;      /* the handler stored it checked: cannot happen */
	return read_parents(db, o, db_i64(st, 3));
}

/* The overrides of the body, or NULL for none; -1 with the answer set. */
static int
read_overrides(struct ctx *c, struct buf *body, struct json_object **root,
    struct json_object **overrides)
{
	struct json_object *errors;
	const char *why = NULL;
	bool bad = false;

	*overrides = NULL;
	if (submit_read_body(c, body) < 0)
		return -1;
	if (body->len == 0)
		return 0;
	if (!http_content_type_is_json(req_param(c->req, "CONTENT_TYPE"))) {
		resp_problem(c->resp, P_UNSUPPORTED_MEDIA_TYPE,
		    "Send the body as Content-Type: application/json.", NULL);
		return -1;
	}
	if ((*root = gq_json_parse(body->data, body->len, GQ_JSON_MAX_DEPTH, &why)) == NULL) {
		resp_problem(c->resp, P_INVALID_JSON, why, NULL);
		return -1;
	}
	if ((errors = json_object_new_array()) == NULL) {
		c->resp->failed = true;
		return -1;
	}
	if (!json_object_is_type(*root, json_type_object)) {
		problem_error_add(errors, "", "must be an object");
		bad = true;
	} else {
		json_object_object_foreach(*root, key, val) {
			if (strcmp(key, "input_overrides") != 0) {
				problem_error_add(errors, key, "unknown field");
				bad = true;
			} else if (!json_object_is_type(val, json_type_object)) {
				problem_error_add(errors, key, "must be an object");
				bad = true;
			} else {
				*overrides = val;
			}
		}
	}
	if (bad) {
		resp_problem(c->resp, P_INVALID_REQUEST, "The request has invalid fields.", errors);
		return -1;
	}
	json_object_put(errors);
	return 0;
}

void
regenerate_job(struct ctx *c)
{
	struct original orig = { .c = c };
	struct json_object *root = NULL, *overrides = NULL, *errors = NULL;
	struct job_spec spec;
	struct buf body;
	int rc;

	buf_init(&body, 0);
	if (c->route.job_id[0] == '\0') {
		resp_problem(c->resp, P_NOT_FOUND, "No such job.", NULL);
		goto out;
	}
	if (read_overrides(c, &body, &root, &overrides) < 0)
		goto out;
	rc = app_read(c->app, read_original, &orig);
	if (rc == NOT_FOUND) {
		resp_problem(c->resp, P_NOT_FOUND, "No such job.", NULL);
		goto out;
	}
	if (rc != DB_OK) {
		resp_db_error(c->resp, c->app->db, "regenerate", rc);
		goto out;
	}
	if (overrides != NULL) {
		json_object_object_foreach(overrides, key, val) {
			if (json_object_object_add(orig.input, key, json_object_get(val)) != 0) {
				c->resp->failed = true;
				goto out;
			}
		}
	}

	/* A fresh submit's spec: queue, input and after are carried over. */
	memset(&spec, 0, sizeof spec);
	spec.queue = orig.queue;
	spec.input = orig.input;
	spec.priority = -1;
	for (size_t i = 0; i < orig.nafter; i++)
		spec.after[spec.nafter++] = orig.after[i];
	/* Overrides may bring parent output references of their own. */
	if ((errors = json_object_new_array()) == NULL) {
		c->resp->failed = true;
		goto out;
	}
	spec_check_refs(&spec, errors);
	if (json_object_array_length(errors) > 0) {
		resp_problem(c->resp, P_INVALID_REQUEST, "The request has invalid fields.", errors);
		errors = NULL;      /* resp_problem took it */
		goto out;
	}
	submit_admit(c, &spec, c->route.job_id);
out:
	json_object_put(errors);
	json_object_put(orig.input);
	json_object_put(root);
	buf_free(&body);
}
