#include "autoconf.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "buf.h"
#include "ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HOST_MAX 256

enum phase {
	PH_CONNECT,        /* non-blocking connect(2) under way */
	PH_SEND_REQUEST,   /* writing the Upgrade request */
	PH_READ_REPLY,     /* reading the 101 reply */
	PH_OPEN,           /* wslay drives the socket */
	PH_FAILED,
};

struct ws {
	int fd;
	enum phase phase;
	struct addrinfo *addrs, *next_addr;   /* addrs owned; next_addr: the one tried next */
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
	int sys_errno;                        /* the socket error that stopped it */
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
	ssize_t n;

	(void)flags;
	if (w->early_off < w->early_len) {
		/* Frames that came with the handshake reply go first. */
		size_t left = w->early_len - w->early_off;

		n = (ssize_t)(left < len ? left : len);
		memcpy(data, w->early + w->early_off, (size_t)n);
		w->early_off += (size_t)n;
		return n;
	}
	do
		n = recv(w->fd, data, len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n == 0) {
		w->eof = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		w->sys_errno = errno;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

static ssize_t
on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws *w = user;
	ssize_t n;

	(void)flags;
	do
		n = send(w->fd, data, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		w->sys_errno = errno;
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

/* ---- connecting ------------------------------------------------------- */

static int
set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Start connect(2) to the next address. 0 when under way or done, -1 when
 * no address is left (err set). */
static int
try_next_addr(struct ws *w, char *err, size_t errlen)
{
	int last = 0;

	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	for (; w->next_addr != NULL; w->next_addr = w->next_addr->ai_next) {
		struct addrinfo *a = w->next_addr;

		w->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (w->fd < 0) {
			last = errno;
			continue;
		}
		if (set_nonblocking(w->fd) == 0 &&
		    (connect(w->fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS)) {
			w->next_addr = a->ai_next;
			w->phase = PH_CONNECT;
			return 0;
		}
		last = errno;
		close(w->fd);
		w->fd = -1;
	}
	set_err(err, errlen, "connect: %s", last ? strerror(last) : "no address");
	return -1;
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

struct ws *
ws_connect(const char *url, size_t max_msg, ws_text_fn on_text, void *arg,
    char *err, size_t errlen)
{
	struct ws *w = NULL;
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	char bare[HOST_MAX];
	struct addrinfo hints;
	size_t hlen;
	int rc;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		set_err(err, errlen, "%s", "cannot parse the URL");
		goto fail;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		query = NULL;
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "ws") != 0) {
		set_err(err, errlen, "scheme %s not supported (no TLS)", scheme);
		goto fail;
	}
	/* An IPv6 literal comes bracketed; the resolver wants it bare. */
	snprintf(bare, sizeof bare, "%s", host);
	hlen = strlen(bare);
	if (hlen > 2 && bare[0] == '[' && bare[hlen - 1] == ']') {
		memmove(bare, bare + 1, hlen - 2);
		bare[hlen - 2] = '\0';
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		set_err(err, errlen, "%s", "out of memory");
		goto fail;
	}
	w->fd = -1;
	w->max_msg = max_msg;
	w->on_text = on_text;
	w->arg = arg;
	buf_init(&w->request, WS_HEAD_MAX);
	if (build_request(w, host, port, path, query) < 0) {
		set_err(err, errlen, "%s", "cannot build the upgrade request");
		goto fail;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(bare, port, &hints, &w->addrs);
	if (rc != 0) {
		set_err(err, errlen, "resolve: %s", gai_strerror(rc));
		goto fail;
	}
	w->next_addr = w->addrs;
	if (try_next_addr(w, err, errlen) < 0)
		goto fail;
	goto out;
fail:
	ws_free(w);
	w = NULL;
out:
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
	return w->fd;
}

short
ws_events(const struct ws *w)
{
	short ev = 0;

	switch (w->phase) {
	case PH_CONNECT:
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

/* The handshake is verified: hand the socket to wslay. */
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
	freeaddrinfo(w->addrs);
	w->addrs = w->next_addr = NULL;
	w->phase = PH_OPEN;
	return WS_OPEN;
}

static enum ws_status
handshake_step(struct ws *w, short revents, char *err, size_t errlen)
{
	char why[256];
	ssize_t n;
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	size_t head_len = 0;

	switch (w->phase) {
	case PH_CONNECT:
		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return WS_CONNECTING;
		if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr != 0) {
			/* Another address of the name may answer. */
			if (w->next_addr != NULL && try_next_addr(w, NULL, 0) == 0)
				return WS_CONNECTING;
			return give_up(w, err, errlen, "connect: %s", strerror(soerr));
		}
		w->phase = PH_SEND_REQUEST;
		/* The socket is writable now: send at once. */
		__attribute__((fallthrough));
	case PH_SEND_REQUEST:
		n = send(w->fd, w->request.data + w->sent, w->request.len - w->sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return WS_CONNECTING;
		if (n < 0)
			return give_up(w, err, errlen, "send: %s", strerror(errno));
		w->sent += (size_t)n;
		if (w->sent == w->request.len)
			w->phase = PH_READ_REPLY;
		return WS_CONNECTING;
	case PH_READ_REPLY:
		if (!(revents & (POLLIN | POLLERR | POLLHUP)))
			return WS_CONNECTING;
		n = recv(w->fd, w->head + w->head_len, sizeof w->head - w->head_len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return WS_CONNECTING;
		if (n < 0)
			return give_up(w, err, errlen, "recv: %s", strerror(errno));
		if (n == 0)
			return give_up(w, err, errlen, "%s", "closed during the handshake");
		w->head_len += (size_t)n;
		switch (ws_check_reply(w->head, w->head_len, w->key, &head_len, why, sizeof why)) {
		case 0:
			return WS_CONNECTING;
		case 1:
			return open_frames(w, head_len, err, errlen);
		default:
			return give_up(w, err, errlen, "%s", why);
		}
	default:
		return ws_status(w);
	}
}

/* Why wslay stopped, in words. */
static enum ws_status
frames_failed(struct ws *w, int rc, char *err, size_t errlen)
{
	if (w->eof)
		return give_up(w, err, errlen, "%s", "closed by the server");
	if (w->sys_errno != 0)
		return give_up(w, err, errlen, "socket: %s", strerror(w->sys_errno));
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
		enum ws_status st = handshake_step(w, revents, err, errlen);

		/* Frames may have come with the reply: read them now, as
		 * the socket may have nothing more to wake the loop with. */
		if (st != WS_OPEN || w->early_len == 0)
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
	if (w->fd >= 0)
		close(w->fd);
	if (w->addrs != NULL)
		freeaddrinfo(w->addrs);
	buf_free(&w->request);
	free(w->early);
	free(w);
}
