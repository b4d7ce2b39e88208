/* replay: a main() for builds without libFuzzer. Feeds each file named on
 * the command line (a directory: each regular file in it) to the target
 * once, so the seed corpora and every crash reproducer run as regression
 * tests under any compiler, sanitizers included. */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define REPLAY_MAX (1L << 20)   /* libFuzzer runs use -max_len=65536 */

/* Read path whole and run the target on it. 0, or -1 when it cannot be read. */
static int
replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	long size;
	int rc = -1;

	if (f == NULL)
		goto out;
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || size > REPLAY_MAX ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto out;
	/* An exact-size buffer, so a sanitizer sees any read past the input. */
	if ((data = malloc(size ? (size_t)size : 1)) == NULL)
		goto out;
	if (size > 0 && fread(data, 1, (size_t)size, f) != (size_t)size)
		goto out;
	LLVMFuzzerTestOneInput(data, (size_t)size);
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
	free(data);
	if (f != NULL)
		fclose(f);
	return rc;
}

/* Run every regular file in dir (no recursion). Returns the count, or -1. */
static long
replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	struct stat st;
	long n = 0;

	if (d == NULL) {
		fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path ||
		    stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (replay_file(path) < 0) {
			n = -1;
			break;
		}
		n++;
	}
	closedir(d);
	return n;
}

int
main(int argc, char **argv)
{
	struct stat st;
	long total = 0, n;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		n = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : (replay_file(argv[i]) == 0 ? 1 : -1);
		if (n < 0)
			return 1;
		total += n;
	}
	printf("replay: %ld inputs, no failures\n", total);
	return 0;
}
