#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "sqlrows.h"

const char *
sql_rows(struct sql_rows *t, unsigned n)
{
	size_t head, row, tail, len;
	char *p;

	if (n == 0 || n > SQL_ROWS_MAX)
		return NULL;
	if (t->text[n] != NULL)
		return t->text[n];
	head = strlen(t->head);
	row = strlen(t->row);
	tail = strlen(t->tail);
	len = head + n * row + (n - 1) * 2 + tail;
	if ((p = malloc(len + 1)) == NULL)
		return NULL;
	t->text[n] = p;
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
	return t->text[n];
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
