/* resp: building and sending answers. The table of problems below is the
 * only place that knows which error gets which status, code and title. */
#include "autoconf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "db.h"
#include "jsonutil.h"
#include "log.h"

#define PROBLEM_TYPE_BASE "https://genq.dev/problems/"

static const struct {
	int status;
	const char *code;
	const char *title;
} problems[P_COUNT] = {
	[P_INVALID_JSON] = { 400, "invalid_json", "The body is not valid JSON" },
	[P_INVALID_REQUEST] = { 400, "invalid_request", "The request is invalid" },
	[P_UNAUTHORIZED] = { 401, "unauthorized", "A valid API key is required" },
	[P_INSUFFICIENT_CREDITS] = { 402, "insufficient_credits", "Not enough credits" },
	[P_FORBIDDEN] = { 403, "forbidden", "Not allowed" },
	[P_QUOTA_EXCEEDED] = { 403, "quota_exceeded", "Monthly quota exhausted" },
	[P_NOT_FOUND] = { 404, "not_found", "Not found" },
	[P_METHOD_NOT_ALLOWED] = { 405, "method_not_allowed", "Method not allowed" },
	[P_IDEMPOTENCY_IN_PROGRESS] = { 409, "idempotency_in_progress",
	    "A request with this Idempotency-Key is still in progress" },
	[P_CONFLICT] = { 409, "conflict", "Conflict" },
	[P_PAYLOAD_TOO_LARGE] = { 413, "payload_too_large", "The body is too large" },
	[P_UNSUPPORTED_MEDIA_TYPE] = { 415, "unsupported_media_type",
	    "The body must be application/json" },
	[P_IDEMPOTENCY_KEY_REUSED] = { 422, "idempotency_key_reused",
	    "This Idempotency-Key was used with a different request" },
	[P_RATE_LIMITED] = { 429, "rate_limited", "Too many requests" },
	[P_TOO_MANY_ACTIVE_JOBS] = { 429, "too_many_active_jobs", "Too many active jobs" },
	[P_QUEUE_FULL] = { 503, "queue_full", "The queue is full" },
	[P_QUEUE_PAUSED] = { 503, "queue_paused", "The queue is paused" },
	[P_UNAVAILABLE] = { 503, "unavailable", "Service temporarily unavailable" },
};

int
problem_status(enum problem p)
{
	return p < P_COUNT ? problems[p].status : 500;
}

const char *
problem_code(enum problem p)
{
	return p < P_COUNT ? problems[p].code : "internal";
}

const char *
problem_title(enum problem p)
{
	return p < P_COUNT ? problems[p].title : "Internal error";
}

void
problem_error_add(struct json_object *errors, const char *field, const char *message)
{
	struct json_object *e = json_object_new_object();

	if (e == NULL)
		return;
	json_object_object_add(e, "field", json_object_new_string(field));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_array_add(errors, e);
}

const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return status < 500 ? "Client Error" : "Internal Server Error";
	}
}

void
resp_init(struct resp *rs)
{
	rs->status = 500;
	rs->content_type[0] = '\0';
	rs->failed = false;
	rs->omit_length = false;
	buf_init(&rs->headers, 16384);
	buf_init(&rs->body, 0);
}

void
resp_free(struct resp *rs)
{
	buf_free(&rs->headers);
	buf_free(&rs->body);
}

void
resp_header(struct resp *rs, const char *name, const char *fmt, ...)
{
	char value[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof value, fmt, ap);
	va_end(ap);
	/* A header value never carries a line break into the output. */
	for (char *p = value; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	if (buf_printf(&rs->headers, "%s: %s\r\n", name, value) < 0)
		rs->failed = true;
}

void
resp_raw(struct resp *rs, int status, const char *content_type,
    const char *data, size_t len)
{
	rs->status = status;
	snprintf(rs->content_type, sizeof rs->content_type, "%s", content_type);
	/* It becomes a header line. */
	for (char *p = rs->content_type; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	buf_reset(&rs->body);
	if (buf_append(&rs->body, data, len) < 0)
		rs->failed = true;
}

void
resp_json(struct resp *rs, int status, struct json_object *obj)
{
	size_t len;
	const char *text = gq_json_text(obj, &len);

	if (text == NULL) {
		rs->failed = true;
		return;
	}
	resp_raw(rs, status, "application/json", text, len);
}

void
resp_problem(struct resp *rs, enum problem p, const char *detail,
    struct json_object *errors)
{
	struct json_object *o = json_object_new_object();
	char type[128];

	if (o == NULL) {
		json_object_put(errors);
		rs->failed = true;
		return;
	}
	snprintf(type, sizeof type, PROBLEM_TYPE_BASE "%s", problem_code(p));
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "title", json_object_new_string(problem_title(p)));
	json_object_object_add(o, "status", json_object_new_int(problem_status(p)));
	json_object_object_add(o, "detail",
	    json_object_new_string(detail ? detail : problem_title(p)));
	json_object_object_add(o, "code", json_object_new_string(problem_code(p)));
	if (errors != NULL)
		json_object_object_add(o, "errors", errors);
	resp_json(rs, problem_status(p), o);
	snprintf(rs->content_type, sizeof rs->content_type, "application/problem+json");
	json_object_put(o);
}

void
resp_db_error(struct resp *rs, struct db *db, const char *what, int rc)
{
	log_error("db_failed", "what=%s status=%d error=\"%s\"", what, rc,
	    log_q(db ? db_error(db) : "not connected"));
	resp_header(rs, "Retry-After", "1");
	resp_problem(rs, P_UNAVAILABLE, "The database is not available; try again shortly.", NULL);
}

int
resp_send(struct resp *rs, struct req *r, bool head_only)
{
	static const char oom[] =
	    "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nout of memory\n";
	struct buf head;
	int rc;

	if (rs->failed)
		return r->ops->write(r, oom, sizeof oom - 1);
	buf_init(&head, 0);
	if (buf_printf(&head, "Status: %d %s\r\n", rs->status, http_reason(rs->status)) < 0 ||
	    (rs->content_type[0] &&
	     buf_printf(&head, "Content-Type: %s\r\n", rs->content_type) < 0) ||
	    (!rs->omit_length &&
	     buf_printf(&head, "Content-Length: %zu\r\n", rs->body.len) < 0) ||
	    buf_append(&head, rs->headers.data ? rs->headers.data : "", rs->headers.len) < 0 ||
	    buf_append(&head, "\r\n", 2) < 0) {
		buf_free(&head);
		return r->ops->write(r, oom, sizeof oom - 1);
	}
	/* One write for small answers: one FastCGI record, one syscall. */
	if (!head_only && buf_append(&head, rs->body.data ? rs->body.data : "", rs->body.len) == 0)
		head_only = true;
	rc = r->ops->write(r, head.data, head.len);
	if (rc == 0 && !head_only && rs->body.len)
		rc = r->ops->write(r, rs->body.data, rs->body.len);
	buf_free(&head);
	return rc;
}

/* Skip optional whitespace. */
static const char *
ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

bool
http_content_type_is_json(const char *value)
{
	static const char mt[] = "application/json";
	const char *p;

	if (value == NULL)
		return false;
	p = ows(value);
	if (strncasecmp(p, mt, sizeof mt - 1) != 0)
		return false;
	p = ows(p + sizeof mt - 1);
	/* Parameters: ";" name "=" value, only charset is looked at. */
	while (*p == ';') {
		const char *name = ows(p + 1), *val, *end;
		size_t nlen, vlen;

		for (end = name; *end && *end != '=' && *end != ';' && *end != ' ' && *end != '\t'; end++)
			;
		nlen = (size_t)(end - name);
		end = ows(end);
		if (*end != '=')
			return false;
		val = ows(end + 1);
		if (*val == '"') {
			const char *q = strchr(val + 1, '"');
			if (q == NULL)
				return false;
			vlen = (size_t)(q - val - 1);
			val++;
			end = q + 1;
		} else {
			for (end = val; *end && *end != ';' && *end != ' ' && *end != '\t'; end++)
				;
			vlen = (size_t)(end - val);
		}
		if (nlen == 7 && strncasecmp(name, "charset", 7) == 0 &&
		    !(vlen == 5 && strncasecmp(val, "utf-8", 5) == 0))
			return false;
		if (nlen == 0 || vlen == 0)
			return false;
		p = ows(end);
	}
	return *p == '\0';
}
