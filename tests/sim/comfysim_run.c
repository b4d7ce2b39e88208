/* comfysim_run: the execution of prompts, ported from comfyui_sim.py
 * (PromptRun, Simulator._worker). One worker thread runs prompts in
 * (number, prompt_id, seq) order, sends the same /ws events in the same
 * order, caches node outputs by signature exactly as the Python simulator
 * does (so execution_cached and the executing sequence match), and has
 * comfysim_save.c write the SaveImage PNGs. */
#include "autoconf.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comfysim.h"
#include "comfysim_valid.h"

static const char OOM_MSG[] = "CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity "
    "of 79.19 GiB of which 1.06 GiB is free. Of the allocated memory 75.20 GiB is allocated by PyTorch.\n"
    "This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before you might "
    "have accidentally set the batch_size to a large number.";

/* ---- execution ---- */

enum { RUN_DONE, RUN_FORGOTTEN, RUN_SIMERR };
enum { EX_NONE, EX_INTERRUPTED, EX_FORGOTTEN, EX_ERROR };

/* What flows along a link. */
struct nval {
	const char *kind;
	const char *ckpt, *text;     /* borrowed from the prompt */
	int64_t w, h, batch;
	unsigned char key[32];
	bool has_key;
};

struct rnode {
	const char *nid;
	json_object *node, *inputs;
	int k;
	char sig[65];
	int sig_state;               /* 0 none, 1 computing, 2 done */
	bool cached, visited, work;
	struct nval out[3];
};

struct run {
	struct sim *s;
	struct qitem *q;
	bool has_client;             /* client_id present and not null */
	const char *client;          /* ... and a string, or NULL */
	struct rnode *n;
	size_t nn;
	json_object *index;          /* nid -> position */
	size_t *order, norder;
	long run_ms;
	const char *fault;           /* "fail", "oom", "hang" or NULL */
	json_object *messages, *executed, *ui_outputs, *meta, *new_cache, *cached_ids;
	int current;                 /* -1 before the first node runs */
	char err_type[64];
	struct strbuf err_msg;
};

static void
emit(struct run *r, const char *type, json_object *data, bool only_if_client)
{
	if (r->has_client) {
		if (r->client)
			ws_send(r->s, type, data, r->client);
		else
			json_object_put(data);   /* a client id no socket can have */
	} else if (!only_if_client) {
		ws_send(r->s, type, data, NULL);   /* no client: every socket, as ComfyUI does */
	} else {
		json_object_put(data);
	}
}

/* PromptExecutor.add_message: kept for /history and sent. Takes data. */
static void
message(struct run *r, const char *event, json_object *data, bool broadcast)
{
	json_object *m = json_object_new_array();

	json_object_object_add(data, "timestamp", json_object_new_int64(sim_now_ms()));
	json_object_array_add(m, json_object_new_string(event));
	json_object_array_add(m, json_object_get(data));
	json_object_array_add(r->messages, m);
	emit(r, event, data, !broadcast);
}

static int
check(struct run *r)
{
	int rc = EX_NONE;

	pthread_mutex_lock(&r->s->lock);
	if (r->s->stopping)
		rc = EX_FORGOTTEN;
	else if (r->s->interrupt)
		rc = EX_INTERRUPTED;
	pthread_mutex_unlock(&r->s->lock);
	return rc;
}

/* Sleeps ms (forever when ms < 0) unless interrupted; then check(). */
static int
wait_ms(struct run *r, double ms)
{
	struct sim *s = r->s;
	struct timespec until;

	if (ms == 0)   /* an instant prompt never touches the clock */
		return check(r);
	ws_flush(s);   /* what happened so far goes out before the pause */
	clock_gettime(CLOCK_REALTIME, &until);
	if (ms > 0) {
		long long ns = until.tv_nsec + (long long)(ms * 1e6);
		until.tv_sec += ns / 1000000000;
		until.tv_nsec = ns % 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	while (!s->interrupt && !s->stopping) {
		if (ms < 0)
			pthread_cond_wait(&s->wake, &s->lock);
		else if (pthread_cond_timedwait(&s->wake, &s->lock, &until) != 0)
			break;
	}
	pthread_mutex_unlock(&s->lock);
	return check(r);
}

static struct rnode *
node_at(struct run *r, const char *nid)
{
	json_object *i;

	if (!json_object_object_get_ex(r->index, nid, &i))
		return NULL;
	return &r->n[json_object_get_int(i)];
}

static void
sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	static const char hex[] = "0123456789abcdef";

	EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The cache key: class and inputs, links replaced by their source's key. */
static int
signature(struct run *r, struct rnode *n, int depth)
{
	json_object *parts;
	const char *names[64];
	size_t nnames = 0;

	if (n->sig_state == 2)
		return 0;
	if (n->sig_state == 1 || depth > 900)
		return -1;   /* a cycle among unvalidated nodes: Python recurses forever */
	n->sig_state = 1;
	parts = json_object_new_array();
	json_object_array_add(parts, json_object_new_string(node_class_name(n->k)));
	if (n->inputs) {
		json_object_object_foreach(n->inputs, key, val) {
			(void)val;
			if (nnames < 64)
				names[nnames++] = key;
		}
	}
	qsort(names, nnames, sizeof *names, name_cmp);
	for (size_t i = 0; i < nnames; i++) {
		json_object *val = json_object_object_get(n->inputs, names[i]), *pair = json_object_new_array();
		json_object_array_add(pair, json_object_new_string(names[i]));
		if (json_object_is_type(val, json_type_array) && json_object_array_length(val) == 2) {
			json_object *from = json_object_array_get_idx(val, 0), *link = json_object_new_array();
			struct rnode *src = json_object_is_type(from, json_type_string) ?
			    node_at(r, json_object_get_string(from)) : NULL;
			if (src == NULL || signature(r, src, depth + 1) != 0) {
				json_object_put(link);
				json_object_put(pair);
				json_object_put(parts);
				n->sig_state = 0;
				return -1;
			}
			json_object_array_add(link, json_object_new_string(src->sig));
			json_object_array_add(link, json_object_get(json_object_array_get_idx(val, 1)));
			json_object_array_add(pair, link);
		} else {
			json_object_array_add(pair, json_object_get(val));
		}
		json_object_array_add(parts, pair);
	}
	{
		size_t len;
		const char *t = json_object_to_json_string_length(parts, JSON_C_TO_STRING_PLAIN, &len);
		sha256_hex(t, len, n->sig);
	}
	json_object_put(parts);
	n->sig_state = 2;
	return 0;
}

static void
visit(struct run *r, struct rnode *n)
{
	if (n->visited)
		return;
	n->visited = true;
	if (n->inputs) {
		json_object_object_foreach(n->inputs, key, val) {
			(void)key;
			if (json_object_is_type(val, json_type_array) && json_object_array_length(val) == 2 &&
			    json_object_is_type(json_object_array_get_idx(val, 0), json_type_string)) {
				struct rnode *src = node_at(r, json_object_get_string(json_object_array_get_idx(val, 0)));
				if (src)
					visit(r, src);
			}
		}
	}
	r->order[r->norder++] = (size_t)(n - r->n);
}

static const char *
str_input(struct rnode *n, const char *name, const char *dflt)
{
	json_object *v;

	if (n->inputs && json_object_object_get_ex(n->inputs, name, &v) && json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return dflt;
}

static json_object *
raw_input(struct rnode *n, const char *name)
{
	json_object *v = NULL;

	if (n->inputs)
		json_object_object_get_ex(n->inputs, name, &v);
	return v;
}

/* The value a link input carries, or an empty one for a missing link. */
static const struct nval *
linked(struct run *r, struct rnode *n, const char *name)
{
	static const struct nval none = {.kind = "NONE"};
	json_object *v = raw_input(n, name);
	struct rnode *src;
	int64_t slot;

	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 2 ||
	    !json_object_is_type(json_object_array_get_idx(v, 0), json_type_string))
		return &none;
	src = node_at(r, json_object_get_string(json_object_array_get_idx(v, 0)));
	slot = json_object_get_int64(json_object_array_get_idx(v, 1));
	if (src == NULL || slot < -3 || slot > 2)
		return &none;
	if (slot < 0)
		slot += 3;
	return &src->out[slot];
}

static int64_t
int_input(struct rnode *n, const char *name, int64_t dflt)
{
	json_object *v = raw_input(n, name);

	return v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) ?
	    json_object_get_int64(v) : dflt;
}

/* False, with the AttributeError Python raises, when a link input got a
 * plain value (validation lets that through, as ComfyUI's does). */
static bool
need_link(struct run *r, struct rnode *n, const char *name, const char *attr)
{
	json_object *v = raw_input(n, name);
	const char *t;

	if (json_object_is_type(v, json_type_array))
		return true;
	switch (json_object_get_type(v)) {
	case json_type_null: t = "NoneType"; break;
	case json_type_boolean: t = "bool"; break;
	case json_type_int: t = "int"; break;
	case json_type_double: t = "float"; break;
	case json_type_string: t = "str"; break;
	default: t = "dict"; break;
	}
	snprintf(r->err_type, sizeof r->err_type, "AttributeError");
	sb_printf(&r->err_msg, "'%s' object has no attribute '%s'\n", t, attr);
	return false;
}

/* The node's outputs (and, for a run node, its ui): the simulated nodes. */
static int
compute(struct run *r, struct rnode *n, bool side_effects, json_object **ui)
{
	*ui = NULL;
	if (side_effects && ((n->k == NODE_KSAMPLER && !need_link(r, n, "latent_image", "key")) ||
	    (n->k == NODE_VAEDECODE && !need_link(r, n, "samples", "width")) ||
	    ((n->k == NODE_SAVE || n->k == NODE_PREVIEW) && !need_link(r, n, "images", "width"))))
		return -1;
	switch (n->k) {
	case NODE_CKPT:
		for (int i = 0; i < 3; i++) {
			n->out[i].kind = i == 0 ? "MODEL" : i == 1 ? "CLIP" : "VAE";
			n->out[i].ckpt = str_input(n, "ckpt_name", "");
		}
		break;
	case NODE_CLIP:
		n->out[0].kind = "CONDITIONING";
		n->out[0].text = str_input(n, "text", "");
		break;
	case NODE_LATENT:
		n->out[0].kind = "LATENT";
		n->out[0].w = int_input(n, "width", 512);
		n->out[0].h = int_input(n, "height", 512);
		n->out[0].batch = int_input(n, "batch_size", 1);
		break;
	case NODE_KSAMPLER: {
		const struct nval *lat = linked(r, n, "latent_image"), *model = linked(r, n, "model");
		const struct nval *pos = linked(r, n, "positive"), *neg = linked(r, n, "negative");
		json_object *k = json_object_new_array();
		const char *names[] = {"seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"};
		size_t len;
		const char *t;
		json_object_array_add(k, json_object_new_string(model->ckpt ? model->ckpt : ""));
		json_object_array_add(k, json_object_new_string(pos->text ? pos->text : ""));
		json_object_array_add(k, json_object_new_string(neg->text ? neg->text : ""));
		for (size_t i = 0; i < 6; i++)
			json_object_array_add(k, json_object_get(raw_input(n, names[i])));
		json_object_array_add(k, lat->has_key ?
		    json_object_new_string_len((const char *)lat->key, 32) : json_object_new_string(""));
		t = json_object_to_json_string_length(k, JSON_C_TO_STRING_PLAIN, &len);
		n->out[0] = *lat;
		n->out[0].kind = "LATENT";
		EVP_Digest(t, len, n->out[0].key, NULL, EVP_sha256(), NULL);
		n->out[0].has_key = true;
		json_object_put(k);
		break;
	}
	case NODE_VAEDECODE:
		n->out[0] = *linked(r, n, "samples");
		n->out[0].kind = "IMAGE";
		break;
	case NODE_SAVE:
	case NODE_PREVIEW:
		n->out[0] = *linked(r, n, "images");
		if (side_effects) {
			struct save_image img = {n->out[0].w, n->out[0].h, n->out[0].batch, {0}};
			struct save_error err = {{0}, {0}};
			int rc;
			memcpy(img.key, n->out[0].key, 32);
			rc = save_images(r->s, str_input(n, "filename_prefix", "ComfyUI"), n->k == NODE_PREVIEW,
			    &img, r->q->prompt, r->q->extra_data, ui, &err);
			if (rc != 0) {
				snprintf(r->err_type, sizeof r->err_type, "%s", err.type);
				sb_add(&r->err_msg, err.msg.p ? err.msg.p : "");
			}
			free(err.msg.p);
			return rc;
		}
		break;
	}
	return 0;
}

static json_object *
where(struct run *r)
{
	struct rnode *n = &r->n[r->current >= 0 ? (size_t)r->current : r->order[0]];
	json_object *d = json_object_new_object();

	json_object_object_add(d, "prompt_id", json_object_new_string(r->q->prompt_id));
	json_object_object_add(d, "node_id", json_object_new_string(n->nid));
	json_object_object_add(d, "node_type", json_object_new_string(node_class_name(n->k)));
	json_object_object_add(d, "executed", json_object_get(r->executed));
	return d;
}

static void
record_ui(struct run *r, struct rnode *n, json_object *ui)
{
	json_object *m = json_object_new_object();

	json_object_object_add(r->ui_outputs, n->nid, json_object_get(ui));
	json_object_object_add(m, "node_id", json_object_new_string(n->nid));
	json_object_object_add(m, "display_node", json_object_new_string(n->nid));
	json_object_object_add(m, "parent_node", NULL);
	json_object_object_add(m, "real_node_id", json_object_new_string(n->nid));
	json_object_object_add(r->meta, n->nid, m);
	if (r->has_client) {
		json_object *d = json_object_new_object();
		json_object_object_add(d, "node", json_object_new_string(n->nid));
		json_object_object_add(d, "display_node", json_object_new_string(n->nid));
		json_object_object_add(d, "output", json_object_get(ui));
		json_object_object_add(d, "prompt_id", json_object_new_string(r->q->prompt_id));
		emit(r, "executed", d, true);
	}
}

/* The simulated GPU work: run time split into progress steps; faults land here. */
static int
sample(struct run *r, struct rnode *n, int64_t steps, size_t nwork)
{
	double share = (double)r->run_ms / (double)nwork / (double)(steps > 0 ? steps : 1);
	const char *fault = r->fault;
	int rc;

	r->fault = NULL;
	for (int64_t i = 0; i < steps; i++) {
		json_object *d, *nodes, *st;
		if (fault && (strcmp(fault, "fail") == 0 || strcmp(fault, "oom") == 0) && i == steps / 2) {
			bool oom = strcmp(fault, "oom") == 0;
			snprintf(r->err_type, sizeof r->err_type, "%s", oom ? "torch.OutOfMemoryError" : "RuntimeError");
			sb_add(&r->err_msg, oom ? OOM_MSG : "Simulated failure in the sampler (comfyui_sim)\n");
			return EX_ERROR;
		}
		if ((rc = wait_ms(r, share)) != EX_NONE)
			return rc;
		if (fault && strcmp(fault, "hang") == 0 && i == steps / 2 && (rc = wait_ms(r, -1)) != EX_NONE)
			return rc;
		d = json_object_new_object();
		json_object_object_add(d, "value", json_object_new_int64(i + 1));
		json_object_object_add(d, "max", json_object_new_int64(steps));
		json_object_object_add(d, "prompt_id", json_object_new_string(r->q->prompt_id));
		json_object_object_add(d, "node", json_object_new_string(n->nid));
		emit(r, "progress", d, false);
		/* Recent ComfyUI also reports every node's state (WebUIProgressHandler). */
		st = json_object_new_object();
		json_object_object_add(st, "value", json_object_new_int64(i + 1));
		json_object_object_add(st, "max", json_object_new_int64(steps));
		json_object_object_add(st, "state", json_object_new_string("running"));
		json_object_object_add(st, "node_id", json_object_new_string(n->nid));
		json_object_object_add(st, "prompt_id", json_object_new_string(r->q->prompt_id));
		json_object_object_add(st, "display_node_id", json_object_new_string(n->nid));
		json_object_object_add(st, "parent_node_id", NULL);
		json_object_object_add(st, "real_node_id", json_object_new_string(n->nid));
		nodes = json_object_new_object();
		json_object_object_add(nodes, n->nid, st);
		d = json_object_new_object();
		json_object_object_add(d, "prompt_id", json_object_new_string(r->q->prompt_id));
		json_object_object_add(d, "nodes", nodes);
		emit(r, "progress_state", d, false);
	}
	return EX_NONE;
}

static int
run_node(struct run *r, struct rnode *n, json_object *old_cache, size_t nwork)
{
	json_object *ui = NULL;
	int rc;

	if (n->cached) {
		json_object *c = json_object_object_get(old_cache, n->sig);
		compute(r, n, false, &ui);
		json_object_object_add(r->new_cache, n->sig, json_object_get(c));
		if (c)
			record_ui(r, n, c);
		return EX_NONE;
	}
	r->current = (int)(n - r->n);
	if ((rc = check(r)) != EX_NONE)
		return rc;
	if (r->has_client) {
		json_object *d = json_object_new_object();
		pthread_mutex_lock(&r->s->lock);
		snprintf(r->s->last_node, sizeof r->s->last_node, "%s", n->nid);
		pthread_mutex_unlock(&r->s->lock);
		json_object_object_add(d, "node", json_object_new_string(n->nid));
		json_object_object_add(d, "display_node", json_object_new_string(n->nid));
		json_object_object_add(d, "prompt_id", json_object_new_string(r->q->prompt_id));
		emit(r, "executing", d, true);
	}
	if (n->work && (rc = sample(r, n, int_input(n, "steps", 1), nwork)) != EX_NONE)
		return rc;
	if (compute(r, n, true, &ui) != 0)
		return EX_ERROR;
	json_object_object_add(r->new_cache, n->sig, json_object_get(ui));
	if (ui)
		record_ui(r, n, ui);
	json_object_put(ui);
	json_object_array_add(r->executed, json_object_new_string(n->nid));
	return EX_NONE;
}

/* The texts that steer a prompt: the CLIPTextEncode wired to a KSampler's positive. */
static void
steering(struct run *r, struct strbuf *text)
{
	for (size_t i = 0; i < r->nn; i++) {
		const struct nval *pos;
		if (r->n[i].k != NODE_KSAMPLER)
			continue;
		pos = linked(r, &r->n[i], "positive");
		if (pos->text) {
			json_object *v = raw_input(&r->n[i], "positive");
			struct rnode *src = node_at(r, json_object_get_string(json_object_array_get_idx(v, 0)));
			if (src && src->k == NODE_CLIP) {
				if (text->len)
					sb_addc(text, ' ');
				sb_add(text, pos->text);
			}
		}
	}
	if (text->len == 0)
		for (size_t i = 0; i < r->nn; i++)
			if (r->n[i].k == NODE_CLIP) {
				if (i && text->p)
					sb_addc(text, ' ');
				sb_add(text, str_input(&r->n[i], "text", ""));
			}
}

/* Runs one prompt; *entry is its /history entry (new) when RUN_DONE. */
static int
execute(struct sim *s, struct qitem *q, json_object **entry)
{
	struct run r = {.s = s, .q = q, .current = -1};
	json_object *cid, *old_cache = s->cache, *status;
	size_t i, nwork = 0;
	int rc = RUN_SIMERR, ex = EX_NONE;
	bool success = false;
	struct strbuf text = {0};

	if (json_object_object_get_ex(q->extra_data, "client_id", &cid) && cid != NULL) {
		r.has_client = true;
		r.client = json_object_is_type(cid, json_type_string) ? json_object_get_string(cid) : NULL;
	}
	r.nn = (size_t)json_object_object_length(q->prompt);
	r.n = calloc(r.nn ? r.nn : 1, sizeof *r.n);
	r.order = calloc(r.nn ? r.nn : 1, sizeof *r.order);
	r.index = json_object_new_object();
	r.messages = json_object_new_array();
	r.executed = json_object_new_array();
	r.ui_outputs = json_object_new_object();
	r.meta = json_object_new_object();
	r.new_cache = json_object_new_object();
	r.cached_ids = json_object_new_array();
	if (r.n == NULL || r.order == NULL)
		goto out;
	i = 0;
	json_object_object_foreach(q->prompt, nid, node) {
		json_object *ct = json_object_object_get(node, "class_type");
		r.n[i].nid = nid;
		r.n[i].node = node;
		r.n[i].k = node_class(json_object_get_string(ct));
		if (!json_object_object_get_ex(node, "inputs", &r.n[i].inputs) ||
		    !json_object_is_type(r.n[i].inputs, json_type_object))
			r.n[i].inputs = NULL;
		json_object_object_add(r.index, nid, json_object_new_int((int)i));
		i++;
	}
	steering(&r, &text);
	{
		const char *t = text.p ? text.p : "", *m = strstr(t, "SIM_MS=");
		r.run_ms = s->opt.run_ms;
		if (m && m[7] >= '0' && m[7] <= '9')
			r.run_ms = strtol(m + 7, NULL, 10);
		r.fault = strstr(t, "SIM_OOM") ? "oom" : strstr(t, "SIM_FAIL") ? "fail" :
		    strstr(t, "SIM_HANG") ? "hang" : NULL;
	}
	for (i = 0; i < r.nn; i++) {
		if (signature(&r, &r.n[i], 0) != 0) {
			sim_log(s, "simulator error on prompt %s: a link names no node", q->prompt_id);
			goto out;
		}
		if (json_object_object_get_ex(old_cache, r.n[i].sig, NULL)) {
			r.n[i].cached = true;
			json_object_array_add(r.cached_ids, json_object_new_string(r.n[i].nid));
		}
	}
	for (i = 0; i < json_object_array_length(q->outputs); i++) {
		struct rnode *o = node_at(&r, json_object_get_string(json_object_array_get_idx(q->outputs, i)));
		if (o)
			visit(&r, o);
	}
	for (i = 0; i < r.norder; i++)
		if (!r.n[r.order[i]].cached && r.n[r.order[i]].k == NODE_KSAMPLER) {
			r.n[r.order[i]].work = true;
			nwork++;
		}
	for (i = 0; i < r.norder && nwork == 0; i++)
		if (!r.n[r.order[i]].cached) {
			r.n[r.order[i]].work = true;
			nwork++;
		}

	{
		json_object *d = json_object_new_object();
		json_object_object_add(d, "prompt_id", json_object_new_string(q->prompt_id));
		message(&r, "execution_start", d, false);
		d = json_object_new_object();
		json_object_object_add(d, "nodes", json_object_get(r.cached_ids));
		json_object_object_add(d, "prompt_id", json_object_new_string(q->prompt_id));
		message(&r, "execution_cached", d, false);
	}
	for (i = 0; i < r.norder && ex == EX_NONE; i++)
		ex = run_node(&r, &r.n[r.order[i]], old_cache, nwork);
	if (ex == EX_FORGOTTEN) {
		rc = RUN_FORGOTTEN;
		goto out;
	}
	if (ex == EX_NONE) {
		json_object *d = json_object_new_object();
		json_object_object_add(d, "prompt_id", json_object_new_string(q->prompt_id));
		message(&r, "execution_success", d, false);
		success = true;
	} else if (ex == EX_INTERRUPTED) {
		message(&r, "execution_interrupted", where(&r), true);
	} else {
		json_object *d = where(&r), *tb = json_object_new_array(), *ci = json_object_new_object();
		struct rnode *n = &r.n[r.current >= 0 ? (size_t)r.current : r.order[0]];
		if (n->inputs) {
			json_object_object_foreach(n->inputs, k, v) {
				json_object *one = json_object_new_array();
				if (json_object_is_type(v, json_type_array)) {
					char what[64];
					snprintf(what, sizeof what, "<%s object>", linked(&r, n, k)->kind);
					json_object_array_add(one, json_object_new_string(what));
				} else {
					json_object_array_add(one, json_object_get(v));
				}
				json_object_object_add(ci, k, one);
			}
		}
		json_object_array_add(tb, json_object_new_string("  File \"comfysim_run.c\", in execute\n"));
		json_object_object_add(d, "exception_message", json_object_new_string(r.err_msg.p ? r.err_msg.p : ""));
		json_object_object_add(d, "exception_type", json_object_new_string(r.err_type));
		json_object_object_add(d, "traceback", tb);
		json_object_object_add(d, "current_inputs", ci);
		json_object_object_add(d, "current_outputs", json_object_get(r.cached_ids));
		message(&r, "execution_error", d, false);
	}
	if (!s->opt.cache_none) {
		/* The cache keeps this prompt's nodes: old entries it shares, then its own. */
		json_object *next = json_object_new_object();
		for (i = 0; i < r.nn; i++) {
			json_object *v;
			if (json_object_object_get_ex(old_cache, r.n[i].sig, &v))
				json_object_object_add(next, r.n[i].sig, json_object_get(v));
		}
		json_object_object_foreach(r.new_cache, sig, v)
			json_object_object_add(next, sig, json_object_get(v));
		json_object_put(s->cache);
		s->cache = next;
	}
	*entry = json_object_new_object();
	/* q's objects are shared with the HTTP thread's /queue: references under the lock */
	pthread_mutex_lock(&s->lock);
	json_object_object_add(*entry, "prompt", qitem_json(q));
	pthread_mutex_unlock(&s->lock);
	json_object_object_add(*entry, "outputs", json_object_get(r.ui_outputs));
	status = json_object_new_object();
	json_object_object_add(status, "status_str", json_object_new_string(success ? "success" : "error"));
	json_object_object_add(status, "completed", json_object_new_boolean(success));
	json_object_object_add(status, "messages", json_object_get(r.messages));
	json_object_object_add(*entry, "status", status);
	json_object_object_add(*entry, "meta", json_object_get(r.meta));
	rc = RUN_DONE;
out:
	free(text.p);
	free(r.err_msg.p);
	free(r.n);
	free(r.order);
	json_object_put(r.index);
	json_object_put(r.messages);
	json_object_put(r.executed);
	json_object_put(r.ui_outputs);
	json_object_put(r.meta);
	json_object_put(r.new_cache);
	json_object_put(r.cached_ids);
	return rc;
}

static void
finish(struct sim *s, struct qitem *q, json_object *entry)
{
	json_object *st = json_object_object_get(entry, "status"), *msgs, *last, *cid;
	const char *outcome;

	msgs = json_object_object_get(st, "messages");
	last = json_object_array_get_idx(msgs, json_object_array_length(msgs) - 1);
	outcome = json_object_get_boolean(json_object_object_get(st, "completed")) ? "succeeded" :
	    strcmp(json_object_get_string(json_object_array_get_idx(last, 0)), "execution_interrupted") == 0 ?
	    "interrupted" : "failed";
	pthread_mutex_lock(&s->lock);
	s->running = NULL;
	s->last_node[0] = '\0';
	if (json_object_object_length(s->history) > SIM_HISTORY_CAP) {
		struct json_object_iterator it = json_object_iter_begin(s->history);
		char *first = strdup(json_object_iter_peek_name(&it));
		if (first)
			json_object_object_del(s->history, first);
		free(first);
	}
	json_object_object_add(s->history, q->prompt_id, entry);
	pthread_mutex_unlock(&s->lock);
	sim_log(s, "prompt %s %s", q->prompt_id, outcome);
	ws_broadcast_status(s);
	if (json_object_object_get_ex(q->extra_data, "client_id", &cid) && cid != NULL) {
		json_object *d = json_object_new_object();
		json_object_object_add(d, "node", NULL);
		json_object_object_add(d, "prompt_id", json_object_new_string(q->prompt_id));
		if (json_object_is_type(cid, json_type_string))
			ws_send(s, "executing", d, json_object_get_string(cid));
		else
			json_object_put(d);
	}
}

void *
prompt_worker(void *arg)
{
	struct sim *s = arg;

	ws_defer_pokes();
	for (;;) {
		struct qitem *q;
		json_object *entry = NULL;
		int rc;

		ws_flush(s);
		pthread_mutex_lock(&s->lock);
		while (s->nheap == 0 && !s->stopping)
			pthread_cond_wait(&s->work, &s->lock);
		if (s->stopping) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		q = heap_pop(s);
		s->running = q;
		s->interrupt = false;   /* a stale interrupt never hits the next prompt */
		pthread_mutex_unlock(&s->lock);
		ws_broadcast_status(s);
		rc = execute(s, q, &entry);
		if (rc == RUN_DONE) {
			finish(s, q, entry);
		} else {
			pthread_mutex_lock(&s->lock);
			s->running = NULL;
			s->last_node[0] = '\0';
			pthread_mutex_unlock(&s->lock);
		}
		pthread_mutex_lock(&s->lock);
		qitem_free(q);
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}
