/* committer: database work run off genqd's loop, one job at a time, on a
 * connection of its own in a thread of its own. Up to COMMITTER_DEPTH jobs
 * may be posted: the thread takes them up in order, so the next one starts
 * the moment the last ends, not when the loop comes round to collect it.
 *
 * Ending attempts is most of what genqd asks of MariaDB when backends are
 * fast, and the loop used to wait for every statement of it. Handed to the
 * committer, that work overlaps with the loop's own (claims, HTTP), and
 * MariaDB works on both at once.
 *
 * Ownership: the loop owns the job's argument except while it is posted;
 * from committer_post until committer_done hands it back (or committer_wait
 * returns) the committer's thread reads and writes it, and the loop must
 * not touch it or anything it points to. Jobs are handed back in the order
 * they were posted. */
#ifndef GENQD_COMMITTER_H
#define GENQD_COMMITTER_H

#include <stdbool.h>
#include <stdint.h>

/* Jobs posted and not yet collected, at most. */
#define COMMITTER_DEPTH 2

struct db;
struct genq_config;
struct committer;

/* A job: runs in the committer's thread with its connection, or with db
 * NULL when there is none (the database is down: the job says so to its
 * owner). Returns a db status; DB_GONE drops the connection, and the next
 * job gets a new one (after a backoff while connecting fails). Its
 * statements run inside db_txn only: the connection has autocommit off
 * (db_txns_only). */
typedef int (*committer_fn)(struct db *db, void *arg);

/* Start the thread (the connection is made at the first job). name (up to
 * 23 bytes kept) tells it apart in log lines. NULL with a message in err on
 * failure. cfg must outlive the committer. */
struct committer *committer_new(const struct genq_config *cfg, const char *name, char *err,
    size_t errlen);

/* Wait for the jobs in hand, if any (their results are dropped: collect
 * them first), stop the thread, close the connection. */
void committer_free(struct committer *c);

/* Readable when a posted job is done (committer_done clears it): the loop
 * waits on it with its other descriptors. */
int committer_fd(const struct committer *c);

/* Is a job posted and not yet collected by committer_done? */
bool committer_busy(const struct committer *c);

/* May another job be posted (fewer than COMMITTER_DEPTH in hand)? */
bool committer_has_room(const struct committer *c);

/* When the oldest job in hand was posted (monotonic µs), 0 when none. */
int64_t committer_busy_since(const struct committer *c);

/* The name it was made with. */
const char *committer_name(const struct committer *c);

/* Hand fn(db, arg) to the thread. Only when committer_has_room. */
void committer_post(struct committer *c, committer_fn fn, void *arg);

/* Has the oldest job in hand ended? Then its argument is the loop's again.
 * Never blocks; false when nothing is posted. Call until false: more than
 * one may have ended. */
bool committer_done(struct committer *c);

/* Log a job's failed database call (rc a db status, step names it). */
void committer_log_failure(struct db *db, int rc, const char *step);

/* Block until every job in hand has ended (shutdown): committer_done is
 * true for each after it. */
void committer_wait(struct committer *c);

#endif
