/* The committer's queue of jobs (daemon/committer.c): jobs run in the
 * order posted, the next starts as soon as the last ends, without the
 * loop collecting it first, and they are handed back in order. No
 * database: the configured socket does not exist, so each job runs with
 * db NULL, as it does while the database is down. */
#include "autoconf.h"

#include <check.h>
#include <poll.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/committer.c"
#include "config.h"

struct probe {
	sem_t release;               /* the job returns once posted to */
	sem_t ran;                   /* posted to when the job has run */
	bool saw_db;                 /* it was given a connection */
	int order;                   /* 1 + how many probes ran before it */
};

static int ran_so_far;

static int
probe_job(struct db *db, void *arg)
{
	struct probe *p = arg;

	sem_wait(&p->release);
	p->saw_db = db != NULL;
	p->order = ++ran_so_far;
	sem_post(&p->ran);
	return DB_GONE;
}

static void
probe_init(struct probe *p)
{
	memset(p, 0, sizeof *p);
	sem_init(&p->release, 0, 0);
	sem_init(&p->ran, 0, 0);
}

static bool
readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

static struct committer *
committer_without_db(struct genq_config *cfg)
{
	char err[256];
	struct committer *c;

	config_defaults(cfg);
	free(cfg->db_socket);
	cfg->db_socket = strdup("/nonexistent/genq-test.sock");
	cfg->db_connect_timeout_s = 1;
	c = committer_new(cfg, "test", err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	return c;
}

START_TEST(the_next_job_starts_before_the_last_is_collected)
{
	struct genq_config cfg;
	struct committer *c = committer_without_db(&cfg);
	struct probe a, b;
	int64_t a_posted;

	probe_init(&a);
	probe_init(&b);
	ran_so_far = 0;
	ck_assert(!committer_busy(c));
	ck_assert(committer_has_room(c));
	committer_post(c, probe_job, &a);
	a_posted = committer_busy_since(c);
	ck_assert_int_gt(a_posted, 0);
	ck_assert(committer_has_room(c));
	committer_post(c, probe_job, &b);
	ck_assert(!committer_has_room(c));
	ck_assert_int_eq(committer_busy_since(c), a_posted);   /* the oldest */

	/* b runs once a ends, with nothing collected in between. */
	sem_post(&a.release);
	sem_post(&b.release);
	sem_wait(&a.ran);
	sem_wait(&b.ran);
	ck_assert_int_eq(a.order, 1);
	ck_assert_int_eq(b.order, 2);
	ck_assert(!a.saw_db && !b.saw_db);

	/* Handed back one at a time, oldest first; the descriptor stays
	 * readable while an ended job waits. */
	committer_wait(c);
	ck_assert(readable(committer_fd(c)));
	ck_assert(committer_done(c));
	ck_assert(committer_busy(c));
	ck_assert(committer_has_room(c));
	ck_assert_int_ge(committer_busy_since(c), a_posted);
	ck_assert(readable(committer_fd(c)));
	ck_assert(committer_done(c));
	ck_assert(!committer_busy(c));
	ck_assert(!readable(committer_fd(c)));
	ck_assert(!committer_done(c));
	ck_assert_int_eq(committer_busy_since(c), 0);

	committer_free(c);
	config_free(&cfg);
}
END_TEST

START_TEST(free_waits_for_the_jobs_in_hand)
{
	struct genq_config cfg;
	struct committer *c = committer_without_db(&cfg);
	struct probe a, b;

	probe_init(&a);
	probe_init(&b);
	ran_so_far = 0;
	committer_post(c, probe_job, &a);
	committer_post(c, probe_job, &b);
	sem_post(&a.release);
	sem_post(&b.release);
	committer_free(c);           /* both ran before the thread stopped */
	ck_assert_int_eq(a.order, 1);
	ck_assert_int_eq(b.order, 2);
	config_free(&cfg);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("committer");
	TCase *tc = tcase_create("queue");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, the_next_job_starts_before_the_last_is_collected);
	tcase_add_test(tc, free_waits_for_the_jobs_in_hand);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
