/* req: the request source. Under spawn-fcgi the variables and body come
 * from an FCGX_Request; run as plain CGI they come from the environment and
 * stdin. Handlers use req_param / req_read_body / the write op only. */
#include "autoconf.h"

#include <errno.h>
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "app.h"

/* ---- FastCGI ---- */

static const char *
fcgx_param(struct req *r, const char *name)
{
	FCGX_Request *fr = r->handle;

	return FCGX_GetParam(name, fr->envp);
}

static long
fcgx_read(struct req *r, char *buf, size_t len)
{
	FCGX_Request *fr = r->handle;
	int n;

	if (len > 65536)
		len = 65536;
	n = FCGX_GetStr(buf, (int)len, fr->in);
	if (n > 0)
		return n;
	/* 0 with an error set on the stream is a broken connection. */
	return FCGX_GetError(fr->in) != 0 ? -1 : 0;
}

static int
fcgx_write(struct req *r, const char *data, size_t len)
{
	FCGX_Request *fr = r->handle;

	while (len > 0) {
		int chunk = len > 65536 ? 65536 : (int)len;
		if (FCGX_PutStr(data, chunk, fr->out) != chunk)
			return -1;
		data += chunk;
		len -= (size_t)chunk;
	}
	return 0;
}

static const struct req_ops fcgx_ops = { fcgx_param, fcgx_read, fcgx_write };

void
req_init_fcgx(struct req *r, void *fcgx_request)
{
	r->ops = &fcgx_ops;
	r->handle = fcgx_request;
	r->body_left = -1;
}

/* ---- plain CGI ---- */

static const char *
cgi_param(struct req *r, const char *name)
{
	return getenv(name);
}

/* RFC 3875: the server need not close stdin after CONTENT_LENGTH bytes, so
 * read exactly that many (all of stdin when it is absent). */
static long
cgi_read(struct req *r, char *buf, size_t len)
{
	ssize_t n;

	if (r->body_left == 0)
		return 0;
	if (r->body_left > 0 && len > (size_t)r->body_left)
		len = (size_t)r->body_left;
	do
		n = read(STDIN_FILENO, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (r->body_left > 0)
		r->body_left -= n;
	return n;
}

static int
cgi_write(struct req *r, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static const struct req_ops cgi_ops = { cgi_param, cgi_read, cgi_write };

void
req_init_cgi(struct req *r)
{
	const char *cl = getenv("CONTENT_LENGTH");
	char *end;
	long n;

	r->ops = &cgi_ops;
	r->handle = NULL;
	r->body_left = -1;
	if (cl != NULL && *cl) {
		errno = 0;
		n = strtol(cl, &end, 10);
		if (errno == 0 && *end == '\0' && n >= 0)
			r->body_left = n;
	}
}

/* ---- common ---- */

const char *
req_param(struct req *r, const char *name)
{
	return r->ops->param(r, name);
}

int
req_read_body(struct req *r, struct buf *out, size_t limit)
{
	char chunk[16384];
	long n;

	for (;;) {
		n = r->ops->read(r, chunk, sizeof chunk);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (out->len + (size_t)n > limit)
			return 1;
		if (buf_append(out, chunk, (size_t)n) < 0)
			return -1;
	}
}
