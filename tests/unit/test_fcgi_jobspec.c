/* Unit tests: submit body validation (jobspec.c). */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "deps.h"
#include "jobspec.h"

struct parsed {
	enum spec_result rc;
	struct job_spec spec;
	struct json_object *errors;
	const char *why;
};

static void
parse(struct parsed *p, const char *body)
{
	p->errors = json_object_new_array();
	p->why = NULL;
	p->rc = spec_parse(&p->spec, body, strlen(body), p->errors, &p->why);
}

static void
done(struct parsed *p)
{
	spec_free(&p->spec);
	json_object_put(p->errors);
}

/* True when errors has an entry for field. */
static bool
has_error(struct parsed *p, const char *field)
{
	for (size_t i = 0; i < json_object_array_length(p->errors); i++) {
		struct json_object *e = json_object_array_get_idx(p->errors, i), *f;
		if (json_object_object_get_ex(e, "field", &f) &&
		    strcmp(json_object_get_string(f), field) == 0)
			return true;
	}
	return false;
}

/* Expect body to be invalid with (at least) an error for field. */
static void
expect_invalid(const char *body, const char *field)
{
	struct parsed p;

	parse(&p, body);
	ck_assert_msg(p.rc == SPEC_INVALID, "%s: rc %d", body, p.rc);
	ck_assert_msg(has_error(&p, field), "%s: no error for %s in %s", body, field,
	    json_object_to_json_string(p.errors));
	done(&p);
}

START_TEST(minimal)
{
	struct parsed p;

	parse(&p, "{\"queue\": \"image\", \"input\": {\"prompt\": {}}}");
	ck_assert_int_eq(p.rc, SPEC_OK);
	ck_assert_str_eq(p.spec.queue, "image");
	ck_assert_ptr_nonnull(p.spec.input);
	ck_assert_int_eq(p.spec.priority, -1);
	ck_assert_ptr_null(p.spec.metadata);
	ck_assert_ptr_null(p.spec.webhook);
	ck_assert_uint_eq(p.spec.events, 0);
	ck_assert_int_eq(p.spec.max_attempts, 0);
	ck_assert_int_eq(p.spec.timeout_s, 0);
	ck_assert_int_eq(p.spec.ttl_s, 0);
	ck_assert_uint_eq(p.spec.nafter, 0);
	ck_assert_uint_eq(json_object_array_length(p.errors), 0);
	done(&p);
}
END_TEST

START_TEST(full)
{
	struct parsed p;
	char events[64];

	parse(&p, "{\"queue\": \"image\", \"input\": {}, \"priority\": 3,"
	    " \"metadata\": {\"order\": 17, \"tags\": [\"a\"]},"
	    " \"webhook\": \"https://example.com/hook?x=1\","
	    " \"webhook_events\": [\"completed\", \"started\", \"completed\"],"
	    " \"after\": [\"0b8e4c1e-7c2a-4d3f-9a1b-2c3d4e5f6a7b\"],"
	    " \"max_attempts\": 2, \"timeout_s\": 60, \"ttl_s\": 3600}");
	ck_assert_int_eq(p.rc, SPEC_OK);
	ck_assert_int_eq(p.spec.priority, 3);
	ck_assert_str_eq(p.spec.metadata, "{\"order\":17,\"tags\":[\"a\"]}");
	ck_assert_uint_eq(p.spec.metadata_len, strlen(p.spec.metadata));
	ck_assert_str_eq(p.spec.webhook, "https://example.com/hook?x=1");
	ck_assert_uint_eq(p.spec.events, SPEC_EV_STARTED | SPEC_EV_COMPLETED);
	spec_events_text(p.spec.events, events);
	ck_assert_str_eq(events, "started,completed");
	ck_assert_int_eq(p.spec.max_attempts, 2);
	ck_assert_int_eq(p.spec.timeout_s, 60);
	ck_assert_int_eq(p.spec.ttl_s, 3600);
	ck_assert_uint_eq(p.spec.nafter, 1);
	done(&p);
}
END_TEST

START_TEST(webhook_default_events)
{
	struct parsed p;
	char events[64];

	parse(&p, "{\"queue\": \"q\", \"input\": {}, \"webhook\": \"http://h.example/\"}");
	ck_assert_int_eq(p.rc, SPEC_OK);
	ck_assert_uint_eq(p.spec.events, SPEC_EV_ALL);
	spec_events_text(p.spec.events, events);
	ck_assert_str_eq(events, "started,progress,completed");
	done(&p);
}
END_TEST

START_TEST(nulls_are_absent)
{
	struct parsed p;

	parse(&p, "{\"queue\": \"q\", \"input\": {}, \"priority\": null, \"metadata\": null,"
	    " \"webhook\": null, \"after\": null, \"ttl_s\": null}");
	ck_assert_int_eq(p.rc, SPEC_OK);
	ck_assert_int_eq(p.spec.priority, -1);
	ck_assert_ptr_null(p.spec.metadata);
	done(&p);
}
END_TEST

START_TEST(not_json)
{
	static const char *bodies[] = {
		"", "{", "{\"queue\": \"q\",}", "{'queue': 1}", "{} x", "[1,]", "nul",
		"{\"a\": \"\xff\"}", "{\"a\": 01}",
	};

	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		struct parsed p;
		parse(&p, bodies[i]);
		ck_assert_msg(p.rc == SPEC_BAD_JSON, "%s: rc %d", bodies[i], p.rc);
		ck_assert_ptr_nonnull(p.why);
		done(&p);
	}
}
END_TEST

START_TEST(too_deep)
{
	char body[400];
	struct parsed p;
	size_t n = 0;

	n += (size_t)snprintf(body + n, sizeof body - n, "{\"queue\":\"q\",\"input\":");
	for (int i = 0; i < 70; i++)
		body[n++] = '[';
	for (int i = 0; i < 70; i++)
		body[n++] = ']';
	snprintf(body + n, sizeof body - n, "}");
	parse(&p, body);
	ck_assert_int_eq(p.rc, SPEC_BAD_JSON);
	done(&p);
}
END_TEST

START_TEST(not_object)
{
	expect_invalid("[]", "");
	expect_invalid("\"job\"", "");
	/* Top-level scalars: invalid_request once lib/jsonutil.c finishes
	 * them at end of input, invalid_json before; never accepted. */
	{
		struct parsed p;
		parse(&p, "null");
		ck_assert_int_ne(p.rc, SPEC_OK);
		done(&p);
		parse(&p, "42");
		ck_assert_int_ne(p.rc, SPEC_OK);
		done(&p);
	}
}
END_TEST

START_TEST(missing_fields)
{
	struct parsed p;

	parse(&p, "{}");
	ck_assert_int_eq(p.rc, SPEC_INVALID);
	ck_assert(has_error(&p, "queue"));
	ck_assert(has_error(&p, "input"));
	done(&p);
	expect_invalid("{\"input\": {}}", "queue");
	expect_invalid("{\"queue\": \"q\"}", "input");
	expect_invalid("{\"queue\": \"q\", \"input\": null}", "input");
}
END_TEST

START_TEST(wrong_types)
{
	expect_invalid("{\"queue\": 1, \"input\": {}}", "queue");
	expect_invalid("{\"queue\": \"\", \"input\": {}}", "queue");
	expect_invalid("{\"queue\": \"123456789012345678901234567890123\", \"input\": {}}", "queue");
	expect_invalid("{\"queue\": \"q\", \"input\": []}", "input");
	expect_invalid("{\"queue\": \"q\", \"input\": \"{}\"}", "input");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"priority\": \"1\"}", "priority");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"priority\": 1.0}", "priority");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"priority\": true}", "priority");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"metadata\": []}", "metadata");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"metadata\": \"x\"}", "metadata");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"webhook\": 5}", "webhook");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"after\": \"x\"}", "after");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"after\": [1]}", "after[0]");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"after\": [\"nope\"]}", "after[0]");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"max_attempts\": \"3\"}", "max_attempts");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"timeout_s\": 1.5}", "timeout_s");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"ttl_s\": [60]}", "ttl_s");
}
END_TEST

START_TEST(priority_range)
{
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"priority\": -1}", "priority");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"priority\": 4}", "priority");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"priority\": 99999999999999999999}", "priority");
	for (int i = 0; i <= 3; i++) {
		char body[80];
		struct parsed p;
		snprintf(body, sizeof body, "{\"queue\": \"q\", \"input\": {}, \"priority\": %d}", i);
		parse(&p, body);
		ck_assert_int_eq(p.rc, SPEC_OK);
		ck_assert_int_eq(p.spec.priority, i);
		done(&p);
	}
}
END_TEST

START_TEST(limits_positive)
{
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"max_attempts\": 0}", "max_attempts");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"timeout_s\": -5}", "timeout_s");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"ttl_s\": 2147483648}", "ttl_s");
}
END_TEST

START_TEST(unknown_field)
{
	struct parsed p;

	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"priorty\": 1}", "priorty");
	/* Every problem is listed, not only the first. */
	parse(&p, "{\"queue\": 7, \"input\": {}, \"extra\": 1, \"priority\": 9}");
	ck_assert_int_eq(p.rc, SPEC_INVALID);
	ck_assert(has_error(&p, "extra"));
	ck_assert(has_error(&p, "queue"));
	ck_assert(has_error(&p, "priority"));
	ck_assert_uint_eq(json_object_array_length(p.errors), 3);
	done(&p);
}
END_TEST

START_TEST(unknown_field_name_bounded)
{
	char body[400], name[201];
	struct parsed p;
	struct json_object *e, *f;

	memset(name, 'k', 200);
	name[200] = '\0';
	snprintf(body, sizeof body, "{\"queue\": \"q\", \"input\": {}, \"%s\": 1}", name);
	parse(&p, body);
	ck_assert_int_eq(p.rc, SPEC_INVALID);
	e = json_object_array_get_idx(p.errors, 0);
	ck_assert(json_object_object_get_ex(e, "field", &f));
	ck_assert_uint_eq(strlen(json_object_get_string(f)), 64);
	done(&p);
}
END_TEST

START_TEST(metadata_size)
{
	char body[6000];
	struct parsed p;
	/* {"k":"<v>"} is 8 bytes + len(v). */
	size_t fits = SPEC_METADATA_MAX - 8;
	char *v = malloc(fits + 2);

	memset(v, 'x', fits + 1);
	v[fits] = '\0';
	snprintf(body, sizeof body, "{\"queue\": \"q\", \"input\": {}, \"metadata\": {\"k\": \"%s\"}}", v);
	parse(&p, body);
	ck_assert_int_eq(p.rc, SPEC_OK);
	ck_assert_uint_eq(p.spec.metadata_len, SPEC_METADATA_MAX);
	done(&p);

	v[fits] = 'x';
	v[fits + 1] = '\0';
	snprintf(body, sizeof body, "{\"queue\": \"q\", \"input\": {}, \"metadata\": {\"k\": \"%s\"}}", v);
	expect_invalid(body, "metadata");
	free(v);
}
END_TEST

START_TEST(webhook_urls)
{
	static const char *bad[] = {
		"ftp://example.com/", "example.com/hook", "/relative", "http://", "http://:80/",
		"javascript:alert(1)", "file:///etc/passwd", "http://exa mple.com/", "",
	};
	static const char *good[] = {
		"http://example.com", "https://example.com:8443/a/b?c=d", "http://127.0.0.1:9/x",
		"HTTPS://EXAMPLE.COM/", "http://[::1]:80/",
	};
	char body[300];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(body, sizeof body, "{\"queue\": \"q\", \"input\": {}, \"webhook\": \"%s\"}", bad[i]);
		expect_invalid(body, "webhook");
	}
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(spec_check_url(good[i]) == 0, "%s", good[i]);
}
END_TEST

START_TEST(webhook_too_long)
{
	char *body = malloc(3000), *url = malloc(2100);

	memcpy(url, "https://example.com/", 20);
	memset(url + 20, 'a', 2049 - 20);
	url[2049] = '\0';
	snprintf(body, 3000, "{\"queue\": \"q\", \"input\": {}, \"webhook\": \"%s\"}", url);
	expect_invalid(body, "webhook");
	free(body);
	free(url);
}
END_TEST

START_TEST(webhook_events)
{
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"webhook\": \"http://e.x/\", \"webhook_events\": \"completed\"}", "webhook_events");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"webhook\": \"http://e.x/\", \"webhook_events\": [\"done\"]}", "webhook_events");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"webhook\": \"http://e.x/\", \"webhook_events\": [1]}", "webhook_events");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"webhook_events\": [\"started\"]}", "webhook_events");
	/* An embedded NUL would read as "started" to C: refused. */
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"webhook\": \"http://e.x/\", \"webhook_events\": [\"started\\u0000x\"]}", "webhook_events");
}
END_TEST

START_TEST(after_bounded)
{
	char body[6000];
	size_t n = 0;

	n += (size_t)snprintf(body + n, sizeof body - n, "{\"queue\": \"q\", \"input\": {}, \"after\": [");
	for (int i = 0; i <= SPEC_AFTER_MAX; i++)
		n += (size_t)snprintf(body + n, sizeof body - n, "%s\"0b8e4c1e-7c2a-4d3f-9a1b-2c3d4e5f6a7b\"",
		    i ? "," : "");
	snprintf(body + n, sizeof body - n, "]}");
	expect_invalid(body, "after");
}
END_TEST


#define UUID_A "0b8e4c1e-7c2a-4d3f-9a1b-2c3d4e5f6a7b"
#define UUID_B "1c9f5d2f-8d3b-4e4a-8b2c-3d4e5f6a7b8c"

START_TEST(after_items)
{
	struct parsed p;

	/* Each bad item is named by its index. */
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"after\": [\"" UUID_A "\", 7]}", "after[1]");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"after\": [\"nope\"]}", "after[0]");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"after\": [\"" UUID_A "\", \"" UUID_A "\"]}",
	    "after[1]");
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"after\": \"" UUID_A "\"}", "after");
	/* An id with an embedded NUL and more after it is not that id. */
	expect_invalid("{\"queue\": \"q\", \"input\": {}, \"after\": [\"" UUID_A "\\u0000junk\"]}",
	    "after[0]");

	parse(&p, "{\"queue\": \"q\", \"input\": {}, \"after\": [\"" UUID_A "\", \"" UUID_B "\"]}");
	ck_assert_int_eq(p.rc, SPEC_OK);
	ck_assert_uint_eq(p.spec.nafter, 2);
	ck_assert_str_eq(p.spec.after[0], UUID_A);
	ck_assert_str_eq(p.spec.after[1], UUID_B);
	done(&p);
}
END_TEST

START_TEST(after_references)
{
	struct parsed p;

	/* Well-formed references within after, anywhere in the input. */
	parse(&p, "{\"queue\": \"q\", \"after\": [\"" UUID_A "\", \"" UUID_B "\"], \"input\": "
	    "{\"1\": {\"inputs\": {\"image\": \"genq:after/1/outputs/0\", "
	    "\"list\": [\"genq:after/0/outputs/12\", \"genq:afterwards\", \"x genq:after/9\"]}}}}");
	ck_assert_msg(p.rc == SPEC_OK, "%s", json_object_to_json_string(p.errors));
	done(&p);

	/* An index past after, or no after at all. */
	expect_invalid("{\"queue\": \"q\", \"after\": [\"" UUID_A "\"], "
	    "\"input\": {\"a\": \"genq:after/1/outputs/0\"}}", "input");
	expect_invalid("{\"queue\": \"q\", \"input\": {\"a\": [\"genq:after/0/outputs/0\"]}}", "input");
	/* Malformed: leading zeros, signs, junk, missing parts, huge numbers. */
	static const char *const bad[] = {
		"genq:after/", "genq:after/0", "genq:after/0/outputs/", "genq:after/00/outputs/0",
		"genq:after/0/outputs/01", "genq:after/-1/outputs/0", "genq:after/0/outputs/0x",
		"genq:after/0/output/0", "genq:after/0/outputs/99999", "genq:after/16/outputs/0",
		"genq:after/4294967296/outputs/0",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char body[256];
		snprintf(body, sizeof body, "{\"queue\": \"q\", \"after\": [\"" UUID_A "\"], "
		    "\"input\": {\"a\": \"%s\"}}", bad[i]);
		expect_invalid(body, "input");
	}
}
END_TEST

START_TEST(ref_parse)
{
	unsigned a = 99, b = 99;

	ck_assert_int_eq(deps_ref_parse("genq:after/3/outputs/7", 22, &a, &b), 1);
	ck_assert_uint_eq(a, 3);
	ck_assert_uint_eq(b, 7);
	ck_assert_int_eq(deps_ref_parse("genq:after/15/outputs/9999", 26, &a, &b), 1);
	ck_assert_uint_eq(a, 15);
	ck_assert_uint_eq(b, 9999);
	ck_assert_int_eq(deps_ref_parse("hello", 5, &a, &b), 0);
	ck_assert_int_eq(deps_ref_parse("genq:afte", 9, &a, &b), 0);
	/* The length counts, not a NUL: a shorter length cuts the reference. */
	ck_assert_int_eq(deps_ref_parse("genq:after/3/outputs/7", 21, &a, &b), -1);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("fcgi_jobspec");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, minimal);
	tcase_add_test(tc, full);
	tcase_add_test(tc, webhook_default_events);
	tcase_add_test(tc, nulls_are_absent);
	tcase_add_test(tc, not_json);
	tcase_add_test(tc, too_deep);
	tcase_add_test(tc, not_object);
	tcase_add_test(tc, missing_fields);
	tcase_add_test(tc, wrong_types);
	tcase_add_test(tc, priority_range);
	tcase_add_test(tc, limits_positive);
	tcase_add_test(tc, unknown_field);
	tcase_add_test(tc, unknown_field_name_bounded);
	tcase_add_test(tc, metadata_size);
	tcase_add_test(tc, webhook_urls);
	tcase_add_test(tc, webhook_too_long);
	tcase_add_test(tc, webhook_events);
	tcase_add_test(tc, after_bounded);
	tcase_add_test(tc, after_items);
	tcase_add_test(tc, after_references);
	tcase_add_test(tc, ref_parse);
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
