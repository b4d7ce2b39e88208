/* retention: outputs older than the retention period (SPEC §6; [storage]
 * retention_days or retention_s) are deleted and their rows say so
 * (job_outputs.deleted_at; a text output's text is cleared too). The age
 * counts from the output row's created_at, written in the transaction that
 * ends the job, so it is the time since the job finished.
 *
 * The file goes first, then the row is marked: a crash in between leaves a
 * row whose file is already gone, and the next pass marks it (a missing
 * file counts as deleted). Marking first could leave a file nobody would
 * ever delete. Batches are bounded and walk an index (deleted_at,
 * created_at), oldest first; several genqd may run this side by side. */
#include "autoconf.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "genqd.h"
#include "store.h"

static const char SQL_EXPIRED_OUTPUTS[] =
    "SELECT o.job_seq, o.idx, o.kind, o.path, j.id FROM job_outputs o "
    "JOIN jobs j ON j.seq = o.job_seq "
    "WHERE o.deleted_at IS NULL AND o.created_at < UTC_TIMESTAMP(6) - INTERVAL ? SECOND "
    "ORDER BY o.created_at LIMIT 100";
static const char SQL_MARK_DELETED[] =
    "UPDATE job_outputs SET deleted_at = UTC_TIMESTAMP(6), text = NULL "
    "WHERE job_seq = ? AND idx = ? AND deleted_at IS NULL";

#define US_PER_S 1000000LL
#define RETENTION_EVERY_US (5 * US_PER_S)
#define RETENTION_BATCH 100

struct old_output {
	uint64_t seq;
	int64_t idx;
	bool file;
	char path[512];
	char job_id[GQ_UUID_LEN];
};

/* Paths are genqd's own (store.h); never follow anything else. */
static bool
safe_path(const char *p)
{
	if (*p == '\0' || *p == '/' || strstr(p, "..") != NULL)
		return false;
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-' || *p == '/'))
			return false;
	return true;
}

/* Remove one stored file, then its job's folder if that is now empty.
 * 0 when the file is gone (or never was), -1 when it is still there. */
static int
remove_file(const struct genqd *g, const struct old_output *o)
{
	char full[PATH_MAX], dir[PATH_MAX];

	if (!safe_path(o->path)) {
		log_error("retention_path_refused", "job=%s index=%lld", o->job_id, (long long)o->idx);
		return 0;       /* nothing genqd would have written: just mark the row */
	}
	if ((size_t)snprintf(full, sizeof full, "%s/%s", g->cfg->output_dir, o->path) >= sizeof full)
		return -1;
	if (unlink(full) < 0 && errno != ENOENT) {
		log_warn("retention_unlink_failed", "job=%s index=%lld error=\"%s\"", o->job_id,
		    (long long)o->idx, strerror(errno));
		return -1;
	}
	snprintf(dir, sizeof dir, "%s", full);
	/* An old layout's job folder (store.h), best effort: fails
	 * (ENOTEMPTY) while other outputs of the job remain. */
	if (store_folder_is_the_jobs(o->path))
		(void)rmdir(dirname(dir));
	return 0;
}

/* One batch; returns how many rows it looked at, or -1 on a db error. */
static int
retention_batch(struct genqd *g, long keep_s)
{
	struct old_output *rows = calloc(RETENTION_BATCH, sizeof *rows);
	struct db_stmt *st;
	size_t n = 0, deleted = 0;
	int rc, result = -1;

	if (rows == NULL)
		return -1;
	if ((st = db_prepare(g->db, SQL_EXPIRED_OUTPUTS)) == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "retention");
		goto out;
	}
	db_bind_i64(st, 0, keep_s);
	if ((rc = db_exec(st)) != DB_OK) {
		gqd_db_failed(g, rc, "retention");
		goto out;
	}
	while (n < RETENTION_BATCH && (rc = db_next(st)) == 1) {
		const char *kind = db_text(st, 2, NULL), *path = db_text(st, 3, NULL);
		const char *id = db_text(st, 4, NULL);

		rows[n].seq = (uint64_t)db_i64(st, 0);
		rows[n].idx = db_i64(st, 1);
		rows[n].file = kind != NULL && strcmp(kind, "file") == 0 && path != NULL;
		snprintf(rows[n].path, sizeof rows[n].path, "%s", path ? path : "");
		snprintf(rows[n].job_id, sizeof rows[n].job_id, "%s", id ? id : "");
		n++;
	}
	if (rc < 0) {
		gqd_db_failed(g, rc, "retention");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (rows[i].file && remove_file(g, &rows[i]) < 0)
			continue;
		/* Autocommit: each row on its own, a conditional update. */
		if ((st = db_prepare(g->db, SQL_MARK_DELETED)) == NULL) {
			gqd_db_failed(g, db_last_status(g->db), "retention");
			goto out;
		}
		db_bind_i64(st, 0, (int64_t)rows[i].seq);
		db_bind_i64(st, 1, rows[i].idx);
		if ((rc = db_exec(st)) != DB_OK) {
			gqd_db_failed(g, rc, "retention");
			goto out;
		}
		if (db_affected_rows(st) == 1) {
			deleted++;
			log_debug("output_deleted", "job=%s index=%lld", rows[i].job_id,
			    (long long)rows[i].idx);
		}
	}
	if (deleted > 0)
		log_info("retention_deleted", "outputs=%zu retention_s=%ld", deleted, keep_s);
	result = (int)n;
out:
	free(rows);
	return result;
}

void
retention_tick(struct genqd *g, int64_t now)
{
	long keep_s = config_retention_s(g->cfg);
	int n;

	if (keep_s <= 0 || now < g->retention_at || !gqd_db_ready(g))
		return;
	g->retention_at = now + RETENTION_EVERY_US;
	n = retention_batch(g, keep_s);
	/* A full batch: more may be right behind it; come back at the next tick. */
	if (n == RETENTION_BATCH)
		g->retention_at = now;
}
