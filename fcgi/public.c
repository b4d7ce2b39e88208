/* public: the job page's view of one job, with no API key (SPEC §10).
 * The job id (a UUIDv4, 122 random bits) is the capability: knowing it shows
 * that one job's progress, error and outputs, never its owner, input,
 * metadata, cost or webhook. The view is a whitelist copied out of the
 * authenticated job object (lib/jobjson), so a field added there stays
 * private until it is listed here. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "jobjson.h"

/* The fields of the job object the page may see. */
static const char *const JOB_FIELDS[] = {
	"id", "queue", "status", "created_at", "started_at", "finished_at",
	"queue_position", "eta_s", "progress", "attempts", NULL
};
static const char *const ERROR_FIELDS[] = { "code", "message", NULL };
/* "url" is rewritten to the public download route. */
static const char *const OUTPUT_FIELDS[] = {
	"index", "content_type", "bytes", "text", NULL
};

/* Copy the listed keys of from that are present (null values included). */
static void
copy_fields(struct json_object *to, struct json_object *from, const char *const *keys)
{
	struct json_object *v;

	for (; *keys; keys++)
		if (json_object_object_get_ex(from, *keys, &v))
			json_object_object_add(to, *keys, json_object_get(v));
}

/* One output entry; NULL when out of memory. */
static struct json_object *
public_output_entry(struct json_object *full, const char *base, const char *id)
{
	struct json_object *o = json_object_new_object(), *url;
	char link[2300];

	if (o == NULL)
		return NULL;
	copy_fields(o, full, OUTPUT_FIELDS);
	/* Files have a url (null once retention removed them); text has none. */
	if (json_object_object_get_ex(full, "url", &url)) {
		if (url == NULL) {
			json_object_object_add(o, "url", NULL);
		} else {
			snprintf(link, sizeof link, "%s/v1/public/jobs/%s/outputs/%d", base, id,
			    json_object_get_int(json_object_object_get(full, "index")));
			json_object_object_add(o, "url", json_object_new_string(link));
		}
	}
	return o;
}

/* The reduced view of a full job object; NULL when out of memory. */
static struct json_object *
public_view(struct json_object *full, const char *base)
{
	struct json_object *o = json_object_new_object(), *err, *outs, *list;
	const char *id = json_object_get_string(json_object_object_get(full, "id"));

	if (o == NULL)
		return NULL;
	copy_fields(o, full, JOB_FIELDS);
	err = json_object_object_get(full, "error");
	if (err != NULL) {
		struct json_object *e = json_object_new_object();
		if (e == NULL)
			goto fail;
		json_object_object_add(o, "error", e);
		copy_fields(e, err, ERROR_FIELDS);
	} else {
		json_object_object_add(o, "error", NULL);
	}
	if ((list = json_object_new_array()) == NULL)
		goto fail;
	json_object_object_add(o, "outputs", list);
	outs = json_object_object_get(full, "outputs");
	for (size_t i = 0, n = outs ? json_object_array_length(outs) : 0; i < n; i++) {
		struct json_object *e = public_output_entry(json_object_array_get_idx(outs, i),
		    base, id);
		if (e == NULL || json_object_array_add(list, e) != 0) {
			json_object_put(e);
			goto fail;
		}
	}
	return o;
fail:
	json_object_put(o);
	return NULL;
}

struct load {
	struct ctx *c;
	struct json_object *job;
};

static int
load_job(struct db *db, void *arg)
{
	struct load *l = arg;

	/* Owner 0: the id alone selects the job. */
	return jobjson_load(db, l->c->app->cfg->base_url, l->c->route.job_id, 0, &l->job);
}

void
public_job(struct ctx *c)
{
	struct load l = { c, NULL };
	struct json_object *view = NULL;
	int rc;

	if (c->route.job_id[0] == '\0') {
		resp_problem(c->resp, P_NOT_FOUND, "No such job.", NULL);
		return;
	}
	rc = app_read(c->app, load_job, &l);
	if (rc == JOBJSON_NOT_FOUND) {
		resp_problem(c->resp, P_NOT_FOUND, "No such job.", NULL);
	} else if (rc != DB_OK) {
		resp_db_error(c->resp, c->app->db, "public_job", rc);
	} else if ((view = public_view(l.job, c->app->cfg->base_url)) == NULL) {
		c->resp->failed = true;
	} else {
		/* The page polls; never serve it a stale status. */
		resp_header(c->resp, "Cache-Control", "no-store");
		resp_json(c->resp, 200, view);
	}
	json_object_put(view);
	json_object_put(l.job);
}

void
public_output(struct ctx *c)
{
	/* jobs_output limits the answer to the caller's jobs unless the caller
	 * is no one (user 0, not admin): here the id is the whole check. */
	memset(&c->caller, 0, sizeof c->caller);
	jobs_output(c);
}
