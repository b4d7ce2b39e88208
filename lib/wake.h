/* wake: a local wake-up from the FastCGI handlers to genqd, so a new job
 * reaches an idle backend at once instead of at the next poll. A unix
 * datagram socket: sends never block and are dropped when nobody listens
 * (genqd also polls, which covers other hosts and lost wake-ups). */
#ifndef GENQ_WAKE_H
#define GENQ_WAKE_H

/* Bind path (replacing a stale socket file) and return a non-blocking fd,
 * or -1 with errno set. */
int wake_listen(const char *path);

/* Read and discard every pending wake-up on fd. */
void wake_drain(int fd);

/* Send one wake-up to path; errors are ignored by design. */
void wake_send(const char *path);

#endif
