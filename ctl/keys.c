#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "secure.h"

/* Prefix collisions (62^8 prefixes) are rare; a few fresh tries settle it. */
#define KEY_TRIES 4

static const char SQL_INSERT[] =
    "INSERT INTO api_keys (user_id, prefix, secret_hash, is_admin, created_at)"
    " VALUES (?, ?, UNHEX(?), ?, UTC_TIMESTAMP(6))";
static const char SQL_REVOKE[] =
    "UPDATE api_keys SET revoked_at = UTC_TIMESTAMP(6) WHERE prefix = ? AND revoked_at IS NULL";
static const char SQL_FIND[] =
    "SELECT revoked_at FROM api_keys WHERE prefix = ?";
static const char SQL_LIST[] =
    "SELECT k.prefix, u.name, k.is_admin, k.created_at, k.revoked_at"
    " FROM api_keys k JOIN users u ON u.id = k.user_id"
    " WHERE ? IS NULL OR u.name = ? ORDER BY u.name, k.id";

static int
run_create(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "admin", no_argument, NULL, 'a' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	char key[GQ_KEY_LEN], prefix[GQ_KEY_PREFIX_LEN + 1], hash[GQ_SHA256_HEX_LEN];
	bool admin = false;
	const char *user;
	struct db_stmt *st;
	struct db *db;
	uint64_t user_id;
	int c, rc = DB_DUP;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		if (c != 'a')
			return ctl_getopt_status(c);
		admin = true;
	}
	if (ctl_operands(cmd, argc, 1, 1) != CTL_OK)
		return CTL_FAIL;
	user = argv[optind];
	if (ctl_check_user(user) != CTL_OK || (db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	if ((rc = users_find(db, user, &user_id)) < 0)
		return ctl_fail_db(db, rc);
	if (rc == 0)
		return ctl_fail("unknown user '%s'", user);
	for (int i = 0; i < KEY_TRIES; i++) {
		if (gq_key_new(key, prefix) < 0 || gq_sha256_hex(key, strlen(key), hash) < 0)
			return ctl_fail("cannot make a key: no randomness or hash");
		if ((st = db_prepare(db, SQL_INSERT)) == NULL)
			return ctl_fail_db(db, db_last_status(db));
		db_bind_i64(st, 0, (int64_t)user_id);
		db_bind_str(st, 1, prefix);
		db_bind_str(st, 2, hash);
		db_bind_i64(st, 3, admin);
		if ((rc = db_exec(st)) != DB_DUP)
			break;
	}
	if (rc != DB_OK) {
		explicit_bzero(key, sizeof key);
		return ctl_fail_db(db, rc);
	}
	/* The only time the key exists outside its owner's hands: stdout, alone. */
	printf("%s\n", key);
	explicit_bzero(key, sizeof key);
	return CTL_OK;
}

static int
run_revoke(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	char prefix[GQ_KEY_PREFIX_LEN + 1];
	const char *arg;
	struct db_stmt *st;
	struct db *db;
	int rc;

	if ((rc = ctl_args(cmd, argc, argv, 1, 1)) != CTL_OK)
		return rc;
	arg = argv[optind];
	/* A whole key works too: its prefix is what is stored. */
	if (gq_key_prefix(arg, prefix) < 0) {
		if (strlen(arg) != GQ_KEY_PREFIX_LEN || strncmp(arg, "gq_", 3) != 0 ||
		    !ctl_name_ok(arg, GQ_KEY_PREFIX_LEN, ""))
			return ctl_fail("'%.64s' is not a key prefix (gq_XXXXXXXX)", arg);
		memcpy(prefix, arg, sizeof prefix);
	}
	if ((db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	if ((st = db_prepare(db, SQL_REVOKE)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_str(st, 0, prefix);
	if ((rc = db_exec(st)) != DB_OK)
		return ctl_fail_db(db, rc);
	if (db_affected_rows(st) == 1) {
		printf("key %s revoked\n", prefix);
		return CTL_OK;
	}
	if ((st = db_prepare(db, SQL_FIND)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_str(st, 0, prefix);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0)
		return ctl_fail_db(db, rc);
	if (rc == 0)
		return ctl_fail("unknown key prefix '%s'", prefix);
	printf("key %s was already revoked at %s\n", prefix, db_text(st, 0, NULL));
	return CTL_OK;
}

static void
list_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	cell[0] = db_text(st, 0, NULL);
	cell[1] = db_text(st, 1, NULL);
	cell[2] = db_i64(st, 2) ? "yes" : "no";
	cell[3] = tbl_time(buf[3], db_text(st, 3, NULL));
	cell[4] = tbl_time(buf[4], db_text(st, 4, NULL));
}

static int
run_list(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const header[] = { "PREFIX", "USER", "ADMIN", "CREATED", "REVOKED" };
	const char *user = NULL;
	struct db_stmt *st;
	struct db *db;
	uint64_t id;
	int rc;

	if ((rc = ctl_args(cmd, argc, argv, 0, 1)) != CTL_OK)
		return rc;
	if (optind < argc) {
		user = argv[optind];
		if (ctl_check_user(user) != CTL_OK)
			return CTL_FAIL;
	}
	if ((db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	if (user != NULL) {
		if ((rc = users_find(db, user, &id)) < 0)
			return ctl_fail_db(db, rc);
		if (rc == 0)
			return ctl_fail("unknown user '%s'", user);
	}
	if ((st = db_prepare(db, SQL_LIST)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_str(st, 0, user);
	db_bind_str(st, 1, user);
	return ctl_print_rows(db, st, CTL_NSUBS(header), header, list_row);
}

static const struct ctl_cmd subs[] = {
	{ "create", run_create, "key create USER [--admin]",
	  "Make an API key for a user and print it, alone on stdout; it is shown only this once.",
	  "  --admin  the key may act on every user's jobs and use the admin API\n", NULL, 0 },
	{ "revoke", run_revoke, "key revoke PREFIX",
	  "Revoke a key by its prefix (gq_XXXXXXXX); it stops working at once.", NULL, NULL, 0 },
	{ "list", run_list, "key list [USER]",
	  "List keys by prefix (secrets are never stored, so never shown).", NULL, NULL, 0 },
};

const struct ctl_cmd key_cmd = {
	"key", NULL, "key create|revoke|list ...", "Manage API keys.", NULL,
	subs, CTL_NSUBS(subs),
};
