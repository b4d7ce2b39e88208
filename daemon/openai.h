/* openai: the OpenAI-compatible HTTP API (llama.cpp server, vLLM, ...) as
 * pure functions: what a job's input asks for, the request body to send,
 * and the readers of replies: whole chat completions, server-sent event
 * streams of chat.completion.chunk objects, image generations carrying
 * b64_json, and error documents. Replies come from servers genq does not
 * control: every reader takes hostile input (wrong types, huge or truncated
 * documents, endless lines) and answers an error, never a crash.
 * No I/O, no database: unit-tested on its own. */
#ifndef GENQD_OPENAI_H
#define GENQD_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define OAI_MSG_MAX 1024          /* error messages kept from a reply */
#define OAI_MAX_CHOICES 8         /* text outputs taken from one completion */
#define OAI_MAX_IMAGES 16         /* image outputs taken from one generation */
#define OAI_LINE_MAX (4u << 20)   /* longest event-stream line accepted */
#define OAI_EXT_MAX 8

/* Which endpoint a job's input goes to, chosen by its shape. */
enum oai_kind {
	OAI_CHAT,                 /* has "messages": POST /v1/chat/completions */
	OAI_IMAGES,               /* "prompt" and no "messages": POST /v1/images/generations */
};

struct oai_request {
	enum oai_kind kind;
	bool stream;              /* chat with "stream": true */
	int64_t max_tokens;       /* max_completion_tokens / max_tokens; 0 unknown */
	int n;                    /* choices or images asked for (1 when absent) */
};

/* Read the job's input (a JSON object, the OpenAI request body) into req
 * and append the body to send to out: the input as is for chat, and for
 * images the input with response_format forced to b64_json (a URL would
 * point at storage genq does not control). 0, or -1 with msg saying why
 * the input cannot be sent (not retryable). */
int oai_prepare(const char *input, size_t len, struct oai_request *req, struct buf *out,
    char *msg, size_t msglen);

/* The path of req's endpoint appended to base: "/chat/completions" or
 * "/images/generations" after a base that ends in "/v1", else after
 * base + "/v1" (both spellings of an OpenAI base URL are common). */
int oai_url(struct buf *out, const char *base, const char *endpoint);

/* What a reply's HTTP status (other than 200) means for the attempt. */
enum oai_verdict {
	OAI_RETRY,                /* 5xx, 429, 408, 401/403: the backend, not the job */
	OAI_INVALID,              /* 400, 413, 422 and other 4xx: the request is wrong */
	OAI_NO_MODEL,             /* 404: the model (or route) is not served there */
};

/* Classify a non-200 reply; msg receives the server's error message
 * ({"error": {"message"}}, vLLM's {"message"}, or the status). */
enum oai_verdict oai_classify(long status, const char *body, size_t len, char *msg,
    size_t msglen);

/* The texts of a completion, one per choice, in index order. */
struct oai_texts {
	struct buf text[OAI_MAX_CHOICES];
	size_t n;                 /* choices seen (highest index + 1) */
	size_t total, max;        /* bytes kept so far, and the bound on them */
	char finish[32];          /* finish_reason of choice 0 ("" unknown) */
	int64_t tokens;           /* usage.completion_tokens, or chunks counted */
};

void oai_texts_init(struct oai_texts *t, size_t max_bytes);
void oai_texts_free(struct oai_texts *t);

/* Results of the readers below. */
enum oai_result {
	OAI_OK,
	OAI_BAD_REPLY,            /* not the documented shape: the backend's fault */
	OAI_TOO_LARGE,            /* the output passed its bound: the job's fault */
	OAI_SERVER_ERROR,         /* the server reported an error inside a 200 */
};

/* Read a whole POST /v1/chat/completions reply into t. */
enum oai_result oai_parse_chat(const char *body, size_t len, struct oai_texts *t,
    char *msg, size_t msglen);

/* An event stream being read: feed it the bytes as they come. */
struct oai_stream {
	struct buf line;          /* the line being received */
	struct buf data;          /* the data: lines of the event being received */
	bool cr;                  /* the last byte was a CR (a CRLF may be split) */
	bool done;                /* data: [DONE] seen */
	bool finished;            /* a finish_reason was seen */
	int64_t chunks;           /* chunks that carried content (≈ tokens) */
	int64_t usage_tokens;     /* usage.completion_tokens, -1 until seen */
	enum oai_result result;   /* OAI_OK until something went wrong */
	char msg[OAI_MSG_MAX];    /* why, when result is not OAI_OK */
	struct oai_texts texts;
};

void oai_stream_init(struct oai_stream *s, size_t max_bytes);
void oai_stream_free(struct oai_stream *s);
/* Take len more bytes; OAI_OK, or the first error (sticky; s->msg). */
enum oai_result oai_stream_feed(struct oai_stream *s, const char *data, size_t len);
/* The transfer ended: was the stream complete? ([DONE], or at least a
 * finish_reason from servers that omit [DONE].) */
enum oai_result oai_stream_end(struct oai_stream *s);

/* Progress of a stream: tokens received against the tokens asked for,
 * below 1 until the job is done; -1 when max_tokens is unknown. */
double oai_progress(int64_t tokens, int64_t max_tokens);

/* One decoded image. */
struct oai_image {
	unsigned char *data;      /* owned */
	size_t len;
	char ext[OAI_EXT_MAX];    /* from the file's magic bytes: png, jpg, webp, gif, bin */
};

struct oai_images {
	struct oai_image img[OAI_MAX_IMAGES];
	size_t n;
};

/* Read a POST /v1/images/generations reply: data[].b64_json decoded with
 * OpenSSL, each at most max_bytes. out is owned by the caller:
 * oai_images_free, also after an error. */
enum oai_result oai_parse_images(const char *body, size_t len, size_t max_bytes,
    struct oai_images *out, char *msg, size_t msglen);
void oai_images_free(struct oai_images *out);

#endif
