/* Unit tests: genqd's retry backoff, run pricing and text clean-up
 * (daemon/policy.c). */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/policy.c"

START_TEST(backoff_doubles_with_jitter)
{
	/* rnd 0 is factor 0.5, rnd 2^31 factor 1.0, rnd max just under 1.5. */
	ck_assert_int_eq(policy_backoff_ms(1, 0), 1000);
	ck_assert_int_eq(policy_backoff_ms(1, 1u << 31), 2000);
	ck_assert_int_eq(policy_backoff_ms(1, UINT32_MAX), 2999);
	ck_assert_int_eq(policy_backoff_ms(2, 1u << 31), 4000);
	ck_assert_int_eq(policy_backoff_ms(3, 1u << 31), 8000);
	ck_assert_int_eq(policy_backoff_ms(4, 0), 8000);
}
END_TEST

START_TEST(backoff_capped)
{
	for (int a = 1; a < 100; a++) {
		int64_t lo = policy_backoff_ms(a, 0), hi = policy_backoff_ms(a, UINT32_MAX);
		ck_assert_int_gt(lo, 0);
		ck_assert_int_le(hi, POLICY_BACKOFF_CAP_MS);
		ck_assert_int_le(lo, hi);
	}
	ck_assert_int_eq(policy_backoff_ms(1000, 1u << 31), POLICY_BACKOFF_CAP_MS);
	/* Nonsense attempt numbers get the first step. */
	ck_assert_int_eq(policy_backoff_ms(0, 1u << 31), 2000);
	ck_assert_int_eq(policy_backoff_ms(-5, 1u << 31), 2000);
}
END_TEST

START_TEST(charge_prices)
{
	/* Per job only. */
	ck_assert_int_eq(policy_charge(1000000, 1000000, 0, 12345), 1000000);
	/* Started seconds count whole: 2.001 s is 3 s. */
	ck_assert_int_eq(policy_charge(10000000, 100, 1000, 2001), 3100);
	ck_assert_int_eq(policy_charge(10000000, 100, 1000, 2000), 2100);
	ck_assert_int_eq(policy_charge(10000000, 100, 1000, 0), 100);
	/* Never more than the hold, whatever the run time. */
	ck_assert_int_eq(policy_charge(5000, 100, 1000, 3600000), 5000);
	ck_assert_int_eq(policy_charge(5000, 9000, 0, 0), 5000);
	ck_assert_int_eq(policy_charge(INT64_MAX / 2, 1, INT64_MAX / 4, INT64_MAX), INT64_MAX / 2);
	/* Nothing held, nothing charged; negative inputs are zero. */
	ck_assert_int_eq(policy_charge(0, 100, 100, 1000), 0);
	ck_assert_int_eq(policy_charge(1000, -5, -5, -5), 0);
}
END_TEST

START_TEST(utf8_fix)
{
	char ok[] = "caf\xc3\xa9 \xf0\x9f\x98\x80 ok";
	char cut[] = "abc\xe2\x82";
	char bad[] = "a\xff" "b\xc0\xaf" "c\xed\xa0\x80";

	policy_utf8_fix(ok);
	ck_assert_str_eq(ok, "caf\xc3\xa9 \xf0\x9f\x98\x80 ok");
	policy_utf8_fix(cut);
	ck_assert_str_eq(cut, "abc");
	policy_utf8_fix(bad);
	ck_assert_str_eq(bad, "a?b??c???");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("daemon_policy");
	TCase *tc = tcase_create("policy");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, backoff_doubles_with_jitter);
	tcase_add_test(tc, backoff_capped);
	tcase_add_test(tc, charge_prices);
	tcase_add_test(tc, utf8_fix);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
