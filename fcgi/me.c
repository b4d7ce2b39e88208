/* me: GET /v1/me, the caller as the admission sees them: tier, priority,
 * credits available (the balance, holds already taken out) and held (the
 * holds of active jobs), active jobs against the tier's limit, the submit
 * token bucket (rate_limit: {limit, remaining, reset}, the RateLimit-*
 * headers' values; null when the tier has no submit limit), and this
 * month's quota use per queue (quota: {resets_at, queues: {name: {used,
 * limit}}}, limit null where the tier has no quota). */
#include "autoconf.h"

#include <string.h>

#include "app.h"
#include "db.h"
#include "jobjson.h"

static const char SQL_BALANCE[] =
    "SELECT balance FROM users WHERE id = ?";
/* jobs_user (user_id, status, seq): four short ranges. */
static const char SQL_ACTIVE[] =
    "SELECT COUNT(*), COALESCE(SUM(cost_held), 0) FROM jobs WHERE user_id = ? "
    "AND status IN ('held', 'waiting', 'queued', 'running')";

struct me {
	uint64_t user_id;
	int64_t balance, held, active;
	struct rate_state rate;
	struct json_object *quotas;     /* owned */
};

static int
read_me(struct db *db, void *arg)
{
	struct me *m = arg;
	struct db_stmt *st;
	int rc;

	if ((st = db_prepare(db, SQL_BALANCE)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)m->user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	m->balance = db_i64(st, 0);

	if ((st = db_prepare(db, SQL_ACTIVE)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)m->user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	m->active = db_i64(st, 0);
	m->held = db_i64(st, 1);

	if ((rc = rate_peek(db, m->user_id, &m->rate)) != DB_OK)
		return rc;
	/* app_read may run this twice. */
	json_object_put(m->quotas);
	return quota_usage(db, m->user_id, &m->quotas);
}

/* {resets_at, queues}; takes m->quotas. */
static struct json_object *
quota_json(struct me *m)
{
	struct json_object *o = json_object_new_object();
	char resets[32];

	if (o == NULL)
		return NULL;
	quota_period_end(resets);
	json_object_object_add(o, "resets_at", json_object_new_string(resets));
	json_object_object_add(o, "queues", m->quotas);
	m->quotas = NULL;
	return o;
}

void
me_get(struct ctx *c)
{
	struct me m = { c->caller.user_id, 0, 0, 0, { 0 }, NULL };
	struct json_object *o, *credits;
	int rc = app_read(c->app, read_me, &m);

	if (rc != DB_OK) {
		json_object_put(m.quotas);
		resp_db_error(c->resp, c->app->db, "me", rc);
		return;
	}
	if ((o = json_object_new_object()) == NULL || (credits = json_object_new_object()) == NULL) {
		json_object_put(o);
		json_object_put(m.quotas);
		c->resp->failed = true;
		return;
	}
	json_object_object_add(o, "user", json_object_new_string(c->caller.name));
	json_object_object_add(o, "tier", json_object_new_string(c->caller.tier));
	json_object_object_add(o, "priority", json_object_new_int(c->caller.tier_priority));
	json_object_object_add(o, "credits", credits);
	json_object_object_add(credits, "available", jobjson_credits(m.balance));
	json_object_object_add(credits, "held", jobjson_credits(m.held));
	json_object_object_add(o, "active_jobs", json_object_new_int64(m.active));
	json_object_object_add(o, "max_active", json_object_new_int(c->caller.max_active));
	json_object_object_add(o, "rate_limit", rate_json(&m.rate));
	json_object_object_add(o, "quota", quota_json(&m));
	resp_json(c->resp, 200, o);
	json_object_put(o);
}
