#include "autoconf.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "comfy.h"
#include "comfyws.h"
#include "config.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"
#include "ws.h"

#define US_PER_MS 1000LL
#define MSG_MAX (4u << 20)              /* one message: executed lists outputs, previews are binary */
#define CONNECT_TIMEOUT_US (5000 * US_PER_MS)
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STABLE_US (30000 * US_PER_MS)   /* open this long: the next loss starts the backoff anew */
/* ComfyUI sends nothing on an idle stream; a ping shows the peer is there.
 * No message at all for DEAD_US (not even the pong) means a dead stream. */
#define PING_IDLE_US (15000 * US_PER_MS)
#define DEAD_IDLE_US (45000 * US_PER_MS)
#define FDS_STACK 64

/* One backend's stream. */
struct conn {
	struct conn *next;
	struct genqd *g;
	uint64_t backend_id;
	char name[65];                  /* the backend's, for logs */
	char *base_url;                 /* the backend URL it was made for, owned */
	struct ws *ws;                  /* NULL between tries */
	bool wanted;                    /* its backend is still leased (this tick) */
	int backoff_ms;
	int64_t retry_at;               /* next connect (when ws is NULL) */
	int64_t connect_by;             /* handshake deadline */
	int64_t opened_at;
	int64_t heard_at;               /* last message of any kind */
	unsigned long heard_count;      /* ws_received at heard_at */
	bool ping_sent;
};

struct comfyws {
	struct conn *conns;
};

static struct comfyws *
state(struct genqd *g)
{
	if (g->comfyws == NULL)
		g->comfyws = calloc(1, sizeof *g->comfyws);
	return g->comfyws;
}

static void
conn_free(struct conn *c)
{
	ws_free(c->ws);
	free(c->base_url);
	free(c);
}

/* The live run on backend_id whose prompt is prompt_id, or NULL. */
static struct run *
find_run(struct genqd *g, uint64_t backend_id, const char *prompt_id)
{
	if (prompt_id[0] == '\0')
		return NULL;
	for (struct run *r = g->runs; r != NULL; r = r->next)
		if (r->state != RUN_DEAD && r->backend->id == backend_id &&
		    strcmp(r->prompt_id, prompt_id) == 0)
			return r;
	return NULL;
}

/* ws_text_fn: one message from the backend. */
static void
on_text(const char *data, size_t len, void *arg)
{
	struct conn *c = arg;
	struct comfy_evt e;
	struct run *r;

	switch (comfy_evt_parse(data, len, &e)) {
	case CEVT_BAD:
		log_debug("ws_bad_message", "backend=%s bytes=%zu", c->name, len);
		return;
	case CEVT_IGNORED:
		return;
	default:
		break;
	}
	/* Another tenant's prompt, or one of ours that already ended. */
	if ((r = find_run(c->g, c->backend_id, e.prompt_id)) == NULL)
		return;
	comfy_event(c->g, r, &e);
}

static void
conn_lost(struct conn *c, const char *why, int64_t now)
{
	int jitter;

	if (c->opened_at != 0 && now - c->opened_at >= STABLE_US)
		c->backoff_ms = 0;
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	/* Up to a quarter more, so many genqds do not reconnect in step. */
	jitter = (int)(gq_random_u32() % (uint32_t)(c->backoff_ms / 4 + 1));
	c->retry_at = now + (int64_t)(c->backoff_ms + jitter) * US_PER_MS;
	log_warn(c->opened_at != 0 ? "ws_lost" : "ws_connect_failed",
	    "backend=%s why=\"%s\" retry_in_ms=%d", c->name, log_q(why), c->backoff_ms + jitter);
	ws_free(c->ws);
	c->ws = NULL;
	c->opened_at = 0;
}

static void
conn_opened(struct conn *c, int64_t now)
{
	struct genqd *g = c->g;

	c->opened_at = now;
	c->heard_at = now;
	c->heard_count = ws_received(c->ws);
	c->ping_sent = false;
	log_info("ws_connected", "backend=%s client_id=%s", c->name, g->id);
	/* What ended while the stream was down was not heard of: look now. */
	for (struct run *r = g->runs; r != NULL; r = r->next)
		if (r->state == RUN_ACTIVE && r->backend->id == c->backend_id)
			comfy_stream_opened(g, r);
}

static void
conn_start(struct conn *c, int64_t now)
{
	struct genqd *g = c->g;
	struct buf url;
	char err[256], *id = NULL;

	buf_init(&url, 0);
	id = curl_easy_escape(NULL, g->id, 0);
	if (id == NULL || comfy_url(&url, c->base_url, "/ws") < 0 ||
	    buf_printf(&url, "?clientId=%s", id) < 0) {
		conn_lost(c, "out of memory", now);
		goto out;
	}
	/* https backends: TLS verified like their other requests. */
	c->ws = ws_connect(url.data, g->cfg->backend_ca_file, MSG_MAX, on_text, c, err, sizeof err);
	if (c->ws == NULL) {
		conn_lost(c, err, now);
		goto out;
	}
	c->connect_by = now + CONNECT_TIMEOUT_US;
out:
	curl_free(id);
	buf_free(&url);
}

static struct conn *
conn_for(struct comfyws *s, struct genqd *g, const struct backend *b, int64_t now)
{
	struct conn **pp, *c;

	for (pp = &s->conns; (c = *pp) != NULL; pp = &c->next) {
		if (c->backend_id != b->id)
			continue;
		if (strcmp(c->base_url, b->url) == 0)
			return c;
		/* The backend's URL changed: start over. */
		*pp = c->next;
		conn_free(c);
		break;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL || (c->base_url = strdup(b->url)) == NULL) {
		free(c);
		return NULL;
	}
	c->g = g;
	c->backend_id = b->id;
	snprintf(c->name, sizeof c->name, "%s", b->name);
	c->retry_at = now;
	c->next = s->conns;
	s->conns = c;
	return c;
}

void
comfyws_tick(struct genqd *g, int64_t now)
{
	struct comfyws *s = state(g);
	struct conn **pp, *c;

	if (s == NULL)
		return;
	for (c = s->conns; c != NULL; c = c->next)
		c->wanted = false;
	for (struct backend *b = g->backends; b != NULL; b = b->next) {
		if (b->proto != &comfy_proto || !b->leased || !b->seen)
			continue;
		if ((c = conn_for(s, g, b, now)) != NULL)
			c->wanted = true;
	}
	for (pp = &s->conns; (c = *pp) != NULL;) {
		if (!c->wanted) {
			if (c->ws != NULL)
				log_info("ws_closed", "backend=%s why=\"backend no longer driven here\"",
				    c->name);
			*pp = c->next;
			conn_free(c);
			continue;
		}
		pp = &c->next;
		if (c->ws == NULL) {
			if (now >= c->retry_at)
				conn_start(c, now);
			continue;
		}
		if (ws_status(c->ws) != WS_OPEN) {
			if (now >= c->connect_by)
				conn_lost(c, "handshake timed out", now);
			continue;
		}
		if (ws_received(c->ws) != c->heard_count) {
			c->heard_count = ws_received(c->ws);
			c->heard_at = now;
			c->ping_sent = false;
		}
		if (now - c->heard_at >= DEAD_IDLE_US) {
			conn_lost(c, "no message, not even a pong", now);
		} else if (now - c->heard_at >= PING_IDLE_US && !c->ping_sent) {
			c->ping_sent = true;
			if (ws_ping(c->ws) < 0)
				conn_lost(c, "cannot queue a ping", now);
		}
	}
}

int64_t
comfyws_next_deadline(const struct genqd *g)
{
	int64_t next = INT64_MAX, t;

	if (g->comfyws == NULL)
		return next;
	for (const struct conn *c = g->comfyws->conns; c != NULL; c = c->next) {
		if (c->ws == NULL)
			t = c->retry_at;
		else if (ws_status(c->ws) != WS_OPEN)
			t = c->connect_by;
		else
			t = c->heard_at + (c->ping_sent ? DEAD_IDLE_US : PING_IDLE_US);
		if (t < next)
			next = t;
	}
	return next;
}

void
comfyws_wait(struct genqd *g, const int *extra_fds, size_t nextra, int timeout_ms,
    bool *ready)
{
	struct pollfd stack_fds[FDS_STACK], *fds = stack_fds;
	struct conn *stack_conns[FDS_STACK], **conns = stack_conns;
	size_t n = 0, cap = nextra, i;
	struct conn *c;
	int64_t now;

	for (c = g->comfyws ? g->comfyws->conns : NULL; c != NULL; c = c->next)
		cap++;
	if (cap > FDS_STACK) {
		fds = calloc(cap, sizeof *fds);
		conns = calloc(cap, sizeof *conns);
		if (fds == NULL || conns == NULL) {
			/* Serve the rest at the next turn; the HTTP side waits. */
			free(fds);
			free(conns);
			fds = stack_fds;
			conns = stack_conns;
			cap = FDS_STACK;
		}
	}
	/* The caller's first, one slot each (poll skips a negative fd). */
	for (i = 0; i < nextra; i++) {
		ready[i] = false;
		fds[n].fd = extra_fds[i];
		fds[n].events = POLLIN;
		conns[n++] = NULL;
	}
	for (c = g->comfyws ? g->comfyws->conns : NULL; c != NULL && n < cap; c = c->next) {
		if (c->ws == NULL || ws_events(c->ws) == 0)
			continue;
		fds[n].fd = ws_fd(c->ws);
		fds[n].events = ws_events(c->ws);
		conns[n++] = c;
	}
	http_wait_fds(g->http, fds, n, timeout_ms);
	now = gq_mono_us();
	for (i = 0; i < n; i++) {
		char err[256];
		enum ws_status before, after;

		if (fds[i].revents == 0)
			continue;
		if (i < nextra) {
			ready[i] = true;
			continue;
		}
		c = conns[i];
		before = ws_status(c->ws);
		after = ws_handle(c->ws, fds[i].revents, err, sizeof err);
		if (after == WS_FAILED)
			conn_lost(c, err, now);
		else if (before != WS_OPEN && after == WS_OPEN)
			conn_opened(c, now);
	}
	if (fds != stack_fds) {
		free(fds);
		free(conns);
	}
}

bool
comfyws_up(const struct genqd *g, uint64_t backend_id)
{
	if (g->comfyws == NULL)
		return false;
	for (const struct conn *c = g->comfyws->conns; c != NULL; c = c->next)
		if (c->backend_id == backend_id)
			return c->ws != NULL && ws_status(c->ws) == WS_OPEN;
	return false;
}

void
comfyws_free_all(struct genqd *g)
{
	struct conn *c, *next;

	if (g->comfyws == NULL)
		return;
	for (c = g->comfyws->conns; c != NULL; c = next) {
		next = c->next;
		conn_free(c);
	}
	free(g->comfyws);
	g->comfyws = NULL;
}
