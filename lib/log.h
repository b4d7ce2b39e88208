/* log: one line per event on stderr, "ts=... level=... event=... k=v ...".
 * The level is checked before any formatting happens; control characters in
 * the formatted line (from untrusted request data, say) are escaped so one
 * event is always exactly one line. */
#ifndef GENQ_LOG_H
#define GENQ_LOG_H

/* GQ_LOG_NONE writes nothing: a command-line tool reports through its own error line. */
enum log_level { GQ_LOG_NONE = -1, GQ_LOG_ERROR, GQ_LOG_WARN, GQ_LOG_INFO, GQ_LOG_DEBUG };

/* The most verbose level that is written; set once at startup. */
extern enum log_level log_threshold;

/* Parse "error|warn|info|debug"; returns 0, or -1 for an unknown name. */
int log_level_parse(const char *name, enum log_level *out);

/* Name written as prog= on every line ("genqd", "genq-fcgi", ...). */
void log_set_program(const char *prog);

/* Write one line: event is a short snake_case name, fmt adds key=value pairs. */
void log_emit(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) do { if (log_threshold >= GQ_LOG_ERROR) log_emit(GQ_LOG_ERROR, __VA_ARGS__); } while (0)
#define log_warn(...)  do { if (log_threshold >= GQ_LOG_WARN)  log_emit(GQ_LOG_WARN,  __VA_ARGS__); } while (0)
#define log_info(...)  do { if (log_threshold >= GQ_LOG_INFO)  log_emit(GQ_LOG_INFO,  __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_threshold >= GQ_LOG_DEBUG) log_emit(GQ_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
