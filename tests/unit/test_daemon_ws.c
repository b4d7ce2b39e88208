/* Unit tests: the ComfyUI event stream's pure parts: its messages
 * (daemon/comfyevt.c) and the WebSocket handshake check (daemon/ws.c),
 * plus real connections over loopback to a scripted server, so the
 * client's framing (wslay) is exercised on a socket, and one through a
 * resolver that hangs (libcurl's resolver thread must not block). */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../daemon/comfyevt.c"
#include "../../daemon/ws.c"

#define PID "0b9f2c1e-8d3a-4c5b-9e6f-7a8b9c0d1e2f"

static enum comfy_evt_kind
parse(const char *text, struct comfy_evt *e)
{
	return comfy_evt_parse(text, strlen(text), e);
}

/* ---- messages ---- */

START_TEST(evt_progress)
{
	struct comfy_evt e;

	ck_assert_int_eq(parse("{\"type\": \"progress\", \"data\": {\"value\": 5, \"max\": 20, "
	    "\"prompt_id\": \"" PID "\", \"node\": \"3\"}}", &e), CEVT_PROGRESS);
	ck_assert_str_eq(e.prompt_id, PID);
	ck_assert_str_eq(e.type, "progress");
	ck_assert(comfy_evt_fraction(&e) == 0.25);
	/* The last step is not the end of the job: capped below 1. */
	ck_assert_int_eq(parse("{\"type\": \"progress\", \"data\": {\"value\": 20, \"max\": 20, "
	    "\"prompt_id\": \"" PID "\"}}", &e), CEVT_PROGRESS);
	ck_assert(comfy_evt_fraction(&e) == 0.99);
	/* Floats are numbers too. */
	ck_assert_int_eq(parse("{\"type\": \"progress\", \"data\": {\"value\": 0.5, \"max\": 2.0, "
	    "\"prompt_id\": \"" PID "\"}}", &e), CEVT_PROGRESS);
	ck_assert(comfy_evt_fraction(&e) == 0.25);
}
END_TEST

START_TEST(evt_progress_hostile)
{
	struct comfy_evt e;

	/* Strings, missing fields: not progress. */
	ck_assert_int_eq(parse("{\"type\": \"progress\", \"data\": {\"value\": \"5\", \"max\": 20, "
	    "\"prompt_id\": \"" PID "\"}}", &e), CEVT_IGNORED);
	ck_assert_int_eq(parse("{\"type\": \"progress\", \"data\": {\"max\": 20}}", &e), CEVT_IGNORED);
	/* Nonsense numbers have no fraction. */
	ck_assert_int_eq(parse("{\"type\": \"progress\", \"data\": {\"value\": 5, \"max\": 0}}", &e),
	    CEVT_PROGRESS);
	ck_assert(comfy_evt_fraction(&e) < 0);
	ck_assert_int_eq(parse("{\"type\": \"progress\", \"data\": {\"value\": -1, \"max\": 3}}", &e),
	    CEVT_PROGRESS);
	ck_assert(comfy_evt_fraction(&e) < 0);
	ck_assert_int_eq(parse("{\"type\": \"progress\", \"data\": {\"value\": 1e308, \"max\": 1e-308}}",
	    &e), CEVT_PROGRESS);
	ck_assert(comfy_evt_fraction(&e) == 0.99);
}
END_TEST

START_TEST(evt_ends)
{
	struct comfy_evt e;

	ck_assert_int_eq(parse("{\"type\": \"executing\", \"data\": {\"node\": null, "
	    "\"prompt_id\": \"" PID "\"}}", &e), CEVT_ENDED);
	ck_assert_str_eq(e.prompt_id, PID);
	ck_assert_int_eq(parse("{\"type\": \"executing\", \"data\": {\"node\": \"9\", "
	    "\"display_node\": \"9\", \"prompt_id\": \"" PID "\"}}", &e), CEVT_RUNNING);
	/* After a reconnect ComfyUI sends executing with a node and no prompt id. */
	ck_assert_int_eq(parse("{\"type\": \"executing\", \"data\": {\"node\": \"9\"}}", &e),
	    CEVT_RUNNING);
	ck_assert_str_eq(e.prompt_id, "");
	/* No node member at all is not the end. */
	ck_assert_int_eq(parse("{\"type\": \"executing\", \"data\": {\"prompt_id\": \"" PID "\"}}",
	    &e), CEVT_IGNORED);
	ck_assert_int_eq(parse("{\"type\": \"execution_success\", \"data\": {\"prompt_id\": \"" PID
	    "\", \"timestamp\": 1700000000000}}", &e), CEVT_ENDING);
	ck_assert_int_eq(parse("{\"type\": \"execution_error\", \"data\": {\"prompt_id\": \"" PID
	    "\", \"node_id\": \"3\", \"exception_message\": \"x\"}}", &e), CEVT_ENDING);
	ck_assert_int_eq(parse("{\"type\": \"execution_interrupted\", \"data\": {\"prompt_id\": \""
	    PID "\", \"node_id\": \"3\", \"executed\": []}}", &e), CEVT_ENDING);
	ck_assert_int_eq(parse("{\"type\": \"execution_start\", \"data\": {\"prompt_id\": \"" PID
	    "\"}}", &e), CEVT_RUNNING);
}
END_TEST

START_TEST(evt_other_and_bad)
{
	struct comfy_evt e;
	char big[200];

	ck_assert_int_eq(parse("{\"type\": \"status\", \"data\": {\"status\": {\"exec_info\": "
	    "{\"queue_remaining\": 0}}, \"sid\": \"genqd-1\"}}", &e), CEVT_IGNORED);
	ck_assert_int_eq(parse("{\"type\": \"executed\", \"data\": {\"node\": \"9\", \"output\": {}, "
	    "\"prompt_id\": \"" PID "\"}}", &e), CEVT_IGNORED);
	ck_assert_int_eq(parse("{\"type\": \"progress_state\", \"data\": {\"prompt_id\": \"" PID
	    "\", \"nodes\": {}}}", &e), CEVT_IGNORED);
	ck_assert_int_eq(parse("not json", &e), CEVT_BAD);
	ck_assert_int_eq(parse("[]", &e), CEVT_BAD);
	ck_assert_int_eq(parse("{\"type\": 1, \"data\": {}}", &e), CEVT_BAD);
	ck_assert_int_eq(parse("{\"type\": \"progress\", \"data\": []}", &e), CEVT_BAD);
	ck_assert_int_eq(parse("{\"type\": \"progress\"}", &e), CEVT_BAD);
	{
		static const char trailing[] = "{\"type\": \"x\", \"data\": {}}\0junk";
		ck_assert_int_eq(comfy_evt_parse(trailing, sizeof trailing - 1, &e), CEVT_BAD);
	}
	/* Too deep to be a ComfyUI message. */
	ck_assert_int_eq(parse("{\"type\": \"executed\", \"data\": {\"a\": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}}",
	    &e), CEVT_BAD);
	/* A prompt id longer than any of genq's is nobody's. */
	snprintf(big, sizeof big, "{\"type\": \"execution_success\", \"data\": {\"prompt_id\": \"%0100d\"}}", 7);
	ck_assert_int_eq(parse(big, &e), CEVT_ENDING);
	ck_assert_str_eq(e.prompt_id, "");
}
END_TEST

/* ---- the handshake ---- */

START_TEST(accept_rfc_example)
{
	char out[WS_ACCEPT_LEN];

	/* RFC 6455 §1.3's own example. */
	ck_assert_int_eq(ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define GOOD_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static int
check(const char *reply, size_t *head_len, char *err)
{
	return ws_check_reply(reply, strlen(reply), KEY, head_len, err, 256);
}

START_TEST(reply_ok)
{
	const char *r = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
	    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept:  " GOOD_ACCEPT " \r\n"
	    "Date: x\r\n\r\n\x81\x02hi";
	size_t head = 0;
	char err[256];

	ck_assert_int_eq(check(r, &head, err), 1);
	/* The frame after the header is not part of it. */
	ck_assert_uint_eq(head, strlen(r) - 4);
}
END_TEST

START_TEST(reply_partial)
{
	size_t head = 0;
	char err[256];

	ck_assert_int_eq(check("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
	    &head, err), 0);
	ck_assert_int_eq(check("", &head, err), 0);
}
END_TEST

START_TEST(reply_refused)
{
	size_t head = 0;
	char err[256];

	/* What ComfyUI (aiohttp) answers a plain GET /ws. */
	ck_assert_int_eq(check("HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad", &head, err),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "400"));
	ck_assert_int_eq(check("HTTP/1.1 200 OK\r\n\r\n", &head, err), -1);
	ck_assert_int_eq(check("HTTP/1.1 1010 x\r\n\r\n", &head, err), -1);
	ck_assert_int_eq(check("garbage\r\n\r\n", &head, err), -1);
	/* Wrong or missing accept value. */
	ck_assert_int_eq(check("HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", &head, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "Accept"));
	ck_assert_int_eq(check("HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	    &head, err), -1);
	/* Missing upgrade headers. */
	ck_assert_int_eq(check("HTTP/1.1 101 S\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
	    GOOD_ACCEPT "\r\n\r\n", &head, err), -1);
	ck_assert_int_eq(check("HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgraded\r\n"
	    "Sec-WebSocket-Accept: " GOOD_ACCEPT "\r\n\r\n", &head, err), -1);
	/* An extension nobody offered. */
	ck_assert_int_eq(check("HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: " GOOD_ACCEPT "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
	    &head, err), -1);
	/* A header line without a colon. */
	ck_assert_int_eq(check("HTTP/1.1 101 S\r\nUpgrade websocket\r\n\r\n", &head, err), -1);
}
END_TEST

START_TEST(reply_hostile)
{
	char *big = malloc(WS_HEAD_MAX + 1);
	char reply[] = "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nX: a\0b\r\n\r\n";
	size_t head = 0;
	char err[256];

	/* No end of header within the limit. */
	memset(big, 'a', WS_HEAD_MAX);
	big[WS_HEAD_MAX] = '\0';
	ck_assert_int_eq(ws_check_reply(big, WS_HEAD_MAX, KEY, &head, err, sizeof err), -1);
	free(big);
	/* A NUL inside the header. */
	ck_assert_int_eq(ws_check_reply(reply, sizeof reply - 1, KEY, &head, err, sizeof err), -1);
	/* Control characters in the status line are not echoed into logs. */
	ck_assert_int_eq(check("HTTP/1.1 500 \x1b[31mred\r\n\r\n", &head, err), -1);
	ck_assert_ptr_null(strchr(err, '\x1b'));
}
END_TEST

/* ---- a real connection over loopback ---- */

struct got {
	char text[4][128];
	int n;
};

static void
collect(const char *data, size_t len, void *arg)
{
	struct got *g = arg;

	if (g->n < 4) {
		snprintf(g->text[g->n], sizeof g->text[g->n], "%.*s", (int)len, data);
		g->n++;
	}
}

/* Poll w until cond holds or a few seconds pass; the last status. */
static enum ws_status
drive_for(struct ws *w, const struct got *g, int want_msgs, char *err, int tries)
{
	enum ws_status st = ws_status(w);

	for (int i = 0; i < tries && st != WS_FAILED && g->n < want_msgs; i++) {
		struct pollfd p = { ws_fd(w), ws_events(w), 0 };

		if (poll(&p, 1, 10) > 0)
			st = ws_handle(w, p.revents, err, 256);
	}
	return st;
}

#define drive(w, g, want, err) drive_for(w, g, want, err, 300)
/* Move the connect and the request along (nothing to receive yet). */
#define pump(w, g, err) drive_for(w, g, 1, err, 5)

static int
listener(int *port)
{
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Read the client's request up to its blank line; its key into key. */
static void
read_request(int fd, char *req, size_t cap, char key[WS_KEY_LEN])
{
	size_t n = 0;
	const char *k;

	while (n + 1 < cap && (n < 4 || memcmp(req + n - 4, "\r\n\r\n", 4) != 0)) {
		ssize_t m = read(fd, req + n, 1);
		ck_assert_int_eq(m, 1);
		n++;
	}
	req[n] = '\0';
	k = strstr(req, "Sec-WebSocket-Key: ");
	ck_assert_ptr_nonnull(k);
	snprintf(key, WS_KEY_LEN, "%.24s", k + strlen("Sec-WebSocket-Key: "));
}

START_TEST(loopback_session)
{
	struct got got = { .n = 0 };
	char url[128], err[256], req[2048], key[WS_KEY_LEN], acc[WS_ACCEPT_LEN], out[512];
	int port, lfd = listener(&port), cfd;
	struct ws *w;
	int n;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/ws?clientId=genqd%%3A1", port);
	w = ws_connect(url, NULL, 1024, collect, &got, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	/* Let the connect finish and the request go out. */
	pump(w, &got, err);
	cfd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(cfd, 0);
	pump(w, &got, err);
	read_request(cfd, req, sizeof req, key);
	ck_assert_ptr_nonnull(strstr(req, "GET /ws?clientId=genqd%3A1 HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strstr(req, "Upgrade: websocket\r\n"));
	ck_assert_ptr_nonnull(strstr(req, "Sec-WebSocket-Version: 13\r\n"));
	ck_assert_int_eq(ws_accept_for(key, acc), 0);
	/* The reply and a first frame in one write: the client must not lose
	 * the frame that came with the header. */
	n = snprintf(out, sizeof out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
	    "\x81\x0a{\"a\": \"b\"}", acc);
	/* plus a binary frame (ignored) and a ping (answered) */
	memcpy(out + n, "\x82\x03\x00\x00\x01" "\x89\x00", 7);
	ck_assert_int_eq(write(cfd, out, (size_t)n + 7), n + 7);
	ck_assert_msg(drive(w, &got, 1, err) == WS_OPEN, "%s", err);
	ck_assert_int_eq(got.n, 1);
	ck_assert_str_eq(got.text[0], "{\"a\": \"b\"}");
	/* A fragmented text message arrives whole. */
	ck_assert_int_eq(write(cfd, "\x01\x02he" "\x80\x03llo", 9), 9);
	ck_assert_int_eq(drive(w, &got, 2, err), WS_OPEN);
	ck_assert_str_eq(got.text[1], "hello");
	ck_assert_uint_ge(ws_received(w), 4);
	/* The pong went back, masked as a client's frames must be. */
	{
		unsigned char pong[8];
		ck_assert_int_eq(read(cfd, pong, 6), 6);
		ck_assert_int_eq(pong[0], 0x8a);
		ck_assert_int_eq(pong[1], 0x80);
	}
	/* The server goes away: the client says so. */
	close(cfd);
	ck_assert_int_eq(drive(w, &got, 99, err), WS_FAILED);
	ck_assert_ptr_nonnull(strstr(err, "closed"));
	ws_free(w);
	close(lfd);
}
END_TEST

START_TEST(loopback_oversized_and_refused)
{
	struct got got = { .n = 0 };
	char url[128], err[256], req[2048], key[WS_KEY_LEN], acc[WS_ACCEPT_LEN], out[512];
	int port, lfd = listener(&port), cfd, n;
	struct ws *w;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/ws", port);
	w = ws_connect(url, NULL, 16, collect, &got, err, sizeof err);
	ck_assert_ptr_nonnull(w);
	pump(w, &got, err);
	cfd = accept(lfd, NULL, NULL);
	pump(w, &got, err);
	read_request(cfd, req, sizeof req, key);
	ck_assert_int_eq(ws_accept_for(key, acc), 0);
	n = snprintf(out, sizeof out, "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
	    "\x81\x14" "01234567890123456789", acc);
	ck_assert_int_eq(write(cfd, out, (size_t)n), n);
	/* Over the 16-byte limit: closed, nothing delivered. */
	ck_assert_int_eq(drive(w, &got, 1, err), WS_FAILED);
	ck_assert_int_eq(got.n, 0);
	ws_free(w);
	close(cfd);

	/* A server that refuses the upgrade. */
	w = ws_connect(url, NULL, 16, collect, &got, err, sizeof err);
	ck_assert_ptr_nonnull(w);
	pump(w, &got, err);
	cfd = accept(lfd, NULL, NULL);
	pump(w, &got, err);
	read_request(cfd, req, sizeof req, key);
	ck_assert_int_eq(write(cfd, "HTTP/1.1 404 Not Found\r\n\r\n", 26), 26);
	ck_assert_int_eq(drive(w, &got, 1, err), WS_FAILED);
	ck_assert_ptr_nonnull(strstr(err, "404"));
	ws_free(w);
	close(cfd);
	close(lfd);

	/* Other schemes are refused up front; so is nonsense. */
	ck_assert_ptr_null(ws_connect("ftp://127.0.0.1:1/ws", NULL, 16, collect, &got, err,
	    sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "ftp"));
	ck_assert_ptr_null(ws_connect("::::", NULL, 16, collect, &got, err, sizeof err));
}
END_TEST

/* https and wss are taken; a connect error comes from ws_handle, and the
 * descriptor to poll is there from the start. */
START_TEST(loopback_tls_refused_port)
{
	struct got got = { .n = 0 };
	char url[128], err[256] = "";
	int port, lfd = listener(&port);
	struct ws *w;

	/* Nothing listens there once the listener is closed. */
	close(lfd);
	snprintf(url, sizeof url, "wss://127.0.0.1:%d/ws", port);
	w = ws_connect(url, NULL, 16, collect, &got, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	ck_assert_int_ge(ws_fd(w), 0);
	ck_assert_int_eq(ws_status(w), WS_CONNECTING);
	ck_assert_int_eq(drive(w, &got, 1, err), WS_FAILED);
	ck_assert_ptr_nonnull(strstr(err, "connect"));
	ws_free(w);
	/* A CA file that does not exist fails the connect, never the loop. */
	snprintf(url, sizeof url, "https://127.0.0.1:%d/ws", port);
	w = ws_connect(url, "/nonexistent/ca.pem", 16, collect, &got, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	ck_assert_int_eq(drive(w, &got, 1, err), WS_FAILED);
	ws_free(w);
}
END_TEST

/* ---- a resolver that hangs ---- */

/* getaddrinfo for "slow.test" (as 127.0.0.1) waits until the test writes a
 * byte to gate[1], after saying on entered[1] that it started. Defined in
 * the executable, it comes before libc's for libcurl's resolver thread. */
static int gate[2] = { -1, -1 }, entered[2] = { -1, -1 };
static int (*real_getaddrinfo)(const char *, const char *, const struct addrinfo *,
    struct addrinfo **);

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	char c;

	if (node != NULL && strcmp(node, "slow.test") == 0 && gate[0] >= 0) {
		ck_assert_int_eq(write(entered[1], "e", 1), 1);
		while (read(gate[0], &c, 1) < 0 && errno == EINTR)
			;
		node = "127.0.0.1";
	}
	return real_getaddrinfo(node, service, hints, res);
}

/* Drive w until the resolver says it started; false if it never does. */
static bool
until_resolving(struct ws *w, char *err)
{
	for (int i = 0; i < 500; i++) {
		struct pollfd p[2] = { { ws_fd(w), ws_events(w), 0 }, { entered[0], POLLIN, 0 } };
		char c;

		if (poll(p, 2, 10) <= 0)
			continue;
		if (p[0].revents)
			ck_assert_int_ne(ws_handle(w, p[0].revents, err, 256), WS_FAILED);
		if (p[1].revents)
			return read(entered[0], &c, 1) == 1;
	}
	return false;
}

/* A name whose DNS hangs stalls nothing: ws_connect returns, the loop goes
 * on, a stream given up on is freed without waiting for its resolver, and
 * once the answer comes the stream opens. A blocking resolve would hang
 * this test (the case's timeout fails it); no timing is measured. */
START_TEST(slow_resolver_blocks_nothing)
{
	struct got got = { .n = 0 };
	char url[128], err[256] = "", req[2048], key[WS_KEY_LEN], acc[WS_ACCEPT_LEN], out[512];
	int port, lfd = listener(&port), cfd, n;
	struct ws *w;
	void *sym = dlsym(RTLD_NEXT, "getaddrinfo");

	ck_assert_ptr_nonnull(sym);
	memcpy(&real_getaddrinfo, &sym, sizeof sym);
	ck_assert_int_eq(pipe(gate), 0);
	ck_assert_int_eq(pipe(entered), 0);
	snprintf(url, sizeof url, "http://slow.test:%d/ws?clientId=x", port);

	/* Given up on while the resolver hangs: freed at once. */
	w = ws_connect(url, NULL, 1024, collect, &got, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	ck_assert_msg(until_resolving(w, err), "the resolve never started: %s", err);
	ck_assert_int_eq(pump(w, &got, err), WS_CONNECTING);
	ws_free(w);

	/* Another, and this time the answer comes. */
	w = ws_connect(url, NULL, 1024, collect, &got, err, sizeof err);
	ck_assert_msg(w != NULL, "%s", err);
	ck_assert_msg(until_resolving(w, err), "the resolve never started: %s", err);
	ck_assert_int_eq(ws_status(w), WS_CONNECTING);
	/* One byte for each waiting resolve, the abandoned one too. */
	ck_assert_int_eq(write(gate[1], "gg", 2), 2);
	for (int i = 0; i < 50 && ws_status(w) == WS_CONNECTING; i++) {
		struct pollfd p = { lfd, POLLIN, 0 };

		pump(w, &got, err);
		if (poll(&p, 1, 0) > 0)
			break;
	}
	cfd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(cfd, 0);
	pump(w, &got, err);
	read_request(cfd, req, sizeof req, key);
	snprintf(out, sizeof out, "Host: slow.test:%d\r\n", port);
	ck_assert_ptr_nonnull(strstr(req, out));
	ck_assert_int_eq(ws_accept_for(key, acc), 0);
	n = snprintf(out, sizeof out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n\x81\x02ok", acc);
	ck_assert_int_eq(write(cfd, out, (size_t)n), n);
	ck_assert_msg(drive(w, &got, 1, err) == WS_OPEN, "%s", err);
	ck_assert_str_eq(got.text[0], "ok");
	ws_free(w);
	close(cfd);
	close(lfd);
	/* The pipes stay open: the abandoned resolver thread may still be
	 * on its way out of read(). */
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("daemon_ws");
	TCase *t = tcase_create("events");

	tcase_add_test(t, evt_progress);
	tcase_add_test(t, evt_progress_hostile);
	tcase_add_test(t, evt_ends);
	tcase_add_test(t, evt_other_and_bad);
	suite_add_tcase(s, t);
	t = tcase_create("handshake");
	tcase_add_test(t, accept_rfc_example);
	tcase_add_test(t, reply_ok);
	tcase_add_test(t, reply_partial);
	tcase_add_test(t, reply_refused);
	tcase_add_test(t, reply_hostile);
	suite_add_tcase(s, t);
	t = tcase_create("loopback");
	tcase_set_timeout(t, 20);
	tcase_add_test(t, loopback_session);
	tcase_add_test(t, loopback_oversized_and_refused);
	tcase_add_test(t, loopback_tls_refused_port);
	tcase_add_test(t, slow_resolver_blocks_nothing);
	suite_add_tcase(s, t);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
