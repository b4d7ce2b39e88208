#include "autoconf.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "gqtime.h"

static int64_t
clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
gq_now_us(void)
{
	return clock_us(CLOCK_REALTIME);
}

int64_t
gq_mono_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

static void
split(int64_t us, struct tm *tm, long *frac_us)
{
	time_t secs = (time_t)(us / 1000000);
	long frac = (long)(us % 1000000);

	if (frac < 0) {
		frac += 1000000;
		secs -= 1;
	}
	gmtime_r(&secs, tm);
	*frac_us = frac;
}

void
gq_time_rfc3339(char buf[GQ_RFC3339_LEN], int64_t us)
{
	struct tm tm;
	long frac;

	char head[24];

	split(us, &tm, &frac);
	strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, GQ_RFC3339_LEN, "%.19s.%03dZ", head, (int)(frac / 1000 % 1000));
}

void
gq_time_sql(char buf[GQ_SQLTIME_LEN], int64_t us)
{
	struct tm tm;
	long frac;

	char head[24];

	split(us, &tm, &frac);
	strftime(head, sizeof head, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf, GQ_SQLTIME_LEN, "%.19s.%06d", head, (int)(frac % 1000000));
}

/* Parse the common "YYYY-MM-DD?HH:MM:SS[.f+]" head; returns chars used or -1. */
static int
parse_head(const char *s, char sep_ok1, char sep_ok2, struct tm *tm, long *frac_us)
{
	int y, mo, d, h, mi, se, n = 0;
	const char *p;
	long frac = 0, scale = 100000;

	if (strlen(s) < 19 || (s[10] != sep_ok1 && s[10] != sep_ok2))
		return -1;
	if (sscanf(s, "%4d-%2d-%2d", &y, &mo, &d) != 3 ||
	    sscanf(s + 11, "%2d:%2d:%2d%n", &h, &mi, &se, &n) != 3 || n != 8)
		return -1;
	if (s[4] != '-' || s[7] != '-' || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h > 23 || mi > 59 || se > 60 || y < 1970)
		return -1;
	p = s + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	}
	memset(tm, 0, sizeof *tm);
	tm->tm_year = y - 1900;
	tm->tm_mon = mo - 1;
	tm->tm_mday = d;
	tm->tm_hour = h;
	tm->tm_min = mi;
	tm->tm_sec = se;
	*frac_us = frac;
	return (int)(p - s);
}

int
gq_time_parse_sql(const char *s, int64_t *us)
{
	struct tm tm;
	long frac;
	int n = parse_head(s, ' ', 'T', &tm, &frac);

	if (n < 0 || s[n] != '\0')
		return -1;
	*us = (int64_t)timegm(&tm) * 1000000 + frac;
	return 0;
}

int
gq_time_parse_rfc3339(const char *s, int64_t *us)
{
	struct tm tm;
	long frac;
	int n = parse_head(s, 'T', 't', &tm, &frac);
	int64_t offset = 0;

	if (n < 0)
		return -1;
	s += n;
	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
		offset = 0;
	} else if ((s[0] == '+' || s[0] == '-') && strlen(s) == 6 && s[3] == ':') {
		int oh, om;
		if (sscanf(s + 1, "%2d:%2d", &oh, &om) != 2 || oh > 23 || om > 59)
			return -1;
		offset = (int64_t)(oh * 3600 + om * 60) * (s[0] == '+' ? 1 : -1);
	} else {
		return -1;
	}
	*us = ((int64_t)timegm(&tm) - offset) * 1000000 + frac;
	return 0;
}

uint32_t
gq_random_u32(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
		v = (uint32_t)gq_mono_us();
	return v;
}
