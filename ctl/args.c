#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "ledger.h"
#include "secure.h"

int
ctl_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* One line, whatever the message carries (server errors, arguments). */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	fprintf(stderr, "genqctl: %s\n", msg);
	return CTL_FAIL;
}

int
ctl_fail_db(struct db *db, int status)
{
	const char *err = db_error(db);

	if (status == DB_GONE)
		return ctl_fail("database: connection lost: %s", err);
	/* ER_NO_SUCH_TABLE: most likely a database nobody has migrated yet. */
	if (strncmp(err, "1146:", 5) == 0)
		return ctl_fail("database: %s (has 'genqctl migrate' been run?)", err);
	return ctl_fail("database: %s", err);
}

int
ctl_getopt(const struct ctl_cmd *cmd, int argc, char **argv, const struct option *opts)
{
	/* ':' first: a missing value answers ':' instead of printing. */
	int c = getopt_long(argc, argv, ":h", opts, NULL);

	switch (c) {
	case 'h':
		ctl_help(cmd);
		return CTL_GETOPT_HELP;
	case ':':
		ctl_fail("%s: option '%.64s' needs a value", cmd->usage, argv[optind - 1]);
		return CTL_GETOPT_ERROR;
	case '?':
		ctl_fail("unknown option '%.64s' (usage: genqctl %s)",
		    argv[optind - 1], cmd->usage);
		return CTL_GETOPT_ERROR;
	default:
		return c;
	}
}

int
ctl_getopt_status(int c)
{
	return c == CTL_GETOPT_HELP ? CTL_DONE : CTL_FAIL;
}

int
ctl_operands(const struct ctl_cmd *cmd, int argc, int min, int max)
{
	int n = argc - optind;

	if (n < min || n > max)
		return ctl_fail("usage: genqctl %s", cmd->usage);
	return CTL_OK;
}

int
ctl_args(const struct ctl_cmd *cmd, int argc, char **argv, int min, int max)
{
	static const struct option opts[] = { CTL_OPT_HELP, CTL_OPT_END };
	int c;

	if ((c = ctl_getopt(cmd, argc, argv, opts)) != -1)
		return ctl_getopt_status(c);
	return ctl_operands(cmd, argc, min, max);
}

bool
ctl_name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		unsigned char ch = (unsigned char)s[n];
		bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
		if (n >= max || (!plain && strchr(extra, ch) == NULL))
			return false;
	}
	return n > 0;
}

static int
check_name(const char *what, const char *s, size_t max, const char *extra)
{
	if (ctl_name_ok(s, max, extra))
		return CTL_OK;
	return ctl_fail("invalid %s name '%.80s': use 1 to %zu of A-Z a-z 0-9 _ . -%s",
	    what, s, max, *extra ? " @" : "");
}

int
ctl_check_user(const char *s)
{
	return check_name("user", s, CTL_USER_MAX, "@");
}

int
ctl_check_tier(const char *s)
{
	return check_name("tier", s, CTL_TIER_MAX, "");
}

int
ctl_check_queue(const char *s)
{
	return check_name("queue", s, CTL_QUEUE_MAX, "");
}

int
ctl_check_backend(const char *s)
{
	return check_name("backend", s, CTL_BACKEND_MAX, "");
}

int
ctl_parse_int(const char *what, const char *s, long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (*s == '\0' || *s == ' ' || *s == '+' || errno != 0 || *end != '\0' ||
	    n < lo || n > hi)
		return ctl_fail("%s: '%.64s' is not an integer in %ld..%ld", what, s, lo, hi);
	*out = n;
	return CTL_OK;
}

int
ctl_parse_credits(const char *what, const char *s, int64_t *micro)
{
	/* Twelve integer digits keep every sum of amounts far inside BIGINT. */
	const char *dot = strchr(s, '.');
	size_t whole = dot ? (size_t)(dot - s) : strlen(s);

	if (whole > 12 || ledger_parse_credits(s, micro) < 0)
		return ctl_fail("%s: '%.64s' is not an amount of credits "
		    "(a decimal number like 10 or 2.5, at most 6 decimals)", what, s);
	return CTL_OK;
}

int
ctl_check_job_id(const char *s)
{
	if (strlen(s) != GQ_UUID_LEN - 1 || !gq_is_uuid(s))
		return ctl_fail("'%.64s' is not a job id (a UUID)", s);
	return CTL_OK;
}
