#include "autoconf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
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

/* Length of the well-formed UTF-8 sequence at p (2 to 4), or 0. p[0] is
 * at least 0x80. Reads stop at the first byte that does not fit, so never
 * past the terminating NUL. */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		/* No overlong forms, no UTF-16 surrogates. */
		if (p[0] == 0xe0)
			lo = 0xa0;
		if (p[0] == 0xed)
			hi = 0x9f;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if (p[0] == 0xf0)
			lo = 0x90;
		if (p[0] == 0xf4)
			hi = 0x8f;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
		    (p[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

/* Characters that are valid but still end or hide a line in some viewer:
 * C1 controls (U+0080..U+009F) and the Unicode line and paragraph
 * separators (U+2028, U+2029). */
static bool
utf8_is_break(const unsigned char *p, size_t n)
{
	return (n == 2 && p[0] == 0xc2 && p[1] <= 0x9f) ||
	    (n == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9));
}

/* The spelling of the character at *p in tok (at least 17 bytes); returns
 * its length and advances *p past it. With quoting, '"' and '\\' are
 * escaped too (inside quotes they would end the value or start an escape). */
static size_t
escape_char(const unsigned char **p, char *tok, bool quoting)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = *p;
	size_t len = 1, n = 0;

	if (*s >= 0x80) {
		len = utf8_len(s);
		if (len > 0 && !utf8_is_break(s, len)) {
			memcpy(tok, s, len);
			*p += len;
			return len;
		}
		if (len == 0)
			len = 1;
	} else if (quoting && (*s == '"' || *s == '\\')) {
		tok[0] = '\\';
		tok[1] = (char)*s;
		*p += 1;
		return 2;
	} else if (quoting && (*s == '\n' || *s == '\r' || *s == '\t')) {
		tok[0] = '\\';
		tok[1] = *s == '\n' ? 'n' : *s == '\r' ? 'r' : 't';
		*p += 1;
		return 2;
	} else if (*s >= 0x20 && *s != 0x7f) {
		tok[0] = (char)*s;
		*p += 1;
		return 1;
	}
	/* A control byte, a byte that is not UTF-8, or each byte of a break. */
	for (size_t i = 0; i < len; i++) {
		tok[n++] = '\\';
		tok[n++] = 'x';
		tok[n++] = hex[s[i] >> 4];
		tok[n++] = hex[s[i] & 15];
	}
	*p += len;
	return n;
}

/* True when src can be written bare: printable UTF-8, no space, '"', '='
 * or '\\' (a reader splits pairs on those), not empty. */
static bool
bare_ok(const unsigned char *s)
{
	char tok[17];

	if (*s == '\0')
		return false;
	while (*s) {
		const unsigned char *at = s;
		size_t n;

		if (*s == ' ' || *s == '"' || *s == '=' || *s == '\\')
			return false;
		n = escape_char(&s, tok, false);
		/* Escaping changed it: not printable as is. */
		if (n != (size_t)(s - at) || memcmp(tok, at, n) != 0)
			return false;
	}
	return true;
}

const char *
log_escape(char *dst, size_t cap, const char *src, enum log_quoting how)
{
	const unsigned char *s = (const unsigned char *)(src != NULL ? src : "-");
	bool quote = how == LOG_QUOTED ? false : !bare_ok(s);
	bool quoting = how == LOG_QUOTED || quote;
	/* Kept free for "...", a closing quote and the NUL. */
	size_t limit = cap - 5, n = 0;
	char tok[17];

	if (quote)
		dst[n++] = '"';
	while (*s) {
		size_t len = escape_char(&s, tok, quoting);

		if (n + len > limit) {
			/* Cut here, between two whole characters. */
			memcpy(dst + n, "...", 3);
			n += 3;
			break;
		}
		memcpy(dst + n, tok, len);
		n += len;
	}
	if (quote)
		dst[n++] = '"';
	dst[n] = '\0';
	return dst;
}

/* Copy a formatted line into dst (cap bytes) with control characters and
 * bytes that are not UTF-8 as \xHH. Quotes stay: the format strings put
 * them there. */
static void
escape_line(char *dst, size_t cap, const char *src)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t n = 0;
	char tok[17];

	while (*s) {
		size_t len = escape_char(&s, tok, false);

		if (n + len >= cap)
			break;
		memcpy(dst + n, tok, len);
		n += len;
	}
	dst[n] = '\0';
}

/* The process id every line carries, read once: getpid() is a system call
 * on every line otherwise (glibc does not cache it), and genqd writes
 * several lines per job. A child made by fork() reads its own. */
static pid_t log_pid;
static pthread_once_t log_pid_once = PTHREAD_ONCE_INIT;

static void
log_pid_forked(void)
{
	log_pid = getpid();
}

static void
log_pid_init(void)
{
	log_pid = getpid();
	pthread_atfork(NULL, NULL, log_pid_forked);
}

void
log_emit(enum log_level level, const char *event, const char *fmt, ...)
{
	char body[4096], clean[8192], ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;

	pthread_once(&log_pid_once, log_pid_init);
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
	    (int)log_pid, event, clean[0] ? " " : "", clean);
}
