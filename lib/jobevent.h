/* jobevent: the audit trail. Every job state change appends one row, in the
 * same transaction as the change. */
#ifndef GENQ_JOBEVENT_H
#define GENQ_JOBEVENT_H

#include <stdint.h>

struct db;

/* from may be NULL (creation). reason may be NULL. attempt and backend_id 0
 * mean none. Returns DB_OK or a negative db status. */
int job_event_add(struct db *db, uint64_t job_seq, const char *from, const char *to,
    const char *actor, const char *reason, int attempt, uint64_t backend_id);

#endif
