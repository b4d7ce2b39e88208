#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secure.h"
#include "store.h"

/* "ab" of a job id: its first two hex digits. */
static void
shard_of(const char *job_id, char out[3])
{
	out[0] = job_id[0];
	out[1] = job_id[1];
	out[2] = '\0';
}

int
store_path(const char *job_id, size_t n, const char *ext, char *out, size_t len)
{
	char shard[3];
	int w;

	if (!gq_is_uuid(job_id))
		return -1;
	shard_of(job_id, shard);
	w = snprintf(out, len, "%s/%s.%zu.%s", shard, job_id, n, ext);
	return w < 0 || (size_t)w >= len ? -1 : 0;
}

/* mkdir that is content to find the folder there already. */
static int
make_folder(const char *path)
{
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

int
store_open_temp(const char *output_dir, const char *job_id, size_t n, char *tmp_path,
    size_t len)
{
	char shard[3], dir[PATH_MAX];
	int fd, w;

	if (!gq_is_uuid(job_id)) {
		errno = EINVAL;
		return -1;
	}
	shard_of(job_id, shard);
	w = snprintf(tmp_path, len, "%s/%s/.%s.%zu.XXXXXX", output_dir, shard, job_id, n);
	if (w < 0 || (size_t)w >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* The shard is there but for the first output that falls in it. */
	if ((fd = mkstemp(tmp_path)) < 0 && errno == ENOENT) {
		snprintf(dir, sizeof dir, "%s/%s", output_dir, shard);
		if (make_folder(dir) < 0)
			return -1;
		snprintf(tmp_path, len, "%s/%s/.%s.%zu.XXXXXX", output_dir, shard, job_id, n);
		fd = mkstemp(tmp_path);
	}
	if (fd >= 0)
		fchmod(fd, 0644);
	return fd;
}

/* ".<digits>.XXXXXX": what follows the job id in a temporary name, and the
 * whole name of a temporary file in the old layout's job folder. */
static bool
temp_tail(const char *p)
{
	if (*p++ != '.' || *p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	return *p == '.' && strlen(p + 1) == 6;
}

bool
store_is_temp_of(const char *name, const char *job_id)
{
	size_t idlen = strlen(job_id);

	return name[0] == '.' && strncmp(name + 1, job_id, idlen) == 0 &&
	    temp_tail(name + 1 + idlen);
}

/* Remove the entries of folder path that match; how many went. */
static int
remove_matching(const char *path, const char *job_id, bool old_layout)
{
	struct dirent *e;
	DIR *d = opendir(path);
	int n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		bool match = old_layout ? temp_tail(e->d_name) : store_is_temp_of(e->d_name, job_id);

		if (match && unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int
store_remove_temps(const char *output_dir, const char *job_id)
{
	char shard[3], path[PATH_MAX];
	int n = 0;

	if (!gq_is_uuid(job_id))
		return 0;
	shard_of(job_id, shard);
	if (snprintf(path, sizeof path, "%s/%s", output_dir, shard) < (int)sizeof path)
		n += remove_matching(path, job_id, false);
	if (snprintf(path, sizeof path, "%s/%s", output_dir, job_id) < (int)sizeof path)
		n += remove_matching(path, job_id, true);
	return n;
}

void
store_sync_folder(const char *output_dir, const char *rel)
{
	char path[PATH_MAX];
	const char *slash = strrchr(rel, '/');
	int fd, w;

	if (slash == NULL)
		return;
	w = snprintf(path, sizeof path, "%s/%.*s", output_dir, (int)(slash - rel), rel);
	if (w < 0 || (size_t)w >= sizeof path ||
	    (fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return;
	fsync(fd);
	close(fd);
}

bool
store_folder_is_the_jobs(const char *rel)
{
	const char *slash = strchr(rel, '/');
	char head[GQ_UUID_LEN];

	if (slash == NULL || (size_t)(slash - rel) != GQ_UUID_LEN - 1)
		return false;
	memcpy(head, rel, GQ_UUID_LEN - 1);
	head[GQ_UUID_LEN - 1] = '\0';
	return gq_is_uuid(head);
}
