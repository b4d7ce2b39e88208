/* metrics: GET /metrics in the Prometheus text exposition format 0.0.4
 * (SPEC §9), and the HTTP request counters behind it.
 *
 * What comes from where:
 *   - jobs, queue depth, backends, webhook deliveries: read from the
 *     database at scrape time, so every host answers the same numbers;
 *   - wait and run time histograms: computed at scrape time from the jobs
 *     that finished in the last hour (a sliding window, not counters kept
 *     since start: they can go down; use histogram_quantile on the buckets
 *     directly, without rate());
 *   - HTTP requests by route and code: counted by the handler processes of
 *     this host in one small file ([http] metrics_file) that each maps
 *     shared and adds to atomically. Each host exports its own counts, like
 *     any per-instance counter; they restart from 0 when the file is
 *     removed (a reboot clears /run), which Prometheus treats as a reset.
 *
 * No API key: scrapers rarely have one. The nginx site lets only 127.0.0.1
 * reach /metrics; open it to your Prometheus there. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "jobstatus.h"
#include "log.h"

/* ---- the shared request counters ---- */

#define COUNTERS_MAGIC 0x3130525443514721ULL   /* "!GQCTR01" */
#define CODE_MIN 100
#define NCODES 500                            /* statuses 100..599 */

struct counters {
	uint64_t magic;          /* written last: the shape below is valid */
	uint32_t nroutes, ncodes;
	uint64_t count[ROUTE_COUNT][NCODES];
};

/* This process's mapping; NULL until the first count or scrape. */
static struct counters *counters;

/* The file's mapping, or NULL (logged) when it cannot be used. A file of
 * another shape (an older genq) is replaced. */
static struct counters *
map_file(const char *path)
{
	struct counters *m = MAP_FAILED;
	struct stat sb;

	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		uint64_t magic;

		if (fd < 0)
			break;
		/* Every process may grow it; a file only ever grows to this size. */
		if (fstat(fd, &sb) < 0 ||
		    ((size_t)sb.st_size < sizeof *m && ftruncate(fd, sizeof *m) < 0)) {
			close(fd);
			break;
		}
		m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (m == MAP_FAILED)
			break;
		magic = __atomic_load_n(&m->magic, __ATOMIC_ACQUIRE);
		if (magic == 0) {
			/* New file: processes racing here write the same values. */
			m->nroutes = ROUTE_COUNT;
			m->ncodes = NCODES;
			__atomic_store_n(&m->magic, COUNTERS_MAGIC, __ATOMIC_RELEASE);
			return m;
		}
		if (magic == COUNTERS_MAGIC && m->nroutes == ROUTE_COUNT && m->ncodes == NCODES &&
		    (size_t)sb.st_size <= sizeof *m)
			return m;
		munmap(m, sizeof *m);
		m = MAP_FAILED;
		log_warn("metrics_file_replaced", "path=%s", path);
		if (unlink(path) < 0 && errno != ENOENT)
			break;
	}
	log_warn("metrics_file_unusable", "path=%s error=\"%s\"", path, strerror(errno));
	return NULL;
}

static struct counters *
counters_get(const struct genq_config *cfg)
{
	if (counters != NULL)
		return counters;
	if (cfg->metrics_file != NULL && cfg->metrics_file[0] != '\0')
		counters = map_file(cfg->metrics_file);
	if (counters == NULL) {
		/* This process's own counts: still right, just not host-wide. */
		void *m = mmap(NULL, sizeof *counters, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m != MAP_FAILED)
			counters = m;
	}
	return counters;
}

void
metrics_count(const struct genq_config *cfg, enum route_id route, int status)
{
	struct counters *m = counters_get(cfg);

	if (m == NULL || (unsigned)route >= ROUTE_COUNT || status < CODE_MIN ||
	    status >= CODE_MIN + NCODES)
		return;
	__atomic_fetch_add(&m->count[route][status - CODE_MIN], 1, __ATOMIC_RELAXED);
}

/* ---- the exposition ---- */

bool
metrics_escape(const char *s, char *out, size_t cap)
{
	size_t n = 0;

	if (s == NULL)
		s = "";
	for (; *s; s++) {
		const char *rep = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
		size_t len = rep ? 2 : 1;

		if (n + len >= cap)
			return false;
		if (rep)
			memcpy(out + n, rep, 2);
		else
			out[n] = *s;
		n += len;
	}
	out[n] = '\0';
	return true;
}

#define LABEL_MAX 512     /* an escaped name: names are at most 64 bytes */

/* The escaped label value of s in a static-size buffer. */
static const char *
esc(char out[LABEL_MAX], const char *s)
{
	if (!metrics_escape(s, out, LABEL_MAX))
		snprintf(out, LABEL_MAX, "(too long)");
	return out;
}

static void
family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}


/* Upper bounds of the wait and run histograms, in seconds. */
static const double BUCKETS[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
	1800, 3600,
};
#define NBUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

#define MAX_QUEUES 1000

struct hist {
	uint64_t bucket[NBUCKETS];   /* not cumulative here; summed when written */
	uint64_t count;
	double sum;
};

struct qrow {
	char name[40];
	bool paused;
	int64_t max_queued;
	int64_t jobs[JOB_NSTATUS];
	int64_t ready, delayed;
	struct hist wait, run;
};

struct scrape {
	struct buf *out;
	struct qrow *q;
	size_t nq;
};

static const char SQL_QUEUES[] =
    "SELECT name, paused, max_queued FROM queues ORDER BY name LIMIT 1000";
/* Every job once, through the jobs_claim index (queue, status, ...). */
static const char SQL_JOBS[] =
    "SELECT queue, status, COUNT(*) FROM jobs GROUP BY queue, status";
static const char SQL_QUEUED[] =
    "SELECT queue, SUM(not_before <= UTC_TIMESTAMP(6)), SUM(not_before > UTC_TIMESTAMP(6))"
    " FROM jobs WHERE status = 'queued' GROUP BY queue";
static const char SQL_FINISHED[] =
    "SELECT queue, TIMESTAMPDIFF(MICROSECOND, created_at, started_at),"
    " TIMESTAMPDIFF(MICROSECOND, started_at, finished_at) FROM jobs"
    " WHERE status IN ('succeeded', 'failed', 'canceled', 'expired')"
    " AND finished_at >= UTC_TIMESTAMP(6) - INTERVAL 1 HOUR AND started_at IS NOT NULL"
    " LIMIT 200000";
static const char SQL_BACKENDS[] =
    "SELECT b.name, b.healthy, b.draining, b.max_running, b.prefetch,"
    " (SELECT COUNT(*) FROM jobs j WHERE j.status = 'running' AND j.backend_id = b.id)"
    " FROM backends b ORDER BY b.name LIMIT 10000";
static const char SQL_HAVE_WEBHOOKS[] =
    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    " AND TABLE_NAME IN ('webhook_outbox', 'webhook_attempts')";
static const char SQL_WEBHOOK_STATES[] =
    "SELECT state, COUNT(*) FROM webhook_outbox GROUP BY state";
static const char SQL_WEBHOOK_ATTEMPTS[] =
    "SELECT COALESCE(SUM(http_status BETWEEN 200 AND 299), 0),"
    " COALESCE(SUM(http_status IS NULL OR http_status NOT BETWEEN 200 AND 299), 0)"
    " FROM webhook_attempts";

static struct qrow *
find_queue(struct scrape *s, const char *name)
{
	for (size_t i = 0; name && i < s->nq; i++)
		if (strcmp(s->q[i].name, name) == 0)
			return &s->q[i];
	return NULL;
}

static void
hist_add(struct hist *h, int64_t us)
{
	double v = (double)(us < 0 ? 0 : us) / 1e6;

	for (size_t i = 0; i < NBUCKETS; i++) {
		if (v <= BUCKETS[i]) {
			h->bucket[i]++;
			break;
		}
	}
	h->count++;
	h->sum += v;
}

static void
hist_write(struct buf *b, const char *name, const char *queue, const struct hist *h)
{
	uint64_t cum = 0;

	for (size_t i = 0; i < NBUCKETS; i++) {
		cum += h->bucket[i];
		buf_printf(b, "%s_bucket{queue=\"%s\",le=\"%g\"} %llu\n", name, queue, BUCKETS[i],
		    (unsigned long long)cum);
	}
	buf_printf(b, "%s_bucket{queue=\"%s\",le=\"+Inf\"} %llu\n", name, queue,
	    (unsigned long long)h->count);
	buf_printf(b, "%s_sum{queue=\"%s\"} %.6f\n", name, queue, h->sum);
	buf_printf(b, "%s_count{queue=\"%s\"} %llu\n", name, queue, (unsigned long long)h->count);
}

/* Queues, job counts and the histograms' samples into s->q. */
static int
read_queues(struct db *db, struct scrape *s)
{
	struct db_stmt *st;
	struct qrow *q;
	int rc;

	if ((st = db_prepare(db, SQL_QUEUES)) == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1 && s->nq < MAX_QUEUES) {
		q = &s->q[s->nq++];
		memset(q, 0, sizeof *q);
		snprintf(q->name, sizeof q->name, "%s", db_text(st, 0, NULL));
		q->paused = db_i64(st, 1) != 0;
		q->max_queued = db_i64(st, 2);
	}
	if (rc < 0)
		return rc;

	if ((st = db_prepare(db, SQL_QUEUED)) == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		if ((q = find_queue(s, db_text(st, 0, NULL))) == NULL)
			continue;
		q->ready = db_i64(st, 1);
		q->delayed = db_i64(st, 2);
	}
	if (rc < 0)
		return rc;

	if ((st = db_prepare(db, SQL_FINISHED)) == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	while ((rc = db_next(st)) == 1) {
		if ((q = find_queue(s, db_text(st, 0, NULL))) == NULL)
			continue;
		if (!db_is_null(st, 1))
			hist_add(&q->wait, db_i64(st, 1));
		if (!db_is_null(st, 2))
			hist_add(&q->run, db_i64(st, 2));
	}
	return rc < 0 ? rc : DB_OK;
}

/* genq_jobs: the full queue x status matrix for known queues, and the
 * counts of jobs whose queue has since been removed. */
static int
write_jobs(struct db *db, struct scrape *s)
{
	struct db_stmt *st = db_prepare(db, SQL_JOBS);
	struct buf *b = s->out;
	char l1[LABEL_MAX];
	int rc;

	if (st == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	family(b, "genq_jobs", "gauge", "Jobs in the database by queue and status.");
	while ((rc = db_next(st)) == 1) {
		const char *name = db_text(st, 0, NULL);
		struct qrow *q = find_queue(s, name);
		int k = job_status_index(db_text(st, 1, NULL));

		if (k < 0)
			continue;
		if (q != NULL)
			q->jobs[k] = db_i64(st, 2);
		else
			buf_printf(b, "genq_jobs{queue=\"%s\",status=\"%s\"} %lld\n", esc(l1, name),
			    job_statuses[k], (long long)db_i64(st, 2));
	}
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < s->nq; i++)
		for (int k = 0; k < JOB_NSTATUS; k++)
			buf_printf(b, "genq_jobs{queue=\"%s\",status=\"%s\"} %lld\n",
			    esc(l1, s->q[i].name), job_statuses[k], (long long)s->q[i].jobs[k]);
	return DB_OK;
}

static void
write_queues(struct scrape *s)
{
	struct buf *b = s->out;
	char l1[LABEL_MAX];

	family(b, "genq_queue_depth", "gauge",
	    "Jobs waiting in a queue: ready (queued, claimable now), delayed (queued, "
	    "in retry backoff), held (awaiting approval), waiting (on dependencies).");
	for (size_t i = 0; i < s->nq; i++) {
		struct qrow *q = &s->q[i];
		esc(l1, q->name);
		buf_printf(b, "genq_queue_depth{queue=\"%s\",state=\"ready\"} %lld\n", l1,
		    (long long)q->ready);
		buf_printf(b, "genq_queue_depth{queue=\"%s\",state=\"delayed\"} %lld\n", l1,
		    (long long)q->delayed);
		buf_printf(b, "genq_queue_depth{queue=\"%s\",state=\"held\"} %lld\n", l1,
		    (long long)q->jobs[0]);
		buf_printf(b, "genq_queue_depth{queue=\"%s\",state=\"waiting\"} %lld\n", l1,
		    (long long)q->jobs[1]);
	}
	family(b, "genq_queue_max_queued", "gauge", "A queue's max_queued limit.");
	for (size_t i = 0; i < s->nq; i++)
		buf_printf(b, "genq_queue_max_queued{queue=\"%s\"} %lld\n", esc(l1, s->q[i].name),
		    (long long)s->q[i].max_queued);
	family(b, "genq_queue_paused", "gauge", "1 when a queue refuses new jobs (paused).");
	for (size_t i = 0; i < s->nq; i++)
		buf_printf(b, "genq_queue_paused{queue=\"%s\"} %d\n", esc(l1, s->q[i].name),
		    s->q[i].paused);
	family(b, "genq_job_wait_seconds", "histogram",
	    "Created to (last) started, over the jobs that finished in the last hour "
	    "(a sliding window, not a counter since start).");
	for (size_t i = 0; i < s->nq; i++)
		hist_write(b, "genq_job_wait_seconds", esc(l1, s->q[i].name), &s->q[i].wait);
	family(b, "genq_job_run_seconds", "histogram",
	    "(Last) started to finished, over the jobs that finished in the last hour "
	    "(a sliding window, not a counter since start).");
	for (size_t i = 0; i < s->nq; i++)
		hist_write(b, "genq_job_run_seconds", esc(l1, s->q[i].name), &s->q[i].run);
}

static int
write_backends(struct db *db, struct scrape *s)
{
	static const struct { const char *name, *help; } fam[] = {
		{ "genq_backend_up", "1 when the backend's last probes succeeded (healthy)." },
		{ "genq_backend_draining", "1 when the backend takes no new jobs (drained)." },
		{ "genq_backend_busy", "1 when the backend has at least one job in flight." },
		{ "genq_backend_jobs", "Jobs in flight on the backend (running or prefetched)." },
		{ "genq_backend_slots", "max_running + prefetch of the backend." },
	};
	struct db_stmt *st = db_prepare(db, SQL_BACKENDS);
	struct buf rows[5];
	char l1[LABEL_MAX];
	int rc;

	if (st == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	for (int i = 0; i < 5; i++)
		buf_init(&rows[i], 0);
	/* One pass over the rows, one family at a time in the output. */
	while ((rc = db_next(st)) == 1) {
		int64_t v[5] = {
			db_i64(st, 1) != 0, db_i64(st, 2) != 0, db_i64(st, 5) > 0, db_i64(st, 5),
			db_i64(st, 3) + db_i64(st, 4),
		};
		esc(l1, db_text(st, 0, NULL));
		for (int i = 0; i < 5; i++)
			buf_printf(&rows[i], "%s{backend=\"%s\"} %lld\n", fam[i].name, l1,
			    (long long)v[i]);
	}
	for (int i = 0; i < 5; i++) {
		family(s->out, fam[i].name, "gauge", fam[i].help);
		if (rows[i].len > 0)
			buf_append(s->out, rows[i].data, rows[i].len);
		buf_free(&rows[i]);
	}
	return rc < 0 ? rc : DB_OK;
}

/* Webhook deliveries, when the webhook tables exist (0 series otherwise). */
static int
write_webhooks(struct db *db, struct scrape *s)
{
	static const char *const states[] = { "pending", "delivered", "failed" };
	struct db_stmt *st = db_prepare(db, SQL_HAVE_WEBHOOKS);
	int64_t count[3] = { 0, 0, 0 };
	struct buf *b = s->out;
	bool have;
	int rc;

	if (st == NULL)
		return db_last_status(db);
	if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) != 1)
		return rc < 0 ? rc : DB_ERR;
	have = db_i64(st, 0) == 2;
	family(b, "genq_webhook_deliveries", "gauge",
	    "Webhook messages in the outbox by state (pending, delivered, failed).");
	if (have) {
		if ((st = db_prepare(db, SQL_WEBHOOK_STATES)) == NULL)
			return db_last_status(db);
		if ((rc = db_exec(st)) != DB_OK)
			return rc;
		while ((rc = db_next(st)) == 1) {
			const char *state = db_text(st, 0, NULL);
			for (int i = 0; i < 3; i++)
				if (state != NULL && strcmp(state, states[i]) == 0)
					count[i] = db_i64(st, 1);
		}
		if (rc < 0)
			return rc;
		for (int i = 0; i < 3; i++)
			buf_printf(b, "genq_webhook_deliveries{state=\"%s\"} %lld\n", states[i],
			    (long long)count[i]);
	}
	family(b, "genq_webhook_attempts_total", "counter",
	    "Webhook delivery attempts by result (success: a 2xx answer).");
	if (have) {
		if ((st = db_prepare(db, SQL_WEBHOOK_ATTEMPTS)) == NULL)
			return db_last_status(db);
		if ((rc = db_exec(st)) != DB_OK || (rc = db_next(st)) != 1)
			return rc < 0 ? rc : DB_ERR;
		buf_printf(b, "genq_webhook_attempts_total{result=\"success\"} %lld\n",
		    (long long)db_i64(st, 0));
		buf_printf(b, "genq_webhook_attempts_total{result=\"failure\"} %lld\n",
		    (long long)db_i64(st, 1));
	}
	return DB_OK;
}

static int
read_all(struct db *db, void *arg)
{
	struct scrape *s = arg;
	int rc;

	/* app_read runs this again after a reconnect: start over. */
	buf_reset(s->out);
	s->nq = 0;
	if ((rc = read_queues(db, s)) != DB_OK || (rc = write_jobs(db, s)) != DB_OK)
		return rc;
	write_queues(s);
	if ((rc = write_backends(db, s)) != DB_OK)
		return rc;
	return write_webhooks(db, s);
}

static void
write_http(struct buf *b, const struct counters *m)
{
	family(b, "genq_http_requests_total", "counter",
	    "HTTP requests answered by this host's API handlers, by route and status code.");
	if (m == NULL)
		return;
	for (int r = 0; r < ROUTE_COUNT; r++) {
		for (int k = 0; k < NCODES; k++) {
			uint64_t n = __atomic_load_n(&m->count[r][k], __ATOMIC_RELAXED);
			if (n > 0)
				buf_printf(b, "genq_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
				    route_pattern((enum route_id)r), k + CODE_MIN, (unsigned long long)n);
		}
	}
}

void
metrics_get(struct ctx *c)
{
	struct buf out;
	struct scrape s = { &out, NULL, 0 };
	int rc;

	buf_init(&out, 0);
	if ((s.q = calloc(MAX_QUEUES, sizeof *s.q)) == NULL) {
		c->resp->failed = true;
		goto out;
	}
	rc = app_read(c->app, read_all, &s);
	if (rc != DB_OK) {
		resp_db_error(c->resp, c->app->db, "metrics", rc);
		goto out;
	}
	write_http(&out, counters_get(c->app->cfg));
	resp_raw(c->resp, 200, "text/plain; version=0.0.4; charset=utf-8",
	    out.data ? out.data : "", out.len);
out:
	free(s.q);
	buf_free(&out);
}
