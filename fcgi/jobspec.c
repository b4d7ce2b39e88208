/* jobspec: validation of submit bodies. Every field is checked and every
 * problem reported at once, so a client fixes its request in one round.
 * Unknown top-level fields are refused (a typo such as "priorty" must not
 * pass silently). null for an optional field means "not given".
 *
 * The 64 KiB string limit outside "input" (SPEC §2) holds because every
 * other field has a tighter bound: queue 32, webhook 2048, metadata 4 KiB,
 * after UUIDs. */
#include "autoconf.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "db.h"
#include "deps.h"
#include "jobspec.h"
#include "jsonutil.h"
#include "secure.h"

static const char *const known_fields[] = {
	"queue", "input", "priority", "metadata", "webhook", "webhook_events",
	"after", "max_attempts", "timeout_s", "ttl_s",
};

static const struct {
	const char *name;
	unsigned bit;
} event_names[] = {
	{ "started", SPEC_EV_STARTED },
	{ "progress", SPEC_EV_PROGRESS },
	{ "completed", SPEC_EV_COMPLETED },
};

void
spec_events_text(unsigned events, char out[64])
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof event_names / sizeof event_names[0]; i++) {
		if (!(events & event_names[i].bit))
			continue;
		n += (size_t)snprintf(out + n, 64 - n, "%s%s", n ? "," : "", event_names[i].name);
	}
}

int
spec_check_url(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = -1;

	if (u == NULL)
		return -1;
	/* No guessing of a scheme: the URL must be absolute. */
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if ((strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0) && *host)
		rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static bool
is_known(const char *key)
{
	for (size_t i = 0; i < sizeof known_fields / sizeof known_fields[0]; i++)
		if (strcmp(key, known_fields[i]) == 0)
			return true;
	return false;
}

/* The member key of root, or NULL when absent or null. */
static struct json_object *
member(struct json_object *root, const char *key, bool *present)
{
	struct json_object *v = NULL;

	*present = json_object_object_get_ex(root, key, &v) && v != NULL;
	return *present ? v : NULL;
}

/* An optional positive integer field (max_attempts, timeout_s, ttl_s). */
static void
check_limit(struct json_object *root, const char *key, int64_t *out,
    struct json_object *errors)
{
	bool present;
	struct json_object *v = member(root, key, &present);
	int64_t n;

	*out = 0;
	if (!present)
		return;
	if (!json_object_is_type(v, json_type_int)) {
		problem_error_add(errors, key, "must be an integer");
		return;
	}
	n = json_object_get_int64(v);
	if (n < 1 || n > SPEC_INT_MAX) {
		problem_error_add(errors, key, "must be a positive integer");
		return;
	}
	*out = n;
}

static void
check_queue(struct job_spec *s, struct json_object *errors)
{
	bool present;
	struct json_object *v = member(s->root, "queue", &present);
	size_t n;

	if (!present) {
		problem_error_add(errors, "queue", "is required");
		return;
	}
	if (!json_object_is_type(v, json_type_string)) {
		problem_error_add(errors, "queue", "must be a string");
		return;
	}
	n = (size_t)json_object_get_string_len(v);
	/* A \u0000 would cut the name the database later sees. */
	if (n == 0 || n > SPEC_QUEUE_MAX || strlen(json_object_get_string(v)) != n) {
		problem_error_add(errors, "queue", "must be 1 to 32 characters");
		return;
	}
	s->queue = json_object_get_string(v);
}

static void
check_input(struct job_spec *s, struct json_object *errors)
{
	bool present;
	struct json_object *v = member(s->root, "input", &present);

	if (!present)
		problem_error_add(errors, "input", "is required");
	else if (!json_object_is_type(v, json_type_object))
		problem_error_add(errors, "input", "must be an object");
	else
		s->input = v;
}

static void
check_priority(struct job_spec *s, struct json_object *errors)
{
	bool present;
	struct json_object *v = member(s->root, "priority", &present);
	int64_t n;

	if (!present)
		return;
	if (!json_object_is_type(v, json_type_int)) {
		problem_error_add(errors, "priority", "must be an integer from 0 to 3");
		return;
	}
	n = json_object_get_int64(v);
	if (n < 0 || n > 3) {
		problem_error_add(errors, "priority", "must be an integer from 0 to 3");
		return;
	}
	s->priority = (int)n;
}

static void
check_metadata(struct job_spec *s, struct json_object *errors)
{
	bool present;
	struct json_object *v = member(s->root, "metadata", &present);

	if (!present)
		return;
	if (!json_object_is_type(v, json_type_object)) {
		problem_error_add(errors, "metadata", "must be an object");
		return;
	}
	s->metadata = gq_json_text(v, &s->metadata_len);
	if (s->metadata == NULL || s->metadata_len > SPEC_METADATA_MAX) {
		s->metadata = NULL;
		problem_error_add(errors, "metadata", "must be at most 4096 bytes as JSON");
	}
}

/* The text of a JSON string without an embedded NUL ("\u0000"), else NULL:
 * C code past this point would see it cut short, as something else. */
static const char *
plain_string(struct json_object *v)
{
	const char *text;

	if (v == NULL || !json_object_is_type(v, json_type_string))
		return NULL;
	text = json_object_get_string(v);
	return strlen(text) == (size_t)json_object_get_string_len(v) ? text : NULL;
}

static void
check_webhook(struct job_spec *s, struct json_object *errors)
{
	bool present, have_events;
	struct json_object *v = member(s->root, "webhook", &present);
	struct json_object *ev = member(s->root, "webhook_events", &have_events);
	size_t n;

	if (present) {
		if (!json_object_is_type(v, json_type_string)) {
			problem_error_add(errors, "webhook", "must be a string");
		} else {
			n = (size_t)json_object_get_string_len(v);
			if (n == 0 || n > SPEC_WEBHOOK_MAX)
				problem_error_add(errors, "webhook", "must be 1 to 2048 characters");
			else if (strlen(json_object_get_string(v)) != n ||
			    spec_check_url(json_object_get_string(v)) < 0)
				problem_error_add(errors, "webhook", "must be an absolute http or https URL");
			else
				s->webhook = json_object_get_string(v);
		}
	}
	if (!have_events) {
		/* A webhook without a filter gets every event. */
		s->events = s->webhook ? SPEC_EV_ALL : 0;
		return;
	}
	if (!present) {
		problem_error_add(errors, "webhook_events", "needs a webhook");
		return;
	}
	if (!json_object_is_type(ev, json_type_array)) {
		problem_error_add(errors, "webhook_events",
		    "must be a list of \"started\", \"progress\", \"completed\"");
		return;
	}
	s->events = 0;
	for (size_t i = 0; i < json_object_array_length(ev); i++) {
		const char *name = plain_string(json_object_array_get_idx(ev, i));
		bool ok = false;

		for (size_t k = 0; name != NULL && k < sizeof event_names / sizeof event_names[0]; k++) {
			if (strcmp(name, event_names[k].name) == 0) {
				s->events |= event_names[k].bit;
				ok = true;
			}
		}
		if (!ok) {
			problem_error_add(errors, "webhook_events",
			    "must be a list of \"started\", \"progress\", \"completed\"");
			return;
		}
	}
}

/* after: up to 16 distinct job ids. Whether each is the caller's own job is
 * submit.c's question (it needs the database). */
static void
check_after(struct job_spec *s, struct json_object *errors)
{
	bool present;
	struct json_object *v = member(s->root, "after", &present);
	char field[32];
	size_t n;

	if (!present)
		return;
	if (!json_object_is_type(v, json_type_array)) {
		problem_error_add(errors, "after", "must be a list of job ids");
		return;
	}
	n = json_object_array_length(v);
	if (n > SPEC_AFTER_MAX) {
		problem_error_add(errors, "after", "must list at most 16 job ids");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		const char *id;

		snprintf(field, sizeof field, "after[%zu]", i);
		if ((id = plain_string(e)) == NULL || !gq_is_uuid(id)) {
			problem_error_add(errors, field, "must be a job id");
			return;
		}
		for (size_t k = 0; k < i; k++) {
			if (strcmp(s->after[k], id) == 0) {
				problem_error_add(errors, field, "repeats an earlier job id");
				return;
			}
		}
		s->after[i] = id;
	}
	s->nafter = n;
}

struct ref_check {
	struct json_object *errors;
	size_t nafter;
	size_t refs;
};

static int
check_ref(struct json_object *str, int rc, unsigned parent, unsigned output, void *arg)
{
	struct ref_check *chk = arg;
	char msg[160];

	(void)output;
	(void)str;
	if (rc < 0) {
		problem_error_add(chk->errors, "input",
		    "a string starting with \"" DEPS_REF_PREFIX "\" must be a parent output "
		    "reference \"" DEPS_REF_PREFIX "<i>/outputs/<n>\"");
		return 1;
	}
	if (parent >= chk->nafter) {
		snprintf(msg, sizeof msg, "refers to after[%u], but after lists %zu job%s",
		    parent, chk->nafter, chk->nafter == 1 ? "" : "s");
		problem_error_add(chk->errors, "input", msg);
		return 1;
	}
	if (++chk->refs > DEPS_REFS_MAX) {
		problem_error_add(chk->errors, "input",
		    "may hold at most 64 parent output references");
		return 1;
	}
	return 0;
}

/* Parent output references in input: well formed, within after. */
void
spec_check_refs(const struct job_spec *s, struct json_object *errors)
{
	struct ref_check rc = { errors, s->nafter, 0 };

	if (s->input != NULL)
		deps_refs_walk(s->input, check_ref, &rc);
}

enum spec_result
spec_parse(struct job_spec *s, const char *body, size_t len,
    struct json_object *errors, const char **why)
{
	size_t before = json_object_array_length(errors);
	const char *reason = NULL;

	memset(s, 0, sizeof *s);
	s->priority = -1;
	s->root = gq_json_parse(body, len, GQ_JSON_MAX_DEPTH, &reason);
	if (why != NULL)
		*why = reason;
	/* NULL without a reason is the valid document "null". */
	if (s->root == NULL && reason != NULL)
		return SPEC_BAD_JSON;
	if (s->root == NULL || !json_object_is_type(s->root, json_type_object)) {
		problem_error_add(errors, "", "the body must be a JSON object");
		return SPEC_INVALID;
	}
	json_object_object_foreach(s->root, key, val) {
		(void)val;
		if (!is_known(key)) {
			/* Echo at most 64 bytes of a name the client made up. */
			char field[65];
			size_t n = strlen(key);

			if (n > 64) {
				/* Cut before a UTF-8 continuation byte, not inside a character. */
				for (n = 64; n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80; n--)
					;
			}
			memcpy(field, key, n);
			field[n] = '\0';
			problem_error_add(errors, field, "unknown field");
		}
	}
	check_queue(s, errors);
	check_input(s, errors);
	check_priority(s, errors);
	check_metadata(s, errors);
	check_webhook(s, errors);
	check_after(s, errors);
	spec_check_refs(s, errors);
	check_limit(s->root, "max_attempts", &s->max_attempts, errors);
	check_limit(s->root, "timeout_s", &s->timeout_s, errors);
	check_limit(s->root, "ttl_s", &s->ttl_s, errors);
	return json_object_array_length(errors) > before ? SPEC_INVALID : SPEC_OK;
}

int
spec_after_lookup(struct db *db, uint64_t user_id, const struct job_spec *s,
    struct deps_parents *parents, struct json_object *errors)
{
	char field[32];
	int rc;

	if ((rc = deps_lookup(db, user_id, s->after, s->nafter, parents)) != DB_OK)
		return rc;
	for (size_t i = 0; i < s->nafter; i++) {
		if (!(parents->unknown & (1u << i)))
			continue;
		/* Another user's job reads exactly like one that does not exist. */
		snprintf(field, sizeof field, "after[%zu]", i);
		problem_error_add(errors, field, "no such job");
	}
	return DB_OK;
}

void
spec_free(struct job_spec *s)
{
	json_object_put(s->root);
	s->root = NULL;
}
