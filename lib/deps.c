/* deps: references to parent outputs, and the job_deps rows written at
 * admission and read by the job object. Resolution (waiting -> queued or
 * failed) is genqd's: daemon/deps.c. */
#include "autoconf.h"

#include <string.h>

#include "db.h"
#include "deps.h"

static const char SQL_PARENT[] =
    "SELECT seq, status FROM jobs WHERE id = ? AND user_id = ?";
static const char SQL_LINK[] =
    "INSERT INTO job_deps (child, parent, pos) VALUES (?, ?, ?)";
static const char SQL_PENDING[] =
    "SELECT 1 FROM job_deps d JOIN jobs p ON p.seq = d.parent "
    "WHERE d.child = ? AND p.status <> 'succeeded' LIMIT 1";

/* A decimal number without sign or leading zeros, at most max; its end. */
static const char *
parse_index(const char *s, const char *end, unsigned max, unsigned *out)
{
	unsigned long v = 0;
	const char *p = s;

	if (p == end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9')
		return NULL;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return NULL;
	}
	*out = (unsigned)v;
	return p;
}

int
deps_ref_parse(const char *s, size_t len, unsigned *parent, unsigned *output)
{
	static const char outputs[] = "/outputs/";
	const size_t plen = sizeof DEPS_REF_PREFIX - 1, olen = sizeof outputs - 1;
	const char *end = s + len, *p;

	if (len < plen || memcmp(s, DEPS_REF_PREFIX, plen) != 0)
		return 0;
	if ((p = parse_index(s + plen, end, DEPS_MAX - 1, parent)) == NULL)
		return -1;
	if ((size_t)(end - p) < olen || memcmp(p, outputs, olen) != 0)
		return -1;
	if ((p = parse_index(p + olen, end, DEPS_OUTPUT_MAX, output)) == NULL || p != end)
		return -1;
	return 1;
}

int
deps_refs_walk(struct json_object *root, deps_ref_fn fn, void *arg)
{
	unsigned parent = 0, output = 0;
	int rc;

	/* Recursion is bounded by the parser's depth limit (GQ_JSON_MAX_DEPTH). */
	switch (json_object_get_type(root)) {
	case json_type_object: {
		json_object_object_foreach(root, key, val) {
			(void)key;
			if (val != NULL && (rc = deps_refs_walk(val, fn, arg)) != 0)
				return rc;
		}
		return 0;
	}
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(root); i++) {
			struct json_object *v = json_object_array_get_idx(root, i);
			if (v != NULL && (rc = deps_refs_walk(v, fn, arg)) != 0)
				return rc;
		}
		return 0;
	case json_type_string:
		rc = deps_ref_parse(json_object_get_string(root),
		    (size_t)json_object_get_string_len(root), &parent, &output);
		return rc == 0 ? 0 : fn(root, rc, parent, output, arg);
	default:
		return 0;
	}
}

int
deps_lookup(struct db *db, uint64_t user_id, const char *const *ids, size_t n,
    struct deps_parents *p)
{
	struct db_stmt *st;
	int rc;

	memset(p, 0, sizeof *p);
	if (n > DEPS_MAX)
		return DB_ERR;
	p->n = n;
	for (size_t i = 0; i < n; i++) {
		const char *status;

		if ((st = db_prepare(db, SQL_PARENT)) == NULL)
			return db_last_status(db);
		db_bind_str(st, 0, ids[i]);
		db_bind_i64(st, 1, (int64_t)user_id);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
		if ((rc = db_next(st)) < 0)
			return rc;
		if (rc == 0) {
			p->unknown |= 1u << i;
			continue;
		}
		p->seq[i] = (uint64_t)db_i64(st, 0);
		status = db_text(st, 1, NULL);
		if (status == NULL || strcmp(status, "succeeded") != 0)
			p->wait = true;
	}
	return DB_OK;
}

const char *
deps_initial_status(const struct deps_parents *p)
{
	return p->wait ? "waiting" : "queued";
}

int
deps_link(struct db *db, uint64_t child, const struct deps_parents *p)
{
	struct db_stmt *st;
	int rc;

	for (size_t i = 0; i < p->n; i++) {
		if ((st = db_prepare(db, SQL_LINK)) == NULL)
			return db_last_status(db);
		db_bind_i64(st, 0, (int64_t)child);
		db_bind_i64(st, 1, (int64_t)p->seq[i]);
		db_bind_i64(st, 2, (int64_t)i);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
	}
	return DB_OK;
}

int
deps_pending(struct db *db, uint64_t seq)
{
	struct db_stmt *st = db_prepare(db, SQL_PENDING);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	return db_next(st);
}
