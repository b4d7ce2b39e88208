/* jobjson: the public job object (SPEC §2) rendered from the database, so
 * the API's answers (genq-fcgi) and webhook bodies (genqd) show the same
 * thing. Reads only; run it inside or outside a transaction. */
#ifndef GENQ_JOBJSON_H
#define GENQ_JOBJSON_H

#include <json-c/json.h>
#include <stdint.h>

struct db;

/* Returned (positive) when the job does not exist or is not the owner's. */
#define JOBJSON_NOT_FOUND 1

/* Load job id and render it. owner limits the answer to that user's job
 * (0: any job, for admin keys and genqd). base_url (no trailing slash
 * needed) prefixes the urls and output links. Returns DB_OK with *out set
 * (the caller owns it: json_object_put), JOBJSON_NOT_FOUND, or a negative
 * db status.
 *
 * While queued, queue_position is 1 + the queued jobs of the same queue
 * ahead of it in claim order (priority, then age), and eta_s estimates the
 * seconds until it is done: position * median run time of the queue's
 * recent successes / the run slots of its healthy backends (null without
 * run history). Both are null in every other status. */
int jobjson_load(struct db *db, const char *base_url, const char *id,
    uint64_t owner, struct json_object **out);

/* micro-credits as a JSON number printed exactly ("2.5", not 2.4999...). */
struct json_object *jobjson_credits(int64_t micro);

#endif
