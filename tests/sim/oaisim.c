/* oaisim: tests/sim/openai_sim.py's OpenAI-compatible server (llama.cpp's
 * or vLLM's API) in C, for the dispatch benchmark.
 *
 * openai_sim.py is THE simulator of the tests; this one answers the same
 * routes with the same JSON shapes, status codes, steering words
 * (SIM_TOKENS=, SIM_TOKEN_MS=, SIM_MS=, SIM_FAIL, SIM_HANG, SIM_400,
 * SIM_503), knobs (/sim/control) and counters (/sim/stats) at a small
 * fraction of the CPU per request: the Python server's own cost capped
 * `bench/dispatch.py drain --openai`. Answers are deterministic per request
 * body, as the Python one's are, but not the same words.
 * tests/sim/test_oaisim.py holds the two to the same wire.
 *
 * libmicrohttpd runs one thread per connection, so a reply may sleep out
 * its token pacing, or hang until its client leaves, without holding up
 * the others. Shared state (knobs, counters, url-format images) lives in
 * one struct oai under one mutex. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "comfysim.h"            /* png_make */
#include "simhttp.h"

#define MAX_BODY (32u << 20)     /* openai_sim.py's MAX_BODY */
#define MAX_N 10                 /* images per request */
#define PNG_MAX_SIDE 256
#define TOKENS_MAX (1 << 20)     /* an answer's length, whatever is asked */
#define FILES_MAX 1024           /* url-format images kept, the newest */
#define HANG_MAX_S 3600
#define STREAM_BLOCK 16384
#define ID_HEX 24                /* chatcmpl-<hex> */
#define REQUEST_ID_MAX 128
#define SERVER_ERROR_MSG "The server had an error while processing your request. Sorry about that!"
#define OVERLOADED_MSG "The server is overloaded or not ready yet."

static const char *const WORDS[] = {
	"the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
	"seven", "wizards", "quietly", "brew", "tea", "under", "amber", "skies", "and",
	"curious", "robots", "count", "every", "falling", "star",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])
static const char *const SIZES[] = { "256x256", "512x512", "1024x1024", "1024x1792", "1792x1024" };
static const char *const ROLES[] = { "system", "developer", "user", "assistant", "tool", "function" };

struct knobs {
	int token_ms, tokens, run_ms, fail_next, http_500_next, http_503_next, delay_ms;
	bool hang, loading;
};

struct image_file {
	char name[2 * 16 + 5];       /* <32 hex>.png */
	unsigned char *png;          /* owned */
	size_t len;
};

struct oai {
	pthread_mutex_t lock;        /* everything below that changes */
	struct knobs k;
	json_object *stats;
	struct image_file files[FILES_MAX];
	size_t next_file;
	pthread_mutex_t png_lock;    /* png_make keeps one deflate stream */

	const char *name;
	const char *host;
	char **models;
	size_t nmodels;
	const char *api_key;
	FILE *log;
	long long created;
	unsigned port;
};

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t crash_after_reply;

/* ---- small helpers ---- */

static long long
mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void
sleep_ms(long long ms)
{
	struct timespec t = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (ms > 0 && nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static void
sim_logf(struct oai *s, const char *fmt, ...)
{
	char stamp[16];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
	pthread_mutex_lock(&s->lock);
	fprintf(s->log, "%s %s ", stamp, s->name);
	va_start(ap, fmt);
	vfprintf(s->log, fmt, ap);
	va_end(ap);
	fputc('\n', s->log);
	fflush(s->log);
	pthread_mutex_unlock(&s->lock);
}

static void
random_hex(char *out, size_t nhex)
{
	unsigned char b[64];
	size_t n = (nhex + 1) / 2;

	if (n > sizeof b || getrandom(b, n, 0) != (ssize_t)n)
		memset(b, 0, sizeof b);
	for (size_t i = 0; i < nhex; i++)
		out[i] = "0123456789abcdef"[(b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	out[nhex] = '\0';
}

/* `\bNAME=(\d+)` in text, as openai_sim.py's marker(): the number, or -1. */
static long
marker(const char *text, const char *name)
{
	size_t nl = strlen(name);

	for (const char *p = strstr(text, name); p != NULL; p = strstr(p + 1, name)) {
		long v = 0;
		const char *d = p + nl;

		if (p > text && (p[-1] == '_' || (p[-1] >= '0' && p[-1] <= '9') ||
		    ((p[-1] | 32) >= 'a' && (p[-1] | 32) <= 'z')))
			continue;
		if (*d != '=' || d[1] < '0' || d[1] > '9')
			continue;
		for (d++; *d >= '0' && *d <= '9'; d++)
			v = v < 100000000L ? v * 10 + (*d - '0') : v;
		return v;
	}
	return -1;
}

/* Python's truthiness of a JSON value. */
static bool
truthy(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return false;
	case json_type_object:
		return json_object_object_length(v) > 0;
	case json_type_array:
		return json_object_array_length(v) > 0;
	default:
		return json_object_get_boolean(v);
	}
}

static bool
is_int(json_object *v)
{
	return v != NULL && json_object_is_type(v, json_type_int);
}

/* ---- counters (/sim/stats) ---- */

static json_object *
stats_new(void)
{
	static const char *const counters[] = {
		"chat_completions", "streams", "images", "completed", "aborted", "failed",
		"in_flight", "http_500_served", "http_503_served", "unauthorized", "connections",
	};
	json_object *o = json_object_new_object();

	json_object_object_add(o, "requests", json_object_new_object());
	json_object_object_add(o, "request_ids", json_object_new_object());
	for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
		json_object_object_add(o, counters[i], json_object_new_int(0));
	json_object_object_add(o, "image_inputs", json_object_new_array());
	json_object_object_add(o, "errors", json_object_new_object());
	return o;
}

/* stats[key] += n, or stats[key][sub] += n. */
static void
count(struct oai *s, const char *key, const char *sub, int n)
{
	json_object *v;

	pthread_mutex_lock(&s->lock);
	if (json_object_object_get_ex(s->stats, key, &v)) {
		if (sub == NULL) {
			json_object_int_inc(v, n);
		} else {
			json_object *c;

			if (json_object_object_get_ex(v, sub, &c))
				json_object_int_inc(c, n);
			else
				json_object_object_add(v, sub, json_object_new_int(n));
		}
	}
	pthread_mutex_unlock(&s->lock);
}

/* TCP connections accepted: a client that keeps its connections alive
 * makes one per request it has in flight at once, not one per request. */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
    enum MHD_ConnectionNotificationCode code)
{
	sim_on_connection(cls, c, socket_ctx, code);
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		count(cls, "connections", NULL, 1);
}

/* Use up one of a counted knob; true if there was one. */
static bool
take(struct oai *s, int *knob)
{
	bool had;

	pthread_mutex_lock(&s->lock);
	if ((had = *knob > 0))
		(*knob)--;
	pthread_mutex_unlock(&s->lock);
	return had;
}

static struct knobs
knobs_now(struct oai *s)
{
	struct knobs k;

	pthread_mutex_lock(&s->lock);
	k = s->k;
	pthread_mutex_unlock(&s->lock);
	return k;
}

static json_object *
knobs_json(const struct knobs *k)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "token_ms", json_object_new_int(k->token_ms));
	json_object_object_add(o, "tokens", json_object_new_int(k->tokens));
	json_object_object_add(o, "run_ms", json_object_new_int(k->run_ms));
	json_object_object_add(o, "fail_next", json_object_new_int(k->fail_next));
	json_object_object_add(o, "http_500_next", json_object_new_int(k->http_500_next));
	json_object_object_add(o, "http_503_next", json_object_new_int(k->http_503_next));
	json_object_object_add(o, "hang", json_object_new_boolean(k->hang));
	json_object_object_add(o, "delay_ms", json_object_new_int(k->delay_ms));
	json_object_object_add(o, "loading", json_object_new_boolean(k->loading));
	return o;
}

/* ---- requests and replies ---- */

struct req {
	struct sim_body body;
	int status;
	long long t0;
	char method[16];
	char path[512];
};

/* One request being answered. */
struct ctx {
	struct oai *s;
	struct MHD_Connection *c;
	struct req *rq;
};

/* An error in OpenAI's shape: {"error": {message, type, param, code}}. */
struct api_error {
	int status;
	char message[512];
	const char *type;
	char param[64];              /* "": null */
	json_object *code;           /* NULL: null; owned */
};

static void
api_error_set(struct api_error *e, int status, const char *type, const char *param,
    json_object *code, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->type = type ? type : "invalid_request_error";
	snprintf(e->param, sizeof e->param, "%s", param ? param : "");
	json_object_put(e->code);
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
}

static enum MHD_Result
reply(struct ctx *x, int status, const void *body, size_t len, const char *ctype)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	const char *rid = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "X-Request-Id");
	enum MHD_Result rc;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_SERVER, "uvicorn");
	if (rid != NULL && *rid != '\0') {
		char cut[REQUEST_ID_MAX + 1];

		snprintf(cut, sizeof cut, "%s", rid);
		MHD_add_response_header(r, "X-Request-Id", cut);
	}
	rc = MHD_queue_response(x->c, (unsigned)status, r);
	MHD_destroy_response(r);
	x->rq->status = status;
	return rc;
}

/* Replies with o and releases it. */
static enum MHD_Result
reply_json(struct ctx *x, int status, json_object *o)
{
	size_t len;
	const char *t = json_object_to_json_string_length(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	enum MHD_Result rc = reply(x, status, t, len, "application/json");

	json_object_put(o);
	return rc;
}

static json_object *
error_body(const struct api_error *e)
{
	json_object *o = json_object_new_object(), *err = json_object_new_object();

	json_object_object_add(err, "message", json_object_new_string(e->message));
	json_object_object_add(err, "type", json_object_new_string(e->type));
	json_object_object_add(err, "param", e->param[0] ? json_object_new_string(e->param) : NULL);
	json_object_object_add(err, "code", json_object_get(e->code));
	json_object_object_add(o, "error", err);
	return o;
}

static enum MHD_Result
reply_error(struct ctx *x, struct api_error *e)
{
	char status[8];
	enum MHD_Result rc;

	snprintf(status, sizeof status, "%d", e->status);
	count(x->s, "errors", status, 1);
	rc = reply_json(x, e->status, error_body(e));
	json_object_put(e->code);
	e->code = NULL;
	return rc;
}

/* The request body as a JSON object, or false with e set. */
static bool
parse_body(const struct req *rq, json_object **out, struct api_error *e)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o = NULL;
	size_t end;

	*out = NULL;
	if (tok == NULL)
		return false;
	if (rq->body.len > 0)
		o = json_tokener_parse_ex(tok, rq->body.data, (int)rq->body.len);
	end = json_tokener_get_parse_end(tok);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    strspn(rq->body.data + end, " \t\r\n") != rq->body.len - end) {
		json_object_put(o);
		json_tokener_free(tok);
		api_error_set(e, 400, NULL, NULL, NULL, "We could not parse the JSON body of your "
		    "request. (HINT: This likely means you aren't using your HTTP library correctly.)");
		return false;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		api_error_set(e, 400, NULL, NULL, NULL, "The request body must be a JSON object.");
		return false;
	}
	*out = o;
	return true;
}

/* Blocks until the client of fd goes away, the server stops, or an hour
 * passes, and counts the request as aborted. */
static void
wait_fd_gone(struct oai *s, int fd)
{
	long long deadline = mono_ms() + HANG_MAX_S * 1000LL;

	while (fd >= 0 && !stopping && mono_ms() < deadline) {
		struct pollfd p = { fd, POLLIN, 0 };
		char b;
		ssize_t n;

		if (poll(&p, 1, 200) <= 0)
			continue;
		n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (n > 0)
			sleep_ms(200);
	}
	count(s, "aborted", NULL, 1);
}

/* Blocks until the client goes away (or the server stops, or an hour):
 * what SIM_HANG and the hang knob do. */
static void
wait_gone(struct ctx *x)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(x->c,
	    MHD_CONNECTION_INFO_CONNECTION_FD);

	wait_fd_gone(x->s, ci ? ci->connect_fd : -1);
}

/* ---- the model ---- */

/* The model a request names (NULL: the first), or false with e set. */
static bool
check_model(struct oai *s, json_object *req, const char **model, struct api_error *e)
{
	json_object *m;

	*model = s->models[0];       /* llama.cpp serves its one model whatever is asked */
	if (!json_object_object_get_ex(req, "model", &m) || m == NULL)
		return true;
	if (!json_object_is_type(m, json_type_string)) {
		api_error_set(e, 400, NULL, "model", NULL, "'model' must be a string");
		return false;
	}
	for (size_t i = 0; i < s->nmodels; i++)
		if (strcmp(s->models[i], json_object_get_string(m)) == 0) {
			*model = s->models[i];
			return true;
		}
	api_error_set(e, 404, NULL, NULL, json_object_new_string("model_not_found"),
	    "The model `%s` does not exist or you do not have access to it.",
	    json_object_get_string(m));
	return false;
}

/* A message's content as text: a string, or the text parts of a list. */
static void
message_text(json_object *content, char **out)
{
	size_t n = 0;
	char *t = NULL;

	free(*out);
	*out = NULL;
	if (json_object_is_type(content, json_type_string)) {
		*out = strdup(json_object_get_string(content));
		return;
	}
	if (json_object_is_type(content, json_type_array)) {
		size_t len = json_object_array_length(content);

		for (size_t i = 0; i < len; i++) {
			json_object *p = json_object_array_get_idx(content, i), *ty, *tx;
			const char *piece;
			char *grown;

			if (!json_object_is_type(p, json_type_object) ||
			    !json_object_object_get_ex(p, "type", &ty) ||
			    strcmp(json_object_get_string(ty), "text") != 0)
				continue;
			piece = json_object_object_get_ex(p, "text", &tx) ? json_object_get_string(tx) : "";
			if ((grown = realloc(t, n + strlen(piece) + 2)) == NULL)
				break;
			t = grown;
			if (n > 0)
				t[n++] = ' ';
			memcpy(t + n, piece, strlen(piece) + 1);
			n += strlen(piece);
		}
	}
	*out = t ? t : strdup("");
}

/* What a chat request asks for and how it is answered. */
struct plan {
	const char *model;
	bool stream, fail, hang, bad, busy, include_usage;
	int ntokens, token_ms, prompt_tokens;
	const char *finish;
	char *text;                  /* the whole answer; owned */
	size_t *ends;                /* token i is text[ends[i-1]..ends[i]); owned */
};

static void
plan_free(struct plan *p)
{
	free(p->text);
	free(p->ends);
}

/* The answer's words, from the SHA-256 of the messages as sent: the same
 * request body gives the same text. */
static bool
plan_tokens(struct plan *p, const char *msgs, size_t msgs_len)
{
	unsigned char seed[32], block[32];
	size_t cap = (size_t)p->ntokens * 9 + 1, n = 0;

	if ((p->text = malloc(cap)) == NULL ||
	    (p->ends = malloc(((size_t)p->ntokens + 1) * sizeof *p->ends)) == NULL)
		return false;
	EVP_Digest(msgs, msgs_len, seed, NULL, EVP_sha256(), NULL);
	for (int i = 0; i < p->ntokens; i++) {
		const char *w;

		if (i % 16 == 0) {       /* 16 words of 2 bytes per block */
			unsigned char in[36];

			memcpy(in, seed, 32);
			memcpy(in + 32, &i, 4);
			EVP_Digest(in, sizeof in, block, NULL, EVP_sha256(), NULL);
		}
		w = WORDS[((block[2 * (i % 16)] << 8) | block[2 * (i % 16) + 1]) % NWORDS];
		n += (size_t)snprintf(p->text + n, cap - n, "%s%s", i ? " " : "", w);
		p->ends[i] = n;
	}
	p->text[n] = '\0';
	return true;
}

/* Validate a chat request and plan its answer, as openai_sim.py's
 * chat_plan(); false with e set when it is refused. */
static bool
chat_plan(struct oai *s, json_object *req, struct plan *p, struct api_error *e)
{
	static const char *const caps[] = { "max_completion_tokens", "max_tokens" };
	json_object *msgs, *v, *opts;
	struct knobs k = knobs_now(s);
	char *last = NULL;
	const char *mtext;
	size_t nmsgs, mlen;
	long want, cap = -1, ms;

	memset(p, 0, sizeof *p);
	if (!json_object_object_get_ex(req, "messages", &msgs) ||
	    !json_object_is_type(msgs, json_type_array) || json_object_array_length(msgs) == 0) {
		api_error_set(e, 400, NULL, "messages", NULL, "'messages' must be a non-empty array");
		return false;
	}
	nmsgs = json_object_array_length(msgs);
	for (size_t i = 0; i < nmsgs; i++) {
		json_object *m = json_object_array_get_idx(msgs, i), *role, *content;
		char param[64];
		bool known = false;

		snprintf(param, sizeof param, "messages[%zu].role", i);
		if (json_object_is_type(m, json_type_object) &&
		    json_object_object_get_ex(m, "role", &role) && json_object_is_type(role, json_type_string))
			for (size_t r = 0; r < sizeof ROLES / sizeof ROLES[0]; r++)
				known = known || strcmp(ROLES[r], json_object_get_string(role)) == 0;
		if (!known) {
			api_error_set(e, 400, NULL, param, NULL, "Invalid value for '%s'", param);
			goto refused;
		}
		snprintf(param, sizeof param, "messages[%zu].content", i);
		if (!json_object_object_get_ex(m, "content", &content) &&
		    strcmp(json_object_get_string(role), "assistant") != 0) {
			api_error_set(e, 400, NULL, param,
			    json_object_new_string("missing_required_parameter"),
			    "Missing required parameter: '%s'", param);
			goto refused;
		}
		if (strcmp(json_object_get_string(role), "user") == 0)
			message_text(content, &last);
	}
	if (!check_model(s, req, &p->model, e))
		goto refused;
	for (size_t i = 0; i < 2; i++) {
		if (!json_object_object_get_ex(req, caps[i], &v) || v == NULL)
			continue;
		if (!is_int(v) || json_object_get_int64(v) < 1) {
			api_error_set(e, 400, NULL, caps[i], json_object_new_string("integer_below_min_value"),
			    "Invalid '%s': must be a positive integer", caps[i]);
			goto refused;
		}
		if (cap < 0 || json_object_get_int64(v) < cap)
			cap = json_object_get_int64(v) > TOKENS_MAX ? TOKENS_MAX : (long)json_object_get_int64(v);
	}
	if (json_object_object_get_ex(req, "stream", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			api_error_set(e, 400, NULL, "stream", NULL, "Invalid type for 'stream': expected a boolean");
			goto refused;
		}
		p->stream = json_object_get_boolean(v);
	}
	if (last == NULL)
		last = strdup("");
	if (last == NULL)
		goto refused;
	want = marker(last, "SIM_TOKENS");
	if (want < 0)
		want = k.tokens;
	if (want > TOKENS_MAX)
		want = TOKENS_MAX;
	p->ntokens = (int)(cap >= 0 && cap < want ? cap : want);
	p->finish = cap >= 0 && want > cap ? "length" : "stop";
	ms = marker(last, "SIM_TOKEN_MS");
	p->token_ms = ms < 0 ? k.token_ms : (int)ms;
	p->fail = strstr(last, "SIM_FAIL") != NULL;
	p->hang = strstr(last, "SIM_HANG") != NULL || k.hang;
	p->bad = strstr(last, "SIM_400") != NULL;
	p->busy = strstr(last, "SIM_503") != NULL;
	p->include_usage = json_object_object_get_ex(req, "stream_options", &opts) &&
	    json_object_is_type(opts, json_type_object) &&
	    json_object_object_get_ex(opts, "include_usage", &v) && truthy(v);
	mtext = json_object_to_json_string_length(msgs, JSON_C_TO_STRING_SPACED, &mlen);
	p->prompt_tokens = mlen / 4 > 1 ? (int)(mlen / 4) : 1;
	if (!plan_tokens(p, mtext, mlen)) {
		api_error_set(e, 500, "server_error", NULL, NULL, SERVER_ERROR_MSG);
		goto refused;
	}
	free(last);
	return true;
refused:
	free(last);
	plan_free(p);
	return false;
}

static json_object *
usage(const struct plan *p, int n)
{
	json_object *u = json_object_new_object();

	json_object_object_add(u, "prompt_tokens", json_object_new_int(p->prompt_tokens));
	json_object_object_add(u, "completion_tokens", json_object_new_int(n));
	json_object_object_add(u, "total_tokens", json_object_new_int(p->prompt_tokens + n));
	return u;
}

/* SHA-256 of every data: URL image in the messages (a vision request), kept
 * in stats.image_inputs (the last 100); a malformed one is refused. */
static bool
note_image_inputs(struct oai *s, json_object *req, struct api_error *e)
{
	json_object *msgs;

	if (!json_object_object_get_ex(req, "messages", &msgs) ||
	    !json_object_is_type(msgs, json_type_array))
		return true;
	for (size_t i = 0; i < json_object_array_length(msgs); i++) {
		json_object *m = json_object_array_get_idx(msgs, i), *parts;

		if (!json_object_is_type(m, json_type_object) ||
		    !json_object_object_get_ex(m, "content", &parts) ||
		    !json_object_is_type(parts, json_type_array))
			continue;
		for (size_t j = 0; j < json_object_array_length(parts); j++) {
			json_object *p = json_object_array_get_idx(parts, j), *ty, *iu, *url, *seen;
			const char *u, *comma;
			unsigned char md[32], *raw;
			char hex[65];
			size_t dlen;
			int n;

			if (!json_object_is_type(p, json_type_object) ||
			    !json_object_object_get_ex(p, "type", &ty) ||
			    strcmp(json_object_get_string(ty), "image_url") != 0 ||
			    !json_object_object_get_ex(p, "image_url", &iu) ||
			    !json_object_is_type(iu, json_type_object) ||
			    !json_object_object_get_ex(iu, "url", &url) ||
			    !json_object_is_type(url, json_type_string))
				continue;
			u = json_object_get_string(url);
			if (strncmp(u, "data:", 5) != 0)
				continue;
			comma = strchr(u, ',');
			dlen = comma ? strlen(comma + 1) : 0;
			if (comma == NULL || comma - u < 7 || strncmp(comma - 7, ";base64", 7) != 0 ||
			    dlen % 4 != 0 || (raw = malloc(dlen / 4 * 3 + 1)) == NULL) {
				api_error_set(e, 400, NULL, "messages", NULL, "Invalid image data URL");
				return false;
			}
			n = dlen ? EVP_DecodeBlock(raw, (const unsigned char *)comma + 1, (int)dlen) : 0;
			if (n < 0) {
				free(raw);
				api_error_set(e, 400, NULL, "messages", NULL, "Invalid image data URL");
				return false;
			}
			/* EVP_DecodeBlock counts the padding as bytes: take them off. */
			if (dlen && comma[dlen] == '=')
				n -= comma[dlen - 1] == '=' ? 2 : 1;
			EVP_Digest(raw, (size_t)n, md, NULL, EVP_sha256(), NULL);
			free(raw);
			for (int b = 0; b < 32; b++)
				snprintf(hex + 2 * b, 3, "%02x", md[b]);
			pthread_mutex_lock(&s->lock);
			if (json_object_object_get_ex(s->stats, "image_inputs", &seen)) {
				json_object_array_add(seen, json_object_new_string(hex));
				if (json_object_array_length(seen) > 100)
					json_object_array_del_idx(seen, 0, 1);
			}
			pthread_mutex_unlock(&s->lock);
		}
	}
	return true;
}

/* ---- chat completions ---- */

static json_object *
completion_base(const char *object, const char *cid, long long created, const char *model)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(cid));
	json_object_object_add(o, "object", json_object_new_string(object));
	json_object_object_add(o, "created", json_object_new_int64(created));
	json_object_object_add(o, "model", json_object_new_string(model));
	json_object_object_add(o, "system_fingerprint", json_object_new_string("fp_genqsim"));
	return o;
}

/* One streamed answer: its plan and where the stream stands. */
struct stream {
	struct oai *s;
	struct plan p;
	char cid[9 + ID_HEX + 1];
	long long created;
	bool fail;
	int next;                    /* -1: the role chunk; ntokens: the finish chunk */
	int stage;                   /* 0 chunks, 1 usage, 2 [DONE], 3 ended, 4 failed */
	bool done;                   /* the whole stream was written */
	char *out;                   /* the event being written; owned */
	size_t out_len, out_off;
	int fd;
};

static void
stream_event(struct stream *st, const char *data)
{
	size_t n = strlen(data) + 8;

	free(st->out);
	st->out = malloc(n + 1);
	st->out_len = st->out ? (size_t)snprintf(st->out, n + 1, "data: %s\n\n", data) : 0;
	st->out_off = 0;
}

static void
stream_chunk(struct stream *st, json_object *delta, const char *finish, json_object *use)
{
	json_object *o = completion_base("chat.completion.chunk", st->cid, st->created, st->p.model);
	json_object *choices = json_object_new_array(), *ch;

	if (use == NULL) {
		ch = json_object_new_object();
		json_object_object_add(ch, "index", json_object_new_int(0));
		json_object_object_add(ch, "delta", delta);
		json_object_object_add(ch, "logprobs", NULL);
		json_object_object_add(ch, "finish_reason", finish ? json_object_new_string(finish) : NULL);
		json_object_array_add(choices, ch);
	} else {
		json_object_put(delta);
	}
	json_object_object_add(o, "choices", choices);
	if (use != NULL)
		json_object_object_add(o, "usage", use);
	stream_event(st, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Prepares the next event into st->out; false when the stream is over. */
static bool
stream_next(struct stream *st)
{
	int half = st->p.ntokens / 2;

	if (st->stage == 0 && st->next < 0) {
		json_object *d = json_object_new_object();

		json_object_object_add(d, "role", json_object_new_string("assistant"));
		json_object_object_add(d, "content", json_object_new_string(""));
		json_object_object_add(d, "refusal", NULL);
		stream_chunk(st, d, NULL, NULL);
		st->next = 0;
		return true;
	}
	if (st->stage == 0 && st->next < st->p.ntokens) {
		int i = st->next++;
		size_t from = i ? st->p.ends[i - 1] : 0;
		json_object *d;

		if (i == half && st->p.hang)
			return false;            /* the caller waits for the client to leave */
		if (i == half && st->fail) {
			count(st->s, "failed", NULL, 1);
			stream_event(st, "{\"error\": {\"message\": \"" SERVER_ERROR_MSG "\", "
			    "\"type\": \"server_error\", \"param\": null, \"code\": null}}");
			st->stage = 4;
			return true;
		}
		sleep_ms(st->p.token_ms);
		d = json_object_new_object();
		json_object_object_add(d, "content", json_object_new_string_len(st->p.text + from,
		    (int)(st->p.ends[i] - from)));
		stream_chunk(st, d, NULL, NULL);
		return true;
	}
	if (st->stage == 0) {
		stream_chunk(st, json_object_new_object(), st->p.finish, NULL);
		st->stage = st->p.include_usage ? 1 : 2;
		return true;
	}
	if (st->stage == 1) {
		stream_chunk(st, json_object_new_object(), NULL, usage(&st->p, st->p.ntokens));
		st->stage = 2;
		return true;
	}
	if (st->stage == 2) {
		stream_event(st, "[DONE]");
		st->stage = 3;
		return true;
	}
	if (st->stage == 3 && !st->done) {
		st->done = true;
		count(st->s, "completed", NULL, 1);
	}
	return false;
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	size_t n;

	(void)pos;
	if (st->out_off == st->out_len) {
		if (!stream_next(st)) {
			if (st->stage == 0 && st->p.hang) {
				wait_fd_gone(st->s, st->fd);
				st->done = true;         /* counted as aborted */
				return MHD_CONTENT_READER_END_WITH_ERROR;
			}
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (st->out == NULL)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	n = st->out_len - st->out_off;
	if (n > max)
		n = max;
	memcpy(buf, st->out + st->out_off, n);
	st->out_off += n;
	return (ssize_t)n;
}

static void
stream_free(void *cls)
{
	struct stream *st = cls;

	if (!st->done && st->stage != 4)
		count(st->s, "aborted", NULL, 1);   /* the client left mid-stream */
	count(st->s, "in_flight", NULL, -1);
	plan_free(&st->p);
	free(st->out);
	free(st);
}

static enum MHD_Result
stream_chat(struct ctx *x, struct plan *p, const char *cid, long long created, bool fail)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(x->c,
	    MHD_CONNECTION_INFO_CONNECTION_FD);
	struct stream *st = calloc(1, sizeof *st);
	struct MHD_Response *r;
	enum MHD_Result rc;

	if (st == NULL) {
		plan_free(p);
		return MHD_NO;
	}
	st->s = x->s;
	st->p = *p;
	memset(p, 0, sizeof *p);
	snprintf(st->cid, sizeof st->cid, "%s", cid);
	st->created = created;
	st->fail = fail;
	st->next = -1;
	st->fd = ci ? ci->connect_fd : -1;
	count(x->s, "in_flight", NULL, 1);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, st,
	    stream_free);
	if (r == NULL) {
		stream_free(st);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(r, MHD_HTTP_HEADER_SERVER, "uvicorn");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	rc = MHD_queue_response(x->c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	x->rq->status = 200;
	return rc;
}

static enum MHD_Result
r_chat(struct ctx *x)
{
	struct api_error e = { 0 };
	json_object *req = NULL, *o, *choices, *choice, *msg;
	struct plan p;
	char cid[9 + ID_HEX + 1];
	long long created = (long long)time(NULL);
	enum MHD_Result rc;
	bool fail;

	if (!parse_body(x->rq, &req, &e) || !note_image_inputs(x->s, req, &e) ||
	    !chat_plan(x->s, req, &p, &e)) {
		json_object_put(req);
		return reply_error(x, &e);
	}
	json_object_put(req);
	if (p.bad) {
		plan_free(&p);
		api_error_set(&e, 400, NULL, "messages", NULL, "Invalid request: SIM_400 asked for a refusal");
		return reply_error(x, &e);
	}
	if (p.busy) {
		plan_free(&p);
		count(x->s, "http_503_served", NULL, 1);
		api_error_set(&e, 503, "server_error", NULL, json_object_new_string("overloaded"),
		    OVERLOADED_MSG);
		return reply_error(x, &e);
	}
	count(x->s, "chat_completions", NULL, 1);
	memcpy(cid, "chatcmpl-", 9);
	random_hex(cid + 9, ID_HEX);
	fail = p.fail || take(x->s, &x->s->k.fail_next);
	if (p.stream) {
		count(x->s, "streams", NULL, 1);
		return stream_chat(x, &p, cid, created, fail);
	}
	count(x->s, "in_flight", NULL, 1);
	if (p.hang) {
		wait_gone(x);
		rc = MHD_NO;             /* closes the connection */
		goto out;
	}
	sleep_ms((long long)p.token_ms * p.ntokens);
	if (fail) {
		count(x->s, "failed", NULL, 1);
		api_error_set(&e, 500, "server_error", NULL, NULL, SERVER_ERROR_MSG);
		rc = reply_error(x, &e);
		goto out;
	}
	o = completion_base("chat.completion", cid, created, p.model);
	msg = json_object_new_object();
	json_object_object_add(msg, "role", json_object_new_string("assistant"));
	json_object_object_add(msg, "content", json_object_new_string(p.text));
	json_object_object_add(msg, "refusal", NULL);
	choice = json_object_new_object();
	json_object_object_add(choice, "index", json_object_new_int(0));
	json_object_object_add(choice, "message", msg);
	json_object_object_add(choice, "logprobs", NULL);
	json_object_object_add(choice, "finish_reason", json_object_new_string(p.finish));
	choices = json_object_new_array();
	json_object_array_add(choices, choice);
	json_object_object_add(o, "choices", choices);
	json_object_object_add(o, "usage", usage(&p, p.ntokens));
	rc = reply_json(x, 200, o);
	count(x->s, "completed", NULL, 1);
out:
	count(x->s, "in_flight", NULL, -1);
	plan_free(&p);
	return rc;
}

/* ---- image generations ---- */

static bool
image_request_ok(struct oai *s, json_object *req, struct api_error *e, const char **prompt,
    int *n, int *w, int *h, bool *b64)
{
	json_object *v;
	const char *size = "256x256", *fmt = "url", *model;
	bool known = false;

	if (!json_object_object_get_ex(req, "prompt", &v) || !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) == 0) {
		api_error_set(e, 400, NULL, "prompt", json_object_new_string("missing_required_parameter"),
		    "Missing required parameter: 'prompt'.");
		return false;
	}
	*prompt = json_object_get_string(v);
	if (json_object_object_get_ex(req, "model", &v) && !check_model(s, req, &model, e))
		return false;
	*n = 1;
	if (json_object_object_get_ex(req, "n", &v)) {
		if (!is_int(v) || json_object_get_int64(v) < 1 || json_object_get_int64(v) > MAX_N) {
			api_error_set(e, 400, NULL, "n", NULL, "Invalid 'n': must be between 1 and %d", MAX_N);
			return false;
		}
		*n = (int)json_object_get_int64(v);
	}
	if (json_object_object_get_ex(req, "size", &v))
		size = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
	for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++)
		known = known || strcmp(SIZES[i], size) == 0;
	if (!known) {
		api_error_set(e, 400, NULL, "size", json_object_new_string("invalid_value"),
		    "Invalid value: '%s'. Supported values are: '256x256', '512x512', '1024x1024', "
		    "'1024x1792', '1792x1024'.", json_object_is_type(v, json_type_string) ?
		    size : json_object_to_json_string(v));
		return false;
	}
	sscanf(size, "%dx%d", w, h);
	if (json_object_object_get_ex(req, "response_format", &v))
		fmt = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
	if (strcmp(fmt, "url") != 0 && strcmp(fmt, "b64_json") != 0) {
		api_error_set(e, 400, NULL, "response_format", json_object_new_string("invalid_value"),
		    "Invalid value: '%s'. Supported values are: 'url' and 'b64_json'.",
		    json_object_is_type(v, json_type_string) ? fmt : json_object_to_json_string(v));
		return false;
	}
	*b64 = strcmp(fmt, "b64_json") == 0;
	if (strstr(*prompt, "SIM_400") != NULL) {
		api_error_set(e, 400, NULL, NULL, json_object_new_string("content_policy_violation"),
		    "Your request was rejected as a result of our safety system.");
		return false;
	}
	return true;
}

/* One generated image as a data item: b64_json, or a url the sim serves. */
static json_object *
image_item(struct oai *s, const char *prompt, const char *seed, int i, int w, int h, bool b64)
{
	unsigned char key[32], *png, *enc;
	size_t len, klen = strlen(prompt) + strlen(seed) + 24;
	char *k = malloc(klen);
	json_object *item;

	if (k == NULL)
		return NULL;
	snprintf(k, klen, "%s|%s|%d", prompt, seed, i);
	EVP_Digest(k, strlen(k), key, NULL, EVP_sha256(), NULL);
	free(k);
	w = w / 8 < 8 ? 8 : w / 8 > PNG_MAX_SIDE ? PNG_MAX_SIDE : w / 8;
	h = h / 8 < 8 ? 8 : h / 8 > PNG_MAX_SIDE ? PNG_MAX_SIDE : h / 8;
	pthread_mutex_lock(&s->png_lock);
	png = png_make((unsigned)w, (unsigned)h, key, NULL, NULL, 0, &len);
	pthread_mutex_unlock(&s->png_lock);
	if (png == NULL)
		return NULL;
	item = json_object_new_object();
	if (b64) {
		if ((enc = malloc(4 * ((len + 2) / 3) + 1)) == NULL) {
			free(png);
			json_object_put(item);
			return NULL;
		}
		EVP_EncodeBlock(enc, png, (int)len);
		json_object_object_add(item, "b64_json", json_object_new_string((char *)enc));
		free(enc);
		free(png);
	} else {
		struct image_file *f;
		char url[256];

		pthread_mutex_lock(&s->lock);
		f = &s->files[s->next_file++ % FILES_MAX];
		free(f->png);
		random_hex(f->name, 32);
		strcat(f->name, ".png");
		f->png = png;
		f->len = len;
		snprintf(url, sizeof url, "http://127.0.0.1:%u/files/%s", s->port, f->name);
		pthread_mutex_unlock(&s->lock);
		json_object_object_add(item, "url", json_object_new_string(url));
	}
	json_object_object_add(item, "revised_prompt", json_object_new_string(prompt));
	return item;
}

static enum MHD_Result
r_images(struct ctx *x)
{
	struct api_error e = { 0 };
	json_object *req = NULL, *data, *o, *seedv;
	const char *prompt, *seed = "";
	int n = 1, w = 256, h = 256;
	long ms;
	bool b64 = false;
	enum MHD_Result rc;

	if (!parse_body(x->rq, &req, &e) || !image_request_ok(x->s, req, &e, &prompt, &n, &w, &h, &b64)) {
		json_object_put(req);
		return reply_error(x, &e);
	}
	count(x->s, "images", NULL, 1);
	count(x->s, "in_flight", NULL, 1);
	if (strstr(prompt, "SIM_HANG") != NULL || knobs_now(x->s).hang) {
		wait_gone(x);
		rc = MHD_NO;
		goto out;
	}
	ms = marker(prompt, "SIM_MS");
	sleep_ms(ms < 0 ? knobs_now(x->s).run_ms : ms);
	if (strstr(prompt, "SIM_FAIL") != NULL || take(x->s, &x->s->k.fail_next)) {
		count(x->s, "failed", NULL, 1);
		api_error_set(&e, 500, "server_error", NULL, NULL, SERVER_ERROR_MSG);
		rc = reply_error(x, &e);
		goto out;
	}
	if (json_object_object_get_ex(req, "seed", &seedv) && seedv != NULL)
		seed = json_object_get_string(seedv);
	data = json_object_new_array();
	for (int i = 0; i < n; i++) {
		json_object *item = image_item(x->s, prompt, seed, i, w, h, b64);

		if (item == NULL) {
			json_object_put(data);
			api_error_set(&e, 500, "server_error", NULL, NULL, SERVER_ERROR_MSG);
			rc = reply_error(x, &e);
			goto out;
		}
		json_object_array_add(data, item);
	}
	o = json_object_new_object();
	json_object_object_add(o, "created", json_object_new_int64((int64_t)time(NULL)));
	json_object_object_add(o, "data", data);
	rc = reply_json(x, 200, o);
	count(x->s, "completed", NULL, 1);
out:
	count(x->s, "in_flight", NULL, -1);
	json_object_put(req);
	return rc;
}

/* ---- the other routes ---- */

static enum MHD_Result
r_models(struct ctx *x)
{
	json_object *o = json_object_new_object(), *data = json_object_new_array();

	for (size_t i = 0; i < x->s->nmodels; i++) {
		json_object *m = json_object_new_object();

		json_object_object_add(m, "id", json_object_new_string(x->s->models[i]));
		json_object_object_add(m, "object", json_object_new_string("model"));
		json_object_object_add(m, "created", json_object_new_int64(x->s->created));
		json_object_object_add(m, "owned_by", json_object_new_string("genq-sim"));
		json_object_array_add(data, m);
	}
	json_object_object_add(o, "object", json_object_new_string("list"));
	json_object_object_add(o, "data", data);
	return reply_json(x, 200, o);
}

static enum MHD_Result
r_health(struct ctx *x)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_string("ok"));
	return reply_json(x, 200, o);
}

static enum MHD_Result
r_file(struct ctx *x)
{
	const char *name = x->rq->path + strlen("/files/");
	struct api_error e = { 0 };
	enum MHD_Result rc;

	pthread_mutex_lock(&x->s->lock);
	for (size_t i = 0; i < FILES_MAX; i++) {
		const struct image_file *f = &x->s->files[i];

		if (f->png != NULL && strcmp(f->name, name) == 0) {
			rc = reply(x, 200, f->png, f->len, "image/png");
			pthread_mutex_unlock(&x->s->lock);
			return rc;
		}
	}
	pthread_mutex_unlock(&x->s->lock);
	api_error_set(&e, 404, NULL, NULL, NULL, "No such file");
	return reply_error(x, &e);
}

static void
set_knob(json_object *data, const char *key, int *knob)
{
	json_object *v;

	if (json_object_object_get_ex(data, key, &v))
		*knob = json_object_get_int(v);
}

static enum MHD_Result
r_sim_control(struct ctx *x)
{
	struct api_error e = { 0 };
	json_object *data = NULL, *v;
	struct knobs k;

	if (x->rq->body.len > 0) {
		data = json_tokener_parse(x->rq->body.data);
		if (data == NULL || !json_object_is_type(data, json_type_object)) {
			json_object_put(data);
			api_error_set(&e, 400, NULL, NULL, NULL, "control body is not JSON");
			return reply_error(x, &e);
		}
	} else {
		data = json_object_new_object();
	}
	pthread_mutex_lock(&x->s->lock);
	set_knob(data, "token_ms", &x->s->k.token_ms);
	set_knob(data, "tokens", &x->s->k.tokens);
	set_knob(data, "run_ms", &x->s->k.run_ms);
	set_knob(data, "fail_next", &x->s->k.fail_next);
	set_knob(data, "http_500_next", &x->s->k.http_500_next);
	set_knob(data, "http_503_next", &x->s->k.http_503_next);
	set_knob(data, "delay_ms", &x->s->k.delay_ms);
	if (json_object_object_get_ex(data, "hang", &v))
		x->s->k.hang = truthy(v);
	if (json_object_object_get_ex(data, "loading", &v))
		x->s->k.loading = truthy(v);
	k = x->s->k;
	pthread_mutex_unlock(&x->s->lock);
	if (json_object_object_get_ex(data, "crash", &v) && truthy(v)) {
		json_object *o = json_object_new_object();

		json_object_put(data);
		json_object_object_add(o, "crashing", json_object_new_boolean(1));
		sim_logf(x->s, "crash requested: exiting with status 1");
		crash_after_reply = 1;   /* on_completed exits once this is sent */
		return reply_json(x, 200, o);
	}
	json_object_put(data);
	return reply_json(x, 200, knobs_json(&k));
}

static enum MHD_Result
r_sim_stats(struct ctx *x)
{
	json_object *o;

	pthread_mutex_lock(&x->s->lock);
	o = json_tokener_parse(json_object_to_json_string(x->s->stats));
	json_object_object_add(o, "knobs", knobs_json(&x->s->k));
	pthread_mutex_unlock(&x->s->lock);
	json_object_object_add(o, "name", json_object_new_string(x->s->name));
	return reply_json(x, 200, o);
}

/* ---- routing ---- */

enum route { R_NONE, R_MODELS, R_HEALTH, R_CHAT, R_IMAGES, R_FILE, R_CONTROL, R_STATS };

static enum route
route_of(const char *method, const char *path)
{
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

	if (get && strcmp(path, "/v1/models") == 0)
		return R_MODELS;
	if (get && strcmp(path, "/health") == 0)
		return R_HEALTH;
	if (post && strcmp(path, "/v1/chat/completions") == 0)
		return R_CHAT;
	if (post && strcmp(path, "/v1/images/generations") == 0)
		return R_IMAGES;
	if ((get || post) && strcmp(path, "/sim/control") == 0)
		return R_CONTROL;
	if (get && strcmp(path, "/sim/stats") == 0)
		return R_STATS;
	if (get && strncmp(path, "/files/", 7) == 0)
		return R_FILE;
	return R_NONE;
}

/* The knobs every OpenAI route obeys; false with e set when one refuses. */
static bool
fault(struct ctx *x, enum route r, struct api_error *e)
{
	struct knobs k = knobs_now(x->s);

	if (k.delay_ms > 0)
		sleep_ms(k.delay_ms);
	if (k.loading) {         /* llama.cpp while its model loads (every route, /health too) */
		count(x->s, "http_503_served", NULL, 1);
		api_error_set(e, 503, "unavailable_error", NULL, json_object_new_int(503), "Loading model");
		return false;
	}
	if (r != R_CHAT && r != R_IMAGES)
		return true;
	if (take(x->s, &x->s->k.http_500_next)) {
		count(x->s, "http_500_served", NULL, 1);
		api_error_set(e, 500, "server_error", NULL, NULL, SERVER_ERROR_MSG);
		return false;
	}
	if (take(x->s, &x->s->k.http_503_next)) {
		count(x->s, "http_503_served", NULL, 1);
		api_error_set(e, 503, "server_error", NULL, json_object_new_string("overloaded"),
		    OVERLOADED_MSG);
		return false;
	}
	return true;
}

static enum MHD_Result
unauthorized(struct ctx *x)
{
	json_object *o = json_object_new_object(), *err = json_object_new_object();

	count(x->s, "unauthorized", NULL, 1);
	count(x->s, "errors", "401", 1);
	json_object_object_add(err, "code", json_object_new_int(401));
	json_object_object_add(err, "message", json_object_new_string("Invalid API Key"));
	json_object_object_add(err, "type", json_object_new_string("authentication_error"));
	json_object_object_add(o, "error", err);
	return reply_json(x, 401, o);
}

static enum MHD_Result
dispatch(struct ctx *x)
{
	struct api_error e = { 0 };
	enum route r;

	if (x->rq->body.too_big) {
		api_error_set(&e, 413, NULL, NULL, NULL, "Request body too large");
		return reply_error(x, &e);
	}
	if ((r = route_of(x->rq->method, x->rq->path)) == R_NONE) {
		api_error_set(&e, 404, NULL, NULL, NULL, "Invalid URL (%s %s)", x->rq->method, x->rq->path);
		return reply_error(x, &e);
	}
	if (r != R_CONTROL && r != R_STATS) {
		const char *rid = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, "X-Request-Id");

		count(x->s, "requests", r == R_FILE ? "/files/" : x->rq->path, 1);
		if (rid != NULL && *rid != '\0' && (r == R_CHAT || r == R_IMAGES)) {
			char cut[REQUEST_ID_MAX + 1];

			snprintf(cut, sizeof cut, "%s", rid);
			count(x->s, "request_ids", cut, 1);
		}
		if (x->s->api_key != NULL && strncmp(x->rq->path, "/v1/", 4) == 0) {
			const char *auth = MHD_lookup_connection_value(x->c, MHD_HEADER_KIND,
			    MHD_HTTP_HEADER_AUTHORIZATION);
			char want[512];

			snprintf(want, sizeof want, "Bearer %s", x->s->api_key);
			if (auth == NULL || strcmp(auth, want) != 0)
				return unauthorized(x);
		}
		if (!fault(x, r, &e))
			return reply_error(x, &e);
	}
	switch (r) {
	case R_MODELS:
		return r_models(x);
	case R_HEALTH:
		return r_health(x);
	case R_CHAT:
		return r_chat(x);
	case R_IMAGES:
		return r_images(x);
	case R_FILE:
		return r_file(x);
	case R_CONTROL:
		return r_sim_control(x);
	case R_STATS:
		return r_sim_stats(x);
	default:
		return MHD_NO;
	}
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	struct req *rq = *req_cls;
	struct ctx x = { cls, c, rq };

	(void)version;
	if (rq == NULL) {
		if ((rq = calloc(1, sizeof *rq)) == NULL)
			return MHD_NO;
		rq->t0 = mono_ms();
		snprintf(rq->method, sizeof rq->method, "%s", method);
		snprintf(rq->path, sizeof rq->path, "%s", url);
		*req_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {          /* the body arrives in pieces; bounded */
		size_t n = *upload_size;

		*upload_size = 0;
		return sim_body_add(&rq->body, upload, n, MAX_BODY) ? MHD_YES : MHD_NO;
	}
	if (rq->body.data == NULL && !sim_body_add(&rq->body, "", 0, MAX_BODY))
		return MHD_NO;
	return dispatch(&x);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct oai *s = cls;
	struct req *rq = *req_cls;

	(void)c;
	(void)toe;
	if (rq == NULL)
		return;
	sim_logf(s, "%s %s %d %lldms", rq->method, rq->path, rq->status, mono_ms() - rq->t0);
	sim_body_free(&rq->body);
	free(rq);
	*req_cls = NULL;
	if (crash_after_reply)
		_exit(1);
}

/* libmicrohttpd's own complaints (a hung request closed, say) go to the
 * request log, not to the terminal of whoever started the simulator. */
static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct oai *s = cls;
	char line[512];
	size_t n;

	vsnprintf(line, sizeof line, fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	sim_logf(s, "libmicrohttpd: %s", line);
}

/* ---- the process ---- */

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
usage_exit(const char *why)
{
	if (why)
		fprintf(stderr, "oaisim: %s\n", why);
	fprintf(stderr, "usage: oaisim --port N [--host 127.0.0.1] [--token-ms 20] [--tokens 16] "
	    "[--run-ms 200] [--models sim-llm,sim-image] [--name NAME] [--pidfile F] [--log F] "
	    "[--fail-next N] [--http-500-next N] [--hang] [--delay-ms N] [--loading] "
	    "[--api-key KEY] [--workers N]\n");
	exit(2);
}

static int
int_arg(const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (*v == '\0' || *end != '\0' || n < 0 || n > 100000000L)
		usage_exit("a number is out of range");
	return (int)n;
}

static void
split_models(struct oai *s, const char *list)
{
	char *copy = strdup(list), *save = NULL;

	if (copy == NULL)
		usage_exit("out of memory");
	for (char *m = strtok_r(copy, ",", &save); m != NULL; m = strtok_r(NULL, ",", &save)) {
		char **grown = realloc(s->models, (s->nmodels + 1) * sizeof *grown);

		if (grown == NULL || (grown[s->nmodels] = strdup(m)) == NULL)
			usage_exit("out of memory");
		s->models = grown;
		s->nmodels++;
	}
	free(copy);
	if (s->nmodels == 0)
		usage_exit("--models names no model");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' }, { "host", required_argument, NULL, 'H' },
		{ "token-ms", required_argument, NULL, 't' }, { "tokens", required_argument, NULL, 'n' },
		{ "run-ms", required_argument, NULL, 'r' }, { "models", required_argument, NULL, 'm' },
		{ "name", required_argument, NULL, 'N' }, { "pidfile", required_argument, NULL, 'P' },
		{ "log", required_argument, NULL, 'l' }, { "fail-next", required_argument, NULL, 'f' },
		{ "http-500-next", required_argument, NULL, '5' }, { "hang", no_argument, NULL, 'h' },
		{ "delay-ms", required_argument, NULL, 'd' }, { "loading", no_argument, NULL, 'L' },
		{ "api-key", required_argument, NULL, 'k' }, { "workers", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	struct oai s = { .k = { 20, 16, 200, 0, 0, 0, 0, false, false },
	    .name = "openai-sim", .host = "127.0.0.1", .log = stderr };
	const char *models = "sim-llm,sim-image", *pidfile = NULL, *logpath = NULL;
	struct sockaddr_in addr = { .sin_family = AF_INET };
	const union MHD_DaemonInfo *di;
	struct MHD_Daemon *d;
	struct sigaction sa;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
	struct MHD_OptionItem pool[2] = { { MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL } };
	int port = -1, workers = 0, ch;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': port = int_arg(optarg); break;
		case 'H': s.host = optarg; break;
		case 't': s.k.token_ms = int_arg(optarg); break;
		case 'n': s.k.tokens = int_arg(optarg); break;
		case 'r': s.k.run_ms = int_arg(optarg); break;
		case 'm': models = optarg; break;
		case 'N': s.name = optarg; break;
		case 'P': pidfile = optarg; break;
		case 'l': logpath = optarg; break;
		case 'f': s.k.fail_next = int_arg(optarg); break;
		case '5': s.k.http_500_next = int_arg(optarg); break;
		case 'h': s.k.hang = true; break;
		case 'd': s.k.delay_ms = int_arg(optarg); break;
		case 'L': s.k.loading = true; break;
		case 'k': s.api_key = optarg; break;
		case 'w': workers = int_arg(optarg); break;
		default: usage_exit(NULL);
		}
	}
	if (port < 0 || port > 65535 || optind != argc)
		usage_exit("--port is required");
	if (inet_pton(AF_INET, s.host, &addr.sin_addr) != 1)
		usage_exit("--host must be an IPv4 address");
	addr.sin_port = htons((uint16_t)port);
	split_models(&s, models);
	if (logpath != NULL && (s.log = fopen(logpath, "a")) == NULL) {
		perror(logpath);
		return 1;
	}
	/* Whole lines, one write each (sim_logf flushes): stderr unbuffered
	 * would write every piece of a line on its own. */
	setvbuf(s.log, NULL, _IOLBF, BUFSIZ);
	pthread_mutex_init(&s.lock, NULL);
	pthread_mutex_init(&s.png_lock, NULL);
	s.stats = stats_new();
	s.created = (long long)time(NULL);

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* --workers N: N threads each serving many connections from epoll
	 * instead of a thread per connection, for benchmarks of instant
	 * replies. A reply that sleeps (token pacing, delays, SIM_HANG) then
	 * holds up every connection of its thread. */
	if (workers > 0)
		flags = MHD_USE_EPOLL_INTERNAL_THREAD;
	pool[0] = (struct MHD_OptionItem){ workers > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
	    workers, NULL };
	d = MHD_start_daemon(flags | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, on_request, &s,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, &s,
	    MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&addr,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, &s,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)256,
	    MHD_OPTION_ARRAY, pool,
	    MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "oaisim: cannot listen on %s:%d\n", s.host, port);
		return 1;
	}
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	s.port = di ? di->port : (unsigned)port;
	if (pidfile != NULL) {
		FILE *f = fopen(pidfile, "w");

		if (f != NULL) {
			fprintf(f, "%ld\n", (long)getpid());
			fclose(f);
		}
	}
	sim_logf(&s, "listening on %s:%u models=%s", s.host, s.port, models);
	printf("listening port=%u\n", s.port);
	fflush(stdout);
	while (!stopping)
		pause();
	MHD_stop_daemon(d);
	if (pidfile != NULL)
		unlink(pidfile);
	sim_logf(&s, "stopped");
	for (size_t i = 0; i < FILES_MAX; i++)
		free(s.files[i].png);
	for (size_t i = 0; i < s.nmodels; i++)
		free(s.models[i]);
	free(s.models);
	json_object_put(s.stats);
	png_cleanup();
	if (s.log != stderr)
		fclose(s.log);
	return 0;
}
