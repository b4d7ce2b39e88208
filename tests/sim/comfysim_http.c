/* comfysim_http: the HTTP side on libmicrohttpd. Every ComfyUI route the
 * simulator serves (each also under /api), with the Python simulator's
 * status codes, content types and bodies; bodies are bounded (413), the
 * request log is a line per request with --log only. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "comfysim.h"
#include "comfysim_valid.h"
#include "simhttp.h"

#define CT_JSON "application/json; charset=utf-8"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_BIN "application/octet-stream"
static const char AIOHTTP_500[] = "500 Internal Server Error\n\nServer got itself in trouble";

/* ---- replies ---- */

struct req {
	struct sim_body body;
	int status;
	long long started_us;
	char line[300];             /* `METHOD path` for the request log */
};

static enum MHD_Result
reply(struct MHD_Connection *c, struct req *rq, int status, const void *body, size_t len,
    const char *ctype, const char *h1, const char *v1, const char *h2, const char *v2)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (h1)
		MHD_add_response_header(r, h1, v1);
	if (h2)
		MHD_add_response_header(r, h2, v2);
	rc = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	rq->status = status;
	return rc;
}

static enum MHD_Result
reply_json(struct MHD_Connection *c, struct req *rq, int status, json_object *o)
{
	size_t len;
	const char *t = json_object_to_json_string_length(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	enum MHD_Result rc = reply(c, rq, status, t, len, CT_JSON, NULL, NULL, NULL, NULL);

	json_object_put(o);
	return rc;
}

static enum MHD_Result
reply_empty(struct MHD_Connection *c, struct req *rq, int status)
{
	return reply(c, rq, status, "", 0, CT_BIN, NULL, NULL, NULL, NULL);
}

static enum MHD_Result
reply_500(struct MHD_Connection *c, struct req *rq)
{
	/* what aiohttp answers when ComfyUI's handler throws */
	return reply(c, rq, 500, AIOHTTP_500, sizeof AIOHTTP_500 - 1, CT_TEXT, NULL, NULL, NULL, NULL);
}

/* A query argument; *present tells `?a` (value "") from no `a` at all. */
static const char *
qarg(struct MHD_Connection *c, const char *name)
{
	const char *v = NULL;
	size_t len = 0;

	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v, &len) != MHD_YES)
		return NULL;
	return v ? v : "";
}

static json_object *
parse_body(struct req *rq)
{
	json_tokener *tok = json_tokener_new_ex(64);
	json_object *o = NULL;

	if (tok == NULL || rq->body.len == 0)
		goto out;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, rq->body.data, (int)rq->body.len);
	if (o != NULL && json_tokener_get_error(tok) == json_tokener_success &&
	    tok->char_offset < (int)rq->body.len) {
		/* trailing bytes after the value: not JSON */
		while (tok->char_offset < (int)rq->body.len && strchr(" \t\r\n", rq->body.data[tok->char_offset]))
			tok->char_offset++;
		if (tok->char_offset < (int)rq->body.len) {
			json_object_put(o);
			o = NULL;
		}
	}
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
out:
	if (tok)
		json_tokener_free(tok);
	return o;
}

/* ---- routes ---- */

static enum MHD_Result
r_get_prompt(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *arg)
{
	json_object *o;

	(void)arg;
	pthread_mutex_lock(&s->lock);
	o = sim_queue_info(s);
	pthread_mutex_unlock(&s->lock);
	return reply_json(c, rq, 200, o);
}

static enum MHD_Result
r_post_prompt(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *arg)
{
	json_object *body = parse_body(rq), *r;
	int status;

	(void)arg;
	if (body == NULL)
		return reply_500(c, rq);   /* bad JSON -> 500, as in ComfyUI */
	r = prompt_submit(s, body, &status);
	json_object_put(body);
	return r ? reply_json(c, rq, status, r) : reply_500(c, rq);
}

static enum MHD_Result
r_get_queue(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *arg)
{
	json_object *o = json_object_new_object(), *running = json_object_new_array();
	json_object *pending = json_object_new_array();
	size_t len;
	const char *t;
	enum MHD_Result rc;

	(void)arg;
	json_object_object_add(o, "queue_running", running);
	json_object_object_add(o, "queue_pending", pending);
	pthread_mutex_lock(&s->lock);   /* pending stays in heap order, as ComfyUI returns it */
	if (s->running)
		json_object_array_add(running, qitem_json(s->running));
	for (size_t i = 0; i < s->nheap; i++)
		json_object_array_add(pending, qitem_json(s->heap[i]));
	t = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	rc = reply(c, rq, 200, t, len, CT_JSON, NULL, NULL, NULL, NULL);
	json_object_put(o);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static enum MHD_Result
r_post_queue(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *arg)
{
	json_object *d = parse_body(rq), *v;
	bool changed = false;

	(void)arg;
	if (!json_object_is_type(d, json_type_object) ||
	    (json_object_object_get_ex(d, "delete", &v) && !json_object_is_type(v, json_type_array))) {
		json_object_put(d);
		return reply_500(c, rq);
	}
	pthread_mutex_lock(&s->lock);
	if (json_object_object_get_ex(d, "clear", &v) && json_object_get_boolean(v) &&
	    !(json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 0)) {
		while (s->nheap)
			qitem_free(s->heap[--s->nheap]);
		changed = true;
	}
	if (json_object_object_get_ex(d, "delete", &v)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *id = json_object_array_get_idx(v, i);
			if (!json_object_is_type(id, json_type_string))
				continue;
			for (size_t k = 0; k < s->nheap; k++)
				if (strcmp(s->heap[k]->prompt_id, json_object_get_string(id)) == 0) {
					heap_remove(s, k);   /* like ComfyUI: only the first match goes */
					break;
				}
		}
		changed = true;
	}
	pthread_mutex_unlock(&s->lock);
	json_object_put(d);
	if (changed)
		ws_broadcast_status(s);
	return reply_empty(c, rq, 200);
}

static enum MHD_Result
r_post_interrupt(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *arg)
{
	json_object *d = parse_body(rq), *v = NULL;
	const char *pid = NULL;

	(void)arg;
	if (d && !json_object_is_type(d, json_type_object)) {
		json_object_put(d);
		return reply_500(c, rq);
	}
	if (d && json_object_object_get_ex(d, "prompt_id", &v) && v != NULL &&
	    !(json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 0) &&
	    !(json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v)))
		pid = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
	pthread_mutex_lock(&s->lock);
	/* A prompt_id interrupts only that prompt if it runs; none interrupts whatever runs. */
	if (pid == NULL || (s->running && strcmp(s->running->prompt_id, pid) == 0)) {
		s->interrupt = true;
		pthread_cond_broadcast(&s->wake);
	}
	pthread_mutex_unlock(&s->lock);
	json_object_put(d);
	return reply_empty(c, rq, 200);
}

/* Python's int() of a query value: optional sign, digits (underscores
 * between them), surrounding blanks. */
static bool
py_int(const char *s, long long *out)
{
	long long v = 0;
	bool neg = false, digit = false;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	for (; *s; s++) {
		if (*s >= '0' && *s <= '9') {
			if (v > (LLONG_MAX - 9) / 10)
				return false;
			v = v * 10 + (*s - '0');
			digit = true;
		} else if (*s == '_' && digit && s[1] >= '0' && s[1] <= '9') {
			continue;
		} else {
			break;
		}
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (!digit || *s)
		return false;
	*out = neg ? -v : v;
	return true;
}

static enum MHD_Result
r_get_history(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *arg)
{
	const char *m = qarg(c, "max_items"), *o = qarg(c, "offset");
	long long max_items = -1, offset = -1, i = 0, n;
	json_object *out;
	enum MHD_Result rc;
	size_t len;
	const char *t;

	(void)arg;
	if ((m && !py_int(m, &max_items)) || (o && !py_int(o, &offset)))
		return reply_500(c, rq);   /* int() raised */
	out = json_object_new_object();
	pthread_mutex_lock(&s->lock);
	n = json_object_object_length(s->history);
	if (offset < 0 && m)
		offset = n - max_items;
	json_object_object_foreach(s->history, k, v) {
		if (i++ < offset)
			continue;
		json_object_object_add(out, k, json_object_get(v));
		if (m && json_object_object_length(out) >= max_items)
			break;
	}
	/* encoded under the lock: the worker adds entries meanwhile */
	t = json_object_to_json_string_length(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	rc = reply(c, rq, 200, t, len, CT_JSON, NULL, NULL, NULL, NULL);
	json_object_put(out);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static enum MHD_Result
r_get_history_item(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *id)
{
	json_object *out = json_object_new_object(), *v;
	enum MHD_Result rc;
	size_t len;
	const char *t;

	pthread_mutex_lock(&s->lock);
	if (json_object_object_get_ex(s->history, id, &v))
		json_object_object_add(out, id, json_object_get(v));
	t = json_object_to_json_string_length(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	rc = reply(c, rq, 200, t, len, CT_JSON, NULL, NULL, NULL, NULL);
	json_object_put(out);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static const char *
dir_by_type(struct sim *s, const char *kind)
{
	if (strcmp(kind, "output") == 0)
		return s->output_dir;
	if (strcmp(kind, "input") == 0)
		return s->input_dir;
	if (strcmp(kind, "temp") == 0)
		return s->temp_dir;
	return NULL;
}

/* Lexical absolute path (os.path.abspath). */
static void
abspath(const char *in, char *out, size_t n)
{
	char tmp[8192], *parts[1024], *save = NULL, *tok;
	size_t np = 0, l = 0;

	snprintf(tmp, sizeof tmp, "%s", in);
	for (tok = strtok_r(tmp, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (strcmp(tok, ".") == 0)
			continue;
		if (strcmp(tok, "..") == 0) {
			if (np)
				np--;
			continue;
		}
		if (np < 1024)
			parts[np++] = tok;
	}
	out[0] = '\0';
	for (size_t i = 0; i < np && l < n; i++)
		l += (size_t)snprintf(out + l, n - l, "/%s", parts[i]);
	if (np == 0)
		snprintf(out, n, "/");
}

static const char *
mime_of(const char *name)
{
	static const struct { const char *ext, *type; } types[] = {
		{".png", "image/png"}, {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"}, {".webp", "image/webp"},
		{".gif", "image/gif"}, {".json", "application/json"}, {".txt", "text/plain"},
		{".mp4", "video/mp4"}, {".webm", "video/webm"}, {".wav", "audio/x-wav"}, {".flac", "audio/flac"},
	};
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
		if (strcasecmp(dot, types[i].ext) == 0)
			return types[i].type;
	return CT_BIN;
}

static enum MHD_Result
r_get_view(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *arg)
{
	const char *q = qarg(c, "filename"), *type = qarg(c, "type"), *sub = qarg(c, "subfolder");
	const char *base, *fname;
	char name[4096], full[8192], absfull[8192], basebuf[8192], path[12288], disp[4200];
	static const char *kinds[] = {"output", "input", "temp"};
	FILE *f = NULL;
	char *data = NULL;
	long size;
	struct stat st;
	enum MHD_Result rc;

	(void)arg;
	if (q == NULL)
		return reply_empty(c, rq, 404);
	snprintf(name, sizeof name, "%s", q);
	base = dir_by_type(s, type ? type : "output");
	for (size_t i = 0; i < 3; i++) {   /* 'x.png [output]' names its folder */
		size_t nl = strlen(name), kl = strlen(kinds[i]);
		if (nl >= kl + 2 && name[nl - 1] == ']' && name[nl - kl - 2] == '[' &&
		    strncmp(name + nl - kl - 1, kinds[i], kl) == 0) {
			name[nl >= kl + 3 ? nl - kl - 3 : 0] = '\0';
			base = dir_by_type(s, kinds[i]);
			break;
		}
	}
	if (name[0] == '\0' || name[0] == '/' || strstr(name, "..") || base == NULL)
		return reply_empty(c, rq, 400);
	snprintf(basebuf, sizeof basebuf, "%s", base);
	if (sub) {
		if (sub[0] == '/')
			snprintf(full, sizeof full, "%s", sub);   /* os.path.join drops base */
		else
			snprintf(full, sizeof full, "%s/%s", base, sub);
		abspath(full, absfull, sizeof absfull);
		if (strncmp(absfull, base, strlen(base)) != 0 ||
		    (absfull[strlen(base)] != '\0' && absfull[strlen(base)] != '/'))
			return reply_empty(c, rq, 403);
		snprintf(basebuf, sizeof basebuf, "%s", full);
	}
	fname = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	snprintf(path, sizeof path, "%s/%s", basebuf, fname);
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (f = fopen(path, "rb")) == NULL)
		return reply_empty(c, rq, 404);
	size = st.st_size;
	data = malloc(size ? (size_t)size : 1);
	if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
		fclose(f);
		free(data);
		return reply_500(c, rq);
	}
	fclose(f);
	snprintf(disp, sizeof disp, "filename=\"%s\"", fname);
	rc = reply(c, rq, 200, data, (size_t)size, mime_of(fname), "Content-Disposition", disp,
	    "X-Content-Type-Options", "nosniff");
	free(data);
	return rc;
}

static enum MHD_Result
r_get_system_stats(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *arg)
{
	long page = sysconf(_SC_PAGESIZE);
	int64_t vram_total = 85899345920LL, vram_free;
	json_object *o = json_object_new_object(), *sys = json_object_new_object(), *dev = json_object_new_object();
	json_object *devs = json_object_new_array(), *argv = json_object_new_array();
	char port[16];
	bool busy;

	(void)arg;
	pthread_mutex_lock(&s->lock);
	busy = s->running != NULL;
	pthread_mutex_unlock(&s->lock);
	vram_free = vram_total - (busy ? 21474836480LL : 2147483648LL);
	snprintf(port, sizeof port, "%d", s->port);
	json_object_object_add(sys, "os", json_object_new_string("linux"));
	json_object_object_add(sys, "ram_total", json_object_new_int64((int64_t)sysconf(_SC_PHYS_PAGES) * page));
	json_object_object_add(sys, "ram_free", json_object_new_int64((int64_t)sysconf(_SC_AVPHYS_PAGES) * page));
	json_object_object_add(sys, "comfyui_version", json_object_new_string("0.3.66"));
	json_object_object_add(sys, "required_frontend_version", json_object_new_string("1.28.8"));
	json_object_object_add(sys, "python_version", json_object_new_string("3.11.2 (comfysim, C)"));
	json_object_object_add(sys, "pytorch_version", json_object_new_string("2.8.0+cu128"));
	json_object_object_add(sys, "embedded_python", json_object_new_boolean(false));
	json_object_array_add(argv, json_object_new_string("main.py"));
	json_object_array_add(argv, json_object_new_string("--port"));
	json_object_array_add(argv, json_object_new_string(port));
	json_object_object_add(sys, "argv", argv);
	json_object_object_add(dev, "name", json_object_new_string("cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync"));
	json_object_object_add(dev, "type", json_object_new_string("cuda"));
	json_object_object_add(dev, "index", json_object_new_int(0));
	json_object_object_add(dev, "vram_total", json_object_new_int64(vram_total));
	json_object_object_add(dev, "vram_free", json_object_new_int64(vram_free));
	json_object_object_add(dev, "torch_vram_total", json_object_new_int64(vram_total - vram_free));
	json_object_object_add(dev, "torch_vram_free", json_object_new_int64(1073741824LL));
	json_object_array_add(devs, dev);
	json_object_object_add(o, "system", sys);
	json_object_object_add(o, "devices", devs);
	return reply_json(c, rq, 200, o);
}

/* ---- /ws ---- */

struct upgrade {
	struct sim *s;
	char sid[];
};

static void
on_upgrade(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra, size_t extra_len,
    MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct upgrade *u = cls;

	(void)c;
	(void)req_cls;
	ws_adopt(u->s->ws, sock, urh, extra, extra_len, u->sid);
	free(u);
}

static enum MHD_Result
r_get_ws(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *arg)
{
	static const char refuse[] = "No WebSocket UPGRADE hdr: None\n Can \"Upgrade\" only to \"WebSocket\".";
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
	const char *up = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");
	const char *cid = qarg(c, "clientId");
	unsigned char md[20];
	char accept[64], *buf;
	struct upgrade *u;
	struct MHD_Response *r;
	enum MHD_Result rc;
	size_t klen;

	(void)arg;
	if (up == NULL || strcasecmp(up, "websocket") != 0 || key == NULL || key[0] == '\0')
		return reply(c, rq, 400, refuse, sizeof refuse - 1, CT_TEXT, NULL, NULL, NULL, NULL);
	klen = strlen(key);
	if ((buf = malloc(klen + sizeof guid)) == NULL)
		return MHD_NO;
	memcpy(buf, key, klen);
	memcpy(buf + klen, guid, sizeof guid);
	EVP_Digest(buf, klen + sizeof guid - 1, md, NULL, EVP_sha1(), NULL);
	free(buf);
	EVP_EncodeBlock((unsigned char *)accept, md, 20);
	if (cid == NULL || cid[0] == '\0') {   /* no clientId: a fresh uuid4().hex */
		unsigned char rnd[16];
		static const char hex[] = "0123456789abcdef";
		char *p;
		u = malloc(sizeof *u + 33);
		if (u == NULL)
			return MHD_NO;
		if (RAND_bytes(rnd, sizeof rnd) != 1)
			memset(rnd, 0x5a, sizeof rnd);
		rnd[6] = (rnd[6] & 0x0f) | 0x40;
		rnd[8] = (rnd[8] & 0x3f) | 0x80;
		for (p = u->sid; p < u->sid + 32; p += 2) {
			p[0] = hex[rnd[(p - u->sid) / 2] >> 4];
			p[1] = hex[rnd[(p - u->sid) / 2] & 15];
		}
		u->sid[32] = '\0';
	} else {
		u = malloc(sizeof *u + strlen(cid) + 1);
		if (u == NULL)
			return MHD_NO;
		strcpy(u->sid, cid);
	}
	u->s = s;
	r = MHD_create_response_for_upgrade(on_upgrade, u);
	if (r == NULL) {
		free(u);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
	MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
	rc = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
	MHD_destroy_response(r);
	if (rc != MHD_YES)
		free(u);
	rq->status = 101;
	return rc;
}

/* ---- routing ---- */

typedef enum MHD_Result (*route_fn)(struct sim *, struct MHD_Connection *, struct req *, const char *);

static const struct route {
	const char *path;
	const char *allow;         /* the Allow header of a 405 */
	route_fn get, post;
} routes[] = {
	{"/prompt", "GET,POST", r_get_prompt, r_post_prompt},
	{"/queue", "GET,POST", r_get_queue, r_post_queue},
	{"/interrupt", "POST", NULL, r_post_interrupt},
	{"/history", "GET", r_get_history, NULL},
	{"/history/", "GET", r_get_history_item, NULL},
	{"/view", "GET", r_get_view, NULL},
	{"/system_stats", "GET", r_get_system_stats, NULL},
	{"/ws", "GET", r_get_ws, NULL},
};

static enum MHD_Result
route(struct sim *s, struct MHD_Connection *c, struct req *rq, const char *method, const char *path)
{
	static const char not_found[] = "404: Not Found", not_allowed[] = "405: Method Not Allowed";
	const struct route *rt = NULL;
	const char *arg = NULL;
	size_t i, n = sizeof routes / sizeof routes[0];

	if (strncmp(path, "/api/", 5) == 0)
		path += 4;
	for (i = 0; i < n && rt == NULL; i++)
		if (strcmp(routes[i].path, path) == 0)
			rt = &routes[i];
	if (rt == NULL) {   /* "/history/<id>": a prefix route with something after it */
		const char *slash = strchr(path + 1, '/');
		size_t plen = slash ? (size_t)(slash - path) + 1 : 0;
		for (i = 0; plen && i < n && rt == NULL; i++)
			if (strlen(routes[i].path) == plen && strncmp(routes[i].path, path, plen) == 0 &&
			    path[plen] != '\0') {
				rt = &routes[i];
				arg = path + plen;
			}
	}
	if (rt == NULL)
		return reply(c, rq, 404, not_found, sizeof not_found - 1, CT_TEXT, NULL, NULL, NULL, NULL);
	if (strcmp(method, "GET") == 0 && rt->get)
		return rt->get(s, c, rq, arg);
	if (strcmp(method, "POST") == 0 && rt->post)
		return rt->post(s, c, rq, arg);
	return reply(c, rq, 405, not_allowed, sizeof not_allowed - 1, CT_TEXT, "Allow", rt->allow, NULL, NULL);
}

static long long
now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
    const char *upload, size_t *upload_size, void **req_cls)
{
	struct sim *s = cls;
	struct req *rq = *req_cls;

	(void)version;
	if (rq == NULL) {
		if ((rq = calloc(1, sizeof *rq)) == NULL)
			return MHD_NO;
		rq->started_us = now_us();
		snprintf(rq->line, sizeof rq->line, "%s %s", method, url);
		*req_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {   /* the body arrives in pieces; bounded */
		size_t n = *upload_size;
		*upload_size = 0;
		return sim_body_add(&rq->body, upload, n, SIM_MAX_BODY) ? MHD_YES : MHD_NO;
	}
	if (rq->body.too_big) {
		static const char msg[] = "413: Request Entity Too Large";
		return reply(c, rq, 413, msg, sizeof msg - 1, CT_TEXT, NULL, NULL, NULL, NULL);
	}
	if (s->opt.delay_ms > 0)   /* each connection has its own thread in this mode */
		usleep((useconds_t)(s->opt.delay_ms * 1000));
	return route(s, c, rq, method, url);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
	struct sim *s = cls;
	struct req *rq = *req_cls;

	(void)toe;
	if (rq == NULL)
		return;
	if (s->log_requests) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		char ip[INET6_ADDRSTRLEN] = "?";
		if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr,
			    ip, sizeof ip);
		sim_log(s, "%s \"%s\" %d %.1fms", ip, rq->line, rq->status, (double)(now_us() - rq->started_us) / 1000);
	}
	sim_body_free(&rq->body);
	free(rq);
	*req_cls = NULL;
}

struct MHD_Daemon *
http_start(struct sim *s, const struct sockaddr_in *addr)
{
	unsigned flags;

	/* One polling thread (epoll) keeps the CPU per request small; --delay-ms
	 * sleeps in the request, so then each connection gets its own thread. */
	flags = MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG |
	    (s->opt.delay_ms > 0 ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD :
	     MHD_USE_EPOLL_INTERNAL_THREAD);
	return MHD_start_daemon(flags, (uint16_t)s->opt.port, NULL, NULL, on_request, s,
	    MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_NOTIFY_CONNECTION, sim_on_connection, s,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)256,
	    MHD_OPTION_END);
}
