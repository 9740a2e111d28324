/* The gateway: the libwebsockets event loop that ties the hub to client
 * connections, the store worker and the Kafka consumer. */
#ifndef CONSUMER_GATEWAY_H
#define CONSUMER_GATEWAY_H

#include <stddef.h>

#include "config.h"

typedef struct gateway gateway_t;

/* Opens the listening socket and starts the store worker and the Kafka
 * consumer. NULL with errstr when a setting is unusable. */
gateway_t *gateway_new(const struct config *c, char *errstr, size_t errstr_size);

/* Serves until gateway_request_stop, then stores what is in flight,
 * commits, and returns 0 (or -1 when the loop failed). */
int gateway_run(gateway_t *g);

/* Asks gateway_run to wind down: it only sets a flag, so a signal handler
 * may call it; the loop sees it after its current wait (at most a tick). */
void gateway_request_stop(gateway_t *g);
/* Async-signal-safe: the keys and deny-list are re-read at the loop's next
 * turn (SIGHUP). */
void gateway_request_reload(gateway_t *g);

void gateway_free(gateway_t *g);

#endif
