#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "gqtime.h"
#include "ledger.h"

/* The conditional update is what keeps the balance from going negative even
 * when two transactions race: the second one sees the first's row lock. */
static const char SQL_MOVE_BALANCE[] =
    "UPDATE users SET balance = balance + ? WHERE id = ? AND balance + ? >= 0";
static const char SQL_BALANCE[] =
    "SELECT balance FROM users WHERE id = ?";
static const char SQL_INSERT_ROW[] =
    "INSERT INTO ledger (user_id, job_seq, kind, amount, balance_after, at, actor, note) "
    "VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6), ?, ?)";

int
ledger_apply(struct db *db, uint64_t user_id, uint64_t job_seq,
    const char *kind, int64_t amount, const char *actor, const char *note)
{
	struct db_stmt *st;
	int64_t balance;
	int rc;

	if ((st = db_prepare(db, SQL_MOVE_BALANCE)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, amount);
	db_bind_i64(st, 1, (int64_t)user_id);
	db_bind_i64(st, 2, amount);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1)
		return amount < 0 ? LEDGER_INSUFFICIENT : DB_ERR;

	if ((st = db_prepare(db, SQL_BALANCE)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	balance = db_i64(st, 0);

	if ((st = db_prepare(db, SQL_INSERT_ROW)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)user_id);
	if (job_seq)
		db_bind_i64(st, 1, (int64_t)job_seq);
	else
		db_bind_null(st, 1);
	db_bind_str(st, 2, kind);
	db_bind_i64(st, 3, amount);
	db_bind_i64(st, 4, balance);
	db_bind_str(st, 5, actor);
	db_bind_str(st, 6, note);
	return db_exec(st);
}

int
ledger_parse_credits(const char *s, int64_t *micro)
{
	int64_t whole = 0, frac = 0;
	int digits = 0, frac_digits = 0;
	const char *p = s;

	/* whole < INT64_MAX / GQ_MICRO keeps whole * GQ_MICRO + 999999 in range. */
	for (; *p >= '0' && *p <= '9'; p++, digits++) {
		if (whole > (INT64_MAX / GQ_MICRO - 1 - (*p - '0')) / 10)
			return -1;
		whole = whole * 10 + (*p - '0');
	}
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, frac_digits++) {
			if (frac_digits == 6)
				return -1;
			frac = frac * 10 + (*p - '0');
		}
		if (frac_digits == 0)
			return -1;
	}
	if (*p != '\0' || digits == 0)
		return -1;
	for (int i = frac_digits; i < 6; i++)
		frac *= 10;
	*micro = whole * GQ_MICRO + frac;
	return 0;
}

void
ledger_format_credits(char buf[32], int64_t micro)
{
	int64_t mag = micro < 0 ? -micro : micro;
	char frac[8];
	size_t n;

	snprintf(frac, sizeof frac, "%06" PRId64, mag % GQ_MICRO);
	for (n = strlen(frac); n > 0 && frac[n - 1] == '0'; n--)
		frac[n - 1] = '\0';
	snprintf(buf, 32, "%s%" PRId64 "%s%s", micro < 0 ? "-" : "",
	    mag / GQ_MICRO, n ? "." : "", frac);
}
