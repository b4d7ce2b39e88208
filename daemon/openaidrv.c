/* The OpenAI-compatible protocol driver (llama.cpp server, vLLM, ...);
 * openai.c holds its pure parsing.
 *
 * The job's input is the request body. Its shape picks the endpoint: an
 * input with "messages" goes to POST /v1/chat/completions as it is; one
 * with "prompt" and no "messages" goes to POST /v1/images/generations with
 * response_format forced to b64_json. One attempt is one HTTP request: the
 * reply is the result, so there is nothing to poll. With "stream": true the
 * server-sent events are read as they come (live progress from the tokens
 * received against max_tokens, at most one database write a second);
 * otherwise the whole reply is read. Texts become text outputs, images are
 * decoded into the output store.
 *
 * Stopping (cancel, timeout_s) closes the connection: that is how an
 * OpenAI-style request is canceled, and llama.cpp and vLLM stop generating
 * when their client goes away. These servers keep no record of a request,
 * so an attempt cannot be re-attached after genqd restarts: its connection
 * died with the old genqd (and the generation with it), so recovery counts
 * the attempt as lost (retryable) and the job runs again under a new
 * attempt. Nothing was charged for the lost attempt: only a success
 * charges. */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"
#include "jobevent.h"
#include "jsonutil.h"
#include "openai.h"
#include "policy.h"


#define SMALL_REPLY_MAX (1u << 20)
#define ERROR_HEAD_MAX (64u << 10)        /* kept of a streamed reply for its error */
#define TEXT_ROW_MAX ((16u << 20) - 1)    /* a MEDIUMTEXT */
#define TIMEOUT_SLACK_S 30                /* sweep.c's timeout_s ends it first */

/* One request in flight: the arg of its http_req, freed with it. */
struct call {
	struct run *r;
	struct oai_request req;
	struct oai_stream st;             /* streamed chat */
	struct buf head;                  /* a stream's first bytes: its error if not 200 */
};

static void
call_free(void *arg)
{
	struct call *c = arg;

	if (c == NULL)
		return;
	oai_stream_free(&c->st);
	buf_free(&c->head);
	free(c);
}

static size_t
text_max(const struct genqd *g)
{
	size_t m = (size_t)g->cfg->max_output_bytes;

	return m < TEXT_ROW_MAX ? m : TEXT_ROW_MAX;
}

/* How much of a reply to read: a text can be escaped to 6 bytes a byte in
 * JSON, a stream spends about fifty bytes of framing on each token, and
 * base64 takes 4 bytes for 3. */
static size_t
reply_limit(const struct genqd *g, const struct call *c)
{
	size_t n = c->req.n > 0 ? (size_t)c->req.n : 1;

	if (c->req.kind == OAI_IMAGES)
		return ((size_t)g->cfg->max_output_bytes / 3 + 2) * 4 * n + SMALL_REPLY_MAX;
	if (c->req.stream)
		return text_max(g) * 64 + SMALL_REPLY_MAX;
	return text_max(g) * 6 + SMALL_REPLY_MAX;
}

/* ---- results ------------------------------------------------------------ */

/* r succeeded with texts t: they become its text outputs. */
static void
end_with_texts(struct genqd *g, struct run *r, struct oai_texts *t)
{
	struct stored_output *outs = calloc(t->n, sizeof *outs);

	if (outs == NULL) {
		run_fail(g, r, "output_error", true, "out of memory");
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		size_t len = 0;
		char *s = buf_steal(&t->text[i], &len);

		if (s == NULL && (s = strdup("")) == NULL) {
			for (size_t j = 0; j < i; j++)
				free(outs[j].text);
			free(outs);
			run_fail(g, r, "output_error", true, "out of memory");
			return;
		}
		/* The database takes valid UTF-8 only, and NUL ends a C string. */
		for (size_t k = 0; k < len; k++)
			if (s[k] == '\0')
				s[k] = '?';
		policy_utf8_fix(s);
		outs[i].text = s;
		outs[i].text_len = strlen(s);
		outs[i].bytes = (int64_t)outs[i].text_len;
	}
	free(r->out.outputs);
	r->out.outputs = outs;
	r->out.noutputs = t->n;
	r->out.kind = OUTCOME_SUCCEEDED;
	/* Debug: at info the attempt's lines are job_started and job_succeeded
	 * (one request, nothing between them worth a line per job). */
	run_log(debug, "job_generated", r, " texts=%zu tokens=%lld finish=%s", t->n,
	    (long long)t->tokens, t->finish[0] ? t->finish : "?");
	run_end(g, r);
}

/* r succeeded with images: store them, then end. */
static void
end_with_images(struct genqd *g, struct run *r, struct oai_images *im)
{
	struct stored_output *outs = calloc(im->n, sizeof *outs);

	if (outs == NULL) {
		run_fail(g, r, "output_error", true, "out of memory");
		return;
	}
	r->state = RUN_FETCHING;
	free(r->out.outputs);
	r->out.outputs = outs;
	r->out.noutputs = 0;
	for (size_t i = 0; i < im->n; i++) {
		if (outputs_store_bytes(g, r, i, im->img[i].data, im->img[i].len, im->img[i].ext,
		    &outs[i]) < 0) {
			run_fail(g, r, "output_error", true, "cannot store output %zu: %s", i,
			    strerror(errno));
			return;
		}
		r->out.noutputs = i + 1;
		run_log(debug, "output_stored", r, " index=%zu bytes=%lld path=%s", i,
		    (long long)outs[i].bytes, outs[i].path);
	}
	r->out.kind = OUTCOME_SUCCEEDED;
	run_end(g, r);
}

/* A reply's result as a failure of r. */
static void
fail_result(struct genqd *g, struct run *r, enum oai_result rc, const char *msg)
{
	switch (rc) {
	case OAI_TOO_LARGE:
		run_fail(g, r, "output_too_large", false, "%s", msg);
		break;
	case OAI_SERVER_ERROR:
		run_fail(g, r, "backend_error", true, "backend %s: %s", r->backend->name, msg);
		break;
	default:
		run_fail(g, r, "backend_error", true, "backend %s: bad reply: %s", r->backend->name,
		    msg);
		break;
	}
}

/* The request ended without a whole 200 answer. body: what came of an
 * error reply; limit: the reply's size limit. */
static void
fail_request(struct genqd *g, struct run *r, const struct http_result *res, const char *body,
    size_t len, size_t limit)
{
	char msg[OAI_MSG_MAX];

	if (res->too_large && (res->status == 200 || res->status == 0)) {
		run_fail(g, r, "output_too_large", false, "the reply is over %zu bytes", limit);
		return;
	}
	if (res->status != 0 && res->status != 200)
		goto answered;
	if (res->curl_code != 0) {
		if (!run_request_failed(g, r, res, "request"))
			return;
		run_fail(g, r, res->not_sent ? "backend_unreachable" : "backend_error", true,
		    "backend %s: %s", r->backend->name, res->error);
		return;
	}
answered:
	switch (oai_classify(res->status, body, len, msg, sizeof msg)) {
	case OAI_INVALID:
		backend_ok(g, r->backend);
		run_fail(g, r, "invalid_request", false, "%s", msg);
		break;
	case OAI_NO_MODEL:
		backend_ok(g, r->backend);
		run_fail(g, r, "model_not_found", false, "%s", msg);
		break;
	case OAI_RETRY:
		if (res->status >= 500 && !run_request_failed(g, r, res, "request"))
			return;
		run_fail(g, r, "backend_error", true, "backend %s: %s", r->backend->name, msg);
		break;
	}
}

/* ---- submit -------------------------------------------------------------- */

static int
on_stream_bytes(const void *data, size_t len, void *arg)
{
	struct call *c = arg;
	size_t keep = c->head.len < ERROR_HEAD_MAX ? ERROR_HEAD_MAX - c->head.len : 0;
	int64_t tokens;

	if (keep > 0 && buf_append(&c->head, data, len < keep ? len : keep) < 0)
		return -1;
	/* Stop reading at the first error; on_reply says why. */
	if (oai_stream_feed(&c->st, data, len) != OAI_OK)
		return -1;
	tokens = c->st.usage_tokens >= 0 ? c->st.usage_tokens : c->st.chunks;
	run_progress(c->r->g, c->r, oai_progress(tokens, c->req.max_tokens));
	return 0;
}

static void
on_reply(const struct http_result *res, void *arg)
{
	struct call *c = arg;
	struct run *r = c->r;
	struct genqd *g = r->g;
	char msg[OAI_MSG_MAX] = "";
	enum oai_result rc;

	r->req = NULL;
	if (c->req.stream) {
		if (res->status == 200 && (res->sink_failed || res->curl_code == 0)) {
			rc = res->sink_failed ? c->st.result : oai_stream_end(&c->st);
			if (rc == OAI_OK) {
				backend_ok(g, r->backend);
				end_with_texts(g, r, &c->st.texts);
			} else {
				fail_result(g, r, rc, c->st.msg);
			}
		} else {
			fail_request(g, r, res, c->head.data != NULL ? c->head.data : "", c->head.len,
			    reply_limit(g, c));
		}
		goto out;
	}
	if (res->curl_code != 0 || res->status != 200) {
		fail_request(g, r, res, res->body, res->len, reply_limit(g, c));
		goto out;
	}
	backend_ok(g, r->backend);
	if (c->req.kind == OAI_CHAT) {
		struct oai_texts t;

		oai_texts_init(&t, text_max(g));
		if ((rc = oai_parse_chat(res->body, res->len, &t, msg, sizeof msg)) == OAI_OK)
			end_with_texts(g, r, &t);
		else
			fail_result(g, r, rc, msg);
		oai_texts_free(&t);
	} else {
		struct oai_images im;

		rc = oai_parse_images(res->body, res->len, (size_t)g->cfg->max_output_bytes, &im,
		    msg, sizeof msg);
		if (rc == OAI_OK)
			end_with_images(g, r, &im);
		else
			fail_result(g, r, rc, msg);
		oai_images_free(&im);
	}
out:
	call_free(c);
}

/* "Authorization: Bearer <token>" for b from [backend_keys] into buf, or
 * NULL when it has none (vLLM's and llama.cpp's --api-key). */
#define AUTH_HEADER_MAX (CONFIG_BACKEND_TOKEN_MAX + 32)

static const char *
auth_header(const struct genqd *g, const struct backend *b, char buf[AUTH_HEADER_MAX])
{
	const char *token = config_backend_key(g->cfg, b->name);

	if (token == NULL)
		return NULL;
	snprintf(buf, AUTH_HEADER_MAX, "Authorization: Bearer %s", token);
	return buf;
}

static void
openai_submit(struct genqd *g, struct run *r)
{
	struct call *c;
	struct buf url, body;
	char msg[OAI_MSG_MAX] = "", rid[GQ_UUID_LEN + 16], auth[AUTH_HEADER_MAX];
	const char *headers[3];
	struct http_post_opts opts;

	/* Parent outputs named in the input go in first (deps.c): texts as
	 * they are, files as data URLs; it calls openai_submit again. */
	if (deps_prepare(g, r, openai_submit))
		return;
	c = calloc(1, sizeof *c);
	buf_init(&url, 0);
	buf_init(&body, 0);
	if (!run_lease_fresh(g, r)) {
		free(c);
		c = NULL;
		run_abandon(g, r);
		goto out;
	}
	if (c == NULL) {
		run_fail(g, r, "backend_error", true, "out of memory");
		goto out;
	}
	c->r = r;
	buf_init(&c->head, 0);
	oai_stream_init(&c->st, text_max(g));
	if (oai_prepare(r->input, r->input_len, &c->req, &body, msg, sizeof msg) < 0) {
		run_fail(g, r, "invalid_request", false, "%s", msg);
		goto out;
	}
	if (oai_url(&url, r->backend->url,
	    c->req.kind == OAI_CHAT ? "/chat/completions" : "/images/generations") < 0) {
		run_fail(g, r, "backend_error", true, "out of memory building the request");
		goto out;
	}
	free(r->input);
	r->input = NULL;
	/* The attempt's own id, for matching the server's logs (vLLM and
	 * others echo it). */
	snprintf(rid, sizeof rid, "X-Request-Id: %s", r->prompt_id);
	headers[0] = rid;
	headers[1] = c->req.stream ? "Accept: text/event-stream" : "Accept: application/json";
	memset(&opts, 0, sizeof opts);
	opts.headers = headers;
	opts.nheaders = 2;
	if ((headers[2] = auth_header(g, r->backend, auth)) != NULL)
		opts.nheaders = 3;
	/* A generation may take as long as its job may: timeout_s (sweep.c)
	 * ends it; this is only the backstop. */
	opts.timeout_s = (r->timeout_s > 0 ? r->timeout_s : g->cfg->http_timeout_s) + TIMEOUT_SLACK_S;
	opts.sink = c->req.stream ? on_stream_bytes : NULL;
	r->req = http_post(g->http, url.data, body.data, body.len, &opts, reply_limit(g, c),
	    on_reply, c);
	if (r->req == NULL) {
		run_fail(g, r, "backend_error", true, "cannot start the request");
		goto out;
	}
	http_on_drop(r->req, call_free);
	r->phase = 0;
	run_mark_submitted(g, r);
	run_log(debug, "job_submitted", r, " endpoint=%s stream=%d",
	    c->req.kind == OAI_CHAT ? "chat" : "images", (int)c->req.stream);
	c = NULL;                         /* the request owns it now */
out:
	call_free(c);
	buf_free(&url);
	buf_free(&body);
}

/* ---- the rest of the protocol --------------------------------------------- */

static void
openai_reattach(struct genqd *g, struct run *r)
{
	run_log(warn, "job_lost", r, " note=\"OpenAI-style requests cannot be re-attached\"");
	run_fail(g, r, "lost", true,
	    "genqd restarted during the request; backend %s keeps no record of it, so it runs again",
	    r->backend->name);
}

static void
openai_poll(struct genqd *g, struct run *r)
{
	/* Every attempt is one request, ended by its callback: a run with no
	 * request in flight has lost it. */
	run_fail(g, r, "backend_error", true, "no request in flight");
}

static void
openai_stop(struct genqd *g, struct run *r)
{
	/* Closing the connection is how an OpenAI-style request is canceled. */
	http_cancel(g->http, r->req);
	r->req = NULL;
	r->state = RUN_STOPPING;
	run_log(info, "request_closed", r, " why=%s", r->out.kind == OUTCOME_CANCELED ?
	    "cancel" : "timeout");
	run_end(g, r);
}

/* GET /v1/models: every OpenAI-compatible server has it, and llama.cpp
 * answers it 503 while its model loads. With the server's API key: a
 * wrong or missing one answers 401, and the backend stays down. */
static void
openai_probe(struct genqd *g, struct backend *b)
{
	char auth[AUTH_HEADER_MAX];
	struct buf url;

	buf_init(&url, 0);
	if (oai_url(&url, b->url, "/models") == 0)
		backend_probe_json(g, b, url.data, "models", auth_header(g, b, auth));
	buf_free(&url);
}

static void
openai_forget(struct genqd *g, struct backend *b, const char *prompt_id)
{
	/* The request died with its connection: nothing to remove. */
	(void)g;
	log_debug("prompt_forgotten", "backend=%s prompt_id=%s note=\"no server-side record\"",
	    b->name, prompt_id);
}

const struct proto openai_proto = {
	.type = "openai",
	.submit = openai_submit,
	.reattach = openai_reattach,
	.poll = openai_poll,
	.stop = openai_stop,
	.probe = openai_probe,
	.forget = openai_forget,
};
