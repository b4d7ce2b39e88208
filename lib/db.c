#include "autoconf.h"

#include <errno.h>
#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "gqtime.h"
#include "log.h"

#define TXN_MAX_TRIES 8

union param_value {
	long long i64;
	double dbl;
};

struct db_stmt {
	struct db_stmt *next;      /* the next in its cache bucket */
	struct db *db;
	const char *sql;           /* cache key: the caller's literal */
	MYSQL_STMT *stmt;

	unsigned nparams;
	MYSQL_BIND *params;
	union param_value *values;
	unsigned long *param_lengths;
	my_bool *param_nulls;

	unsigned ncols;
	MYSQL_BIND *cols;
	char **col_bufs;
	unsigned long *col_lengths;
	my_bool *col_nulls;
	size_t *col_caps;
	int has_result;
};

/* Prepared statements are cached by the address of their SQL literal; a
 * daemon runs a few hundred of them, so a list walk per execute showed in
 * profiles. */
#define STMT_BUCKETS 256

/* Seconds, as SQL text (see connect_now). */
#define DB_IDLE_TXN_TIMEOUT_S "10"

struct db {
	MYSQL *conn;
	const struct genq_config *cfg;
	struct db_stmt *stmts[STMT_BUCKETS];
	int last_status;
	bool txns_only;              /* autocommit off: see db_txns_only */
	char err[512];
};

static int
status_of(unsigned int code)
{
	switch (code) {
	case 0:
		return DB_OK;
	case ER_LOCK_DEADLOCK:
	case ER_LOCK_WAIT_TIMEOUT:
		return DB_RETRY;
	case ER_DUP_ENTRY:
		return DB_DUP;
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case CR_CONNECTION_ERROR:
	case CR_CONN_HOST_ERROR:
	case CR_SERVER_LOST_EXTENDED:
	case ER_CONNECTION_KILLED:
	case ER_SERVER_SHUTDOWN:
	case 4031: /* client idle for too long */
	case 1047: /* WSREP has not yet prepared node for application use */
		return DB_GONE;
	case CR_OUT_OF_MEMORY:
		return DB_NOMEM;
	default:
		return DB_ERR;
	}
}

static int
record(struct db *db, unsigned int code, const char *msg)
{
	db->last_status = status_of(code);
	snprintf(db->err, sizeof db->err, "%u: %s", code, msg ? msg : "");
	return db->last_status;
}

static int
record_conn(struct db *db)
{
	return record(db, mysql_errno(db->conn), mysql_error(db->conn));
}

static int
record_stmt(struct db_stmt *st)
{
	return record(st->db, mysql_stmt_errno(st->stmt), mysql_stmt_error(st->stmt));
}

static void
stmt_free(struct db_stmt *st)
{
	if (st->stmt != NULL)
		mysql_stmt_close(st->stmt);
	for (unsigned i = 0; i < st->ncols; i++)
		free(st->col_bufs[i]);
	free(st->params);
	free(st->values);
	free(st->param_lengths);
	free(st->param_nulls);
	free(st->cols);
	free(st->col_bufs);
	free(st->col_lengths);
	free(st->col_nulls);
	free(st->col_caps);
	free(st);
}

static void
drop_statements(struct db *db)
{
	for (size_t b = 0; b < STMT_BUCKETS; b++) {
		struct db_stmt *st = db->stmts[b], *next;

		for (; st != NULL; st = next) {
			next = st->next;
			stmt_free(st);
		}
		db->stmts[b] = NULL;
	}
}

static size_t
stmt_bucket(const char *sql)
{
	/* Fibonacci hashing: the top bits of the product mix all of them. */
	uint64_t h = (uint64_t)(uintptr_t)sql * UINT64_C(0x9E3779B97F4A7C15);

	return (size_t)(h >> 56) % STMT_BUCKETS;
}

static int
connect_now(struct db *db)
{
	const struct genq_config *cfg = db->cfg;
	unsigned int timeout = (unsigned int)cfg->db_connect_timeout_s;
	my_bool off = 0;

	db->conn = mysql_init(NULL);
	if (db->conn == NULL)
		return record(db, CR_OUT_OF_MEMORY, "mysql_init");
	mysql_optionsv(db->conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_optionsv(db->conn, MYSQL_OPT_RECONNECT, &off);
	mysql_optionsv(db->conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_optionsv(db->conn, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
	mysql_optionsv(db->conn, MYSQL_INIT_COMMAND,
	    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
	/* genq's transactions run their statements back to back. One idle
	 * this long belongs to a process that stopped (a paused VM, SIGSTOP)
	 * while it held row locks, say on the backends another genqd must
	 * take over: the server ends that session and its locks go. */
	mysql_optionsv(db->conn, MYSQL_INIT_COMMAND,
	    "SET SESSION idle_transaction_timeout = " DB_IDLE_TXN_TIMEOUT_S);
	if (db->txns_only)
		mysql_optionsv(db->conn, MYSQL_INIT_COMMAND, "SET SESSION autocommit = 0");
	if (mysql_real_connect(db->conn,
	    cfg->db_socket[0] ? NULL : cfg->db_host,
	    cfg->db_user, cfg->db_password, cfg->db_name,
	    (unsigned int)cfg->db_port,
	    cfg->db_socket[0] ? cfg->db_socket : NULL, 0) == NULL) {
		int rc = record_conn(db);
		mysql_close(db->conn);
		db->conn = NULL;
		/* Any failure to connect is worth another try later. */
		db->last_status = DB_GONE;
		return rc == DB_NOMEM ? rc : DB_GONE;
	}
	return DB_OK;
}

struct db *
db_open(const struct genq_config *cfg, char *err, size_t errlen)
{
	struct db *db = calloc(1, sizeof *db);

	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	db->cfg = cfg;
	if (connect_now(db) != DB_OK) {
		snprintf(err, errlen, "database: %s", db->err);
		free(db);
		return NULL;
	}
	return db;
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	drop_statements(db);
	if (db->conn != NULL)
		mysql_close(db->conn);
	free(db);
}

int
db_ensure(struct db **db, const struct genq_config *cfg, char *err, size_t errlen)
{
	int rc;

	if (*db == NULL)
		return (*db = db_open(cfg, err, errlen)) != NULL ? DB_OK : DB_GONE;
	if ((rc = db_reconnect(*db)) != DB_OK)
		snprintf(err, errlen, "%s", db_error(*db));
	return rc;
}

void
db_thread_begin(void)
{
	mysql_thread_init();
}

void
db_thread_end(void)
{
	mysql_thread_end();
}

int
db_reconnect(struct db *db)
{
	drop_statements(db);
	if (db->conn != NULL) {
		mysql_close(db->conn);
		db->conn = NULL;
	}
	return connect_now(db);
}

int
db_ping(struct db *db)
{
	if (db->conn != NULL && mysql_ping(db->conn) == 0)
		return DB_OK;
	return db_reconnect(db);
}

const char *
db_error(struct db *db)
{
	return db->err;
}

int
db_last_status(struct db *db)
{
	return db->last_status;
}

static int
stmt_alloc_arrays(struct db_stmt *st)
{
	unsigned np = st->nparams ? st->nparams : 1, nc = st->ncols ? st->ncols : 1;

	st->params = calloc(np, sizeof *st->params);
	st->values = calloc(np, sizeof *st->values);
	st->param_lengths = calloc(np, sizeof *st->param_lengths);
	st->param_nulls = calloc(np, sizeof *st->param_nulls);
	st->cols = calloc(nc, sizeof *st->cols);
	st->col_bufs = calloc(nc, sizeof *st->col_bufs);
	st->col_lengths = calloc(nc, sizeof *st->col_lengths);
	st->col_nulls = calloc(nc, sizeof *st->col_nulls);
	st->col_caps = calloc(nc, sizeof *st->col_caps);
	if (!st->params || !st->values || !st->param_lengths || !st->param_nulls ||
	    !st->cols || !st->col_bufs || !st->col_lengths || !st->col_nulls || !st->col_caps)
		return DB_NOMEM;
	for (unsigned i = 0; i < st->nparams; i++) {
		st->params[i].buffer_type = MYSQL_TYPE_NULL;
		st->params[i].is_null = &st->param_nulls[i];
		st->params[i].length = &st->param_lengths[i];
	}
	return DB_OK;
}

struct db_stmt *
db_prepare(struct db *db, const char *sql)
{
	struct db_stmt *st;
	MYSQL_RES *meta;
	my_bool update_max = 1;
	size_t bucket = stmt_bucket(sql);

	for (st = db->stmts[bucket]; st != NULL; st = st->next)
		if (st->sql == sql)
			return st;

	if (db->conn == NULL && db_reconnect(db) != DB_OK)
		return NULL;
	st = calloc(1, sizeof *st);
	if (st == NULL) {
		record(db, CR_OUT_OF_MEMORY, "db_prepare");
		return NULL;
	}
	st->db = db;
	st->sql = sql;
	st->stmt = mysql_stmt_init(db->conn);
	if (st->stmt == NULL) {
		record_conn(db);
		goto fail;
	}
	if (mysql_stmt_prepare(st->stmt, sql, (unsigned long)strlen(sql)) != 0) {
		record_stmt(st);
		log_error("db_prepare_failed", "error=\"%s\" sql=\"%.120s\"", log_q(db->err), sql);
		goto fail;
	}
	mysql_stmt_attr_set(st->stmt, STMT_ATTR_UPDATE_MAX_LENGTH, &update_max);
	st->nparams = (unsigned)mysql_stmt_param_count(st->stmt);
	meta = mysql_stmt_result_metadata(st->stmt);
	st->ncols = meta ? mysql_num_fields(meta) : 0;
	if (meta)
		mysql_free_result(meta);
	if (stmt_alloc_arrays(st) != DB_OK) {
		record(db, CR_OUT_OF_MEMORY, "db_prepare");
		goto fail;
	}
	st->next = db->stmts[bucket];
	db->stmts[bucket] = st;
	return st;
fail:
	stmt_free(st);
	return NULL;
}

void
db_bind_i64(struct db_stmt *st, unsigned i, int64_t v)
{
	if (i >= st->nparams)
		return;
	st->values[i].i64 = v;
	st->params[i].buffer_type = MYSQL_TYPE_LONGLONG;
	st->params[i].buffer = &st->values[i].i64;
	st->params[i].is_unsigned = 0;
	st->param_nulls[i] = 0;
}

void
db_bind_double(struct db_stmt *st, unsigned i, double v)
{
	if (i >= st->nparams)
		return;
	st->values[i].dbl = v;
	st->params[i].buffer_type = MYSQL_TYPE_DOUBLE;
	st->params[i].buffer = &st->values[i].dbl;
	st->param_nulls[i] = 0;
}

void
db_bind_text(struct db_stmt *st, unsigned i, const char *s, size_t len)
{
	if (i >= st->nparams)
		return;
	if (s == NULL) {
		db_bind_null(st, i);
		return;
	}
	st->params[i].buffer_type = MYSQL_TYPE_STRING;
	st->params[i].buffer = (void *)s;
	st->params[i].buffer_length = (unsigned long)len;
	st->param_lengths[i] = (unsigned long)len;
	st->param_nulls[i] = 0;
}

void
db_bind_str(struct db_stmt *st, unsigned i, const char *s)
{
	db_bind_text(st, i, s, s ? strlen(s) : 0);
}

void
db_bind_null(struct db_stmt *st, unsigned i)
{
	if (i >= st->nparams)
		return;
	st->params[i].buffer_type = MYSQL_TYPE_NULL;
	st->param_nulls[i] = 1;
}

/* Size each column's buffer from the fetched result's max_length. */
static int
bind_result_columns(struct db_stmt *st)
{
	MYSQL_RES *meta = mysql_stmt_result_metadata(st->stmt);
	MYSQL_FIELD *fields;

	if (meta == NULL)
		return DB_OK;
	fields = mysql_fetch_fields(meta);
	for (unsigned i = 0; i < st->ncols; i++) {
		size_t need = (size_t)fields[i].max_length + 1;
		if (need < 64)
			need = 64;
		if (need > st->col_caps[i]) {
			char *p = realloc(st->col_bufs[i], need);
			if (p == NULL) {
				mysql_free_result(meta);
				return record(st->db, CR_OUT_OF_MEMORY, "result buffer");
			}
			st->col_bufs[i] = p;
			st->col_caps[i] = need;
		}
		memset(&st->cols[i], 0, sizeof st->cols[i]);
		st->cols[i].buffer_type = MYSQL_TYPE_STRING;
		st->cols[i].buffer = st->col_bufs[i];
		st->cols[i].buffer_length = (unsigned long)st->col_caps[i] - 1;
		st->cols[i].length = &st->col_lengths[i];
		st->cols[i].is_null = &st->col_nulls[i];
	}
	mysql_free_result(meta);
	if (mysql_stmt_bind_result(st->stmt, st->cols) != 0)
		return record_stmt(st);
	return DB_OK;
}

int
db_exec(struct db_stmt *st)
{
	int rc;

	if (st->has_result) {
		mysql_stmt_free_result(st->stmt);
		st->has_result = 0;
	}
	if (st->nparams && mysql_stmt_bind_param(st->stmt, st->params) != 0)
		return record_stmt(st);
	if (mysql_stmt_execute(st->stmt) != 0)
		return record_stmt(st);
	if (st->ncols == 0) {
		st->db->last_status = DB_OK;
		return DB_OK;
	}
	if (mysql_stmt_store_result(st->stmt) != 0)
		return record_stmt(st);
	st->has_result = 1;
	rc = bind_result_columns(st);
	if (rc == DB_OK)
		st->db->last_status = DB_OK;
	return rc;
}

int
db_next(struct db_stmt *st)
{
	int rc;

	if (!st->has_result)
		return 0;
	rc = mysql_stmt_fetch(st->stmt);
	if (rc == 0 || rc == MYSQL_DATA_TRUNCATED) {
		/* Buffers were sized from max_length, so truncation cannot
		 * happen; treat it as a row all the same. */
		for (unsigned i = 0; i < st->ncols; i++) {
			size_t n = st->col_lengths[i];
			if (n >= st->col_caps[i])
				n = st->col_caps[i] - 1;
			st->col_bufs[i][n] = '\0';
		}
		return 1;
	}
	if (rc == MYSQL_NO_DATA)
		return 0;
	return record_stmt(st);
}

bool
db_is_null(struct db_stmt *st, unsigned col)
{
	return col >= st->ncols || st->col_nulls[col];
}

const char *
db_text(struct db_stmt *st, unsigned col, size_t *len)
{
	if (db_is_null(st, col)) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = st->col_lengths[col] < st->col_caps[col] ? st->col_lengths[col] : st->col_caps[col] - 1;
	return st->col_bufs[col];
}

int64_t
db_i64(struct db_stmt *st, unsigned col)
{
	const char *s = db_text(st, col, NULL);
	return s ? strtoll(s, NULL, 10) : 0;
}

double
db_double(struct db_stmt *st, unsigned col)
{
	const char *s = db_text(st, col, NULL);
	return s ? strtod(s, NULL) : 0.0;
}

int64_t
db_time_us(struct db_stmt *st, unsigned col)
{
	const char *s = db_text(st, col, NULL);
	int64_t us;

	if (s == NULL || gq_time_parse_sql(s, &us) < 0)
		return 0;
	return us;
}

uint64_t
db_affected_rows(struct db_stmt *st)
{
	return (uint64_t)mysql_stmt_affected_rows(st->stmt);
}

uint64_t
db_insert_id(struct db_stmt *st)
{
	return (uint64_t)mysql_stmt_insert_id(st->stmt);
}

int
db_exec_simple(struct db *db, const char *sql)
{
	struct db_stmt *st = db_prepare(db, sql);

	if (st == NULL)
		return db->last_status ? db->last_status : DB_ERR;
	return db_exec(st);
}

int
db_exec_once(struct db *db, const char *sql)
{
	MYSQL_STMT *stmt;
	int rc = DB_OK;

	if (db->conn == NULL && (rc = db_reconnect(db)) != DB_OK)
		return rc;
	stmt = mysql_stmt_init(db->conn);
	if (stmt == NULL)
		return record_conn(db);
	if (mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)) != 0 ||
	    mysql_stmt_execute(stmt) != 0)
		rc = record(db, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
	else
		db->last_status = DB_OK;
	mysql_stmt_close(stmt);
	return rc;
}

static int
plain_query(struct db *db, const char *sql)
{
	if (db->conn == NULL)
		return record(db, CR_SERVER_GONE_ERROR, "not connected");
	if (mysql_real_query(db->conn, sql, (unsigned long)strlen(sql)) != 0)
		return record_conn(db);
	return DB_OK;
}

int
db_txns_only(struct db *db)
{
	if (db->txns_only)
		return DB_OK;
	if (db->conn == NULL)
		return record(db, CR_SERVER_GONE_ERROR, "not connected");
	if (mysql_autocommit(db->conn, 0) != 0)
		return record_conn(db);
	db->txns_only = true;        /* and on every reconnect (connect_now) */
	return DB_OK;
}

int
db_begin(struct db *db)
{
	/* Fixed text with no data: no statement to prepare. */
	return plain_query(db, "START TRANSACTION");
}

int
db_commit(struct db *db)
{
	if (db->conn == NULL)
		return record(db, CR_SERVER_GONE_ERROR, "not connected");
	if (mysql_commit(db->conn) != 0)
		return record_conn(db);
	return DB_OK;
}

void
db_rollback(struct db *db)
{
	if (db->conn != NULL)
		mysql_rollback(db->conn);
}

static void
backoff_sleep(int attempt)
{
	/* 5, 10, 20 ... ms, with jitter so colliding writers spread out. */
	long ms = 5L << (attempt < 6 ? attempt : 6);
	struct timespec ts;

	ms = ms / 2 + (long)(gq_random_u32() % (uint32_t)ms);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

int
db_txn(struct db *db, db_txn_fn fn, void *arg)
{
	int rc = DB_ERR;

	for (int attempt = 0; attempt < TXN_MAX_TRIES; attempt++) {
		if (db->conn == NULL && (rc = db_reconnect(db)) != DB_OK)
			goto again;
		/* Without autocommit the first statement begins it. */
		rc = db->txns_only ? DB_OK : db_begin(db);
		if (rc == DB_OK) {
			rc = fn(db, arg);
			if (rc == DB_OK)
				rc = db_commit(db);
			else
				db_rollback(db);
		}
		if (rc != DB_RETRY && rc != DB_GONE)
			return rc;
		if (rc == DB_GONE)
			db_reconnect(db);
again:
		log_debug("db_txn_retry", "attempt=%d status=%d error=\"%s\"", attempt + 1, rc, log_q(db->err));
		backoff_sleep(attempt);
	}
	return rc;
}
