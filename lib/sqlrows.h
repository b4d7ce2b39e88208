/* sqlrows: statement texts for a variable number of rows.
 *
 * A multi-row statement ("INSERT ... VALUES (?,?),(?,?)", "... IN (?,?,?)")
 * saves a round trip per row, but its text depends on the row count, and
 * db_prepare caches statements by the address of their text. A sql_rows
 * holds one text per count, built on first use and kept for the life of
 * the process, so each count is prepared once per connection. Safe to use
 * from several threads (genqd commits from a thread of its own). */
#ifndef GENQ_SQLROWS_H
#define GENQ_SQLROWS_H

#include <stddef.h>

/* The most rows one text may have. */
#define SQL_ROWS_MAX 64

struct sql_rows {
	const char *head;      /* "INSERT INTO t (a, b) VALUES " */
	const char *row;       /* "(?, ?)" */
	const char *tail;      /* "" or " ON DUPLICATE ..." */
	char *text[SQL_ROWS_MAX + 1];
};

#define SQL_ROWS_INIT(head, row, tail) { (head), (row), (tail), { 0 } }

/* head, then n copies of row separated by ", ", then tail. NULL when n is 0
 * or over SQL_ROWS_MAX, or when out of memory. */
const char *sql_rows(struct sql_rows *t, unsigned n);

struct db;
struct db_stmt;

/* db_prepare of t's text for n rows. NULL with *rc set to a negative db
 * status when it cannot be had (DB_NOMEM: no text for n). */
struct db_stmt *sql_rows_prepare(struct db *db, struct sql_rows *t, size_t n, int *rc);

#endif
