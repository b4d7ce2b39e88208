/* genqctl migrate's file splitter and file-name rules. */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct split {
	struct mig_stmt *s;
	size_t n;
	char err[256];
	int rc;
};

static void
split(struct split *sp, const char *text)
{
	memset(sp, 0, sizeof *sp);
	sp->rc = mig_split(text, strlen(text), &sp->s, &sp->n, sp->err, sizeof sp->err);
}

START_TEST(statements_and_lines)
{
	struct split sp;

	split(&sp, "-- header\n-- more\n\nCREATE TABLE a (\n  x INT -- inline\n);\n\n"
	    "INSERT INTO a VALUES (1);\n");
	ck_assert_int_eq(sp.rc, 0);
	ck_assert_uint_eq(sp.n, 2);
	ck_assert_str_eq(sp.s[0].sql, "CREATE TABLE a (\n  x INT -- inline\n)");
	ck_assert_int_eq(sp.s[0].line, 4);
	ck_assert_str_eq(sp.s[1].sql, "INSERT INTO a VALUES (1)");
	ck_assert_int_eq(sp.s[1].line, 8);
	mig_free(sp.s, sp.n);
}
END_TEST

START_TEST(comments_and_blanks_inside)
{
	struct split sp;

	split(&sp, "INSERT INTO t VALUES\n\n  -- the first row\n  (1),\n   \t\n  (2);\n");
	ck_assert_int_eq(sp.rc, 0);
	ck_assert_uint_eq(sp.n, 1);
	ck_assert_str_eq(sp.s[0].sql, "INSERT INTO t VALUES\n  (1),\n  (2)");
	ck_assert_int_eq(sp.s[0].line, 1);
	mig_free(sp.s, sp.n);
}
END_TEST

START_TEST(no_final_newline)
{
	struct split sp;

	split(&sp, "SELECT 1;\nSELECT 2;");
	ck_assert_int_eq(sp.rc, 0);
	ck_assert_uint_eq(sp.n, 2);
	ck_assert_str_eq(sp.s[1].sql, "SELECT 2");
	ck_assert_int_eq(sp.s[1].line, 2);
	mig_free(sp.s, sp.n);
}
END_TEST

START_TEST(crlf_and_trailing_space)
{
	struct split sp;

	split(&sp, "SELECT 1 ;  \r\nSELECT\r\n 2;\r\n");
	ck_assert_int_eq(sp.rc, 0);
	ck_assert_uint_eq(sp.n, 2);
	ck_assert_str_eq(sp.s[0].sql, "SELECT 1");
	ck_assert_str_eq(sp.s[1].sql, "SELECT\n 2");
	mig_free(sp.s, sp.n);
}
END_TEST

/* ';' ends a statement only at the end of a line. */
START_TEST(semicolon_mid_line)
{
	struct split sp;

	split(&sp, "INSERT INTO t VALUES ('a;b');\n");
	ck_assert_int_eq(sp.rc, 0);
	ck_assert_uint_eq(sp.n, 1);
	ck_assert_str_eq(sp.s[0].sql, "INSERT INTO t VALUES ('a;b')");
	mig_free(sp.s, sp.n);
}
END_TEST

START_TEST(empty_and_lone_semicolons)
{
	struct split sp;

	split(&sp, "");
	ck_assert_int_eq(sp.rc, 0);
	ck_assert_uint_eq(sp.n, 0);
	mig_free(sp.s, sp.n);
	split(&sp, "-- only a comment\n\n;\n");
	ck_assert_int_eq(sp.rc, 0);
	ck_assert_uint_eq(sp.n, 0);
	mig_free(sp.s, sp.n);
}
END_TEST

START_TEST(unterminated)
{
	struct split sp;

	split(&sp, "SELECT 1;\n\nCREATE TABLE x (\n  y INT\n)\n-- forgot it\n");
	ck_assert_int_eq(sp.rc, -1);
	ck_assert_ptr_null(sp.s);
	ck_assert_str_eq(sp.err, "line 3: statement does not end with ';'");
}
END_TEST

START_TEST(nul_byte)
{
	struct split sp;
	static const char text[] = "SELECT 1;\nSEL\0ECT 2;\n";

	memset(&sp, 0, sizeof sp);
	sp.rc = mig_split(text, sizeof text - 1, &sp.s, &sp.n, sp.err, sizeof sp.err);
	ck_assert_int_eq(sp.rc, -1);
	ck_assert_str_eq(sp.err, "line 2: NUL byte");
}
END_TEST

/* The schema the project ships splits cleanly. */
START_TEST(shipped_schema)
{
	char path[1024];
	struct split sp;
	FILE *f;
	char *text;
	long len;

	snprintf(path, sizeof path, "%s/sql/001_init.sql",
	    getenv("srcdir") ? getenv("srcdir") : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s", path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)len + 1);
	ck_assert(fread(text, 1, (size_t)len, f) == (size_t)len);
	fclose(f);
	split(&sp, text);
	ck_assert_int_eq(sp.rc, 0);
	ck_assert_uint_ge(sp.n, 12);
	ck_assert(strncmp(sp.s[0].sql, "CREATE TABLE tiers", 18) == 0);
	for (size_t i = 0; i < sp.n; i++)
		ck_assert_msg(strchr(sp.s[i].sql, ';') == NULL || strstr(sp.s[i].sql, "';'"),
		    "statement at line %d", sp.s[i].line);
	mig_free(sp.s, sp.n);
	free(text);
}
END_TEST

START_TEST(file_names)
{
	int v = -1;

	ck_assert_int_eq(mig_parse_name("001_init.sql", &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(mig_parse_name("120_reporting-views.v2.sql", &v), 0);
	ck_assert_int_eq(v, 120);
	ck_assert_int_eq(mig_parse_name("7_x.sql", &v), 0);
	ck_assert_int_eq(v, 7);
	ck_assert_int_eq(mig_parse_name("init.sql", &v), -1);
	ck_assert_int_eq(mig_parse_name("001init.sql", &v), -1);
	ck_assert_int_eq(mig_parse_name("001_.sql", &v), -1);
	ck_assert_int_eq(mig_parse_name("001_init.sql~", &v), -1);
	ck_assert_int_eq(mig_parse_name("001_init.txt", &v), -1);
	ck_assert_int_eq(mig_parse_name("001_a b.sql", &v), -1);
	ck_assert_int_eq(mig_parse_name("1234567890_big.sql", &v), -1);
	ck_assert_int_eq(mig_parse_name(".sql", &v), -1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ctl_migrate");
	TCase *tc = tcase_create("split");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, statements_and_lines);
	tcase_add_test(tc, comments_and_blanks_inside);
	tcase_add_test(tc, no_final_newline);
	tcase_add_test(tc, crlf_and_trailing_space);
	tcase_add_test(tc, semicolon_mid_line);
	tcase_add_test(tc, empty_and_lone_semicolons);
	tcase_add_test(tc, unterminated);
	tcase_add_test(tc, nul_byte);
	tcase_add_test(tc, shipped_schema);
	tcase_add_test(tc, file_names);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
