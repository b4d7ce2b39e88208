#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "jobadmin.h"
#include "ledger.h"

#define NOTE_MAX 256

static const char SQL_BALANCE[] =
    "SELECT u.balance, u.tier,"
    " (SELECT COALESCE(SUM(j.cost_held), 0) FROM jobs j WHERE j.user_id = u.id"
    "   AND j.status IN ('held','waiting','queued','running')),"
    " (SELECT COUNT(*) FROM jobs j WHERE j.user_id = u.id"
    "   AND j.status IN ('held','waiting','queued','running'))"
    " FROM users u WHERE u.id = ?";
static const char SQL_RECENT[] =
    "SELECT l.at, l.kind, l.amount, l.balance_after, j.id, l.actor, l.note"
    " FROM ledger l LEFT JOIN jobs j ON j.seq = l.job_seq"
    " WHERE l.user_id = ? ORDER BY l.id DESC LIMIT ?";

static int
run_grant(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "note", required_argument, NULL, 'n' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	struct jobadmin_grant g = { 0 };
	const char *user;
	char amount[32];
	struct db *db;
	int c, rc;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		if (c != 'n')
			return ctl_getopt_status(c);
		g.note = optarg;
	}
	if (ctl_operands(cmd, argc, 2, 2) != CTL_OK)
		return CTL_FAIL;
	user = argv[optind];
	if (ctl_check_user(user) != CTL_OK ||
	    ctl_parse_credits("AMOUNT", argv[optind + 1], &g.amount) != CTL_OK)
		return CTL_FAIL;
	if (g.amount == 0)
		return ctl_fail("AMOUNT: a grant must be more than 0 credits");
	if (g.note != NULL && strlen(g.note) > NOTE_MAX)
		return ctl_fail("--note: longer than %d bytes", NOTE_MAX);
	if ((db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	/* The same grant as the admin API's (lib/jobadmin.c). */
	g.user = user;
	g.actor = CTL_ACTOR;
	rc = jobadmin_grant(db, &g);
	if (rc == JOBADMIN_NOT_FOUND)
		return ctl_fail("unknown user '%s'", user);
	if (rc > 0)
		return ctl_fail("AMOUNT: %s", jobadmin_strerror(rc));
	if (rc != DB_OK)
		return ctl_fail_db(db, rc);
	printf("granted %s credits to %s\n", tbl_credits(amount, g.amount), user);
	return CTL_OK;
}

static void
ledger_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	cell[0] = tbl_time(buf[0], db_text(st, 0, NULL));
	cell[1] = db_text(st, 1, NULL);
	cell[2] = tbl_credits(buf[2], db_i64(st, 2));
	cell[3] = tbl_credits(buf[3], db_i64(st, 3));
	cell[4] = db_text(st, 4, NULL);
	cell[5] = db_text(st, 5, NULL);
	cell[6] = db_text(st, 6, NULL);
}

static int
run_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "limit", required_argument, NULL, 'l' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	static const char *const header[] = {
		"AT", "KIND", ">AMOUNT", ">BALANCE", "JOB", "ACTOR", "NOTE",
	};
	char bal[32], holds[32];
	const char *user;
	struct db_stmt *st;
	struct db *db;
	uint64_t id;
	long limit = 20;
	int c, rc;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		if (c != 'l')
			return ctl_getopt_status(c);
		if (ctl_parse_int("--limit", optarg, 0, 10000, &limit) != CTL_OK)
			return CTL_FAIL;
	}
	if (ctl_operands(cmd, argc, 1, 1) != CTL_OK)
		return CTL_FAIL;
	user = argv[optind];
	if (ctl_check_user(user) != CTL_OK || (db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	if ((rc = users_find(db, user, &id)) < 0)
		return ctl_fail_db(db, rc);
	if (rc == 0)
		return ctl_fail("unknown user '%s'", user);
	if ((st = db_prepare(db, SQL_BALANCE)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_i64(st, 0, (int64_t)id);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) != 1)
		return rc == 0 ? ctl_fail("unknown user '%s'", user) : ctl_fail_db(db, rc);
	printf("user       %s (tier %s)\n", user, db_text(st, 1, NULL));
	printf("available  %s\n", tbl_credits(bal, db_i64(st, 0)));
	printf("holds      %s (%lld active jobs)\n", tbl_credits(holds, db_i64(st, 2)),
	    (long long)db_i64(st, 3));
	if (limit == 0)
		return CTL_OK;
	printf("\nrecent ledger rows (newest first):\n");
	if ((st = db_prepare(db, SQL_RECENT)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_i64(st, 0, (int64_t)id);
	db_bind_i64(st, 1, limit);
	return ctl_print_rows(db, st, CTL_NSUBS(header), header, ledger_row);
}

static const struct ctl_cmd subs[] = {
	{ "grant", run_grant, "credits grant USER AMOUNT [--note TEXT]",
	  "Add credits to a user's balance (AMOUNT: a decimal like 10 or 2.5).",
	  "  --note TEXT  why, kept on the ledger row\n", NULL, 0 },
	{ "show", run_show, "credits show USER [--limit N]",
	  "A user's available balance, open holds and recent ledger rows.",
	  "  --limit N  how many ledger rows (default 20)\n", NULL, 0 },
};

const struct ctl_cmd credits_cmd = {
	"credits", NULL, "credits grant|show ...", "Manage credits.", NULL,
	subs, CTL_NSUBS(subs),
};
