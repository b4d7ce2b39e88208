#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "jobadmin.h"
#include "ledger.h"

#define QUEUE_MAX_PRICE (1000000 * GQ_MICRO)

static const char SQL_EXISTS[] =
    "SELECT 1 FROM queues WHERE name = ?";
static const char SQL_LOCK[] =
    "SELECT 1 FROM queues WHERE name = ? FOR UPDATE";
static const char SQL_INSERT[] =
    "INSERT INTO queues (name, created_at) VALUES (?, UTC_TIMESTAMP(6))";
/* NULL parameters keep the current (or, just after SQL_INSERT, default) value. */
static const char SQL_UPDATE[] =
    "UPDATE queues SET price_per_job = COALESCE(?, price_per_job),"
    " price_per_second = COALESCE(?, price_per_second),"
    " timeout_s = COALESCE(?, timeout_s), ttl_s = COALESCE(?, ttl_s),"
    " max_attempts = COALESCE(?, max_attempts), max_queued = COALESCE(?, max_queued),"
    " requires_approval = COALESCE(?, requires_approval),"
    " priority_aging_s = COALESCE(?, priority_aging_s)"
    " WHERE name = ?";
static const char SQL_LIST[] =
    "SELECT q.name, q.price_per_job, q.price_per_second, q.timeout_s, q.ttl_s,"
    " q.max_attempts, q.max_queued, q.requires_approval, q.priority_aging_s, q.paused,"
    " (SELECT COUNT(*) FROM backend_queues b WHERE b.queue = q.name),"
    " (SELECT COUNT(*) FROM jobs j WHERE j.queue = q.name AND j.status = 'queued')"
    " FROM queues q ORDER BY q.name";

int
queues_exists(struct db *db, const char *name)
{
	return ctl_row_exists(db, SQL_EXISTS, name);
}

/* The settings of SQL_UPDATE, in its parameter order. */
enum { Q_PRICE_JOB, Q_PRICE_SEC, Q_TIMEOUT, Q_TTL, Q_ATTEMPTS, Q_MAX_QUEUED,
	Q_APPROVAL, Q_AGING, Q_NSETTINGS };

struct queue_set {
	const char *name;
	bool add;
	bool set[Q_NSETTINGS];
	int64_t v[Q_NSETTINGS];
	char why[160];
};

static int
queue_set_txn(struct db *db, void *arg)
{
	struct queue_set *qs = arg;
	struct db_stmt *st;
	int rc;

	if (qs->add) {
		if ((st = db_prepare(db, SQL_INSERT)) == NULL)
			return db_last_status(db);
		db_bind_str(st, 0, qs->name);
		rc = db_exec(st);
		if (rc == DB_DUP) {
			snprintf(qs->why, sizeof qs->why,
			    "queue '%s' already exists (change it with 'queue set')", qs->name);
			return 1;
		}
	} else {
		if ((st = db_prepare(db, SQL_LOCK)) == NULL)
			return db_last_status(db);
		db_bind_str(st, 0, qs->name);
		if ((rc = db_exec(st)) == DB_OK && (rc = db_next(st)) == 0) {
			snprintf(qs->why, sizeof qs->why, "unknown queue '%s'", qs->name);
			return 1;
		}
		if (rc == 1)
			rc = DB_OK;
	}
	if (rc != DB_OK)
		return rc;
	if ((st = db_prepare(db, SQL_UPDATE)) == NULL)
		return db_last_status(db);
	for (unsigned i = 0; i < Q_NSETTINGS; i++) {
		if (qs->set[i])
			db_bind_i64(st, i, qs->v[i]);
		else
			db_bind_null(st, i);
	}
	db_bind_str(st, Q_NSETTINGS, qs->name);
	return db_exec(st);
}

static int
run_add_set(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "price-per-job", required_argument, NULL, Q_PRICE_JOB + 1 },
		{ "price-per-second", required_argument, NULL, Q_PRICE_SEC + 1 },
		{ "timeout", required_argument, NULL, Q_TIMEOUT + 1 },
		{ "ttl", required_argument, NULL, Q_TTL + 1 },
		{ "max-attempts", required_argument, NULL, Q_ATTEMPTS + 1 },
		{ "max-queued", required_argument, NULL, Q_MAX_QUEUED + 1 },
		{ "requires-approval", no_argument, NULL, 'A' },
		{ "no-requires-approval", no_argument, NULL, 'N' },
		{ "priority-aging", required_argument, NULL, Q_AGING + 1 },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	/* Bounds per setting, by index; prices are credits, not integers. */
	static const long lo[Q_NSETTINGS] = { 0, 0, 1, 1, 1, 0, 0, 0 };
	static const long hi[Q_NSETTINGS] = { 0, 0, 30L * 86400, 365L * 86400, 100,
		100000000, 1, 30L * 86400 };
	static const char *const names[Q_NSETTINGS] = { "--price-per-job",
		"--price-per-second", "--timeout", "--ttl", "--max-attempts", "--max-queued",
		"--requires-approval", "--priority-aging" };
	struct queue_set qs = { 0 };
	int c;

	qs.add = strcmp(cmd->name, "add") == 0;
	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		int i = c - 1;
		long n;

		if (c == 'A' || c == 'N') {
			qs.set[Q_APPROVAL] = true;
			qs.v[Q_APPROVAL] = c == 'A';
			continue;
		}
		if (i < 0 || i >= Q_NSETTINGS)
			return ctl_getopt_status(c);
		if (i == Q_PRICE_JOB || i == Q_PRICE_SEC) {
			if (ctl_parse_credits(names[i], optarg, &qs.v[i]) != CTL_OK)
				return CTL_FAIL;
			/* Keeps price_per_second * timeout_s (a hold) far inside BIGINT. */
			if (qs.v[i] > QUEUE_MAX_PRICE)
				return ctl_fail("%s: at most 1000000 credits", names[i]);
		} else {
			if (ctl_parse_int(names[i], optarg, lo[i], hi[i], &n) != CTL_OK)
				return CTL_FAIL;
			qs.v[i] = n;
		}
		qs.set[i] = true;
	}
	if (ctl_operands(cmd, argc, 1, 1) != CTL_OK)
		return CTL_FAIL;
	qs.name = argv[optind];
	if (ctl_check_queue(qs.name) != CTL_OK)
		return CTL_FAIL;
	if (ctl_txn(ctl, queue_set_txn, &qs, qs.why) != CTL_OK)
		return CTL_FAIL;
	printf("queue %s %s\n", qs.name, qs.add ? "added" : "updated");
	return CTL_OK;
}

static int
run_pause_resume(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	bool pause = strcmp(cmd->name, "pause") == 0;
	const char *name;
	struct db *db;
	int rc;

	if ((rc = ctl_args(cmd, argc, argv, 1, 1)) != CTL_OK)
		return rc;
	name = argv[optind];
	if (ctl_check_queue(name) != CTL_OK || (db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	/* The admin API's pause and resume do exactly this (lib/jobadmin.c). */
	rc = jobadmin_queue_pause(db, name, pause);
	if (rc == JOBADMIN_NOT_FOUND)
		return ctl_fail("unknown queue '%s'", name);
	if (rc != DB_OK)
		return ctl_fail_db(db, rc);
	printf("queue %s %s\n", name, pause ? "paused" : "resumed");
	return CTL_OK;
}

static void
list_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	cell[0] = db_text(st, 0, NULL);
	cell[1] = tbl_credits(buf[1], db_i64(st, 1));
	cell[2] = tbl_credits(buf[2], db_i64(st, 2));
	for (unsigned i = 3; i <= 6; i++)
		cell[i] = db_text(st, i, NULL);
	cell[7] = db_i64(st, 7) ? "yes" : "no";
	cell[8] = db_text(st, 8, NULL);
	cell[9] = db_i64(st, 9) ? "yes" : "no";
	cell[10] = db_text(st, 10, NULL);
	cell[11] = db_text(st, 11, NULL);
}

static int
run_list(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const header[] = {
		"NAME", ">PRICE/JOB", ">PRICE/S", ">TIMEOUT_S", ">TTL_S", ">ATTEMPTS",
		">MAX_QUEUED", "APPROVAL", ">AGING_S", "PAUSED", ">BACKENDS", ">QUEUED",
	};

	return ctl_list_verb(ctl, cmd, argc, argv, SQL_LIST, CTL_NSUBS(header), header, list_row);
}

#define QUEUE_OPTIONS \
	"  --price-per-job X         credits held and charged per job (decimal)\n" \
	"  --price-per-second Y      credits per second of run time (decimal)\n" \
	"  --timeout S               one attempt's run time limit, seconds\n" \
	"  --ttl S                   time a job may wait queued, seconds\n" \
	"  --max-attempts N          tries of a job, retries included (1..100)\n" \
	"  --max-queued N            queue depth limit (submits beyond it: 503 queue_full)\n" \
	"  --requires-approval       hold new jobs until an admin approves them\n" \
	"  --no-requires-approval    run new jobs without approval\n" \
	"  --priority-aging S        raise a queued job one priority level per S seconds (0: never)\n"

#define QUEUE_USAGE_OPTS "[--price-per-job X] [--price-per-second Y] [--timeout S] [--ttl S]" \
	" [--max-attempts N] [--max-queued N] [--[no-]requires-approval] [--priority-aging S]"

static const struct ctl_cmd subs[] = {
	{ "add", run_add_set, "queue add NAME " QUEUE_USAGE_OPTS,
	  "Create a queue (unset options take the schema's defaults).", QUEUE_OPTIONS, NULL, 0 },
	{ "set", run_add_set, "queue set NAME " QUEUE_USAGE_OPTS,
	  "Change a queue's settings (those not given stay).", QUEUE_OPTIONS, NULL, 0 },
	{ "pause", run_pause_resume, "queue pause NAME",
	  "Pause a queue: new submits are refused with 503 queue_paused.", NULL, NULL, 0 },
	{ "resume", run_pause_resume, "queue resume NAME", "Accept submits again.", NULL, NULL, 0 },
	{ "list", run_list, "queue list", "List queues and their settings.", NULL, NULL, 0 },
};

const struct ctl_cmd queue_cmd = {
	"queue", NULL, "queue add|set|pause|resume|list ...", "Manage queues.", NULL,
	subs, CTL_NSUBS(subs),
};
