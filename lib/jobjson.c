#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "gqtime.h"
#include "jobjson.h"
#include "jsonutil.h"
#include "ledger.h"

/* The job row with, in the same round trip, two things that used to be
 * statements of their own: the ids of its parents in `after` order
 * (GROUP_CONCAT: at most DEPS_MAX UUIDs, far below group_concat_max_len),
 * and, only while it is queued, the number of queued jobs of its queue
 * ahead of it in claim order: priority, fair-share turn, seq (jobs_turn
 * index; sql/003_fairshare.sql). The count is O(position), as it was as a
 * statement of its own; j is a const table (jobs_id), so the subqueries see
 * its columns as constants and use the same index ranges. */
static const char SQL_JOB[] =
    "SELECT j.seq, j.id, j.user_id, j.queue, j.status, j.priority, j.created_at, "
    "j.started_at, j.finished_at, j.progress, j.attempts, j.max_attempts, b.name, "
    "j.error_code, j.error_message, j.error_retryable, j.cost_held, j.cost_charged, "
    "j.cost_refunded, j.metadata, j.regenerated_from, j.webhook_url, j.webhook_events, "
    "(SELECT GROUP_CONCAT(p.id ORDER BY d.pos SEPARATOR ',') FROM job_deps d "
    " JOIN jobs p ON p.seq = d.parent WHERE d.child = j.seq), "
    "CASE WHEN j.status = 'queued' THEN (SELECT COUNT(*) FROM jobs a "
    " WHERE a.queue = j.queue AND a.status = 'queued' AND (a.priority < j.priority "
    " OR (a.priority = j.priority AND (a.turn < j.turn "
    " OR (a.turn = j.turn AND a.seq < j.seq))))) END "
    "FROM jobs j LEFT JOIN backends b ON b.id = j.backend_id WHERE j.id = ?";
enum {
	COL_SEQ, COL_ID, COL_USER, COL_QUEUE, COL_STATUS, COL_PRIORITY, COL_CREATED,
	COL_STARTED, COL_FINISHED, COL_PROGRESS, COL_ATTEMPTS, COL_MAX_ATTEMPTS,
	COL_BACKEND, COL_ERR_CODE, COL_ERR_MESSAGE, COL_ERR_RETRYABLE, COL_HELD,
	COL_CHARGED, COL_REFUNDED, COL_METADATA, COL_REGENERATED, COL_WEBHOOK,
	COL_WEBHOOK_EVENTS, COL_AFTER, COL_AHEAD,
};

/* Each webhook message of the job and how its delivery went (SPEC §7). */
static const char SQL_WEBHOOKS[] =
    "SELECT id, event, state, attempts, last_status, last_error, created_at, finished_at "
    "FROM webhook_outbox WHERE job_seq = ? ORDER BY id LIMIT 100";

static const char SQL_OUTPUTS[] =
    "SELECT idx, kind, content_type, bytes, sha256, text, deleted_at "
    "FROM job_outputs WHERE job_seq = ? ORDER BY idx";

/* The newest successes of a queue, one index range per priority so the cost
 * stays flat however many rows the table holds. */
static const char SQL_RECENT_RUNS[] =
    "(SELECT seq, TIMESTAMPDIFF(MICROSECOND, started_at, finished_at) FROM jobs "
    " WHERE queue = ? AND status = 'succeeded' AND priority = 0 ORDER BY seq DESC LIMIT 21) "
    "UNION ALL (SELECT seq, TIMESTAMPDIFF(MICROSECOND, started_at, finished_at) FROM jobs "
    " WHERE queue = ? AND status = 'succeeded' AND priority = 1 ORDER BY seq DESC LIMIT 21) "
    "UNION ALL (SELECT seq, TIMESTAMPDIFF(MICROSECOND, started_at, finished_at) FROM jobs "
    " WHERE queue = ? AND status = 'succeeded' AND priority = 2 ORDER BY seq DESC LIMIT 21) "
    "UNION ALL (SELECT seq, TIMESTAMPDIFF(MICROSECOND, started_at, finished_at) FROM jobs "
    " WHERE queue = ? AND status = 'succeeded' AND priority = 3 ORDER BY seq DESC LIMIT 21)";

static const char SQL_SLOTS[] =
    "SELECT COALESCE(SUM(b.max_running), 0) FROM backends b "
    "JOIN backend_queues q ON q.backend_id = b.id "
    "WHERE q.queue = ? AND b.healthy = 1 AND b.draining = 0";

#define RECENT_RUNS 21
#define ETA_CACHE_SLOTS 16
#define ETA_CACHE_US (5 * 1000000LL)

/* Per-queue run statistics, kept a few seconds: every status read of a
 * queued job needs them and they change slowly. Process-local. */
static struct eta_entry {
	char queue[40];
	int64_t fetched_us;     /* gq_mono_us; 0 = empty */
	int64_t median_us;      /* < 0: no run history */
	int64_t slots;
} eta_cache[ETA_CACHE_SLOTS];

struct run_sample {
	int64_t seq;
	int64_t us;
};

static int
by_seq_desc(const void *a, const void *b)
{
	const struct run_sample *x = a, *y = b;
	return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

static int
by_us(const void *a, const void *b)
{
	const struct run_sample *x = a, *y = b;
	return x->us < y->us ? -1 : x->us > y->us ? 1 : 0;
}

static int
fetch_queue_stats(struct db *db, const char *queue, struct eta_entry *e)
{
	struct run_sample s[4 * RECENT_RUNS];
	struct db_stmt *st;
	size_t n = 0;
	int rc;

	if ((st = db_prepare(db, SQL_RECENT_RUNS)) == NULL)
		return db_last_status(db);
	for (unsigned i = 0; i < 4; i++)
		db_bind_str(st, i, queue);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while (n < sizeof s / sizeof s[0] && (rc = db_next(st)) == 1) {
		if (db_is_null(st, 1))
			continue;
		s[n].seq = db_i64(st, 0);
		s[n].us = db_i64(st, 1);
		n++;
	}
	if (rc < 0)
		return rc;
	/* The newest RECENT_RUNS over all priorities, then their median. */
	qsort(s, n, sizeof s[0], by_seq_desc);
	if (n > RECENT_RUNS)
		n = RECENT_RUNS;
	qsort(s, n, sizeof s[0], by_us);
	e->median_us = n ? s[n / 2].us : -1;

	if ((st = db_prepare(db, SQL_SLOTS)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, queue);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) < 0)
		return rc;
	e->slots = rc == 1 ? db_i64(st, 0) : 0;
	snprintf(e->queue, sizeof e->queue, "%s", queue);
	e->fetched_us = gq_mono_us();
	return DB_OK;
}

static int
queue_stats(struct db *db, const char *queue, struct eta_entry **out)
{
	int64_t now = gq_mono_us();
	struct eta_entry *oldest = &eta_cache[0];
	int rc;

	for (int i = 0; i < ETA_CACHE_SLOTS; i++) {
		struct eta_entry *e = &eta_cache[i];
		if (e->fetched_us && strcmp(e->queue, queue) == 0) {
			if (now - e->fetched_us < ETA_CACHE_US) {
				*out = e;
				return DB_OK;
			}
			oldest = e;
			break;
		}
		if (e->fetched_us < oldest->fetched_us)
			oldest = e;
	}
	oldest->fetched_us = 0;
	if ((rc = fetch_queue_stats(db, queue, oldest)) != DB_OK)
		return rc;
	*out = oldest;
	return DB_OK;
}

/* position: 1 + the queued jobs ahead (SQL_JOB's last column). */
static int
add_position(struct db *db, struct json_object *o, const char *queue, int64_t position)
{
	struct eta_entry *e;
	int rc;

	json_object_object_add(o, "queue_position", json_object_new_int64(position));

	if ((rc = queue_stats(db, queue, &e)) != DB_OK)
		return rc;
	if (e->median_us < 0) {
		json_object_object_add(o, "eta_s", NULL);
	} else {
		/* Whole seconds, rounded up. */
		int64_t per_slot = (e->slots > 0 ? e->slots : 1) * 1000000;
		int64_t work = (e->median_us > 0 ? e->median_us : 0) * position;
		json_object_object_add(o, "eta_s",
		    json_object_new_int64((work + per_slot - 1) / per_slot));
	}
	return DB_OK;
}

struct json_object *
jobjson_credits(int64_t micro)
{
	char text[32];

	ledger_format_credits(text, micro);
	return json_object_new_double_s((double)micro / (double)GQ_MICRO, text);
}

static struct json_object *
time_or_null(struct db_stmt *st, unsigned col)
{
	char text[GQ_RFC3339_LEN];

	if (db_is_null(st, col))
		return NULL;
	gq_time_rfc3339(text, db_time_us(st, col));
	return json_object_new_string(text);
}

static int
add_outputs(struct db *db, struct json_object *o, const char *base, const char *id,
    int64_t seq, bool query)
{
	struct json_object *list = json_object_new_array();
	struct db_stmt *st;
	int rc = DB_OK;

	if (list == NULL)
		return DB_NOMEM;
	json_object_object_add(o, "outputs", list);
	if (!query)
		return DB_OK;
	if ((st = db_prepare(db, SQL_OUTPUTS)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		struct json_object *out = json_object_new_object();
		const char *kind = db_text(st, 1, NULL);
		int64_t idx = db_i64(st, 0);
		char url[2300];

		if (out == NULL)
			return DB_NOMEM;
		json_object_array_add(list, out);
		json_object_object_add(out, "index", json_object_new_int64(idx));
		if (kind != NULL && strcmp(kind, "text") == 0) {
			size_t len;
			const char *text = db_text(st, 5, &len);
			json_object_object_add(out, "text",
			    json_object_new_string_len(text ? text : "", (int)len));
			continue;
		}
		if (db_is_null(st, 6)) {
			snprintf(url, sizeof url, "%s/v1/jobs/%s/outputs/%" PRId64, base, id, idx);
			json_object_object_add(out, "url", json_object_new_string(url));
		} else {
			/* Retention removed the file; the row says when. */
			json_object_object_add(out, "url", NULL);
			json_object_object_add(out, "deleted_at", time_or_null(st, 6));
		}
		json_object_object_add(out, "content_type", gq_json_str_or_null(db_text(st, 2, NULL)));
		json_object_object_add(out, "bytes",
		    db_is_null(st, 3) ? NULL : json_object_new_int64(db_i64(st, 3)));
		json_object_object_add(out, "sha256", gq_json_str_or_null(db_text(st, 4, NULL)));
	}
	return rc < 0 ? rc : DB_OK;
}

static struct json_object *
error_object(struct db_stmt *st)
{
	struct json_object *e;

	if (db_is_null(st, COL_ERR_CODE))
		return NULL;
	e = json_object_new_object();
	if (e == NULL)
		return NULL;
	json_object_object_add(e, "code", json_object_new_string(db_text(st, COL_ERR_CODE, NULL)));
	json_object_object_add(e, "message", gq_json_str_or_null(db_text(st, COL_ERR_MESSAGE, NULL)));
	json_object_object_add(e, "retryable",
	    json_object_new_boolean(db_i64(st, COL_ERR_RETRYABLE) != 0));
	return e;
}

static struct json_object *
metadata_object(struct db_stmt *st)
{
	size_t len;
	const char *text = db_text(st, COL_METADATA, &len);

	/* Written by the handler from a checked object; parse it back the
	 * strict way all the same. */
	return text ? gq_json_parse(text, len, GQ_JSON_MAX_DEPTH, NULL) : NULL;
}

static struct json_object *
progress_number(struct db_stmt *st)
{
	char text[32];
	double p;

	if (db_is_null(st, COL_PROGRESS))
		return NULL;
	p = db_double(st, COL_PROGRESS);
	if (!(p >= 0.0))
		p = 0.0;
	if (p > 1.0)
		p = 1.0;
	snprintf(text, sizeof text, "%.4g", p);
	return json_object_new_double_s(p, text);
}

static struct json_object *
events_array(const char *list)
{
	struct json_object *a = json_object_new_array();
	char buf[64], *save = NULL;

	snprintf(buf, sizeof buf, "%s", list ? list : "");
	for (char *t = strtok_r(buf, ",", &save); t != NULL && a != NULL; t = strtok_r(NULL, ",", &save))
		json_object_array_add(a, json_object_new_string(t));
	return a;
}

/* "after": the parents' ids, SQL_JOB's comma-separated list (UUIDs have
 * no commas), in `after` order. */
static int
add_after(struct json_object *list, const char *ids)
{
	const char *p = ids, *comma;
	struct json_object *id;
	size_t len;

	while (p != NULL && *p != '\0') {
		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		id = json_object_new_string_len(p, (int)len);
		if (id == NULL || json_object_array_add(list, id) != 0) {
			json_object_put(id);
			return DB_NOMEM;
		}
		p = comma ? comma + 1 : NULL;
	}
	return DB_OK;
}

/* "webhook": null, or its URL, events and every delivery with its outcome. */
static int
add_webhook(struct db *db, struct json_object *o, int64_t seq, const char *url,
    const char *events)
{
	struct json_object *w, *list;
	struct db_stmt *st;
	int rc;

	if (url == NULL) {
		json_object_object_add(o, "webhook", NULL);
		return DB_OK;
	}
	if ((w = json_object_new_object()) == NULL)
		return DB_NOMEM;
	json_object_object_add(o, "webhook", w);
	json_object_object_add(w, "url", json_object_new_string(url));
	json_object_object_add(w, "events", events_array(events));
	if ((list = json_object_new_array()) == NULL)
		return DB_NOMEM;
	json_object_object_add(w, "deliveries", list);
	if ((st = db_prepare(db, SQL_WEBHOOKS)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		struct json_object *d = json_object_new_object();
		char msg[32];

		if (d == NULL)
			return DB_NOMEM;
		json_object_array_add(list, d);
		snprintf(msg, sizeof msg, "msg_%lld", (long long)db_i64(st, 0));
		json_object_object_add(d, "id", json_object_new_string(msg));
		json_object_object_add(d, "event", json_object_new_string(db_text(st, 1, NULL)));
		json_object_object_add(d, "state", json_object_new_string(db_text(st, 2, NULL)));
		json_object_object_add(d, "attempts", json_object_new_int64(db_i64(st, 3)));
		json_object_object_add(d, "last_status",
		    db_is_null(st, 4) ? NULL : json_object_new_int64(db_i64(st, 4)));
		json_object_object_add(d, "last_error", gq_json_str_or_null(db_text(st, 5, NULL)));
		json_object_object_add(d, "created_at", time_or_null(st, 6));
		json_object_object_add(d, "finished_at", time_or_null(st, 7));
	}
	return rc < 0 ? rc : DB_OK;
}

int
jobjson_load(struct db *db, const char *base_url, const char *id,
    uint64_t owner, struct json_object **out)
{
	struct json_object *o = NULL, *cost, *urls, *after;
	char base[1024], url[1200], queue[40], hook_events[64];
	char *hook_url = NULL;
	struct db_stmt *st;
	const char *status;
	int64_t seq, priority, position = 0;
	bool is_queued, has_outputs;
	size_t blen;
	int rc;

	*out = NULL;
	snprintf(base, sizeof base, "%s", base_url ? base_url : "");
	blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		base[--blen] = '\0';

	if ((st = db_prepare(db, SQL_JOB)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : JOBJSON_NOT_FOUND;
	if (owner != 0 && (uint64_t)db_i64(st, COL_USER) != owner)
		return JOBJSON_NOT_FOUND;

	if ((o = json_object_new_object()) == NULL)
		return DB_NOMEM;
	seq = db_i64(st, COL_SEQ);
	priority = db_i64(st, COL_PRIORITY);
	status = db_text(st, COL_STATUS, NULL);
	is_queued = strcmp(status, "queued") == 0;
	/* Only a success has outputs: genqd writes them in the transaction
	 * that makes the job succeeded (daemon/finish.c, settle_successes),
	 * nothing moves a job out of succeeded, and retention marks them
	 * deleted_at rather than removing the rows. Any other status needs no
	 * query for its empty list. */
	has_outputs = strcmp(status, "succeeded") == 0;
	snprintf(queue, sizeof queue, "%s", db_text(st, COL_QUEUE, NULL));

	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "queue", json_object_new_string(queue));
	json_object_object_add(o, "status", json_object_new_string(status));
	json_object_object_add(o, "priority", json_object_new_int64(priority));
	json_object_object_add(o, "created_at", time_or_null(st, COL_CREATED));
	json_object_object_add(o, "started_at", time_or_null(st, COL_STARTED));
	json_object_object_add(o, "finished_at", time_or_null(st, COL_FINISHED));
	json_object_object_add(o, "queue_position", NULL);
	json_object_object_add(o, "eta_s", NULL);
	json_object_object_add(o, "progress", progress_number(st));
	json_object_object_add(o, "attempts", json_object_new_int64(db_i64(st, COL_ATTEMPTS)));
	json_object_object_add(o, "max_attempts", json_object_new_int64(db_i64(st, COL_MAX_ATTEMPTS)));
	json_object_object_add(o, "backend", gq_json_str_or_null(db_text(st, COL_BACKEND, NULL)));
	json_object_object_add(o, "error", error_object(st));
	json_object_object_add(o, "outputs", NULL);     /* filled below, in place */

	cost = json_object_new_object();
	if (cost == NULL) {
		rc = DB_NOMEM;
		goto out;
	}
	json_object_object_add(o, "cost", cost);
	json_object_object_add(cost, "held", jobjson_credits(db_i64(st, COL_HELD)));
	json_object_object_add(cost, "charged", jobjson_credits(db_i64(st, COL_CHARGED)));
	json_object_object_add(cost, "refunded", jobjson_credits(db_i64(st, COL_REFUNDED)));

	urls = json_object_new_object();
	if (urls == NULL) {
		rc = DB_NOMEM;
		goto out;
	}
	json_object_object_add(o, "urls", urls);
	snprintf(url, sizeof url, "%s/v1/jobs/%s", base, id);
	json_object_object_add(urls, "self", json_object_new_string(url));
	snprintf(url, sizeof url, "%s/v1/jobs/%s/cancel", base, id);
	json_object_object_add(urls, "cancel", json_object_new_string(url));
	snprintf(url, sizeof url, "%s/job.html?id=%s", base, id);
	json_object_object_add(urls, "page", json_object_new_string(url));

	json_object_object_add(o, "metadata", metadata_object(st));
	json_object_object_add(o, "regenerated_from",
	    gq_json_str_or_null(db_text(st, COL_REGENERATED, NULL)));
	if ((after = json_object_new_array()) == NULL) {
		rc = DB_NOMEM;
		goto out;
	}
	json_object_object_add(o, "after", after);
	if ((rc = add_after(after, db_text(st, COL_AFTER, NULL))) != DB_OK)
		goto out;
	if (is_queued)
		position = db_i64(st, COL_AHEAD) + 1;

	snprintf(hook_events, sizeof hook_events, "%s",
	    db_is_null(st, COL_WEBHOOK_EVENTS) ? "" : db_text(st, COL_WEBHOOK_EVENTS, NULL));
	if (!db_is_null(st, COL_WEBHOOK) &&
	    (hook_url = strdup(db_text(st, COL_WEBHOOK, NULL))) == NULL) {
		rc = DB_NOMEM;
		goto out;
	}

	/* Every column of st is copied; other statements may run now. */
	if ((rc = add_outputs(db, o, base, id, seq, has_outputs)) != DB_OK)
		goto out;
	if ((rc = add_webhook(db, o, seq, hook_url, hook_events)) != DB_OK)
		goto out;
	if (is_queued && (rc = add_position(db, o, queue, position)) != DB_OK)
		goto out;
	*out = o;
	o = NULL;
	rc = DB_OK;
out:
	free(hook_url);
	json_object_put(o);
	return rc;
}
