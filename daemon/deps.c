/* deps: genqd's half of `after` dependencies (lib/deps.h has the rules).
 *
 * Resolution: every tick, waiting jobs whose parents all succeeded become
 * queued, and waiting jobs with a parent that failed, was canceled or
 * expired end failed (dependency_failed) with their hold released. Each is
 * a conditional update in one transaction with its event (and ledger row),
 * so any genqd may do it, twice is harmless, and a crash loses nothing: the
 * state is the rows. A failure frees the next level of a chain, so a tick
 * repeats (a few rounds) while it fails jobs.
 *
 * Parent outputs: before a child's prompt goes to its backend, every
 * "genq:after/<i>/outputs/<n>" string in its input is replaced: a text
 * output by its text; a file, on a ComfyUI backend, by the name under which
 * POST /upload/image stored it there, and on an OpenAI-compatible backend
 * (no uploads) by a data URL of its bytes. Uploads go one at a time as r's
 * request in flight, so a cancel or timeout (http_cancel of r->req) stops
 * them. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "comfy.h"
#include "config.h"
#include "db.h"
#include "deps.h"
#include "genqd.h"
#include "http.h"
#include "jobevent.h"
#include "jsonutil.h"
#include "ledger.h"

/* Waiting jobs that can move now: all parents succeeded, or one is lost. */
static const char SQL_RESOLVABLE[] =
    "SELECT c.seq, c.user_id, c.cost_held, c.id, c.queue, "
    " SUM(p.status IN ('failed','canceled','expired')), "
    " MIN(CASE WHEN p.status IN ('failed','canceled','expired') "
    "     THEN CONCAT(LPAD(d.pos, 2, '0'), ' ', p.status, ' ', p.id) END) "
    "FROM jobs c JOIN job_deps d ON d.child = c.seq JOIN jobs p ON p.seq = d.parent "
    "WHERE c.status = 'waiting' "
    "GROUP BY c.seq, c.user_id, c.cost_held, c.id, c.queue "
    "HAVING SUM(p.status IN ('failed','canceled','expired')) > 0 "
    "    OR SUM(p.status <> 'succeeded') = 0 "
    "LIMIT 100";
/* Is any job waiting? Asked before the transaction: most passes find none
 * (along an index led by status: jobs_finished or jobs_expiry), and then
 * cost one round trip, not three. */
static const char SQL_ANY_WAITING[] =
    "SELECT 1 FROM jobs WHERE status = 'waiting' LIMIT 1";
/* The time to live counts from here: a job is not queued while it waits. */
static const char SQL_TO_QUEUED[] =
    "UPDATE jobs SET status = 'queued', not_before = GREATEST(not_before, UTC_TIMESTAMP(6)) "
    "WHERE seq = ? AND status = 'waiting'";
static const char SQL_TO_FAILED[] =
    "UPDATE jobs SET status = 'failed', finished_at = UTC_TIMESTAMP(6), cost_charged = 0, "
    "cost_refunded = cost_held, error_code = 'dependency_failed', error_message = ?, "
    "error_retryable = 0, progress = NULL WHERE seq = ? AND status = 'waiting'";
/* One referenced output of a parent (no output row: no such output). */
static const char SQL_PARENT_OUTPUT[] =
    "SELECT p.id, o.kind, o.path, o.content_type, o.text, o.deleted_at, o.idx "
    "FROM job_deps d JOIN jobs p ON p.seq = d.parent "
    "LEFT JOIN job_outputs o ON o.job_seq = p.seq AND o.idx = ? "
    "WHERE d.child = ? AND d.pos = ?";

#define DEPS_BATCH 100
#define DEPS_EVERY_US 1000000LL
#define DEPS_GAP_US 20000LL          /* at most 50 passes a second when busy */
#define DEPS_ROUNDS 8               /* chain levels failed in one tick */
#define UPLOAD_REPLY_MAX (64u << 10)
#define UPLOAD_SUBFOLDER "genq"
#define UPLOAD_NAME_MAX 255

/* ---- resolution ---------------------------------------------------- */

struct dep_row {
	uint64_t seq, user;
	int64_t held;
	bool broken, done;
	char id[GQ_UUID_LEN];
	char queue[33];
	char why[160];
};

struct resolve {
	struct genqd *g;
	struct dep_row rows[DEPS_BATCH];
	size_t n, queued, failed;
};

/* "00 failed <uuid>" -> the message of a dependency failure. */
static void
broken_reason(char *out, size_t len, const char *first)
{
	unsigned pos = 0;
	char status[16] = "", id[GQ_UUID_LEN] = "";

	if (first == NULL || sscanf(first, "%2u %15s %36s", &pos, status, id) != 3) {
		snprintf(out, len, "a job in after did not succeed");
		return;
	}
	snprintf(out, len, "after[%u] (job %s) %s", pos, id,
	    strcmp(status, "canceled") == 0 ? "was canceled" : status);
}

static int
resolve_row(struct db *db, struct resolve *rs, struct dep_row *row)
{
	struct db_stmt *st;
	int rc;

	if (!row->broken) {
		if ((st = db_prepare(db, SQL_TO_QUEUED)) == NULL)
			return db_last_status(db);
		db_bind_i64(st, 0, (int64_t)row->seq);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
		if (db_affected_rows(st) != 1)
			return DB_OK;                /* another genqd, or a cancel, was first */
		if ((rc = job_event_add(db, row->seq, "waiting", "queued", rs->g->actor,
		    "every job in after succeeded", 0, 0)) != DB_OK)
			return rc;
		row->done = true;
		rs->queued++;
		return DB_OK;
	}
	if ((st = db_prepare(db, SQL_TO_FAILED)) == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, row->why);
	db_bind_i64(st, 1, (int64_t)row->seq);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	if (db_affected_rows(st) != 1)
		return DB_OK;
	if (row->held > 0 &&
	    (rc = ledger_apply(db, row->user, row->seq, "release", row->held, rs->g->actor,
	    "dependency failed: hold released")) != DB_OK)
		return rc < 0 ? rc : DB_ERR;
	if ((rc = job_event_add(db, row->seq, "waiting", "failed", rs->g->actor, row->why,
	    0, 0)) != DB_OK)
		return rc;
	row->done = true;
	rs->failed++;
	return DB_OK;
}

static int
resolve_txn(struct db *db, void *arg)
{
	struct resolve *rs = arg;
	struct db_stmt *st = db_prepare(db, SQL_RESOLVABLE);
	size_t n = 0;
	int rc;

	rs->n = rs->queued = rs->failed = 0;
	if (st == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while (n < DEPS_BATCH && (rc = db_next(st)) == 1) {
		struct dep_row *row = &rs->rows[n++];
		const char *id = db_text(st, 3, NULL), *queue = db_text(st, 4, NULL);

		row->seq = (uint64_t)db_i64(st, 0);
		row->user = (uint64_t)db_i64(st, 1);
		row->held = db_i64(st, 2);
		row->broken = db_i64(st, 5) > 0;
		row->done = false;
		snprintf(row->id, sizeof row->id, "%s", id ? id : "");
		snprintf(row->queue, sizeof row->queue, "%s", queue ? queue : "");
		row->why[0] = '\0';
		if (row->broken)
			broken_reason(row->why, sizeof row->why, db_text(st, 6, NULL));
	}
	if (rc < 0)
		return rc;
	rs->n = n;
	/* The result set is copied: the updates may use the connection now. */
	for (size_t i = 0; i < n; i++)
		if ((rc = resolve_row(db, rs, &rs->rows[i])) != DB_OK)
			return rc;
	return DB_OK;
}

/* False when no job waits (or the question failed: the next pass asks
 * again, and the failure is reported). */
static bool
any_waiting(struct genqd *g)
{
	struct db_stmt *st = db_prepare(g->db, SQL_ANY_WAITING);
	int rc;

	if (st == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "deps");
		return false;
	}
	if ((rc = db_exec(st)) == DB_OK && (rc = db_next(st)) == 1) {
		while ((rc = db_next(st)) == 1)
			;
		if (rc == 0)
			return true;
	}
	if (rc < 0)
		gqd_db_failed(g, rc, "deps");
	return false;
}

void
deps_tick(struct genqd *g, int64_t now)
{
	struct resolve *rs;
	int rc;

	/* Every second (another genqd or a handler may have ended a parent),
	 * and shortly after one of this genqd's jobs ended. */
	if (now < g->deps_at && !(g->deps_due && now >= g->deps_soonest))
		return;
	g->deps_due = false;
	g->deps_at = now + DEPS_EVERY_US;
	g->deps_soonest = now + DEPS_GAP_US;
	if (!any_waiting(g))
		return;
	if ((rs = calloc(1, sizeof *rs)) == NULL)
		return;
	rs->g = g;
	for (int round = 0; round < DEPS_ROUNDS && gqd_db_ready(g); round++) {
		if ((rc = db_txn(g->db, resolve_txn, rs)) != DB_OK) {
			gqd_db_failed(g, rc, "deps");
			break;
		}
		for (size_t i = 0; i < rs->n; i++) {
			struct dep_row *row = &rs->rows[i];

			if (!row->done)
				continue;
			if (row->broken)
				log_info("job_dependency_failed", "job=%s queue=%s backend=- attempt=0 why=\"%s\"",
				    row->id, row->queue, log_q(row->why));
			else
				log_info("job_released", "job=%s queue=%s backend=- attempt=0 from=waiting",
				    row->id, row->queue);
		}
		if (rs->queued > 0)
			claim_soon(g);
		/* Go on while a full batch may hide more, or a failure may have
		 * broken the next level of a chain. */
		if (rs->n < DEPS_BATCH && rs->failed == 0)
			break;
	}
	free(rs);
}

/* ---- parent outputs into the child's input ------------------------- */

struct dep_ref {
	unsigned parent, output;
	char *value;                    /* what the reference becomes; owned */
	char *file;                     /* absolute path of a file to upload; owned */
	char name[UPLOAD_NAME_MAX + 1]; /* the name to upload it as */
	char content_type[128];
};

struct upload {
	struct genqd *g;
	struct run *r;
	deps_submit_fn submit;
	struct json_object *root;       /* r's input, parsed; owned */
	struct dep_ref refs[DEPS_REFS_MAX];
	size_t n, next;                 /* next: the upload in flight */
};

static void
upload_free(struct upload *up)
{
	if (up == NULL)
		return;
	for (size_t i = 0; i < up->n; i++) {
		free(up->refs[i].value);
		free(up->refs[i].file);
	}
	json_object_put(up->root);
	free(up);
}

static void
upload_drop(void *arg)
{
	upload_free(arg);
}

static struct dep_ref *
find_ref(struct upload *up, unsigned parent, unsigned output)
{
	for (size_t i = 0; i < up->n; i++)
		if (up->refs[i].parent == parent && up->refs[i].output == output)
			return &up->refs[i];
	return NULL;
}

static int
collect_ref(struct json_object *str, int rc, unsigned parent, unsigned output, void *arg)
{
	struct upload *up = arg;
	struct dep_ref *ref;

	(void)str;
	/* Admission checked the input; a malformed one now is left alone. */
	if (rc < 0 || find_ref(up, parent, output) != NULL)
		return 0;
	if (up->n == DEPS_REFS_MAX)
		return 1;
	ref = &up->refs[up->n++];
	ref->parent = parent;
	ref->output = output;
	return 0;
}

static int
replace_ref(struct json_object *str, int rc, unsigned parent, unsigned output, void *arg)
{
	struct dep_ref *ref = rc > 0 ? find_ref(arg, parent, output) : NULL;

	if (ref != NULL && ref->value != NULL && json_object_set_string(str, ref->value) != 1)
		return 1;
	return 0;
}

/* Paths come from genqd's own rows ("<job id>/0.png"); refuse anything
 * that could leave the output directory all the same. */
static bool
safe_store_path(const char *p)
{
	if (p == NULL || *p == '\0' || *p == '/' || strstr(p, "..") != NULL)
		return false;
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-' || *p == '/'))
			return false;
	return true;
}

/* Fill ref from the parent's output row. 0, or -1 with why set (and
 * *retry when trying again later may help). */
static int
load_ref(struct genqd *g, struct run *r, struct dep_ref *ref, char *why, size_t len,
    bool *retry)
{
	struct db_stmt *st = db_prepare(g->db, SQL_PARENT_OUTPUT);
	const char *parent_id, *kind, *path, *ext;
	int rc;

	*retry = true;
	if (st == NULL) {
		gqd_db_failed(g, db_last_status(g->db), "deps_output");
		snprintf(why, len, "database unavailable");
		return -1;
	}
	db_bind_i64(st, 0, ref->output);
	db_bind_i64(st, 1, (int64_t)r->seq);
	db_bind_i64(st, 2, ref->parent);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) < 0) {
		gqd_db_failed(g, rc, "deps_output");
		snprintf(why, len, "database unavailable");
		return -1;
	}
	*retry = false;
	if (rc == 0) {
		snprintf(why, len, "after[%u] is not a parent of this job", ref->parent);
		return -1;
	}
	parent_id = db_text(st, 0, NULL);
	if (db_is_null(st, 6)) {
		snprintf(why, len, "after[%u] (job %s) has no output %u", ref->parent,
		    parent_id ? parent_id : "?", ref->output);
		return -1;
	}
	if (!db_is_null(st, 5)) {
		snprintf(why, len, "output %u of after[%u] (job %s) was deleted (retention)",
		    ref->output, ref->parent, parent_id ? parent_id : "?");
		return -1;
	}
	kind = db_text(st, 1, NULL);
	if (kind != NULL && strcmp(kind, "text") == 0) {
		const char *text = db_text(st, 4, NULL);
		if ((ref->value = strdup(text ? text : "")) == NULL)
			goto oom;
		return 0;
	}
	path = db_text(st, 2, NULL);
	if (!safe_store_path(path)) {
		snprintf(why, len, "output %u of after[%u] has no stored file", ref->output, ref->parent);
		return -1;
	}
	if (asprintf(&ref->file, "%s/%s", g->cfg->output_dir, path) < 0) {
		ref->file = NULL;
		goto oom;
	}
	ext = strrchr(path, '.');
	if (ext == NULL || strchr(ext, '/') != NULL)
		ext = "";
	/* One name per parent output: every child of the parent on this
	 * backend shares the file (overwrite: the bytes are the same). */
	snprintf(ref->name, sizeof ref->name, "%s-%u%.16s", parent_id ? parent_id : "x",
	    ref->output, ext);
	snprintf(ref->content_type, sizeof ref->content_type, "%s",
	    db_is_null(st, 3) ? "application/octet-stream" : db_text(st, 3, NULL));
	return 0;
oom:
	*retry = true;
	snprintf(why, len, "out of memory");
	return -1;
}

/* A name from the backend's reply: printable, no path tricks. */
static bool
sane_name(const char *s, bool empty_ok)
{
	size_t n = s ? strlen(s) : 0;

	if (s == NULL || (n == 0 && !empty_ok) || n > UPLOAD_NAME_MAX || strstr(s, "..") != NULL ||
	    *s == '/')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == '\\')
			return false;
	return true;
}

static void start_next(struct upload *up);

/* The prompt is ready: put the new input on r and submit it. */
static void
finish_uploads(struct upload *up)
{
	struct genqd *g = up->g;
	struct run *r = up->r;
	deps_submit_fn submit = up->submit;
	const char *text;
	size_t len;
	char *copy;

	if (deps_refs_walk(up->root, replace_ref, up) != 0 ||
	    (text = gq_json_text(up->root, &len)) == NULL || (copy = malloc(len + 1)) == NULL) {
		upload_free(up);
		run_fail(g, r, "output_error", true, "out of memory preparing the input");
		return;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	free(r->input);
	r->input = copy;
	r->input_len = len;
	r->deps_ready = true;
	run_log(info, "dependency_inputs_ready", r, " references=%zu", up->n);
	upload_free(up);
	submit(g, r);
}

static void
on_upload(const struct http_result *res, void *arg)
{
	struct upload *up = arg;
	struct genqd *g = up->g;
	struct run *r = up->r;
	struct dep_ref *ref = &up->refs[up->next];
	struct json_object *reply = NULL;
	const char *name, *subfolder;
	enum run_state before = r->state;
	char why[256];

	r->req = NULL;
	if (res->curl_code != 0 || res->status >= 500) {
		if (res->curl_code != 0)
			snprintf(why, sizeof why, "upload: %s", res->error);
		else
			snprintf(why, sizeof why, "upload: HTTP %ld", res->status);
		backend_failed(g, r->backend, why);
		upload_free(up);
		if (r->state == before)
			run_fail(g, r, "backend_error", true, "backend %s: %s", r->backend->name, why);
		return;
	}
	if (res->status == 200)
		reply = gq_json_parse(res->body, res->len, 8, NULL);
	name = reply ? gq_json_str(reply, "name") : NULL;
	subfolder = reply ? gq_json_str(reply, "subfolder") : NULL;
	if (subfolder == NULL)
		subfolder = "";
	if (!sane_name(name, false) || !sane_name(subfolder, true)) {
		json_object_put(reply);
		upload_free(up);
		run_fail(g, r, "backend_error", true, "backend %s: upload answered HTTP %ld without "
		    "a usable name", r->backend->name, res->status);
		return;
	}
	backend_ok(g, r->backend);
	/* LoadImage reads "<subfolder>/<name>" relative to the input folder. */
	if ((*subfolder ? asprintf(&ref->value, "%s/%s", subfolder, name) :
	    asprintf(&ref->value, "%s", name)) < 0)
		ref->value = NULL;
	json_object_put(reply);
	if (ref->value == NULL) {
		upload_free(up);
		run_fail(g, r, "output_error", true, "out of memory");
		return;
	}
	run_log(debug, "dependency_uploaded", r, " after=%u output=%u name=\"%s\"",
	    ref->parent, ref->output, ref->value);
	up->next++;
	start_next(up);
}

/* Upload the next file, or finish when none is left. */
static void
start_next(struct upload *up)
{
	struct genqd *g = up->g;
	struct run *r = up->r;
	struct dep_ref *ref;
	struct buf url;
	const char *fail = NULL;

	while (up->next < up->n && up->refs[up->next].value != NULL)
		up->next++;             /* text outputs need no upload */
	if (up->next == up->n) {
		finish_uploads(up);
		return;
	}
	ref = &up->refs[up->next];
	buf_init(&url, 0);
	/* libcurl reads the file as it sends; a file gone from the store is
	 * our problem, not the backend's, so check before blaming it. */
	if (access(ref->file, R_OK) != 0) {
		fail = "cannot read the parent's output file";
		goto out;
	}
	if (comfy_url(&url, r->backend->url, "/upload/image") < 0) {
		fail = "out of memory";
		goto out;
	}
	{
		/* The form of ComfyUI's POST /upload/image. */
		const struct http_form_part form[] = {
			{ .name = "image", .file = ref->file, .filename = ref->name,
			  .type = ref->content_type },
			{ .name = "type", .value = "input" },
			{ .name = "subfolder", .value = UPLOAD_SUBFOLDER },
			{ .name = "overwrite", .value = "true" },
		};
		r->req = http_post_form(g->http, url.data, form, sizeof form / sizeof form[0],
		    UPLOAD_REPLY_MAX, on_upload, up);
	}
	if (r->req == NULL) {
		fail = "cannot start the upload";
		goto out;
	}
	/* A cancel or timeout drops the request, and with it this state. */
	http_on_drop(r->req, upload_drop);
out:
	buf_free(&url);
	if (fail != NULL) {
		upload_free(up);
		run_fail(g, r, "output_error", true, "%s", fail);
	}
}

/* The most of a parent's file an OpenAI-compatible backend is handed
 * inline (OpenAI's own limit for an image input is 20 MB). */
#define INLINE_MAX (20u << 20)

/* A content type safe to put into a data URL as it is. */
static const char *
data_url_type(const char *ct)
{
	size_t n = strlen(ct);

	if (n == 0 || n > 100 || strspn(ct, "abcdefghijklmnopqrstuvwxyz0123456789/.+-") != n ||
	    strchr(ct, '/') == NULL)
		return "application/octet-stream";
	return ct;
}

/* An OpenAI-compatible backend takes no uploads: a parent's file goes
 * inline as a data URL ("data:image/png;base64,..."), which chat requests
 * accept where an image is expected (image_url.url). 0, or -1 with why. */
static int
inline_file(struct dep_ref *ref, char *why, size_t len)
{
	const char *type = data_url_type(ref->content_type);
	unsigned char *raw = NULL;
	struct stat sb;
	size_t head, b64;
	int fd, rc = -1;

	if ((fd = open(ref->file, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0) {
		snprintf(why, len, "cannot read the parent's output file");
		goto out;
	}
	if (sb.st_size > (off_t)INLINE_MAX) {
		snprintf(why, len, "output %u of after[%u] is %lld bytes; at most %u go inline to "
		    "an OpenAI-compatible backend", ref->output, ref->parent,
		    (long long)sb.st_size, INLINE_MAX);
		goto out;
	}
	if ((raw = malloc((size_t)sb.st_size + 1)) == NULL)
		goto oom;
	for (size_t got = 0; got < (size_t)sb.st_size; ) {
		ssize_t n = read(fd, raw + got, (size_t)sb.st_size - got);
		if (n <= 0) {
			snprintf(why, len, "cannot read the parent's output file");
			goto out;
		}
		got += (size_t)n;
	}
	head = strlen("data:") + strlen(type) + strlen(";base64,");
	b64 = 4 * (((size_t)sb.st_size + 2) / 3);
	if ((ref->value = malloc(head + b64 + 1)) == NULL)
		goto oom;
	snprintf(ref->value, head + 1, "data:%s;base64,", type);
	EVP_EncodeBlock((unsigned char *)ref->value + head, raw, (int)sb.st_size);
	rc = 0;
	goto out;
oom:
	snprintf(why, len, "out of memory");
out:
	if (fd >= 0)
		close(fd);
	free(raw);
	return rc;
}

bool
deps_prepare(struct genqd *g, struct run *r, deps_submit_fn submit)
{
	struct upload *up;
	char why[256];
	bool retry;

	if (r->deps_ready || r->input == NULL || strstr(r->input, DEPS_REF_PREFIX) == NULL)
		return false;
	if ((up = calloc(1, sizeof *up)) == NULL) {
		run_fail(g, r, "output_error", true, "out of memory");
		return true;
	}
	up->g = g;
	up->r = r;
	up->submit = submit;
	up->root = gq_json_parse(r->input, r->input_len, GQ_JSON_MAX_DEPTH, NULL);
	if (up->root == NULL || deps_refs_walk(up->root, collect_ref, up) != 0) {
		upload_free(up);
		run_fail(g, r, "dependency_failed", false, "the input's references are unreadable");
		return true;
	}
	if (up->n == 0) {
		/* The prefix was only inside a longer string. */
		upload_free(up);
		r->deps_ready = true;
		return false;
	}
	if (!gqd_db_ready(g)) {
		upload_free(up);
		run_fail(g, r, "output_error", true, "database unavailable");
		return true;
	}
	for (size_t i = 0; i < up->n; i++) {
		if (load_ref(g, r, &up->refs[i], why, sizeof why, &retry) < 0) {
			upload_free(up);
			run_fail(g, r, retry ? "output_error" : "dependency_failed", retry, "%s", why);
			return true;
		}
	}
	if (r->backend->proto == &openai_proto) {
		for (size_t i = 0; i < up->n; i++) {
			if (up->refs[i].value == NULL && inline_file(&up->refs[i], why, sizeof why) < 0) {
				upload_free(up);
				run_fail(g, r, "dependency_failed", false, "%s", why);
				return true;
			}
		}
		finish_uploads(up);
		return true;
	}
	start_next(up);
	return true;
}
