/* listing: GET /v1/jobs, the caller's jobs (an admin key: everyone's),
 * newest first. Filters status, queue, created_after; limit 1..100; and an
 * opaque cursor. Pages are keyset pages on jobs.seq (seq < the cursor's),
 * never OFFSET, so a page costs the same however deep it is. The query
 * string is percent-decoded by libcurl; an unknown or repeated parameter
 * is an error, not ignored. */
#include "autoconf.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "jobstatus.h"
#include "gqtime.h"
#include "jobjson.h"

/* One statement per shape so each uses its index: jobs_user (user_id,
 * status, seq) for a user, the primary key for an admin's listing. The
 * optional filters are "? IS NULL OR ...". One row more than the page
 * tells whether another page follows. */
static const char SQL_USER_STATUS[] =
    "SELECT seq, id FROM jobs WHERE user_id = ? AND status = ? AND seq < ? "
    "AND (? IS NULL OR queue = ?) AND (? IS NULL OR created_at > ?) "
    "ORDER BY seq DESC LIMIT ?";
static const char SQL_USER[] =
    "SELECT seq, id FROM jobs WHERE user_id = ? AND seq < ? "
    "AND (? IS NULL OR queue = ?) AND (? IS NULL OR created_at > ?) "
    "ORDER BY seq DESC LIMIT ?";
static const char SQL_ALL_STATUS[] =
    "SELECT seq, id FROM jobs WHERE status = ? AND seq < ? "
    "AND (? IS NULL OR queue = ?) AND (? IS NULL OR created_at > ?) "
    "ORDER BY seq DESC LIMIT ?";
static const char SQL_ALL[] =
    "SELECT seq, id FROM jobs WHERE seq < ? "
    "AND (? IS NULL OR queue = ?) AND (? IS NULL OR created_at > ?) "
    "ORDER BY seq DESC LIMIT ?";

#define QUERY_MAX 2048          /* bytes of QUERY_STRING */
#define VALUE_MAX 64            /* bytes of one decoded value */
#define LIMIT_DEFAULT 20
#define LIMIT_MAX 100
#define CURSOR_BYTES 8


static const char B64URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
listing_cursor(uint64_t seq, char out[LISTING_CURSOR_LEN])
{
	unsigned char b[CURSOR_BYTES];
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;

	for (int i = 0; i < CURSOR_BYTES; i++)
		b[i] = (unsigned char)(seq >> (8 * (CURSOR_BYTES - 1 - i)));
	for (int i = 0; i < CURSOR_BYTES; i++) {
		acc = (acc << 8) | b[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[n++] = B64URL[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[n++] = B64URL[(acc << (6 - bits)) & 63];
	out[n] = '\0';
}

int
listing_cursor_parse(const char *text, uint64_t *seq)
{
	char again[LISTING_CURSOR_LEN];
	uint64_t v = 0;
	size_t len = strlen(text);

	if (len != LISTING_CURSOR_LEN - 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		const char *p = strchr(B64URL, text[i]);
		if (text[i] == '\0' || p == NULL)
			return -1;
		/* 11 characters carry 66 bits: the top 64 are the seq. */
		if (i < len - 1)
			v = (v << 6) | (uint64_t)(p - B64URL);
		else
			v = (v << 4) | (uint64_t)((p - B64URL) >> 2);
	}
	if (v == 0 || v > (uint64_t)INT64_MAX)
		return -1;
	/* Only the one spelling listing_cursor writes (unused bits zero). */
	listing_cursor(v, again);
	if (strcmp(again, text) != 0)
		return -1;
	*seq = v;
	return 0;
}

/* The checked parameters. */
struct params {
	const char *status;         /* one of job_statuses, or NULL */
	char queue[VALUE_MAX + 1];  /* "" for any */
	char created_after[GQ_SQLTIME_LEN];  /* "" for any */
	int64_t limit;
	uint64_t before;            /* seq < before */
	bool seen[5];
};

enum { PARAM_STATUS, PARAM_QUEUE, PARAM_CREATED_AFTER, PARAM_LIMIT, PARAM_CURSOR };
static const char *const PARAM_NAMES[] = {
	"status", "queue", "created_after", "limit", "cursor", NULL
};

static bool
parse_limit(const char *v, int64_t *out)
{
	int64_t n = 0;
	size_t len = strlen(v);

	if (len == 0 || len > 3 || (len > 1 && v[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		n = n * 10 + (v[i] - '0');
	}
	if (n < 1 || n > LIMIT_MAX)
		return false;
	*out = n;
	return true;
}

/* Check one decoded name=value pair; problems go to errors. */
static void
take_param(struct params *p, const char *name, const char *value, struct json_object *errors)
{
	int64_t us;
	int which = -1, status;

	for (int i = 0; PARAM_NAMES[i]; i++)
		if (strcmp(name, PARAM_NAMES[i]) == 0)
			which = i;
	if (which < 0) {
		problem_error_add(errors, "query", "unknown parameter");
		return;
	}
	if (p->seen[which]) {
		problem_error_add(errors, name, "given more than once");
		return;
	}
	p->seen[which] = true;
	switch (which) {
	case PARAM_STATUS:
		if ((status = job_status_index(value)) >= 0)
			p->status = job_statuses[status];
		if (p->status == NULL)
			problem_error_add(errors, "status",
			    "must be one of held, waiting, queued, running, succeeded, failed, "
			    "canceled, expired");
		break;
	case PARAM_QUEUE:
		if (*value == '\0' || strlen(value) > 32)
			problem_error_add(errors, "queue", "must be a queue name (1 to 32 bytes)");
		else
			snprintf(p->queue, sizeof p->queue, "%s", value);
		break;
	case PARAM_CREATED_AFTER:
		if (gq_time_parse_rfc3339(value, &us) != 0)
			problem_error_add(errors, "created_after", "must be an RFC 3339 time");
		else
			gq_time_sql(p->created_after, us);
		break;
	case PARAM_LIMIT:
		if (!parse_limit(value, &p->limit))
			problem_error_add(errors, "limit", "must be an integer from 1 to 100");
		break;
	case PARAM_CURSOR:
		if (listing_cursor_parse(value, &p->before) != 0)
			problem_error_add(errors, "cursor", "is not a cursor this API gave");
		break;
	}
}

/* Percent-decode s[0..len) with libcurl into out (VALUE_MAX). false when
 * it does not decode, is too long or holds a NUL byte. */
static bool
unescape(const char *s, size_t len, char out[VALUE_MAX + 1])
{
	int outlen = 0;
	char *d;
	bool ok;

	if (len > 3 * VALUE_MAX)
		return false;
	/* libcurl passes a bad escape ("%zz") through; refuse it instead. */
	for (size_t i = 0; i < len; i++)
		if (s[i] == '%' && (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
		    !isxdigit((unsigned char)s[i + 2])))
			return false;
	if ((d = curl_easy_unescape(NULL, s, (int)len, &outlen)) == NULL)
		return false;
	ok = outlen >= 0 && (size_t)outlen <= VALUE_MAX && memchr(d, '\0', (size_t)outlen) == NULL;
	if (ok) {
		memcpy(out, d, (size_t)outlen);
		out[outlen] = '\0';
	}
	curl_free(d);
	return ok;
}

/* Parse QUERY_STRING into p. Returns 0; -1 with errors filled. */
static int
parse_query(const char *qs, struct params *p, struct json_object *errors)
{
	char name[VALUE_MAX + 1], value[VALUE_MAX + 1];

	memset(p, 0, sizeof *p);
	p->limit = LIMIT_DEFAULT;
	p->before = (uint64_t)INT64_MAX;
	if (qs == NULL)
		qs = "";
	if (strlen(qs) > QUERY_MAX) {
		problem_error_add(errors, "query", "is too long");
		return -1;
	}
	while (*qs) {
		size_t n = strcspn(qs, "&");
		const char *eq = memchr(qs, '=', n);

		if (n == 0) {
			qs++;
			continue;
		}
		if (eq == NULL) {
			problem_error_add(errors, "query", "every parameter needs name=value");
		} else if (!unescape(qs, (size_t)(eq - qs), name) ||
		    !unescape(eq + 1, n - (size_t)(eq - qs) - 1, value)) {
			problem_error_add(errors, "query", "a parameter is malformed or too long");
		} else {
			take_param(p, name, value, errors);
		}
		qs += n;
	}
	return json_object_array_length(errors) > 0 ? -1 : 0;
}

struct listing {
	struct ctx *c;
	const struct params *p;
	struct json_object *jobs;
	uint64_t last_seq;          /* of the last job in the page */
	bool more;
};

/* Bind the shared tail: seq bound, queue, created_after, limit + 1. */
static void
bind_tail(struct db_stmt *st, unsigned i, const struct params *p)
{
	const char *queue = p->queue[0] ? p->queue : NULL;
	const char *after = p->created_after[0] ? p->created_after : NULL;

	db_bind_i64(st, i, (int64_t)p->before);
	db_bind_str(st, i + 1, queue);
	db_bind_str(st, i + 2, queue);
	db_bind_str(st, i + 3, after);
	db_bind_str(st, i + 4, after);
	db_bind_i64(st, i + 5, p->limit + 1);
}

static int
read_page(struct db *db, void *arg)
{
	struct listing *l = arg;
	const struct params *p = l->p;
	bool admin = l->c->caller.admin;
	char ids[LIMIT_MAX][GQ_UUID_LEN];
	uint64_t seqs[LIMIT_MAX];
	struct db_stmt *st;
	unsigned i = 0;
	int64_t n = 0;
	int rc;

	st = db_prepare(db, admin ? (p->status ? SQL_ALL_STATUS : SQL_ALL)
	    : (p->status ? SQL_USER_STATUS : SQL_USER));
	if (st == NULL)
		return db_last_status(db);
	if (!admin)
		db_bind_i64(st, i++, (int64_t)l->c->caller.user_id);
	if (p->status)
		db_bind_str(st, i++, p->status);
	bind_tail(st, i, p);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	l->more = false;
	while ((rc = db_next(st)) == 1) {
		if (n == p->limit) {
			l->more = true;
			continue;
		}
		seqs[n] = (uint64_t)db_i64(st, 0);
		snprintf(ids[n], sizeof ids[n], "%s", db_text(st, 1, NULL));
		n++;
	}
	if (rc < 0)
		return rc;

	/* Render each job as GET /v1/jobs/{id} does (this may run again). */
	json_object_put(l->jobs);
	if ((l->jobs = json_object_new_array()) == NULL)
		return DB_NOMEM;
	for (int64_t k = 0; k < n; k++) {
		struct json_object *job = NULL;

		rc = jobjson_load(db, l->c->app->cfg->base_url, ids[k], 0, &job);
		if (rc == JOBJSON_NOT_FOUND)
			continue;       /* removed since the page was read */
		if (rc != DB_OK)
			return rc;
		if (json_object_array_add(l->jobs, job) != 0) {
			json_object_put(job);
			return DB_NOMEM;
		}
	}
	if (n > 0)
		l->last_seq = seqs[n - 1];
	return DB_OK;
}

void
listing_jobs(struct ctx *c)
{
	struct json_object *errors = json_object_new_array(), *o = NULL;
	struct params p;
	struct listing l = { c, &p, NULL, 0, false };
	char cursor[LISTING_CURSOR_LEN];
	int rc;

	if (errors == NULL) {
		c->resp->failed = true;
		goto out;
	}
	if (parse_query(req_param(c->req, "QUERY_STRING"), &p, errors) < 0) {
		resp_problem(c->resp, P_INVALID_REQUEST, "The query has invalid parameters.", errors);
		errors = NULL;
		goto out;
	}
	rc = app_read(c->app, read_page, &l);
	if (rc != DB_OK) {
		resp_db_error(c->resp, c->app->db, "listing", rc);
		goto out;
	}
	if ((o = json_object_new_object()) == NULL) {
		c->resp->failed = true;
		goto out;
	}
	json_object_object_add(o, "jobs", l.jobs);
	l.jobs = NULL;
	if (l.more) {
		listing_cursor(l.last_seq, cursor);
		json_object_object_add(o, "next_cursor", json_object_new_string(cursor));
	} else {
		json_object_object_add(o, "next_cursor", NULL);
	}
	resp_json(c->resp, 200, o);
out:
	json_object_put(o);
	json_object_put(l.jobs);
	json_object_put(errors);
}
