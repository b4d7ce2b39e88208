/* fuzz_submit: a POST /v1/jobs body, as submit_job handles it before the
 * database: strict JSON parsing (lib/jsonutil.c), the whole validation
 * (fcgi/jobspec.c) and the problem+json answer (fcgi/resp.c), all linked
 * from the objects genq-fcgi itself is built from.
 *
 * Beyond "no crash, no leak, no sanitizer report" it checks what the
 * handler promises: an accepted spec is within every documented bound, a
 * refusal lists at least one field, and every answer is itself valid JSON
 * in valid UTF-8 (field names echoed from the body included). */
#include "autoconf.h"

#include <string.h>

#include "app.h"
#include "fuzz.h"
#include "jobspec.h"
#include "jsonutil.h"

/* An answer body must parse back under the same strict rules. */
static void
check_answer(struct resp *rs)
{
	struct json_object *back;

	FUZZ_CHECK(!rs->failed);
	back = gq_json_parse(rs->body.data, rs->body.len, GQ_JSON_MAX_DEPTH, NULL);
	FUZZ_CHECK(back != NULL && json_object_is_type(back, json_type_object));
	json_object_put(back);
}

static void
check_accepted(const struct job_spec *s)
{
	struct json_object *q;
	char events[64];
	size_t n;

	FUZZ_CHECK(s->queue != NULL && json_object_object_get_ex(s->root, "queue", &q));
	n = strlen(s->queue);
	FUZZ_CHECK(n >= 1 && n <= SPEC_QUEUE_MAX);
	/* The name used is the whole name sent (no \u0000 cuts it short). */
	FUZZ_CHECK(n == (size_t)json_object_get_string_len(q));
	FUZZ_CHECK(s->input != NULL && json_object_is_type(s->input, json_type_object));
	FUZZ_CHECK(s->priority >= -1 && s->priority <= 3);
	FUZZ_CHECK(s->metadata == NULL || s->metadata_len <= SPEC_METADATA_MAX);
	FUZZ_CHECK(s->webhook == NULL || spec_check_url(s->webhook) == 0);
	FUZZ_CHECK((s->events & ~(unsigned)SPEC_EV_ALL) == 0);
	FUZZ_CHECK(s->webhook != NULL || s->events == 0);
	FUZZ_CHECK(s->max_attempts >= 0 && s->max_attempts <= SPEC_INT_MAX);
	FUZZ_CHECK(s->timeout_s >= 0 && s->timeout_s <= SPEC_INT_MAX);
	FUZZ_CHECK(s->ttl_s >= 0 && s->ttl_s <= SPEC_INT_MAX);
	FUZZ_CHECK(s->nafter <= SPEC_AFTER_MAX);
	spec_events_text(s->events, events);
	FUZZ_CHECK(strlen(events) < sizeof events);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *errors = json_object_new_array();
	struct job_spec spec;
	struct resp rs;
	const char *why = NULL;

	if (errors == NULL)
		return 0;
	resp_init(&rs);
	switch (spec_parse(&spec, (const char *)data, size, errors, &why)) {
	case SPEC_OK:
		FUZZ_CHECK(json_object_array_length(errors) == 0);
		check_accepted(&spec);
		break;
	case SPEC_BAD_JSON:
		FUZZ_CHECK(why != NULL);
		resp_problem(&rs, P_INVALID_JSON, why, NULL);
		check_answer(&rs);
		break;
	case SPEC_INVALID:
		FUZZ_CHECK(json_object_array_length(errors) > 0);
		resp_problem(&rs, P_INVALID_REQUEST, "The request has invalid fields.", errors);
		errors = NULL;          /* the answer took it */
		check_answer(&rs);
		break;
	}
	spec_free(&spec);
	resp_free(&rs);
	json_object_put(errors);
	return 0;
}
