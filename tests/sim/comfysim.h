/* comfysim: a ComfyUI simulator in C for the dispatch benchmark.
 *
 * tests/sim/comfyui_sim.py is THE simulator of the tests; this one serves
 * the part of ComfyUI's API that genqd and bench/dispatch.py use, with the
 * same JSON shapes, status codes and /ws message sequence, at a small
 * fraction of the CPU per prompt, so the benchmark measures genq and not
 * the simulator. One process: libmicrohttpd's polling thread answers HTTP,
 * a worker thread runs prompts one at a time in `number` order, and a
 * WebSocket thread writes the event streams. Shared state lives in one
 * struct sim under one mutex. */
#ifndef COMFYSIM_H
#define COMFYSIM_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "comfysim_valid.h"

#define SIM_HISTORY_CAP 10000       /* ComfyUI's MAXIMUM_HISTORY_SIZE */
#define SIM_MAX_BODY (16u << 20)    /* a request body larger than this gets 413 */
#define SIM_ID_MAX 36               /* canonical UUID length */
#define SIM_WS_OUT_MAX (8u << 20)   /* a WebSocket client this far behind is dropped */

struct ws_conn;

/* One queue entry: [number, prompt_id, prompt, extra_data, outputs], as
 * ComfyUI's /queue and /history show it. Owned by the queue, then by the
 * worker while it runs. */
struct qitem {
	double number;               /* lower runs first */
	bool number_is_float;        /* a client-given number is a float, as in ComfyUI */
	long seq;                    /* tie-break after prompt_id, as the Python heap does */
	char prompt_id[SIM_ID_MAX + 1];
	json_object *prompt;         /* the validated (converted) workflow */
	json_object *extra_data;
	json_object *outputs;        /* array of output node ids that passed validation */
};

/* Settings from the command line. */
struct sim_opts {
	const char *host;
	int port;
	long run_ms;
	long delay_ms;
	const char *output_dir;
	const char *input_dir;
	const char *temp_dir;
	const char *name;
	const char *log_path;
	const char *pidfile;
	const char *checkpoints;     /* comma separated */
	bool cache_none;             /* like ComfyUI's --cache-none */
};

struct sim {
	struct sim_opts opt;
	char *output_dir, *input_dir, *temp_dir;   /* absolute, owned */
	json_object *ckpt_list;                    /* the checkpoint names, a JSON array */
	int port;

	pthread_mutex_t lock;        /* guards everything below */
	pthread_cond_t work;         /* the worker waits for a prompt */
	pthread_cond_t wake;         /* interrupts and shutdown wake a running prompt */
	struct qitem **heap;         /* pending prompts, a binary heap like Python's heapq */
	size_t nheap, capheap;
	struct qitem *running;
	long number, seq;
	bool interrupt;
	bool stopping;
	char last_node[64];          /* the node the running prompt last announced */
	json_object *history;        /* prompt_id -> entry, in finishing order */
	json_object *cache;          /* node signature -> its ui output (or null) */
	json_object *prefix_counters; /* "folder\nprefix" -> highest counter seen */
	struct ws_conn *sockets;     /* registered WebSockets (one per client id) */

	pthread_mutex_t log_lock;
	FILE *log;                   /* owned unless stderr */
	bool log_requests;           /* a line per HTTP request (only with --log) */

	struct ws_loop *ws;          /* the WebSocket thread */
};

/* ---- comfysim.c ---- */
void sim_log(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long sim_now_ms(void);
/* {"exec_info": {"queue_remaining": N}}; caller holds the lock. New object. */
json_object *sim_queue_info(struct sim *s);

/* ---- comfysim_run.c: the queue and the execution of prompts ---- */
/* POST /prompt: fills *status and returns the reply body (new object), or
 * NULL for the 500 ComfyUI gives when its handler throws. Takes the parsed
 * body (borrowed; the prompt in it may be converted in place). */
json_object *prompt_submit(struct sim *s, json_object *body, int *status);
/* The worker thread's body. */
void *prompt_worker(void *arg);
void qitem_free(struct qitem *q);
/* Heap of pending prompts (caller holds the lock). */
void heap_push(struct sim *s, struct qitem *q);
struct qitem *heap_pop(struct sim *s);
void heap_remove(struct sim *s, size_t i);
/* [number, id, prompt, extra_data, outputs] (new object; caller holds the lock). */
json_object *qitem_json(const struct qitem *q);

/* ---- comfysim_save.c ---- */
/* The pictures a SaveImage (or PreviewImage: temp) node writes. */
struct save_image {
	int64_t w, h, batch;         /* the latent's size in pixels, and the batch */
	unsigned char key[32];       /* what makes this prompt's pixels its own */
};
struct save_error {
	char type[64];               /* the exception type execution_error names */
	struct strbuf msg;
};
/* Writes the files; *ui is {"images": [{filename, subfolder, type}]} (new).
 * 0, or -1 with err filled (err->msg.p is the caller's to free). */
int save_images(struct sim *s, const char *prefix, bool temp, const struct save_image *img,
    json_object *prompt, json_object *extra_data, json_object **ui, struct save_error *err);

/* ---- comfysim_http.c ---- */
struct sockaddr_in;
struct MHD_Daemon;
/* Starts serving on addr (MHD's own thread); NULL on failure. */
struct MHD_Daemon *http_start(struct sim *s, const struct sockaddr_in *addr);

/* ---- comfysim_png.c ---- */
/* Worker thread only. An RGB PNG of width x height whose pixels follow from the 32-byte key,
 * with tEXt chunks (keys[i], vals[i]). Returns a malloc'd buffer. */
unsigned char *png_make(unsigned w, unsigned h, const unsigned char key[32],
    const char *const *keys, const char *const *vals, size_t ntext, size_t *len);
/* Frees the deflate stream png_make keeps (after the worker stopped). */
void png_cleanup(void);

/* ---- comfysim_ws.c ---- */
struct ws_loop *ws_start(struct sim *s);
/* Closes every socket and joins the thread. */
void ws_stop(struct ws_loop *w);
/* Frees the loop after ws_stop, once no thread can call ws_send. */
void ws_free(struct ws_loop *w);
/* Hands an upgraded socket to the loop; the hello status goes out first. */
void ws_adopt(struct ws_loop *w, int fd, void *urh, const char *extra, size_t extra_len,
    const char *client_id);
/* Sends {"type": type, "data": data} to the socket of client_id, or to every
 * socket when client_id is NULL. Takes data (reference dropped). Caller
 * must NOT hold s->lock. */
void ws_send(struct sim *s, const char *type, json_object *data, const char *client_id);
/* From now on this thread's ws_send only marks the loop to be woken;
 * ws_flush wakes it. For the worker, which calls ws_flush before it waits. */
void ws_defer_pokes(void);
void ws_flush(struct sim *s);
/* A status message with the queue length to every socket. */
void ws_broadcast_status(struct sim *s);

#endif
