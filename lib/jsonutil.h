/* jsonutil: strict, bounded JSON parsing and small typed accessors over json-c. */
#ifndef GENQ_JSONUTIL_H
#define GENQ_JSONUTIL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GQ_JSON_MAX_DEPTH 64

/* Parse exactly one JSON text of len bytes: strict syntax, valid UTF-8, at
 * most max_depth levels, nothing but whitespace after it. On failure returns
 * NULL and, if why is non-NULL, a static description. Caller owns the result
 * (json_object_put). */
struct json_object *gq_json_parse(const char *text, size_t len, int max_depth,
    const char **why);

/* Member accessors that check the type; NULL / false when absent or wrong. */
const char *gq_json_str(struct json_object *obj, const char *key);
bool gq_json_int(struct json_object *obj, const char *key, int64_t *out);
bool gq_json_bool(struct json_object *obj, const char *key, bool *out);

/* Serialize compactly; the string belongs to obj. */
const char *gq_json_text(struct json_object *obj, size_t *len);

/* json_object_new_string_len, or json null for s == NULL. */
struct json_object *gq_json_str_or_null(const char *s);

#endif
