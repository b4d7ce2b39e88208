#include "autoconf.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "buf.h"
#include "ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define CONNECT_TIMEOUT_S 10L       /* the owner usually gives up sooner */
#define EPOLL_BATCH 8

enum phase {
	PH_CONNECT,        /* libcurl resolves, connects, does TLS */
	PH_SEND_REQUEST,   /* writing the Upgrade request */
	PH_READ_REPLY,     /* reading the 101 reply */
	PH_OPEN,           /* wslay drives the connection */
	PH_FAILED,
};

struct ws {
	enum phase phase;
	/* The connection is libcurl's (CONNECT_ONLY): bytes go through
	 * curl_easy_send/recv, which do the TLS. The easy handle stays in its
	 * own multi handle for the connection's whole life, as removing it
	 * closes the connection; a multi of its own, because a shared one
	 * would prune this idle-looking connection from its cache. */
	CURLM *multi;
	CURL *easy;
	bool in_multi;
	char curl_err[CURL_ERROR_SIZE];
	/* While connecting: an epoll set of libcurl's sockets (resolver,
	 * connect attempts) and a timerfd for its timeouts, so the owner
	 * polls one descriptor. Closed once connected (-1). */
	int epfd, tfd;
	int sock;                             /* the connected socket, -1 before */
	char key[WS_KEY_LEN];
	struct buf request;                   /* the Upgrade request */
	size_t sent;
	char head[WS_HEAD_MAX];               /* the reply, as read so far */
	size_t head_len;
	char *early;                          /* frame bytes read along with the reply */
	size_t early_len, early_off;
	size_t max_msg;
	wslay_event_context_ptr ctx;
	unsigned long received;               /* messages of any kind */
	bool eof;                             /* the peer closed its side */
	CURLcode io_err;                      /* the send/recv error that stopped it */
	ws_text_fn on_text;
	void *arg;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- pure: the handshake -------------------------------------------- */

int
ws_accept_for(const char *key, char out[WS_ACCEPT_LEN])
{
	unsigned char digest[SHA_DIGEST_LENGTH];
	char joined[128];
	int n;

	n = snprintf(joined, sizeof joined, "%s%s", key, WS_GUID);
	if (n < 0 || (size_t)n >= sizeof joined)
		return -1;
	if (EVP_Digest(joined, (size_t)n, digest, NULL, EVP_sha1(), NULL) != 1)
		return -1;
	/* 20 bytes encode to 28 characters and a NUL. */
	return EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH) == 28 ? 0 : -1;
}

/* Does the comma-separated list value (len bytes) hold token, any case? */
static bool
has_token(const char *value, size_t len, const char *token)
{
	size_t tlen = strlen(token), i = 0;

	while (i < len) {
		size_t start, end;

		while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		start = i;
		while (i < len && value[i] != ',')
			i++;
		end = i;
		while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
			end--;
		if (end - start == tlen && strncasecmp(value + start, token, tlen) == 0)
			return true;
	}
	return false;
}

int
ws_check_reply(const char *reply, size_t len, const char *key, size_t *head_len,
    char *err, size_t errlen)
{
	char accept[WS_ACCEPT_LEN];
	const char *end = NULL, *line, *stop;
	bool upgrade = false, connection = false, accepted = false;
	size_t i;

	for (i = 0; i + 3 < len; i++) {
		if (memcmp(reply + i, "\r\n\r\n", 4) == 0) {
			end = reply + i + 4;
			break;
		}
	}
	if (end == NULL) {
		if (len >= WS_HEAD_MAX) {
			set_err(err, errlen, "%s", "handshake reply header too large");
			return -1;
		}
		return 0;
	}
	*head_len = (size_t)(end - reply);
	if (memchr(reply, '\0', *head_len) != NULL) {
		set_err(err, errlen, "%s", "handshake reply holds a NUL byte");
		return -1;
	}
	/* "HTTP/1.x 101 ..." */
	if (*head_len < 13 || memcmp(reply, "HTTP/1.", 7) != 0 || reply[8] != ' ' ||
	    memcmp(reply + 9, "101", 3) != 0 || (reply[12] != ' ' && reply[12] != '\r')) {
		char status[48];
		size_t n = strcspn(reply, "\r\n");

		snprintf(status, sizeof status, "%.*s", (int)(n < 40 ? n : 40), reply);
		for (i = 0; status[i] != '\0'; i++)
			if ((unsigned char)status[i] < 0x20 || (unsigned char)status[i] > 0x7e)
				status[i] = '?';
		set_err(err, errlen, "upgrade refused: %s", status);
		return -1;
	}
	if (ws_accept_for(key, accept) < 0) {
		set_err(err, errlen, "%s", "cannot compute Sec-WebSocket-Accept");
		return -1;
	}
	stop = end - 2;                       /* the empty line's CRLF */
	line = (const char *)memchr(reply, '\n', *head_len) + 1;
	while (line < stop) {
		const char *eol = memchr(line, '\n', (size_t)(stop - line) + 1);
		const char *colon, *v, *ve;
		size_t nlen;

		if (eol == NULL)
			break;
		ve = eol;
		if (ve > line && ve[-1] == '\r')
			ve--;
		colon = memchr(line, ':', (size_t)(ve - line));
		if (colon == NULL) {
			set_err(err, errlen, "%s", "malformed handshake header line");
			return -1;
		}
		nlen = (size_t)(colon - line);
		for (v = colon + 1; v < ve && (*v == ' ' || *v == '\t'); v++)
			;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
#define IS(name) (nlen == sizeof name - 1 && strncasecmp(line, name, nlen) == 0)
		if (IS("Upgrade"))
			upgrade = has_token(v, (size_t)(ve - v), "websocket");
		else if (IS("Connection"))
			connection = has_token(v, (size_t)(ve - v), "upgrade");
		else if (IS("Sec-WebSocket-Accept"))
			accepted = (size_t)(ve - v) == WS_ACCEPT_LEN - 1 &&
			    memcmp(v, accept, WS_ACCEPT_LEN - 1) == 0;
		else if (IS("Sec-WebSocket-Extensions") || IS("Sec-WebSocket-Protocol")) {
			/* None were asked for: a server that picks one anyway
			 * would send frames this client cannot read. */
			set_err(err, errlen, "%s", "server chose an extension or protocol not offered");
			return -1;
		}
#undef IS
		line = eol + 1;
	}
	if (!upgrade || !connection) {
		set_err(err, errlen, "%s", "reply lacks Upgrade: websocket / Connection: upgrade");
		return -1;
	}
	if (!accepted) {
		set_err(err, errlen, "%s", "Sec-WebSocket-Accept missing or wrong");
		return -1;
	}
	return 1;
}

/* ---- wslay's I/O callbacks ------------------------------------------- */

static ssize_t
on_recv(wslay_event_context_ptr ctx, uint8_t *data, size_t len, int flags, void *user)
{
	struct ws *w = user;
	size_t n = 0;
	CURLcode rc;

	(void)flags;
	if (w->early_off < w->early_len) {
		/* Frames that came with the handshake reply go first. */
		size_t left = w->early_len - w->early_off;

		n = left < len ? left : len;
		memcpy(data, w->early + w->early_off, n);
		w->early_off += n;
		return (ssize_t)n;
	}
	/* wslay reads until this says "would block": with TLS that also
	 * empties what the TLS layer holds, which poll(2) cannot see. */
	rc = curl_easy_recv(w->easy, data, len, &n);
	if (rc == CURLE_OK && n > 0)
		return (ssize_t)n;
	if (rc == CURLE_OK) {
		w->eof = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	} else if (rc == CURLE_AGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		w->io_err = rc;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static ssize_t
on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws *w = user;
	size_t n = 0;
	CURLcode rc;

	(void)flags;
	rc = curl_easy_send(w->easy, data, len, &n);
	if (rc == CURLE_OK)
		return (ssize_t)n;
	if (rc == CURLE_AGAIN) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		w->io_err = rc;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static int
on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	(void)user;
	if (RAND_bytes(buf, (int)len) != 1) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return 0;
}

static void
on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m, void *user)
{
	struct ws *w = user;

	(void)ctx;
	w->received++;
	/* Binary frames (ComfyUI's previews) and control frames carry
	 * nothing the owner reads; wslay answers pings itself. */
	if (m->opcode == WSLAY_TEXT_FRAME)
		w->on_text((const char *)m->msg, m->msg_length, w->arg);
}

/* ---- libcurl's sockets and timer while connecting --------------------- */

/* CURLMOPT_SOCKETFUNCTION: keep the epoll set like libcurl wants it. */
static int
on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct ws *w = userp;
	struct epoll_event ev;

	(void)easy;
	(void)socketp;
	if (w->epfd < 0)
		return 0;             /* connected: the socket is ours now */
	if (what == CURL_POLL_REMOVE) {
		/* It may be closed already, which removed it. */
		(void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	memset(&ev, 0, sizeof ev);
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.fd = s;
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, s, &ev) < 0 &&
	    (errno != ENOENT || epoll_ctl(w->epfd, EPOLL_CTL_ADD, s, &ev) < 0))
		return -1;            /* libcurl fails the transfer */
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: arm the timerfd; the loop then sees it fire. */
static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct ws *w = userp;
	struct itimerspec its;

	(void)multi;
	if (w->tfd < 0)
		return 0;
	memset(&its, 0, sizeof its);
	if (timeout_ms == 0)
		its.it_value.tv_nsec = 1;     /* now; all zero would disarm */
	else if (timeout_ms > 0) {
		its.it_value.tv_sec = timeout_ms / 1000;
		its.it_value.tv_nsec = (timeout_ms % 1000) * 1000000L;
	}
	return timerfd_settime(w->tfd, 0, &its, NULL) == 0 ? 0 : -1;
}

static void
close_connect_fds(struct ws *w)
{
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->tfd >= 0)
		close(w->tfd);
	w->epfd = w->tfd = -1;
}

/* Build the Upgrade request for the URL's parts. */
static int
build_request(struct ws *w, const char *host, const char *port, const char *path,
    const char *query)
{
	unsigned char nonce[16];

	if (RAND_bytes(nonce, sizeof nonce) != 1 ||
	    EVP_EncodeBlock((unsigned char *)w->key, nonce, sizeof nonce) != WS_KEY_LEN - 1)
		return -1;
	return buf_printf(&w->request,
	    "GET %s%s%s HTTP/1.1\r\n"
	    "Host: %s:%s\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "User-Agent: genqd\r\n"
	    "\r\n",
	    path, query ? "?" : "", query ? query : "", host, port, w->key);
}

/* The easy handle that only connects (TCP, then TLS for https) to url,
 * verifying the peer like every other backend request. */
static int
setup_easy(struct ws *w, const char *url, const char *ca_file)
{
	if ((w->easy = curl_easy_init()) == NULL ||
	    curl_easy_setopt(w->easy, CURLOPT_URL, url) != CURLE_OK)
		return -1;
	/* 1L: connect, then hand the connection over. (2L is for libcurl's
	 * own WebSocket support, which Debian 12's 7.88 is built without;
	 * the upgrade is done here anyway, with wslay for the frames.) */
	curl_easy_setopt(w->easy, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(w->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	/* The upgrade request is written here as for a direct connection. */
	curl_easy_setopt(w->easy, CURLOPT_PROXY, "");
	/* Dropping a connect stuck in a slow resolver must not wait for
	 * the resolver thread (libcurl would join it, blocking the loop):
	 * the thread is left to end on its own. */
	curl_easy_setopt(w->easy, CURLOPT_QUICK_EXIT, 1L);
	curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, w->curl_err);
	if (ca_file != NULL && ca_file[0] != '\0' &&
	    curl_easy_setopt(w->easy, CURLOPT_CAINFO, ca_file) != CURLE_OK)
		return -1;
	if ((w->multi = curl_multi_init()) == NULL)
		return -1;
	curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
	curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
	return 0;
}

static int
setup_connect_fds(struct ws *w)
{
	struct epoll_event ev;

	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->epfd < 0 || w->tfd < 0)
		return -1;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.fd = w->tfd;
	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->tfd, &ev);
}

struct ws *
ws_connect(const char *url, const char *ca_file, size_t max_msg, ws_text_fn on_text,
    void *arg, char *err, size_t errlen)
{
	struct ws *w = NULL;
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	char *curl_url_str = NULL;
	bool tls;

	/* ws: and wss: are not schemes this libcurl knows: parse them as
	 * such, then connect as http: / https:. */
	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		set_err(err, errlen, "%s", "cannot parse the URL");
		goto fail;
	}
	if (strcasecmp(scheme, "https") == 0 || strcasecmp(scheme, "wss") == 0)
		tls = true;
	else if (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "ws") == 0)
		tls = false;
	else {
		set_err(err, errlen, "scheme %.16s not supported", scheme);
		goto fail;
	}
	if (curl_url_set(u, CURLUPART_SCHEME, tls ? "https" : "http", 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		set_err(err, errlen, "%s", "cannot parse the URL");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		query = NULL;
	/* libcurl connects to the origin only; the path and query go in
	 * the upgrade request. */
	if (curl_url_set(u, CURLUPART_PATH, "/", 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &curl_url_str, 0) != CURLUE_OK) {
		set_err(err, errlen, "%s", "cannot parse the URL");
		goto fail;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		set_err(err, errlen, "%s", "out of memory");
		goto fail;
	}
	w->epfd = w->tfd = w->sock = -1;
	w->phase = PH_CONNECT;
	w->max_msg = max_msg;
	w->on_text = on_text;
	w->arg = arg;
	buf_init(&w->request, WS_HEAD_MAX);
	if (build_request(w, host, port, path, query) < 0) {
		set_err(err, errlen, "%s", "cannot build the upgrade request");
		goto fail;
	}
	if (setup_connect_fds(w) < 0) {
		set_err(err, errlen, "epoll/timerfd: %s", strerror(errno));
		goto fail;
	}
	if (setup_easy(w, curl_url_str, ca_file) < 0) {
		set_err(err, errlen, "%s", "cannot set up libcurl");
		goto fail;
	}
	/* Nothing happens here: libcurl arms its timer, which fires at the
	 * loop's next wait, and the resolve runs in libcurl's thread. */
	if (curl_multi_add_handle(w->multi, w->easy) != CURLM_OK) {
		set_err(err, errlen, "%s", "cannot start the connection");
		goto fail;
	}
	w->in_multi = true;
	goto out;
fail:
	ws_free(w);
	w = NULL;
out:
	curl_free(curl_url_str);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return w;
}

int
ws_fd(const struct ws *w)
{
	return w->phase == PH_CONNECT ? w->epfd : w->sock;
}

short
ws_events(const struct ws *w)
{
	short ev = 0;

	switch (w->phase) {
	case PH_CONNECT:
		return POLLIN;            /* the epoll set: readable when anything is */
	case PH_SEND_REQUEST:
		return POLLOUT;
	case PH_READ_REPLY:
		return POLLIN;
	case PH_OPEN:
		if (wslay_event_want_read(w->ctx))
			ev |= POLLIN;
		if (wslay_event_want_write(w->ctx))
			ev |= POLLOUT;
		return ev;
	case PH_FAILED:
		break;
	}
	return 0;
}

enum ws_status
ws_status(const struct ws *w)
{
	return w->phase == PH_OPEN ? WS_OPEN : w->phase == PH_FAILED ? WS_FAILED : WS_CONNECTING;
}

static enum ws_status give_up(struct ws *w, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum ws_status
give_up(struct ws *w, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	w->phase = PH_FAILED;
	return WS_FAILED;
}

/* The handshake is verified: hand the connection to wslay. */
static enum ws_status
open_frames(struct ws *w, size_t head_len, char *err, size_t errlen)
{
	static const struct wslay_event_callbacks cb = {
		.recv_callback = on_recv,
		.send_callback = on_send,
		.genmask_callback = on_genmask,
		.on_msg_recv_callback = on_msg,
	};

	if (wslay_event_context_client_init(&w->ctx, &cb, w) != 0)
		return give_up(w, err, errlen, "%s", "out of memory");
	wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_msg);
	if (w->head_len > head_len) {
		w->early_len = w->head_len - head_len;
		w->early = malloc(w->early_len);
		if (w->early == NULL)
			return give_up(w, err, errlen, "%s", "out of memory");
		memcpy(w->early, w->head + head_len, w->early_len);
	}
	buf_free(&w->request);
	w->phase = PH_OPEN;
	return WS_OPEN;
}

/* Move libcurl's connect along on what the epoll set reports; on success
 * the phase becomes PH_SEND_REQUEST. */
static enum ws_status
connect_step(struct ws *w, char *err, size_t errlen)
{
	struct epoll_event evs[EPOLL_BATCH];
	struct CURLMsg *msg;
	curl_socket_t s = CURL_SOCKET_BAD;
	int n, running = 0, left = 0;
	CURLcode rc;

	n = epoll_wait(w->epfd, evs, EPOLL_BATCH, 0);
	for (int i = 0; i < n; i++) {
		int mask = 0;

		if (evs[i].data.fd == w->tfd) {
			uint64_t ticks;

			if (read(w->tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
				return give_up(w, err, errlen, "timerfd: %s", strerror(errno));
			curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
			continue;
		}
		if (evs[i].events & EPOLLIN)
			mask |= CURL_CSELECT_IN;
		if (evs[i].events & EPOLLOUT)
			mask |= CURL_CSELECT_OUT;
		if (evs[i].events & (EPOLLERR | EPOLLHUP))
			mask |= CURL_CSELECT_ERR;
		curl_multi_socket_action(w->multi, evs[i].data.fd, mask, &running);
	}
	while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		rc = msg->data.result;
		if (rc != CURLE_OK)
			return give_up(w, err, errlen, "connect: %s",
			    w->curl_err[0] ? w->curl_err : curl_easy_strerror(rc));
		if (curl_easy_getinfo(w->easy, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK ||
		    s == CURL_SOCKET_BAD)
			return give_up(w, err, errlen, "%s", "connected, but no socket");
		/* From here on the loop polls the socket itself. */
		close_connect_fds(w);
		w->sock = s;
		w->phase = PH_SEND_REQUEST;
		return WS_CONNECTING;
	}
	return WS_CONNECTING;
}

static enum ws_status
handshake_step(struct ws *w, char *err, size_t errlen)
{
	char why[256];
	size_t n, head_len = 0;
	CURLcode rc;

	if (w->phase == PH_CONNECT) {
		enum ws_status st = connect_step(w, err, errlen);

		if (w->phase != PH_SEND_REQUEST)
			return st;
		/* A fresh connection is writable: send at once. */
	}
	if (w->phase == PH_SEND_REQUEST) {
		n = 0;
		rc = curl_easy_send(w->easy, w->request.data + w->sent, w->request.len - w->sent, &n);
		if (rc == CURLE_AGAIN)
			return WS_CONNECTING;
		if (rc != CURLE_OK)
			return give_up(w, err, errlen, "send: %s", curl_easy_strerror(rc));
		w->sent += n;
		if (w->sent < w->request.len)
			return WS_CONNECTING;
		w->phase = PH_READ_REPLY;
		/* The reply cannot be there yet; wait for the socket. */
		return WS_CONNECTING;
	}
	if (w->phase != PH_READ_REPLY)
		return ws_status(w);
	/* Read until the header is whole or nothing more is there: with
	 * TLS, bytes may wait in the TLS layer where poll(2) cannot see. */
	for (;;) {
		n = 0;
		rc = curl_easy_recv(w->easy, w->head + w->head_len, sizeof w->head - w->head_len, &n);
		if (rc == CURLE_AGAIN)
			return WS_CONNECTING;
		if (rc != CURLE_OK)
			return give_up(w, err, errlen, "recv: %s", curl_easy_strerror(rc));
		if (n == 0)
			return give_up(w, err, errlen, "%s", "closed during the handshake");
		w->head_len += n;
		switch (ws_check_reply(w->head, w->head_len, w->key, &head_len, why, sizeof why)) {
		case 0:
			/* Not whole yet; ws_check_reply refuses a full buffer,
			 * so there is room for more. */
			continue;
		case 1:
			return open_frames(w, head_len, err, errlen);
		default:
			return give_up(w, err, errlen, "%s", why);
		}
	}
}

/* Why wslay stopped, in words. */
static enum ws_status
frames_failed(struct ws *w, int rc, char *err, size_t errlen)
{
	if (w->eof)
		return give_up(w, err, errlen, "%s", "closed by the server");
	if (w->io_err != CURLE_OK)
		return give_up(w, err, errlen, "socket: %s", curl_easy_strerror(w->io_err));
	if (rc == WSLAY_ERR_PROTO)
		return give_up(w, err, errlen, "%s", "WebSocket protocol error from the server");
	if (rc == WSLAY_ERR_NOMEM)
		return give_up(w, err, errlen, "%s", "out of memory");
	return give_up(w, err, errlen, "%s", "frame layer failed");
}

enum ws_status
ws_handle(struct ws *w, short revents, char *err, size_t errlen)
{
	int rc;

	if (w->phase != PH_OPEN) {
		enum ws_status st = handshake_step(w, err, errlen);

		/* Frames may have come with the reply, or wait in the TLS
		 * layer: read them now, as the socket may have nothing more
		 * to wake the loop with. */
		if (st != WS_OPEN)
			return st;
		revents = POLLIN;
	}
	if (revents & (POLLIN | POLLERR | POLLHUP)) {
		if ((rc = wslay_event_recv(w->ctx)) != 0)
			return frames_failed(w, rc, err, errlen);
	}
	/* A pong or a close answer may have been queued by the read. */
	if (wslay_event_want_write(w->ctx) && (rc = wslay_event_send(w->ctx)) != 0)
		return frames_failed(w, rc, err, errlen);
	if (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx)) {
		uint16_t sent = wslay_event_get_status_code_sent(w->ctx);

		if (sent == WSLAY_CODE_MESSAGE_TOO_BIG)
			return give_up(w, err, errlen, "%s", "message over the size limit");
		if (sent == WSLAY_CODE_PROTOCOL_ERROR)
			return give_up(w, err, errlen, "%s", "WebSocket protocol error from the server");
		if (wslay_event_get_close_received(w->ctx))
			return give_up(w, err, errlen, "closed by the server (code %u)",
			    (unsigned)wslay_event_get_status_code_received(w->ctx));
		return give_up(w, err, errlen, "%s", "closed");
	}
	return WS_OPEN;
}

unsigned long
ws_received(const struct ws *w)
{
	return w->received;
}

int
ws_ping(struct ws *w)
{
	struct wslay_event_msg m = { WSLAY_PING, NULL, 0 };

	if (w->phase != PH_OPEN)
		return -1;
	return wslay_event_queue_msg(w->ctx, &m) == 0 ? 0 : -1;
}

void
ws_free(struct ws *w)
{
	if (w == NULL)
		return;
	if (w->ctx != NULL)
		wslay_event_context_free(w->ctx);
	/* Removing the easy handle closes the connection (and the socket);
	 * a resolve still under way is abandoned, not waited for. */
	if (w->in_multi)
		curl_multi_remove_handle(w->multi, w->easy);
	if (w->easy != NULL)
		curl_easy_cleanup(w->easy);
	if (w->multi != NULL)
		curl_multi_cleanup(w->multi);
	close_connect_fds(w);
	buf_free(&w->request);
	free(w->early);
	free(w);
}
