#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "gqtime.h"
#include "ledger.h"
#include "sqlrows.h"

/* The conditional update is what keeps the balance from going negative even
 * when two transactions race: the second one sees the first's row lock. */
static const char SQL_MOVE_BALANCE[] =
    "UPDATE users SET balance = balance + ? WHERE id = ? AND balance + ? >= 0";
/* The row carries the balance after the move, read under the row lock the
 * update above took. */
static const char SQL_INSERT_ROW[] =
    "INSERT INTO ledger (user_id, job_seq, kind, amount, balance_after, at, actor, note) "
    "SELECT id, ?, ?, ?, balance, UTC_TIMESTAMP(6), ?, ? FROM users WHERE id = ?";

/* A batch of settles (ledger_settle_jobs): the balance read under the row
 * lock, the rows written with the balances they leave, in order. */
static const char SQL_LOCK_BALANCE[] =
    "SELECT balance FROM users WHERE id = ? FOR UPDATE";
static struct sql_rows sql_insert_rows = SQL_ROWS_INIT(
    "INSERT INTO ledger (user_id, job_seq, kind, amount, balance_after, at, actor, note) VALUES ",
    "(?, ?, ?, ?, ?, UTC_TIMESTAMP(6), ?, ?)", "");

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

/* One ledger row of a settle batch. */
struct settle_row {
	uint64_t job_seq;
	const char *kind, *note;
	int64_t amount, balance_after;
};

static int
insert_rows(struct db *db, uint64_t user_id, const struct settle_row *v, size_t n,
    const char *actor)
{
	for (size_t at = 0; at < n; at += SQL_ROWS_MAX) {
		size_t k = n - at < SQL_ROWS_MAX ? n - at : SQL_ROWS_MAX;
		struct db_stmt *st;
		int rc;

		if ((st = sql_rows_prepare(db, &sql_insert_rows, k, &rc)) == NULL)
			return rc;
		for (size_t i = 0; i < k; i++) {
			const struct settle_row *row = &v[at + i];
			unsigned c = (unsigned)(7 * i);

			db_bind_i64(st, c, (int64_t)user_id);
			bind_job(st, c + 1, row->job_seq);
			db_bind_str(st, c + 2, row->kind);
			db_bind_i64(st, c + 3, row->amount);
			db_bind_i64(st, c + 4, row->balance_after);
			db_bind_str(st, c + 5, actor);
			db_bind_str(st, c + 6, row->note);
		}
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
	}
	return DB_OK;
}

int
ledger_settle_jobs(struct db *db, uint64_t user_id, const struct ledger_settlement *v,
    size_t n, const char *actor, const char *release_note, const char *charge_note)
{
	struct settle_row *rows = NULL;
	struct db_stmt *st;
	int64_t balance, delta = 0;
	size_t nrows = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		if (v[i].held < 0 || v[i].charge < 0 || v[i].charge > v[i].held)
			return DB_ERR;
	if ((st = db_prepare(db, SQL_LOCK_BALANCE)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)user_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	balance = db_i64(st, 0);
	while ((rc = db_next(st)) == 1)
		;
	if (rc < 0)
		return rc;

	if ((rows = calloc(2 * n + 1, sizeof *rows)) == NULL)
		return DB_NOMEM;
	/* Each job's release, then its charge, as two ledger_apply calls would. */
	for (size_t i = 0; i < n; i++) {
		if (v[i].held > 0) {
			balance += v[i].held;
			rows[nrows++] = (struct settle_row){ v[i].job_seq, "release", release_note,
			    v[i].held, balance };
		}
		if (v[i].charge > 0) {
			balance -= v[i].charge;
			rows[nrows++] = (struct settle_row){ v[i].job_seq, "charge", charge_note,
			    -v[i].charge, balance };
		}
		delta += v[i].held - v[i].charge;
	}
	rc = DB_OK;
	if (delta != 0)
		rc = move_balance(db, user_id, delta);
	if (rc == DB_OK && nrows > 0)
		rc = insert_rows(db, user_id, rows, nrows, actor);
	free(rows);
	return rc;
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
