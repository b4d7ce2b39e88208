/* simhttp: what the two C simulators (comfysim, oaisim) do alike on
 * libmicrohttpd: gather a request body in bounded pieces, and send without
 * Nagle's delay (aiohttp, llama.cpp and vLLM all set TCP_NODELAY). */
#ifndef SIMHTTP_H
#define SIMHTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

/* A request body, NUL-terminated once anything arrived. */
struct sim_body {
	char *data;                  /* owned */
	size_t len, cap;
	bool too_big;                /* over the limit: dropped, answer 413 */
};

/* Adds one piece of an upload; a body that would pass max is marked
 * too_big and its pieces dropped. False only when out of memory. */
bool sim_body_add(struct sim_body *b, const char *piece, size_t n, size_t max);
void sim_body_free(struct sim_body *b);

/* MHD_OPTION_NOTIFY_CONNECTION: TCP_NODELAY on every new connection. */
void sim_on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
    enum MHD_ConnectionNotificationCode code);

#endif
