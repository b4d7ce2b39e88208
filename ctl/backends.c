#include "autoconf.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "jobadmin.h"

#define BACKEND_MAX_QUEUES 32
#define BACKEND_URL_MAX 1024

static const char SQL_INSERT[] =
    "INSERT INTO backends (name, type, url, max_running, prefetch, created_at)"
    " VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))";
static const char SQL_ADD_QUEUE[] =
    "INSERT INTO backend_queues (backend_id, queue) VALUES (?, ?)";
static const char SQL_LOCK[] =
    "SELECT id FROM backends WHERE name = ? FOR UPDATE";
static const char SQL_RUNNING[] =
    "SELECT COUNT(*) FROM jobs WHERE status = 'running' AND backend_id = ?";
static const char SQL_DELETE_QUEUES[] =
    "DELETE FROM backend_queues WHERE backend_id = ?";
static const char SQL_DELETE[] =
    "DELETE FROM backends WHERE id = ?";
static const char SQL_LIST[] =
    "SELECT b.name, b.type, b.url,"
    " (SELECT GROUP_CONCAT(q.queue ORDER BY q.queue SEPARATOR ',')"
    "   FROM backend_queues q WHERE q.backend_id = b.id),"
    " (SELECT COUNT(*) FROM jobs j WHERE j.status = 'running' AND j.backend_id = b.id),"
    " b.max_running, b.prefetch, b.healthy, b.draining,"
    " IF(b.lease_until > UTC_TIMESTAMP(6), b.lease_owner, NULL), b.last_ok_at"
    " FROM backends b ORDER BY b.name";

int
backends_check_url(const char *url, char **out)
{
	CURLU *h = curl_url();
	char *scheme = NULL, *host = NULL, *query = NULL, *frag = NULL, *norm = NULL;
	const char *why = NULL;
	size_t n;
	int rc = CTL_FAIL;

	if (h == NULL)
		return ctl_fail("out of memory");
	if (strlen(url) > BACKEND_URL_MAX)
		why = "longer than 1024 bytes";
	else if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK)
		why = "not an absolute URL";
	else if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		why = "only http and https are allowed";
	else if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0')
		why = "no host";
	else if (curl_url_get(h, CURLUPART_QUERY, &query, 0) != CURLUE_NO_QUERY ||
	    curl_url_get(h, CURLUPART_FRAGMENT, &frag, 0) != CURLUE_NO_FRAGMENT)
		why = "a base URL takes no query or fragment";
	else if (curl_url_get(h, CURLUPART_URL, &norm, 0) != CURLUE_OK)
		why = "cannot be normalized";
	if (why != NULL) {
		ctl_fail("--url: '%.200s': %s", url, why);
		goto out;
	}
	for (n = strlen(norm); n > 0 && norm[n - 1] == '/'; n--)
		norm[n - 1] = '\0';
	if ((*out = strdup(norm)) == NULL) {
		ctl_fail("out of memory");
		goto out;
	}
	rc = CTL_OK;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(query);
	curl_free(frag);
	curl_free(norm);
	curl_url_cleanup(h);
	return rc;
}

struct backend_add {
	const char *name, *type;
	char *url;
	long max_running, prefetch;
	char *queues[BACKEND_MAX_QUEUES];
	size_t nqueues;
	char why[160];
};

/* Split "a,b" into add->queues (pointers into list, which is modified). */
static int
parse_queues(struct backend_add *add, char *list)
{
	char *save = NULL;

	for (char *q = strtok_r(list, ",", &save); q != NULL; q = strtok_r(NULL, ",", &save)) {
		bool dup = false;

		if (ctl_check_queue(q) != CTL_OK)
			return CTL_FAIL;
		for (size_t i = 0; i < add->nqueues; i++)
			dup = dup || strcmp(add->queues[i], q) == 0;
		if (dup)
			continue;
		if (add->nqueues == BACKEND_MAX_QUEUES)
			return ctl_fail("--queues: at most %d queues", BACKEND_MAX_QUEUES);
		add->queues[add->nqueues++] = q;
	}
	if (add->nqueues == 0)
		return ctl_fail("--queues: name at least one queue");
	return CTL_OK;
}

static int
add_txn(struct db *db, void *arg)
{
	struct backend_add *add = arg;
	struct db_stmt *st;
	uint64_t id;
	int rc;

	for (size_t i = 0; i < add->nqueues; i++) {
		if ((rc = queues_exists(db, add->queues[i])) < 0)
			return rc;
		if (rc == 0) {
			snprintf(add->why, sizeof add->why, "unknown queue '%s' (see 'genqctl queue list')",
			    add->queues[i]);
			return 1;
		}
	}
	if ((st = db_prepare(db, SQL_INSERT)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, add->name);
	db_bind_str(st, 1, add->type);
	db_bind_str(st, 2, add->url);
	db_bind_i64(st, 3, add->max_running);
	db_bind_i64(st, 4, add->prefetch);
	if ((rc = db_exec(st)) == DB_DUP) {
		snprintf(add->why, sizeof add->why, "backend '%s' already exists", add->name);
		return 1;
	}
	if (rc != DB_OK)
		return rc;
	id = db_insert_id(st);
	for (size_t i = 0; i < add->nqueues; i++) {
		if ((st = db_prepare(db, SQL_ADD_QUEUE)) == NULL)
			return db_last_status(db);
		db_bind_i64(st, 0, (int64_t)id);
		db_bind_str(st, 1, add->queues[i]);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
	}
	return DB_OK;
}

static int
run_add(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "url", required_argument, NULL, 'u' },
		{ "queues", required_argument, NULL, 'q' },
		{ "max-running", required_argument, NULL, 'm' },
		{ "prefetch", required_argument, NULL, 'p' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	struct backend_add add = { .max_running = 1, .prefetch = 1 };
	const char *url = NULL;
	char *queues = NULL;
	struct db *db;
	int c, rc = CTL_FAIL;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		switch (c) {
		case 't': add.type = optarg; break;
		case 'u': url = optarg; break;
		case 'q': queues = optarg; break;
		case 'm':
			if (ctl_parse_int("--max-running", optarg, 1, 1000, &add.max_running) != CTL_OK)
				return CTL_FAIL;
			break;
		case 'p':
			if (ctl_parse_int("--prefetch", optarg, 0, 1000, &add.prefetch) != CTL_OK)
				return CTL_FAIL;
			break;
		default:
			return ctl_getopt_status(c);
		}
	}
	if (ctl_operands(cmd, argc, 1, 1) != CTL_OK)
		return CTL_FAIL;
	add.name = argv[optind];
	if (add.type == NULL || url == NULL || queues == NULL)
		return ctl_fail("backend add: --type, --url and --queues are required");
	if (strcmp(add.type, "comfyui") != 0 && strcmp(add.type, "openai") != 0)
		return ctl_fail("--type: '%.32s' is not comfyui or openai", add.type);
	if (ctl_check_backend(add.name) != CTL_OK || parse_queues(&add, queues) != CTL_OK ||
	    backends_check_url(url, &add.url) != CTL_OK)
		return CTL_FAIL;
	if ((db = ctl_db(ctl)) == NULL)
		goto out;
	rc = db_txn(db, add_txn, &add);
	if (rc > 0)
		rc = ctl_fail("%s", add.why);
	else if (rc != DB_OK)
		rc = ctl_fail_db(db, rc);
	else
		printf("backend %s added (%s %s)\n", add.name, add.type, add.url);
out:
	free(add.url);
	return rc;
}

static int
run_drain(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "undrain", no_argument, NULL, 'u' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	bool drain = strcmp(cmd->name, "drain") == 0;
	const char *name;
	struct db *db;
	int c, rc;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		if (c != 'u')
			return ctl_getopt_status(c);
		drain = false;
	}
	if (ctl_operands(cmd, argc, 1, 1) != CTL_OK)
		return CTL_FAIL;
	name = argv[optind];
	if (ctl_check_backend(name) != CTL_OK || (db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	/* The admin API's drain and undrain do exactly this (lib/jobadmin.c). */
	rc = jobadmin_backend_drain(db, name, drain);
	if (rc == JOBADMIN_NOT_FOUND)
		return ctl_fail("unknown backend '%s'", name);
	if (rc != DB_OK)
		return ctl_fail_db(db, rc);
	printf("backend %s %s\n", name, drain ?
	    "draining: it takes no new jobs and finishes those it has" : "takes jobs again");
	return CTL_OK;
}

struct backend_remove {
	const char *name;
	bool force;
	int64_t running;
	char why[160];
};

static int
remove_txn(struct db *db, void *arg)
{
	struct backend_remove *br = arg;
	struct db_stmt *st;
	int64_t id;
	int rc;

	if ((st = db_prepare(db, SQL_LOCK)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, br->name);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0)
		return rc;
	if (rc == 0) {
		snprintf(br->why, sizeof br->why, "unknown backend '%s'", br->name);
		return 1;
	}
	id = db_i64(st, 0);
	if ((st = db_prepare(db, SQL_RUNNING)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, id);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	br->running = db_i64(st, 0);
	if (br->running > 0 && !br->force) {
		snprintf(br->why, sizeof br->why, "backend '%s' has %lld running jobs: "
		    "drain it and wait, or remove it with --force", br->name, (long long)br->running);
		return 1;
	}
	if ((st = db_prepare(db, SQL_DELETE_QUEUES)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, id);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if ((st = db_prepare(db, SQL_DELETE)) == NULL)
		return db_last_status(db);
	db_bind_i64(st, 0, id);
	return db_exec(st);
}

static int
run_remove(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	struct backend_remove br = { 0 };
	int c;

	while ((c = ctl_getopt(cmd, argc, argv, opts)) != -1) {
		if (c != 'f')
			return ctl_getopt_status(c);
		br.force = true;
	}
	if (ctl_operands(cmd, argc, 1, 1) != CTL_OK)
		return CTL_FAIL;
	br.name = argv[optind];
	if (ctl_check_backend(br.name) != CTL_OK ||
	    ctl_txn(ctl, remove_txn, &br, br.why) != CTL_OK)
		return CTL_FAIL;
	if (br.running > 0)
		printf("backend %s removed; genqd's recovery takes over its %lld running jobs\n",
		    br.name, (long long)br.running);
	else
		printf("backend %s removed\n", br.name);
	return CTL_OK;
}

static void
list_row(struct db_stmt *st, const char **cell, char (*buf)[32])
{
	cell[0] = db_text(st, 0, NULL);
	cell[1] = db_text(st, 1, NULL);
	cell[2] = db_text(st, 2, NULL);
	cell[3] = db_text(st, 3, NULL);
	snprintf(buf[4], 32, "%lld/%lld+%lld", (long long)db_i64(st, 4),
	    (long long)db_i64(st, 5), (long long)db_i64(st, 6));
	cell[4] = buf[4];
	cell[5] = db_i64(st, 7) ? "yes" : "no";
	cell[6] = db_i64(st, 8) ? "yes" : "no";
	cell[7] = db_text(st, 9, NULL);
	cell[8] = tbl_time(buf[8], db_text(st, 10, NULL));
}

static int
run_list(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	static const char *const header[] = {
		"NAME", "TYPE", "URL", "QUEUES", "RUNNING/MAX+PREFETCH", "HEALTHY", "DRAINING",
		"LEASE OWNER", "LAST OK",
	};

	return ctl_list_verb(ctl, cmd, argc, argv, SQL_LIST, CTL_NSUBS(header), header, list_row);
}

static const struct ctl_cmd subs[] = {
	{ "add", run_add,
	  "backend add NAME --type comfyui|openai --url URL --queues Q1,Q2 [--max-running N] [--prefetch N]",
	  "Register a GPU server and the queues it serves.",
	  "  --type T         comfyui (ComfyUI HTTP API) or openai (OpenAI-compatible API)\n"
	  "  --url URL        its base URL, http:// or https://\n"
	  "  --queues Q1,Q2   queues it serves (they must exist)\n"
	  "  --max-running N  jobs it runs at once (default 1)\n"
	  "  --prefetch N     jobs handed to it ahead of time (default 1)\n", NULL, 0 },
	{ "list", run_list, "backend list",
	  "List backends: queues, jobs in flight, health, draining, which genqd drives it.",
	  NULL, NULL, 0 },
	{ "drain", run_drain, "backend drain NAME [--undrain]",
	  "Stop giving a backend new jobs (--undrain: give it jobs again).",
	  "  --undrain  undo a drain (same as 'backend resume')\n", NULL, 0 },
	{ "resume", run_drain, "backend resume NAME", "Undo a drain.", NULL, NULL, 0 },
	{ "remove", run_remove, "backend remove NAME [--force]",
	  "Delete a backend; refused while it runs jobs unless --force.",
	  "  --force  remove it even with running jobs (genqd recovers them)\n", NULL, 0 },
};

const struct ctl_cmd backend_cmd = {
	"backend", NULL, "backend add|list|drain|resume|remove ...", "Manage backends.", NULL,
	subs, CTL_NSUBS(subs),
};
