/* comfysim_ws: the /ws event streams. libmicrohttpd hands over each
 * upgraded socket; one thread owns them all (epoll), framing with wslay.
 * Other threads never touch a socket: they append encoded messages to the
 * socket's queue under the sim lock and poke an eventfd. A burst of events
 * (an instant prompt makes ~50) leaves in one send(): wslay's send callback
 * only appends to a buffer that the loop writes out once per wake-up. */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "comfysim.h"

/* One encoded text message waiting for the loop. */
struct ws_msg {
	struct ws_msg *next;
	size_t len;
	char data[];
};

struct ws_conn {
	struct ws_conn *next;          /* s->sockets (under s->lock) */
	struct ws_conn *loop_next;     /* the loop's list (loop thread only) */
	struct ws_loop *loop;
	int fd;
	struct MHD_UpgradeResponseHandle *urh;
	char *sid;
	bool registered;               /* in s->sockets */
	struct ws_msg *qhead, *qtail;  /* to send (under s->lock) */
	wslay_event_context_ptr ctx;
	char *extra;                   /* bytes MHD read past the request */
	size_t extra_len, extra_off;
	unsigned char *out;            /* framed bytes not yet written */
	size_t out_len, out_off, out_cap;
	bool want_out;                 /* EPOLLOUT armed */
	bool dead;
};

struct ws_loop {
	struct sim *s;
	int epfd, evfd;
	pthread_t thread;
	pthread_mutex_t lock;          /* guards adopted and stopped */
	struct ws_conn *adopted;       /* handed over, not yet in the loop */
	bool stopped;
	struct ws_conn *conns;         /* loop thread only */
};

/* The worker defers its pokes to the points where it would wait or is
 * done with a prompt: an instant prompt's ~50 events then cost the loop
 * one wake-up, not one each (a wake-up and the eventfd write are system
 * calls and context switches, the dearest things on a VM). */
static __thread bool defer_pokes, poke_pending;

static void
poke(struct ws_loop *w)
{
	uint64_t one = 1;
	ssize_t n = write(w->evfd, &one, sizeof one);
	(void)n;   /* a full counter still wakes the loop */
}

/* Append a message to c's queue; caller holds s->lock. True when the
 * queue was empty: only then does the loop need a poke (it drains whole
 * queues, so a non-empty one already has a poke pending; an instant
 * prompt's burst of events costs one wake-up, not fifty). */
static bool
enqueue(struct ws_conn *c, const char *data, size_t len)
{
	struct ws_msg *m = malloc(sizeof *m + len);
	bool was_empty = c->qhead == NULL;

	if (m == NULL)
		return false;   /* out of memory: the event is lost, as on a stalled socket */
	m->next = NULL;
	m->len = len;
	memcpy(m->data, data, len);
	if (c->qtail)
		c->qtail->next = m;
	else
		c->qhead = m;
	c->qtail = m;
	return was_empty;
}

static void
free_msgs(struct ws_msg *m)
{
	while (m) {
		struct ws_msg *next = m->next;
		free(m);
		m = next;
	}
}

/* Caller holds s->lock. */
static void
unregister(struct sim *s, struct ws_conn *c)
{
	struct ws_conn **pp;

	if (!c->registered)
		return;
	for (pp = &s->sockets; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	c->registered = false;
}

static const char *
encode(json_object *o, size_t *len)
{
	return json_object_to_json_string_length(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
}

void
ws_send(struct sim *s, const char *type, json_object *data, const char *client_id)
{
	json_object *msg = NULL;
	struct ws_conn *c;
	const char *text = NULL;
	size_t len = 0;
	bool any = false;

	pthread_mutex_lock(&s->lock);
	for (c = s->sockets; c; c = c->next) {
		if (client_id && strcmp(c->sid, client_id) != 0)
			continue;
		if (text == NULL) {   /* encoded once, and not at all when nobody listens */
			msg = json_object_new_object();
			json_object_object_add(msg, "type", json_object_new_string(type));
			json_object_object_add(msg, "data", data);
			data = NULL;
			text = encode(msg, &len);
		}
		any |= enqueue(c, text, len);
		if (client_id)
			break;   /* one socket per client id */
	}
	pthread_mutex_unlock(&s->lock);
	if (any && defer_pokes)
		poke_pending = true;
	else if (any)
		poke(s->ws);
	json_object_put(msg);
	json_object_put(data);
}

void
ws_defer_pokes(void)
{
	defer_pokes = true;
}

void
ws_flush(struct sim *s)
{
	if (poke_pending) {
		poke_pending = false;
		poke(s->ws);
	}
}

void
ws_broadcast_status(struct sim *s)
{
	json_object *d = json_object_new_object();

	pthread_mutex_lock(&s->lock);
	json_object_object_add(d, "status", sim_queue_info(s));
	pthread_mutex_unlock(&s->lock);
	ws_send(s, "status", d, NULL);
}

/* ---- wslay callbacks (loop thread) ---- */

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	struct ws_conn *c = user;
	ssize_t n;

	(void)flags;
	if (c->extra_off < c->extra_len) {
		size_t k = c->extra_len - c->extra_off;
		if (k > len)
			k = len;
		memcpy(buf, c->extra + c->extra_off, k);
		c->extra_off += k;
		return (ssize_t)k;
	}
	n = recv(c->fd, buf, len, 0);
	if (n > 0)
		return n;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws_conn *c = user;

	(void)flags;
	if (c->out_len - c->out_off + len > SIM_WS_OUT_MAX) {
		/* The client stopped reading: drop it rather than grow without bound. */
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		unsigned char *p;
		if (c->out_off > 0) {   /* slide the unsent tail down first */
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		while (cap < c->out_len + len)
			cap *= 2;
		if (cap != c->out_cap) {
			p = realloc(c->out, cap);
			if (p == NULL) {
				wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
				return -1;
			}
			c->out = p;
			c->out_cap = cap;
		}
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return (ssize_t)len;
}

static void
on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	/* Client text frames are ignored, as ComfyUI does; wslay answers pings
	 * and close frames itself. */
	(void)ctx;
	(void)arg;
	(void)user;
}

static const struct wslay_event_callbacks callbacks = {
	.recv_callback = recv_cb,
	.send_callback = send_cb,
	.on_msg_recv_callback = on_msg,
};

/* ---- the loop ---- */

static void
conn_free(struct ws_loop *w, struct ws_conn *c)
{
	pthread_mutex_lock(&w->s->lock);
	unregister(w->s, c);
	free_msgs(c->qhead);
	c->qhead = c->qtail = NULL;
	pthread_mutex_unlock(&w->s->lock);
	if (c->ctx)
		wslay_event_context_free(c->ctx);
	if (c->urh)
		MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
	free(c->extra);
	free(c->out);
	free(c->sid);
	free(c);
}

/* Writes what is buffered; arms EPOLLOUT when the socket is full. */
static void
flush_out(struct ws_loop *w, struct ws_conn *c)
{
	bool want;

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		c->dead = true;
		return;
	}
	want = c->out_off < c->out_len;
	if (want != c->want_out) {
		struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
		epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
		c->want_out = want;
	}
	if (!want && !wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx))
		c->dead = true;   /* the close handshake is done */
}

/* Moves c's queued messages into wslay, frames them, writes them. */
static void
pump(struct ws_loop *w, struct ws_conn *c)
{
	struct ws_msg *m, *next;

	pthread_mutex_lock(&w->s->lock);
	m = c->qhead;
	c->qhead = c->qtail = NULL;
	pthread_mutex_unlock(&w->s->lock);
	for (; m; m = next) {
		struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)m->data, m->len};
		next = m->next;
		if (!c->dead && wslay_event_queue_msg(c->ctx, &msg) != 0 &&
		    wslay_event_get_close_sent(c->ctx) == 0)
			c->dead = true;
		free(m);
	}
	if (!c->dead && wslay_event_send(c->ctx) != 0)
		c->dead = true;
	if (!c->dead)
		flush_out(w, c);
}

static void
take_adopted(struct ws_loop *w)
{
	struct ws_conn *c, *next;

	pthread_mutex_lock(&w->lock);
	c = w->adopted;
	w->adopted = NULL;
	pthread_mutex_unlock(&w->lock);
	for (; c; c = next) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		next = c->loop_next;
		if (wslay_event_context_server_init(&c->ctx, &callbacks, c) != 0 ||
		    epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
			conn_free(w, c);
			continue;
		}
		c->loop_next = w->conns;
		w->conns = c;
		if (c->extra_len)   /* frames that arrived with the request */
			wslay_event_recv(c->ctx);
	}
}

static void
reap(struct ws_loop *w)
{
	struct ws_conn **pp = &w->conns;

	while (*pp) {
		struct ws_conn *c = *pp;
		if (c->dead) {
			*pp = c->loop_next;
			epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
			conn_free(w, c);
		} else {
			pp = &c->loop_next;
		}
	}
}

static void *
loop_main(void *arg)
{
	struct ws_loop *w = arg;
	struct epoll_event evs[64];
	bool stop = false;

	while (!stop) {
		int n = epoll_wait(w->epfd, evs, 64, -1), i;
		bool poked = false;

		if (n < 0 && errno != EINTR)
			break;
		for (i = 0; i < n; i++) {
			struct ws_conn *c = evs[i].data.ptr;
			if (c == NULL) {
				uint64_t v;
				ssize_t r = read(w->evfd, &v, sizeof v);
				(void)r;
				poked = true;
				continue;
			}
			if (c->dead)
				continue;
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				if (wslay_event_recv(c->ctx) != 0)
					c->dead = true;
			}
			if (!c->dead)
				pump(w, c);   /* pongs, close replies, and anything queued */
		}
		if (poked) {
			pthread_mutex_lock(&w->lock);
			stop = w->stopped;
			pthread_mutex_unlock(&w->lock);
			take_adopted(w);
			for (struct ws_conn *c = w->conns; c; c = c->loop_next)
				if (!c->dead)
					pump(w, c);
		}
		reap(w);
	}
	/* Shutting down: every socket goes back to MHD to be closed. */
	for (struct ws_conn *c = w->conns; c; c = c->loop_next)
		c->dead = true;
	reap(w);
	return NULL;
}

struct ws_loop *
ws_start(struct sim *s)
{
	struct ws_loop *w = calloc(1, sizeof *w);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	if (w == NULL)
		return NULL;
	w->s = s;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&w->lock, NULL);
	if (w->epfd < 0 || w->evfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0 ||
	    pthread_create(&w->thread, NULL, loop_main, w) != 0) {
		if (w->epfd >= 0)
			close(w->epfd);
		if (w->evfd >= 0)
			close(w->evfd);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

void
ws_stop(struct ws_loop *w)
{
	struct ws_conn *c, *next;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopped = true;
	pthread_mutex_unlock(&w->lock);
	poke(w);
	pthread_join(w->thread, NULL);
	/* Sockets handed over after the loop's last look. */
	pthread_mutex_lock(&w->lock);
	c = w->adopted;
	w->adopted = NULL;
	pthread_mutex_unlock(&w->lock);
	for (; c; c = next) {
		next = c->loop_next;
		conn_free(w, c);
	}
}

void
ws_free(struct ws_loop *w)
{
	if (w == NULL)
		return;
	close(w->epfd);
	close(w->evfd);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

void
ws_adopt(struct ws_loop *w, int fd, void *urh, const char *extra, size_t extra_len,
    const char *client_id)
{
	struct sim *s = w->s;
	struct ws_conn *c = calloc(1, sizeof *c), *old;
	json_object *hello = NULL, *data;
	bool stopped;
	int one = 1, fl;

	if (c == NULL || (c->sid = strdup(client_id)) == NULL ||
	    (extra_len && (c->extra = malloc(extra_len)) == NULL)) {
		if (c)
			free(c->sid);
		free(c);
		MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
		return;
	}
	c->loop = w;
	c->fd = fd;
	c->urh = urh;
	if (extra_len)
		memcpy(c->extra, extra, extra_len);
	c->extra_len = extra_len;
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	/* Register and say hello under one lock hold: the hello is the first
	 * message, before any broadcast that races with it. */
	pthread_mutex_lock(&s->lock);
	for (old = s->sockets; old; old = old->next)
		if (strcmp(old->sid, c->sid) == 0) {   /* a newer socket takes the client id */
			unregister(s, old);
			break;
		}
	c->next = s->sockets;
	s->sockets = c;
	c->registered = true;
	data = json_object_new_object();
	json_object_object_add(data, "status", sim_queue_info(s));
	json_object_object_add(data, "sid", json_object_new_string(c->sid));
	hello = json_object_new_object();
	json_object_object_add(hello, "type", json_object_new_string("status"));
	json_object_object_add(hello, "data", data);
	{
		size_t len;
		const char *t = encode(hello, &len);
		enqueue(c, t, len);
	}
	json_object_put(hello);
	if (s->running && s->last_node[0]) {
		json_object *cid;
		if (json_object_object_get_ex(s->running->extra_data, "client_id", &cid) &&
		    json_object_is_type(cid, json_type_string) &&
		    strcmp(json_object_get_string(cid), c->sid) == 0) {
			/* Reconnecting to a running prompt: where it is, as ComfyUI does. */
			size_t len;
			const char *t;
			hello = json_object_new_object();
			data = json_object_new_object();
			json_object_object_add(data, "node", json_object_new_string(s->last_node));
			json_object_object_add(hello, "type", json_object_new_string("executing"));
			json_object_object_add(hello, "data", data);
			t = encode(hello, &len);
			enqueue(c, t, len);
			json_object_put(hello);
		}
	}
	pthread_mutex_unlock(&s->lock);

	pthread_mutex_lock(&w->lock);
	stopped = w->stopped;
	if (!stopped) {
		c->loop_next = w->adopted;
		w->adopted = c;
	}
	pthread_mutex_unlock(&w->lock);
	if (stopped)
		conn_free(w, c);
	else
		poke(w);
}
