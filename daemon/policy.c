#include "autoconf.h"

#include <stdbool.h>
#include <string.h>

#include "policy.h"

int64_t
policy_backoff_ms(int attempt, uint32_t rnd)
{
	int64_t base = POLICY_BACKOFF_BASE_MS;
	int64_t ms;

	for (int i = 1; i < attempt && base < POLICY_BACKOFF_CAP_MS; i++)
		base *= 2;
	if (base > POLICY_BACKOFF_CAP_MS)
		base = POLICY_BACKOFF_CAP_MS;
	/* Jitter factor 0.5 + rnd / 2^32. */
	ms = base / 2 + (int64_t)(((uint64_t)base * rnd) >> 32);
	if (ms > POLICY_BACKOFF_CAP_MS)
		ms = POLICY_BACKOFF_CAP_MS;
	return ms;
}

int64_t
policy_charge(int64_t held, int64_t price_per_job, int64_t price_per_second, int64_t run_ms)
{
	int64_t seconds, charge;

	if (held <= 0)
		return 0;
	if (price_per_job < 0)
		price_per_job = 0;
	if (price_per_second < 0)
		price_per_second = 0;
	if (run_ms < 0)
		run_ms = 0;
	seconds = run_ms / 1000 + (run_ms % 1000 != 0);
	charge = price_per_job;
	/* Once past the hold, more seconds cannot change the answer. */
	if (price_per_second > 0 && seconds > 0) {
		if (seconds > (held - charge) / price_per_second + 1)
			return held;
		charge += price_per_second * seconds;
	}
	return charge < held ? charge : held;
}

/* Length of the UTF-8 sequence at s (1..4), or 0 if it is not a valid one. */
static int
utf8_seq(const unsigned char *s)
{
	int n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void
policy_utf8_fix(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		int n = utf8_seq(p);

		if (n > 0) {
			p += n;
			continue;
		}
		/* A lead byte whose sequence the end of the string cut short. */
		if (*p >= 0xc2 && *p <= 0xf4) {
			size_t want = *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : 4;
			size_t rest = strlen((char *)p);
			bool cut = rest < want;

			for (size_t i = 1; cut && i < rest; i++)
				if ((p[i] & 0xc0) != 0x80)
					cut = false;
			if (cut) {
				*p = '\0';
				return;
			}
		}
		*p++ = '?';
	}
}
