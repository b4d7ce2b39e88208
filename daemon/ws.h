/* ws: a WebSocket client (RFC 6455) for a single-threaded event loop.
 * Knows nothing about genqd: the owner polls ws_fd() for ws_events(), hands
 * the result to ws_handle(), and gets each complete text message through
 * its callback. libcurl makes the connection (CONNECT_ONLY): name
 * resolution in its resolver thread, TCP, and TLS for https:/wss: with the
 * peer verified (system CA store, or the CA file given). Nothing in here
 * blocks: while connecting, ws_fd() is an epoll descriptor gathering
 * libcurl's sockets and timer; once connected it is the socket itself. The
 * HTTP Upgrade handshake is done here (Sec-WebSocket-Accept checked);
 * frames are wslay's, bytes go through curl_easy_send/recv. Messages over
 * the size limit close the connection. The peer is untrusted: every reply
 * is bounded and checked, never acted on before the handshake is verified.
 * Linux only (epoll, timerfd). */
#ifndef GENQD_WS_H
#define GENQD_WS_H

#include <stdbool.h>
#include <stddef.h>

#define WS_HEAD_MAX 8192            /* the server's handshake reply */
#define WS_ACCEPT_LEN 29            /* base64 of a SHA-1, plus NUL */
#define WS_KEY_LEN 25               /* base64 of 16 bytes, plus NUL */

struct ws;

/* A complete text message (not NUL-terminated; len bytes). Called from
 * ws_handle; the callback must not free the ws. */
typedef void (*ws_text_fn)(const char *data, size_t len, void *arg);

/* Where a connection stands after ws_handle. */
enum ws_status {
	WS_CONNECTING,        /* resolve, connect, TLS or handshake under way */
	WS_OPEN,              /* handshake verified: messages flow */
	WS_FAILED,            /* over: ws_free it (err says why) */
};

/* Start connecting to url ("http[s]://host[:port]/path?query", ws: and
 * wss: alike). ca_file: a PEM file of the CAs to trust for TLS instead of
 * the system store; NULL or "" for the system store. Returns at once;
 * resolve and connect errors come later from ws_handle. NULL with err
 * filled on failure (bad URL, another scheme). Owned by the caller:
 * ws_free. max_msg bounds one received message. */
struct ws *ws_connect(const char *url, const char *ca_file, size_t max_msg,
    ws_text_fn on_text, void *arg, char *err, size_t errlen);

/* The descriptor to poll, and the poll(2) events it waits for now: both
 * change as the connection goes on, so ask before every poll. */
int ws_fd(const struct ws *w);
short ws_events(const struct ws *w);

/* Act on poll(2) revents for ws_fd. Returns the state after; on WS_FAILED
 * err says why (the ws must then be freed). */
enum ws_status ws_handle(struct ws *w, short revents, char *err, size_t errlen);

enum ws_status ws_status(const struct ws *w);

/* Messages of any kind (text, binary, pong, ...) received so far: the owner
 * sees from it that the peer is alive. */
unsigned long ws_received(const struct ws *w);

/* Queue a ping (keeps idle NATs open, shows a dead peer). 0 or -1. */
int ws_ping(struct ws *w);

/* Close the connection and free everything; NULL is ignored. No close frame is
 * sent: the owner only drops a connection that is broken or unwanted. */
void ws_free(struct ws *w);

/* ---- pure parts (unit-tested) ---- */

/* The Sec-WebSocket-Accept value for key (RFC 6455 §4.2.2): base64 of the
 * SHA-1 of key and the protocol GUID. 0 or -1. */
int ws_accept_for(const char *key, char out[WS_ACCEPT_LEN]);

/* Read the server's handshake reply in reply[0..len): 0 when the header is
 * not complete yet, 1 when it is a valid 101 upgrade for key (*head_len: the
 * header's length; bytes after it are frames), -1 when it is refused or
 * malformed (err says why). */
int ws_check_reply(const char *reply, size_t len, const char *key, size_t *head_len,
    char *err, size_t errlen);

#endif
