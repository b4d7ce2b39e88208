/* log: one line per event on stderr, "ts=... level=... event=... k=v ...".
 * The level is checked before any formatting happens.
 *
 * Values from outside (request data, backend and database messages) are
 * escaped where they are written, with log_q() inside "..." or log_v() for
 * a bare value, so a value can never close its quotes, forge a key=value
 * pair or split the line. As a last net, control characters and bytes that
 * are not UTF-8 anywhere in a formatted line are written as \xHH, so one
 * event is always exactly one line of valid UTF-8. */
#ifndef GENQ_LOG_H
#define GENQ_LOG_H

#include <stddef.h>

/* GQ_LOG_NONE writes nothing: a command-line tool reports through its own error line. */
enum log_level { GQ_LOG_NONE = -1, GQ_LOG_ERROR, GQ_LOG_WARN, GQ_LOG_INFO, GQ_LOG_DEBUG };

/* The most verbose level that is written; set at startup (genqd also on
 * SIGHUP, while its database threads log: log_set_threshold). */
extern enum log_level log_threshold;

static inline enum log_level
log_threshold_now(void)
{
	return __atomic_load_n(&log_threshold, __ATOMIC_RELAXED);
}

static inline void
log_set_threshold(enum log_level level)
{
	__atomic_store_n(&log_threshold, level, __ATOMIC_RELAXED);
}

/* Parse "error|warn|info|debug"; returns 0, or -1 for an unknown name. */
int log_level_parse(const char *name, enum log_level *out);

/* Name written as prog= on every line ("genqd", "genq-fcgi", ...). */
void log_set_program(const char *prog);

/* Write one line: event is a short snake_case name, fmt adds key=value pairs. */
void log_emit(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) do { if (log_threshold_now() >= GQ_LOG_ERROR) log_emit(GQ_LOG_ERROR, __VA_ARGS__); } while (0)
#define log_warn(...)  do { if (log_threshold_now() >= GQ_LOG_WARN)  log_emit(GQ_LOG_WARN,  __VA_ARGS__); } while (0)
#define log_info(...)  do { if (log_threshold_now() >= GQ_LOG_INFO)  log_emit(GQ_LOG_INFO,  __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_threshold_now() >= GQ_LOG_DEBUG) log_emit(GQ_LOG_DEBUG, __VA_ARGS__); } while (0)

/* ---- escaping untrusted values ---- */

/* Longest escaped value, NUL included; longer ones are cut at a character
 * boundary and end in "...". */
#define LOG_VALUE_MAX 512

enum log_quoting {
	LOG_QUOTED,   /* for inside "...": \" \\ \n \r \t, other controls and
	               * bytes that are not UTF-8 as \xHH */
	LOG_BARE,     /* a bare value: src itself when it is non-empty printable
	               * UTF-8 without space, '"', '=' or '\\'; else quoted and
	               * escaped as LOG_QUOTED, the quotes included */
};

/* Write src (NULL is written as "-") escaped into dst, cap bytes (at least
 * 16), and return dst. */
const char *log_escape(char *dst, size_t cap, const char *src, enum log_quoting how);

/* The usual spellings, for arguments of log_*: "why=\"%s\"", log_q(why) and
 * "path=%s", log_v(path). Each is a LOG_VALUE_MAX buffer (a compound
 * literal) that lives until the end of the enclosing block, so the string
 * must not be kept beyond the call it is passed to. */
#define log_q(s) log_escape((char[LOG_VALUE_MAX]){ 0 }, LOG_VALUE_MAX, (s), LOG_QUOTED)
#define log_v(s) log_escape((char[LOG_VALUE_MAX]){ 0 }, LOG_VALUE_MAX, (s), LOG_BARE)

#endif
