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

void
route_parse(const char *path, struct route *rt)
{
	rt->id = ROUTE_NONE;
	rt->job_id[0] = '\0';
	rt->output = -1;

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
		return "GET, HEAD";
	case ROUTE_JOBS:
		return "GET, HEAD, POST";
	case ROUTE_JOB_CANCEL:
	case ROUTE_JOB_REGENERATE:
		return "POST";
	case ROUTE_NONE:
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
