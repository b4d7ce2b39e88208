/* Unit tests: webhook signatures, destination address rules and the retry
 * schedule (daemon/whpolicy.c). */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/whpolicy.c"

START_TEST(signature_matches_standard_webhooks_vector)
{
	/* The example of the Standard Webhooks specification. */
	const char body[] = "{\"test\": 2432232314}";
	char sig[WH_SIGNATURE_LEN];

	ck_assert_int_eq(wh_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	    "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig), 0);
	ck_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* The same key without the prefix signs the same. */
	ck_assert_int_eq(wh_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	    "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig), 0);
	ck_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* Another timestamp is another signature. */
	ck_assert_int_eq(wh_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	    "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, strlen(body), sig), 0);
	ck_assert_str_ne(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}
END_TEST

START_TEST(bad_secrets_refused)
{
	char sig[WH_SIGNATURE_LEN];

	ck_assert_int_eq(wh_sign("whsec_", "m", 1, "x", 1, sig), -1);
	ck_assert_int_eq(wh_sign("", "m", 1, "x", 1, sig), -1);
	ck_assert_int_eq(wh_sign("whsec_abc", "m", 1, "x", 1, sig), -1);       /* not /4 */
	ck_assert_int_eq(wh_sign("whsec_ab!d", "m", 1, "x", 1, sig), -1);
}
END_TEST

static bool
allowed(const struct wh_allow *allow, const char *addr)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
	}
	return wh_addr_allowed(allow, (struct sockaddr *)&ss);
}

START_TEST(non_public_addresses_refused)
{
	static const char *const refused[] = {
		"127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255",
		"192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
		"255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1",
		"fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
		"64:ff9b::a9fe:a9fe", "2001:db8::1",
	};
	static const char *const public[] = {
		"8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111",
		"::ffff:8.8.8.8",
	};
	struct wh_allow none = { .n = 0 };

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		ck_assert_msg(!allowed(&none, refused[i]), "%s allowed", refused[i]);
	for (size_t i = 0; i < sizeof public / sizeof public[0]; i++)
		ck_assert_msg(allowed(&none, public[i]), "%s refused", public[i]);
}
END_TEST

START_TEST(allow_list_opens_exactly_its_networks)
{
	struct wh_allow allow;
	char err[200];

	ck_assert_int_eq(wh_allow_parse("127.0.0.1/32, 10.0.0.0/8,::1", &allow, err, sizeof err), 0);
	ck_assert_int_eq((int)allow.n, 3);
	ck_assert(allowed(&allow, "127.0.0.1"));
	ck_assert(!allowed(&allow, "127.0.0.2"));
	ck_assert(allowed(&allow, "10.200.3.4"));
	ck_assert(allowed(&allow, "::1"));
	ck_assert(allowed(&allow, "::ffff:127.0.0.1"));
	ck_assert(!allowed(&allow, "192.168.0.1"));

	ck_assert_int_eq(wh_allow_parse("", &allow, err, sizeof err), 0);
	ck_assert_int_eq((int)allow.n, 0);
	ck_assert_int_eq(wh_allow_parse("10.0.0.0/33", &allow, err, sizeof err), -1);
	ck_assert_int_eq(wh_allow_parse("localhost", &allow, err, sizeof err), -1);
	ck_assert_int_eq(wh_allow_parse("10.0.0.0/", &allow, err, sizeof err), -1);
	ck_assert(strstr(err, "10.0.0.0/") != NULL);
}
END_TEST

START_TEST(backoff_doubles_to_an_hour)
{
	ck_assert_int_eq(wh_backoff_s(1, 0.5), 5);
	ck_assert_int_eq(wh_backoff_s(2, 0.5), 10);
	ck_assert_int_eq(wh_backoff_s(3, 0.5), 20);
	ck_assert_int_eq(wh_backoff_s(1, 0.0), 4);
	ck_assert_int_eq(wh_backoff_s(1, 0.999), 6);
	for (int a = 1; a < 200; a++)
		ck_assert_int_le(wh_backoff_s(a, 0.999), 4320);
	ck_assert_int_eq(wh_backoff_s(50, 0.5), 3600);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("whpolicy");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, signature_matches_standard_webhooks_vector);
	tcase_add_test(tc, bad_secrets_refused);
	tcase_add_test(tc, non_public_addresses_refused);
	tcase_add_test(tc, allow_list_opens_exactly_its_networks);
	tcase_add_test(tc, backoff_doubles_to_an_hour);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
