/* Unit tests: how one claim transaction shares the locked jobs out among
 * the backends with room, and when a backend's claim is due
 * (daemon/claim.c; the SQL itself is covered end to end by
 * tests/e2e/test_order.py and tests/e2e/test_retry_backend.py). */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/claim.c"

/* genqd functions claim.c calls, reduced to what these tests need. */
bool
backend_has_room(const struct genqd *g, const struct backend *b)
{
	(void)g;
	return b->leased && backend_busy(b) < b->max_running + b->prefetch;
}

bool
gqd_db_ready(const struct genqd *g)
{
	(void)g;
	return false;
}

void
gqd_db_failed(struct genqd *g, int rc, const char *what)
{
	(void)g, (void)rc, (void)what;
}

/* Runs made, and backends handed back, by the code under test. */
static struct run made[16];
static size_t nmade;
static uint64_t handed_back[4];
static size_t nhanded_back;

struct run *
run_new(struct genqd *g, struct backend *b)
{
	struct run *r;

	(void)g;
	if (nmade == sizeof made / sizeof made[0])
		return NULL;
	r = &made[nmade++];
	memset(r, 0, sizeof *r);
	r->backend = b;
	return r;
}

int
finish_hand_back(struct genqd *g, uint64_t backend_id)
{
	(void)g;
	if (nhanded_back < sizeof handed_back / sizeof handed_back[0])
		handed_back[nhanded_back++] = backend_id;
	return 0;
}

/* The claimer thread is not started here: the tests call the parts. */
void
committer_post(struct committer *c, committer_fn fn, void *arg)
{
	(void)c, (void)fn, (void)arg;
}

bool
committer_done(struct committer *c)
{
	(void)c;
	return false;
}

void
committer_wait(struct committer *c)
{
	(void)c;
}

void
committer_log_failure(struct db *db, int rc, const char *step)
{
	(void)db, (void)rc, (void)step;
}

static char *image_q[] = { "image" };
static char *both_q[] = { "image", "video" };

static void
backend_init(struct backend *b, char **queues, size_t nqueues, int max_running, int prefetch,
    int inflight)
{
	memset(b, 0, sizeof *b);
	b->queues = queues;
	b->nqueues = nqueues;
	b->max_running = max_running;
	b->prefetch = prefetch;
	b->inflight = inflight;
	b->leased = true;
}

/* A taker for b wanting want jobs, linked to the claim's queues as
 * claim_plan links it. */
static void
taker_init(struct claim *c, struct taker *tk, struct backend *b, int want)
{
	static struct qheads *room[8][4];
	static size_t used;

	memset(tk, 0, sizeof *tk);
	tk->b = b;
	tk->id = b->id;
	tk->want = want;
	tk->queues = room[used++ % 8];
	taker_link(c, tk);
}

static void
heads_init(struct qheads *qh, const char *name, struct head *v, size_t n, int priority,
    uint64_t first_seq)
{
	memset(qh, 0, sizeof *qh);
	snprintf(qh->name, sizeof qh->name, "%s", name);
	qh->v = v;
	qh->n = n;
	qh->want = (int)n;
	for (size_t i = 0; i < n; i++) {
		memset(&v[i], 0, sizeof v[i]);
		v[i].seq = first_seq + i;
		v[i].priority = priority;
	}
}

START_TEST(shared_queue_is_shared_evenly)
{
	struct backend a, b;
	struct head v[3];
	struct qheads q;
	struct taker tk[2];
	struct claim c = { .takers = tk, .ntakers = 2, .queues = &q, .nqueues = 1 };

	backend_init(&a, image_q, 1, 1, 1, 0);
	backend_init(&b, image_q, 1, 1, 1, 0);
	heads_init(&q, "image", v, 3, 1, 10);
	q.want = 4;                 /* both takers' room; the queue had only 3 */
	taker_init(&c, &tk[0], &a, 2);
	taker_init(&c, &tk[1], &b, 2);
	assign(&c);
	/* One each per round, in claim order: a, b, then a again. */
	ck_assert_ptr_eq(v[0].tk, &tk[0]);
	ck_assert_ptr_eq(v[1].tk, &tk[1]);
	ck_assert_ptr_eq(v[2].tk, &tk[0]);
	ck_assert_int_eq(tk[0].got, 2);
	ck_assert_int_eq(tk[1].got, 1);
	/* a is full; b's queue ran dry: only b waits for the poll interval. */
	ck_assert(!taker_saw_empty(&tk[0]));
	ck_assert(taker_saw_empty(&tk[1]));
}
END_TEST

START_TEST(a_full_list_means_more_may_wait)
{
	struct backend a;
	struct head v[2];
	struct qheads q;
	struct taker tk[1];
	struct claim c = { .takers = tk, .ntakers = 1, .queues = &q, .nqueues = 1 };

	backend_init(&a, image_q, 1, 1, 3, 0);
	heads_init(&q, "image", v, 2, 1, 1);
	q.want = 2;                 /* capped: the query returned all it was asked */
	taker_init(&c, &tk[0], &a, 4);
	assign(&c);
	ck_assert_int_eq(tk[0].got, 2);
	ck_assert(!taker_saw_empty(&tk[0]));
}
END_TEST

START_TEST(two_queues_by_priority_then_age)
{
	struct backend a;
	struct head img[2], vid[2];
	struct qheads q[2];
	struct taker tk[1];
	struct claim c = { .takers = tk, .ntakers = 1, .queues = q, .nqueues = 2 };

	backend_init(&a, both_q, 2, 1, 2, 0);
	heads_init(&q[0], "image", img, 2, 2, 5);     /* priority 2, older */
	heads_init(&q[1], "video", vid, 2, 1, 50);    /* priority 1, newer */
	taker_init(&c, &tk[0], &a, 3);
	assign(&c);
	ck_assert_ptr_eq(vid[0].tk, &tk[0]);
	ck_assert_ptr_eq(vid[1].tk, &tk[0]);
	ck_assert_ptr_eq(img[0].tk, &tk[0]);
	ck_assert_ptr_null(img[1].tk);                 /* stays queued */
	/* Equal priority: the older job first, whichever queue. */
	heads_init(&q[0], "image", img, 2, 1, 60);
	heads_init(&q[1], "video", vid, 2, 1, 50);
	tk[0].got = 0;
	tk[0].want = 1;
	assign(&c);
	ck_assert_ptr_eq(vid[0].tk, &tk[0]);
	ck_assert_ptr_null(img[0].tk);
}
END_TEST

START_TEST(a_backend_serving_none_of_the_queues_gets_nothing)
{
	struct backend a;
	struct head v[1];
	struct qheads q;
	struct taker tk[1];
	struct claim c = { .takers = tk, .ntakers = 1, .queues = &q, .nqueues = 1 };
	static char *other[] = { "video" };

	backend_init(&a, other, 1, 1, 1, 0);
	heads_init(&q, "image", v, 1, 0, 1);
	taker_init(&c, &tk[0], &a, 2);
	assign(&c);
	ck_assert_int_eq(tk[0].got, 0);
	ck_assert_ptr_null(v[0].tk);
}
END_TEST

START_TEST(claim_due_rules)
{
	struct genqd g;
	struct backend b;

	memset(&g, 0, sizeof g);
	/* prefetch 1: every free slot is claimed at once. */
	backend_init(&b, image_q, 1, 1, 1, 1);
	ck_assert(claim_is_due(&g, &b, 0));
	/* Full: never. */
	backend_init(&b, image_q, 1, 1, 1, 2);
	ck_assert(!claim_is_due(&g, &b, 0));
	/* prefetch 8: topped up once 4 slots are free ... */
	backend_init(&b, image_q, 1, 1, 8, 7);
	ck_assert(!claim_is_due(&g, &b, 0));
	backend_init(&b, image_q, 1, 1, 8, 5);
	ck_assert(claim_is_due(&g, &b, 0));
	/* ... or at once when nothing prefetched is left on it. */
	backend_init(&b, image_q, 1, 4, 8, 4);
	ck_assert(claim_is_due(&g, &b, 0));
	/* Not before its time. */
	backend_init(&b, image_q, 1, 1, 1, 0);
	b.next_claim_at = 100;
	ck_assert(!claim_is_due(&g, &b, 99));
	ck_assert(claim_is_due(&g, &b, 100));
}
END_TEST

/* A wake-up about one queue makes the backends serving it due, and leaves
 * those of other queues waiting for their poll (claim_soon_for); one about
 * everything makes every backend due. */
START_TEST(a_wake_up_for_a_queue_makes_only_its_backends_due)
{
	static char *video_q[] = { "video" };
	struct genqd g;
	struct backend image, both, video;

	memset(&g, 0, sizeof g);
	backend_init(&image, image_q, 1, 1, 0, 0);
	backend_init(&both, both_q, 2, 1, 0, 0);
	backend_init(&video, video_q, 1, 1, 0, 0);
	image.next = &both;
	both.next = &video;
	g.backends = &image;
	image.next_claim_at = both.next_claim_at = video.next_claim_at = 1000;
	ck_assert(!claim_is_due(&g, &image, 10) && !claim_is_due(&g, &video, 10));

	claim_soon_for(&g, "video");
	ck_assert(!claim_is_due(&g, &image, 10));
	ck_assert(claim_is_due(&g, &both, 10));
	ck_assert(claim_is_due(&g, &video, 10));
	ck_assert(!claim_joins(&g, &image, 10, true));

	image.next_claim_at = both.next_claim_at = video.next_claim_at = 1000;
	claim_soon_for(&g, "audio");               /* served by none here */
	ck_assert(!claim_is_due(&g, &image, 10) && !claim_is_due(&g, &both, 10) &&
	    !claim_is_due(&g, &video, 10));

	claim_soon(&g);
	ck_assert(claim_is_due(&g, &image, 10) && claim_is_due(&g, &both, 10) &&
	    claim_is_due(&g, &video, 10));
}
END_TEST

/* A backend in a claim in flight is in no other: not due, and not joining
 * one that another backend's need starts (GQD_CLAIMERS run at once). */
START_TEST(a_claiming_backend_joins_no_other_claim)
{
	struct genqd g;
	struct backend b;

	memset(&g, 0, sizeof g);
	backend_init(&b, image_q, 1, 1, 8, 0);
	ck_assert(claim_is_due(&g, &b, 0));
	ck_assert(claim_joins(&g, &b, 0, true));
	b.claiming = true;
	ck_assert(!claim_is_due(&g, &b, 0));
	ck_assert(!claim_joins(&g, &b, 0, true));
	/* With room but not due itself (6 of 9 busy), it joins another's. */
	backend_init(&b, image_q, 1, 1, 8, 6);
	ck_assert(!claim_is_due(&g, &b, 0));
	ck_assert(claim_joins(&g, &b, 0, true));
	ck_assert(!claim_joins(&g, &b, 0, false));
	b.claiming = true;
	ck_assert(!claim_joins(&g, &b, 0, true));
}
END_TEST

/* A claim came back after one of its backends' lease moved to another
 * genqd (its renewal failed meanwhile): the jobs it started there get no
 * run here; that backend's jobs are handed back (running, unowned) for the
 * lease's new holder to recover. The other backend's start as usual. */
START_TEST(a_backend_whose_lease_was_lost_meanwhile_launches_nothing)
{
	struct genqd g;
	struct backend a, b;
	struct head v[4];
	struct qheads q;
	struct taker tk[2];
	struct claim c = { .takers = tk, .ntakers = 2, .queues = &q, .nqueues = 1 };
	struct run *fresh[4];
	size_t nfresh = 0;

	memset(&g, 0, sizeof g);
	nmade = nhanded_back = 0;
	backend_init(&a, image_q, 1, 1, 1, 0);
	backend_init(&b, image_q, 1, 1, 1, 0);
	a.id = 1, b.id = 2;
	snprintf(a.name, sizeof a.name, "a");
	snprintf(b.name, sizeof b.name, "b");
	heads_init(&q, "image", v, 4, 1, 100);
	taker_init(&c, &tk[0], &a, 2);
	taker_init(&c, &tk[1], &b, 2);
	assign(&c);
	for (size_t i = 0; i < 4; i++)
		v[i].started = true;        /* the claim committed */
	b.leased = false;

	launch(&g, &c, fresh, &nfresh);
	ck_assert_uint_eq(nfresh, 2);
	ck_assert_ptr_eq(fresh[0]->backend, &a);
	ck_assert_ptr_eq(fresh[1]->backend, &a);
	ck_assert_uint_eq(fresh[0]->seq, 100);
	ck_assert_uint_eq(fresh[1]->seq, 102);
	ck_assert_uint_eq(nhanded_back, 1);
	ck_assert_uint_eq(handed_back[0], 2);

	/* Stopping (SIGTERM): nothing starts, and shutdown hands back all. */
	nmade = nhanded_back = nfresh = 0;
	g.stopping = true;
	launch(&g, &c, fresh, &nfresh);
	ck_assert_uint_eq(nfresh, 0);
	ck_assert_uint_eq(nhanded_back, 0);
}
END_TEST

/* A run whose prompt the backend is done with (fetching its outputs,
 * waiting for its commit) no longer holds a slot there. */
START_TEST(vacated_runs_free_their_slots)
{
	struct genqd g;
	struct backend b;

	memset(&g, 0, sizeof g);
	/* max_running 1 + prefetch 1, both taken: full. */
	backend_init(&b, image_q, 1, 1, 1, 2);
	ck_assert(!claim_is_due(&g, &b, 0));
	/* The running one ended on the backend: one slot again. */
	b.vacated = 1;
	ck_assert_int_eq(backend_busy(&b), 1);
	ck_assert(claim_is_due(&g, &b, 0));
	/* Both ended there: the backend is empty, whatever genqd still does. */
	b.vacated = 2;
	ck_assert_int_eq(backend_busy(&b), 0);
	ck_assert(claim_is_due(&g, &b, 0));
}
END_TEST

/* SPEC §4: a retry prefers another backend. */
START_TEST(a_young_retry_goes_to_another_backend)
{
	struct backend a, b;
	struct head v[3];
	struct qheads q;
	struct taker tk[2];
	struct claim c = { .takers = tk, .ntakers = 2, .queues = &q, .nqueues = 1 };

	backend_init(&a, image_q, 1, 1, 1, 0);
	backend_init(&b, image_q, 1, 1, 1, 0);
	a.id = 1;
	b.id = 2;
	heads_init(&q, "image", v, 3, 1, 10);
	v[0].avoid = 1;             /* its last attempt failed on a, just now */
	taker_init(&c, &tk[0], &a, 2);
	taker_init(&c, &tk[1], &b, 2);
	assign(&c);
	/* a comes first in the round but passes the retry over to b. */
	ck_assert_ptr_eq(v[0].tk, &tk[1]);
	ck_assert_ptr_eq(v[1].tk, &tk[0]);
	ck_assert_ptr_eq(v[2].tk, &tk[0]);
	ck_assert(!tk[1].held_back);
}
END_TEST

START_TEST(a_young_retry_waits_while_only_its_backend_claims)
{
	struct backend a;
	struct head v[2];
	struct qheads q;
	struct taker tk[1];
	struct claim c = { .takers = tk, .ntakers = 1, .queues = &q, .nqueues = 1 };

	backend_init(&a, image_q, 1, 1, 1, 0);
	a.id = 7;
	heads_init(&q, "image", v, 2, 1, 10);
	q.want = 2;                 /* the list came back full */
	v[0].avoid = 7;
	v[0].ready_us = RETRY_AVOID_GRACE_US - 1;
	taker_init(&c, &tk[0], &a, 2);
	assign(&c);
	ck_assert_ptr_null(v[0].tk);                 /* stays queued for now */
	ck_assert_ptr_eq(v[1].tk, &tk[0]);               /* the next job is not held up */
	ck_assert_int_eq(tk[0].got, 1);
	/* A full list, yet a waits for the poll interval instead of finding
	 * the same retry again at once. */
	ck_assert(tk[0].held_back);
	ck_assert(taker_saw_empty(&tk[0]));
}
END_TEST

START_TEST(an_old_retry_may_run_where_it_failed)
{
	struct backend a;
	struct head v[1];
	struct qheads q;
	struct taker tk[1];
	struct claim c = { .takers = tk, .ntakers = 1, .queues = &q, .nqueues = 1 };

	backend_init(&a, image_q, 1, 1, 0, 0);
	a.id = 7;
	heads_init(&q, "image", v, 1, 1, 10);
	v[0].avoid = 7;
	v[0].ready_us = RETRY_AVOID_GRACE_US;       /* no other backend took it */
	taker_init(&c, &tk[0], &a, 1);
	assign(&c);
	ck_assert_ptr_eq(v[0].tk, &tk[0]);
	/* Kept only from the backend it failed on. */
	heads_init(&q, "image", v, 1, 1, 10);
	v[0].avoid = 8;
	tk[0].got = 0;
	assign(&c);
	ck_assert_ptr_eq(v[0].tk, &tk[0]);
	ck_assert(!tk[0].held_back);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("daemon_claim");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, shared_queue_is_shared_evenly);
	tcase_add_test(tc, a_full_list_means_more_may_wait);
	tcase_add_test(tc, two_queues_by_priority_then_age);
	tcase_add_test(tc, a_backend_serving_none_of_the_queues_gets_nothing);
	tcase_add_test(tc, claim_due_rules);
	tcase_add_test(tc, a_claiming_backend_joins_no_other_claim);
	tcase_add_test(tc, a_backend_whose_lease_was_lost_meanwhile_launches_nothing);
	tcase_add_test(tc, vacated_runs_free_their_slots);
	tcase_add_test(tc, a_wake_up_for_a_queue_makes_only_its_backends_due);
	tcase_add_test(tc, a_young_retry_goes_to_another_backend);
	tcase_add_test(tc, a_young_retry_waits_while_only_its_backend_claims);
	tcase_add_test(tc, an_old_retry_may_run_where_it_failed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
