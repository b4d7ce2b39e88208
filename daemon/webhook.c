/* webhook: delivery of the webhook outbox (SPEC §7). lib/jobevent.c adds an
 * outbox row in the same transaction as each job state change a job's
 * webhook subscribes to; here genqd takes due rows under a short lease,
 * renders the body once (so every retry sends the same bytes), signs it per
 * Standard Webhooks, POSTs it without following redirects to a public
 * address only (unless allow-listed), and records every attempt. A row is
 * sent only after every earlier row of its job is settled, so each job's
 * messages arrive in order. At least once: a genqd that dies mid-delivery
 * leaves the lease to run out and the row is sent again. */
#include "autoconf.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"
#include "jobjson.h"
#include "whpolicy.h"

#define WH_INFLIGHT_MAX 16          /* deliveries at once per genqd */
#define WH_POLL_US 250000LL         /* look at the outbox this often when idle */
#define WH_REPLY_LIMIT 65536        /* receivers' answers are read, then dropped */
#define WH_SECRET_MAX 128
#define WH_URL_MAX 2048

static const char SQL_DUE[] =
    "SELECT id, job_seq, event, attempts, created_at FROM webhook_outbox "
    "WHERE state = 'pending' AND next_attempt_at <= UTC_TIMESTAMP(6) "
    "AND (lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6)) "
    "ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED";
/* Per-job order: an earlier message still pending (leased or waiting for a
 * retry) holds the later ones back. */
static const char SQL_EARLIER[] =
    "SELECT MAX(next_attempt_at) FROM webhook_outbox WHERE job_seq = ? AND state = 'pending' AND id < ?";
/* A held-back message waits for its predecessor's next try instead of
 * taking a batch slot on every look at the outbox. */
static const char SQL_WAIT_BEHIND[] =
    "UPDATE webhook_outbox SET next_attempt_at = ? + INTERVAL 1 MICROSECOND WHERE id = ?";
static const char SQL_TARGET[] =
    "SELECT j.id, j.webhook_url, u.webhook_secret, o.payload FROM webhook_outbox o "
    "JOIN jobs j ON j.seq = o.job_seq JOIN users u ON u.id = j.user_id WHERE o.id = ?";
static const char SQL_LEASE[] =
    "UPDATE webhook_outbox SET lease_owner = ?, lease_until = UTC_TIMESTAMP(6) + INTERVAL ? SECOND, "
    "payload = COALESCE(payload, ?) WHERE id = ?";
static const char SQL_SETTLE[] =
    "UPDATE webhook_outbox SET attempts = ?, state = ?, last_status = ?, last_error = LEFT(?, 300), "
    "next_attempt_at = UTC_TIMESTAMP(6) + INTERVAL ? SECOND, lease_owner = NULL, lease_until = NULL, "
    "finished_at = IF(? = 'pending', NULL, UTC_TIMESTAMP(6)) "
    "WHERE id = ? AND lease_owner = ?";
static const char SQL_ATTEMPT[] =
    "INSERT INTO webhook_attempts (outbox_id, attempt, at, http_status, error, duration_ms) "
    "VALUES (?, ?, UTC_TIMESTAMP(6), ?, LEFT(?, 300), ?)";
static const char SQL_DROP[] =
    "UPDATE webhook_outbox SET state = 'failed', last_error = ?, finished_at = UTC_TIMESTAMP(6), "
    "lease_owner = NULL, lease_until = NULL WHERE id = ?";

/* One message being sent. */
struct delivery {
	struct genqd *g;
	uint64_t outbox_id;
	char msg_id[32];
	char job_id[GQ_UUID_LEN];
	char event[16];
	int attempt;                /* this one, 1-based */
	int64_t created_us;         /* the event's time (wall clock) */
	int64_t started_mono;
	char *url;                  /* owned */
	char secret[WH_SECRET_MAX];
	char *payload;              /* owned */
	size_t len;
	/* Settling the attempt, filled by the callback. */
	long status;
	char error[300];
	int64_t duration_ms;
	bool ok;
};

struct webhooks {
	struct wh_allow allow;
	char *allow_text;           /* the config value allow was parsed from */
	bool allow_bad;             /* it did not parse: deliver nothing */
	int64_t next_at;            /* monotonic µs */
	int inflight;
};

static void
delivery_free(struct delivery *d)
{
	if (d == NULL)
		return;
	free(d->url);
	free(d->payload);
	explicit_bzero(d->secret, sizeof d->secret);
	free(d);
}

static struct webhooks *
webhooks_get(struct genqd *g)
{
	struct webhooks *w = g->webhooks;
	const char *text = g->cfg->webhook_allow ? g->cfg->webhook_allow : "";
	char err[200];

	if (w == NULL) {
		if ((w = calloc(1, sizeof *w)) == NULL)
			return NULL;
		g->webhooks = w;
	}
	/* Parse again after a reload changed the setting. */
	if (w->allow_text == NULL || strcmp(w->allow_text, text) != 0) {
		free(w->allow_text);
		w->allow_text = strdup(text);
		w->allow_bad = wh_allow_parse(text, &w->allow, err, sizeof err) < 0;
		if (w->allow_bad)
			log_error("webhook_config", "error=\"%s\"", log_q(err));
	}
	return w;
}

void
webhook_free_all(struct genqd *g)
{
	if (g->webhooks == NULL)
		return;
	free(g->webhooks->allow_text);
	free(g->webhooks);
	g->webhooks = NULL;
}

/* ---- taking due messages ---- */

struct take {
	struct genqd *g;
	int want;
	struct delivery *got[WH_INFLIGHT_MAX];
	int ngot;
	uint64_t dropped[WH_INFLIGHT_MAX];   /* rows that can never be sent */
	int ndropped;
};

static void
take_reset(struct take *t)
{
	for (int i = 0; i < t->ngot; i++)
		delivery_free(t->got[i]);
	t->ngot = 0;
	t->ndropped = 0;
}

/* The body: {"type", "timestamp", "data": the job as it is now}. */
static char *
render_payload(struct db *db, struct genqd *g, const struct delivery *d, int *rc)
{
	struct json_object *job = NULL, *o;
	char ts[GQ_RFC3339_LEN], type[32];
	char *out = NULL;

	*rc = jobjson_load(db, g->cfg->base_url, d->job_id, 0, &job);
	if (*rc != DB_OK)
		return NULL;
	gq_time_rfc3339(ts, d->created_us);
	snprintf(type, sizeof type, "job.%s", d->event);
	if ((o = json_object_new_object()) == NULL) {
		json_object_put(job);
		*rc = DB_NOMEM;
		return NULL;
	}
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "timestamp", json_object_new_string(ts));
	json_object_object_add(o, "data", job);
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	if (out == NULL)
		*rc = DB_NOMEM;
	return out;
}

/* Fill d from its job and user; positive when the row can never be sent. */
static int
load_target(struct db *db, struct take *t, struct delivery *d)
{
	struct db_stmt *st = db_prepare(db, SQL_TARGET);
	const char *s;
	size_t len;
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)d->outbox_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : 1;
	s = db_text(st, 0, NULL);
	snprintf(d->job_id, sizeof d->job_id, "%s", s ? s : "");
	s = db_text(st, 1, &len);
	if (s == NULL || len == 0 || len > WH_URL_MAX || (d->url = strdup(s)) == NULL)
		return 1;
	s = db_text(st, 2, &len);
	if (s == NULL || len == 0 || len >= sizeof d->secret)
		return 1;
	memcpy(d->secret, s, len + 1);
	if ((s = db_text(st, 3, &len)) != NULL) {
		if ((d->payload = strdup(s)) == NULL)
			return DB_NOMEM;
		d->len = len;
		return DB_OK;
	}
	if ((d->payload = render_payload(db, t->g, d, &rc)) == NULL)
		return rc == JOBJSON_NOT_FOUND ? 1 : rc;
	d->len = strlen(d->payload);
	return DB_OK;
}

static int
held_back(struct db *db, const struct delivery *d, uint64_t job_seq, bool *earlier)
{
	struct db_stmt *st = db_prepare(db, SQL_EARLIER);
	char when[GQ_SQLTIME_LEN];
	int rc;

	*earlier = false;
	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)job_seq);
	db_bind_i64(st, 1, (int64_t)d->outbox_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) < 0)
		return rc;
	if (rc == 0 || db_is_null(st, 0))
		return DB_OK;
	*earlier = true;
	gq_time_sql(when, db_time_us(st, 0));
	if ((st = db_prepare(db, SQL_WAIT_BEHIND)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, when);
	db_bind_i64(st, 1, (int64_t)d->outbox_id);
	return db_exec(st);
}

static int
lease(struct db *db, struct take *t, struct delivery *d)
{
	struct db_stmt *st = db_prepare(db, SQL_LEASE);

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, t->g->id);
	db_bind_i64(st, 1, t->g->cfg->webhook_timeout_s + t->g->cfg->lease_s);
	db_bind_text(st, 2, d->payload, d->len);
	db_bind_i64(st, 3, (int64_t)d->outbox_id);
	return db_exec(st);
}

static int
take_txn(struct db *db, void *arg)
{
	struct take *t = arg;
	struct db_stmt *st;
	uint64_t ids[WH_INFLIGHT_MAX], seqs[WH_INFLIGHT_MAX];
	struct delivery rows[WH_INFLIGHT_MAX];
	int n = 0, rc;

	take_reset(t);
	if ((st = db_prepare(db, SQL_DUE)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, t->want);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while (n < t->want && (rc = db_next(st)) == 1) {
		const char *ev = db_text(st, 2, NULL);

		memset(&rows[n], 0, sizeof rows[n]);
		ids[n] = (uint64_t)db_i64(st, 0);
		seqs[n] = (uint64_t)db_i64(st, 1);
		snprintf(rows[n].event, sizeof rows[n].event, "%s", ev ? ev : "");
		rows[n].attempt = (int)db_i64(st, 3) + 1;
		rows[n].created_us = db_time_us(st, 4);
		n++;
	}
	if (rc < 0)
		return rc;
	for (int i = 0; i < n; i++) {
		struct delivery *d;
		bool earlier = false;

		rows[i].outbox_id = ids[i];
		if ((rc = held_back(db, &rows[i], seqs[i], &earlier)) != DB_OK)
			return rc;
		if (earlier)
			continue;
		if ((d = malloc(sizeof *d)) == NULL)
			return DB_NOMEM;
		*d = rows[i];
		d->g = t->g;
		snprintf(d->msg_id, sizeof d->msg_id, "msg_%llu", (unsigned long long)d->outbox_id);
		t->got[t->ngot++] = d;
		rc = load_target(db, t, d);
		if (rc > 0) {
			t->dropped[t->ndropped++] = d->outbox_id;
			delivery_free(d);
			t->ngot--;
			continue;
		}
		if (rc != DB_OK || (rc = lease(db, t, d)) != DB_OK)
			return rc;
	}
	for (int i = 0; i < t->ndropped; i++) {
		if ((st = db_prepare(db, SQL_DROP)) == NULL)
			return db_last_status(db);
		db_bind_str(st, 0, "the job, its webhook URL or its owner's secret is gone");
		db_bind_i64(st, 1, (int64_t)t->dropped[i]);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
	}
	return DB_OK;
}

/* ---- sending ---- */

struct settle {
	struct delivery *d;
	const char *state;
	int64_t retry_s;
};

static int
settle_txn(struct db *db, void *arg)
{
	struct settle *s = arg;
	struct delivery *d = s->d;
	struct db_stmt *st = db_prepare(db, SQL_SETTLE);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, d->attempt);
	db_bind_str(st, 1, s->state);
	if (d->status > 0)
		db_bind_i64(st, 2, d->status);
	else
		db_bind_null(st, 2);
	db_bind_str(st, 3, d->error[0] ? d->error : NULL);
	db_bind_i64(st, 4, s->retry_s);
	db_bind_str(st, 5, s->state);
	db_bind_i64(st, 6, (int64_t)d->outbox_id);
	db_bind_str(st, 7, d->g->id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1)
		return 1;           /* our lease ran out and someone else has it */
	if ((st = db_prepare(db, SQL_ATTEMPT)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)d->outbox_id);
	db_bind_i64(st, 1, d->attempt);
	if (d->status > 0)
		db_bind_i64(st, 2, d->status);
	else
		db_bind_null(st, 2);
	db_bind_str(st, 3, d->error[0] ? d->error : NULL);
	db_bind_i64(st, 4, d->duration_ms);
	return db_exec(st);
}

static void
settle(struct delivery *d)
{
	struct genqd *g = d->g;
	struct settle s = { .d = d, .state = "delivered", .retry_s = 0 };
	int64_t age_s = (gq_now_us() - d->created_us) / 1000000;
	int rc;

	if (!d->ok) {
		s.retry_s = wh_backoff_s(d->attempt, gq_random_u32() / 4294967296.0);
		s.state = age_s + s.retry_s > (int64_t)g->cfg->webhook_retry_h * 3600 ? "failed" : "pending";
	}
	log_info("webhook_attempt", "job=%s event=%s msg=%s attempt=%d status=%ld state=%s error=\"%s\"",
	    d->job_id, d->event, d->msg_id, d->attempt, d->status, s.state, log_q(d->error));
	if (!gqd_db_ready(g))
		return;             /* the lease runs out; the message goes again */
	rc = db_txn(g->db, settle_txn, &s);
	if (rc < 0)
		gqd_db_failed(g, rc, "webhook_settle");
}

static bool
addr_ok(const struct sockaddr *sa, void *arg)
{
	return wh_addr_allowed(arg, sa);
}

static void
on_sent(const struct http_result *res, void *arg)
{
	struct delivery *d = arg;
	d->g->webhooks->inflight--;
	d->duration_ms = (gq_mono_us() - d->started_mono) / 1000;
	d->status = res->status;
	d->ok = res->curl_code == 0 && res->status >= 200 && res->status < 300;
	if (res->addr_refused)
		snprintf(d->error, sizeof d->error, "destination address is not public (allow_private)");
	else if (res->curl_code != 0)
		snprintf(d->error, sizeof d->error, "%s", res->error);
	else if (!d->ok)
		snprintf(d->error, sizeof d->error, "HTTP %ld%s", res->status,
		    res->status >= 300 && res->status < 400 ? " (redirects are not followed)" : "");
	settle(d);
	delivery_free(d);
}

static void
on_drop(void *arg)
{
	struct delivery *d = arg;

	d->g->webhooks->inflight--;
	delivery_free(d);
}

/* An attempt that ended before it began: settle it as failed now. */
static void
send_failed(struct delivery *d, const char *why)
{
	snprintf(d->error, sizeof d->error, "%s", why);
	settle(d);
	delivery_free(d);
}

static void
send_one(struct genqd *g, struct webhooks *w, struct delivery *d)
{
	char h_id[64], h_ts[48], h_sig[32 + WH_SIGNATURE_LEN], sig[WH_SIGNATURE_LEN];
	const char *headers[] = { h_id, h_ts, h_sig };
	int64_t ts = gq_now_us() / 1000000;
	struct http_post_opts o = {
		.headers = headers, .nheaders = 3, .addr_ok = addr_ok,
		.addr_arg = &w->allow, .timeout_s = g->cfg->webhook_timeout_s, .system_ca = true,
	};
	struct http_req *req;

	d->started_mono = gq_mono_us();
	if (wh_sign(d->secret, d->msg_id, ts, d->payload, d->len, sig) < 0) {
		send_failed(d, "the owner's webhook secret is not valid base64");
		return;
	}
	snprintf(h_id, sizeof h_id, "webhook-id: %s", d->msg_id);
	snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", (long long)ts);
	snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
	req = http_post(g->http, d->url, d->payload, d->len, &o, WH_REPLY_LIMIT, on_sent, d);
	if (req == NULL) {
		send_failed(d, "the request could not be started (malformed URL?)");
		return;
	}
	http_on_drop(req, on_drop);
	w->inflight++;
}

void
webhook_tick(struct genqd *g, int64_t now)
{
	struct webhooks *w = webhooks_get(g);
	struct take t;
	int rc;

	if (w == NULL || now < w->next_at || !gqd_db_ready(g))
		return;
	if (w->allow_bad) {
		w->next_at = now + 5 * 1000000LL;   /* until a reload fixes the setting */
		return;
	}
	memset(&t, 0, sizeof t);
	t.g = g;
	t.want = WH_INFLIGHT_MAX - w->inflight;
	if (t.want <= 0)
		return;
	rc = db_txn(g->db, take_txn, &t);
	if (rc != DB_OK) {
		take_reset(&t);
		if (rc < 0)
			gqd_db_failed(g, rc, "webhook_take");
		w->next_at = now + WH_POLL_US;
		return;
	}
	/* A full batch may have more behind it. */
	w->next_at = t.ngot + t.ndropped >= t.want ? now : now + WH_POLL_US;
	for (int i = 0; i < t.ngot; i++)
		send_one(g, w, t.got[i]);
	t.ngot = 0;
}

int64_t
webhook_next_deadline(const struct genqd *g)
{
	return g->webhooks != NULL ? g->webhooks->next_at : INT64_MAX;
}
