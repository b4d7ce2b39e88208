#include "autoconf.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "http.h"

/* A connection idle for 4 s or more is closed, not reused (libcurl
 * compares whole seconds: more than 3). Servers close theirs after their
 * own keep-alive timeout (uvicorn's default, which vLLM's server runs on,
 * is 5 s), and a request sent just as the server closes fails once its
 * body is out (the resend is refused: on_seek_body), costing the job an
 * attempt. */
#define CONNECTION_IDLE_MAX_S 3L

struct http_req {
	struct http_req *next;       /* h->done list, after the transfer ended */
	struct http_req *prev_live, *next_live;  /* h->live, while in the multi */
	struct http *h;
	CURL *easy;
	struct curl_slist *headers;
	curl_mime *form;             /* multipart body, for http_post_form */
	char *post;                  /* owned copy of the request body */
	size_t post_len, post_sent;  /* its length; how much libcurl has read */
	struct buf body;             /* memory replies */
	http_sink_fn sink;           /* streamed replies */
	uint64_t limit, received;
	bool too_large, sink_failed;
	bool addr_refused;           /* addr_ok said no */
	bool system_ca;              /* verified against the system store, always */
	bool (*addr_ok)(const struct sockaddr *sa, void *arg);
	void *addr_arg;
	bool in_multi;               /* still attached to the multi handle */
	bool delivering;             /* its callback is running */
	CURLcode code;               /* the transfer's result, once done */
	char errbuf[CURL_ERROR_SIZE];
	http_done_fn done;
	void (*drop)(void *arg);     /* called when done never will be */
	void *arg;
};

struct http {
	CURLM *multi;
	int timeout_s;
	char *ca_file;               /* CAs for backend requests, NULL: system store */
	size_t active;
	struct http_req *live;       /* every request attached to the multi */
	/* Transfers that ended, waiting for their callbacks. A callback may
	 * cancel any request, including one of these, so they are delivered
	 * one at a time from this list rather than straight from libcurl. */
	struct http_req *done_head, *done_tail;
};

static int curl_ready;

struct http *
http_new(void)
{
	struct http *h;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return NULL;
		curl_ready = 1;
	}
	h = calloc(1, sizeof *h);
	if (h == NULL)
		return NULL;
	h->timeout_s = 30;
	h->multi = curl_multi_init();
	if (h->multi == NULL) {
		free(h);
		return NULL;
	}
	return h;
}

static void
req_free(struct http_req *r)
{
	if (r == NULL)
		return;
	if (!r->delivering && r->drop != NULL)
		r->drop(r->arg);
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	curl_mime_free(r->form);
	free(r->post);
	buf_free(&r->body);
	free(r);
}

static void
detach(struct http *h, struct http_req *r)
{
	if (!r->in_multi)
		return;
	curl_multi_remove_handle(h->multi, r->easy);
	r->in_multi = false;
	h->active--;
	if (r->prev_live != NULL)
		r->prev_live->next_live = r->next_live;
	else
		h->live = r->next_live;
	if (r->next_live != NULL)
		r->next_live->prev_live = r->prev_live;
	r->prev_live = r->next_live = NULL;
}

void
http_free(struct http *h)
{
	struct http_req *r, *next;

	if (h == NULL)
		return;
	for (r = h->done_head; r != NULL; r = next) {
		next = r->next;
		req_free(r);
	}
	while ((r = h->live) != NULL) {
		detach(h, r);
		req_free(r);
	}
	curl_multi_cleanup(h->multi);
	free(h->ca_file);
	free(h);
}

void
http_set_timeout(struct http *h, int seconds)
{
	h->timeout_s = seconds > 0 ? seconds : 1;
}

void
http_set_connection_cache(struct http *h, long connections)
{
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, connections);
}

int
http_set_ca_file(struct http *h, const char *path)
{
	char *copy = NULL;

	if (path != NULL && path[0] != '\0' && (copy = strdup(path)) == NULL)
		return -1;
	free(h->ca_file);
	h->ca_file = copy;
	return 0;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_req *r = userp;
	size_t n = size * nmemb;

	if (r->received + n > r->limit) {
		r->too_large = true;
		return 0;               /* aborts the transfer */
	}
	r->received += n;
	if (r->sink != NULL) {
		if (r->sink(data, n, r->arg) < 0) {
			r->sink_failed = true;
			return 0;
		}
		return n;
	}
	if (buf_append(&r->body, data, n) < 0) {
		r->too_large = true;
		return 0;
	}
	return n;
}

/* Drop the reply headers; the Content-Type comes from CURLINFO later. */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *userp)
{
	(void)data;
	(void)userp;
	return size * nmemb;
}

/* The POST body, handed to libcurl through a read callback. */
static size_t
on_read_body(char *buf, size_t size, size_t nitems, void *userp)
{
	struct http_req *r = userp;
	size_t n = r->post_len - r->post_sent;

	if (n > size * nitems)
		n = size * nitems;
	memcpy(buf, r->post + r->post_sent, n);
	r->post_sent += n;
	return n;
}

/* libcurl asks to rewind when a reused connection died under a request, to
 * send it again on a new one. Once any of the body went out, the backend
 * may have taken the request (a prompt would then run twice on its GPU):
 * refuse, so the request fails (CURLE_SEND_FAIL_REWIND) and the caller
 * checks with the backend instead of resending blind. */
static int
on_seek_body(void *userp, curl_off_t offset, int origin)
{
	struct http_req *r = userp;

	if (origin == SEEK_SET && offset == 0 && r->post_sent == 0)
		return CURL_SEEKFUNC_OK;
	return CURL_SEEKFUNC_CANTSEEK;
}

static void
post_body(struct http_req *r, size_t len)
{
	r->post_len = len;
	r->post_sent = 0;
	curl_easy_setopt(r->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(r->easy, CURLOPT_READFUNCTION, on_read_body);
	curl_easy_setopt(r->easy, CURLOPT_READDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_SEEKFUNCTION, on_seek_body);
	curl_easy_setopt(r->easy, CURLOPT_SEEKDATA, r);
}

static struct http_req *
req_new(struct http *h, const char *url, uint64_t limit, http_done_fn done, void *arg)
{
	struct http_req *r = calloc(1, sizeof *r);
	long connect_s = h->timeout_s < 10 ? h->timeout_s : 10;

	if (r == NULL)
		return NULL;
	r->h = h;
	r->limit = limit;
	r->done = done;
	r->arg = arg;
	buf_init(&r->body, 0);
	r->easy = curl_easy_init();
	if (r->easy == NULL)
		goto fail;
	if (curl_easy_setopt(r->easy, CURLOPT_URL, url) != CURLE_OK)
		goto fail;
	curl_easy_setopt(r->easy, CURLOPT_PRIVATE, (char *)r);
	curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, (long)h->timeout_s);
	curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT, connect_s);
	curl_easy_setopt(r->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)limit);
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "genqd/" PACKAGE_VERSION);
	curl_easy_setopt(r->easy, CURLOPT_MAXAGE_CONN, CONNECTION_IDLE_MAX_S);
	/* A request that times out while its host name is still resolving
	 * would otherwise be cleaned up by joining the resolver thread, which
	 * blocks the loop as long as the resolver hangs: leave it instead. */
	curl_easy_setopt(r->easy, CURLOPT_QUICK_EXIT, 1L);
	return r;
fail:
	req_free(r);
	return NULL;
}

static struct http_req *
req_start(struct http *h, struct http_req *r)
{
	/* Peers are always verified; the CA file only replaces the store. */
	if (h->ca_file != NULL && !r->system_ca &&
	    curl_easy_setopt(r->easy, CURLOPT_CAINFO, h->ca_file) != CURLE_OK) {
		req_free(r);
		return NULL;
	}
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
		req_free(r);
		return NULL;
	}
	r->in_multi = true;
	h->active++;
	r->next_live = h->live;
	if (h->live != NULL)
		h->live->prev_live = r;
	h->live = r;
	return r;
}

struct http_req *
http_get(struct http *h, const char *url, size_t limit, http_done_fn done, void *arg)
{
	return http_get_headers(h, url, limit, NULL, 0, done, arg);
}

struct http_req *
http_get_headers(struct http *h, const char *url, size_t limit, const char *const *headers,
    size_t nheaders, http_done_fn done, void *arg)
{
	struct http_req *r = req_new(h, url, limit, done, arg);

	if (r == NULL)
		return NULL;
	curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
	for (size_t i = 0; i < nheaders; i++) {
		struct curl_slist *l = curl_slist_append(r->headers, headers[i]);

		if (l == NULL) {
			req_free(r);
			return NULL;
		}
		r->headers = l;
	}
	if (r->headers != NULL)
		curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	return req_start(h, r);
}

struct http_req *
http_post_json(struct http *h, const char *url, const char *body, size_t len,
    size_t limit, http_done_fn done, void *arg)
{
	struct http_req *r = req_new(h, url, limit, done, arg);
	struct curl_slist *l;

	if (r == NULL)
		return NULL;
	r->post = malloc(len + 1);
	if (r->post == NULL)
		goto fail;
	memcpy(r->post, body, len);
	r->post[len] = '\0';
	l = curl_slist_append(NULL, "Content-Type: application/json");
	if (l == NULL)
		goto fail;
	r->headers = l;
	/* No "Expect: 100-continue" round trip for larger bodies. */
	if ((l = curl_slist_append(r->headers, "Expect:")) == NULL)
		goto fail;
	r->headers = l;
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	post_body(r, len);
	return req_start(h, r);
fail:
	req_free(r);
	return NULL;
}

/* libcurl asks for each socket it opens: the address check happens here,
 * on the address actually connected to, after name resolution. */
static curl_socket_t
on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	struct http_req *r = clientp;

	(void)purpose;
	if (r->addr_ok != NULL && !r->addr_ok(&address->addr, r->addr_arg)) {
		r->addr_refused = true;
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

struct http_req *
http_post(struct http *h, const char *url, const void *body, size_t len,
    const struct http_post_opts *opts, size_t limit, http_done_fn done, void *arg)
{
	struct http_req *r = req_new(h, url, limit, done, arg);
	char ctype[160];
	struct curl_slist *l;

	if (r == NULL)
		return NULL;
	if ((r->post = malloc(len + 1)) == NULL)
		goto fail;
	memcpy(r->post, body, len);
	r->post[len] = '\0';
	snprintf(ctype, sizeof ctype, "Content-Type: %s",
	    opts->content_type ? opts->content_type : "application/json");
	if ((r->headers = curl_slist_append(NULL, ctype)) == NULL)
		goto fail;
	if ((l = curl_slist_append(r->headers, "Expect:")) == NULL)
		goto fail;
	r->headers = l;
	for (size_t i = 0; i < opts->nheaders; i++) {
		if ((l = curl_slist_append(r->headers, opts->headers[i])) == NULL)
			goto fail;
		r->headers = l;
	}
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	post_body(r, len);
	if (opts->timeout_s > 0) {
		curl_easy_setopt(r->easy, CURLOPT_TIMEOUT, (long)opts->timeout_s);
		curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT, (long)opts->timeout_s);
	}
	r->sink = opts->sink;
	r->system_ca = opts->system_ca;
	if (opts->addr_ok != NULL) {
		r->addr_ok = opts->addr_ok;
		r->addr_arg = opts->addr_arg;
		curl_easy_setopt(r->easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
		curl_easy_setopt(r->easy, CURLOPT_OPENSOCKETDATA, r);
	}
	return req_start(h, r);
fail:
	req_free(r);
	return NULL;
}

struct http_req *
http_post_form(struct http *h, const char *url, const struct http_form_part *parts,
    size_t nparts, size_t limit, http_done_fn done, void *arg)
{
	struct http_req *r = req_new(h, url, limit, done, arg);

	if (r == NULL)
		return NULL;
	/* The form goes with the request: req_free frees it after the easy handle. */
	if ((r->form = curl_mime_init(r->easy)) == NULL)
		goto fail;
	for (size_t i = 0; i < nparts; i++) {
		const struct http_form_part *p = &parts[i];
		curl_mimepart *part = curl_mime_addpart(r->form);

		if (part == NULL || curl_mime_name(part, p->name) != CURLE_OK)
			goto fail;
		if (p->file != NULL) {
			if (curl_mime_filedata(part, p->file) != CURLE_OK ||
			    curl_mime_filename(part, p->filename) != CURLE_OK ||
			    curl_mime_type(part, p->type) != CURLE_OK)
				goto fail;
		} else if (curl_mime_data(part, p->value, CURL_ZERO_TERMINATED) != CURLE_OK) {
			goto fail;
		}
	}
	if ((r->headers = curl_slist_append(NULL, "Expect:")) == NULL)
		goto fail;
	curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(r->easy, CURLOPT_MIMEPOST, r->form);
	return req_start(h, r);
fail:
	req_free(r);
	return NULL;
}

struct http_req *
http_get_sink(struct http *h, const char *url, uint64_t limit, http_sink_fn sink,
    http_done_fn done, void *arg)
{
	struct http_req *r = req_new(h, url, limit, done, arg);

	if (r == NULL)
		return NULL;
	r->sink = sink;
	curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
	/* Streamed files are not re-encoded on the way. */
	curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, NULL);
	return req_start(h, r);
}

void
http_on_drop(struct http_req *req, void (*drop)(void *arg))
{
	if (req != NULL)
		req->drop = drop;
}

void
http_cancel(struct http *h, struct http_req *req)
{
	struct http_req **pp;

	if (req == NULL || req->delivering)
		return;              /* freed by http_perform once the callback returns */
	if (req->in_multi) {
		detach(h, req);
	} else {
		for (pp = &h->done_head; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == req) {
				*pp = req->next;
				break;
			}
		}
		h->done_tail = NULL;
		for (struct http_req *t = h->done_head; t != NULL; t = t->next)
			h->done_tail = t;
	}
	req_free(req);
}

static void
deliver(struct http_req *r)
{
	struct http_result res;
	long status = 0;
	char *ctype = NULL;

	memset(&res, 0, sizeof res);
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
	res.curl_code = (int)r->code;
	res.status = status;
	res.too_large = r->too_large ||
	    r->code == CURLE_FILESIZE_EXCEEDED;
	res.sink_failed = r->sink_failed;
	res.addr_refused = r->addr_refused;
	res.content_type = ctype;
	res.body = r->body.data != NULL ? r->body.data : "";
	res.len = r->body.len;
	if (r->code != CURLE_OK)
		res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->code);
	else
		res.error = "";
	/* A connection that never opened carried nothing: safe to resend. */
	res.not_sent = r->code == CURLE_COULDNT_CONNECT ||
	    r->code == CURLE_COULDNT_RESOLVE_HOST ||
	    r->code == CURLE_COULDNT_RESOLVE_PROXY ||
	    r->code == CURLE_URL_MALFORMAT ||
	    r->code == CURLE_UNSUPPORTED_PROTOCOL;
	r->done(&res, r->arg);
}

void
http_perform(struct http *h)
{
	struct CURLMsg *msg;
	int running = 0, left = 0;

	curl_multi_perform(h->multi, &running);
	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		char *p = NULL;
		struct http_req *r;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
		r = (struct http_req *)p;
		r->code = msg->data.result;
		detach(h, r);
		r->next = NULL;
		if (h->done_tail != NULL)
			h->done_tail->next = r;
		else
			h->done_head = r;
		h->done_tail = r;
	}
	while (h->done_head != NULL) {
		struct http_req *r = h->done_head;

		h->done_head = r->next;
		if (h->done_head == NULL)
			h->done_tail = NULL;
		r->delivering = true;
		deliver(r);
		req_free(r);
	}
}

void
http_send(struct http *h)
{
	int running = 0;

	curl_multi_perform(h->multi, &running);
}

void
http_wait(struct http *h, int extra_fd, int timeout_ms, bool *extra_ready)
{
	struct curl_waitfd wfd;
	int n = 0;

	*extra_ready = false;
	if (timeout_ms < 0)
		timeout_ms = 0;
	memset(&wfd, 0, sizeof wfd);
	if (extra_fd >= 0) {
		wfd.fd = extra_fd;
		wfd.events = CURL_WAIT_POLLIN;
	}
	curl_multi_poll(h->multi, extra_fd >= 0 ? &wfd : NULL, extra_fd >= 0 ? 1 : 0,
	    timeout_ms, &n);
	if (extra_fd >= 0 && (wfd.revents & CURL_WAIT_POLLIN))
		*extra_ready = true;
}

void
http_wait_fds(struct http *h, struct pollfd *fds, size_t nfds, int timeout_ms)
{
	struct curl_waitfd stack[16], *w = stack;
	size_t i;
	int n = 0;

	if (nfds > sizeof stack / sizeof stack[0] && (w = calloc(nfds, sizeof *w)) == NULL) {
		/* No room to watch them: wait for the transfers alone, briefly. */
		for (i = 0; i < nfds; i++)
			fds[i].revents = 0;
		curl_multi_poll(h->multi, NULL, 0, timeout_ms < 10 ? timeout_ms : 10, &n);
		return;
	}
	if (timeout_ms < 0)
		timeout_ms = 0;
	for (i = 0; i < nfds; i++) {
		w[i].fd = fds[i].fd;
		w[i].events = (short)(((fds[i].events & POLLIN) ? CURL_WAIT_POLLIN : 0) |
		    ((fds[i].events & POLLOUT) ? CURL_WAIT_POLLOUT : 0));
		w[i].revents = 0;
	}
	curl_multi_poll(h->multi, nfds ? w : NULL, (unsigned)nfds, timeout_ms, &n);
	for (i = 0; i < nfds; i++)
		fds[i].revents = (short)(((w[i].revents & CURL_WAIT_POLLIN) ? POLLIN : 0) |
		    ((w[i].revents & CURL_WAIT_POLLOUT) ? POLLOUT : 0));
	if (w != stack)
		free(w);
}

size_t
http_active(const struct http *h)
{
	return h->active;
}
