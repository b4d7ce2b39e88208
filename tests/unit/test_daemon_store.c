/* Unit tests: the output store's layout (daemon/store.c), in a scratch
 * folder: shard paths, temporary files, and what recovery and retention
 * may remove. */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../daemon/store.c"

static const char ID[] = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
static const char OTHER[] = "3fa8aaaa-5717-4562-b3fc-2c963f66afa6";   /* same shard */
static char root[] = "/tmp/genq-store-test-XXXXXX";

static bool
exists(const char *rel)
{
	char path[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	return stat(path, &sb) == 0;
}

static void
touch(const char *rel)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fclose(f);
}

START_TEST(paths_are_sharded_by_the_ids_first_digits)
{
	char out[STORE_PATH_MAX];

	ck_assert_int_eq(store_path(ID, 0, "png", out, sizeof out), 0);
	ck_assert_str_eq(out, "3f/3fa85f64-5717-4562-b3fc-2c963f66afa6.0.png");
	ck_assert_int_eq(store_path(ID, 12, "webp", out, sizeof out), 0);
	ck_assert_str_eq(out, "3f/3fa85f64-5717-4562-b3fc-2c963f66afa6.12.webp");
	/* Not a job id: nothing that could climb out of the store. */
	ck_assert_int_eq(store_path("../../etc/passwd", 0, "png", out, sizeof out), -1);
	ck_assert_int_eq(store_path(ID, 0, "png", out, 20), -1);
}
END_TEST

START_TEST(a_temporary_file_makes_its_shard_once)
{
	char tmp[PATH_MAX], tmp2[PATH_MAX];
	struct stat sb;
	int fd, fd2;

	ck_assert(!exists("3f"));
	fd = store_open_temp(root, ID, 0, tmp, sizeof tmp);
	ck_assert_int_ge(fd, 0);
	ck_assert(exists("3f"));
	ck_assert(strncmp(tmp + strlen(root), "/3f/.3fa85f64-", 14) == 0);
	ck_assert_int_eq(fstat(fd, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0644);          /* nginx may be another user */
	/* The next one finds the shard there. */
	fd2 = store_open_temp(root, OTHER, 3, tmp2, sizeof tmp2);
	ck_assert_int_ge(fd2, 0);
	ck_assert_str_ne(tmp, tmp2);
	close(fd);
	close(fd2);
	ck_assert_int_eq(store_open_temp(root, "not-an-id", 0, tmp, sizeof tmp), -1);
	ck_assert_int_eq(store_open_temp(root, ID, 0, tmp, 10), -1);
}
END_TEST

START_TEST(temporary_names_are_told_apart)
{
	ck_assert(store_is_temp_of(".3fa85f64-5717-4562-b3fc-2c963f66afa6.0.Ab12Cd", ID));
	ck_assert(store_is_temp_of(".3fa85f64-5717-4562-b3fc-2c963f66afa6.17.zzzzzz", ID));
	ck_assert(!store_is_temp_of(".3fa8aaaa-5717-4562-b3fc-2c963f66afa6.0.Ab12Cd", ID));
	ck_assert(!store_is_temp_of("3fa85f64-5717-4562-b3fc-2c963f66afa6.0.png", ID));
	ck_assert(!store_is_temp_of(".3fa85f64-5717-4562-b3fc-2c963f66afa6.x.Ab12Cd", ID));
	ck_assert(!store_is_temp_of(".3fa85f64-5717-4562-b3fc-2c963f66afa6.0.Ab12", ID));
}
END_TEST

START_TEST(recovery_removes_only_that_jobs_temporaries)
{
	char tmp[PATH_MAX];
	int fd;

	ck_assert_int_ge(fd = store_open_temp(root, ID, 0, tmp, sizeof tmp), 0);
	close(fd);
	ck_assert_int_ge(fd = store_open_temp(root, ID, 1, tmp, sizeof tmp), 0);
	close(fd);
	ck_assert_int_ge(fd = store_open_temp(root, OTHER, 0, tmp, sizeof tmp), 0);
	close(fd);
	touch("3f/3fa85f64-5717-4562-b3fc-2c963f66afa6.0.png");     /* a finished one */
	/* And one in the old layout's job folder. */
	ck_assert_int_eq(mkdir(strcat(strcpy(tmp, root), "/3fa85f64-5717-4562-b3fc-2c963f66afa6"),
	    0755), 0);
	touch("3fa85f64-5717-4562-b3fc-2c963f66afa6/.2.q1w2e3");
	touch("3fa85f64-5717-4562-b3fc-2c963f66afa6/0.png");

	ck_assert_int_eq(store_remove_temps(root, ID), 3);
	ck_assert_int_eq(store_remove_temps(root, ID), 0);
	ck_assert(exists("3f/3fa85f64-5717-4562-b3fc-2c963f66afa6.0.png"));
	ck_assert(exists("3fa85f64-5717-4562-b3fc-2c963f66afa6/0.png"));
	ck_assert_int_eq(store_remove_temps(root, OTHER), 1);
}
END_TEST

START_TEST(only_an_old_layouts_job_folder_may_go)
{
	ck_assert(store_folder_is_the_jobs("3fa85f64-5717-4562-b3fc-2c963f66afa6/0.png"));
	ck_assert(!store_folder_is_the_jobs("3f/3fa85f64-5717-4562-b3fc-2c963f66afa6.0.png"));
	ck_assert(!store_folder_is_the_jobs("0.png"));
	ck_assert(!store_folder_is_the_jobs("3fa85f64-5717-4562-b3fc-2c963f66afaX/0.png"));
}
END_TEST

static void
make_root(void)
{
	strcpy(root, "/tmp/genq-store-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static void
remove_root(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
}

int
main(void)
{
	Suite *s = suite_create("daemon_store");
	TCase *tc = tcase_create("store");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, make_root, remove_root);
	tcase_add_test(tc, paths_are_sharded_by_the_ids_first_digits);
	tcase_add_test(tc, a_temporary_file_makes_its_shard_once);
	tcase_add_test(tc, temporary_names_are_told_apart);
	tcase_add_test(tc, recovery_removes_only_that_jobs_temporaries);
	tcase_add_test(tc, only_an_old_layouts_job_folder_may_go);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
