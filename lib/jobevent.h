/* jobevent: the audit trail. Every job state change appends one row, in the
 * same transaction as the change, and, when the job's webhook subscribes to
 * it (started: to running; completed: to a terminal status), one webhook
 * outbox row that genqd delivers (daemon/webhook.c). */
#ifndef GENQ_JOBEVENT_H
#define GENQ_JOBEVENT_H

#include <stdint.h>

struct db;

/* from may be NULL (creation). reason may be NULL. attempt and backend_id 0
 * mean none. Returns DB_OK or a negative db status. */
int job_event_add(struct db *db, uint64_t job_seq, const char *from, const char *to,
    const char *actor, const char *reason, int attempt, uint64_t backend_id);

/* The job's progress changed (call at most about once a second, in the
 * transaction that writes it): queues a progress webhook if the job wants
 * one and none was queued in the last second. DB_OK or a negative status. */
int job_progress_notify(struct db *db, uint64_t job_seq);

#endif
