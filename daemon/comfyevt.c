#include "autoconf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "comfyevt.h"
#include "jsonutil.h"

#define FRACTION_CAP 0.99

/* Copy a string member of obj into out (size n); "" when absent, not a
 * string, or too long to be one of genq's ids. */
static void
copy_str(struct json_object *obj, const char *key, char *out, size_t n)
{
	const char *s = gq_json_str(obj, key);

	out[0] = '\0';
	if (s != NULL && strlen(s) < n)
		memcpy(out, s, strlen(s) + 1);
}

static bool
number(struct json_object *obj, const char *key, double *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v))
		return false;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return false;
	*out = json_object_get_double(v);
	return isfinite(*out);
}

enum comfy_evt_kind
comfy_evt_parse(const char *text, size_t len, struct comfy_evt *e)
{
	struct json_object *root, *data, *node;
	const char *type;

	memset(e, 0, sizeof *e);
	e->kind = CEVT_BAD;
	root = gq_json_parse(text, len, COMFY_EVT_MAX_DEPTH, NULL);
	if (root == NULL || !json_object_is_type(root, json_type_object))
		goto out;
	type = gq_json_str(root, "type");
	if (type == NULL || !json_object_object_get_ex(root, "data", &data) ||
	    !json_object_is_type(data, json_type_object))
		goto out;
	snprintf(e->type, sizeof e->type, "%s", type);
	copy_str(data, "prompt_id", e->prompt_id, sizeof e->prompt_id);
	e->kind = CEVT_IGNORED;
	if (strcmp(type, "progress") == 0) {
		if (number(data, "value", &e->value) && number(data, "max", &e->max))
			e->kind = CEVT_PROGRESS;
	} else if (strcmp(type, "execution_start") == 0) {
		e->kind = CEVT_RUNNING;
	} else if (strcmp(type, "executing") == 0) {
		/* node null marks the end; a missing node is not the end. */
		if (json_object_object_get_ex(data, "node", &node))
			e->kind = node == NULL ? CEVT_ENDED : CEVT_RUNNING;
	} else if (strcmp(type, "execution_success") == 0 ||
	    strcmp(type, "execution_error") == 0 ||
	    strcmp(type, "execution_interrupted") == 0) {
		e->kind = CEVT_ENDING;
	}
out:
	json_object_put(root);
	return e->kind;
}

double
comfy_evt_fraction(const struct comfy_evt *e)
{
	double f;

	if (!(e->max > 0) || !(e->value >= 0) || !isfinite(e->value) || !isfinite(e->max))
		return -1;
	f = e->value / e->max;
	return f > FRACTION_CAP ? FRACTION_CAP : f;
}
