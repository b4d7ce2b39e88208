#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "comfy.h"
#include "comfyws.h"
#include "config.h"
#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"
#include "jobevent.h"
#include "jsonutil.h"

/* Reply size limits. A history entry repeats the whole workflow, and the
 * queue lists every pending workflow of every tenant, hence their room. */
#define SUBMIT_REPLY_MAX (1u << 20)
#define HISTORY_REPLY_EXTRA (8u << 20)
#define QUEUE_REPLY_MAX (32u << 20)
#define SMALL_REPLY_MAX (1u << 20)

#define US_PER_MS 1000LL
#define REATTACH_RETRY_US (1000 * US_PER_MS)
/* /history says nothing about a prompt the backend forgot (a restart): it
 * stays {} forever. Now and then a tracked prompt is looked up in /queue. */
#define VERIFY_EVERY_US (10000 * US_PER_MS)
/* While the backend's event stream is up, its end events bring /history
 * requests forward; the polling that remains is only the fallback for a
 * stalled stream or a missed event, hence slower. */
#define STREAM_POLL_FACTOR 10
#define STREAM_POLL_MAX_US (2000 * US_PER_MS)
/* ComfyUI sends execution_success just before it writes the history entry:
 * an end event is followed by quick re-polls, this many at most. */
#define END_REPOLL_US (10 * US_PER_MS)
#define END_REPOLLS 20


/* Where an active run stands (run->phase). */
enum phase {
	P_SUBMIT,          /* POST /prompt in flight */
	P_TRACK,           /* polling /history until the prompt ends */
	P_TRACK_BLIND,     /* the same for a prompt re-attached to, whose events
	                    * may go to another client id: no slower polling */
	P_RE_HISTORY,      /* re-attach: is it finished? */
	P_RE_QUEUE,        /* re-attach, or P_TRACK's check: is it queued or running? */
	P_VERIFY_BLIND,    /* P_TRACK_BLIND's check: the same */
	P_RE_HISTORY2,     /* re-attach: did it finish meanwhile? else lost */
	P_STOP_DELETE,     /* POST /queue {"delete": [id]} in flight */
	P_STOP_INTERRUPT,  /* POST /interrupt {"prompt_id": id} in flight */
};

static int64_t
poll_us(const struct genqd *g)
{
	return (int64_t)g->cfg->history_poll_ms * US_PER_MS;
}

/* The next /history poll of a tracked run. */
static int64_t
track_poll_us(const struct genqd *g, const struct run *r)
{
	int64_t us = poll_us(g);

	if (r->phase == P_TRACK && comfyws_up(g, r->backend->id)) {
		us *= STREAM_POLL_FACTOR;
		if (us > STREAM_POLL_MAX_US)
			us = STREAM_POLL_MAX_US;
		if (us < poll_us(g))
			us = poll_us(g);
	}
	return us;
}

static size_t
history_limit(const struct genqd *g)
{
	return HISTORY_REPLY_EXTRA + 2 * (size_t)g->cfg->max_body_bytes;
}

/* base + path + suffix into out (reset first). */
static int
make_url(struct buf *out, const struct backend *b, const char *path, const char *suffix)
{
	buf_reset(out);
	if (comfy_url(out, b->url, path) < 0)
		return -1;
	if (suffix != NULL && buf_append(out, suffix, strlen(suffix)) < 0)
		return -1;
	return 0;
}

static void comfy_stop(struct genqd *g, struct run *r);
static void on_history(const struct http_result *res, void *arg);
static void on_queue(const struct http_result *res, void *arg);

/* ---- submit ---------------------------------------------------------- */

static void
on_submit(const struct http_result *res, void *arg)
{
	struct run *r = arg;
	struct genqd *g = r->g;
	char msg[COMFY_MSG_MAX];

	r->req = NULL;
	r->submitting = false;
	if (res->curl_code != 0) {
		if (!run_request_failed(g, r, res, "submit"))
			return;
		if (res->not_sent) {
			run_fail(g, r, "backend_unreachable", true, "backend %s: %s",
			    r->backend->name, res->error);
			return;
		}
		/* It may or may not have arrived: ask the backend before
		 * deciding, never send the same prompt again. */
		r->phase = P_RE_HISTORY;
		r->next_at = gq_mono_us() + REATTACH_RETRY_US;
		if (r->stop_wanted)
			comfy_stop(g, r);      /* delete + interrupt cover both cases */
		return;
	}
	switch (comfy_parse_submit(res->status, res->body, res->len, msg, sizeof msg)) {
	case COMFY_SUBMIT_OK:
		backend_ok(g, r->backend);
		run_mark_submitted(g, r);
		run_log(info, "job_submitted", r, "%s", "");
		r->phase = P_TRACK;
		/* An end event may have come before this reply (a quick prompt). */
		r->next_at = gq_mono_us() + (r->end_hints > 0 ? 0 : track_poll_us(g, r));
		r->verify_at = gq_mono_us() + poll_us(g) + VERIFY_EVERY_US;
		if (r->stop_wanted)
			comfy_stop(g, r);
		return;
	case COMFY_SUBMIT_INVALID:
		backend_ok(g, r->backend);
		run_fail(g, r, "validation_error", false, "%s", msg);
		return;
	case COMFY_SUBMIT_ERROR:
		if (res->status >= 500 && !run_request_failed(g, r, res, "submit"))
			return;
		run_fail(g, r, "backend_error", true, "%s", msg);
		return;
	}
}

static void
comfy_submit(struct genqd *g, struct run *r)
{
	struct buf url, body;

	/* Parent outputs named in the input are uploaded first (deps.c);
	 * it calls comfy_submit again when the input is ready. */
	if (deps_prepare(g, r, comfy_submit))
		return;
	if (!run_lease_fresh(g, r)) {
		run_abandon(g, r);
		return;
	}
	buf_init(&url, 0);
	buf_init(&body, 0);
	r->phase = P_SUBMIT;
	if (make_url(&url, r->backend, "/prompt", NULL) < 0 ||
	    comfy_submit_body(&body, r->input, r->input_len, g->id, r->prompt_id) < 0) {
		run_fail(g, r, "backend_error", true, "out of memory building the request");
		goto out;
	}
	free(r->input);
	r->input = NULL;
	r->req = http_post_json(g->http, url.data, body.data, body.len, SUBMIT_REPLY_MAX,
	    on_submit, r);
	if (r->req == NULL) {
		run_fail(g, r, "backend_error", true, "cannot start the request");
		goto out;
	}
	r->submitting = true;
out:
	buf_free(&url);
	buf_free(&body);
}

/* ---- history, queue -------------------------------------------------- */

static void
start_get(struct genqd *g, struct run *r, const char *path, const char *suffix,
    size_t limit, http_done_fn done)
{
	struct buf url;

	buf_init(&url, 0);
	if (make_url(&url, r->backend, path, suffix) < 0 ||
	    (r->req = http_get(g->http, url.data, limit, done, r)) == NULL)
		r->next_at = gq_mono_us() + REATTACH_RETRY_US;    /* try again later */
	buf_free(&url);
}

static void
comfy_poll(struct genqd *g, struct run *r)
{
	if ((r->phase == P_TRACK || r->phase == P_TRACK_BLIND) && gq_mono_us() >= r->verify_at)
		r->phase = r->phase == P_TRACK ? P_RE_QUEUE : P_VERIFY_BLIND;
	switch (r->phase) {
	case P_TRACK:
	case P_TRACK_BLIND:
	case P_RE_HISTORY:
	case P_RE_HISTORY2:
		start_get(g, r, "/history/", r->prompt_id, history_limit(g), on_history);
		break;
	case P_RE_QUEUE:
	case P_VERIFY_BLIND:
		start_get(g, r, "/queue", NULL, QUEUE_REPLY_MAX, on_queue);
		break;
	default:
		break;
	}
}

static void
comfy_reattach(struct genqd *g, struct run *r)
{
	r->phase = P_RE_HISTORY;
	r->next_at = 0;
}

/* The prompt succeeded: hand its files to outputs.c. */
static void
fetch_outputs(struct genqd *g, struct run *r, struct comfy_history *h)
{
	char **urls = calloc(h->nfiles + 1, sizeof *urls);
	char **names = calloc(h->nfiles + 1, sizeof *names);
	struct buf url;
	size_t i;

	if (h->start_ms > 0 && h->end_ms >= h->start_ms)
		r->out.run_ms = h->end_ms - h->start_ms;
	/* /history says it ended: the backend can start the next prompt while
	 * this one's files come over. */
	run_vacate(g, r);
	if (h->files_truncated)
		run_log(warn, "outputs_truncated", r, " kept=%zu", h->nfiles);
	if (urls == NULL || names == NULL)
		goto oom;
	for (i = 0; i < h->nfiles; i++) {
		buf_init(&url, 0);
		if (comfy_view_url(&url, r->backend->url, &h->files[i]) < 0) {
			buf_free(&url);
			goto oom;
		}
		urls[i] = buf_steal(&url, NULL);
		names[i] = h->files[i].filename;
	}
	outputs_fetch(g, r, urls, names, h->nfiles);
	goto out;
oom:
	run_fail(g, r, "output_error", true, "out of memory listing outputs");
out:
	for (i = 0; urls != NULL && i < h->nfiles; i++)
		free(urls[i]);
	free(urls);
	free(names);
}

static void
on_history(const struct http_result *res, void *arg)
{
	struct run *r = arg;
	struct genqd *g = r->g;
	struct comfy_history h;

	r->req = NULL;
	if (res->too_large) {
		run_fail(g, r, "backend_error", false, "history reply over %zu bytes",
		    history_limit(g));
		return;
	}
	if (res->curl_code != 0 || res->status != 200) {
		if (run_request_failed(g, r, res, "history"))
			r->next_at = gq_mono_us() +
			    (r->phase == P_TRACK || r->phase == P_TRACK_BLIND ?
			    poll_us(g) : REATTACH_RETRY_US);
		return;
	}
	backend_ok(g, r->backend);
	switch (comfy_parse_history(res->body, res->len, r->prompt_id, &h)) {
	case COMFY_PENDING:
		if (r->phase == P_RE_HISTORY) {
			r->phase = P_RE_QUEUE;
			r->next_at = 0;
		} else if (r->phase == P_RE_HISTORY2) {
			run_log(warn, "job_lost", r, "%s", "");
			run_fail(g, r, "lost", true,
			    "backend %s does not know the prompt (restarted?)", r->backend->name);
		} else if (r->end_hints > 0) {
			r->end_hints--;
			r->next_at = gq_mono_us() + END_REPOLL_US;
		} else {
			r->next_at = gq_mono_us() + track_poll_us(g, r);
		}
		break;
	case COMFY_SUCCESS:
		fetch_outputs(g, r, &h);
		break;
	case COMFY_FAILED:
		run_fail(g, r, "execution_error", false, "%s", h.message);
		break;
	case COMFY_OOM:
		run_fail(g, r, "out_of_memory", true, "%s", h.message);
		break;
	case COMFY_INTERRUPTED:
		run_fail(g, r, "interrupted", true, "interrupted on backend %s, not by genq",
		    r->backend->name);
		break;
	case COMFY_BAD_REPLY:
		run_fail(g, r, "backend_error", true, "%s", h.message);
		break;
	}
	comfy_history_free(&h);
}

static void
on_queue(const struct http_result *res, void *arg)
{
	struct run *r = arg;
	struct genqd *g = r->g;
	int has;

	r->req = NULL;
	if (res->curl_code != 0 || res->status != 200) {
		if (run_request_failed(g, r, res, "queue"))
			r->next_at = gq_mono_us() + REATTACH_RETRY_US;
		return;
	}
	backend_ok(g, r->backend);
	has = comfy_queue_has(res->body, res->len, r->prompt_id);
	if (has < 0) {
		/* Unreadable: ask again; timeout_s bounds how long. */
		run_log(warn, "backend_bad_reply", r, " step=queue");
		r->next_at = gq_mono_us() + REATTACH_RETRY_US;
		return;
	}
	if (has) {
		if (r->verify_at == 0)
			run_log(info, "job_reattached", r, " where=queue");
		r->phase = r->verify_at == 0 || r->phase == P_VERIFY_BLIND ?
		    P_TRACK_BLIND : P_TRACK;
		r->next_at = gq_mono_us() + track_poll_us(g, r);
		r->verify_at = r->next_at + VERIFY_EVERY_US;
		return;
	}
	r->phase = P_RE_HISTORY2;
	r->next_at = 0;
}

/* ---- stop: delete if pending, interrupt if running ------------------ */

static void
on_stop_step(const struct http_result *res, void *arg)
{
	struct run *r = arg;
	struct genqd *g = r->g;
	struct buf url, body;
	bool deleting = r->phase == P_STOP_DELETE;

	r->req = NULL;
	if (res->curl_code != 0 || res->status >= 300) {
		if (!run_request_failed(g, r, res, deleting ? "delete" : "interrupt"))
			return;
	}
	if (!deleting) {
		run_end(g, r);
		return;
	}
	/* Deleted from the pending list if it was there; now make sure it
	 * is not the one running. Only this prompt is named: a bare
	 * /interrupt would stop another tenant's job. */
	buf_init(&url, 0);
	buf_init(&body, 0);
	r->phase = P_STOP_INTERRUPT;
	if (make_url(&url, r->backend, "/interrupt", NULL) < 0 ||
	    comfy_interrupt_body(&body, r->prompt_id) < 0 ||
	    (r->req = http_post_json(g->http, url.data, body.data, body.len, SMALL_REPLY_MAX,
	    on_stop_step, r)) == NULL)
		run_end(g, r);
	buf_free(&url);
	buf_free(&body);
}

static void
comfy_stop(struct genqd *g, struct run *r)
{
	struct buf url, body;

	if (r->submitting) {
		/* Whether it arrives is unknown until the reply: stop after. */
		r->stop_wanted = true;
		return;
	}
	http_cancel(g->http, r->req);
	r->req = NULL;
	r->state = RUN_STOPPING;
	r->phase = P_STOP_DELETE;
	buf_init(&url, 0);
	buf_init(&body, 0);
	if (make_url(&url, r->backend, "/queue", NULL) < 0 ||
	    comfy_delete_body(&body, r->prompt_id) < 0 ||
	    (r->req = http_post_json(g->http, url.data, body.data, body.len, SMALL_REPLY_MAX,
	    on_stop_step, r)) == NULL)
		run_end(g, r);
	buf_free(&url);
	buf_free(&body);
}

/* ---- health ---------------------------------------------------------- */

static void
comfy_probe(struct genqd *g, struct backend *b)
{
	struct buf url;

	buf_init(&url, 0);
	if (make_url(&url, b, "/system_stats", NULL) == 0)
		backend_probe_json(g, b, url.data, "system_stats", NULL);
	buf_free(&url);
}

/* ---- forget: stop a prompt genq gave up on -------------------------- */

struct forget {
	struct genqd *g;
	char *interrupt_url;
	char prompt_id[GQ_UUID_LEN];
};

static void
forget_free(void *arg)
{
	struct forget *f = arg;

	free(f->interrupt_url);
	free(f);
}

static void
on_forget_interrupt(const struct http_result *res, void *arg)
{
	(void)res;
	forget_free(arg);
}

static void
on_forget_delete(const struct http_result *res, void *arg)
{
	struct forget *f = arg;
	struct http_req *req = NULL;
	struct buf body;

	(void)res;
	buf_init(&body, 0);
	if (comfy_interrupt_body(&body, f->prompt_id) == 0)
		req = http_post_json(f->g->http, f->interrupt_url, body.data, body.len,
		    SMALL_REPLY_MAX, on_forget_interrupt, f);
	buf_free(&body);
	if (req == NULL)
		forget_free(f);
	else
		http_on_drop(req, forget_free);
}

static void
comfy_forget(struct genqd *g, struct backend *b, const char *prompt_id)
{
	struct forget *f = calloc(1, sizeof *f);
	struct http_req *req = NULL;
	struct buf url, body;

	buf_init(&url, 0);
	buf_init(&body, 0);
	if (f == NULL)
		goto out;
	f->g = g;
	snprintf(f->prompt_id, sizeof f->prompt_id, "%s", prompt_id);
	if (make_url(&url, b, "/interrupt", NULL) < 0 ||
	    (f->interrupt_url = buf_steal(&url, NULL)) == NULL ||
	    make_url(&url, b, "/queue", NULL) < 0 ||
	    comfy_delete_body(&body, prompt_id) < 0 ||
	    (req = http_post_json(g->http, url.data, body.data, body.len, SMALL_REPLY_MAX,
	    on_forget_delete, f)) == NULL) {
		forget_free(f);
		goto out;
	}
	http_on_drop(req, forget_free);
	log_info("prompt_forgotten", "backend=%s prompt_id=%s", b->name, prompt_id);
out:
	buf_free(&url);
	buf_free(&body);
}

/* ---- the event stream (comfyws.c) ----------------------------------- */

void
comfy_event(struct genqd *g, struct run *r, const struct comfy_evt *e)
{
	double f;

	if (r->state != RUN_ACTIVE)
		return;
	/* Its events come here after all: the stream can pace its polling. */
	if (r->phase == P_TRACK_BLIND)
		r->phase = P_TRACK;
	switch (e->kind) {
	case CEVT_PROGRESS:
		if ((f = comfy_evt_fraction(e)) > 0)
			run_progress(g, r, f);
		break;
	case CEVT_ENDING:
	case CEVT_ENDED:
		/* A hint, never the verdict: /history confirms, now. */
		run_log(debug, "job_end_heard", r, " event=%s", e->type);
		r->end_hints = END_REPOLLS;
		if (r->phase == P_TRACK && r->req == NULL)
			r->next_at = 0;
		break;
	default:
		break;
	}
}

void
comfy_stream_opened(struct genqd *g, struct run *r)
{
	(void)g;
	if ((r->phase == P_TRACK || r->phase == P_TRACK_BLIND) && r->req == NULL)
		r->next_at = 0;
}

const struct proto comfy_proto = {
	.type = "comfyui",
	.submit = comfy_submit,
	.reattach = comfy_reattach,
	.poll = comfy_poll,
	.stop = comfy_stop,
	.probe = comfy_probe,
	.forget = comfy_forget,
};
