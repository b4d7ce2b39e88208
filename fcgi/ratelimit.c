/* ratelimit: the per-user submit token bucket of SPEC §3, shared by every
 * handler process on every host because its only state is one row per user
 * in rate_buckets.
 *
 * The bucket is kept as GCRA's theoretical arrival time (tat): a tier with
 * rate_per_min r and rate_burst b emits one token every T = 60 s / r and
 * holds at most b, so a submit at time now is admitted when
 * max(tat, now) + T - now <= b * T, and then tat moves on by T. Integer
 * microseconds, the database's clock (all hosts read the same one), no
 * rounding drift. A tier with rate_per_min 0 has no submit limit.
 *
 * Exactness under concurrency comes from the caller: rate_take runs inside
 * a transaction that holds the user's row lock (SELECT ... FOR UPDATE on
 * users), and every writer of a user's bucket does so, so the read below is
 * the latest state and no two submits take the same token. rate_take_read
 * decides on the caller's read instead, made the same way (submit.c reads
 * the bucket in its lock's statement). */
#include "autoconf.h"

#include <string.h>

#include "app.h"
#include "db.h"
#include "gqtime.h"

/* The tier's rate, the bucket and the database's now, in one read. */
static const char SQL_BUCKET[] =
    "SELECT t.rate_per_min, t.rate_burst, b.tat, UTC_TIMESTAMP(6) "
    "FROM users u JOIN tiers t ON t.name = u.tier "
    "LEFT JOIN rate_buckets b ON b.user_id = u.id WHERE u.id = ?";
static const char SQL_BUCKET_SET[] =
    "INSERT INTO rate_buckets (user_id, tat) VALUES (?, ?) "
    "ON DUPLICATE KEY UPDATE tat = VALUES(tat)";

#define US_PER_S 1000000LL
#define US_PER_MIN 60000000LL
#define RATE_MAX_BURST 1000000

/* Seconds, rounded up, for a header: never negative. */
static int
ceil_s(int64_t us)
{
	if (us <= 0)
		return 0;
	return (int)((us + US_PER_S - 1) / US_PER_S);
}

int
rate_gcra(int64_t rate_per_min, int64_t burst, int64_t tat, int64_t now, bool take,
    struct rate_state *rs, int64_t *next_tat)
{
	int64_t interval, capacity, next, left;

	memset(rs, 0, sizeof *rs);
	*next_tat = tat;
	if (rate_per_min <= 0)
		return 0;
	if (burst < 1)
		burst = 1;
	if (burst > RATE_MAX_BURST)
		burst = RATE_MAX_BURST;
	rs->limited = true;
	rs->limit = (int)burst;
	interval = US_PER_MIN / rate_per_min;
	if (interval < 1)
		interval = 1;
	capacity = burst * interval;
	if (tat < now)              /* a full bucket has no past to remember */
		tat = now;
	next = tat + interval;
	if (take && next - now > capacity) {
		rs->retry_after_s = ceil_s(next - now - capacity);
		if (rs->retry_after_s < 1)
			rs->retry_after_s = 1;
		take = false;
	}
	if (take)
		tat = next;
	*next_tat = tat;
	left = capacity - (tat - now);
	rs->remaining = left > 0 ? (int)(left / interval) : 0;
	rs->reset_s = ceil_s(tat - now);
	return rs->retry_after_s > 0 ? RATE_REFUSED : 0;
}

/* Decide on a bucket read as b; with take (and a token), write its new
 * state. */
static int
decide(struct db *db, uint64_t user_id, const struct rate_bucket *b, bool take,
    struct rate_state *rs)
{
	struct db_stmt *st;
	char when[GQ_SQLTIME_LEN];
	int64_t next;
	int rc;

	rc = rate_gcra(b->rate_per_min, b->burst, b->tat, b->now, take, rs, &next);
	if (rc != 0 || !take || !rs->limited)
		return rc;
	if ((st = db_prepare(db, SQL_BUCKET_SET)) == NULL)
		return db_last_status(db);
	gq_time_sql(when, next);
	db_bind_i64(st, 0, (int64_t)user_id);
	db_bind_str(st, 1, when);
	return db_exec(st);
}

/* Read the bucket and decide; with take, write the new state. */
static int
bucket(struct db *db, uint64_t user_id, bool take, struct rate_state *rs)
{
	struct db_stmt *st = db_prepare(db, SQL_BUCKET);
	struct rate_bucket b;
	int rc;

	memset(rs, 0, sizeof *rs);
	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	b.rate_per_min = db_i64(st, 0);
	b.burst = db_i64(st, 1);
	b.tat = db_is_null(st, 2) ? 0 : db_time_us(st, 2);
	b.now = db_time_us(st, 3);
	return decide(db, user_id, &b, take, rs);
}

int
rate_take_read(struct db *db, uint64_t user_id, const struct rate_bucket *b,
    struct rate_state *rs)
{
	return decide(db, user_id, b, true, rs);
}

int
rate_take(struct db *db, uint64_t user_id, struct rate_state *rs)
{
	return bucket(db, user_id, true, rs);
}

int
rate_peek(struct db *db, uint64_t user_id, struct rate_state *rs)
{
	return bucket(db, user_id, false, rs);
}

void
rate_headers(struct resp *resp, const struct rate_state *rs)
{
	if (!rs->limited)
		return;
	resp_header(resp, "RateLimit-Limit", "%d", rs->limit);
	resp_header(resp, "RateLimit-Remaining", "%d", rs->remaining);
	resp_header(resp, "RateLimit-Reset", "%d", rs->reset_s);
}

struct json_object *
rate_json(const struct rate_state *rs)
{
	struct json_object *o;

	if (!rs->limited)
		return NULL;
	if ((o = json_object_new_object()) == NULL)
		return NULL;
	json_object_object_add(o, "limit", json_object_new_int(rs->limit));
	json_object_object_add(o, "remaining", json_object_new_int(rs->remaining));
	json_object_object_add(o, "reset", json_object_new_int(rs->reset_s));
	return o;
}
