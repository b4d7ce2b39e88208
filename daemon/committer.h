/* committer: database work run off genqd's loop, one job at a time, on a
 * connection of its own in a thread of its own.
 *
 * Ending attempts is most of what genqd asks of MariaDB when backends are
 * fast, and the loop used to wait for every statement of it. Handed to the
 * committer, that work overlaps with the loop's own (claims, HTTP), and
 * MariaDB works on both at once.
 *
 * Ownership: the loop owns the job's argument except while it is posted;
 * from committer_post until committer_done returns true (or committer_wait
 * returns) the committer's thread reads and writes it, and the loop must
 * not touch it or anything it points to. */
#ifndef GENQD_COMMITTER_H
#define GENQD_COMMITTER_H

#include <stdbool.h>
#include <stdint.h>

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

/* Wait for the job in hand, if any (its result is dropped: collect it
 * first), stop the thread, close the connection. */
void committer_free(struct committer *c);

/* Readable when a posted job is done (committer_done clears it): the loop
 * waits on it with its other descriptors. */
int committer_fd(const struct committer *c);

/* Is a job posted and not yet collected by committer_done? */
bool committer_busy(const struct committer *c);

/* When the job in hand was posted (monotonic µs), 0 when none. */
int64_t committer_busy_since(const struct committer *c);

/* The name it was made with. */
const char *committer_name(const struct committer *c);

/* Hand fn(db, arg) to the thread. Only when not busy. */
void committer_post(struct committer *c, committer_fn fn, void *arg);

/* Has the posted job ended? Then its argument is the loop's again and the
 * committer is idle. Never blocks; false when nothing is posted. */
bool committer_done(struct committer *c);

/* Log a job's failed database call (rc a db status, step names it). */
void committer_log_failure(struct db *db, int rc, const char *step);

/* Block until the posted job, if any, has ended (shutdown): committer_done
 * is true after it. */
void committer_wait(struct committer *c);

#endif
