/* fairshare: turns that make users of one priority take turns in a queue
 * (SPEC §4). A job's turn is fixed when it is admitted (queued or held) and
 * the claim orders by (priority, turn, seq); see sql/003_fairshare.sql.
 * Each call runs inside the caller's open transaction. */
#ifndef GENQ_FAIRSHARE_H
#define GENQ_FAIRSHARE_H

#include <stdint.h>

struct db;

/* The turn for a new job of user_id in queue at priority, and the user's
 * next turn advanced past it. Call with the user's row locked (admission
 * does), so two submits of one user never get the same turn. Returns DB_OK
 * or a negative db status. */
int fairshare_next_turn(struct db *db, uint64_t user_id, const char *queue, int priority,
    int64_t *turn);

/* A job that becomes claimable later than its admission (an approved held
 * job) takes its turn now, as a new submit of its user would, instead of
 * the old one it got when it was admitted. Returns DB_OK or a negative db
 * status. */
int fairshare_readmit(struct db *db, uint64_t job_seq);

/* The queue's current turn at priority (the highest claimed; 0 if none). */
int fairshare_clock(struct db *db, const char *queue, int priority, int64_t *turn);

/* A claim took a job of this turn: raise the queue's current turn to it. */
int fairshare_claimed(struct db *db, const char *queue, int priority, int64_t turn);

#endif
