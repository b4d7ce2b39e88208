#include "autoconf.h"

#include <string.h>

#include "jobstatus.h"

const char *const job_statuses[JOB_NSTATUS] = {
	"held", "waiting", "queued", "running", "succeeded", "failed", "canceled", "expired",
};

int
job_status_index(const char *s)
{
	for (int i = 0; s != NULL && i < JOB_NSTATUS; i++)
		if (strcmp(s, job_statuses[i]) == 0)
			return i;
	return -1;
}
