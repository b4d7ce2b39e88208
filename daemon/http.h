/* http: asynchronous HTTP client over one libcurl multi handle, for talking
 * to backends. Knows nothing about genqd: a request goes out, and when it
 * ends (answer, error, timeout, or a reply over its size limit) its callback
 * runs from http_perform. Reply bodies are bounded, redirects are never
 * followed, only http and https are spoken. */
#ifndef GENQD_HTTP_H
#define GENQD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct http;
struct http_req;

/* How a request ended. Valid only while the callback runs. */
struct http_result {
	int curl_code;            /* CURLE_OK, or the libcurl error */
	const char *error;        /* readable error text ("" when none) */
	long status;              /* HTTP status, 0 when no answer arrived */
	const char *body;         /* memory replies: NUL-terminated, never NULL */
	size_t len;
	const char *content_type; /* the reply's Content-Type, NULL if none */
	bool too_large;           /* the reply passed its size limit */
	bool not_sent;            /* the request surely never reached the server */
	bool sink_failed;         /* a sink callback refused the data */
	bool addr_refused;        /* http_post_opts.addr_ok refused every address */
};

/* Called once when a request ends; the request is freed right after, so
 * drop every pointer to it here. */
typedef void (*http_done_fn)(const struct http_result *res, void *arg);

/* Receives the body of a streamed request; return 0, or -1 to abort it. */
typedef int (*http_sink_fn)(const void *data, size_t len, void *arg);

/* A client; NULL on failure. Owned by the caller: http_free. Callbacks of
 * requests still in flight at http_free are not called. */
struct http *http_new(void);
void http_free(struct http *h);

/* Whole-request time limit for requests started from now on. */
void http_set_timeout(struct http *h, int seconds);

/* Connections kept open for reuse once their requests end
 * (CURLMOPT_MAXCONNECTS). libcurl's default, four per request in flight,
 * shrinks as a burst of requests ends, and the next burst then opens new
 * connections. */
void http_set_connection_cache(struct http *h, long connections);

/* A PEM file of the CAs that https peers are verified against, instead of
 * the system store, for requests started from now on (copied; NULL or ""
 * for the system store). Requests to hosts that are not backends ask for
 * the system store (http_post_opts.system_ca). 0 or -1 (out of memory). */
int http_set_ca_file(struct http *h, const char *path);

/* GET url; the reply body is kept in memory up to limit bytes. */
struct http_req *http_get(struct http *h, const char *url, size_t limit,
    http_done_fn done, void *arg);

/* The same with nheaders "Name: value" lines added to the request. */
struct http_req *http_get_headers(struct http *h, const char *url, size_t limit,
    const char *const *headers, size_t nheaders, http_done_fn done, void *arg);

/* POST a JSON body (copied) to url; reply bounded by limit. */
struct http_req *http_post_json(struct http *h, const char *url,
    const char *body, size_t len, size_t limit, http_done_fn done, void *arg);

/* What http_post adds to a plain POST. */
struct http_post_opts {
	const char *content_type;            /* NULL: application/json */
	const char *const *headers;          /* nheaders "Name: value" lines */
	size_t nheaders;
	/* Asked before every connection; false refuses that address (so a
	 * host name cannot be resolved around the check). NULL: any. */
	bool (*addr_ok)(const struct sockaddr *sa, void *arg);
	void *addr_arg;
	int timeout_s;                       /* 0: the client's limit */
	/* The peer is not a backend (webhooks): verify it against the
	 * system CA store even when http_set_ca_file named another. */
	bool system_ca;
	/* Non-NULL: the reply streams into it (called with the request's
	 * arg, nothing kept in memory), bounded by limit like a memory one. */
	http_sink_fn sink;
};

/* POST body (copied) to url with opts; reply bounded by limit. */
struct http_req *http_post(struct http *h, const char *url, const void *body,
    size_t len, const struct http_post_opts *opts, size_t limit,
    http_done_fn done, void *arg);

/* One field of a multipart/form-data POST: a text value, or a file on disk
 * (streamed from the file by libcurl, never held in memory). */
struct http_form_part {
	const char *name;
	const char *value;                   /* text fields; NULL for a file */
	const char *file;                    /* file fields: its path */
	const char *filename;                /* the file name sent with it */
	const char *type;                    /* its content type */
};

/* POST a multipart/form-data form of nparts fields to url. */
struct http_req *http_post_form(struct http *h, const char *url,
    const struct http_form_part *parts, size_t nparts, size_t limit,
    http_done_fn done, void *arg);

/* GET url streaming the body into sink (nothing kept in memory); a reply
 * over limit bytes is aborted with too_large. */
struct http_req *http_get_sink(struct http *h, const char *url, uint64_t limit,
    http_sink_fn sink, http_done_fn done, void *arg);

/* Have drop(arg) called if req ends without its callback (http_cancel,
 * http_free), so an arg the callback would have freed is freed anyway. */
void http_on_drop(struct http_req *req, void (*drop)(void *arg));

/* Stop a request; its callback is not called. NULL is ignored, and so is a
 * request whose callback is running (it is freed when the callback ends). */
void http_cancel(struct http *h, struct http_req *req);

/* Move transfers along and run the callbacks of the ones that ended. */
void http_perform(struct http *h);

/* Move transfers along (send what was just queued) without running any
 * callback: safe in the middle of work a callback could disturb. The
 * transfers that ended are reported by the next http_perform. */
void http_send(struct http *h);

/* Wait for network activity, for extra_fd (-1 for none) to become readable
 * (*extra_ready set), or for timeout_ms. */
void http_wait(struct http *h, int extra_fd, int timeout_ms, bool *extra_ready);

/* Wait like http_wait, for any number of extra descriptors: fds[i].events
 * (POLLIN, POLLOUT) are watched and fds[i].revents says which came. */
struct pollfd;
void http_wait_fds(struct http *h, struct pollfd *fds, size_t nfds, int timeout_ms);

/* Requests in flight. */
size_t http_active(const struct http *h);

#endif
