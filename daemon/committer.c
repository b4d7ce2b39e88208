#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "committer.h"
#include "db.h"
#include "gqtime.h"
#include "log.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000

/* A posted job. */
struct job {
	committer_fn fn;
	void *arg;
};

/* Jobs are counted from the committer's start: job k sits in
 * jobs[k % COMMITTER_DEPTH] from its post until the loop collects it. */
struct committer {
	const struct genq_config *cfg;
	char name[24];               /* in log lines */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;         /* a job was posted, or quit */
	pthread_cond_t job_ended;    /* a job ended */
	int done_fd;                 /* eventfd: readable while an ended job waits */

	/* Under lock: */
	struct job jobs[COMMITTER_DEPTH];
	uint64_t posted;             /* jobs posted so far (written by the loop) */
	uint64_t taken;              /* of those, taken up by the thread */
	uint64_t ended;              /* of those, ended */
	bool quit;

	/* The loop's own: */
	uint64_t collected;          /* ended jobs handed back by committer_done */
	int64_t posted_at[COMMITTER_DEPTH];  /* monotonic µs, per slot */

	/* The thread's own: */
	struct db *db;
	bool db_lost;
	int backoff_ms;
	int64_t connect_at;          /* no new connection before (monotonic µs) */
};

/* The thread's connection, made or remade when needed; NULL while the
 * database cannot be reached (tries spaced by a growing backoff). */
static struct db *
connection(struct committer *c)
{
	int64_t now = gq_mono_us();
	char err[256] = "";
	int rc;

	if (c->db != NULL && !c->db_lost)
		return c->db;
	if (now < c->connect_at)
		return NULL;
	/* Only db_txn runs here (committer_fn's contract): no START
	 * TRANSACTION round trip per claim or batch. */
	rc = db_ensure(&c->db, c->cfg, err, sizeof err);
	if (rc == DB_OK && (rc = db_txns_only(c->db)) != DB_OK)
		snprintf(err, sizeof err, "%s", db_error(c->db));
	c->db_lost = rc != DB_OK;
	if (rc == DB_OK) {
		log_info("committer_db_connected", "thread=%s backoff_ms=%d", c->name, c->backoff_ms);
		c->backoff_ms = 0;
		return c->db;
	}
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	c->connect_at = now + (int64_t)c->backoff_ms * 1000;
	log_warn("committer_db_connect_failed", "thread=%s retry_in_ms=%d error=\"%s\"", c->name,
	    c->backoff_ms, log_q(err));
	return NULL;
}

static void *
thread_main(void *arg)
{
	struct committer *c = arg;

	db_thread_begin();
	/* Connected before the first job, not by it: the first claim and the
	 * first batch after a start are not kept waiting for a login. A failure
	 * here is retried by the first job, after the backoff. */
	(void)connection(c);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct job job;
		struct db *db;
		uint64_t one = 1;

		while (c->taken == c->posted && !c->quit)
			pthread_cond_wait(&c->wake, &c->lock);
		if (c->taken == c->posted)
			break;                  /* quit, nothing posted */
		job = c->jobs[c->taken % COMMITTER_DEPTH];
		c->taken++;
		pthread_mutex_unlock(&c->lock);

		db = connection(c);
		if (job.fn(db, job.arg) == DB_GONE && db != NULL)
			c->db_lost = true;

		pthread_mutex_lock(&c->lock);
		c->ended++;
		pthread_cond_signal(&c->job_ended);
		/* Cannot fail short of a counter at its maximum (never). */
		if (write(c->done_fd, &one, sizeof one) < 0)
			log_error("committer_signal_failed", "error=\"%s\"", strerror(errno));
	}
	pthread_mutex_unlock(&c->lock);
	db_close(c->db);
	c->db = NULL;
	db_thread_end();
	return NULL;
}

struct committer *
committer_new(const struct genq_config *cfg, const char *name, char *err, size_t errlen)
{
	struct committer *c = calloc(1, sizeof *c);
	sigset_t all, old;
	int rc;

	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->cfg = cfg;
	snprintf(c->name, sizeof c->name, "%s", name);
	if ((c->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	pthread_cond_init(&c->job_ended, NULL);
	/* Signals are the loop's: the thread starts with all of them blocked,
	 * so a SIGTERM interrupts the loop's poll, not this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&c->thread, NULL, thread_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		pthread_cond_destroy(&c->job_ended);
		pthread_cond_destroy(&c->wake);
		pthread_mutex_destroy(&c->lock);
		close(c->done_fd);
		free(c);
		return NULL;
	}
	return c;
}

void
committer_free(struct committer *c)
{
	if (c == NULL)
		return;
	committer_wait(c);
	while (committer_done(c))
		;
	pthread_mutex_lock(&c->lock);
	c->quit = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->job_ended);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	close(c->done_fd);
	free(c);
}

int
committer_fd(const struct committer *c)
{
	return c->done_fd;
}

bool
committer_busy(const struct committer *c)
{
	return c->posted > c->collected;
}

bool
committer_has_room(const struct committer *c)
{
	return c->posted - c->collected < COMMITTER_DEPTH;
}

int64_t
committer_busy_since(const struct committer *c)
{
	return committer_busy(c) ? c->posted_at[c->collected % COMMITTER_DEPTH] : 0;
}

const char *
committer_name(const struct committer *c)
{
	return c->name;
}

void
committer_post(struct committer *c, committer_fn fn, void *arg)
{
	size_t slot = c->posted % COMMITTER_DEPTH;

	pthread_mutex_lock(&c->lock);
	c->jobs[slot] = (struct job){ fn, arg };
	c->posted++;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	c->posted_at[slot] = gq_mono_us();
}

/* Under lock, the oldest job ended: its argument is the loop's again. */
static void
collect(struct committer *c)
{
	uint64_t count;

	c->collected++;
	/* Reset the counter once no ended job waits (EAGAIN, nothing to
	 * read, is as good); while one does, the descriptor stays readable. */
	if (c->ended == c->collected && read(c->done_fd, &count, sizeof count) < 0 &&
	    errno != EAGAIN)
		log_error("committer_signal_failed", "error=\"%s\"", strerror(errno));
}

void
committer_log_failure(struct db *db, int rc, const char *step)
{
	if (rc == DB_GONE)
		log_warn("db_lost", "step=%s error=\"%s\"", step, log_q(db_error(db)));
	else
		log_error("db_error", "step=%s status=%d error=\"%s\"", step, rc,
		    log_q(db_error(db)));
}

bool
committer_done(struct committer *c)
{
	bool done;

	if (!committer_busy(c))
		return false;
	pthread_mutex_lock(&c->lock);
	if ((done = c->ended > c->collected))
		collect(c);
	pthread_mutex_unlock(&c->lock);
	return done;
}

void
committer_wait(struct committer *c)
{
	if (!committer_busy(c))
		return;
	pthread_mutex_lock(&c->lock);
	while (c->ended < c->posted)
		pthread_cond_wait(&c->job_ended, &c->lock);
	pthread_mutex_unlock(&c->lock);
}
