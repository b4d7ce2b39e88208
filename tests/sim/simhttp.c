/* simhttp: see simhttp.h. */
#include "autoconf.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "simhttp.h"

#define BODY_FIRST_CAP 4096

bool
sim_body_add(struct sim_body *b, const char *piece, size_t n, size_t max)
{
	if (b->too_big || b->len + n > max) {
		b->too_big = true;
		return true;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : BODY_FIRST_CAP;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->data, cap)) == NULL)
			return false;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, piece, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

void
sim_body_free(struct sim_body *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

void
sim_on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
    enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *ci;
	int one = 1;

	(void)cls;
	(void)socket_ctx;
	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL)
		setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
