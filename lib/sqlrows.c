#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "sqlrows.h"

const char *
sql_rows(struct sql_rows *t, unsigned n)
{
	size_t head, row, tail, len;
	char *p, *text, *winner = NULL;

	if (n == 0 || n > SQL_ROWS_MAX)
		return NULL;
	/* genqd builds texts from two threads (its loop and its committer):
	 * a text is published whole, once; a thread that loses the race
	 * drops its copy and uses the winner's. */
	if ((p = __atomic_load_n(&t->text[n], __ATOMIC_ACQUIRE)) != NULL)
		return p;
	head = strlen(t->head);
	row = strlen(t->row);
	tail = strlen(t->tail);
	len = head + n * row + (n - 1) * 2 + tail;
	if ((text = malloc(len + 1)) == NULL)
		return NULL;
	p = text;
	memcpy(p, t->head, head);
	p += head;
	for (unsigned i = 0; i < n; i++) {
		if (i > 0) {
			memcpy(p, ", ", 2);
			p += 2;
		}
		memcpy(p, t->row, row);
		p += row;
	}
	memcpy(p, t->tail, tail);
	p[tail] = '\0';
	if (!__atomic_compare_exchange_n(&t->text[n], &winner, text, false, __ATOMIC_ACQ_REL,
	    __ATOMIC_ACQUIRE)) {
		free(text);
		return winner;
	}
	return text;
}

struct db_stmt *
sql_rows_prepare(struct db *db, struct sql_rows *t, size_t n, int *rc)
{
	const char *sql = n <= SQL_ROWS_MAX ? sql_rows(t, (unsigned)n) : NULL;
	struct db_stmt *st;

	if (sql == NULL) {
		*rc = DB_NOMEM;
		return NULL;
	}
	if ((st = db_prepare(db, sql)) == NULL)
		*rc = db_last_status(db) != DB_OK ? db_last_status(db) : DB_ERR;
	return st;
}
