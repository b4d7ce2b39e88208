/* comfyws: one ComfyUI /ws event stream per ComfyUI backend this genqd
 * drives, on genqd's single event loop. It connects with the clientId that
 * comfydrv.c sends as client_id, so the backend sends this genqd's prompts'
 * events here; it reconnects with backoff, pings an idle stream, and hands
 * the events for prompts of live runs to comfydrv.c (comfy_event). Events
 * are hints for speed and progress only: completion is always confirmed
 * through /history, which comfydrv.c keeps polling (slower while the
 * stream is up). Other tenants' events are ignored. */
#ifndef GENQD_COMFYWS_H
#define GENQD_COMFYWS_H

#include <stdbool.h>
#include <stdint.h>

#include "comfyevt.h"

struct genqd;
struct run;

/* Open, keep up or drop the streams to match the leased ComfyUI backends;
 * pings and timeouts. Called from the loop's timers. */
void comfyws_tick(struct genqd *g, int64_t now);

/* When comfyws_tick next has something to do (monotonic µs). */
int64_t comfyws_next_deadline(const struct genqd *g);

/* The loop's wait: like http_wait, with nextra descriptors of the caller's
 * (-1 for none; ready[i] says extra_fds[i] became readable), and the
 * streams' sockets are served as they get ready. */
void comfyws_wait(struct genqd *g, const int *extra_fds, size_t nextra, int timeout_ms,
    bool *ready);

/* Is the stream to backend_id open? */
bool comfyws_up(const struct genqd *g, uint64_t backend_id);

/* Close every stream (shutdown). */
void comfyws_free_all(struct genqd *g);

/* ---- comfydrv.c: what the streams report ---- */
/* e (kind CEVT_PROGRESS, _RUNNING, _ENDING or _ENDED) names r's prompt. */
void comfy_event(struct genqd *g, struct run *r, const struct comfy_evt *e);
/* r's backend's stream just (re)opened: events may have been missed. */
void comfy_stream_opened(struct genqd *g, struct run *r);

#endif
