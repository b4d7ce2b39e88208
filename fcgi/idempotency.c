/* idempotency: the Idempotency-Key header of POST /v1/jobs (SPEC §2).
 *
 * A key is one row per (user, key) in idempotency_keys for 24 hours, with
 * the SHA-256 of the request body. The life of a request with a key:
 *
 *   1. idem_claim, a short transaction of its own: insert the row as
 *      'in_flight', owned by the id of the job this request will create.
 *      The primary key lets exactly one request claim a key; any other
 *      finds the row: a different body hash is 422, a 'done' row is
 *      replayed (same status and body bytes, and Location), an 'in_flight'
 *      one is 409. A row older than 24 hours is deleted and the key claimed
 *      anew; an 'in_flight' row left by a handler that died (older than
 *      IDEM_STALE_S) is taken over.
 *   2. idem_finish, inside the admission transaction, after the job insert:
 *      the row becomes 'done' with the 201 answer, only if this request
 *      still owns it. So the job and its stored answer commit together, and
 *      a request that lost its claim creates nothing. The stored answer is
 *      the job as it was at creation; GET /v1/jobs/{id} shows it now.
 *   3. A refused request (any refusal) deletes its own 'in_flight' row with
 *      idem_release: a refusal leaves no row behind, and the client may fix
 *      the cause (credits, quota, a paused queue) and send the same key
 *      again. Only successful submits are ever replayed.
 *
 * Expired rows are purged a few at a time by claims (1 in IDEM_PURGE_EVERY). */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "db.h"
#include "gqtime.h"
#include "log.h"

/* An in-flight claim older than this belongs to a handler that is gone: an
 * admission transaction takes milliseconds, retries included. */
#define IDEM_STALE_S 30
#define IDEM_PURGE_EVERY 64
#define IDEM_PURGE_ROWS 100

static const char SQL_DROP_EXPIRED[] =
    "DELETE FROM idempotency_keys WHERE user_id = ? AND idem_key = ? "
    "AND created_at < UTC_TIMESTAMP(6) - INTERVAL 24 HOUR";
static const char SQL_PURGE[] =
    "DELETE FROM idempotency_keys "
    "WHERE created_at < UTC_TIMESTAMP(6) - INTERVAL 24 HOUR LIMIT " "100";
static const char SQL_CLAIM[] =
    "INSERT INTO idempotency_keys (user_id, idem_key, request_hash, state, owner, "
    "created_at, updated_at) "
    "VALUES (?, ?, ?, 'in_flight', ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))";
static const char SQL_FIND[] =
    "SELECT request_hash, state, owner, status, body, "
    "updated_at < UTC_TIMESTAMP(6) - INTERVAL " "30" " SECOND "
    "FROM idempotency_keys WHERE user_id = ? AND idem_key = ? FOR UPDATE";
static const char SQL_TAKE_OVER[] =
    "UPDATE idempotency_keys SET owner = ?, updated_at = UTC_TIMESTAMP(6) "
    "WHERE user_id = ? AND idem_key = ? AND state = 'in_flight' AND owner = ?";
static const char SQL_FINISH[] =
    "UPDATE idempotency_keys SET state = 'done', status = ?, body = ?, "
    "updated_at = UTC_TIMESTAMP(6) "
    "WHERE user_id = ? AND idem_key = ? AND state = 'in_flight' AND owner = ?";
static const char SQL_RELEASE[] =
    "DELETE FROM idempotency_keys "
    "WHERE user_id = ? AND idem_key = ? AND state = 'in_flight' AND owner = ?";

_Static_assert(IDEM_STALE_S == 30, "SQL_FIND spells IDEM_STALE_S out");
_Static_assert(IDEM_PURGE_ROWS == 100, "SQL_PURGE spells IDEM_PURGE_ROWS out");

int
idem_parse_key(const char *header, char out[IDEM_KEY_MAX + 1])
{
	size_t n;

	if (header == NULL)
		return 0;
	n = strlen(header);
	if (n == 0 || n > IDEM_KEY_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)header[i] < 0x20 || (unsigned char)header[i] > 0x7e)
			return -1;
	memcpy(out, header, n + 1);
	return 1;
}

int
idem_init(struct idem *im, uint64_t user_id, const char *key, const char *body, size_t len)
{
	memset(im, 0, sizeof *im);
	im->user_id = user_id;
	snprintf(im->key, sizeof im->key, "%s", key);
	if (gq_sha256_hex(body, len, im->hash) < 0 || gq_uuid4(im->owner) < 0)
		return -1;
	return 0;
}

void
idem_free(struct idem *im)
{
	free(im->body);
	im->body = NULL;
	im->body_len = 0;
}

static int
claim_txn(struct db *db, void *arg)
{
	struct idem *im = arg;
	struct db_stmt *st;
	const char *text;
	size_t len;
	int rc;

	idem_free(im);
	if ((gq_random_u32() % IDEM_PURGE_EVERY) == 0) {
		if ((st = db_prepare(db, SQL_PURGE)) == NULL)
			return db_last_status(db);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
	}
	if ((st = db_prepare(db, SQL_DROP_EXPIRED)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)im->user_id);
	db_bind_str(st, 1, im->key);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;

	if ((st = db_prepare(db, SQL_CLAIM)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)im->user_id);
	db_bind_str(st, 1, im->key);
	db_bind_str(st, 2, im->hash);
	db_bind_str(st, 3, im->owner);
	rc = db_exec(st);
	if (rc != DB_DUP)
		return rc == DB_OK ? IDEM_CLAIMED : rc;

	/* Someone has the key (committed: the insert waited for its lock). */
	if ((st = db_prepare(db, SQL_FIND)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)im->user_id);
	db_bind_str(st, 1, im->key);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_RETRY;      /* deleted meanwhile: again */
	if (strcmp(db_text(st, 0, NULL), im->hash) != 0)
		return IDEM_REUSED;
	if (strcmp(db_text(st, 1, NULL), "done") == 0) {
		snprintf(im->job_id, sizeof im->job_id, "%s", db_text(st, 2, NULL));
		im->status = (int)db_i64(st, 3);
		text = db_text(st, 4, &len);
		if ((im->body = malloc(len + 1)) == NULL)
			return DB_NOMEM;
		memcpy(im->body, text ? text : "", len);
		im->body[len] = '\0';
		im->body_len = len;
		return IDEM_REPLAY;
	}
	if (db_i64(st, 5) == 0)
		return IDEM_IN_PROGRESS;

	/* A claim nobody finishes: its handler died. Take it over. */
	snprintf(im->job_id, sizeof im->job_id, "%s", db_text(st, 2, NULL));
	if ((st = db_prepare(db, SQL_TAKE_OVER)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, im->owner);
	db_bind_i64(st, 1, (int64_t)im->user_id);
	db_bind_str(st, 2, im->key);
	db_bind_str(st, 3, im->job_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	im->job_id[0] = '\0';
	if (db_affected_rows(st) != 1)
		return IDEM_IN_PROGRESS;
	log_info("idempotency_takeover", "user=%llu", (unsigned long long)im->user_id);
	return IDEM_CLAIMED;
}

int
idem_claim(struct db *db, struct idem *im)
{
	return db_txn(db, claim_txn, im);
}

int
idem_finish(struct db *db, struct idem *im, int status, const char *body, size_t len)
{
	struct db_stmt *st = db_prepare(db, SQL_FINISH);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, status);
	db_bind_text(st, 1, body, len);
	db_bind_i64(st, 2, (int64_t)im->user_id);
	db_bind_str(st, 3, im->key);
	db_bind_str(st, 4, im->owner);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	return db_affected_rows(st) == 1 ? DB_OK : IDEM_LOST;
}

int
idem_release(struct db *db, const struct idem *im)
{
	struct db_stmt *st = db_prepare(db, SQL_RELEASE);

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)im->user_id);
	db_bind_str(st, 1, im->key);
	db_bind_str(st, 2, im->owner);
	return db_exec(st);
}

void
idem_answer(struct ctx *c, const struct idem *im, int result)
{
	switch (result) {
	case IDEM_REPLAY:
		if (im->job_id[0])
			resp_header(c->resp, "Location", "/v1/jobs/%s", im->job_id);
		resp_header(c->resp, "Idempotent-Replayed", "true");
		resp_raw(c->resp, im->status, "application/json", im->body, im->body_len);
		break;
	case IDEM_REUSED:
		resp_problem(c->resp, P_IDEMPOTENCY_KEY_REUSED,
		    "This Idempotency-Key was used with a different request body in the last 24 hours.",
		    NULL);
		break;
	case IDEM_IN_PROGRESS:
	case IDEM_LOST:
		resp_header(c->resp, "Retry-After", "1");
		resp_problem(c->resp, P_IDEMPOTENCY_IN_PROGRESS,
		    "The first request with this Idempotency-Key is still being processed; "
		    "retry it shortly to get its answer.", NULL);
		break;
	default:
		resp_db_error(c->resp, c->app->db, "idempotency", result < 0 ? result : DB_ERR);
		break;
	}
}
