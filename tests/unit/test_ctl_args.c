/* genqctl without a database: the command table, argument parsing, name,
 * credit, integer and URL validation, and the one-line error contract. */
#include "autoconf.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "ledger.h"

/* What one run of the tool printed. */
struct run {
	int status;
	char out[8192];
	char err[2048];
};

static void
slurp(int fd, char *buf, size_t cap)
{
	ssize_t n = pread(fd, buf, cap - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
}

/* Run ctl_main on a NULL-terminated argument list, capturing stdout and stderr. */
static void
run_ctl(struct run *r, const char *const *args)
{
	char *argv[32];
	char out_path[] = "/tmp/ctl_out_XXXXXX", err_path[] = "/tmp/ctl_err_XXXXXX";
	int out = mkstemp(out_path), err = mkstemp(err_path);
	int saved_out = dup(1), saved_err = dup(2), argc = 0;

	ck_assert(out >= 0 && err >= 0);
	unlink(out_path);
	unlink(err_path);
	argv[argc++] = (char *)"genqctl";
	for (; args[argc - 1] != NULL; argc++)
		argv[argc] = (char *)args[argc - 1];
	argv[argc] = NULL;
	fflush(stdout);
	dup2(out, 1);
	dup2(err, 2);
	r->status = ctl_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	slurp(out, r->out, sizeof r->out);
	slurp(err, r->err, sizeof r->err);
	close(out);
	close(err);
}

/* A failed run printed exactly one "genqctl: ..." line on stderr, nothing on stdout. */
static void
assert_one_error(const struct run *r, const char *needle)
{
	const char *nl = strchr(r->err, '\n');

	ck_assert_int_ne(r->status, 0);
	ck_assert_msg(strncmp(r->err, "genqctl: ", 9) == 0, "stderr: %s", r->err);
	ck_assert_msg(nl != NULL && nl[1] == '\0', "not one line: %s", r->err);
	ck_assert_msg(strstr(r->err, needle) != NULL, "'%s' not in: %s", needle, r->err);
	ck_assert_str_eq(r->out, "");
}

static void
setup(void)
{
	/* Any attempt to reach a database fails fast and says so. */
	setenv("GENQ_CONFIG", "/nonexistent/genq-test.conf", 1);
}

START_TEST(table_is_well_formed)
{
	const struct ctl_cmd *root = ctl_tree();

	ck_assert_uint_gt(root->nsubs, 8);
	for (size_t i = 0; i < root->nsubs; i++) {
		const struct ctl_cmd *noun = &root->subs[i];

		ck_assert_msg((noun->run == NULL) != (noun->nsubs == 0), "%s", noun->name);
		ck_assert(noun->summary != NULL && noun->usage != NULL);
		ck_assert_msg(strncmp(noun->usage, noun->name, strlen(noun->name)) == 0,
		    "%s usage", noun->name);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(root->subs[j].name, noun->name);
		for (size_t k = 0; k < noun->nsubs; k++) {
			const struct ctl_cmd *leaf = &noun->subs[k];
			char prefix[64];

			ck_assert(leaf->run != NULL && leaf->summary != NULL);
			snprintf(prefix, sizeof prefix, "%s %s", noun->name, leaf->name);
			ck_assert_msg(strncmp(leaf->usage, prefix, strlen(prefix)) == 0,
			    "usage of %s", prefix);
			for (size_t j = 0; j < k; j++)
				ck_assert_str_ne(noun->subs[j].name, leaf->name);
		}
	}
}
END_TEST

START_TEST(help_everywhere)
{
	static const char *const top[] = { "--help", NULL };
	const struct ctl_cmd *root = ctl_tree();
	struct run r;

	run_ctl(&r, top);
	ck_assert_int_eq(r.status, 0);
	ck_assert(strstr(r.out, "usage: genqctl") != NULL);
	ck_assert_str_eq(r.err, "");
	for (size_t i = 0; i < root->nsubs; i++) {
		const struct ctl_cmd *noun = &root->subs[i];
		const char *args[] = { noun->name, "--help", NULL };

		run_ctl(&r, args);
		ck_assert_msg(r.status == 0 && r.err[0] == '\0', "%s --help: %s", noun->name, r.err);
		ck_assert(strstr(r.out, noun->usage) != NULL);
		for (size_t k = 0; k < noun->nsubs; k++) {
			const char *leaf[] = { noun->name, noun->subs[k].name, "--help", NULL };

			run_ctl(&r, leaf);
			ck_assert_msg(r.status == 0 && r.err[0] == '\0', "%s %s --help: %s",
			    noun->name, noun->subs[k].name, r.err);
			ck_assert(strstr(r.out, noun->subs[k].usage) != NULL);
		}
	}
}
END_TEST

START_TEST(usage_errors)
{
	static const char *const none[] = { NULL };
	static const char *const unknown[] = { "frobnicate", NULL };
	static const char *const unknown_sub[] = { "user", "frob", NULL };
	static const char *const missing_sub[] = { "user", NULL };
	static const char *const bad_opt[] = { "user", "add", "bob", "--tier", "free", "--x", NULL };
	static const char *const no_value[] = { "user", "add", "bob", "--tier", NULL };
	static const char *const operands[] = { "user", "add", NULL };
	static const char *const extra[] = { "user", "list", "surplus", NULL };
	static const char *const top_opt[] = { "--nope", "stats", NULL };
	struct run r;

	run_ctl(&r, none);
	assert_one_error(&r, "missing command");
	run_ctl(&r, unknown);
	assert_one_error(&r, "unknown command 'frobnicate'");
	run_ctl(&r, unknown_sub);
	assert_one_error(&r, "unknown subcommand 'frob'");
	run_ctl(&r, missing_sub);
	assert_one_error(&r, "missing subcommand");
	run_ctl(&r, bad_opt);
	assert_one_error(&r, "unknown option '--x'");
	run_ctl(&r, no_value);
	assert_one_error(&r, "needs a value");
	run_ctl(&r, operands);
	assert_one_error(&r, "usage: genqctl user add NAME");
	run_ctl(&r, extra);
	assert_one_error(&r, "usage: genqctl user list");
	run_ctl(&r, top_opt);
	assert_one_error(&r, "unknown option '--nope'");
}
END_TEST

/* Arguments are checked before the configuration is read. */
START_TEST(validation_before_database)
{
	static const char *const bad_user[] = { "user", "add", "bad name", "--tier", "free", NULL };
	static const char *const no_tier[] = { "user", "add", "bob", NULL };
	static const char *const bad_amount[] = { "credits", "grant", "bob", "ten", NULL };
	static const char *const zero[] = { "credits", "grant", "bob", "0", NULL };
	static const char *const bad_url[] = { "backend", "add", "b1", "--type", "comfyui",
		"--url", "ftp://x", "--queues", "image", NULL };
	static const char *const bad_type[] = { "backend", "add", "b1", "--type", "vllm",
		"--url", "http://x", "--queues", "image", NULL };
	static const char *const bad_timeout[] = { "queue", "set", "image", "--timeout", "0", NULL };
	static const char *const bad_price[] = { "queue", "add", "v", "--price-per-job", "-1", NULL };
	static const char *const bad_job[] = { "job", "show", "12", NULL };
	static const char *const bad_quota[] = { "tier", "set", "gold", "--quota", "image", NULL };
	static const char *const bad_prefix[] = { "key", "revoke", "abc", NULL };
	static const char *const db_needed[] = { "user", "list", NULL };
	struct run r;

	run_ctl(&r, bad_user);
	assert_one_error(&r, "invalid user name 'bad name'");
	run_ctl(&r, no_tier);
	assert_one_error(&r, "--tier is required");
	run_ctl(&r, bad_amount);
	assert_one_error(&r, "AMOUNT: 'ten' is not an amount");
	run_ctl(&r, zero);
	assert_one_error(&r, "more than 0");
	run_ctl(&r, bad_url);
	assert_one_error(&r, "only http and https");
	run_ctl(&r, bad_type);
	assert_one_error(&r, "not comfyui or openai");
	run_ctl(&r, bad_timeout);
	assert_one_error(&r, "--timeout: '0' is not an integer");
	run_ctl(&r, bad_price);
	assert_one_error(&r, "--price-per-job: '-1'");
	run_ctl(&r, bad_job);
	assert_one_error(&r, "not a job id");
	run_ctl(&r, bad_quota);
	assert_one_error(&r, "not QUEUE=N");
	run_ctl(&r, bad_prefix);
	assert_one_error(&r, "not a key prefix");
	/* Only now does the configuration matter. */
	run_ctl(&r, db_needed);
	assert_one_error(&r, "/nonexistent/genq-test.conf");
}
END_TEST

START_TEST(names)
{
	ck_assert(ctl_name_ok("alice", CTL_USER_MAX, "@"));
	ck_assert(ctl_name_ok("a.b-c_d@example.org", CTL_USER_MAX, "@"));
	ck_assert(!ctl_name_ok("a@b", CTL_QUEUE_MAX, ""));
	ck_assert(!ctl_name_ok("", CTL_USER_MAX, "@"));
	ck_assert(!ctl_name_ok("a b", CTL_USER_MAX, "@"));
	ck_assert(!ctl_name_ok("a/b", CTL_USER_MAX, "@"));
	ck_assert(!ctl_name_ok("caf\xc3\xa9", CTL_USER_MAX, "@"));
	ck_assert(!ctl_name_ok("a'b", CTL_USER_MAX, "@"));
	{
		char s[CTL_USER_MAX + 2];

		memset(s, 'x', sizeof s - 1);
		s[CTL_USER_MAX] = '\0';
		ck_assert(ctl_name_ok(s, CTL_USER_MAX, "@"));
		s[CTL_USER_MAX] = 'x';
		s[CTL_USER_MAX + 1] = '\0';
		ck_assert(!ctl_name_ok(s, CTL_USER_MAX, "@"));
	}
}
END_TEST

START_TEST(credits)
{
	int64_t m = -7;

	ck_assert_int_eq(ctl_parse_credits("x", "10", &m), CTL_OK);
	ck_assert_int_eq(m, 10 * GQ_MICRO);
	ck_assert_int_eq(ctl_parse_credits("x", "2.5", &m), CTL_OK);
	ck_assert_int_eq(m, 2500000);
	ck_assert_int_eq(ctl_parse_credits("x", "0.000001", &m), CTL_OK);
	ck_assert_int_eq(m, 1);
	ck_assert_int_eq(ctl_parse_credits("x", "0", &m), CTL_OK);
	ck_assert_int_eq(m, 0);
	ck_assert_int_eq(ctl_parse_credits("x", "999999999999.999999", &m), CTL_OK);
	ck_assert_int_eq(m, INT64_C(999999999999999999));

	freopen("/dev/null", "w", stderr);
	ck_assert_int_eq(ctl_parse_credits("x", "1.0000001", &m), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_credits("x", "-1", &m), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_credits("x", "", &m), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_credits("x", "1e3", &m), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_credits("x", " 1", &m), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_credits("x", "1.", &m), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_credits("x", ".5", &m), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_credits("x", "1,5", &m), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_credits("x", "1000000000000", &m), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_credits("x", "99999999999999999999", &m), CTL_FAIL);
}
END_TEST

START_TEST(integers)
{
	long n = -7;

	ck_assert_int_eq(ctl_parse_int("x", "42", 0, 100, &n), CTL_OK);
	ck_assert_int_eq(n, 42);
	ck_assert_int_eq(ctl_parse_int("x", "0", 0, 100, &n), CTL_OK);
	freopen("/dev/null", "w", stderr);
	ck_assert_int_eq(ctl_parse_int("x", "101", 0, 100, &n), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_int("x", "-1", 0, 100, &n), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_int("x", "", 0, 100, &n), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_int("x", "4x", 0, 100, &n), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_int("x", " 4", 0, 100, &n), CTL_FAIL);
	ck_assert_int_eq(ctl_parse_int("x", "99999999999999999999", 0, 100, &n), CTL_FAIL);
}
END_TEST

START_TEST(urls)
{
	char *u = NULL;

	ck_assert_int_eq(backends_check_url("http://127.0.0.1:8188", &u), CTL_OK);
	ck_assert_str_eq(u, "http://127.0.0.1:8188");
	free(u);
	ck_assert_int_eq(backends_check_url("https://gpu1.example.org/comfy/", &u), CTL_OK);
	ck_assert_str_eq(u, "https://gpu1.example.org/comfy");
	free(u);
	ck_assert_int_eq(backends_check_url("HTTP://Host:80/", &u), CTL_OK);
	free(u);
	freopen("/dev/null", "w", stderr);
	u = NULL;
	ck_assert_int_eq(backends_check_url("ftp://host/", &u), CTL_FAIL);
	ck_assert_int_eq(backends_check_url("file:///etc/passwd", &u), CTL_FAIL);
	ck_assert_int_eq(backends_check_url("127.0.0.1:8188", &u), CTL_FAIL);
	ck_assert_int_eq(backends_check_url("http://", &u), CTL_FAIL);
	ck_assert_int_eq(backends_check_url("http://h/?a=1", &u), CTL_FAIL);
	ck_assert_int_eq(backends_check_url("http://h/#x", &u), CTL_FAIL);
	ck_assert_int_eq(backends_check_url("http://h x/", &u), CTL_FAIL);
	ck_assert_int_eq(backends_check_url("", &u), CTL_FAIL);
	ck_assert_ptr_null(u);
}
END_TEST

START_TEST(job_ids)
{
	freopen("/dev/null", "w", stderr);
	ck_assert_int_eq(ctl_check_job_id("0b7f5a8e-6d1c-4f0a-9a57-3c1d2e4f5a6b"), CTL_OK);
	ck_assert_int_eq(ctl_check_job_id("0b7f5a8e-6d1c-4f0a-9a57-3c1d2e4f5a6"), CTL_FAIL);
	ck_assert_int_eq(ctl_check_job_id("0b7f5a8e-6d1c-4f0a-9a57-3c1d2e4f5a6bb"), CTL_FAIL);
	ck_assert_int_eq(ctl_check_job_id("zb7f5a8e-6d1c-4f0a-9a57-3c1d2e4f5a6b"), CTL_FAIL);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ctl_args");
	TCase *tc = tcase_create("ctl_args");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, table_is_well_formed);
	tcase_add_test(tc, help_everywhere);
	tcase_add_test(tc, usage_errors);
	tcase_add_test(tc, validation_before_database);
	tcase_add_test(tc, names);
	tcase_add_test(tc, credits);
	tcase_add_test(tc, integers);
	tcase_add_test(tc, urls);
	tcase_add_test(tc, job_ids);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
