/* jobstatus: the states of a job (SPEC §2), in lifecycle order, as the
 * jobs.status ENUM spells them. Listings, the dashboard and /metrics
 * count and check by this one list. */
#ifndef GENQ_JOBSTATUS_H
#define GENQ_JOBSTATUS_H

#define JOB_NSTATUS 8

extern const char *const job_statuses[JOB_NSTATUS];

/* The index of status s in job_statuses, or -1 (also for NULL). */
int job_status_index(const char *s);

#endif
