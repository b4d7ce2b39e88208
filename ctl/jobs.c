#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "jobadmin.h"
#include "jobevent.h"
#include "ledger.h"
#include "secure.h"
#include "wake.h"

static const char SQL_LOCK[] =
    "SELECT seq, user_id, status, cost_held, queue, timeout_s FROM jobs WHERE id = ? FOR UPDATE";
/* Ends a job that never ran: canceled, every credit held given back. */
static const char SQL_END[] =
    "UPDATE jobs SET status = 'canceled', finished_at = UTC_TIMESTAMP(6),"
    " cost_refunded = cost_held, error_code = ?, error_message = ?, error_retryable = 0,"
    " progress = NULL WHERE seq = ? AND status = ?";
static const char SQL_REQUEST_CANCEL[] =
    "UPDATE jobs SET cancel_requested = 1 WHERE seq = ? AND status = 'running'";
static const char SQL_PRICE[] =
    "SELECT price_per_job, price_per_second FROM queues WHERE name = ?";
static const char SQL_FIND_SEQ[] =
    "SELECT seq FROM jobs WHERE id = ?";
/* A retry is a new job with the old one's request, linked by regenerated_from:
 * terminal jobs never change (SPEC §2). */
static const char SQL_COPY[] =
    "INSERT INTO jobs (id, user_id, queue, status, priority, input, metadata, webhook_url,"
    " webhook_events, max_attempts, timeout_s, ttl_s, created_at, not_before, cost_held,"
    " regenerated_from)"
    " SELECT ?, user_id, queue, 'queued', priority, input, metadata, webhook_url,"
    " webhook_events, max_attempts, timeout_s, ttl_s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), ?, id"
    " FROM jobs WHERE seq = ?";
static const char SQL_SHOW[] =
    "SELECT j.seq, j.id, u.name, j.queue, j.status, j.priority, j.attempts, j.max_attempts,"
    " j.timeout_s, j.ttl_s, j.created_at, j.not_before, j.started_at, j.finished_at,"
    " j.progress, b.name, j.prompt_id, j.claimed_by, j.lease_until, j.cancel_requested,"
    " j.error_code, j.error_message, j.error_retryable, j.cost_held, j.cost_charged,"
    " j.cost_refunded, j.regenerated_from, j.webhook_url, j.webhook_events,"
    " LENGTH(j.input), LEFT(j.input, 160), j.metadata"
    " FROM jobs j JOIN users u ON u.id = j.user_id LEFT JOIN backends b ON b.id = j.backend_id"
    " WHERE j.id = ?";
static const char SQL_EVENTS[] =
    "SELECT e.at, e.from_status, e.to_status, e.actor, e.attempt, b.name, e.reason"
    " FROM job_events e LEFT JOIN backends b ON b.id = e.backend_id"
    " WHERE e.job_seq = ? ORDER BY e.id";
static const char SQL_ATTEMPTS[] =
    "SELECT a.attempt, b.name, a.prompt_id, a.started_at, a.finished_at, a.outcome,"
    " a.error_code, a.error_message"
    " FROM job_attempts a LEFT JOIN backends b ON b.id = a.backend_id"
    " WHERE a.job_seq = ? ORDER BY a.attempt";
static const char SQL_OUTPUTS[] =
    "SELECT idx, kind, content_type, bytes, COALESCE(path, LEFT(text, 60)), sha256, deleted_at"
    " FROM job_outputs WHERE job_seq = ? ORDER BY idx";

enum job_op { OP_CANCEL, OP_REJECT, OP_APPROVE, OP_RETRY };

/* One operator action on one job, run by job_txn. */
struct job_action {
	enum job_op op;
	const char *id;
	char new_id[GQ_UUID_LEN];     /* OP_RETRY: chosen before the transaction */
	char status[16];              /* the job's status when it was locked */
	const char *result;           /* what happened, for the success line */
	bool wake;                    /* a job became queued: wake genqd */
	char why[200];                /* the refusal when job_txn returns 1 */
};

/* The locked job's row. */
struct job_row {
	uint64_t seq, user_id;
	int64_t cost_held, timeout_s;
	char queue[CTL_QUEUE_MAX + 1];
};

/* Record why the action is refused; job_txn then returns 1 (roll back). */
static int refuse(struct job_action *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
refuse(struct job_action *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->why, sizeof a->why, fmt, ap);
	va_end(ap);
	return 1;
}

/* Cancel a job that has not started: canceled, hold released. */
static int
end_unstarted(struct db *db, struct job_action *a, const struct job_row *j)
{
	struct db_stmt *st = db_prepare(db, SQL_END);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, "canceled");
	db_bind_str(st, 1, "canceled by an operator");
	db_bind_i64(st, 2, (int64_t)j->seq);
	db_bind_str(st, 3, a->status);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1)
		return DB_ERR;        /* the row changed under our lock: cannot be */
	if (j->cost_held > 0 &&
	    (rc = ledger_apply(db, j->user_id, j->seq, "release", j->cost_held, CTL_ACTOR,
	    "canceled")) != DB_OK)
		return rc < 0 ? rc : DB_ERR;
	a->result = "canceled, hold released";
	return job_event_add(db, j->seq, a->status, "canceled", CTL_ACTOR,
	    "canceled by an operator", 0, 0);
}

static int
cancel(struct db *db, struct job_action *a, const struct job_row *j)
{
	struct db_stmt *st;
	int rc;

	if (strcmp(a->status, "held") == 0 || strcmp(a->status, "waiting") == 0 ||
	    strcmp(a->status, "queued") == 0)
		return end_unstarted(db, a, j);
	if (strcmp(a->status, "canceled") == 0) {
		a->result = "was already canceled";
		return DB_OK;
	}
	if (strcmp(a->status, "running") != 0)
		return refuse(a, "job %s has already ended: %s", a->id, a->status);
	if ((st = db_prepare(db, SQL_REQUEST_CANCEL)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, (int64_t)j->seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	a->result = "is running: cancel requested, genqd interrupts it on its backend";
	return DB_OK;
}

/* The retry's new job exists already (an earlier try committed). */
static int
retry_done(struct db *db, struct job_action *a)
{
	struct db_stmt *st = db_prepare(db, SQL_FIND_SEQ);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, a->new_id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	return db_next(st);
}

static int
retry(struct db *db, struct job_action *a, const struct job_row *j)
{
	struct db_stmt *st;
	int64_t hold;
	uint64_t seq;
	char note[80];
	int rc;

	if (strcmp(a->status, "failed") != 0 && strcmp(a->status, "canceled") != 0 &&
	    strcmp(a->status, "expired") != 0)
		return refuse(a, "job %s is %s: only failed, canceled or expired jobs are retried",
		    a->id, a->status);
	if ((rc = retry_done(db, a)) != 0)
		return rc < 0 ? rc : DB_OK;
	if ((st = db_prepare(db, SQL_PRICE)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, j->queue);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0)
		return rc;
	if (rc == 0)
		return refuse(a, "job %s: its queue '%s' no longer exists", a->id, j->queue);
	/* The submit's hold (SPEC §5), at today's price. */
	if (__builtin_mul_overflow(db_i64(st, 1), j->timeout_s, &hold) ||
	    __builtin_add_overflow(hold, db_i64(st, 0), &hold))
		return refuse(a, "job %s: its queue's price is out of range", a->id);

	if ((st = db_prepare(db, SQL_COPY)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, a->new_id);
	db_bind_i64(st, 1, hold);
	db_bind_i64(st, 2, (int64_t)j->seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	seq = db_insert_id(st);
	snprintf(note, sizeof note, "retry of %s", a->id);
	if (hold > 0) {
		rc = ledger_apply(db, j->user_id, seq, "hold", -hold, CTL_ACTOR, note);
		if (rc == LEDGER_INSUFFICIENT) {
			char need[32];
			return refuse(a, "job %s: its user has fewer credits than the %s the retry holds",
			    a->id, tbl_credits(need, hold));
		}
		if (rc != DB_OK)
			return rc;
	}
	a->result = "retried as a new job";
	a->wake = true;
	return job_event_add(db, seq, NULL, "queued", CTL_ACTOR, note, 0, 0);
}

static int
job_txn(struct db *db, void *arg)
{
	struct job_action *a = arg;
	struct db_stmt *st = db_prepare(db, SQL_LOCK);
	struct job_row j = { 0 };
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, a->id);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0)
		return rc;
	if (rc == 0)
		return refuse(a, "unknown job %s", a->id);
	j.seq = (uint64_t)db_i64(st, 0);
	j.user_id = (uint64_t)db_i64(st, 1);
	snprintf(a->status, sizeof a->status, "%s", db_text(st, 2, NULL));
	j.cost_held = db_i64(st, 3);
	snprintf(j.queue, sizeof j.queue, "%s", db_text(st, 4, NULL));
	j.timeout_s = db_i64(st, 5);
	switch (a->op) {
	case OP_CANCEL:
		return cancel(db, a, &j);
	case OP_RETRY:
		return retry(db, a, &j);
	case OP_REJECT:
	case OP_APPROVE:
		break;          /* jobadmin's, see run_judgement */
	}
	return DB_ERR;
}

/* approve and reject: the same code the admin API runs (lib/jobadmin.c). */
static int
run_judgement(struct ctl *ctl, struct job_action *a)
{
	struct jobadmin_job j = { 0 };
	struct db *db = ctl_db(ctl);
	int rc;

	if (db == NULL)
		return CTL_FAIL;
	j.id = a->id;
	j.actor = CTL_ACTOR;
	j.reason = a->op == OP_APPROVE ? "approved by an operator" : "rejected by an operator";
	rc = a->op == OP_APPROVE ? jobadmin_approve(db, &j) : jobadmin_reject(db, &j);
	if (rc == JOBADMIN_NOT_FOUND)
		return ctl_fail("unknown job %s", a->id);
	if (rc == JOBADMIN_NOT_HELD)
		return ctl_fail("job %s is %s, not held", a->id, j.from);
	if (rc != DB_OK)
		return ctl_fail_db(db, rc < 0 ? rc : DB_ERR);
	if (a->op == OP_APPROVE) {
		a->result = strcmp(j.to, "waiting") == 0 ? "approved: waiting" : "approved: queued";
		a->wake = true;
	} else {
		a->result = "rejected, hold released";
	}
	return CTL_OK;
}

static int
run_action(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct { const char *name; enum job_op op; } ops[] = {
		{ "cancel", OP_CANCEL }, { "reject", OP_REJECT },
		{ "approve", OP_APPROVE }, { "retry", OP_RETRY },
	};
	struct job_action a = { 0 };
	int rc;

	if ((rc = ctl_args(cmd, argc, argv, 1, 1)) != CTL_OK)
		return rc;
	for (size_t i = 0; i < CTL_NSUBS(ops); i++)
		if (strcmp(cmd->name, ops[i].name) == 0)
			a.op = ops[i].op;
	a.id = argv[optind];
	if (ctl_check_job_id(a.id) != CTL_OK)
		return CTL_FAIL;
	if (a.op == OP_RETRY && gq_uuid4(a.new_id) < 0)
		return ctl_fail("cannot make a job id: no randomness");
	if (a.op == OP_APPROVE || a.op == OP_REJECT) {
		if (run_judgement(ctl, &a) != CTL_OK)
			return CTL_FAIL;
	} else if (ctl_txn(ctl, job_txn, &a, a.why) != CTL_OK) {
		return CTL_FAIL;
	}
	if (a.wake && ctl->cfg.wake_socket[0] != '\0')
		wake_send(ctl->cfg.wake_socket, NULL);
	if (a.op == OP_RETRY)
		printf("%s\n", a.new_id);      /* alone, like a submit's id, for scripts */
	else
		printf("job %s %s\n", a.id, a.result);
	return CTL_OK;
}

/* "name  value" lines of job show. */
static void
field(const char *name, const char *value)
{
	printf("%-16s %s\n", name, value ? value : "-");
}

static void
event_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	cell[0] = tbl_time(buf[0], db_text(st, 0, NULL));
	cell[1] = db_text(st, 1, NULL);
	cell[2] = db_text(st, 2, NULL);
	cell[3] = db_text(st, 3, NULL);
	cell[4] = db_text(st, 4, NULL);
	cell[5] = db_text(st, 5, NULL);
	cell[6] = db_text(st, 6, NULL);
}

static void
attempt_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	cell[0] = db_text(st, 0, NULL);
	cell[1] = db_text(st, 1, NULL);
	cell[2] = db_text(st, 2, NULL);
	cell[3] = tbl_time(buf[3], db_text(st, 3, NULL));
	cell[4] = tbl_time(buf[4], db_text(st, 4, NULL));
	cell[5] = db_text(st, 5, NULL);
	cell[6] = db_text(st, 6, NULL);
	cell[7] = db_text(st, 7, NULL);
}

static void
output_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	(void)buf;
	for (unsigned i = 0; i < 7; i++)
		cell[i] = db_text(st, i, NULL);
}

/* The job's row as "name value" lines; its seq for the tables below. */
static int
show_job(struct db *db, const char *id, int64_t *seq)
{
	struct db_stmt *st = db_prepare(db, SQL_SHOW);
	char b1[32], b2[32], b3[32], line[160];
	int rc;

	if (st == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_str(st, 0, id);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0)
		return ctl_fail_db(db, rc);
	if (rc == 0)
		return ctl_fail("unknown job %s", id);
	*seq = db_i64(st, 0);
	field("id", db_text(st, 1, NULL));
	field("user", db_text(st, 2, NULL));
	field("queue", db_text(st, 3, NULL));
	field("status", db_text(st, 4, NULL));
	field("priority", db_text(st, 5, NULL));
	snprintf(line, sizeof line, "%s of %s", db_text(st, 6, NULL), db_text(st, 7, NULL));
	field("attempts", line);
	snprintf(line, sizeof line, "timeout %ss, ttl %ss", db_text(st, 8, NULL), db_text(st, 9, NULL));
	field("limits", line);
	field("created_at", db_text(st, 10, NULL));
	field("not_before", db_text(st, 11, NULL));
	field("started_at", db_text(st, 12, NULL));
	field("finished_at", db_text(st, 13, NULL));
	field("progress", db_text(st, 14, NULL));
	field("backend", db_text(st, 15, NULL));
	field("prompt_id", db_text(st, 16, NULL));
	if (!db_is_null(st, 17)) {
		snprintf(line, sizeof line, "%s until %s", db_text(st, 17, NULL),
		    db_is_null(st, 18) ? "-" : db_text(st, 18, NULL));
		field("claimed_by", line);
	}
	if (db_i64(st, 19))
		field("cancel", "requested");
	if (!db_is_null(st, 20)) {
		char err[2200];
		snprintf(err, sizeof err, "%s: %s (%s)", db_text(st, 20, NULL),
		    db_is_null(st, 21) ? "" : db_text(st, 21, NULL),
		    db_i64(st, 22) ? "retryable" : "not retryable");
		field("error", err);
	}
	snprintf(line, sizeof line, "held %s, charged %s, refunded %s",
	    tbl_credits(b1, db_i64(st, 23)), tbl_credits(b2, db_i64(st, 24)),
	    tbl_credits(b3, db_i64(st, 25)));
	field("cost", line);
	if (!db_is_null(st, 26))
		field("regenerated_from", db_text(st, 26, NULL));
	if (!db_is_null(st, 27)) {
		snprintf(line, sizeof line, "%.120s (%s)", db_text(st, 27, NULL),
		    db_is_null(st, 28) ? "all events" : db_text(st, 28, NULL));
		field("webhook", line);
	}
	snprintf(line, sizeof line, "%s bytes: %.100s%s", db_text(st, 29, NULL),
	    db_text(st, 30, NULL), db_i64(st, 29) > 100 ? "..." : "");
	field("input", line);
	if (!db_is_null(st, 31))
		field("metadata", db_text(st, 31, NULL));
	return CTL_OK;
}

static int
run_show(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const events[] = {
		"AT", "FROM", "TO", "ACTOR", ">ATTEMPT", "BACKEND", "REASON",
	};
	static const char *const attempts[] = {
		">ATTEMPT", "BACKEND", "PROMPT_ID", "STARTED", "FINISHED", "OUTCOME", "ERROR", "MESSAGE",
	};
	static const char *const outputs[] = {
		">INDEX", "KIND", "TYPE", ">BYTES", "PATH OR TEXT", "SHA256", "DELETED",
	};
	const char *id;
	struct db_stmt *st;
	struct db *db;
	int64_t seq;
	int rc;

	if ((rc = ctl_args(cmd, argc, argv, 1, 1)) != CTL_OK)
		return rc;
	id = argv[optind];
	if (ctl_check_job_id(id) != CTL_OK || (db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	if (show_job(db, id, &seq) != CTL_OK)
		return CTL_FAIL;

	printf("\nevents:\n");
	if ((st = db_prepare(db, SQL_EVENTS)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_i64(st, 0, seq);
	if (ctl_print_rows(db, st, CTL_NSUBS(events), events, event_row) != CTL_OK)
		return CTL_FAIL;
	printf("\nattempts:\n");
	if ((st = db_prepare(db, SQL_ATTEMPTS)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_i64(st, 0, seq);
	if (ctl_print_rows(db, st, CTL_NSUBS(attempts), attempts, attempt_row) != CTL_OK)
		return CTL_FAIL;
	printf("\noutputs:\n");
	if ((st = db_prepare(db, SQL_OUTPUTS)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	db_bind_i64(st, 0, seq);
	return ctl_print_rows(db, st, CTL_NSUBS(outputs), outputs, output_row);
}

static const struct ctl_cmd subs[] = {
	{ "show", run_show, "job show ID", "A job: its fields, events, attempts and outputs.",
	  NULL, NULL, 0 },
	{ "cancel", run_action, "job cancel ID",
	  "Cancel a job: one not yet running ends at once with its hold released; "
	  "a running one is interrupted by genqd.", NULL, NULL, 0 },
	{ "approve", run_action, "job approve ID", "Let a held job run (held -> queued).",
	  NULL, NULL, 0 },
	{ "reject", run_action, "job reject ID",
	  "Refuse a held job (held -> canceled, hold released).", NULL, NULL, 0 },
	{ "retry", run_action, "job retry ID",
	  "Run a failed, canceled or expired job again as a new job (regenerated_from the old), "
	  "holding credits at today's price; prints the new id.", NULL, NULL, 0 },
};

const struct ctl_cmd job_cmd = {
	"job", NULL, "job show|cancel|approve|reject|retry ID", "Inspect and act on jobs.", NULL,
	subs, CTL_NSUBS(subs),
};
