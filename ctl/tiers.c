#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"

#define TIER_MAX_QUOTAS 32

static const char SQL_EXISTS[] =
    "SELECT 1 FROM tiers WHERE name = ?";
static const char SQL_LOCK[] =
    "SELECT 1 FROM tiers WHERE name = ? FOR UPDATE";
static const char SQL_INSERT[] =
    "INSERT INTO tiers (name, priority, max_active, rate_per_min, rate_burst, created_at)"
    " VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))";
/* NULL parameters keep the current value. */
static const char SQL_UPDATE[] =
    "UPDATE tiers SET priority = COALESCE(?, priority),"
    " max_active = COALESCE(?, max_active), rate_per_min = COALESCE(?, rate_per_min),"
    " rate_burst = COALESCE(?, rate_burst) WHERE name = ?";
static const char SQL_SET_QUOTA[] =
    "INSERT INTO tier_quotas (tier, queue, monthly_jobs) VALUES (?, ?, ?)"
    " ON DUPLICATE KEY UPDATE monthly_jobs = VALUES(monthly_jobs)";
static const char SQL_DROP_QUOTA[] =
    "DELETE FROM tier_quotas WHERE tier = ? AND queue = ?";
static const char SQL_LIST[] =
    "SELECT t.name, t.priority, t.max_active, t.rate_per_min, t.rate_burst,"
    " (SELECT GROUP_CONCAT(q.queue, '=', q.monthly_jobs ORDER BY q.queue SEPARATOR ',')"
    "   FROM tier_quotas q WHERE q.tier = t.name),"
    " (SELECT COUNT(*) FROM users u WHERE u.tier = t.name)"
    " FROM tiers t ORDER BY t.priority, t.name";

int
tiers_exists(struct db *db, const char *name)
{
	return ctl_row_exists(db, SQL_EXISTS, name);
}

/* A setting given on the command line, or not. */
struct opt_long {
	bool set;
	long v;
};

struct quota {
	const char *queue;
	long jobs;          /* -1: remove the quota (unlimited) */
};

struct tier_set {
	const char *name;
	struct opt_long priority, max_active, rate, burst;
	struct quota quotas[TIER_MAX_QUOTAS];
	size_t nquotas;
	bool created;
	char why[160];      /* the refusal, when the transaction says 1 */
};

static void
bind_opt(struct db_stmt *st, unsigned i, struct opt_long o)
{
	if (o.set)
		db_bind_i64(st, i, o.v);
	else
		db_bind_null(st, i);
}

static int
set_quotas(struct db *db, struct tier_set *ts)
{
	for (size_t i = 0; i < ts->nquotas; i++) {
		const struct quota *q = &ts->quotas[i];
		struct db_stmt *st;
		int rc = queues_exists(db, q->queue);

		if (rc < 0)
			return rc;
		if (rc == 0) {
			snprintf(ts->why, sizeof ts->why, "unknown queue '%s' in --quota", q->queue);
			return 1;
		}
		st = db_prepare(db, q->jobs < 0 ? SQL_DROP_QUOTA : SQL_SET_QUOTA);
		if (st == NULL)
			return db_last_status(db);
		db_bind_str(st, 0, ts->name);
		db_bind_str(st, 1, q->queue);
		if (q->jobs >= 0)
			db_bind_i64(st, 2, q->jobs);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
	}
	return DB_OK;
}

static int
tier_set_txn(struct db *db, void *arg)
{
	struct tier_set *ts = arg;
	struct db_stmt *st;
	int rc, exists;

	if ((st = db_prepare(db, SQL_LOCK)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, ts->name);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((exists = db_next(st)) < 0)
		return exists;
	ts->created = !exists;
	if (!exists) {
		if (!ts->priority.set || !ts->max_active.set || !ts->rate.set) {
			snprintf(ts->why, sizeof ts->why,
			    "new tier '%s' needs --priority, --max-active and --rate", ts->name);
			return 1;
		}
		if ((st = db_prepare(db, SQL_INSERT)) == NULL)
			return db_last_status(db);
		db_bind_str(st, 0, ts->name);
		db_bind_i64(st, 1, ts->priority.v);
		db_bind_i64(st, 2, ts->max_active.v);
		db_bind_i64(st, 3, ts->rate.v);
		/* A minute's worth of submits in one go unless told otherwise. */
		db_bind_i64(st, 4, ts->burst.set ? ts->burst.v : (ts->rate.v > 0 ? ts->rate.v : 1));
	} else {
		if ((st = db_prepare(db, SQL_UPDATE)) == NULL)
			return db_last_status(db);
		bind_opt(st, 0, ts->priority);
		bind_opt(st, 1, ts->max_active);
		bind_opt(st, 2, ts->rate);
		bind_opt(st, 3, ts->burst);
		db_bind_str(st, 4, ts->name);
	}
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	return set_quotas(db, ts);
}

/* "QUEUE=N" or "QUEUE=none". */
static int
parse_quota(struct tier_set *ts, char *arg)
{
	char *eq = strchr(arg, '=');
	struct quota *q;

	if (ts->nquotas == TIER_MAX_QUOTAS)
		return ctl_fail("at most %d --quota options", TIER_MAX_QUOTAS);
	if (eq == NULL)
		return ctl_fail("--quota: '%.64s' is not QUEUE=N (or QUEUE=none)", arg);
	*eq = '\0';
	q = &ts->quotas[ts->nquotas];
	q->queue = arg;
	if (ctl_check_queue(arg) != CTL_OK)
		return CTL_FAIL;
	if (strcmp(eq + 1, "none") == 0)
		q->jobs = -1;
	else if (ctl_parse_int("--quota", eq + 1, 0, 2147483647, &q->jobs) != CTL_OK)
		return CTL_FAIL;
	ts->nquotas++;
	return CTL_OK;
}

static int
run_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "priority", required_argument, NULL, 'p' },
		{ "max-active", required_argument, NULL, 'a' },
		{ "rate", required_argument, NULL, 'r' },
		{ "burst", required_argument, NULL, 'b' },
		{ "quota", required_argument, NULL, 'q' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	struct tier_set ts = { 0 };
	struct opt_long *o;
	long lo, hi;
	const char *what;
	int c;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		switch (c) {
		case 'p': o = &ts.priority; what = "--priority"; lo = 0; hi = 3; break;
		case 'a': o = &ts.max_active; what = "--max-active"; lo = 0; hi = 1000000; break;
		case 'r': o = &ts.rate; what = "--rate"; lo = 0; hi = 1000000; break;
		case 'b': o = &ts.burst; what = "--burst"; lo = 1; hi = 1000000; break;
		case 'q':
			if (parse_quota(&ts, optarg) != CTL_OK)
				return CTL_FAIL;
			continue;
		default:
			return ctl_getopt_status(c);
		}
		if (ctl_parse_int(what, optarg, lo, hi, &o->v) != CTL_OK)
			return CTL_FAIL;
		o->set = true;
	}
	if (ctl_operands(cmd, argc, 1, 1) != CTL_OK)
		return CTL_FAIL;
	ts.name = argv[optind];
	if (ctl_check_tier(ts.name) != CTL_OK)
		return CTL_FAIL;
	if (ctl_txn(ctl, tier_set_txn, &ts, ts.why) != CTL_OK)
		return CTL_FAIL;
	printf("tier %s %s\n", ts.name, ts.created ? "created" : "updated");
	return CTL_OK;
}

static void
list_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	(void)buf;
	cell[0] = db_text(st, 0, NULL);
	for (unsigned i = 1; i <= 4; i++)
		cell[i] = db_text(st, i, NULL);
	cell[5] = db_text(st, 6, NULL);
	cell[6] = db_text(st, 5, NULL);
}

static int
run_list(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const header[] = {
		"NAME", ">PRIORITY", ">MAX_ACTIVE", ">RATE/MIN", ">BURST", ">USERS", "MONTHLY QUOTAS",
	};

	return ctl_list_verb(ctl, cmd, argc, argv, SQL_LIST, CTL_NSUBS(header), header, list_row);
}

static const struct ctl_cmd subs[] = {
	{ "set", run_set,
	  "tier set NAME --priority P --max-active N --rate PER_MIN [--burst N] [--quota QUEUE=N ...]",
	  "Create or change a tier (an existing tier keeps what is not given).",
	  "  --priority P       0 runs first .. 3 last\n"
	  "  --max-active N     most jobs a user may have held, waiting, queued or running\n"
	  "  --rate PER_MIN     submits per minute (token bucket refill; 0: no limit)\n"
	  "  --burst N          token bucket size (default for a new tier: the rate)\n"
	  "  --quota QUEUE=N    monthly jobs in QUEUE (repeatable; QUEUE=none removes the quota)\n",
	  NULL, 0 },
	{ "list", run_list, "tier list", "List tiers with their limits and quotas.", NULL, NULL, 0 },
};

const struct ctl_cmd tier_cmd = {
	"tier", NULL, "tier set|list ...", "Manage service tiers.", NULL,
	subs, CTL_NSUBS(subs),
};
