/* comfysim_queue: POST /prompt and the pending queue, ported from
 * comfyui_sim.py (Simulator.submit): a number spent on every POST, a
 * client prompt_id that must be a canonical UUID, validation, and a binary
 * heap ordered like Python's heapq on (number, prompt_id, seq), so /queue
 * lists pending prompts in the same order. */
#include "autoconf.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comfysim.h"
#include "comfysim_valid.h"

/* ---- the pending heap: Python's heapq on (number, prompt_id, seq) ---- */

static bool
less(const struct qitem *a, const struct qitem *b)
{
	int c;

	if (a->number != b->number)
		return a->number < b->number;
	c = strcmp(a->prompt_id, b->prompt_id);
	return c != 0 ? c < 0 : a->seq < b->seq;
}

static void
sift_down(struct qitem **h, size_t start, size_t pos)
{
	struct qitem *item = h[pos];

	while (pos > start) {
		size_t parent = (pos - 1) >> 1;
		if (!less(item, h[parent]))
			break;
		h[pos] = h[parent];
		pos = parent;
	}
	h[pos] = item;
}

static void
sift_up(struct qitem **h, size_t n, size_t pos)
{
	size_t start = pos, child = 2 * pos + 1;
	struct qitem *item = h[pos];

	while (child < n) {
		if (child + 1 < n && !less(h[child], h[child + 1]))
			child++;
		h[pos] = h[child];
		pos = child;
		child = 2 * pos + 1;
	}
	h[pos] = item;
	sift_down(h, start, pos);
}

void
heap_push(struct sim *s, struct qitem *q)
{
	if (s->nheap == s->capheap) {
		size_t cap = s->capheap ? s->capheap * 2 : 64;
		struct qitem **p = realloc(s->heap, cap * sizeof *p);
		if (p == NULL) {
			qitem_free(q);   /* out of memory: the prompt is lost, and logged */
			sim_log(s, "out of memory queueing a prompt");
			return;
		}
		s->heap = p;
		s->capheap = cap;
	}
	s->heap[s->nheap++] = q;
	sift_down(s->heap, 0, s->nheap - 1);
}

struct qitem *
heap_pop(struct sim *s)
{
	struct qitem *last, *top;

	if (s->nheap == 0)
		return NULL;
	last = s->heap[--s->nheap];
	if (s->nheap == 0)
		return last;
	top = s->heap[0];
	s->heap[0] = last;
	sift_up(s->heap, s->nheap, 0);
	return top;
}

/* list.pop(i) then heapify, as the Python simulator deletes. */
void
heap_remove(struct sim *s, size_t i)
{
	qitem_free(s->heap[i]);
	memmove(&s->heap[i], &s->heap[i + 1], (s->nheap - i - 1) * sizeof *s->heap);
	s->nheap--;
	for (size_t k = s->nheap / 2; k-- > 0;)
		sift_up(s->heap, s->nheap, k);
}

void
qitem_free(struct qitem *q)
{
	if (q == NULL)
		return;
	json_object_put(q->prompt);
	json_object_put(q->extra_data);
	json_object_put(q->outputs);
	free(q);
}

static json_object *
number_json(double number, bool is_float)
{
	return is_float ? json_object_new_double(number) : json_object_new_int64((int64_t)number);
}

json_object *
qitem_json(const struct qitem *q)
{
	json_object *a = json_object_new_array();

	json_object_array_add(a, number_json(q->number, q->number_is_float));
	json_object_array_add(a, json_object_new_string(q->prompt_id));
	json_object_array_add(a, json_object_get(q->prompt));
	json_object_array_add(a, json_object_get(q->extra_data));
	json_object_array_add(a, json_object_get(q->outputs));
	return a;
}

/* ---- POST /prompt ---- */

static bool
truthy(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: return false;
	case json_type_boolean: return json_object_get_boolean(v);
	case json_type_int: return json_object_get_int64(v) != 0;
	case json_type_double: return json_object_get_double(v) != 0;
	case json_type_string: return json_object_get_string_len(v) > 0;
	case json_type_array: return json_object_array_length(v) > 0;
	default: return json_object_object_length(v) > 0;
	}
}

static bool
canonical_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (shape[i] == '-') {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return false;
		}
	}
	return true;
}

static void
uuid4(char out[37])
{
	unsigned char b[16];
	static const char hex[] = "0123456789abcdef";
	int j = 0;

	if (RAND_bytes(b, sizeof b) != 1)
		for (int i = 0; i < 16; i++)
			b[i] = (unsigned char)rand();
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[b[i] >> 4];
		out[j++] = hex[b[i] & 15];
	}
	out[j] = '\0';
}

static json_object *
reply_error(json_object *error, json_object *node_errors)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "error", error);
	json_object_object_add(r, "node_errors", node_errors ? node_errors : json_object_new_object());
	return r;
}

json_object *
prompt_submit(struct sim *s, json_object *data, int *status)
{
	json_object *v, *prompt, *partial = NULL, *extra = NULL, *error = NULL, *good = NULL, *nerrs = NULL;
	json_object *reply = NULL;
	struct qitem *q = NULL;
	double number;
	bool is_float = false, has_data = json_object_is_type(data, json_type_object), ok;
	char pid[SIM_ID_MAX + 1];

	*status = 500;
	/* ComfyUI spends a number on every POST, valid or not. */
	if (has_data && json_object_object_get_ex(data, "number", &v)) {
		char *end;
		if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double) ||
		    json_object_is_type(v, json_type_boolean))
			number = json_object_get_double(v);
		else if (json_object_is_type(v, json_type_string) &&
		    (number = strtod(json_object_get_string(v), &end), *end == '\0' && end != json_object_get_string(v)))
			;
		else
			return NULL;   /* float() raised: HTTP 500 */
		is_float = true;
	} else {
		pthread_mutex_lock(&s->lock);
		number = (has_data && json_object_object_get_ex(data, "front", &v) && truthy(v)) ?
		    -(double)s->number : (double)s->number;
		s->number++;
		pthread_mutex_unlock(&s->lock);
	}
	if (!has_data || !json_object_object_get_ex(data, "prompt", &prompt)) {
		*status = 400;
		return reply_error(verr("no_prompt", "No prompt provided", "No prompt provided", NULL), NULL);
	}
	if (!json_object_object_get_ex(data, "prompt_id", &v) || v == NULL) {
		uuid4(pid);
	} else if (!json_object_is_type(v, json_type_string) || !canonical_uuid(json_object_get_string(v))) {
		*status = 400;
		return reply_error(verr("invalid_prompt_id", "prompt_id must be a valid UUID",
		    "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
		    "omit it to let the server generate one", NULL), NULL);
	} else {
		snprintf(pid, sizeof pid, "%s", json_object_get_string(v));
	}
	if (!json_object_is_type(prompt, json_type_object))
		return NULL;   /* ComfyUI crashes here too: HTTP 500 */
	if (json_object_object_get_ex(data, "partial_execution_targets", &v) &&
	    json_object_is_type(v, json_type_array))
		partial = v;
	ok = valid_prompt(prompt, partial, &error, &good, &nerrs) == 0;
	if (json_object_object_get_ex(data, "extra_data", &extra))
		extra = json_object_get(extra);
	else
		extra = json_object_new_object();
	if (json_object_object_get_ex(data, "client_id", &v)) {
		if (!json_object_is_type(extra, json_type_object))
			goto out;   /* TypeError in ComfyUI: 500 */
		json_object_object_add(extra, "client_id", json_object_get(v));
	}
	if (!ok) {
		*status = 400;
		reply = reply_error(error, nerrs);
		error = nerrs = NULL;
		goto out;
	}
	if (!json_object_is_type(extra, json_type_object))
		goto out;
	json_object_object_add(extra, "create_time", json_object_new_int64(sim_now_ms()));
	q = calloc(1, sizeof *q);
	if (q == NULL)
		goto out;
	q->number = number;
	q->number_is_float = is_float;
	memcpy(q->prompt_id, pid, sizeof pid);
	q->prompt = json_object_get(prompt);
	q->extra_data = json_object_get(extra);
	q->outputs = json_object_get(good);
	pthread_mutex_lock(&s->lock);
	q->seq = ++s->seq;
	heap_push(s, q);
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	{
		char num[64];
		if (is_float)
			py_float(number, num, sizeof num);
		else
			snprintf(num, sizeof num, "%lld", (long long)number);
		sim_log(s, "prompt %s accepted number=%s", pid, num);
	}
	ws_broadcast_status(s);
	reply = json_object_new_object();
	json_object_object_add(reply, "prompt_id", json_object_new_string(pid));
	json_object_object_add(reply, "number", number_json(number, is_float));
	json_object_object_add(reply, "node_errors", nerrs);
	nerrs = NULL;
	*status = 200;
out:
	json_object_put(extra);
	json_object_put(error);
	json_object_put(good);
	json_object_put(nerrs);
	return reply;
}

