/* The output store's layout on disk (SPEC §6).
 *
 * A job's outputs live in a shard folder named by the first two hex digits
 * of its id, as <output_dir>/ab/<job id>.<n>.<ext>: 256 folders, each made
 * once and then reused, so storing an output costs no mkdir (a folder per
 * job did: a tenth of genqd's time in the dispatch benchmark), and the
 * store's top level stays small. A million kept outputs are about 4,000
 * files per folder, which ext4 and XFS index. A file is written under a
 * temporary name in the same folder, .<job id>.<n>.XXXXXX, and renamed into
 * place when complete; a genqd killed meanwhile leaves only such names.
 *
 * Stores written before this layout have <job id>/<n>.<ext> paths; the paths
 * are kept in job_outputs, so those files are still served and removed. */
#ifndef GENQ_STORE_H
#define GENQ_STORE_H

#include <stdbool.h>
#include <stddef.h>

/* Longest relative path store_path writes, with its NUL. */
#define STORE_PATH_MAX 80

/* The path of output n of job_id relative to the store: "ab/<id>.<n>.<ext>".
 * 0, or -1 when job_id is not a UUID or ext does not fit. */
int store_path(const char *job_id, size_t n, const char *ext, char *out, size_t len);

/* Create the temporary file for output n of job_id, making its shard folder
 * if need be, readable by others (nginx may run as another user). Its path
 * goes to tmp_path. The descriptor, or -1 with errno set. */
int store_open_temp(const char *output_dir, const char *job_id, size_t n, char *tmp_path,
    size_t len);

/* Is name a temporary file that store_open_temp made for job_id? */
bool store_is_temp_of(const char *name, const char *job_id);

/* Remove every temporary file of job_id (a killed genqd's), in its shard
 * and in the old layout's job folder. How many were removed. */
int store_remove_temps(const char *output_dir, const char *job_id);

/* fsync the folder that holds output path rel (after a rename into it). */
void store_sync_folder(const char *output_dir, const char *rel);

/* May retention remove the folder that held rel once it is empty? Only a
 * job folder of the old layout: shards are shared and stay. */
bool store_folder_is_the_jobs(const char *rel);

#endif
