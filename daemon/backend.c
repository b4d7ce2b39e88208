#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"
#include "jsonutil.h"

static const char SQL_BACKENDS[] =
    "SELECT id, name, type, url, max_running, prefetch, draining, healthy, lease_owner, "
    "lease_until > UTC_TIMESTAMP(6), TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), lease_until) "
    "FROM backends ORDER BY id";
static const char SQL_BACKEND_QUEUES[] =
    "SELECT backend_id, queue FROM backend_queues ORDER BY backend_id, queue";
static const char SQL_LEASE[] =
    "UPDATE backends SET lease_owner = ?, lease_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND "
    "WHERE id = ? AND (lease_owner = ? OR lease_owner IS NULL OR lease_until < UTC_TIMESTAMP(6))";
static const char SQL_RELEASE_ALL[] =
    "UPDATE backends SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?";
static const char SQL_MARK_DOWN[] =
    "UPDATE backends SET healthy = 0, fail_count = ? WHERE id = ?";
static const char SQL_MARK_UP[] =
    "UPDATE backends SET healthy = 1, fail_count = 0, last_ok_at = UTC_TIMESTAMP(6) WHERE id = ?";
static const char SQL_NOTE_OK[] =
    "UPDATE backends SET fail_count = 0, last_ok_at = UTC_TIMESTAMP(6) WHERE id = ?";

#define US_PER_S 1000000LL
#define LEASE_RETRY_US (2 * US_PER_S)    /* try a free backend again */
#define PROBE_HEALTHY_US (5 * US_PER_S)
#define PROBE_DOWN_US (2 * US_PER_S)
#define LEASE_EXPIRY_MARGIN_US (50 * 1000LL)  /* try a lease this long after it runs out */
#define CONNECTIONS_SPARE 32L             /* kept for webhook destinations */
#define CONNECTIONS_MAX 8192L             /* file descriptors are the bound */

static const struct proto *
proto_for(const char *type)
{
	if (type != NULL && strcmp(type, comfy_proto.type) == 0)
		return &comfy_proto;
	if (type != NULL && strcmp(type, openai_proto.type) == 0)
		return &openai_proto;
	return NULL;
}

static void
clear_queues(struct backend *b)
{
	for (size_t i = 0; i < b->nqueues; i++)
		free(b->queues[i]);
	free(b->queues);
	b->queues = NULL;
	b->nqueues = 0;
}

static void
clear_orphans(struct backend *b)
{
	for (size_t i = 0; i < b->norphans; i++)
		free(b->orphans[i]);
	b->norphans = 0;
}

static void
backend_free(struct genqd *g, struct backend *b)
{
	http_cancel(g->http, b->probe_req);
	clear_queues(b);
	clear_orphans(b);
	free(b->url);
	free(b);
}

static struct backend *
find(struct genqd *g, uint64_t id)
{
	for (struct backend *b = g->backends; b != NULL; b = b->next)
		if (b->id == id)
			return b;
	return NULL;
}

static int
add_queue(struct backend *b, const char *name)
{
	char **grown = realloc(b->queues, (b->nqueues + 1) * sizeof *b->queues);

	if (grown == NULL)
		return -1;
	b->queues = grown;
	if ((b->queues[b->nqueues] = strdup(name)) == NULL)
		return -1;
	b->nqueues++;
	return 0;
}

/* Copy one row of SQL_BACKENDS into the backend with that id. */
static int
take_row(struct genqd *g, struct db_stmt *st)
{
	uint64_t id = (uint64_t)db_i64(st, 0);
	const char *name = db_text(st, 1, NULL), *url = db_text(st, 3, NULL);
	const char *owner = db_text(st, 8, NULL);
	struct backend *b = find(g, id);
	char *url_copy;

	if (b == NULL) {
		if ((b = calloc(1, sizeof *b)) == NULL)
			return -1;
		b->g = g;
		b->id = id;
		b->healthy = db_i64(st, 7) != 0;
		b->next = g->backends;
		g->backends = b;
	}
	if ((url_copy = strdup(url ? url : "")) == NULL)
		return -1;
	free(b->url);
	b->url = url_copy;
	snprintf(b->name, sizeof b->name, "%s", name ? name : "?");
	b->proto = proto_for(db_text(st, 2, NULL));
	b->max_running = (int)db_i64(st, 4);
	b->prefetch = (int)db_i64(st, 5);
	b->draining = db_i64(st, 6) != 0;
	/* While this genqd holds the lease it is the one writing healthy. */
	if (!b->leased)
		b->healthy = db_i64(st, 7) != 0;
	b->lease_live_elsewhere = owner != NULL && strcmp(owner, g->id) != 0 && db_i64(st, 9) != 0;
	if (!b->leased && b->lease_live_elsewhere) {
		/* Try the moment it runs out (the database's clock says when):
		 * a dead owner's backend is taken over within lease_s of its last
		 * renewal, not a reload later. A live owner renews before then,
		 * and the next reload moves the try along. */
		b->lease_renew_at = gq_mono_us() + db_i64(st, 10) + LEASE_EXPIRY_MARGIN_US;
	} else if (!b->leased && b->lease_renew_at > gq_mono_us()) {
		b->lease_renew_at = 0;
	}
	b->seen = true;
	return 0;
}

/* Keep a connection for every job a backend may hold and for its probe,
 * plus some for webhooks: the jobs a claim starts end together, and the
 * next claim's requests then reuse their connections. */
static void
size_connection_cache(struct genqd *g)
{
	long connections = CONNECTIONS_SPARE;

	for (struct backend *b = g->backends; b != NULL; b = b->next)
		connections += 1L + b->max_running + b->prefetch;
	http_set_connection_cache(g->http, connections < CONNECTIONS_MAX ? connections :
	    CONNECTIONS_MAX);
}

void
backend_reload(struct genqd *g)
{
	struct backend *b, **pp;
	struct db_stmt *st;
	int rc = DB_OK;

	if ((st = db_prepare(g->db, SQL_BACKENDS)) == NULL ||
	    (rc = db_exec(st)) != DB_OK) {
		gqd_db_failed(g, st ? rc : db_last_status(g->db), "backend_reload");
		return;
	}
	for (b = g->backends; b != NULL; b = b->next) {
		b->seen = false;
		clear_queues(b);
	}
	while ((rc = db_next(st)) == 1)
		if (take_row(g, st) < 0)
			log_error("out_of_memory", "step=backend_reload");
	if ((st = db_prepare(g->db, SQL_BACKEND_QUEUES)) == NULL ||
	    (rc = db_exec(st)) != DB_OK) {
		/* Queues stay empty (no claims) until the next reload. */
		gqd_db_failed(g, st ? rc : db_last_status(g->db), "backend_reload");
		return;
	}
	while ((rc = db_next(st)) == 1) {
		const char *q = db_text(st, 1, NULL);
		b = find(g, (uint64_t)db_i64(st, 0));
		if (b != NULL && q != NULL && add_queue(b, q) < 0)
			log_error("out_of_memory", "step=backend_reload");
	}

	/* Rows that went away: forget them once nothing runs on them. */
	for (pp = &g->backends; (b = *pp) != NULL;) {
		if (b->seen || b->inflight > 0 || b->claiming) {
			pp = &b->next;
			continue;
		}
		if (b->leased)
			log_info("backend_removed", "backend=%s", b->name);
		*pp = b->next;
		backend_free(g, b);
	}
	size_connection_cache(g);
}

/* The lease on b is gone (another genqd has it): stop driving b. */
static void
lease_lost(struct genqd *g, struct backend *b)
{
	int handed = finish_hand_back(g, b->id);

	log_warn("backend_lease_lost", "backend=%s handed_back=%d", b->name, handed);
	/* A run the committer holds is released when its commit returns
	 * (stale by then: handed back above). */
	for (struct run *r = g->runs; r != NULL; r = r->next)
		if (r->backend == b && r->state != RUN_COMMITTING)
			run_release(g, r);
	b->leased = false;
}

void
backend_leases(struct genqd *g, int64_t now)
{
	for (struct backend *b = g->backends; b != NULL && gqd_db_ready(g); b = b->next) {
		struct db_stmt *st;
		int rc;
		bool got;

		if (b->proto == NULL || !b->seen || now < b->lease_renew_at)
			continue;
		if (!b->leased && g->stopping)
			continue;
		if ((st = db_prepare(g->db, SQL_LEASE)) == NULL) {
			gqd_db_failed(g, db_last_status(g->db), "backend_lease");
			return;
		}
		db_bind_str(st, 0, g->id);
		db_bind_i64(st, 1, g->cfg->lease_s);
		db_bind_i64(st, 2, (int64_t)b->id);
		db_bind_str(st, 3, g->id);
		if ((rc = db_exec(st)) != DB_OK) {
			gqd_db_failed(g, rc, "backend_lease");
			return;
		}
		got = db_affected_rows(st) == 1;
		if (got && !b->leased) {
			log_info("backend_lease_acquired", "backend=%s url=%s lease_s=%d",
			    b->name, b->url, g->cfg->lease_s);
			b->leased = true;
			g->recover_now = true;
			b->next_claim_at = 0;
			b->next_probe_at = 0;
			b->fail_count = 0;
		} else if (!got && b->leased) {
			lease_lost(g, b);
		}
		b->lease_renew_at = now + (got ? (int64_t)g->cfg->lease_s * US_PER_S / 3 : LEASE_RETRY_US);
	}
}

void
backend_release_all(struct genqd *g)
{
	struct db_stmt *st = db_prepare(g->db, SQL_RELEASE_ALL);
	int rc;

	if (st == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "backend_release");
		return;
	}
	db_bind_str(st, 0, g->id);
	if ((rc = db_exec(st)) != DB_OK)
		gqd_db_failed(g, rc, "backend_release");
	for (struct backend *b = g->backends; b != NULL; b = b->next)
		b->leased = false;
}

void
backend_free_all(struct genqd *g)
{
	struct backend *b, *next;

	for (b = g->backends; b != NULL; b = next) {
		next = b->next;
		backend_free(g, b);
	}
	g->backends = NULL;
}

bool
backend_has_room(const struct genqd *g, const struct backend *b)
{
	(void)g;
	return b->proto != NULL && b->seen && b->leased && b->healthy && !b->draining &&
	    b->nqueues > 0 && backend_busy(b) < b->max_running + b->prefetch;
}

void
backend_probes(struct genqd *g, int64_t now)
{
	for (struct backend *b = g->backends; b != NULL; b = b->next) {
		if (b->proto == NULL || !b->leased || b->probe_req != NULL || now < b->next_probe_at)
			continue;
		b->next_probe_at = now + (b->healthy ? PROBE_HEALTHY_US : PROBE_DOWN_US);
		b->proto->probe(g, b);
	}
}

static void
exec_backend_update(struct genqd *g, const char *sql, int64_t a, int64_t b_id, int nparams)
{
	struct db_stmt *st;
	int rc;

	if (!gqd_db_ready(g))
		return;
	if ((st = db_prepare(g->db, sql)) == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "backend_update");
		return;
	}
	if (nparams == 2) {
		db_bind_i64(st, 0, a);
		db_bind_i64(st, 1, b_id);
	} else {
		db_bind_i64(st, 0, b_id);
	}
	if ((rc = db_exec(st)) != DB_OK)
		gqd_db_failed(g, rc, "backend_update");
}

void
backend_ok(struct genqd *g, struct backend *b)
{
	b->fail_count = 0;
	if (b->healthy)
		return;
	b->healthy = true;
	exec_backend_update(g, SQL_MARK_UP, 0, (int64_t)b->id, 1);
	log_info("backend_up", "backend=%s orphans=%zu", b->name, b->norphans);
	/* Prompts given up on while it was away must not run now. */
	for (size_t i = 0; i < b->norphans; i++)
		b->proto->forget(g, b, b->orphans[i]);
	clear_orphans(b);
	b->next_claim_at = 0;
}

void
backend_add_orphan(struct backend *b, const char *prompt_id)
{
	char *copy;

	if (b->norphans >= GQD_ORPHANS_MAX || (copy = strdup(prompt_id)) == NULL)
		return;
	b->orphans[b->norphans++] = copy;
}

/* b is marked down: what runs on it is retried elsewhere. */
static void
mark_down(struct genqd *g, struct backend *b, const char *why)
{
	b->healthy = false;
	exec_backend_update(g, SQL_MARK_DOWN, b->fail_count, (int64_t)b->id, 2);
	log_warn("backend_down", "backend=%s fail_count=%d running=%d why=\"%s\"",
	    b->name, b->fail_count, b->inflight, log_q(why));
	for (struct run *r = g->runs; r != NULL; r = r->next) {
		if (r->backend != b || r->state == RUN_DEAD || r->state == RUN_ENDED ||
		    r->state == RUN_COMMITTING)
			continue;
		backend_add_orphan(b, r->prompt_id);
		if (r->state == RUN_STOPPING) {
			run_end(g, r);          /* its outcome is already decided */
			continue;
		}
		run_fail(g, r, "backend_unreachable", true, "backend %s is down: %s", b->name, why);
	}
}

void
backend_failed(struct genqd *g, struct backend *b, const char *why)
{
	int64_t now = gq_mono_us();

	if (b->fail_count++ == 0)
		b->first_fail_at = now;
	/* A dead backend fails every poll: log the first few, then sparsely. */
	if (b->fail_count <= GQD_FAIL_LIMIT || (b->fail_count & (b->fail_count - 1)) == 0)
		log_warn("backend_request_failed", "backend=%s fail_count=%d why=\"%s\"",
		    b->name, b->fail_count, log_q(why));
	/* A burst of failures in one blip is not yet a dead backend. */
	if (b->healthy && b->fail_count >= GQD_FAIL_LIMIT &&
	    now - b->first_fail_at >= GQD_FAIL_SPAN_US)
		mark_down(g, b, why);
}

void
backend_probe_done(struct genqd *g, struct backend *b, bool ok, const char *why)
{
	b->probe_req = NULL;
	if (!ok) {
		backend_failed(g, b, why);
		return;
	}
	if (b->healthy)
		exec_backend_update(g, SQL_NOTE_OK, 0, (int64_t)b->id, 1);
	backend_ok(g, b);
}

#define PROBE_REPLY_MAX (1u << 20)

/* A probe passes on 200 with a JSON object: what both /system_stats and
 * /v1/models answer when the server is ready. */
static void
on_probe_json(const struct http_result *res, void *arg)
{
	struct backend *b = arg;
	struct json_object *root;
	char why[256];
	bool ok;

	b->probe_req = NULL;
	if (res->curl_code != 0 || res->status != 200) {
		if (res->curl_code != 0)
			snprintf(why, sizeof why, "%s: %s", b->probe_what, res->error);
		else
			snprintf(why, sizeof why, "%s: HTTP %ld", b->probe_what, res->status);
		backend_probe_done(b->g, b, false, why);
		return;
	}
	root = gq_json_parse(res->body, res->len, 32, NULL);
	ok = root != NULL && json_object_is_type(root, json_type_object);
	json_object_put(root);
	snprintf(why, sizeof why, "%s: not a JSON object", b->probe_what);
	backend_probe_done(b->g, b, ok, ok ? "" : why);
}

void
backend_probe_json(struct genqd *g, struct backend *b, const char *url, const char *what,
    const char *auth)
{
	b->probe_what = what;
	b->probe_req = http_get_headers(g->http, url, PROBE_REPLY_MAX, &auth, auth != NULL,
	    on_probe_json, b);
}
