#include "autoconf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "comfy.h"
#include "jsonutil.h"

/* Replies nest shallowly; deeper documents are refused outright. */
#define REPLY_MAX_DEPTH 32

/* Append printf output to msg (capacity cap), keeping it NUL-terminated and
 * silently cut at the end of the space. */
static void __attribute__((format(printf, 3, 4)))
msg_add(char *msg, size_t cap, const char *fmt, ...)
{
	size_t used = strnlen(msg, cap);
	va_list ap;

	if (cap == 0 || used + 1 >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(msg + used, cap - used, fmt, ap);
	va_end(ap);
}

static struct json_object *
member(struct json_object *obj, const char *key, enum json_type type)
{
	struct json_object *v;

	if (obj == NULL || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

/* ---- POST /prompt ---------------------------------------------------- */

static int
escape_json_string(struct buf *out, const char *s)
{
	struct json_object *o = json_object_new_string(s);
	const char *text;
	size_t len;
	int rc;

	if (o == NULL)
		return -1;
	text = gq_json_text(o, &len);
	rc = text != NULL ? buf_append(out, text, len) : -1;
	json_object_put(o);
	return rc;
}

int
comfy_submit_body(struct buf *out, const char *input, size_t input_len,
    const char *client_id, const char *prompt_id)
{
	if (buf_append(out, "{\"prompt\":", 10) < 0 ||
	    buf_append(out, input, input_len) < 0 ||
	    buf_append(out, ",\"client_id\":", 13) < 0 ||
	    escape_json_string(out, client_id) < 0 ||
	    buf_append(out, ",\"prompt_id\":", 13) < 0 ||
	    escape_json_string(out, prompt_id) < 0 ||
	    buf_append(out, "}", 1) < 0)
		return -1;
	return 0;
}

/* "node 4 (CheckpointLoaderSimple): Value not in list: ckpt_name: ..." for
 * each error of each node, as far as msg has room. */
static void
describe_node_errors(struct json_object *node_errors, char *msg, size_t cap)
{
	if (node_errors == NULL || !json_object_is_type(node_errors, json_type_object))
		return;
	json_object_object_foreach(node_errors, node_id, node) {
		struct json_object *errors = member(node, "errors", json_type_array);
		const char *class_type = gq_json_str(node, "class_type");
		size_t n = errors ? json_object_array_length(errors) : 0;

		if (!json_object_is_type(node, json_type_object))
			continue;
		msg_add(msg, cap, "; node %.64s", node_id);
		if (class_type != NULL)
			msg_add(msg, cap, " (%.128s)", class_type);
		for (size_t i = 0; i < n; i++) {
			struct json_object *e = json_object_array_get_idx(errors, i);
			const char *m = gq_json_str(e, "message");
			const char *d = gq_json_str(e, "details");

			msg_add(msg, cap, "%s %s", i ? "," : ":", m ? m : "error");
			if (d != NULL && *d)
				msg_add(msg, cap, ": %s", d);
		}
	}
}

enum comfy_submit
comfy_parse_submit(long status, const char *body, size_t len, char *msg, size_t msglen)
{
	struct json_object *root = NULL, *err;
	enum comfy_submit rc;

	if (msglen > 0)
		msg[0] = '\0';
	if (status >= 200 && status < 300)
		return COMFY_SUBMIT_OK;
	if (status != 400) {
		msg_add(msg, msglen, "backend answered HTTP %ld", status);
		return COMFY_SUBMIT_ERROR;
	}
	rc = COMFY_SUBMIT_INVALID;
	root = gq_json_parse(body, len, REPLY_MAX_DEPTH, NULL);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		msg_add(msg, msglen, "backend rejected the prompt (HTTP 400)");
		goto out;
	}
	if ((err = member(root, "error", json_type_object)) != NULL) {
		const char *m = gq_json_str(err, "message");
		const char *d = gq_json_str(err, "details");

		msg_add(msg, msglen, "%s", m && *m ? m : "invalid prompt");
		if (d != NULL && *d)
			msg_add(msg, msglen, ": %s", d);
	} else if ((err = member(root, "error", json_type_string)) != NULL) {
		/* Old builds: {"error": "no prompt", "node_errors": []}. */
		msg_add(msg, msglen, "%s", json_object_get_string(err));
	} else {
		msg_add(msg, msglen, "backend rejected the prompt (HTTP 400)");
	}
	describe_node_errors(member(root, "node_errors", json_type_object), msg, msglen);
out:
	json_object_put(root);
	return rc;
}

/* ---- GET /history/{id} ----------------------------------------------- */

static bool
safe_text(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		if (n >= max || (unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return false;
	}
	return true;
}

/* A file name ComfyUI's /view would serve from a folder: no separators,
 * no "." or "..", no control characters. */
static bool
safe_filename(const char *s)
{
	if (*s == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	if (strchr(s, '/') != NULL || strchr(s, '\\') != NULL)
		return false;
	return safe_text(s, COMFY_NAME_MAX);
}

static bool
safe_type(const char *s)
{
	if (*s == '\0' || strlen(s) > COMFY_TYPE_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return false;
	return true;
}

static int
add_file(struct comfy_history *h, struct json_object *item)
{
	const char *name = gq_json_str(item, "filename");
	const char *sub = gq_json_str(item, "subfolder");
	const char *type = gq_json_str(item, "type");
	struct comfy_file *f, *grown;

	if (name == NULL)
		return 0;              /* not a file reference */
	if (sub == NULL)
		sub = "";
	if (type == NULL)
		type = "output";
	if (!safe_filename(name) || !safe_text(sub, COMFY_SUBFOLDER_MAX) || !safe_type(type))
		return 0;
	if (h->nfiles >= COMFY_MAX_FILES) {
		h->files_truncated = true;
		return 0;
	}
	grown = realloc(h->files, (h->nfiles + 1) * sizeof *h->files);
	if (grown == NULL)
		return -1;
	h->files = grown;
	f = &h->files[h->nfiles++];
	snprintf(f->filename, sizeof f->filename, "%s", name);
	snprintf(f->subfolder, sizeof f->subfolder, "%s", sub);
	snprintf(f->type, sizeof f->type, "%s", type);
	return 0;
}

int
comfy_collect_files(struct json_object *outputs, struct comfy_history *h)
{
	if (outputs == NULL || !json_object_is_type(outputs, json_type_object))
		return 0;
	json_object_object_foreach(outputs, node_id, node) {
		(void)node_id;
		if (!json_object_is_type(node, json_type_object))
			continue;
		json_object_object_foreach(node, kind, list) {
			size_t n;

			(void)kind;
			if (!json_object_is_type(list, json_type_array))
				continue;
			n = json_object_array_length(list);
			for (size_t i = 0; i < n; i++) {
				struct json_object *item = json_object_array_get_idx(list, i);
				if (json_object_is_type(item, json_type_object) &&
				    add_file(h, item) < 0)
					return -1;
			}
		}
	}
	return 0;
}

static bool
contains_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

/* Walk status.messages: timestamps, and what ended the run. */
static void
read_messages(struct json_object *messages, struct comfy_history *h,
    bool *interrupted, struct json_object **exec_error)
{
	size_t n = messages ? json_object_array_length(messages) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(messages, i), *name, *data;
		const char *what;
		int64_t ts = 0;

		if (!json_object_is_type(m, json_type_array) || json_object_array_length(m) < 2)
			continue;
		name = json_object_array_get_idx(m, 0);
		data = json_object_array_get_idx(m, 1);
		if (!json_object_is_type(name, json_type_string) ||
		    !json_object_is_type(data, json_type_object))
			continue;
		what = json_object_get_string(name);
		gq_json_int(data, "timestamp", &ts);
		if (strcmp(what, "execution_start") == 0) {
			h->start_ms = ts;
		} else if (strcmp(what, "execution_success") == 0) {
			h->end_ms = ts;
		} else if (strcmp(what, "execution_error") == 0) {
			h->end_ms = ts;
			*exec_error = data;
		} else if (strcmp(what, "execution_interrupted") == 0) {
			h->end_ms = ts;
			*interrupted = true;
		}
	}
}

static enum comfy_state
classify_error(struct json_object *e, struct comfy_history *h)
{
	const char *type = gq_json_str(e, "exception_type");
	const char *text = gq_json_str(e, "exception_message");
	const char *node_type = gq_json_str(e, "node_type");
	const char *node_id = gq_json_str(e, "node_id");
	enum comfy_state state = COMFY_FAILED;

	if ((type != NULL && strstr(type, "OutOfMemoryError") != NULL) ||
	    (text != NULL && contains_nocase(text, "out of memory")))
		state = COMFY_OOM;
	if (node_type != NULL || node_id != NULL)
		msg_add(h->message, sizeof h->message, "%.128s (node %.64s): ",
		    node_type ? node_type : "node", node_id ? node_id : "?");
	if (type != NULL && *type)
		msg_add(h->message, sizeof h->message, "%.128s: ", type);
	msg_add(h->message, sizeof h->message, "%s",
	    text != NULL && *text ? text : "execution failed");
	return state;
}

enum comfy_state
comfy_parse_history(const char *body, size_t len, const char *prompt_id,
    struct comfy_history *h)
{
	struct json_object *root, *entry, *status, *exec_error = NULL;
	const char *status_str;
	bool completed = false, interrupted = false;

	memset(h, 0, sizeof *h);
	h->state = COMFY_BAD_REPLY;
	root = gq_json_parse(body, len, REPLY_MAX_DEPTH, NULL);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		msg_add(h->message, sizeof h->message, "history reply is not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(root, prompt_id, &entry)) {
		h->state = COMFY_PENDING;
		goto out;
	}
	if (!json_object_is_type(entry, json_type_object)) {
		msg_add(h->message, sizeof h->message, "history entry is not an object");
		goto out;
	}
	status = member(entry, "status", json_type_object);
	status_str = gq_json_str(status, "status_str");
	gq_json_bool(status, "completed", &completed);
	read_messages(member(status, "messages", json_type_array), h,
	    &interrupted, &exec_error);

	if ((status_str != NULL && strcmp(status_str, "success") == 0) ||
	    (status_str == NULL && status != NULL && completed) ||
	    (status == NULL && member(entry, "outputs", json_type_object) != NULL)) {
		if (comfy_collect_files(member(entry, "outputs", json_type_object), h) < 0) {
			msg_add(h->message, sizeof h->message, "out of memory");
			goto out;
		}
		h->state = COMFY_SUCCESS;
	} else if (status_str != NULL && strcmp(status_str, "error") == 0) {
		if (interrupted) {
			msg_add(h->message, sizeof h->message, "execution interrupted");
			h->state = COMFY_INTERRUPTED;
		} else if (exec_error != NULL) {
			h->state = classify_error(exec_error, h);
		} else {
			msg_add(h->message, sizeof h->message, "execution failed");
			h->state = COMFY_FAILED;
		}
	} else {
		msg_add(h->message, sizeof h->message, "history entry has no known status");
	}
out:
	json_object_put(root);
	return h->state;
}

void
comfy_history_free(struct comfy_history *h)
{
	free(h->files);
	h->files = NULL;
	h->nfiles = 0;
}

/* ---- GET /queue, POST /interrupt, POST /queue ------------------------ */

static int
list_has(struct json_object *list, const char *prompt_id)
{
	size_t n = json_object_array_length(list);

	for (size_t i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(list, i), *id;

		if (!json_object_is_type(item, json_type_array) ||
		    json_object_array_length(item) < 2)
			continue;
		id = json_object_array_get_idx(item, 1);
		if (json_object_is_type(id, json_type_string) &&
		    strcmp(json_object_get_string(id), prompt_id) == 0)
			return 1;
	}
	return 0;
}

int
comfy_queue_has(const char *body, size_t len, const char *prompt_id)
{
	struct json_object *root, *running, *pending;
	int rc = -1;

	root = gq_json_parse(body, len, REPLY_MAX_DEPTH, NULL);
	running = member(root, "queue_running", json_type_array);
	pending = member(root, "queue_pending", json_type_array);
	if (running == NULL && pending == NULL)
		goto out;
	rc = (running && list_has(running, prompt_id)) ||
	    (pending && list_has(pending, prompt_id));
out:
	json_object_put(root);
	return rc;
}

int
comfy_interrupt_body(struct buf *out, const char *prompt_id)
{
	if (buf_append(out, "{\"prompt_id\":", 13) < 0 ||
	    escape_json_string(out, prompt_id) < 0 ||
	    buf_append(out, "}", 1) < 0)
		return -1;
	return 0;
}

int
comfy_delete_body(struct buf *out, const char *prompt_id)
{
	if (buf_append(out, "{\"delete\":[", 11) < 0 ||
	    escape_json_string(out, prompt_id) < 0 ||
	    buf_append(out, "]}", 2) < 0)
		return -1;
	return 0;
}

/* ---- URLs ------------------------------------------------------------ */

int
comfy_url(struct buf *out, const char *base, const char *path)
{
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (buf_append(out, base, n) < 0 || buf_append(out, path, strlen(path)) < 0)
		return -1;
	return 0;
}

static int
append_escaped(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char enc[3];

		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			if (buf_append(out, p, 1) < 0)
				return -1;
			continue;
		}
		enc[0] = '%';
		enc[1] = hex[*p >> 4];
		enc[2] = hex[*p & 15];
		if (buf_append(out, enc, 3) < 0)
			return -1;
	}
	return 0;
}

int
comfy_view_url(struct buf *out, const char *base, const struct comfy_file *f)
{
	if (comfy_url(out, base, "/view?filename=") < 0 ||
	    append_escaped(out, f->filename) < 0 ||
	    buf_append(out, "&subfolder=", 11) < 0 ||
	    append_escaped(out, f->subfolder) < 0 ||
	    buf_append(out, "&type=", 6) < 0 ||
	    append_escaped(out, f->type) < 0)
		return -1;
	return 0;
}
