/* Unit tests: problem+json, Content-Type parsing, the response format, and
 * whole requests through dispatch() with a fake request source and no
 * database (everything that must be answered before the database is). */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "jsonutil.h"
#include "log.h"

/* ---- a request source in memory ---- */

struct fake {
	const char *const *params;    /* name, value, ..., NULL */
	const char *body;
	size_t body_len, pos;
	struct buf out;
};

static const char *
fake_param(struct req *r, const char *name)
{
	struct fake *f = r->handle;

	for (const char *const *p = f->params; p && *p; p += 2)
		if (strcmp(p[0], name) == 0)
			return p[1];
	return NULL;
}

static long
fake_read(struct req *r, char *buf, size_t len)
{
	struct fake *f = r->handle;
	size_t n = f->body_len - f->pos;

	/* Small reads, to exercise the loop. */
	if (n > len)
		n = len;
	if (n > 100)
		n = 100;
	memcpy(buf, f->body + f->pos, n);
	f->pos += n;
	return (long)n;
}

static int
fake_write(struct req *r, const char *data, size_t len)
{
	struct fake *f = r->handle;
	return buf_append(&f->out, data, len);
}

static const struct req_ops fake_ops = { fake_param, fake_read, fake_write };

/* The answer, split up. */
struct answer {
	int status;
	char head[2048];
	struct json_object *json;     /* the body, when it is JSON */
	size_t body_len;
};

static struct genq_config cfg;

static void
setup(void)
{
	config_defaults(&cfg);
	free(cfg.db_socket);
	cfg.db_socket = strdup("/nonexistent/genq-test.sock");
	cfg.max_body_bytes = 1024;
	log_threshold = GQ_LOG_ERROR;
}

static void
teardown(void)
{
	config_free(&cfg);
}

static void
run(const char *const *params, const char *body, struct answer *a)
{
	struct app app = { &cfg, NULL };
	struct fake f = { params, body, body ? strlen(body) : 0, 0, { 0 } };
	struct req r = { &fake_ops, &f, -1 };
	const char *sep;

	buf_init(&f.out, 0);
	dispatch(&app, &r);
	ck_assert_ptr_nonnull(f.out.data);
	ck_assert_int_eq(sscanf(f.out.data, "Status: %d ", &a->status), 1);
	sep = strstr(f.out.data, "\r\n\r\n");
	ck_assert_ptr_nonnull(sep);
	snprintf(a->head, sizeof a->head, "%.*s", (int)(sep - f.out.data + 2), f.out.data);
	a->body_len = f.out.len - (size_t)(sep + 4 - f.out.data);
	a->json = a->body_len ? gq_json_parse(sep + 4, a->body_len, 64, NULL) : NULL;
	buf_free(&f.out);
}

static void
answer_free(struct answer *a)
{
	json_object_put(a->json);
}

/* Check a problem answer: status, code, and the RFC 9457 members. */
static void
expect_problem(struct answer *a, int status, const char *code)
{
	char type[128];

	ck_assert_int_eq(a->status, status);
	ck_assert_msg(strstr(a->head, "Content-Type: application/problem+json\r\n") != NULL, "%s", a->head);
	ck_assert_ptr_nonnull(a->json);
	ck_assert_str_eq(gq_json_str(a->json, "code"), code);
	snprintf(type, sizeof type, "https://genq.dev/problems/%s", code);
	ck_assert_str_eq(gq_json_str(a->json, "type"), type);
	ck_assert_ptr_nonnull(gq_json_str(a->json, "title"));
	ck_assert_ptr_nonnull(gq_json_str(a->json, "detail"));
	{
		int64_t st;
		ck_assert(gq_json_int(a->json, "status", &st));
		ck_assert_int_eq(st, status);
	}
}

#define KEY "gq_ABCDEFGH_0123456789012345678901234567890123456789abc"
#define JOB "/v1/jobs/0b8e4c1e-7c2a-4d3f-9a1b-2c3d4e5f6a7b"

/* ---- pure functions ---- */

START_TEST(problem_table)
{
	for (int p = 0; p < P_COUNT; p++) {
		ck_assert_int_ge(problem_status(p), 400);
		ck_assert_int_lt(problem_status(p), 600);
		ck_assert_ptr_nonnull(problem_code(p));
		ck_assert_ptr_nonnull(problem_title(p));
		ck_assert_str_ne(http_reason(problem_status(p)), "Client Error");
	}
	ck_assert_int_eq(problem_status(P_INSUFFICIENT_CREDITS), 402);
	ck_assert_str_eq(problem_code(P_TOO_MANY_ACTIVE_JOBS), "too_many_active_jobs");
	ck_assert_int_eq(problem_status(P_TOO_MANY_ACTIVE_JOBS), 429);
	ck_assert_int_eq(problem_status(P_QUEUE_PAUSED), 503);
	ck_assert_int_eq(problem_status(P_IDEMPOTENCY_KEY_REUSED), 422);
}
END_TEST

START_TEST(problem_body)
{
	struct resp rs;
	struct json_object *errors = json_object_new_array(), *o, *e, *v;

	problem_error_add(errors, "queue", "is required");
	problem_error_add(errors, "priority", "must be an integer from 0 to 3");
	resp_init(&rs);
	resp_problem(&rs, P_INVALID_REQUEST, "Bad fields.", errors);
	ck_assert_int_eq(rs.status, 400);
	ck_assert_str_eq(rs.content_type, "application/problem+json");
	o = gq_json_parse(rs.body.data, rs.body.len, 64, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(gq_json_str(o, "type"), "https://genq.dev/problems/invalid_request");
	ck_assert_str_eq(gq_json_str(o, "title"), "The request is invalid");
	ck_assert_str_eq(gq_json_str(o, "detail"), "Bad fields.");
	ck_assert_str_eq(gq_json_str(o, "code"), "invalid_request");
	ck_assert(json_object_object_get_ex(o, "errors", &v));
	ck_assert_uint_eq(json_object_array_length(v), 2);
	e = json_object_array_get_idx(v, 1);
	ck_assert_str_eq(gq_json_str(e, "field"), "priority");
	ck_assert_str_eq(gq_json_str(e, "message"), "must be an integer from 0 to 3");
	json_object_put(o);

	/* Without detail the title stands in; no errors member. */
	resp_problem(&rs, P_NOT_FOUND, NULL, NULL);
	o = gq_json_parse(rs.body.data, rs.body.len, 64, NULL);
	ck_assert_str_eq(gq_json_str(o, "detail"), "Not found");
	ck_assert(!json_object_object_get_ex(o, "errors", NULL));
	json_object_put(o);
	resp_free(&rs);
}
END_TEST

START_TEST(content_types)
{
	static const char *yes[] = {
		"application/json", "APPLICATION/JSON", "application/json; charset=utf-8",
		"application/json;charset=UTF-8", "application/json ; charset=\"utf-8\"",
		" application/json", "application/json; foo=bar",
	};
	static const char *no[] = {
		"", "text/plain", "application/jsonx", "application/json-patch+json",
		"application/json; charset=latin1", "application/json; charset=utf-16",
		"application/json;", "application/json; charset", "application/json x",
		"application/x-www-form-urlencoded", "json",
	};

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		ck_assert_msg(http_content_type_is_json(yes[i]), "%s", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		ck_assert_msg(!http_content_type_is_json(no[i]), "%s", no[i]);
	ck_assert(!http_content_type_is_json(NULL));
}
END_TEST

START_TEST(send_format)
{
	struct fake f = { NULL, NULL, 0, 0, { 0 } };
	struct req r = { &fake_ops, &f, -1 };
	struct resp rs;

	buf_init(&f.out, 0);
	resp_init(&rs);
	resp_raw(&rs, 201, "application/json", "{}", 2);
	resp_header(&rs, "Location", "/v1/jobs/%s", "abc\r\nX-Evil: 1");
	ck_assert_int_eq(resp_send(&rs, &r, false), 0);
	ck_assert_str_eq(f.out.data,
	    "Status: 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
	    "Location: /v1/jobs/abc  X-Evil: 1\r\n\r\n{}");
	buf_reset(&f.out);
	ck_assert_int_eq(resp_send(&rs, &r, true), 0);
	ck_assert_str_eq(f.out.data,
	    "Status: 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
	    "Location: /v1/jobs/abc  X-Evil: 1\r\n\r\n");
	resp_free(&rs);
	buf_free(&f.out);
}
END_TEST

/* ---- whole requests, no database ---- */

START_TEST(unknown_path)
{
	const char *p[] = { "REQUEST_METHOD", "GET", "REQUEST_URI", "/v1/nothing?x=1", NULL };
	struct answer a;

	run(p, NULL, &a);
	expect_problem(&a, 404, "not_found");
	answer_free(&a);
}
END_TEST

START_TEST(no_path)
{
	const char *p[] = { "REQUEST_METHOD", "GET", NULL };
	struct answer a;

	run(p, NULL, &a);
	expect_problem(&a, 404, "not_found");
	answer_free(&a);
}
END_TEST

START_TEST(wrong_method)
{
	const char *p1[] = { "REQUEST_METHOD", "DELETE", "REQUEST_URI", JOB, NULL };
	const char *p2[] = { "REQUEST_METHOD", "GET", "REQUEST_URI", JOB "/cancel", NULL };
	const char *p3[] = { "REQUEST_METHOD", "DELETE", "REQUEST_URI", "/v1/jobs", NULL };
	struct answer a;

	run(p1, NULL, &a);
	expect_problem(&a, 405, "method_not_allowed");
	ck_assert_msg(strstr(a.head, "Allow: GET, HEAD\r\n") != NULL, "%s", a.head);
	answer_free(&a);
	run(p2, NULL, &a);
	expect_problem(&a, 405, "method_not_allowed");
	ck_assert(strstr(a.head, "Allow: POST\r\n") != NULL);
	answer_free(&a);
	run(p3, NULL, &a);
	ck_assert_int_eq(a.status, 405);
	ck_assert(strstr(a.head, "Allow: GET, HEAD, POST\r\n") != NULL);
	answer_free(&a);
}
END_TEST

START_TEST(no_key)
{
	const char *p1[] = { "REQUEST_METHOD", "GET", "REQUEST_URI", JOB, NULL };
	const char *p2[] = { "REQUEST_METHOD", "GET", "REQUEST_URI", JOB,
	    "HTTP_AUTHORIZATION", "Bearer not-a-key", NULL };
	const char *p3[] = { "REQUEST_METHOD", "POST", "REQUEST_URI", "/v1/jobs",
	    "HTTP_AUTHORIZATION", "Basic dXNlcjpwYXNz", NULL };
	struct answer a;

	run(p1, NULL, &a);
	expect_problem(&a, 401, "unauthorized");
	ck_assert(strstr(a.head, "WWW-Authenticate: Bearer") != NULL);
	answer_free(&a);
	run(p2, NULL, &a);
	expect_problem(&a, 401, "unauthorized");
	answer_free(&a);
	run(p3, "{}", &a);
	expect_problem(&a, 401, "unauthorized");
	answer_free(&a);
}
END_TEST

START_TEST(database_down)
{
	/* A well-formed key needs the database: 503 with Retry-After. */
	const char *p1[] = { "REQUEST_METHOD", "GET", "REQUEST_URI", JOB,
	    "HTTP_AUTHORIZATION", "Bearer " KEY, NULL };
	const char *p2[] = { "REQUEST_METHOD", "GET", "REQUEST_URI", "/healthz", NULL };
	struct answer a;

	run(p1, NULL, &a);
	expect_problem(&a, 503, "unavailable");
	ck_assert(strstr(a.head, "Retry-After: ") != NULL);
	answer_free(&a);
	run(p2, NULL, &a);
	expect_problem(&a, 503, "unavailable");
	answer_free(&a);
}
END_TEST

START_TEST(head_has_no_body)
{
	const char *p[] = { "REQUEST_METHOD", "HEAD", "REQUEST_URI", "/v1/nothing", NULL };
	struct answer a;

	run(p, NULL, &a);
	ck_assert_int_eq(a.status, 404);
	ck_assert_uint_eq(a.body_len, 0);
	ck_assert(strstr(a.head, "Content-Length: ") != NULL);
	answer_free(&a);
}
END_TEST

/* submit_job's checks before the database, called past authentication. */
static void
submit(const char *content_type, const char *length, const char *body, struct answer *a)
{
	const char *p[] = { "REQUEST_METHOD", "POST", "REQUEST_URI", "/v1/jobs",
	    "CONTENT_TYPE", content_type, "CONTENT_LENGTH", length, NULL };
	struct app app = { &cfg, NULL };
	struct fake f = { p, body, strlen(body), 0, { 0 } };
	struct req r = { &fake_ops, &f, -1 };
	struct resp rs;
	struct ctx c = { &app, &r, &rs, { ROUTE_JOBS, "", -1, "" }, "POST", { 0 } };
	const char *sep;

	c.caller.user_id = 1;
	c.caller.max_active = 1;
	snprintf(c.caller.name, sizeof c.caller.name, "tester");
	if (content_type == NULL)
		p[5] = NULL;
	else if (length == NULL)
		p[6] = NULL;
	buf_init(&f.out, 0);
	resp_init(&rs);
	submit_job(&c);
	ck_assert_int_eq(resp_send(&rs, &r, false), 0);
	resp_free(&rs);
	a->status = 0;
	ck_assert_int_eq(sscanf(f.out.data, "Status: %d ", &a->status), 1);
	sep = strstr(f.out.data, "\r\n\r\n");
	snprintf(a->head, sizeof a->head, "%.*s", (int)(sep - f.out.data + 2), f.out.data);
	a->body_len = f.out.len - (size_t)(sep + 4 - f.out.data);
	a->json = gq_json_parse(sep + 4, a->body_len, 64, NULL);
	buf_free(&f.out);
}

START_TEST(submit_media_type)
{
	struct answer a;

	submit("text/plain", "2", "{}", &a);
	expect_problem(&a, 415, "unsupported_media_type");
	answer_free(&a);
	submit(NULL, NULL, "{}", &a);
	expect_problem(&a, 415, "unsupported_media_type");
	answer_free(&a);
}
END_TEST

START_TEST(submit_too_large)
{
	char big[1100];
	struct answer a;

	/* Declared too large: refused before reading. */
	submit("application/json", "5000", "{}", &a);
	expect_problem(&a, 413, "payload_too_large");
	answer_free(&a);
	/* Longer than declared. */
	submit("application/json", "2", "{}   ", &a);
	expect_problem(&a, 413, "payload_too_large");
	answer_free(&a);
	/* No length and more than the limit. */
	memset(big, ' ', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	submit("application/json", NULL, big, &a);
	expect_problem(&a, 413, "payload_too_large");
	answer_free(&a);
	/* Malformed and short lengths. */
	submit("application/json", "2x", "{}", &a);
	expect_problem(&a, 400, "invalid_request");
	answer_free(&a);
	submit("application/json", "10", "{}", &a);
	expect_problem(&a, 400, "invalid_request");
	answer_free(&a);
}
END_TEST

START_TEST(submit_bad_json)
{
	struct answer a;

	submit("application/json", "1", "{", &a);
	expect_problem(&a, 400, "invalid_json");
	answer_free(&a);
	submit("application/json", "0", "", &a);
	expect_problem(&a, 400, "invalid_json");
	answer_free(&a);
}
END_TEST

START_TEST(submit_invalid)
{
	static const char body[] = "{\"queue\": 1, \"input\": [], \"bogus\": true}";
	struct json_object *errors;
	struct answer a;
	char len[16];

	snprintf(len, sizeof len, "%zu", strlen(body));
	submit("application/json; charset=utf-8", len, body, &a);
	expect_problem(&a, 400, "invalid_request");
	ck_assert(json_object_object_get_ex(a.json, "errors", &errors));
	ck_assert_uint_eq(json_object_array_length(errors), 3);
	answer_free(&a);
}
END_TEST

START_TEST(submit_after_malformed_refused)
{
	static const char body[] = "{\"queue\": \"q\", \"input\": {}, "
	    "\"after\": [\"0b8e4c1e-7c2a-4d3f-9a1b-2c3d4e5f6a7b\", \"not-a-job-id\"]}";
	struct json_object *errors;
	struct answer a;
	char len[16];

	snprintf(len, sizeof len, "%zu", strlen(body));
	submit("application/json", len, body, &a);
	expect_problem(&a, 400, "invalid_request");
	ck_assert(json_object_object_get_ex(a.json, "errors", &errors));
	ck_assert_uint_eq(json_object_array_length(errors), 1);
	ck_assert_str_eq(gq_json_str(json_object_array_get_idx(errors, 0), "field"), "after[1]");
	answer_free(&a);
}
END_TEST

START_TEST(submit_valid_needs_database)
{
	static const char body[] = "{\"queue\": \"q\", \"input\": {}, \"after\": []}";
	struct answer a;
	char len[16];

	snprintf(len, sizeof len, "%zu", strlen(body));
	submit("application/json", len, body, &a);
	expect_problem(&a, 503, "unavailable");
	ck_assert(strstr(a.head, "Retry-After: ") != NULL);
	answer_free(&a);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("fcgi_resp");
	TCase *pure = tcase_create("pure"), *req = tcase_create("requests");

	tcase_add_test(pure, problem_table);
	tcase_add_test(pure, problem_body);
	tcase_add_test(pure, content_types);
	tcase_add_test(pure, send_format);
	suite_add_tcase(s, pure);

	tcase_add_checked_fixture(req, setup, teardown);
	tcase_add_test(req, unknown_path);
	tcase_add_test(req, no_path);
	tcase_add_test(req, wrong_method);
	tcase_add_test(req, no_key);
	tcase_add_test(req, database_down);
	tcase_add_test(req, head_has_no_body);
	tcase_add_test(req, submit_media_type);
	tcase_add_test(req, submit_too_large);
	tcase_add_test(req, submit_bad_json);
	tcase_add_test(req, submit_invalid);
	tcase_add_test(req, submit_after_malformed_refused);
	tcase_add_test(req, submit_valid_needs_database);
	suite_add_tcase(s, req);
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
