/* Unit tests: request paths, routing, methods and the Bearer header. */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define ID "0b8e4c1e-7c2a-4d3f-9a1b-2c3d4e5f6a7b"

START_TEST(path_from_request_uri)
{
	char p[ROUTE_PATH_MAX];

	ck_assert_int_eq(route_path("/v1/jobs?x=1", "/ignored", "/ignored", p, sizeof p), 0);
	ck_assert_str_eq(p, "/v1/jobs");
	ck_assert_int_eq(route_path("/v1/jobs/" ID "#frag", NULL, NULL, p, sizeof p), 0);
	ck_assert_str_eq(p, "/v1/jobs/" ID);
	ck_assert_int_eq(route_path("/healthz", NULL, NULL, p, sizeof p), 0);
	ck_assert_str_eq(p, "/healthz");
	/* Only a query: no path at all. */
	ck_assert_int_eq(route_path("?a", NULL, NULL, p, sizeof p), -1);
}
END_TEST

START_TEST(path_from_script_name)
{
	char p[ROUTE_PATH_MAX], small[8];

	ck_assert_int_eq(route_path(NULL, "/v1", "/jobs", p, sizeof p), 0);
	ck_assert_str_eq(p, "/v1/jobs");
	ck_assert_int_eq(route_path("", "/healthz", NULL, p, sizeof p), 0);
	ck_assert_str_eq(p, "/healthz");
	ck_assert_int_eq(route_path(NULL, NULL, NULL, p, sizeof p), -1);
	ck_assert_int_eq(route_path(NULL, "/v1/jobs", NULL, small, sizeof small), -1);
	ck_assert_int_eq(route_path("/v1/jobs", NULL, NULL, small, sizeof small), -1);
}
END_TEST

START_TEST(parse_known_routes)
{
	struct route rt;

	route_parse("/healthz", &rt);
	ck_assert_int_eq(rt.id, ROUTE_HEALTHZ);
	route_parse("/v1/jobs", &rt);
	ck_assert_int_eq(rt.id, ROUTE_JOBS);
	route_parse("/v1/jobs/" ID, &rt);
	ck_assert_int_eq(rt.id, ROUTE_JOB);
	ck_assert_str_eq(rt.job_id, ID);
	route_parse("/v1/jobs/" ID "/cancel", &rt);
	ck_assert_int_eq(rt.id, ROUTE_JOB_CANCEL);
	ck_assert_str_eq(rt.job_id, ID);
	route_parse("/v1/jobs/" ID "/events", &rt);
	ck_assert_int_eq(rt.id, ROUTE_JOB_EVENTS);
	route_parse("/v1/jobs/" ID "/outputs/0", &rt);
	ck_assert_int_eq(rt.id, ROUTE_JOB_OUTPUT);
	ck_assert_int_eq(rt.output, 0);
	route_parse("/v1/jobs/" ID "/outputs/12", &rt);
	ck_assert_int_eq(rt.output, 12);
	route_parse("/v1/jobs/" ID "/regenerate", &rt);
	ck_assert_int_eq(rt.id, ROUTE_JOB_REGENERATE);
	ck_assert_str_eq(rt.job_id, ID);
	route_parse("/v1/me", &rt);
	ck_assert_int_eq(rt.id, ROUTE_ME);
	route_parse("/v1/queues", &rt);
	ck_assert_int_eq(rt.id, ROUTE_QUEUES);
}
END_TEST

START_TEST(parse_ids)
{
	struct route rt;

	/* Uppercase ids are the same job. */
	route_parse("/v1/jobs/0B8E4C1E-7C2A-4D3F-9A1B-2C3D4E5F6A7B", &rt);
	ck_assert_int_eq(rt.id, ROUTE_JOB);
	ck_assert_str_eq(rt.job_id, ID);
	/* A malformed id keeps the route (405 still applies) but no id. */
	route_parse("/v1/jobs/not-a-uuid", &rt);
	ck_assert_int_eq(rt.id, ROUTE_JOB);
	ck_assert_str_eq(rt.job_id, "");
	route_parse("/v1/jobs/" ID "x/cancel", &rt);
	ck_assert_int_eq(rt.id, ROUTE_JOB_CANCEL);
	ck_assert_str_eq(rt.job_id, "");
	route_parse("/v1/jobs/%30b8e4c1e-7c2a-4d3f-9a1b-2c3d4e5f6a7", &rt);
	ck_assert_str_eq(rt.job_id, "");
}
END_TEST

START_TEST(parse_output_index)
{
	static const char *bad[] = { "-1", "01", "1x", "", "9999999", "+1", " 1" };
	struct route rt;
	char p[256];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(p, sizeof p, "/v1/jobs/" ID "/outputs/%s", bad[i]);
		route_parse(p, &rt);
		if (bad[i][0] == '\0')
			ck_assert_int_eq(rt.id, ROUTE_NONE);
		else
			ck_assert_int_eq(rt.output, -1);
	}
	route_parse("/v1/jobs/" ID "/outputs/100000", &rt);
	ck_assert_int_eq(rt.output, 100000);
}
END_TEST

START_TEST(parse_unknown)
{
	static const char *paths[] = {
		"/", "", "/v1", "/v1/", "/v1/jobs/", "/v1/jobsx", "/v1/jobs//cancel",
		"/v1/jobs/" ID "/", "/v1/jobs/" ID "/nope", "/v1/jobs/" ID "/cancel/",
		"/v1/jobs/" ID "/outputs", "/v1/jobs/" ID "/outputs/", "/v1/jobs/" ID "/outputs/1/x",
		"/healthz/", "/HEALTHZ", "/v2/jobs", "/v1/me/", "/v1/queues/x", "/v1/mex",
		"/v1/public/jobs/" ID "/regenerate",
		"/v1/jobs/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	struct route rt;

	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		route_parse(paths[i], &rt);
		ck_assert_msg(rt.id == ROUTE_NONE, "%s routed to %d", paths[i], rt.id);
	}
}
END_TEST

START_TEST(methods)
{
	ck_assert(route_method_ok(ROUTE_JOBS, "POST"));
	ck_assert(route_method_ok(ROUTE_JOBS, "GET"));
	ck_assert(!route_method_ok(ROUTE_JOBS, "DELETE"));
	ck_assert(route_method_ok(ROUTE_JOB_REGENERATE, "POST"));
	ck_assert(!route_method_ok(ROUTE_JOB_REGENERATE, "GET"));
	ck_assert(route_method_ok(ROUTE_ME, "GET"));
	ck_assert(!route_method_ok(ROUTE_ME, "POST"));
	ck_assert(route_method_ok(ROUTE_QUEUES, "HEAD"));
	ck_assert(!route_method_ok(ROUTE_QUEUES, "POST"));
	ck_assert(!route_method_ok(ROUTE_JOBS, "POS"));
	ck_assert(!route_method_ok(ROUTE_JOBS, "post"));
	ck_assert(route_method_ok(ROUTE_JOB, "GET"));
	ck_assert(route_method_ok(ROUTE_JOB, "HEAD"));
	ck_assert(!route_method_ok(ROUTE_JOB, "DELETE"));
	ck_assert(!route_method_ok(ROUTE_JOB, "EA"));
	ck_assert(!route_method_ok(ROUTE_JOB, ""));
	ck_assert(!route_method_ok(ROUTE_JOB, NULL));
	ck_assert(route_method_ok(ROUTE_JOB_CANCEL, "POST"));
	ck_assert(!route_method_ok(ROUTE_JOB_CANCEL, "GET"));
	ck_assert(route_method_ok(ROUTE_HEALTHZ, "GET"));
	ck_assert(!route_method_ok(ROUTE_NONE, "GET"));
	ck_assert_str_eq(route_allow(ROUTE_JOB_OUTPUT), "GET, HEAD");
	ck_assert_str_eq(route_allow(ROUTE_JOB_CANCEL), "POST");
}
END_TEST

START_TEST(parse_admin_routes)
{
	static const struct { const char *path; enum route_id id; const char *name; } ok[] = {
		{ "/v1/admin/queues/image/pause", ROUTE_ADMIN_PAUSE, "image" },
		{ "/v1/admin/queues/a.b_c-9/resume", ROUTE_ADMIN_RESUME, "a.b_c-9" },
		{ "/v1/admin/backends/sim1/drain", ROUTE_ADMIN_DRAIN, "sim1" },
		{ "/v1/admin/backends/sim1/undrain", ROUTE_ADMIN_UNDRAIN, "sim1" },
		/* A name genqctl would refuse still selects the route, without a name. */
		{ "/v1/admin/queues/im%20age/pause", ROUTE_ADMIN_PAUSE, "" },
		{ "/v1/admin/queues/"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/pause",
		  ROUTE_ADMIN_PAUSE, "" },
	};
	static const char *const none[] = {
		"/v1/admin", "/v1/admin/", "/v1/admin/credits/", "/v1/admin/jobs/" ID,
		"/v1/admin/jobs/" ID "/approve/", "/v1/admin/jobs/" ID "/cancel",
		"/v1/admin/queues/image", "/v1/admin/queues//pause", "/v1/admin/queues/image/drain",
		"/v1/admin/backends/sim1/pause", "/v1/admin/backendsx/sim1/drain", "/metrics/",
		"/v1/admin/queuesimage/pause",
	};
	struct route rt;

	route_parse("/metrics", &rt);
	ck_assert_int_eq(rt.id, ROUTE_METRICS);
	route_parse("/v1/admin/credits", &rt);
	ck_assert_int_eq(rt.id, ROUTE_ADMIN_CREDITS);
	route_parse("/v1/admin/jobs/" ID "/approve", &rt);
	ck_assert_int_eq(rt.id, ROUTE_ADMIN_APPROVE);
	ck_assert_str_eq(rt.job_id, ID);
	route_parse("/v1/admin/jobs/nope/reject", &rt);
	ck_assert_int_eq(rt.id, ROUTE_ADMIN_REJECT);
	ck_assert_str_eq(rt.job_id, "");
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		route_parse(ok[i].path, &rt);
		ck_assert_msg(rt.id == ok[i].id, "%s routed to %d", ok[i].path, rt.id);
		ck_assert_str_eq(rt.name, ok[i].name);
	}
	for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
		route_parse(none[i], &rt);
		ck_assert_msg(rt.id == ROUTE_NONE, "%s routed to %d", none[i], rt.id);
	}
	ck_assert(route_method_ok(ROUTE_ADMIN_CREDITS, "POST"));
	ck_assert(!route_method_ok(ROUTE_ADMIN_APPROVE, "GET"));
	ck_assert(route_method_ok(ROUTE_METRICS, "HEAD"));
	ck_assert(!route_method_ok(ROUTE_METRICS, "POST"));
	/* Every route has a metrics label. */
	for (int id = 0; id < ROUTE_COUNT; id++)
		ck_assert_ptr_nonnull(route_pattern((enum route_id)id));
	ck_assert_str_eq(route_pattern(ROUTE_JOB_OUTPUT), "/v1/jobs/{id}/outputs/{n}");
	ck_assert_str_eq(route_pattern(ROUTE_NONE), "unmatched");
}
END_TEST

START_TEST(metrics_label_escaping)
{
	char out[16], tiny[4];

	ck_assert(metrics_escape("image", out, sizeof out));
	ck_assert_str_eq(out, "image");
	ck_assert(metrics_escape("a\"b\\c\nd", out, sizeof out));
	ck_assert_str_eq(out, "a\\\"b\\\\c\\nd");
	ck_assert(metrics_escape(NULL, out, sizeof out));
	ck_assert_str_eq(out, "");
	/* Never a cut escape: "ab\"" needs 5 bytes with its NUL. */
	ck_assert(!metrics_escape("ab\"", tiny, sizeof tiny));
	ck_assert(!metrics_escape("abcd", tiny, sizeof tiny));
	ck_assert(metrics_escape("abc", tiny, sizeof tiny));
}
END_TEST

START_TEST(cursor)
{
	char c[LISTING_CURSOR_LEN];
	uint64_t seq;
	static const uint64_t seqs[] = { 1, 7, 255, 1234567890123ULL, INT64_MAX };

	for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
		listing_cursor(seqs[i], c);
		ck_assert_uint_eq(strlen(c), LISTING_CURSOR_LEN - 1);
		ck_assert_int_eq(listing_cursor_parse(c, &seq), 0);
		ck_assert_uint_eq(seq, seqs[i]);
	}
	listing_cursor(42, c);
	c[LISTING_CURSOR_LEN - 2] = 'B';     /* non-canonical last character */
	ck_assert_int_eq(listing_cursor_parse(c, &seq), -1);
	ck_assert_int_eq(listing_cursor_parse("", &seq), -1);
	ck_assert_int_eq(listing_cursor_parse("garbage", &seq), -1);
	ck_assert_int_eq(listing_cursor_parse("AAAAAAAAAAA", &seq), -1);   /* seq 0 */
	ck_assert_int_eq(listing_cursor_parse("_____________", &seq), -1);
	ck_assert_int_eq(listing_cursor_parse("AAAAAAAAAA+", &seq), -1);
	ck_assert_int_eq(listing_cursor_parse("gAAAAAAAAAA", &seq), -1);   /* > INT64_MAX */
}
END_TEST

START_TEST(bearer)
{
	static const char key[] = "gq_ABCDEFGH_0123456789012345678901234567890123456789abc";
	char out[GQ_KEY_LEN], h[200];

	ck_assert_uint_eq(strlen(key), GQ_KEY_LEN - 1);
	snprintf(h, sizeof h, "Bearer %s", key);
	ck_assert_int_eq(auth_bearer(h, out), 0);
	ck_assert_str_eq(out, key);
	snprintf(h, sizeof h, "bearer   %s  ", key);
	ck_assert_int_eq(auth_bearer(h, out), 0);
	ck_assert_str_eq(out, key);
	snprintf(h, sizeof h, "Basic %s", key);
	ck_assert_int_eq(auth_bearer(h, out), -1);
	snprintf(h, sizeof h, "Bearer%s", key);
	ck_assert_int_eq(auth_bearer(h, out), -1);
	snprintf(h, sizeof h, "Bearer %s x", key);
	ck_assert_int_eq(auth_bearer(h, out), -1);
	snprintf(h, sizeof h, "Bearer %sX", key);
	ck_assert_int_eq(auth_bearer(h, out), -1);
	ck_assert_int_eq(auth_bearer("Bearer ", out), -1);
	ck_assert_int_eq(auth_bearer("", out), -1);
	ck_assert_int_eq(auth_bearer(NULL, out), -1);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("fcgi_route");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, path_from_request_uri);
	tcase_add_test(tc, path_from_script_name);
	tcase_add_test(tc, parse_known_routes);
	tcase_add_test(tc, parse_ids);
	tcase_add_test(tc, parse_output_index);
	tcase_add_test(tc, parse_unknown);
	tcase_add_test(tc, methods);
	tcase_add_test(tc, parse_admin_routes);
	tcase_add_test(tc, metrics_label_escaping);
	tcase_add_test(tc, cursor);
	tcase_add_test(tc, bearer);
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
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
