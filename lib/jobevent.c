#include "autoconf.h"

#include "db.h"
#include "jobevent.h"

static const char SQL_INSERT_EVENT[] =
    "INSERT INTO job_events (job_seq, at, from_status, to_status, actor, reason, attempt, backend_id) "
    "VALUES (?, UTC_TIMESTAMP(6), ?, ?, ?, LEFT(?, 1024), ?, ?)";

int
job_event_add(struct db *db, uint64_t job_seq, const char *from, const char *to,
    const char *actor, const char *reason, int attempt, uint64_t backend_id)
{
	struct db_stmt *st = db_prepare(db, SQL_INSERT_EVENT);

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)job_seq);
	db_bind_str(st, 1, from);
	db_bind_str(st, 2, to);
	db_bind_str(st, 3, actor);
	db_bind_str(st, 4, reason);
	if (attempt > 0)
		db_bind_i64(st, 5, attempt);
	else
		db_bind_null(st, 5);
	if (backend_id)
		db_bind_i64(st, 6, (int64_t)backend_id);
	else
		db_bind_null(st, 6);
	return db_exec(st);
}
