/* dispatch: one request from its CGI variables to the written answer.
 * Order: route, method, authentication, handler. Every path through here
 * ends in exactly one resp_send. */
#include "autoconf.h"

#include <string.h>

#include "app.h"
#include "gqtime.h"
#include "log.h"

static const struct {
	enum route_id route;
	const char *method;       // after HEAD -> GET
	void (*handler)(struct ctx *c);
	bool auth;
} handlers[] = {
	{ ROUTE_HEALTHZ, "GET", jobs_healthz, false },
	{ ROUTE_JOBS, "POST", submit_job, true },
	{ ROUTE_JOBS, "GET", listing_jobs, true },
	{ ROUTE_JOB_REGENERATE, "POST", regenerate_job, true },
	{ ROUTE_ME, "GET", me_get, true },
	{ ROUTE_QUEUES, "GET", queues_get, true },
	{ ROUTE_JOB, "GET", jobs_get, true },
	{ ROUTE_JOB_OUTPUT, "GET", jobs_output, true },
	{ ROUTE_JOB_EVENTS, "GET", jobs_events, true },
	{ ROUTE_JOB_CANCEL, "POST", jobs_cancel, true },
	{ ROUTE_PUBLIC_JOB, "GET", public_job, false },
	{ ROUTE_PUBLIC_OUTPUT, "GET", public_output, false },
	/* No key: Prometheus scrapers rarely have one; nginx restricts it. */
	{ ROUTE_METRICS, "GET", metrics_get, false },
	{ ROUTE_ADMIN_APPROVE, "POST", admin_approve, true },
	{ ROUTE_ADMIN_REJECT, "POST", admin_reject, true },
	{ ROUTE_ADMIN_PAUSE, "POST", admin_pause, true },
	{ ROUTE_ADMIN_RESUME, "POST", admin_resume, true },
	{ ROUTE_ADMIN_DRAIN, "POST", admin_drain, true },
	{ ROUTE_ADMIN_UNDRAIN, "POST", admin_undrain, true },
	{ ROUTE_ADMIN_CREDITS, "POST", admin_credits, true },
};

static void
handle(struct ctx *c, const char *path)
{
	route_parse(path, &c->route);
	if (c->route.id == ROUTE_NONE) {
		resp_problem(c->resp, P_NOT_FOUND, "No such resource.", NULL);
		return;
	}
	if (!route_method_ok(c->route.id, c->method)) {
		resp_header(c->resp, "Allow", "%s", route_allow(c->route.id));
		resp_problem(c->resp, P_METHOD_NOT_ALLOWED, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
		if (handlers[i].route != c->route.id || strcmp(handlers[i].method, c->method) != 0)
			continue;
		/* §3: rate limiting of the caller goes right after auth. */
		if (handlers[i].auth && auth_caller(c) < 0)
			return;
		handlers[i].handler(c);
		return;
	}
	/* Allowed but not built (none today). */
	resp_header(c->resp, "Allow", "%s", route_allow(c->route.id));
	resp_problem(c->resp, P_METHOD_NOT_ALLOWED, NULL, NULL);
}

void
dispatch(struct app *app, struct req *r)
{
	char path[ROUTE_PATH_MAX];
	struct resp rs;
	struct ctx c;
	const char *method = req_param(r, "REQUEST_METHOD");
	bool head = method != NULL && strcmp(method, "HEAD") == 0;
	int64_t t0 = gq_mono_us();

	memset(&c, 0, sizeof c);
	resp_init(&rs);
	c.app = app;
	c.req = r;
	c.resp = &rs;
	c.method = head ? "GET" : method ? method : "";

	if (route_path(req_param(r, "REQUEST_URI"), req_param(r, "SCRIPT_NAME"),
	    req_param(r, "PATH_INFO"), path, sizeof path) < 0) {
		path[0] = '\0';
		resp_problem(&rs, P_NOT_FOUND, "No such resource.", NULL);
	} else {
		handle(&c, path);
	}
	if (resp_send(&rs, r, head) < 0)
		log_info("client_gone", "method=%s path=%s", log_v(c.method), log_v(path));
	metrics_count(app->cfg, c.route.id, rs.failed ? 500 : rs.status);
	if (rs.status >= 500 || rs.failed)
		log_warn("request", "method=%s path=%s status=%d us=%lld", log_v(c.method), log_v(path),
		    rs.failed ? 500 : rs.status, (long long)(gq_mono_us() - t0));
	else
		log_debug("request", "method=%s path=%s status=%d us=%lld user=%s", log_v(c.method),
		    log_v(path), rs.status, (long long)(gq_mono_us() - t0), c.caller.name);
	resp_free(&rs);
}
