/* aging: queued jobs rise one priority level (toward 0) per
 * `priority_aging_s` waited, so nothing starves behind higher tiers (SPEC
 * §4). genqd lowers the stored priority itself, so the claim query keeps
 * reading one index in order. */
#ifndef GENQD_AGING_H
#define GENQD_AGING_H

#include <stdint.h>

struct genqd;

/* Raise the jobs that are due, in every queue with aging on. */
void aging_tick(struct genqd *g);

#endif
