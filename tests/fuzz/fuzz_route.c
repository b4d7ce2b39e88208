/* fuzz_route: what a request's CGI variables decide before any handler
 * runs: the path (fcgi/route.c route_path), the route and its methods
 * (route_parse, route_method_ok), GET /v1/jobs's query string and cursors
 * (fcgi/listing.c), the Content-Type check (fcgi/resp.c), the Bearer
 * header (fcgi/auth.c auth_bearer), and the escaping these values get
 * when they are logged (lib/log.c log_q, log_v).
 *
 * The input is up to seven fields separated by newlines, in this order:
 * REQUEST_METHOD, REQUEST_URI, SCRIPT_NAME, PATH_INFO, QUERY_STRING,
 * CONTENT_TYPE, HTTP_AUTHORIZATION; a field past the end of the input is
 * an absent variable (NULL). Each field gets its own exact-size allocation
 * so a sanitizer sees a read past its end.
 *
 * listing.c's query parser is static: like the unit tests (STYLE.md), this
 * file includes the source itself, so the code fuzzed is the code built. */
#include "autoconf.h"

#include "../../fcgi/listing.c"

#include "fuzz.h"
#include "jobspec.h"
#include "log.h"

/* route.c's bound on an output index (not exported). */
#define ROUTE_OUTPUT_MAX 100000

enum { F_METHOD, F_URI, F_SCRIPT, F_PATH_INFO, F_QUERY, F_CTYPE, F_AUTH, F_COUNT };

static void
check_route(const char *path, const char *method)
{
	struct route rt;

	route_parse(path, &rt);
	FUZZ_CHECK(rt.job_id[0] == '\0' || gq_is_uuid(rt.job_id));
	for (const char *p = rt.job_id; *p; p++)
		FUZZ_CHECK(*p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
	FUZZ_CHECK(rt.output >= -1 && rt.output <= ROUTE_OUTPUT_MAX);
	/* An admin path's name is what genqctl accepts, or empty. */
	FUZZ_CHECK(strlen(rt.name) <= ROUTE_NAME_MAX);
	FUZZ_CHECK(strspn(rt.name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_.-") == strlen(rt.name));
	FUZZ_CHECK(rt.output == -1 || rt.id == ROUTE_JOB_OUTPUT || rt.id == ROUTE_PUBLIC_OUTPUT);
	/* An unknown path accepts no method at all: it answers 404. */
	if (rt.id == ROUTE_NONE)
		FUZZ_CHECK(*route_allow(rt.id) == '\0');
	if (route_method_ok(rt.id, method))
		FUZZ_CHECK(*route_allow(rt.id) != '\0' && method != NULL && *method != '\0');
}

static void
check_query(const char *qs)
{
	struct json_object *errors = json_object_new_array();
	struct params p;
	uint64_t seq;

	if (errors == NULL)
		return;
	if (parse_query(qs, &p, errors) == 0) {
		FUZZ_CHECK(json_object_array_length(errors) == 0);
		FUZZ_CHECK(p.limit >= 1 && p.limit <= LIMIT_MAX);
		FUZZ_CHECK(p.before >= 1 && p.before <= (uint64_t)INT64_MAX);
		FUZZ_CHECK(strlen(p.queue) <= SPEC_QUEUE_MAX);
		if (p.created_after[0] != '\0')
			FUZZ_CHECK(strlen(p.created_after) < GQ_SQLTIME_LEN);
	} else {
		FUZZ_CHECK(json_object_array_length(errors) > 0);
	}
	json_object_put(errors);

	/* A cursor that parses is exactly one listing_cursor wrote. */
	if (qs != NULL && listing_cursor_parse(qs, &seq) == 0) {
		char again[LISTING_CURSOR_LEN];

		FUZZ_CHECK(seq >= 1 && seq <= (uint64_t)INT64_MAX);
		listing_cursor(seq, again);
		FUZZ_CHECK(strcmp(again, qs) == 0);
	}
}

/* Well-formed UTF-8 without control characters: checked here on its own,
 * not with log.c's reader. */
static bool
clean_utf8(const unsigned char *s)
{
	while (*s) {
		size_t n = *s < 0x80 ? 1 : *s >= 0xc2 && *s <= 0xdf ? 2 :
		    *s >= 0xe0 && *s <= 0xef ? 3 : *s >= 0xf0 && *s <= 0xf4 ? 4 : 0;
		unsigned cp;

		if (n == 0 || *s < 0x20 || *s == 0x7f)
			return false;
		cp = n == 1 ? *s : (unsigned)(*s & (0x7f >> n));
		for (size_t i = 1; i < n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
			return false;
		s += n;
	}
	return true;
}

/* Inside quotes: every '"' and '\\' is escaped, none is left dangling. */
static bool
quotable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			return false;
		if (s[i] == '\\' && ++i == n)
			return false;
	}
	return true;
}

/* What a logged request value looks like, whatever the request held. */
static void
check_logged(const char *value)
{
	const char *q = log_q(value), *v = log_v(value);
	size_t qn = strlen(q), vn = strlen(v);

	FUZZ_CHECK(qn < LOG_VALUE_MAX && clean_utf8((const unsigned char *)q));
	FUZZ_CHECK(quotable(q, qn));
	FUZZ_CHECK(vn > 0 && vn < LOG_VALUE_MAX && clean_utf8((const unsigned char *)v));
	if (v[0] == '"')
		FUZZ_CHECK(vn >= 2 && v[vn - 1] == '"' && quotable(v + 1, vn - 2));
	else
		FUZZ_CHECK(strpbrk(v, " \"=\\") == NULL);
}

/* Every seq the listing can hand out comes back through its cursor. */
static void
check_cursor_roundtrip(const uint8_t *data, size_t size)
{
	char text[LISTING_CURSOR_LEN];
	uint64_t seq = 0, back = 0;

	if (size < 8)
		return;
	for (int i = 0; i < 8; i++)
		seq = (seq << 8) | data[i];
	seq &= (uint64_t)INT64_MAX;
	if (seq == 0)
		return;
	listing_cursor(seq, text);
	FUZZ_CHECK(strlen(text) == LISTING_CURSOR_LEN - 1);
	FUZZ_CHECK(listing_cursor_parse(text, &back) == 0 && back == seq);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *field[F_COUNT] = { NULL };
	char path[ROUTE_PATH_MAX], key[GQ_KEY_LEN];
	size_t at = 0;

	for (int i = 0; i < F_COUNT && at <= size; i++) {
		const uint8_t *nl = size > at ? memchr(data + at, '\n', size - at) : NULL;
		size_t n = nl ? (size_t)(nl - (data + at)) : size - at;

		if ((field[i] = malloc(n + 1)) == NULL)
			goto out;
		memcpy(field[i], data + at, n);
		field[i][n] = '\0';
		at += n + 1;
	}

	if (route_path(field[F_URI], field[F_SCRIPT], field[F_PATH_INFO], path, sizeof path) == 0) {
		FUZZ_CHECK(strlen(path) < sizeof path);
		check_route(path, field[F_METHOD]);
	}
	check_query(field[F_QUERY]);
	check_cursor_roundtrip(data, size);
	(void)http_content_type_is_json(field[F_CTYPE]);
	if (auth_bearer(field[F_AUTH], key) == 0)
		FUZZ_CHECK(strlen(key) == GQ_KEY_LEN - 1);
	for (int i = 0; i < F_COUNT; i++)
		check_logged(field[i]);
out:
	for (int i = 0; i < F_COUNT; i++)
		free(field[i]);
	return 0;
}
