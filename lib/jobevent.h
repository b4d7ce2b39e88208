/* jobevent: the audit trail. Every job state change appends one row, in the
 * same transaction as the change, and, when the job's webhook subscribes to
 * it (started: to running; completed: to a terminal status), one webhook
 * outbox row that genqd delivers (daemon/webhook.c). */
#ifndef GENQ_JOBEVENT_H
#define GENQ_JOBEVENT_H

#include <stdbool.h>
#include <stdint.h>

struct db;

/* from may be NULL (creation). reason may be NULL. attempt and backend_id 0
 * mean none. Returns DB_OK or a negative db status. */
int job_event_add(struct db *db, uint64_t job_seq, const char *from, const char *to,
    const char *actor, const char *reason, int attempt, uint64_t backend_id);

/* One state change of a job, for job_events_add. */
struct job_event {
	uint64_t job_seq;
	const char *from, *to;       /* from may be NULL (creation) */
	const char *reason;          /* may be NULL */
	int attempt;                 /* 0: none */
	uint64_t backend_id;         /* 0: none */
	bool no_webhook;             /* the caller knows the job has none: no outbox lookup */
};

/* job_event_add for n changes by one actor, a few statements for all of
 * them. DB_OK or a negative db status. */
int job_events_add(struct db *db, const struct job_event *v, size_t n, const char *actor);

/* The job's progress changed (call at most about once a second, in the
 * transaction that writes it): queues a progress webhook if the job wants
 * one and none was queued in the last second. DB_OK or a negative status. */
int job_progress_notify(struct db *db, uint64_t job_seq);

#endif
