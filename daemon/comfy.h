/* comfy: the ComfyUI HTTP protocol as pure functions (see COMFYUI.md):
 * build request bodies and URLs, read replies. Replies come from a backend
 * genq does not control, so every reader takes hostile input: wrong types,
 * huge or truncated documents yield an error result, never a crash.
 * No I/O, no database: unit-tested on its own. */
#ifndef GENQD_COMFY_H
#define GENQD_COMFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define COMFY_MSG_MAX 1024        /* error messages kept from a reply */
#define COMFY_MAX_FILES 256       /* outputs taken from one prompt */
#define COMFY_NAME_MAX 255        /* longest file name accepted */
#define COMFY_SUBFOLDER_MAX 1024
#define COMFY_TYPE_MAX 32

/* What POST /prompt said. */
enum comfy_submit {
	COMFY_SUBMIT_OK,          /* queued */
	COMFY_SUBMIT_INVALID,     /* 400: the workflow is wrong, do not retry */
	COMFY_SUBMIT_ERROR,       /* anything else the server answered: retry */
};

/* Read the reply to POST /prompt. msg receives a readable reason for the
 * failures (NUL-terminated, at most msglen - 1 bytes). */
enum comfy_submit comfy_parse_submit(long status, const char *body, size_t len,
    char *msg, size_t msglen);

/* Append the POST /prompt body to out: input is the workflow (a JSON object,
 * inserted as is), client_id and prompt_id are escaped. 0 or -1. */
int comfy_submit_body(struct buf *out, const char *input, size_t input_len,
    const char *client_id, const char *prompt_id);

/* One output file as named in a history entry. */
struct comfy_file {
	char filename[COMFY_NAME_MAX + 1];
	char subfolder[COMFY_SUBFOLDER_MAX + 1];
	char type[COMFY_TYPE_MAX + 1];
};

/* Where a prompt stands according to GET /history/{prompt_id}. */
enum comfy_state {
	COMFY_PENDING,            /* not in history yet: queued, running or unknown */
	COMFY_SUCCESS,
	COMFY_FAILED,             /* execution_error: the workflow failed */
	COMFY_OOM,                /* execution_error that is an out-of-memory */
	COMFY_INTERRUPTED,        /* execution_interrupted */
	COMFY_BAD_REPLY,          /* not a history document */
};

struct comfy_history {
	enum comfy_state state;
	char message[COMFY_MSG_MAX];   /* why, for the failure states */
	int64_t start_ms, end_ms;      /* execution timestamps, 0 if absent */
	struct comfy_file *files;      /* outputs, for COMFY_SUCCESS */
	size_t nfiles;
	bool files_truncated;          /* more than COMFY_MAX_FILES were listed */
};

/* Read a GET /history/{prompt_id} reply into h (owned by the caller:
 * comfy_history_free). Returns h->state. */
enum comfy_state comfy_parse_history(const char *body, size_t len,
    const char *prompt_id, struct comfy_history *h);
void comfy_history_free(struct comfy_history *h);

/* Collect the output files listed under a history entry's "outputs" object
 * (any list of objects with a string filename, in document order). Appends
 * to h->files; at most COMFY_MAX_FILES. Files with names that could not be
 * fetched safely are skipped. 0, or -1 when out of memory. */
struct json_object;
int comfy_collect_files(struct json_object *outputs, struct comfy_history *h);

/* Is prompt_id in GET /queue's queue_running or queue_pending? 1 yes, 0 no,
 * -1 when the reply is not a queue document. */
int comfy_queue_has(const char *body, size_t len, const char *prompt_id);

/* Bodies for POST /interrupt and POST /queue (delete one prompt). */
int comfy_interrupt_body(struct buf *out, const char *prompt_id);
int comfy_delete_body(struct buf *out, const char *prompt_id);

/* Append base + path to out, base without a trailing slash. */
int comfy_url(struct buf *out, const char *base, const char *path);

/* Append the GET /view URL for f to out, each value percent-encoded. */
int comfy_view_url(struct buf *out, const char *base, const struct comfy_file *f);

#endif
