/* Unit tests: the submit token bucket's arithmetic (rate_gcra) and the
 * Idempotency-Key header check, without a database. */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define S 1000000LL            /* one second in microseconds */
#define T0 (1700000000LL * S)

/* 60 a minute, bursts of 5: a full bucket admits exactly 5 at one instant. */
START_TEST(test_burst_then_refill)
{
	struct rate_state rs;
	int64_t tat = 0, next;

	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(rate_gcra(60, 5, tat, T0, true, &rs, &next), 0);
		ck_assert(rs.limited);
		ck_assert_int_eq(rs.limit, 5);
		ck_assert_int_eq(rs.remaining, 4 - i);
		ck_assert_int_eq(rs.reset_s, i + 1);
		tat = next;
	}
	ck_assert_int_eq(rate_gcra(60, 5, tat, T0, true, &rs, &next), RATE_REFUSED);
	ck_assert_int_eq(next, tat);            /* a refusal takes nothing */
	ck_assert_int_eq(rs.remaining, 0);
	ck_assert_int_eq(rs.retry_after_s, 1);
	ck_assert_int_eq(rs.reset_s, 5);

	/* Half a token later: still refused, the wait rounds up to 1 s. */
	ck_assert_int_eq(rate_gcra(60, 5, tat, T0 + S / 2, true, &rs, &next), RATE_REFUSED);
	ck_assert_int_eq(rs.retry_after_s, 1);
	/* One second later exactly one more. */
	ck_assert_int_eq(rate_gcra(60, 5, tat, T0 + S, true, &rs, &next), 0);
	ck_assert_int_eq(rs.remaining, 0);
	ck_assert_int_eq(rate_gcra(60, 5, next, T0 + S, true, &rs, &next), RATE_REFUSED);
}
END_TEST

/* The refill stops at the burst, however long the bucket was left alone. */
START_TEST(test_full_bucket_does_not_overflow)
{
	struct rate_state rs;
	int64_t next;

	ck_assert_int_eq(rate_gcra(6, 3, T0, T0 + 3600 * S, false, &rs, &next), 0);
	ck_assert_int_eq(rs.remaining, 3);
	ck_assert_int_eq(rs.reset_s, 0);
	ck_assert_int_eq(rate_gcra(6, 3, T0, T0 + 3600 * S, true, &rs, &next), 0);
	ck_assert_int_eq(rs.remaining, 2);
	ck_assert_int_eq(next, T0 + 3600 * S + 10 * S);   /* one token = 10 s */
	ck_assert_int_eq(rs.reset_s, 10);
}
END_TEST

/* A peek reports without taking: remaining rises as time passes. */
START_TEST(test_peek)
{
	struct rate_state rs;
	int64_t next, tat = T0 + 20 * S;        /* 30/min, burst 10: 10 s of debt */

	ck_assert_int_eq(rate_gcra(30, 10, tat, T0, false, &rs, &next), 0);
	ck_assert_int_eq(next, tat);
	ck_assert_int_eq(rs.remaining, 0);
	ck_assert_int_eq(rs.reset_s, 20);
	ck_assert_int_eq(rate_gcra(30, 10, tat, T0 + 2 * S, false, &rs, &next), 0);
	ck_assert_int_eq(rs.remaining, 1);
	ck_assert_int_eq(rs.retry_after_s, 0);
}
END_TEST

/* rate 0: no limit, nothing to report; odd stored values are clamped. */
START_TEST(test_unlimited_and_clamps)
{
	struct rate_state rs;
	int64_t next;

	ck_assert_int_eq(rate_gcra(0, 10, 0, T0, true, &rs, &next), 0);
	ck_assert(!rs.limited);
	ck_assert_int_eq(rate_gcra(-5, 10, 0, T0, true, &rs, &next), 0);
	ck_assert(!rs.limited);
	/* burst 0 behaves as 1; a rate above a token per microsecond as 1 us. */
	ck_assert_int_eq(rate_gcra(60, 0, 0, T0, true, &rs, &next), 0);
	ck_assert_int_eq(rs.limit, 1);
	ck_assert_int_eq(rate_gcra(60, 0, next, T0, true, &rs, &next), RATE_REFUSED);
	ck_assert_int_eq(rate_gcra(1000000000LL, 2, 0, T0, true, &rs, &next), 0);
	ck_assert_int_eq(next, T0 + 1);
	ck_assert_int_eq(rate_gcra(60, 2000000000LL, 0, T0, false, &rs, &next), 0);
	ck_assert_int_eq(rs.limit, 1000000);
}
END_TEST

START_TEST(test_idempotency_key_header)
{
	char key[IDEM_KEY_MAX + 1], long_key[300];

	ck_assert_int_eq(idem_parse_key(NULL, key), 0);
	ck_assert_int_eq(idem_parse_key("order-4711", key), 1);
	ck_assert_str_eq(key, "order-4711");
	ck_assert_int_eq(idem_parse_key("with space ~!", key), 1);
	ck_assert_int_eq(idem_parse_key("", key), -1);
	ck_assert_int_eq(idem_parse_key("tab\there", key), -1);
	ck_assert_int_eq(idem_parse_key("caf\xc3\xa9", key), -1);
	ck_assert_int_eq(idem_parse_key("del\x7f", key), -1);
	memset(long_key, 'k', sizeof long_key);
	long_key[IDEM_KEY_MAX] = '\0';
	ck_assert_int_eq(idem_parse_key(long_key, key), 1);
	ck_assert_int_eq(strlen(key), IDEM_KEY_MAX);
	long_key[IDEM_KEY_MAX] = 'k';
	long_key[IDEM_KEY_MAX + 1] = '\0';
	ck_assert_int_eq(idem_parse_key(long_key, key), -1);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("fcgi_admission");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_burst_then_refill);
	tcase_add_test(tc, test_full_bucket_does_not_overflow);
	tcase_add_test(tc, test_peek);
	tcase_add_test(tc, test_unlimited_and_clamps);
	tcase_add_test(tc, test_idempotency_key_header);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
