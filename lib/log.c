#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include "log.h"

enum log_level log_threshold = GQ_LOG_INFO;
static const char *log_program = "genq";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void
log_set_program(const char *prog)
{
	log_program = prog;
}

/* Copy src to dst escaping bytes that would break the one-line format. */
static size_t
escape_line(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)src; *p && n + 5 < cap; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = hex[*p >> 4];
			dst[n++] = hex[*p & 15];
		} else {
			dst[n++] = (char)*p;
		}
	}
	dst[n] = '\0';
	return n;
}

void
log_emit(enum log_level level, const char *event, const char *fmt, ...)
{
	char body[2048], clean[4096], ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);

	va_start(ap, fmt);
	vsnprintf(body, sizeof body, fmt, ap);
	va_end(ap);
	escape_line(clean, sizeof clean, body);

	/* One fprintf per line: stderr is unbuffered, so lines from several
	 * processes sharing one log file stay whole. */
	fprintf(stderr, "ts=%s.%03ldZ level=%s prog=%s pid=%d event=%s%s%s\n",
	    ts, now.tv_nsec / 1000000, level_names[level], log_program,
	    (int)getpid(), event, clean[0] ? " " : "", clean);
}
