/* jobadmin: the operator's actions, written once and used by both genqctl
 * and the admin API (genq-fcgi) so the two can never drift apart:
 * approve or reject a held job, grant credits, pause or resume a queue,
 * drain or undrain a backend.
 *
 * Each function runs its own transaction (db_txn, retried on deadlock and
 * after a lost connection) and returns DB_OK, a positive enum
 * jobadmin_refusal (nothing was changed), or a negative db status. A rerun
 * after a lost connection whose commit had in fact landed is reported as
 * success, not as a refusal. */
#ifndef GENQ_JOBADMIN_H
#define GENQ_JOBADMIN_H

#include <stdbool.h>
#include <stdint.h>

struct db;

enum jobadmin_refusal {
	JOBADMIN_NOT_FOUND = 1,  /* no such job, queue, backend or user */
	JOBADMIN_NOT_HELD,       /* approve or reject of a job that is not held */
	JOBADMIN_TOO_MUCH,       /* a grant that would overflow the balance */
};

/* One approve or reject. The caller fills the inputs; the rest is output. */
struct jobadmin_job {
	const char *id;          /* in: the job's public id (checked UUID) */
	const char *actor;       /* in: "genqctl", "admin:NAME" (events, ledger) */
	const char *reason;      /* in: for the event, or NULL for the default */
	char from[16];           /* out: the status the job had ("held") */
	const char *to;          /* out: the status it has now */
	uint64_t seq, user_id;   /* out */
	int64_t released;        /* out: micro-credits handed back (reject) */
	int runs;                /* internal: transaction attempts */
};

/* held -> queued, or -> waiting while a job in its `after` has not
 * succeeded: the job becomes claimable (callers wake genqd). This is
 * the one place that decides where an approved job goes. */
int jobadmin_approve(struct db *db, struct jobadmin_job *j);

/* held -> canceled with error code "rejected"; the whole hold is released
 * in the same transaction. */
int jobadmin_reject(struct db *db, struct jobadmin_job *j);

/* A grant of credits to a user (ledger kind "grant"). */
struct jobadmin_grant {
	const char *user;        /* in: users.name */
	int64_t amount;          /* in: micro-credits, > 0 */
	const char *actor;       /* in */
	const char *note;        /* in: kept on the ledger row; may be NULL */
	uint64_t user_id;        /* out */
	int64_t balance;         /* out: available credits after the grant */
	int64_t held;            /* out: holds of the user's active jobs */
	char since[32];          /* internal: when the first try began */
	int runs;                /* internal */
};

int jobadmin_grant(struct db *db, struct jobadmin_grant *g);

/* Set queues.paused (submits are then refused with 503 queue_paused). */
int jobadmin_queue_pause(struct db *db, const char *queue, bool paused);

/* Set backends.draining (genqd then gives it no new jobs). */
int jobadmin_backend_drain(struct db *db, const char *backend, bool draining);

/* A short English description of a refusal ("no such job"). */
const char *jobadmin_strerror(int refusal);

#endif
