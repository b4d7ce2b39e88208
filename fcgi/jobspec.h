/* jobspec: a submit body (POST /v1/jobs) parsed and checked on its own,
 * before any database work. Checks that need the queue's row (limits that
 * may only tighten the queue's) are submit.c's; spec_after_lookup checks
 * `after` against the database inside the admission transaction. */
#ifndef GENQ_FCGI_JOBSPEC_H
#define GENQ_FCGI_JOBSPEC_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#define SPEC_QUEUE_MAX 32              // queues.name
#define SPEC_METADATA_MAX 4096         // serialized metadata object
#define SPEC_WEBHOOK_MAX 2048          // jobs.webhook_url
#define SPEC_AFTER_MAX 16              // ids in after (DEPS_MAX)
#define SPEC_INT_MAX 2147483647        // INT columns

// Webhook events, as a bit set.
enum spec_event {
	SPEC_EV_STARTED = 1,
	SPEC_EV_PROGRESS = 2,
	SPEC_EV_COMPLETED = 4,
	SPEC_EV_ALL = 7,
};

// The checked request. Strings and objects point into root.
struct job_spec {
	struct json_object *root;    // owned: the whole parsed body
	const char *queue;
	struct json_object *input;   // an object
	int priority;                // -1: not given
	const char *metadata;        // serialized object, or NULL
	size_t metadata_len;
	const char *webhook;         // or NULL
	unsigned events;             // enum spec_event bits; 0 without webhook
	int64_t max_attempts;        // 0: the queue's
	int64_t timeout_s;           // 0: the queue's
	int64_t ttl_s;               // 0: the queue's
	size_t nafter;               // ids in after (valid UUIDs, no repeats)
	const char *after[SPEC_AFTER_MAX];
};

enum spec_result {
	SPEC_OK = 0,
	SPEC_BAD_JSON,               // not JSON (why says where it failed)
	SPEC_INVALID,                // JSON, but errors lists what is wrong
};

// Parse and validate body. On SPEC_INVALID every problem found is appended
// to errors (a JSON array) as {field, message}. s is always initialised;
// release it with spec_free whatever the result.
enum spec_result spec_parse(struct job_spec *s, const char *body, size_t len,
    struct json_object *errors, const char **why);

void spec_free(struct job_spec *s);

struct db;
struct deps_parents;

// Check the parent output references in s->input ("genq:after/<i>/outputs/<n>"):
// well formed and i within s->after; each problem is added to errors.
void spec_check_refs(const struct job_spec *s, struct json_object *errors);

// The one check of a spec that needs the database, run inside the
// admission transaction: every id in s->after must be one of user_id's
// jobs. Found parents go to parents (lib/deps.h); each id that is not
// adds {after[i], "no such job"} to errors. DB_OK or a negative db status.
int spec_after_lookup(struct db *db, uint64_t user_id, const struct job_spec *s,
    struct deps_parents *parents, struct json_object *errors);

// events as the comma list stored in jobs.webhook_events.
void spec_events_text(unsigned events, char out[64]);

// 0 when url is an absolute http or https URL with a host (libcurl's parser).
int spec_check_url(const char *url);

#endif
