#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "ctl.h"
#include "db.h"

#ifndef PKGDATADIR
#define PKGDATADIR "/usr/local/share/genq"
#endif

#define MIG_MAX_FILE_BYTES (16L << 20)
#define MIG_MAX_FILES 1000

static const char SQL_CREATE_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INT NOT NULL PRIMARY KEY,"
    " name VARCHAR(255) NOT NULL,"
    " applied_at DATETIME(6) NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
static const char SQL_APPLIED[] =
    "SELECT version FROM schema_migrations ORDER BY version";
static const char SQL_RECORD[] =
    "INSERT INTO schema_migrations (version, name, applied_at) "
    "VALUES (?, ?, UTC_TIMESTAMP(6))";

/* A migration file found in the directory. */
struct mig_file {
	int version;
	char *file;         /* "001_init.sql", owned */
};

static bool
is_blank_or_comment(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	return i == len || (len - i >= 2 && line[i] == '-' && line[i + 1] == '-');
}

/* Length of text without trailing whitespace. */
static size_t
trimmed_len(const char *line, size_t len)
{
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' ||
	    line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	return len;
}

void
mig_free(struct mig_stmt *stmts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(stmts[i].sql);
	free(stmts);
}

/* Move the statement collected in cur into the array (without its ';'). */
static int
push_stmt(struct buf *cur, int line, struct mig_stmt **out, size_t *n, size_t *cap)
{
	size_t len;
	char *sql;

	len = trimmed_len(cur->data, cur->len);
	if (len > 0 && cur->data[len - 1] == ';')
		len--;
	len = trimmed_len(cur->data, len);
	cur->data[len] = '\0';
	cur->len = len;
	if (len == 0)
		return 0;         /* a lone ';' */
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct mig_stmt *p = realloc(*out, ncap * sizeof *p);
		if (p == NULL)
			return -1;
		*out = p;
		*cap = ncap;
	}
	if ((sql = buf_steal(cur, NULL)) == NULL)
		return -1;
	(*out)[*n].sql = sql;
	(*out)[*n].line = line;
	(*n)++;
	return 0;
}

int
mig_split(const char *text, size_t len, struct mig_stmt **out, size_t *nout,
    char *err, size_t errlen)
{
	struct mig_stmt *stmts = NULL;
	size_t n = 0, cap = 0, pos = 0;
	struct buf cur;
	int lineno = 0, start = 0, rc = -1;

	buf_init(&cur, 0);
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos, tl;

		pos += llen + (nl != NULL);
		lineno++;
		if (memchr(line, '\0', llen) != NULL) {
			snprintf(err, errlen, "line %d: NUL byte", lineno);
			goto out;
		}
		if (is_blank_or_comment(line, llen))
			continue;
		if (cur.len == 0)
			start = lineno;
		tl = trimmed_len(line, llen);
		if (buf_append(&cur, line, tl) < 0 || buf_append(&cur, "\n", 1) < 0)
			goto nomem;
		if (line[tl - 1] == ';' && push_stmt(&cur, start, &stmts, &n, &cap) < 0)
			goto nomem;
	}
	if (cur.len > 0) {
		snprintf(err, errlen, "line %d: statement does not end with ';'", start);
		goto out;
	}
	*out = stmts;
	*nout = n;
	stmts = NULL;
	n = 0;
	rc = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	buf_free(&cur);
	mig_free(stmts, n);
	return rc;
}

int
mig_parse_name(const char *file, int *version)
{
	const char *p = file;
	long v = 0;
	size_t n = strlen(file);

	if (n < 7 || strcmp(file + n - 4, ".sql") != 0)
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (p - file >= 9)
			return -1;
	}
	if (p == file || *p != '_' || p + 1 == file + n - 4)
		return -1;
	for (p++; p < file + n - 4; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && *p != '_' && *p != '-' && *p != '.')
			return -1;
	*version = (int)v;
	return 0;
}

static int
cmp_file(const void *a, const void *b)
{
	const struct mig_file *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

static void
files_free(struct mig_file *files, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(files[i].file);
	free(files);
}

/* The numbered .sql files of dir in version order; others are ignored. */
static int
list_files(const char *dir, struct mig_file **out, size_t *nout)
{
	struct mig_file *files = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d = opendir(dir);
	int rc = CTL_FAIL;

	if (d == NULL)
		return ctl_fail("migrations directory %s: %s", dir, strerror(errno));
	files = calloc(MIG_MAX_FILES, sizeof *files);
	if (files == NULL) {
		ctl_fail("out of memory");
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		int version;

		if (mig_parse_name(de->d_name, &version) < 0)
			continue;
		if (n == MIG_MAX_FILES) {
			ctl_fail("%s: more than %d migrations", dir, MIG_MAX_FILES);
			goto out;
		}
		if ((files[n].file = strdup(de->d_name)) == NULL) {
			ctl_fail("out of memory");
			goto out;
		}
		files[n++].version = version;
	}
	qsort(files, n, sizeof *files, cmp_file);
	for (size_t i = 1; i < n; i++) {
		if (files[i].version == files[i - 1].version) {
			ctl_fail("%s: %s and %s have the same version", dir,
			    files[i - 1].file, files[i].file);
			goto out;
		}
	}
	*out = files;
	*nout = n;
	files = NULL;
	n = 0;
	rc = CTL_OK;
out:
	files_free(files, n);
	closedir(d);
	return rc;
}

/* Read a whole file (bounded) into a NUL-terminated string the caller frees. */
static int
read_file(const char *path, char **text, size_t *len)
{
	struct buf b;
	char chunk[8192];
	size_t got;
	FILE *f = fopen(path, "r");
	int rc = CTL_FAIL;

	if (f == NULL)
		return ctl_fail("%s: %s", path, strerror(errno));
	buf_init(&b, MIG_MAX_FILE_BYTES);
	while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (buf_append(&b, chunk, got) < 0) {
			ctl_fail("%s: larger than %ld bytes", path, MIG_MAX_FILE_BYTES);
			goto out;
		}
	}
	if (ferror(f)) {
		ctl_fail("%s: read error", path);
		goto out;
	}
	*len = b.len;
	if ((*text = buf_steal(&b, NULL)) == NULL)
		*text = strdup("");
	if (*text == NULL) {
		ctl_fail("out of memory");
		goto out;
	}
	rc = CTL_OK;
out:
	buf_free(&b);
	fclose(f);
	return rc;
}

static int
record_version(struct db *db, const struct mig_file *f)
{
	struct db_stmt *st = db_prepare(db, SQL_RECORD);
	const char *name = strchr(f->file, '_') + 1;

	if (st == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, f->version);
	db_bind_text(st, 1, name, strlen(name) - 4);
	return db_exec(st);
}

/* Run every statement of one file, then record its version. DDL commits
 * implicitly in MariaDB, so a file is not atomic: a failure names the
 * statement so the operator can repair and run migrate again. */
static int
apply_file(struct db *db, const char *dir, const struct mig_file *f)
{
	struct mig_stmt *stmts = NULL;
	size_t n = 0, len = 0;
	char *path = NULL, *text = NULL, err[256];
	int rc = CTL_FAIL, st;

	if (asprintf(&path, "%s/%s", dir, f->file) < 0) {
		path = NULL;
		return ctl_fail("out of memory");
	}
	if (read_file(path, &text, &len) != CTL_OK)
		goto out;
	if (mig_split(text, len, &stmts, &n, err, sizeof err) < 0) {
		ctl_fail("%s: %s", path, err);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (db_exec_once(db, stmts[i].sql) != DB_OK) {
			ctl_fail("%s line %d: %s (statements before it were applied)",
			    f->file, stmts[i].line, db_error(db));
			goto out;
		}
	}
	if ((st = record_version(db, f)) != DB_OK) {
		ctl_fail_db(db, st);
		goto out;
	}
	printf("applied %s (%zu statements)\n", f->file, n);
	rc = CTL_OK;
out:
	mig_free(stmts, n);
	free(text);
	free(path);
	return rc;
}

/* --baseline: the file's schema is already there (loaded by hand); record it. */
static int
baseline_file(struct db *db, const struct mig_file *f)
{
	int st = record_version(db, f);

	if (st != DB_OK)
		return ctl_fail_db(db, st);
	printf("recorded %s as applied (--baseline)\n", f->file);
	return CTL_OK;
}

/* The versions already applied, ascending. */
static int
applied_versions(struct db *db, int **out, size_t *nout)
{
	struct db_stmt *st;
	int *v = NULL, rc;
	size_t n = 0, cap = 0;

	if ((rc = db_exec_simple(db, SQL_CREATE_TABLE)) != DB_OK)
		return ctl_fail_db(db, rc);
	if ((st = db_prepare(db, SQL_APPLIED)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	if ((rc = db_exec(st)) != DB_OK)
		return ctl_fail_db(db, rc);
	while ((rc = db_next(st)) == 1) {
		if (n == cap) {
			int *p = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof *p);
			if (p == NULL) {
				free(v);
				return ctl_fail("out of memory");
			}
			v = p;
		}
		v[n++] = (int)db_i64(st, 0);
	}
	if (rc < 0) {
		free(v);
		return ctl_fail_db(db, rc);
	}
	*out = v;
	*nout = n;
	return CTL_OK;
}

static bool
contains(const int *v, size_t n, int x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static int
run_migrate(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sql-dir", required_argument, NULL, 'd' },
		{ "baseline", required_argument, NULL, 'b' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	const char *dir = NULL;
	long baseline = 0;
	struct mig_file *files = NULL;
	size_t nfiles = 0, napplied = 0, done = 0;
	int *applied = NULL, c, rc, latest = 0;
	struct db *db;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		if (c == 'd')
			dir = optarg;
		else if (c != 'b')
			return ctl_getopt_status(c);
		else if (ctl_parse_int("--baseline", optarg, 1, 999999999, &baseline) != CTL_OK)
			return CTL_FAIL;
	}
	if (ctl_operands(cmd, argc, 0, 0) != CTL_OK)
		return CTL_FAIL;
	if (dir == NULL)
		dir = getenv("GENQ_SQL_DIR");
	if (dir == NULL || *dir == '\0')
		dir = PKGDATADIR "/sql";

	if ((rc = list_files(dir, &files, &nfiles)) != CTL_OK)
		return rc;
	rc = CTL_FAIL;
	if (nfiles == 0) {
		ctl_fail("no migrations (NNN_name.sql) in %s", dir);
		goto out;
	}
	if ((db = ctl_db(ctl)) == NULL)
		goto out;
	if (applied_versions(db, &applied, &napplied) != CTL_OK)
		goto out;
	for (size_t i = 0; i < nfiles; i++) {
		const struct mig_file *f = &files[i];

		latest = f->version;
		if (contains(applied, napplied, f->version))
			continue;
		if ((f->version <= baseline ? baseline_file(db, f) : apply_file(db, dir, f)) != CTL_OK)
			goto out;
		done++;
	}
	if (napplied > 0 && applied[napplied - 1] > latest)
		latest = applied[napplied - 1];
	if (done == 0)
		printf("schema is current (version %d)\n", latest);
	else
		printf("schema is at version %d\n", latest);
	rc = CTL_OK;
out:
	free(applied);
	files_free(files, nfiles);
	return rc;
}

const struct ctl_cmd migrate_cmd = {
	"migrate", run_migrate, "migrate [--sql-dir DIR] [--baseline N]",
	"Apply the schema migrations (NNN_name.sql) not yet applied, in order.",
	"  --sql-dir DIR   where the migrations are (default: $GENQ_SQL_DIR, else " PKGDATADIR "/sql)\n"
	"  --baseline N    record migrations up to version N as applied without running them\n"
	"                  (a database whose schema was loaded by hand)\n",
	NULL, 0,
};
