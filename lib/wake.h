/* wake: a local wake-up from the FastCGI handlers to genqd, so a new job
 * reaches an idle backend at once instead of at the next poll. A unix
 * datagram socket: sends never block and are dropped when nobody listens
 * (genqd also polls, which covers other hosts and lost wake-ups).
 *
 * A datagram is "w" (look at everything) or "q" and a queue's name (a job
 * became claimable there): only that queue's backends need to claim, and
 * idle backends of other queues are left to wait instead of each asking
 * the database for heads they do not have. */
#ifndef GENQ_WAKE_H
#define GENQ_WAKE_H

/* Bind path (replacing a stale socket file) and return a non-blocking fd,
 * or -1 with errno set. */
int wake_listen(const char *path);

/* The longest queue name a wake-up carries (bytes); a longer one is sent
 * as a plain wake-up. */
#define WAKE_QUEUE_MAX 128

/* Called per wake-up read: queue is the queue's name (NUL-terminated), or
 * NULL for a wake-up about everything (or one not understood). */
typedef void (*wake_fn)(void *arg, const char *queue);

/* Read every pending wake-up on fd, calling fn for each. */
void wake_drain(int fd, wake_fn fn, void *arg);

/* Send one wake-up to path: about queue, or everything when queue is NULL.
 * Errors are ignored by design. */
void wake_send(const char *path, const char *queue);

#endif
