/* comfyevt: ComfyUI's WebSocket messages (/ws text frames) as pure
 * functions. The sender is a backend genq does not control, possibly
 * shared with other tenants: anything malformed is CEVT_BAD, never a
 * crash, and the caller acts only on prompt ids it submitted. No I/O. */
#ifndef GENQD_COMFYEVT_H
#define GENQD_COMFYEVT_H

#include <stddef.h>

#define COMFY_EVT_ID_MAX 64       /* longest prompt id kept (genq's are UUIDs) */
#define COMFY_EVT_MAX_DEPTH 16    /* JSON nesting read from one message */

/* What a message means for the prompt it names. */
enum comfy_evt_kind {
	CEVT_IGNORED,     /* status, executed, execution_cached, unknown types */
	CEVT_RUNNING,     /* execution_start, or executing a node */
	CEVT_PROGRESS,    /* progress {value, max}: a sampler's steps */
	CEVT_ENDING,      /* execution_success / _error / _interrupted: the
	                   * history entry is being written */
	CEVT_ENDED,       /* executing with node null: the history is written */
	CEVT_BAD,         /* not a ComfyUI message */
};

struct comfy_evt {
	enum comfy_evt_kind kind;
	char type[32];                          /* the message type, "" if none */
	char prompt_id[COMFY_EVT_ID_MAX + 1];   /* "" when absent or too long */
	double value, max;                      /* CEVT_PROGRESS */
};

/* Read one text message. Fills e and returns e->kind. */
enum comfy_evt_kind comfy_evt_parse(const char *text, size_t len, struct comfy_evt *e);

/* A progress event as a fraction of the job in [0, 0.99]: never 1, as the
 * job is not done until its outputs are stored. -1 when value and max make
 * no sense (max not positive, value negative, not finite). */
double comfy_evt_fraction(const struct comfy_evt *e);

#endif
