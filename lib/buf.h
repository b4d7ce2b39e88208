/* buf: a growable byte buffer with a hard size limit, for bodies read from
 * the network. Always NUL-terminated so text can be used in place. */
#ifndef GENQ_BUF_H
#define GENQ_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t limit;      /* appends beyond this fail; 0 = no limit */
};

void buf_init(struct buf *b, size_t limit);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);

/* 0, or -1 when out of memory or the limit would be passed. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hand the storage to the caller (who frees it); b is left empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
