/* gqtime: wall and monotonic clocks in microseconds, RFC 3339 and SQL
 * DATETIME(6) conversions (always UTC), and random numbers for jitter. */
#ifndef GENQ_GQTIME_H
#define GENQ_GQTIME_H

#include <stddef.h>
#include <stdint.h>

int64_t gq_now_us(void);        /* CLOCK_REALTIME */
int64_t gq_mono_us(void);       /* CLOCK_MONOTONIC */

/* "2026-11-23T10:00:00.123Z" (milliseconds, as the API shows times). */
#define GQ_RFC3339_LEN 32
void gq_time_rfc3339(char buf[GQ_RFC3339_LEN], int64_t us);

/* "2026-11-23 10:00:00.123456" (a DATETIME(6) literal for parameters). */
#define GQ_SQLTIME_LEN 32
void gq_time_sql(char buf[GQ_SQLTIME_LEN], int64_t us);

/* Parse "YYYY-MM-DD HH:MM:SS[.ffffff]" or RFC 3339 with Z or an offset.
 * Returns 0, or -1 if s is not such a time. */
int gq_time_parse_sql(const char *s, int64_t *us);
int gq_time_parse_rfc3339(const char *s, int64_t *us);

/* Uniform random 32 bits from the kernel (not for secrets' sake, for jitter). */
uint32_t gq_random_u32(void);

#endif
