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
/* The row carries the balance after the move, read under the row lock the
 * update above took. */
static const char SQL_INSERT_ROW[] =
    "INSERT INTO ledger (user_id, job_seq, kind, amount, balance_after, at, actor, note) "
    "SELECT id, ?, ?, ?, balance, UTC_TIMESTAMP(6), ?, ? FROM users WHERE id = ?";
/* A settle's two rows in one statement: release, then charge. */
static const char SQL_INSERT_SETTLE[] =
    "INSERT INTO ledger (user_id, job_seq, kind, amount, balance_after, at, actor, note) "
    "SELECT id, ?, 'release', ?, balance + ?, UTC_TIMESTAMP(6), ?, ? FROM users WHERE id = ? "
    "UNION ALL "
    "SELECT id, ?, 'charge', ?, balance, UTC_TIMESTAMP(6), ?, ? FROM users WHERE id = ?";

static int
move_balance(struct db *db, uint64_t user_id, int64_t amount)
{
	struct db_stmt *st;
	int rc;

	/* Nothing moves (a charge of all that was held): no row would change,
	 * and the ledger rows' read locks the user row all the same. */
	if (amount == 0)
		return DB_OK;
	if ((st = db_prepare(db, SQL_MOVE_BALANCE)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, amount);
	db_bind_i64(st, 1, (int64_t)user_id);
	db_bind_i64(st, 2, amount);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1)
		return amount < 0 ? LEDGER_INSUFFICIENT : DB_ERR;
	return DB_OK;
}

static void
bind_job(struct db_stmt *st, unsigned i, uint64_t job_seq)
{
	if (job_seq)
		db_bind_i64(st, i, (int64_t)job_seq);
	else
		db_bind_null(st, i);
}

int
ledger_apply(struct db *db, uint64_t user_id, uint64_t job_seq,
    const char *kind, int64_t amount, const char *actor, const char *note)
{
	struct db_stmt *st;
	int rc;

	if ((rc = move_balance(db, user_id, amount)) != DB_OK)
		return rc;
	if ((st = db_prepare(db, SQL_INSERT_ROW)) == NULL)
		return db_last_status(db);
	bind_job(st, 0, job_seq);
	db_bind_str(st, 1, kind);
	db_bind_i64(st, 2, amount);
	db_bind_str(st, 3, actor);
	db_bind_str(st, 4, note);
	db_bind_i64(st, 5, (int64_t)user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	return db_affected_rows(st) == 1 ? DB_OK : DB_ERR;
}

int
ledger_settle(struct db *db, uint64_t user_id, uint64_t job_seq, int64_t held,
    int64_t charge, const char *actor, const char *release_note, const char *charge_note)
{
	struct db_stmt *st;
	int rc;

	if (held < 0 || charge < 0 || charge > held)
		return DB_ERR;
	if ((rc = move_balance(db, user_id, held - charge)) != DB_OK)
		return rc;
	if ((st = db_prepare(db, SQL_INSERT_SETTLE)) == NULL)
		return db_last_status(db);
	bind_job(st, 0, job_seq);
	db_bind_i64(st, 1, held);
	db_bind_i64(st, 2, charge);
	db_bind_str(st, 3, actor);
	db_bind_str(st, 4, release_note);
	db_bind_i64(st, 5, (int64_t)user_id);
	bind_job(st, 6, job_seq);
	db_bind_i64(st, 7, -charge);
	db_bind_str(st, 8, actor);
	db_bind_str(st, 9, charge_note);
	db_bind_i64(st, 10, (int64_t)user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	return db_affected_rows(st) == 2 ? DB_OK : DB_ERR;
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
