#include "autoconf.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "jsonutil.h"
#include "openai.h"

/* Replies nest shallowly; deeper documents are refused outright. */
#define REPLY_MAX_DEPTH 32

static void __attribute__((format(printf, 3, 4)))
say(char *msg, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (msg == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, cap, fmt, ap);
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

static bool
has(struct json_object *obj, const char *key)
{
	return json_object_object_get_ex(obj, key, NULL);
}

/* ---- the request ------------------------------------------------------ */

/* A positive integer member (absent: 0); -1 when present but not one. */
static int64_t
positive(struct json_object *obj, const char *key)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -1;
	n = json_object_get_int64(v);
	return n > 0 ? n : -1;
}

static int
read_chat(struct json_object *root, struct oai_request *req, char *msg, size_t msglen)
{
	struct json_object *v;
	int64_t a, b, n;

	req->kind = OAI_CHAT;
	if (member(root, "messages", json_type_array) == NULL) {
		say(msg, msglen, "input.messages must be an array");
		return -1;
	}
	if (json_object_object_get_ex(root, "stream", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			say(msg, msglen, "input.stream must be true or false");
			return -1;
		}
		req->stream = json_object_get_boolean(v);
	}
	a = positive(root, "max_completion_tokens");
	b = positive(root, "max_tokens");
	if (a < 0 || b < 0) {
		say(msg, msglen, "input.%s must be a positive integer",
		    a < 0 ? "max_completion_tokens" : "max_tokens");
		return -1;
	}
	req->max_tokens = a > 0 && b > 0 ? (a < b ? a : b) : a > 0 ? a : b;
	if ((n = positive(root, "n")) < 0 || n > OAI_MAX_CHOICES) {
		say(msg, msglen, "input.n must be an integer from 1 to %d", OAI_MAX_CHOICES);
		return -1;
	}
	req->n = n > 0 ? (int)n : 1;
	return 0;
}

static int
read_images(struct json_object *root, struct oai_request *req, char *msg, size_t msglen)
{
	struct json_object *fmt;
	int64_t n;

	req->kind = OAI_IMAGES;
	if (member(root, "prompt", json_type_string) == NULL) {
		say(msg, msglen, "input.prompt must be a string");
		return -1;
	}
	if ((n = positive(root, "n")) < 0 || n > OAI_MAX_IMAGES) {
		say(msg, msglen, "input.n must be an integer from 1 to %d", OAI_MAX_IMAGES);
		return -1;
	}
	req->n = n > 0 ? (int)n : 1;
	if (has(root, "stream")) {
		say(msg, msglen, "input.stream is not supported for image generations");
		return -1;
	}
	if ((fmt = json_object_new_string("b64_json")) == NULL ||
	    json_object_object_add(root, "response_format", fmt) != 0) {
		json_object_put(fmt);
		say(msg, msglen, "out of memory");
		return -1;
	}
	return 0;
}

int
oai_prepare(const char *input, size_t len, struct oai_request *req, struct buf *out,
    char *msg, size_t msglen)
{
	struct json_object *root;
	const char *why = NULL, *text;
	size_t tlen;
	int rc = -1;

	memset(req, 0, sizeof *req);
	req->n = 1;
	root = gq_json_parse(input, len, GQ_JSON_MAX_DEPTH, &why);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		say(msg, msglen, "input is not a JSON object%s%s", why ? ": " : "", why ? why : "");
		goto out;
	}
	if (has(root, "messages")) {
		if (read_chat(root, req, msg, msglen) < 0)
			goto out;
		/* Sent exactly as the user wrote it. */
		if (buf_append(out, input, len) < 0) {
			say(msg, msglen, "out of memory");
			goto out;
		}
	} else if (has(root, "prompt")) {
		if (read_images(root, req, msg, msglen) < 0)
			goto out;
		if ((text = gq_json_text(root, &tlen)) == NULL || buf_append(out, text, tlen) < 0) {
			say(msg, msglen, "out of memory");
			goto out;
		}
	} else {
		say(msg, msglen, "input has neither \"messages\" (chat completions) nor "
		    "\"prompt\" (image generations)");
		goto out;
	}
	rc = 0;
out:
	json_object_put(root);
	return rc;
}

int
oai_url(struct buf *out, const char *base, const char *endpoint)
{
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (buf_append(out, base, n) < 0)
		return -1;
	if ((n < 3 || memcmp(base + n - 3, "/v1", 3) != 0) && buf_append(out, "/v1", 3) < 0)
		return -1;
	return buf_append(out, endpoint, strlen(endpoint));
}

/* ---- errors ----------------------------------------------------------- */

/* The message of an error document: {"error": {"message"}} (OpenAI,
 * llama.cpp), {"error": "text"}, or vLLM's older {"message"}. */
static const char *
error_message(struct json_object *root)
{
	struct json_object *e;
	const char *found[3] = { NULL, NULL, NULL }, *m;

	if ((e = member(root, "error", json_type_object)) != NULL)
		found[0] = gq_json_str(e, "message");
	found[1] = gq_json_str(root, "error");
	found[2] = gq_json_str(root, "message");
	/* JSON can spell an empty C string ("", "\u0000..."): that is no message. */
	for (size_t i = 0; i < 3; i++)
		if ((m = found[i]) != NULL && *m != '\0')
			return m;
	return NULL;
}

enum oai_verdict
oai_classify(long status, const char *body, size_t len, char *msg, size_t msglen)
{
	struct json_object *root = gq_json_parse(body, len, REPLY_MAX_DEPTH, NULL);
	const char *m = root != NULL ? error_message(root) : NULL;
	enum oai_verdict v;

	if (m != NULL)
		say(msg, msglen, "HTTP %ld: %.900s", status, m);
	else
		say(msg, msglen, "HTTP %ld", status);
	json_object_put(root);
	if (status == 404)
		v = OAI_NO_MODEL;
	else if (status >= 500 || status == 429 || status == 408 || status == 401 ||
	    status == 403 || status < 400)
		v = OAI_RETRY;
	else
		v = OAI_INVALID;
	return v;
}

/* ---- texts ------------------------------------------------------------ */

void
oai_texts_init(struct oai_texts *t, size_t max_bytes)
{
	memset(t, 0, sizeof *t);
	for (size_t i = 0; i < OAI_MAX_CHOICES; i++)
		buf_init(&t->text[i], 0);
	t->max = max_bytes;
}

void
oai_texts_free(struct oai_texts *t)
{
	for (size_t i = 0; i < OAI_MAX_CHOICES; i++)
		buf_free(&t->text[i]);
	t->n = t->total = 0;
}

/* A choice's index: its "index" member, else its place in the list.
 * -1 for one genq does not keep. */
static int
choice_index(struct json_object *choice, size_t pos)
{
	struct json_object *v;
	int64_t i = (int64_t)pos;

	if (json_object_object_get_ex(choice, "index", &v)) {
		if (!json_object_is_type(v, json_type_int))
			return -1;
		i = json_object_get_int64(v);
	}
	return i >= 0 && i < OAI_MAX_CHOICES ? (int)i : -1;
}

static enum oai_result
add_text(struct oai_texts *t, int idx, const char *s, size_t n, char *msg, size_t msglen)
{
	if (n > t->max - t->total) {
		say(msg, msglen, "the text output is over %zu bytes", t->max);
		return OAI_TOO_LARGE;
	}
	if (buf_append(&t->text[idx], s, n) < 0) {
		say(msg, msglen, "out of memory");
		return OAI_BAD_REPLY;
	}
	t->total += n;
	if ((size_t)idx + 1 > t->n)
		t->n = (size_t)idx + 1;
	return OAI_OK;
}

static void
note_finish(struct oai_texts *t, int idx, struct json_object *choice)
{
	const char *f = gq_json_str(choice, "finish_reason");

	if (f != NULL && idx == 0)
		snprintf(t->finish, sizeof t->finish, "%s", f);
}

enum oai_result
oai_parse_chat(const char *body, size_t len, struct oai_texts *t, char *msg, size_t msglen)
{
	struct json_object *root, *choices, *usage;
	const char *why = NULL, *m;
	enum oai_result rc = OAI_BAD_REPLY;
	int64_t tokens;
	size_t n;

	root = gq_json_parse(body, len, REPLY_MAX_DEPTH, &why);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		say(msg, msglen, "chat completion is not a JSON object%s%s", why ? ": " : "",
		    why ? why : "");
		goto out;
	}
	if (has(root, "error") && (m = error_message(root)) != NULL) {
		say(msg, msglen, "%.1000s", m);
		rc = OAI_SERVER_ERROR;
		goto out;
	}
	if ((choices = member(root, "choices", json_type_array)) == NULL ||
	    (n = json_object_array_length(choices)) == 0) {
		say(msg, msglen, "chat completion without choices");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(choices, i);
		struct json_object *message = member(c, "message", json_type_object), *content;
		int idx = json_object_is_type(c, json_type_object) ? choice_index(c, i) : -1;

		if (idx < 0)
			continue;
		if (message == NULL) {
			say(msg, msglen, "choice %d has no message", idx);
			goto out;
		}
		/* A reply of only tool calls has content null: an empty text. */
		if (!json_object_object_get_ex(message, "content", &content) ||
		    json_object_is_type(content, json_type_null)) {
			rc = add_text(t, idx, "", 0, msg, msglen);
		} else if (json_object_is_type(content, json_type_string)) {
			rc = add_text(t, idx, json_object_get_string(content),
			    (size_t)json_object_get_string_len(content), msg, msglen);
		} else {
			say(msg, msglen, "choice %d: message.content is not a string", idx);
			rc = OAI_BAD_REPLY;
		}
		if (rc != OAI_OK)
			goto out;
		note_finish(t, idx, c);
	}
	if (t->n == 0) {
		say(msg, msglen, "chat completion without usable choices");
		rc = OAI_BAD_REPLY;
		goto out;
	}
	usage = member(root, "usage", json_type_object);
	if (usage != NULL && gq_json_int(usage, "completion_tokens", &tokens) && tokens >= 0)
		t->tokens = tokens;
	rc = OAI_OK;
out:
	json_object_put(root);
	return rc;
}

/* ---- event streams ------------------------------------------------------ */

void
oai_stream_init(struct oai_stream *s, size_t max_bytes)
{
	memset(s, 0, sizeof *s);
	buf_init(&s->line, OAI_LINE_MAX);
	buf_init(&s->data, OAI_LINE_MAX);
	s->usage_tokens = -1;
	oai_texts_init(&s->texts, max_bytes);
}

void
oai_stream_free(struct oai_stream *s)
{
	buf_free(&s->line);
	buf_free(&s->data);
	oai_texts_free(&s->texts);
}

static enum oai_result
stream_fail(struct oai_stream *s, enum oai_result rc)
{
	if (s->result == OAI_OK)
		s->result = rc;
	return s->result;
}

/* One chat.completion.chunk (or an error object) arrived. */
static enum oai_result
on_chunk(struct oai_stream *s, struct json_object *root)
{
	struct json_object *choices, *usage;
	const char *m;
	bool content_seen = false;
	int64_t tokens;
	size_t n;

	if (has(root, "error")) {
		m = error_message(root);
		say(s->msg, sizeof s->msg, "error event: %.1000s", m ? m : "(no message)");
		return stream_fail(s, OAI_SERVER_ERROR);
	}
	usage = member(root, "usage", json_type_object);
	if (usage != NULL && gq_json_int(usage, "completion_tokens", &tokens) && tokens >= 0)
		s->usage_tokens = tokens;
	if ((choices = member(root, "choices", json_type_array)) == NULL)
		return s->result;          /* a usage-only chunk may say choices: null */
	n = json_object_array_length(choices);
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(choices, i);
		struct json_object *delta, *content;
		int idx = json_object_is_type(c, json_type_object) ? choice_index(c, i) : -1;

		if (idx < 0)
			continue;
		if ((size_t)idx + 1 > s->texts.n)
			s->texts.n = (size_t)idx + 1;
		delta = member(c, "delta", json_type_object);
		if (delta != NULL && json_object_object_get_ex(delta, "content", &content) &&
		    !json_object_is_type(content, json_type_null)) {
			enum oai_result rc;

			if (!json_object_is_type(content, json_type_string)) {
				say(s->msg, sizeof s->msg, "delta.content is not a string");
				return stream_fail(s, OAI_BAD_REPLY);
			}
			rc = add_text(&s->texts, idx, json_object_get_string(content),
			    (size_t)json_object_get_string_len(content), s->msg, sizeof s->msg);
			if (rc != OAI_OK)
				return stream_fail(s, rc);
			content_seen |= json_object_get_string_len(content) > 0;
		}
		if (gq_json_str(c, "finish_reason") != NULL)
			s->finished = true;
		note_finish(&s->texts, idx, c);
	}
	if (content_seen)
		s->chunks++;
	return s->result;
}

/* The event whose data lines are in s->data ended (a blank line). */
static enum oai_result
dispatch(struct oai_stream *s)
{
	struct json_object *root;
	const char *why = NULL;
	enum oai_result rc;

	if (s->data.len == 0)
		return s->result;
	if (s->data.len == 6 && memcmp(s->data.data, "[DONE]", 6) == 0) {
		s->done = true;
		buf_reset(&s->data);
		return s->result;
	}
	if (s->done) {                 /* nothing counts after [DONE] */
		buf_reset(&s->data);
		return s->result;
	}
	root = gq_json_parse(s->data.data, s->data.len, REPLY_MAX_DEPTH, &why);
	buf_reset(&s->data);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		say(s->msg, sizeof s->msg, "event data is not a JSON object%s%s", why ? ": " : "",
		    why ? why : "");
		return stream_fail(s, OAI_BAD_REPLY);
	}
	rc = on_chunk(s, root);
	json_object_put(root);
	return rc;
}

/* A whole line is in s->line (without its end). */
static enum oai_result
on_line(struct oai_stream *s)
{
	const char *line = s->line.data, *colon, *value;
	size_t len = s->line.len, flen, vlen;
	enum oai_result rc = s->result;

	if (len == 0)
		return dispatch(s);
	if (line[0] == ':')            /* a comment (keep-alive) */
		goto out;
	colon = memchr(line, ':', len);
	flen = colon != NULL ? (size_t)(colon - line) : len;
	value = colon != NULL ? colon + 1 : line + len;
	vlen = (size_t)(line + len - value);
	if (vlen > 0 && value[0] == ' ') {
		value++;
		vlen--;
	}
	if (flen == 4 && memcmp(line, "data", 4) == 0) {
		if ((s->data.len > 0 && buf_append(&s->data, "\n", 1) < 0) ||
		    buf_append(&s->data, value, vlen) < 0) {
			say(s->msg, sizeof s->msg, "event data over %u bytes", OAI_LINE_MAX);
			rc = stream_fail(s, OAI_BAD_REPLY);
		}
	} else if (flen == 5 && memcmp(line, "error", 5) == 0) {
		/* llama.cpp reports a failure inside a stream as "error: {...}". */
		struct json_object *root = gq_json_parse(value, vlen, REPLY_MAX_DEPTH, NULL);
		const char *m = root != NULL ? error_message(root) : NULL;

		if (m != NULL)
			say(s->msg, sizeof s->msg, "error event: %.1000s", m);
		else
			say(s->msg, sizeof s->msg, "error event: %.*s", (int)(vlen < 1000 ? vlen : 1000),
			    value);
		json_object_put(root);
		rc = stream_fail(s, OAI_SERVER_ERROR);
	}
	/* Other fields (event:, id:, retry:) carry nothing genq uses. */
out:
	buf_reset(&s->line);
	return rc;
}

enum oai_result
oai_stream_feed(struct oai_stream *s, const char *data, size_t len)
{
	size_t i = 0;

	while (i < len && s->result == OAI_OK) {
		char c = data[i];
		size_t j;

		if (s->cr) {
			s->cr = false;
			if (c == '\n') {        /* the second half of a CRLF */
				i++;
				continue;
			}
		}
		if (c == '\r' || c == '\n') {
			s->cr = c == '\r';
			on_line(s);
			i++;
			continue;
		}
		for (j = i; j < len && data[j] != '\r' && data[j] != '\n'; j++)
			;
		if (buf_append(&s->line, data + i, j - i) < 0) {
			say(s->msg, sizeof s->msg, "event-stream line over %u bytes", OAI_LINE_MAX);
			return stream_fail(s, OAI_BAD_REPLY);
		}
		i = j;
	}
	return s->result;
}

enum oai_result
oai_stream_end(struct oai_stream *s)
{
	if (s->result == OAI_OK && s->line.len > 0)
		on_line(s);
	if (s->result == OAI_OK)
		dispatch(s);
	if (s->result != OAI_OK)
		return s->result;
	if (!s->done && !s->finished) {
		say(s->msg, sizeof s->msg, "the event stream ended before [DONE]");
		return stream_fail(s, OAI_BAD_REPLY);
	}
	if (s->texts.n == 0) {
		say(s->msg, sizeof s->msg, "the event stream carried no choices");
		return stream_fail(s, OAI_BAD_REPLY);
	}
	s->texts.tokens = s->usage_tokens >= 0 ? s->usage_tokens : s->chunks;
	return OAI_OK;
}

double
oai_progress(int64_t tokens, int64_t max_tokens)
{
	double p;

	if (max_tokens <= 0)
		return -1;
	p = tokens > 0 ? (double)tokens / (double)max_tokens : 0;
	/* 1 means done, which only the job's success may say. */
	return p > 0.99 ? 0.99 : p;
}

/* ---- images ----------------------------------------------------------- */

static void
image_ext(const unsigned char *d, size_t n, char ext[OAI_EXT_MAX])
{
	const char *e = "bin";

	if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
		e = "png";
	else if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
		e = "jpg";
	else if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
		e = "webp";
	else if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
		e = "gif";
	snprintf(ext, OAI_EXT_MAX, "%s", e);
}

/* Decode b64 (len bytes) into img with OpenSSL; whitespace is dropped first
 * (some servers wrap lines), padding is required. */
static enum oai_result
decode_b64(const char *b64, size_t len, size_t max_bytes, struct oai_image *img,
    char *msg, size_t msglen)
{
	char *clean = NULL;
	size_t n = 0, pad = 0, out_max;
	int got;
	enum oai_result rc = OAI_BAD_REPLY;

	/* Decoded size is 3/4 of the text: refuse early what cannot fit. */
	if (len / 4 > max_bytes / 3 + 1) {
		say(msg, msglen, "an image is over %zu bytes", max_bytes);
		return OAI_TOO_LARGE;
	}
	if (len > INT_MAX || (clean = malloc(len + 1)) == NULL) {
		say(msg, msglen, "out of memory");
		return OAI_BAD_REPLY;
	}
	for (size_t i = 0; i < len; i++)
		if (b64[i] != ' ' && b64[i] != '\n' && b64[i] != '\r' && b64[i] != '\t')
			clean[n++] = b64[i];
	if (n == 0 || n % 4 != 0) {
		say(msg, msglen, "b64_json is not base64 (length %zu)", n);
		goto out;
	}
	pad = clean[n - 1] == '=' ? (clean[n - 2] == '=' ? 2 : 1) : 0;
	out_max = n / 4 * 3;
	if ((img->data = malloc(out_max + 1)) == NULL) {
		say(msg, msglen, "out of memory");
		goto out;
	}
	got = EVP_DecodeBlock(img->data, (const unsigned char *)clean, (int)n);
	if (got < 0 || (size_t)got != out_max) {
		say(msg, msglen, "b64_json is not base64");
		goto out;
	}
	img->len = out_max - pad;
	if (img->len > max_bytes) {
		say(msg, msglen, "an image is over %zu bytes", max_bytes);
		rc = OAI_TOO_LARGE;
		goto out;
	}
	image_ext(img->data, img->len, img->ext);
	rc = OAI_OK;
out:
	if (rc != OAI_OK) {
		free(img->data);
		img->data = NULL;
		img->len = 0;
	}
	free(clean);
	return rc;
}

enum oai_result
oai_parse_images(const char *body, size_t len, size_t max_bytes, struct oai_images *out,
    char *msg, size_t msglen)
{
	struct json_object *root, *data;
	const char *why = NULL, *m;
	enum oai_result rc = OAI_BAD_REPLY;
	size_t n;

	memset(out, 0, sizeof *out);
	root = gq_json_parse(body, len, REPLY_MAX_DEPTH, &why);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		say(msg, msglen, "image generation reply is not a JSON object%s%s", why ? ": " : "",
		    why ? why : "");
		goto out;
	}
	if (has(root, "error") && (m = error_message(root)) != NULL) {
		say(msg, msglen, "%.1000s", m);
		rc = OAI_SERVER_ERROR;
		goto out;
	}
	if ((data = member(root, "data", json_type_array)) == NULL ||
	    (n = json_object_array_length(data)) == 0) {
		say(msg, msglen, "image generation reply without data");
		goto out;
	}
	if (n > OAI_MAX_IMAGES)
		n = OAI_MAX_IMAGES;
	for (size_t i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(data, i);
		struct json_object *b64 = member(item, "b64_json", json_type_string);

		if (b64 == NULL) {
			say(msg, msglen, "data[%zu] has no b64_json%s", i,
			    member(item, "url", json_type_string) ? " (a url instead)" : "");
			rc = OAI_BAD_REPLY;
			goto out;
		}
		rc = decode_b64(json_object_get_string(b64), (size_t)json_object_get_string_len(b64),
		    max_bytes, &out->img[i], msg, msglen);
		if (rc != OAI_OK)
			goto out;
		out->n = i + 1;
	}
	rc = OAI_OK;
out:
	json_object_put(root);
	return rc;
}

void
oai_images_free(struct oai_images *out)
{
	for (size_t i = 0; i < OAI_MAX_IMAGES; i++) {
		free(out->img[i].data);
		out->img[i].data = NULL;
	}
	out->n = 0;
}
