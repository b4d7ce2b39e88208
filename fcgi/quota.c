/* quota: monthly per-queue job quotas of a tier (tier_quotas; no row means
 * no quota). SPEC §5: a quota counts the user's jobs in the queue created
 * since the first of the current month (UTC) that succeeded or are still
 * active; failed, canceled and expired jobs give their place back. The
 * counts read the index jobs_quota (user_id, queue, created_at, status)
 * only. Inside the submit transaction the user's row lock makes the count
 * exact under concurrency (every job insert of the user holds that lock). */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "db.h"
#include "gqtime.h"

static const char SQL_LIMIT[] =
    "SELECT q.monthly_jobs FROM users u JOIN tier_quotas q ON q.tier = u.tier "
    "WHERE u.id = ? AND q.queue = ?";
/* Counting stops at the limit: a quota costs at most that many index rows. */
static const char SQL_USED_UPTO[] =
    "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE user_id = ? AND queue = ? "
    "AND created_at >= DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-01') "
    "AND status IN ('succeeded', 'held', 'waiting', 'queued', 'running') LIMIT ?) n";
static const char SQL_USED[] =
    "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND queue = ? "
    "AND created_at >= DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-01') "
    "AND status IN ('succeeded', 'held', 'waiting', 'queued', 'running')";
/* Every queue with the caller's quota for it (NULL: none). */
static const char SQL_QUEUES[] =
    "SELECT q.name, tq.monthly_jobs FROM queues q "
    "LEFT JOIN tier_quotas tq ON tq.queue = q.name "
    "AND tq.tier = (SELECT tier FROM users WHERE id = ?) ORDER BY q.name";

#define QUOTA_MAX_QUEUES 256

static int
count(struct db *db, const char *sql, uint64_t user_id, const char *queue,
    int64_t upto, int64_t *n)
{
	struct db_stmt *st = db_prepare(db, sql);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)user_id);
	db_bind_str(st, 1, queue);
	if (upto >= 0)
		db_bind_i64(st, 2, upto);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	*n = db_i64(st, 0);
	return DB_OK;
}

int
quota_check(struct db *db, uint64_t user_id, const char *queue, struct quota_state *qs)
{
	struct db_stmt *st = db_prepare(db, SQL_LIMIT);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)user_id);
	db_bind_str(st, 1, queue);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) < 0)
		return rc;
	return quota_check_limit(db, user_id, queue, rc == 1, rc == 1 ? db_i64(st, 0) : 0, qs);
}

int
quota_check_limit(struct db *db, uint64_t user_id, const char *queue, bool limited,
    int64_t limit, struct quota_state *qs)
{
	int rc;

	memset(qs, 0, sizeof *qs);
	if (!limited)
		return DB_OK;               /* no quota for this queue */
	qs->limited = true;
	qs->limit = limit;
	if ((rc = count(db, SQL_USED_UPTO, user_id, queue, qs->limit, &qs->used)) != DB_OK)
		return rc;
	return qs->used >= qs->limit ? QUOTA_EXCEEDED : DB_OK;
}

void
quota_period_end(char out[GQ_RFC3339_LEN])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	if (++tm.tm_mon == 12) {
		tm.tm_mon = 0;
		tm.tm_year++;
	}
	gq_time_rfc3339(out, (int64_t)timegm(&tm) * 1000000);
}

/* One queue's {used, limit} into queues (limit null: no quota). */
static int
add_usage(struct db *db, uint64_t user_id, const char *queue, bool limited,
    int64_t limit, struct json_object *queues)
{
	struct json_object *o;
	int64_t used;
	int rc;

	if ((rc = count(db, SQL_USED, user_id, queue, -1, &used)) != DB_OK)
		return rc;
	if ((o = json_object_new_object()) == NULL)
		return DB_NOMEM;
	json_object_object_add(o, "used", json_object_new_int64(used));
	json_object_object_add(o, "limit", limited ? json_object_new_int64(limit) : NULL);
	json_object_object_add(queues, queue, o);
	return DB_OK;
}

int
quota_usage(struct db *db, uint64_t user_id, struct json_object **out)
{
	struct {
		char name[129];     /* VARCHAR(32) of utf8mb4 */
		bool limited;
		int64_t limit;
	} q[QUOTA_MAX_QUEUES];
	struct json_object *queues = NULL;
	struct db_stmt *st = db_prepare(db, SQL_QUEUES);
	size_t n = 0;
	int rc;

	*out = NULL;
	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	/* Copy the list out first: the counts reuse the connection. */
	while (n < QUOTA_MAX_QUEUES && (rc = db_next(st)) == 1) {
		snprintf(q[n].name, sizeof q[n].name, "%s", db_text(st, 0, NULL));
		q[n].limited = !db_is_null(st, 1);
		q[n].limit = db_i64(st, 1);
		n++;
	}
	if (rc < 0)
		return rc;
	if ((queues = json_object_new_object()) == NULL)
		return DB_NOMEM;
	for (size_t i = 0; i < n; i++) {
		if ((rc = add_usage(db, user_id, q[i].name, q[i].limited, q[i].limit, queues)) != DB_OK) {
			json_object_put(queues);
			return rc;
		}
	}
	*out = queues;
	return DB_OK;
}
