/* policy: genqd's small decisions as pure functions (retry backoff, the
 * price of a run), kept apart so they can be tested alone. */
#ifndef GENQD_POLICY_H
#define GENQD_POLICY_H

#include <stdint.h>

#define POLICY_BACKOFF_BASE_MS 2000      /* first retry waits about 2 s */
#define POLICY_BACKOFF_CAP_MS 300000     /* never more than 5 minutes */

/* Milliseconds to wait before the retry that follows failed attempt number
 * attempt (1-based): 2 s, 4 s, 8 s ... times a jitter factor in [0.5, 1.5)
 * taken from rnd, capped at POLICY_BACKOFF_CAP_MS. */
int64_t policy_backoff_ms(int attempt, uint32_t rnd);

/* What a successful run costs, in micro-credits: price_per_job plus
 * price_per_second for every started second of run_ms, never more than
 * held (the amount put on hold at submit) and never negative. */
int64_t policy_charge(int64_t held, int64_t price_per_job,
    int64_t price_per_second, int64_t run_ms);

/* Make s valid UTF-8 in place: a sequence cut short at the end is dropped,
 * any other invalid byte becomes '?'. Text bound for the database must be
 * valid UTF-8 or MariaDB refuses the whole statement. */
void policy_utf8_fix(char *s);

#endif
