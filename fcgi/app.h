/* genq-fcgi: the types shared by the handler's modules.
 *
 *   req.c      request I/O: FastCGI or plain CGI behind one small interface
 *   resp.c     responses: status line, headers, JSON and problem+json bodies
 *   route.c    method + path -> route
 *   auth.c     Authorization: Bearer <key> -> caller
 *   jobspec.c  parse and validate a submit body (no database)
 *   submit.c   POST /v1/jobs: admission in one transaction
 *   ratelimit.c the per-user submit token bucket (shared through the database)
 *   quota.c    monthly per-queue job quotas
 *   idempotency.c the Idempotency-Key of POST /v1/jobs
 *   jobs.c     the other /v1/jobs/{id}... routes and /healthz
 *   listing.c  GET /v1/jobs: the caller's jobs, filtered, keyset pages
 *   regenerate.c POST /v1/jobs/{id}/regenerate: a new job from an old one
 *   me.c       GET /v1/me: tier, credits, active jobs, rate limit, quota use
 *   queues.c   GET /v1/queues: per queue depth, throughput and backends
 *   public.c   /v1/public/jobs/{id}...: the job page's view, no API key
 *   dispatch.c one request from start to end
 *   main.c     options, configuration, the accept loop */
#ifndef GENQ_FCGI_APP_H
#define GENQ_FCGI_APP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "secure.h"

struct db;
struct genq_config;
struct job_spec;

/* ---- req.c: one request's CGI variables, body and output ---- */

struct req;

// What a request source must provide; handlers never see which one runs.
struct req_ops {
	// A CGI variable ("REQUEST_METHOD"), or NULL when absent.
	const char *(*param)(struct req *r, const char *name);
	// Up to len body bytes: > 0 read, 0 end of body, -1 error.
	long (*read)(struct req *r, char *buf, size_t len);
	// Write all of data; 0, or -1 when the client is gone.
	int (*write)(struct req *r, const char *data, size_t len);
};

// One request. The fields past ops belong to the source.
struct req {
	const struct req_ops *ops;
	void *handle;          // FCGX_Request *, or a test fixture
	long body_left;        // plain CGI: bytes of CONTENT_LENGTH not yet read
};

// Bind r to an accepted FastCGI request (an FCGX_Request *).
void req_init_fcgx(struct req *r, void *fcgx_request);
// Bind r to this process's environment, stdin and stdout (plain CGI).
void req_init_cgi(struct req *r);

const char *req_param(struct req *r, const char *name);

// Read the whole body into out (initialised by the caller) up to limit bytes.
// Returns 0; -1 on a read error; 1 when the body is larger than limit.
int req_read_body(struct req *r, struct buf *out, size_t limit);

/* ---- resp.c: responses and the one table of problems ---- */

// Every error answer the API gives (SPEC §2); resp.c maps each to its HTTP
// status, code and title.
enum problem {
	P_INVALID_JSON,
	P_INVALID_REQUEST,
	P_UNAUTHORIZED,
	P_INSUFFICIENT_CREDITS,
	P_FORBIDDEN,
	P_QUOTA_EXCEEDED,
	P_NOT_FOUND,
	P_METHOD_NOT_ALLOWED,
	P_IDEMPOTENCY_IN_PROGRESS,
	P_CONFLICT,
	P_PAYLOAD_TOO_LARGE,
	P_UNSUPPORTED_MEDIA_TYPE,
	P_IDEMPOTENCY_KEY_REUSED,
	P_RATE_LIMITED,
	P_TOO_MANY_ACTIVE_JOBS,
	P_QUEUE_FULL,
	P_QUEUE_PAUSED,
	P_UNAVAILABLE,
	P_COUNT
};

int problem_status(enum problem p);
const char *problem_code(enum problem p);
const char *problem_title(enum problem p);

// Append {field, message} to a validation error list (a JSON array).
void problem_error_add(struct json_object *errors, const char *field, const char *message);

// The answer being built. Only the last status/body set is sent.
struct resp {
	int status;
	char content_type[128];     // "" for none
	struct buf headers;         // extra "Name: value\r\n" lines
	struct buf body;
	bool failed;                // out of memory while building: send 500
	bool omit_length;           // X-Accel-Redirect: nginx sends the file's own
};

void resp_init(struct resp *rs);
void resp_free(struct resp *rs);

// Add one header line. Values must not come unchecked from the request.
void resp_header(struct resp *rs, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// A JSON success body; obj stays the caller's.
void resp_json(struct resp *rs, int status, struct json_object *obj);

// A plain body of the given content type (copied).
void resp_raw(struct resp *rs, int status, const char *content_type,
    const char *data, size_t len);

// An application/problem+json answer. detail may be NULL (the title is
// used). errors, when non-NULL, is a JSON array that the response takes
// (json_object_put is called on it).
void resp_problem(struct resp *rs, enum problem p, const char *detail,
    struct json_object *errors);

// 503 unavailable for a failed database call (rc < 0), logged.
void resp_db_error(struct resp *rs, struct db *db, const char *what, int rc);

// Write the status, headers and (unless head_only) the body to r.
int resp_send(struct resp *rs, struct req *r, bool head_only);

// The reason phrase for a status code ("Not Found").
const char *http_reason(int status);

// True when a Content-Type header value is application/json with no
// charset or charset=utf-8 (any case, any other parameters ignored).
bool http_content_type_is_json(const char *value);

/* ---- route.c ---- */

enum route_id {
	ROUTE_NONE,           // no such path: 404
	ROUTE_HEALTHZ,        // /healthz
	ROUTE_JOBS,           // /v1/jobs
	ROUTE_JOB,            // /v1/jobs/{id}
	ROUTE_JOB_CANCEL,     // /v1/jobs/{id}/cancel
	ROUTE_JOB_EVENTS,     // /v1/jobs/{id}/events
	ROUTE_JOB_OUTPUT,     // /v1/jobs/{id}/outputs/{n}
	ROUTE_JOB_REGENERATE, // /v1/jobs/{id}/regenerate
	ROUTE_ME,             // /v1/me
	ROUTE_QUEUES,         // /v1/queues
	ROUTE_PUBLIC_JOB,     // /v1/public/jobs/{id}
	ROUTE_PUBLIC_OUTPUT,  // /v1/public/jobs/{id}/outputs/{n}
	ROUTE_METRICS,        // /metrics
	ROUTE_ADMIN_APPROVE,  // /v1/admin/jobs/{id}/approve
	ROUTE_ADMIN_REJECT,   // /v1/admin/jobs/{id}/reject
	ROUTE_ADMIN_PAUSE,    // /v1/admin/queues/{name}/pause
	ROUTE_ADMIN_RESUME,   // /v1/admin/queues/{name}/resume
	ROUTE_ADMIN_DRAIN,    // /v1/admin/backends/{name}/drain
	ROUTE_ADMIN_UNDRAIN,  // /v1/admin/backends/{name}/undrain
	ROUTE_ADMIN_CREDITS,  // /v1/admin/credits
	ROUTE_COUNT
};

#define ROUTE_PATH_MAX 1024
#define ROUTE_NAME_MAX 64     // a queue or backend name in an admin path

// A parsed path. A job id segment that is not a UUID still selects the
// route (so the method is checked) and later answers 404 like an unknown id.
struct route {
	enum route_id id;
	char job_id[GQ_UUID_LEN];   // lowercase UUID, or "" when malformed
	long output;                // ..._OUTPUT: n, or -1 when malformed
	char name[ROUTE_NAME_MAX + 1]; // admin queue/backend name, "" when malformed
};

// The request path without the query string: REQUEST_URI, else
// SCRIPT_NAME + PATH_INFO. Returns 0, or -1 when missing or too long.
int route_path(const char *request_uri, const char *script_name,
    const char *path_info, char *out, size_t cap);

// Classify path; never fails (unknown paths are ROUTE_NONE).
void route_parse(const char *path, struct route *rt);

// The methods a route accepts, as an Allow header value.
const char *route_allow(enum route_id id);

// True when method (GET, POST, ... HEAD counts as GET) is in route_allow.
bool route_method_ok(enum route_id id, const char *method);

// The route's path pattern ("/v1/jobs/{id}"), "unmatched" for ROUTE_NONE:
// the label of the HTTP request counters in /metrics.
const char *route_pattern(enum route_id id);

/* ---- the handler's state ---- */

// One per process: configuration and the lazily opened connection.
struct app {
	const struct genq_config *cfg;
	struct db *db;              // NULL until first needed or after a failed open
};

// The connection, opening it when needed; NULL (logged) when the database
// cannot be reached.
struct db *app_db(struct app *app);

// Run fn outside a transaction (reads); when the connection was lost,
// reconnect and run it once more. Returns fn's result.
int app_read(struct app *app, int (*fn)(struct db *db, void *arg), void *arg);

// Who is calling (auth.c fills it).
struct caller {
	uint64_t user_id;
	bool admin;
	char name[65];              // users.name, for "user:<name>" actors
	char tier[33];
	int tier_priority;          // 0 runs first .. 3 last
	int max_active;
};

// One request being answered.
struct ctx {
	struct app *app;
	struct req *req;
	struct resp *resp;
	struct route route;
	const char *method;         // "GET", "POST", ... (HEAD is served as GET)
	struct caller caller;
};

/* ---- auth.c ---- */

// Authenticate from HTTP_AUTHORIZATION. Returns 0 with ctx->caller filled;
// otherwise the response (401 or 503) is already set and -1 is returned.
int auth_caller(struct ctx *c);

// Parse "Bearer <key>" into key (GQ_KEY_LEN). 0, or -1 when malformed.
int auth_bearer(const char *header, char key[GQ_KEY_LEN]);

/* ---- submit.c, jobs.c: route handlers; each sets c->resp ---- */

void submit_job(struct ctx *c);
// The admission transaction for a checked spec and its answer (201 with
// Location, or the refusal). regenerated_from: the original's id, or NULL.
void submit_admit(struct ctx *c, const struct job_spec *spec, const char *regenerated_from);
// Read the request body within [http] max_body_bytes into body (initialised
// by the caller). 0, or -1 with the answer (400/413) set.
int submit_read_body(struct ctx *c, struct buf *body);
void jobs_get(struct ctx *c);
void jobs_output(struct ctx *c);
void jobs_events(struct ctx *c);
void jobs_cancel(struct ctx *c);
void jobs_healthz(struct ctx *c);

/* ---- listing.c, regenerate.c, me.c, queues.c ---- */

// GET /v1/jobs: the caller's jobs (admin: all), newest first.
void listing_jobs(struct ctx *c);

// Parse a QUERY_STRING "cursor" value into the seq it names; 0, or -1 when
// it is not one listing_cursor made.
int listing_cursor_parse(const char *text, uint64_t *seq);
// Write the opaque cursor for seq into out (LISTING_CURSOR_LEN bytes).
#define LISTING_CURSOR_LEN 12
void listing_cursor(uint64_t seq, char out[LISTING_CURSOR_LEN]);

// POST /v1/jobs/{id}/regenerate.
void regenerate_job(struct ctx *c);
// GET /v1/me.
void me_get(struct ctx *c);
// GET /v1/queues.
void queues_get(struct ctx *c);

/* ---- public.c: no authentication; the job id is the capability ---- */

// GET /v1/public/jobs/{id}: the job without owner, metadata, cost or input.
void public_job(struct ctx *c);
// GET /v1/public/jobs/{id}/outputs/{n}: the download, as jobs_output.
void public_output(struct ctx *c);

/* ---- admin.c: admin keys only (others get 403); the actions are
 * lib/jobadmin.c's, shared with genqctl ---- */

void admin_approve(struct ctx *c);    // POST /v1/admin/jobs/{id}/approve
void admin_reject(struct ctx *c);     // POST /v1/admin/jobs/{id}/reject
void admin_pause(struct ctx *c);      // POST /v1/admin/queues/{name}/pause
void admin_resume(struct ctx *c);     // POST /v1/admin/queues/{name}/resume
void admin_drain(struct ctx *c);      // POST /v1/admin/backends/{name}/drain
void admin_undrain(struct ctx *c);    // POST /v1/admin/backends/{name}/undrain
void admin_credits(struct ctx *c);    // POST /v1/admin/credits

/* ---- metrics.c: GET /metrics and the HTTP request counters ---- */

// GET /metrics: Prometheus text format 0.0.4, no API key (nginx limits who
// may reach it).
void metrics_get(struct ctx *c);

// Count one answered request by route and status in the counters shared by
// every handler process of this host ([http] metrics_file).
void metrics_count(const struct genq_config *cfg, enum route_id route, int status);

// Prometheus label value escaping (backslash, double quote, newline) of s
// into out; false when it does not fit.
bool metrics_escape(const char *s, char *out, size_t cap);

/* ---- dispatch.c ---- */

// Answer one request completely (reads r, writes r).
void dispatch(struct app *app, struct req *r);

/* ==== admission limits and idempotency (ratelimit.c, quota.c, idempotency.c) ==== */

/* ---- ratelimit.c: the per-user submit token bucket (SPEC §3) ---- */

// A rate_take refusal (positive, so a transaction rolls back and passes it on).
#define RATE_REFUSED 20

// A user's bucket as the RateLimit-* headers and /v1/me show it.
struct rate_state {
	bool limited;          // false: the tier has no submit limit (rate_per_min 0)
	int limit;             // bucket size: the tier's rate_burst
	int remaining;         // whole tokens left
	int reset_s;           // seconds until the bucket is full again
	int retry_after_s;     // after RATE_REFUSED: seconds until one token
};

// Take one submit token of user_id. Call inside a transaction that holds the
// user's row lock (users ... FOR UPDATE). DB_OK (taken, or no limit),
// RATE_REFUSED (nothing written), or a negative db status; rs is filled.
int rate_take(struct db *db, uint64_t user_id, struct rate_state *rs);
// A bucket as read from the database: the tier's rate, the bucket's tat
// (microseconds; 0: no row) and the database's now.
struct rate_bucket {
	int64_t rate_per_min, burst, tat, now;
};
// rate_take for a bucket the caller read itself, after taking the user's
// row lock, in the same transaction (submit.c folds that read into the
// lock's statement).
int rate_take_read(struct db *db, uint64_t user_id, const struct rate_bucket *b,
    struct rate_state *rs);
// The bucket without taking anything (any context). DB_OK or negative.
int rate_peek(struct db *db, uint64_t user_id, struct rate_state *rs);
// The bucket's arithmetic (GCRA), no database: a tier of rate_per_min
// (<= 0: no limit) and burst, a bucket whose theoretical arrival time is tat
// (microseconds; 0 or past: full), at time now. With take, one token is
// taken when there is one. Returns 0 (taken, or peeked) or RATE_REFUSED;
// rs describes the bucket afterwards and *next_tat is its new tat.
int rate_gcra(int64_t rate_per_min, int64_t burst, int64_t tat, int64_t now, bool take,
    struct rate_state *rs, int64_t *next_tat);
// RateLimit-Limit, -Remaining and -Reset (nothing when not limited).
void rate_headers(struct resp *resp, const struct rate_state *rs);
// {limit, remaining, reset}, or NULL when not limited. The caller owns it.
struct json_object *rate_json(const struct rate_state *rs);

/* ---- quota.c: monthly per-queue job quotas (SPEC §5) ---- */

// A quota_check refusal (positive).
#define QUOTA_EXCEEDED 21

struct quota_state {
	bool limited;          // false: no quota for this queue
	int64_t limit, used;   // used stops counting at limit
};

// Whether user_id may add a job to queue this month: DB_OK, QUOTA_EXCEEDED,
// or a negative db status. Exact under concurrency inside a transaction
// that holds the user's row lock.
int quota_check(struct db *db, uint64_t user_id, const char *queue, struct quota_state *qs);
// quota_check with the tier's quota for queue already read under the lock
// (limited false: no tier_quotas row).
int quota_check_limit(struct db *db, uint64_t user_id, const char *queue, bool limited,
    int64_t limit, struct quota_state *qs);
// Every queue's {used, limit} this month as an object keyed by queue name
// (limit null: no quota). DB_OK with *out (the caller owns it) or negative.
int quota_usage(struct db *db, uint64_t user_id, struct json_object **out);
// When the current quota month ends (RFC 3339, UTC).
void quota_period_end(char out[32]);

/* ---- idempotency.c: the Idempotency-Key of POST /v1/jobs (SPEC §2) ---- */

#define IDEM_KEY_MAX 255

// idem_claim's answers (positive) besides negative db statuses.
enum idem_result {
	IDEM_CLAIMED = 0,      // this request owns the key: go on and admit
	IDEM_REPLAY = 30,      // answered before: im->status, im->body, im->job_id
	IDEM_REUSED,           // same key, different body: 422
	IDEM_IN_PROGRESS,      // the first request is still in flight: 409
	IDEM_LOST,             // idem_finish: the claim was taken over: 409
};

// One request's key. body is owned (idem_free).
struct idem {
	uint64_t user_id;
	char key[IDEM_KEY_MAX + 1];
	char hash[GQ_SHA256_HEX_LEN];   // of the request body
	char owner[GQ_UUID_LEN];        // the id of the job this request creates
	int status;                     // IDEM_REPLAY: the stored answer
	char job_id[GQ_UUID_LEN];
	char *body;
	size_t body_len;
};

// Check an Idempotency-Key header value (may be NULL): 1 and out set when it
// is 1..255 printable ASCII characters, 0 when absent, -1 when malformed.
int idem_parse_key(const char *header, char out[IDEM_KEY_MAX + 1]);
// Prepare im for key and the request body (hash, a new owner id). 0 or -1.
int idem_init(struct idem *im, uint64_t user_id, const char *key, const char *body, size_t len);
void idem_free(struct idem *im);
// Claim the key in a transaction of its own: an enum idem_result or negative.
int idem_claim(struct db *db, struct idem *im);
// Inside the admission transaction: store the answer. DB_OK, IDEM_LOST or negative.
int idem_finish(struct db *db, struct idem *im, int status, const char *body, size_t len);
// Inside any transaction: drop this request's own in-flight claim.
int idem_release(struct db *db, const struct idem *im);
// The answer for IDEM_REPLAY, IDEM_REUSED, IDEM_IN_PROGRESS, IDEM_LOST or a db error.
void idem_answer(struct ctx *c, const struct idem *im, int result);

/* ==== end of admission limits ==== */

#endif
