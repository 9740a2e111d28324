/* The gateway's HTTP routes and their handlers; each handler's ctx is a
 * routes_view of the gateway's parts, which it reads and asks. */
#ifndef CONSUMER_ROUTES_H
#define CONSUMER_ROUTES_H

#include <stddef.h>

#include "http_route.h"
#include "api_keys.h"
#include "pipeline.h"
#include "ws_session.h"

struct routes_view {
    const struct pipeline *pipe;
    const struct ws_server *ws;
    const struct api_keys *const *keys; /* the gateway's, re-read on SIGHUP; may be NULL */
    int ops_open;                        /* /metrics without a key (--ops-open) */
};

extern const struct http_route gateway_routes[];
extern const size_t gateway_nroutes;
extern const struct http_route health_routes[];
extern const size_t health_nroutes;

#endif
