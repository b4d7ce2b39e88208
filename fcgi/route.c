/* route: which handler a method and path select. Paths are matched on
 * their raw form (no percent-decoding): every valid path is plain ASCII. */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "app.h"

#define OUTPUT_INDEX_MAX 100000

int
route_path(const char *request_uri, const char *script_name,
    const char *path_info, char *out, size_t cap)
{
	size_t n;

	if (request_uri != NULL && *request_uri) {
		n = strcspn(request_uri, "?#");
		if (n == 0 || n >= cap)
			return -1;
		memcpy(out, request_uri, n);
		out[n] = '\0';
		return 0;
	}
	if (script_name == NULL)
		script_name = "";
	if (path_info == NULL)
		path_info = "";
	if (*script_name == '\0' && *path_info == '\0')
		return -1;
	if ((size_t)snprintf(out, cap, "%s%s", script_name, path_info) >= cap)
		return -1;
	return 0;
}

/* Copy the segment at *p (up to '/' or end) and advance; its length, or
 * (size_t)-1 when it does not fit. */
static size_t
segment(const char **p, char *seg, size_t cap)
{
	size_t n = strcspn(*p, "/");

	if (n >= cap) {
		*p += n;
		return (size_t)-1;
	}
	memcpy(seg, *p, n);
	seg[n] = '\0';
	*p += n;
	return n;
}

static void
parse_job_id(const char *seg, size_t n, struct route *rt)
{
	rt->job_id[0] = '\0';
	if (n != GQ_UUID_LEN - 1 || !gq_is_uuid(seg))
		return;
	for (size_t i = 0; i < n; i++)
		rt->job_id[i] = (char)tolower((unsigned char)seg[i]);
	rt->job_id[n] = '\0';
}

static long
parse_index(const char *seg, size_t n)
{
	long v = 0;

	/* Decimal without sign or leading zeros ("0" itself is fine). */
	if (n == 0 || n > 6 || (n > 1 && seg[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)seg[i]))
			return -1;
		v = v * 10 + (seg[i] - '0');
	}
	return v <= OUTPUT_INDEX_MAX ? v : -1;
}

/* The part of a path after "/v1/jobs": "", "/{id}", "/{id}/cancel", ... */
static void
parse_jobs(const char *p, struct route *rt)
{
	char seg[128];
	size_t n;

	if (*p == '\0') {
		rt->id = ROUTE_JOBS;
		return;
	}
	if (*p++ != '/')
		return;
	n = segment(&p, seg, sizeof seg);
	if (n == 0 || n == (size_t)-1)
		return;
	parse_job_id(seg, n, rt);
	if (*p == '\0') {
		rt->id = ROUTE_JOB;
		return;
	}
	p++;
	n = segment(&p, seg, sizeof seg);
	if (n == (size_t)-1)
		return;
	if (*p == '\0') {
		if (strcmp(seg, "cancel") == 0)
			rt->id = ROUTE_JOB_CANCEL;
		else if (strcmp(seg, "events") == 0)
			rt->id = ROUTE_JOB_EVENTS;
		else if (strcmp(seg, "regenerate") == 0)
			rt->id = ROUTE_JOB_REGENERATE;
		return;
	}
	if (strcmp(seg, "outputs") != 0)
		return;
	p++;
	n = segment(&p, seg, sizeof seg);
	if (n == 0 || n == (size_t)-1 || *p != '\0')
		return;
	rt->output = parse_index(seg, n);
	rt->id = ROUTE_JOB_OUTPUT;
}

/* A queue or backend name: what genqctl accepts ([A-Za-z0-9_.-]). Anything
 * else leaves rt->name empty, and the handler answers 404. */
static void
parse_name(const char *seg, size_t n, struct route *rt)
{
	rt->name[0] = '\0';
	if (n == 0 || n > ROUTE_NAME_MAX)
		return;
	for (size_t i = 0; i < n; i++) {
		char ch = seg[i];
		if (!isalnum((unsigned char)ch) && ch != '_' && ch != '.' && ch != '-')
			return;
	}
	memcpy(rt->name, seg, n);
	rt->name[n] = '\0';
}

/* "/{x}/{verb}" after an admin collection: the two segments, or -1. */
static int
parse_item_verb(const char *p, char *item, size_t *itemlen, char *verb, size_t cap)
{
	size_t n;

	if (*p++ != '/')
		return -1;
	if ((n = segment(&p, item, cap)) == 0 || n == (size_t)-1 || *p++ != '/')
		return -1;
	*itemlen = n;
	if ((n = segment(&p, verb, cap)) == 0 || n == (size_t)-1 || *p != '\0')
		return -1;
	return 0;
}

/* The part of a path after "/v1/admin". */
static void
parse_admin(const char *p, struct route *rt)
{
	static const struct {
		const char *collection, *verb;
		enum route_id id;
	} routes[] = {
		{ "/jobs", "approve", ROUTE_ADMIN_APPROVE },
		{ "/jobs", "reject", ROUTE_ADMIN_REJECT },
		{ "/queues", "pause", ROUTE_ADMIN_PAUSE },
		{ "/queues", "resume", ROUTE_ADMIN_RESUME },
		{ "/backends", "drain", ROUTE_ADMIN_DRAIN },
		{ "/backends", "undrain", ROUTE_ADMIN_UNDRAIN },
	};
	char item[128], verb[128];
	size_t n;

	if (strcmp(p, "/credits") == 0) {
		rt->id = ROUTE_ADMIN_CREDITS;
		return;
	}
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		size_t len = strlen(routes[i].collection);

		if (strncmp(p, routes[i].collection, len) != 0 ||
		    parse_item_verb(p + len, item, &n, verb, sizeof item) < 0 ||
		    strcmp(verb, routes[i].verb) != 0)
			continue;
		rt->id = routes[i].id;
		if (rt->id == ROUTE_ADMIN_APPROVE || rt->id == ROUTE_ADMIN_REJECT)
			parse_job_id(item, n, rt);
		else
			parse_name(item, n, rt);
		return;
	}
}

void
route_parse(const char *path, struct route *rt)
{
	rt->id = ROUTE_NONE;
	rt->job_id[0] = '\0';
	rt->output = -1;
	rt->name[0] = '\0';

	if (strcmp(path, "/healthz") == 0) {
		rt->id = ROUTE_HEALTHZ;
		return;
	}
	if (strcmp(path, "/v1/me") == 0) {
		rt->id = ROUTE_ME;
		return;
	}
	if (strcmp(path, "/v1/queues") == 0) {
		rt->id = ROUTE_QUEUES;
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		rt->id = ROUTE_METRICS;
		return;
	}
	if (strncmp(path, "/v1/admin/", 10) == 0) {
		parse_admin(path + 9, rt);
		return;
	}
	if (strncmp(path, "/v1/jobs", 8) == 0) {
		parse_jobs(path + 8, rt);
		return;
	}
	/* The job page's view: only the job itself and its outputs. */
	if (strncmp(path, "/v1/public/jobs", 15) != 0)
		return;
	parse_jobs(path + 15, rt);
	if (rt->id == ROUTE_JOB)
		rt->id = ROUTE_PUBLIC_JOB;
	else if (rt->id == ROUTE_JOB_OUTPUT)
		rt->id = ROUTE_PUBLIC_OUTPUT;
	else
		rt->id = ROUTE_NONE;
}

const char *
route_allow(enum route_id id)
{
	switch (id) {
	case ROUTE_HEALTHZ:
	case ROUTE_JOB:
	case ROUTE_JOB_EVENTS:
	case ROUTE_JOB_OUTPUT:
	case ROUTE_PUBLIC_JOB:
	case ROUTE_PUBLIC_OUTPUT:
	case ROUTE_ME:
	case ROUTE_QUEUES:
	case ROUTE_METRICS:
		return "GET, HEAD";
	case ROUTE_JOBS:
		return "GET, HEAD, POST";
	case ROUTE_JOB_CANCEL:
	case ROUTE_JOB_REGENERATE:
	case ROUTE_ADMIN_APPROVE:
	case ROUTE_ADMIN_REJECT:
	case ROUTE_ADMIN_PAUSE:
	case ROUTE_ADMIN_RESUME:
	case ROUTE_ADMIN_DRAIN:
	case ROUTE_ADMIN_UNDRAIN:
	case ROUTE_ADMIN_CREDITS:
		return "POST";
	case ROUTE_NONE:
	case ROUTE_COUNT:
		break;
	}
	return "";
}

bool
route_method_ok(enum route_id id, const char *method)
{
	const char *allow = route_allow(id), *p;
	size_t n;

	if (method == NULL || *method == '\0')
		return false;
	n = strlen(method);
	for (p = allow; (p = strstr(p, method)) != NULL; p += n) {
		bool starts = p == allow || p[-1] == ' ';
		bool ends = p[n] == '\0' || p[n] == ',';
		if (starts && ends)
			return true;
	}
	return false;
}

const char *
route_pattern(enum route_id id)
{
	static const char *const patterns[ROUTE_COUNT] = {
		[ROUTE_NONE] = "unmatched",
		[ROUTE_HEALTHZ] = "/healthz",
		[ROUTE_JOBS] = "/v1/jobs",
		[ROUTE_JOB] = "/v1/jobs/{id}",
		[ROUTE_JOB_CANCEL] = "/v1/jobs/{id}/cancel",
		[ROUTE_JOB_EVENTS] = "/v1/jobs/{id}/events",
		[ROUTE_JOB_OUTPUT] = "/v1/jobs/{id}/outputs/{n}",
		[ROUTE_JOB_REGENERATE] = "/v1/jobs/{id}/regenerate",
		[ROUTE_ME] = "/v1/me",
		[ROUTE_QUEUES] = "/v1/queues",
		[ROUTE_PUBLIC_JOB] = "/v1/public/jobs/{id}",
		[ROUTE_PUBLIC_OUTPUT] = "/v1/public/jobs/{id}/outputs/{n}",
		[ROUTE_METRICS] = "/metrics",
		[ROUTE_ADMIN_APPROVE] = "/v1/admin/jobs/{id}/approve",
		[ROUTE_ADMIN_REJECT] = "/v1/admin/jobs/{id}/reject",
		[ROUTE_ADMIN_PAUSE] = "/v1/admin/queues/{name}/pause",
		[ROUTE_ADMIN_RESUME] = "/v1/admin/queues/{name}/resume",
		[ROUTE_ADMIN_DRAIN] = "/v1/admin/backends/{name}/drain",
		[ROUTE_ADMIN_UNDRAIN] = "/v1/admin/backends/{name}/undrain",
		[ROUTE_ADMIN_CREDITS] = "/v1/admin/credits",
	};

	return (unsigned)id < ROUTE_COUNT && patterns[id] ? patterns[id] : "unmatched";
}
