/* auth: "Authorization: Bearer gq_XXXXXXXX_<secret>" -> the calling user.
 * The key's prefix finds the row; the SHA-256 of the whole presented key is
 * compared in constant time with the stored hash. Keys are never logged. */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "db.h"
#include "log.h"

static const char SQL_KEY[] =
    "SELECT k.secret_hash, k.is_admin, u.id, u.name, u.tier, t.priority, t.max_active "
    "FROM api_keys k JOIN users u ON u.id = k.user_id JOIN tiers t ON t.name = u.tier "
    "WHERE k.prefix = ? AND k.revoked_at IS NULL";

int
auth_bearer(const char *header, char key[GQ_KEY_LEN])
{
	const char *p;
	size_t n;

	if (header == NULL || strncasecmp(header, "Bearer", 6) != 0)
		return -1;
	p = header + 6;
	if (*p != ' ' && *p != '\t')
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	n = strcspn(p, " \t");
	if (n != GQ_KEY_LEN - 1 || p[n + strspn(p + n, " \t")] != '\0')
		return -1;
	memcpy(key, p, n);
	key[n] = '\0';
	return 0;
}

struct lookup {
	const char *key;
	const char *prefix;
	struct caller *caller;
	bool found;
};

static int
lookup_key(struct db *db, void *arg)
{
	struct lookup *lk = arg;
	unsigned char presented[32];
	struct db_stmt *st;
	const char *hash;
	size_t hlen;
	int rc;

	lk->found = false;
	if ((st = db_prepare(db, SQL_KEY)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, lk->prefix);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) <= 0)
		return rc;
	hash = db_text(st, 0, &hlen);
	if (hash == NULL || hlen != 32 || gq_sha256(lk->key, strlen(lk->key), presented) < 0)
		return DB_OK;
	if (!gq_equal_ct(presented, hash, 32))
		return DB_OK;
	lk->found = true;
	lk->caller->admin = db_i64(st, 1) != 0;
	lk->caller->user_id = (uint64_t)db_i64(st, 2);
	snprintf(lk->caller->name, sizeof lk->caller->name, "%s", db_text(st, 3, NULL));
	snprintf(lk->caller->tier, sizeof lk->caller->tier, "%s", db_text(st, 4, NULL));
	lk->caller->tier_priority = (int)db_i64(st, 5);
	lk->caller->max_active = (int)db_i64(st, 6);
	return DB_OK;
}

static int
unauthorized(struct ctx *c, const char *detail)
{
	resp_header(c->resp, "WWW-Authenticate", "Bearer realm=\"genq\"");
	resp_problem(c->resp, P_UNAUTHORIZED, detail, NULL);
	return -1;
}

int
auth_caller(struct ctx *c)
{
	char key[GQ_KEY_LEN], prefix[GQ_KEY_PREFIX_LEN + 1];
	struct lookup lk = { key, prefix, &c->caller, false };
	const char *header = req_param(c->req, "HTTP_AUTHORIZATION");
	int rc;

	memset(&c->caller, 0, sizeof c->caller);
	if (header == NULL || *header == '\0')
		return unauthorized(c, "Send an API key as \"Authorization: Bearer <key>\".");
	if (auth_bearer(header, key) < 0 || gq_key_prefix(key, prefix) < 0)
		return unauthorized(c, "The Authorization header is not a genq API key.");
	rc = app_read(c->app, lookup_key, &lk);
	/* The key stays on this stack frame only. */
	explicit_bzero(key, sizeof key);
	if (rc < 0) {
		resp_db_error(c->resp, c->app->db, "auth", rc);
		return -1;
	}
	if (!lk.found) {
		log_info("auth_failed", "prefix=%s", prefix);
		return unauthorized(c, "The API key is unknown or revoked.");
	}
	return 0;
}
