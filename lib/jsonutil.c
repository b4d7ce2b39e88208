#include "autoconf.h"

#include <string.h>

#include "jsonutil.h"

/* json-c's strict mode still takes 'single-quoted' strings, which RFC 8259
 * does not: find a quote outside every double-quoted string. */
static bool
has_single_quote_outside_strings(const char *text, size_t len)
{
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '\'') {
			return true;
		}
	}
	return false;
}

struct json_object *
gq_json_parse(const char *text, size_t len, int max_depth, const char **why)
{
	struct json_tokener *tok;
	struct json_object *obj = NULL;
	enum json_tokener_error jerr;
	size_t used;

	if (len > (size_t)INT32_MAX) {
		if (why)
			*why = "document too large";
		return NULL;
	}
	if (has_single_quote_outside_strings(text, len)) {
		if (why)
			*why = "single-quoted strings are not JSON";
		return NULL;
	}
	tok = json_tokener_new_ex(max_depth);
	if (tok == NULL) {
		if (why)
			*why = "out of memory";
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	used = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue) {
		/* A top-level number or literal ends only at end of input:
		 * say so with a terminating NUL, as json-c asks. */
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		used = len;
	}
	if (jerr == json_tokener_continue) {
		/* Input ended inside a value: truncated document. */
		if (why)
			*why = "unexpected end of input";
		goto fail;
	}
	if (jerr != json_tokener_success) {
		if (why)
			*why = json_tokener_error_desc(jerr);
		goto fail;
	}
	for (; used < len; used++) {
		char c = text[used];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			if (why)
				*why = "trailing data after the JSON value";
			goto fail;
		}
	}
	json_tokener_free(tok);
	return obj;
fail:
	json_object_put(obj);
	json_tokener_free(tok);
	return NULL;
}

const char *
gq_json_str(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool
gq_json_int(struct json_object *obj, const char *key, int64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

bool
gq_json_bool(struct json_object *obj, const char *key, bool *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_boolean))
		return false;
	*out = json_object_get_boolean(v);
	return true;
}

const char *
gq_json_text(struct json_object *obj, size_t *len)
{
	return json_object_to_json_string_length(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
}

struct json_object *
gq_json_str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}
