#include "autoconf.h"

#include <stdio.h>

#include "ctl.h"
#include "db.h"

/* Active counts come from the jobs_claim index (queue, status); the last
 * hour's terminal counts filter that range by finished_at. */
#define COUNT_STATUS(s) \
    " (SELECT COUNT(*) FROM jobs j WHERE j.queue = q.name AND j.status = '" s "'),"
#define COUNT_RECENT(s) \
    " (SELECT COUNT(*) FROM jobs j WHERE j.queue = q.name AND j.status = '" s "'" \
    "   AND j.finished_at >= UTC_TIMESTAMP(6) - INTERVAL 1 HOUR),"

static const char SQL_QUEUES[] =
    "SELECT q.name, q.paused,"
    COUNT_STATUS("held") COUNT_STATUS("waiting") COUNT_STATUS("queued") COUNT_STATUS("running")
    COUNT_RECENT("succeeded") COUNT_RECENT("failed") COUNT_RECENT("canceled")
    COUNT_RECENT("expired")
    " (SELECT COUNT(*) FROM backend_queues bq JOIN backends b ON b.id = bq.backend_id"
    "   WHERE bq.queue = q.name AND b.healthy = 1 AND b.draining = 0),"
    " (SELECT COUNT(*) FROM backend_queues bq WHERE bq.queue = q.name AND EXISTS"
    "   (SELECT 1 FROM jobs j WHERE j.status = 'running' AND j.backend_id = bq.backend_id)),"
    " (SELECT COUNT(*) FROM backend_queues bq WHERE bq.queue = q.name)"
    " FROM queues q ORDER BY q.name";
static const char SQL_BACKENDS[] =
    "SELECT COUNT(*), COALESCE(SUM(healthy = 1 AND draining = 0), 0),"
    " COALESCE(SUM(draining), 0), COALESCE(SUM(healthy = 0), 0),"
    " (SELECT COUNT(DISTINCT backend_id) FROM jobs WHERE status = 'running')"
    " FROM backends";

static void
queue_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	cell[0] = db_text(st, 0, NULL);
	cell[1] = db_i64(st, 1) ? "yes" : "no";
	for (unsigned i = 2; i <= 9; i++)
		cell[i] = db_text(st, i, NULL);
	snprintf(buf[10], 32, "%lld/%lld/%lld", (long long)db_i64(st, 10),
	    (long long)db_i64(st, 11), (long long)db_i64(st, 12));
	cell[10] = buf[10];
}

static int
run_stats(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const header[] = {
		"QUEUE", "PAUSED", ">HELD", ">WAITING", ">QUEUED", ">RUNNING",
		">SUCCEEDED/1H", ">FAILED/1H", ">CANCELED/1H", ">EXPIRED/1H", ">BACKENDS UP/BUSY/ALL",
	};
	struct db_stmt *st;
	struct db *db;
	int rc;

	if ((rc = ctl_args(cmd, argc, argv, 0, 0)) != CTL_OK)
		return rc;
	if ((db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	if ((st = db_prepare(db, SQL_QUEUES)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	if (ctl_print_rows(db, st, CTL_NSUBS(header), header, queue_row) != CTL_OK)
		return CTL_FAIL;
	if ((st = db_prepare(db, SQL_BACKENDS)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) != 1)
		return ctl_fail_db(db, rc < 0 ? rc : DB_ERR);
	printf("\nbackends: %s total, %s up, %s busy, %s draining, %s down\n",
	    db_text(st, 0, NULL), db_text(st, 1, NULL), db_text(st, 4, NULL),
	    db_text(st, 2, NULL), db_text(st, 3, NULL));
	return CTL_OK;
}

const struct ctl_cmd stats_cmd = {
	"stats", run_stats, "stats",
	"Per queue: jobs by status (terminal ones in the last hour) and backends up/busy.",
	NULL, NULL, 0,
};
