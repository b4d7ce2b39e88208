#include "autoconf.h"

#include <stdio.h>

#include "ctl.h"
#include "db.h"
#include "secure.h"

static const char SQL_FIND[] =
    "SELECT id FROM users WHERE name = ?";
static const char SQL_ADD[] =
    "INSERT INTO users (name, tier, webhook_secret, created_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))";
static const char SQL_SECRET[] =
    "SELECT webhook_secret FROM users WHERE name = ?";
static const char SQL_SET_SECRET[] =
    "UPDATE users SET webhook_secret = ? WHERE name = ?";
static const char SQL_SET_TIER[] =
    "UPDATE users SET tier = ? WHERE name = ?";
/* Active jobs and their holds, per user, through the jobs_user index. */
static const char SQL_LIST[] =
    "SELECT u.name, u.tier, u.balance,"
    " (SELECT COUNT(*) FROM jobs j WHERE j.user_id = u.id"
    "   AND j.status IN ('held','waiting','queued','running')),"
    " (SELECT COALESCE(SUM(j.cost_held), 0) FROM jobs j WHERE j.user_id = u.id"
    "   AND j.status IN ('held','waiting','queued','running')),"
    " (SELECT COUNT(*) FROM api_keys k WHERE k.user_id = u.id AND k.revoked_at IS NULL),"
    " u.created_at"
    " FROM users u ORDER BY u.name";

int
users_find(struct db *db, const char *name, uint64_t *id)
{
	struct db_stmt *st = db_prepare(db, SQL_FIND);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, name);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc;
	*id = (uint64_t)db_i64(st, 0);
	return 1;
}

/* A tier that must exist; CTL_OK or CTL_FAIL (printed). */
static int
require_tier(struct db *db, const char *tier)
{
	int rc = tiers_exists(db, tier);

	if (rc < 0)
		return ctl_fail_db(db, rc);
	if (rc == 0)
		return ctl_fail("unknown tier '%s' (see 'genqctl tier list')", tier);
	return CTL_OK;
}

static int
run_add(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tier", required_argument, NULL, 't' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	const char *name, *tier = NULL;
	char secret[GQ_WEBHOOK_SECRET_LEN];
	struct db_stmt *st;
	struct db *db;
	int c, rc;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		if (c != 't')
			return ctl_getopt_status(c);
		tier = optarg;
	}
	if (ctl_operands(cmd, argc, 1, 1) != CTL_OK)
		return CTL_FAIL;
	name = argv[optind];
	if (tier == NULL)
		return ctl_fail("user add: --tier is required");
	if (ctl_check_user(name) != CTL_OK || ctl_check_tier(tier) != CTL_OK)
		return CTL_FAIL;
	if ((db = ctl_db(ctl)) == NULL || require_tier(db, tier) != CTL_OK)
		return CTL_FAIL;
	if (gq_webhook_secret_new(secret) < 0)
		return ctl_fail("no random numbers for the webhook secret");
	if ((st = db_prepare(db, SQL_ADD)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_str(st, 0, name);
	db_bind_str(st, 1, tier);
	db_bind_str(st, 2, secret);
	rc = db_exec(st);
	if (rc == DB_DUP)
		return ctl_fail("user '%s' already exists", name);
	if (rc != DB_OK)
		return ctl_fail_db(db, rc);
	printf("user %s added (tier %s)\n", name, tier);
	return CTL_OK;
}

static int
run_set_tier(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const char *name, *tier;
	struct db_stmt *st;
	struct db *db;
	uint64_t id;
	int rc;

	if ((rc = ctl_args(cmd, argc, argv, 2, 2)) != CTL_OK)
		return rc;
	name = argv[optind];
	tier = argv[optind + 1];
	if (ctl_check_user(name) != CTL_OK || ctl_check_tier(tier) != CTL_OK)
		return CTL_FAIL;
	if ((db = ctl_db(ctl)) == NULL || require_tier(db, tier) != CTL_OK)
		return CTL_FAIL;
	if ((rc = users_find(db, name, &id)) < 0)
		return ctl_fail_db(db, rc);
	if (rc == 0)
		return ctl_fail("unknown user '%s'", name);
	if ((st = db_prepare(db, SQL_SET_TIER)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_str(st, 0, tier);
	db_bind_str(st, 1, name);
	if ((rc = db_exec(st)) != DB_OK)
		return ctl_fail_db(db, rc);
	printf("user %s is now in tier %s\n", name, tier);
	return CTL_OK;
}

/* Print the user's webhook signing secret, making a new one with --rotate
 * (messages already signed stay verifiable only with the old one). */
static int
run_webhook_secret(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rotate", no_argument, NULL, 'r' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	char secret[GQ_WEBHOOK_SECRET_LEN];
	const char *name, *have;
	bool rotate = false;
	struct db_stmt *st;
	struct db *db;
	int c, rc;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		if (c != 'r')
			return ctl_getopt_status(c);
		rotate = true;
	}
	if (ctl_operands(cmd, argc, 1, 1) != CTL_OK)
		return CTL_FAIL;
	name = argv[optind];
	if (ctl_check_user(name) != CTL_OK || (db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	if ((st = db_prepare(db, SQL_SECRET)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_str(st, 0, name);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0)
		return ctl_fail_db(db, rc);
	if (rc == 0)
		return ctl_fail("unknown user '%s'", name);
	have = db_text(st, 0, NULL);
	if (have != NULL && !rotate) {
		printf("%s\n", have);
		return CTL_OK;
	}
	if (gq_webhook_secret_new(secret) < 0)
		return ctl_fail("no random numbers for the webhook secret");
	if ((st = db_prepare(db, SQL_SET_SECRET)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_str(st, 0, secret);
	db_bind_str(st, 1, name);
	if ((rc = db_exec(st)) != DB_OK)
		return ctl_fail_db(db, rc);
	printf("%s\n", secret);
	return CTL_OK;
}

static void
list_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	cell[0] = db_text(st, 0, NULL);
	cell[1] = db_text(st, 1, NULL);
	cell[2] = tbl_credits(buf[2], db_i64(st, 2));
	cell[3] = tbl_credits(buf[3], db_i64(st, 4));
	cell[4] = tbl_i64(buf[4], db_i64(st, 3));
	cell[5] = tbl_i64(buf[5], db_i64(st, 5));
	cell[6] = tbl_time(buf[6], db_text(st, 6, NULL));
}

static int
run_list(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const header[] = {
		"NAME", "TIER", ">BALANCE", ">HOLDS", ">ACTIVE", ">KEYS", "CREATED",
	};

	return ctl_list_verb(ctl, cmd, argc, argv, SQL_LIST, CTL_NSUBS(header), header, list_row);
}

static const struct ctl_cmd subs[] = {
	{ "add", run_add, "user add NAME --tier TIER", "Create a user in a tier.",
	  "  NAME         1 to 64 of A-Z a-z 0-9 _ . @ -\n"
	  "  --tier TIER  the user's tier (see 'genqctl tier list')\n", NULL, 0 },
	{ "list", run_list, "user list",
	  "List users: tier, available credits, open holds, active jobs, live keys.", NULL, NULL, 0 },
	{ "set-tier", run_set_tier, "user set-tier NAME TIER", "Move a user to another tier.",
	  NULL, NULL, 0 },
	{ "webhook-secret", run_webhook_secret, "user webhook-secret NAME [--rotate]",
	  "Print the secret that signs the user's webhooks (alone on its line).",
	  "  --rotate     replace it with a new one first\n", NULL, 0 },
};

const struct ctl_cmd user_cmd = {
	"user", NULL, "user add|list|set-tier|webhook-secret ...", "Manage users.", NULL,
	subs, CTL_NSUBS(subs),
};
