/* db: one MariaDB connection, its prepared statements, and transactions that
 * retry on deadlock (1213) and lock-wait timeout (1205) as Galera needs.
 *
 * Every statement is a prepared statement: callers bind parameters by
 * position and read result columns as text or numbers. Statements are cached
 * per connection and owned by it; never keep a db_stmt across a db_txn or a
 * reconnect, call db_prepare again (a cache lookup) for each use. */
#ifndef GENQ_DB_H
#define GENQ_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct genq_config;
struct db;
struct db_stmt;

enum db_status {
	DB_OK = 0,
	DB_ERR = -1,      /* anything else: a bug or a broken schema */
	DB_RETRY = -2,    /* deadlock or lock wait timeout: run the transaction again */
	DB_GONE = -3,     /* connection lost: reconnect, then run it again */
	DB_DUP = -4,      /* duplicate key */
	DB_NOMEM = -5,
};

/* Connect with UTC session time, utf8mb4 and READ COMMITTED. Returns NULL
 * with a message in err on failure. The caller owns the result: db_close. */
struct db *db_open(const struct genq_config *cfg, char *err, size_t errlen);
void db_close(struct db *db);

/* A thread other than the main one that uses a connection of its own
 * calls db_thread_begin before its first db_open and db_thread_end when
 * it is done (the client library keeps per-thread state). */
void db_thread_begin(void);
void db_thread_end(void);

/* Drop the connection and make a new one (statements are re-prepared lazily). */
int db_reconnect(struct db *db);

/* Make *db a live connection: db_open when it is NULL, else db_reconnect.
 * DB_OK, or a negative status with the reason in err. */
int db_ensure(struct db **db, const struct genq_config *cfg, char *err, size_t errlen);

/* A cheap round trip; reconnects once if the server went away. */
int db_ping(struct db *db);

/* The server's last error text, for logs. */
const char *db_error(struct db *db);

/* The prepared statement for sql on this connection, preparing it on first
 * use. sql should be a string literal: the cache is keyed by its address.
 * Returns NULL on failure (see db_error; db_last_status says which kind). */
struct db_stmt *db_prepare(struct db *db, const char *sql);
int db_last_status(struct db *db);

/* Parameters, by 0-based position; they must stay valid until db_exec. */
void db_bind_i64(struct db_stmt *st, unsigned i, int64_t v);
void db_bind_double(struct db_stmt *st, unsigned i, double v);
void db_bind_text(struct db_stmt *st, unsigned i, const char *s, size_t len);
void db_bind_str(struct db_stmt *st, unsigned i, const char *s);   /* NULL binds NULL */
void db_bind_null(struct db_stmt *st, unsigned i);

/* Execute; a result set is fetched whole into memory. Returns enum db_status. */
int db_exec(struct db_stmt *st);

/* Advance to the next row: 1 row ready, 0 no more rows, < 0 error. */
int db_next(struct db_stmt *st);

/* Columns of the current row, 0-based. Text is NUL-terminated and valid
 * until the next db_next or db_exec; NULL for SQL NULL. */
bool db_is_null(struct db_stmt *st, unsigned col);
const char *db_text(struct db_stmt *st, unsigned col, size_t *len);
int64_t db_i64(struct db_stmt *st, unsigned col);          /* 0 for NULL */
double db_double(struct db_stmt *st, unsigned col);        /* 0 for NULL */
/* A DATETIME(6) column as microseconds since the epoch (UTC); 0 for NULL. */
int64_t db_time_us(struct db_stmt *st, unsigned col);

uint64_t db_affected_rows(struct db_stmt *st);
uint64_t db_insert_id(struct db_stmt *st);

/* Run sql (a prepared statement with no parameters and no result). */
int db_exec_simple(struct db *db, const char *sql);

/* Prepare, run and discard sql without caching it: for text that is not a
 * literal (migration files). No parameters, no result rows kept. */
int db_exec_once(struct db *db, const char *sql);

/* From now on (and on every reconnect) db runs transactions only: with
 * autocommit off, db_txn's transaction begins with its first statement
 * rather than a START TRANSACTION round trip of its own. Every statement on
 * such a connection must run inside db_txn (a statement outside one would
 * leave a transaction open). */
int db_txns_only(struct db *db);

/* Explicit transactions. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* Run fn inside a transaction, committing when it returns 0. A DB_RETRY or
 * DB_GONE from fn or from the commit rolls back, reconnects if needed, waits
 * a short jittered backoff and runs fn again (a bounded number of times).
 * fn may return a positive value to roll back and have db_txn return it
 * unchanged (an application refusal). */
/* fn may run more than once: after a lost connection the commit's outcome is
 * unknown, so its statements must be conditional (WHERE status = ...) or
 * otherwise harmless to repeat. */
typedef int (*db_txn_fn)(struct db *db, void *arg);
int db_txn(struct db *db, db_txn_fn fn, void *arg);

#endif
