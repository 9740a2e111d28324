/* The gateway's HTTP routes and their handlers; each handler's ctx is the
 * gateway's pipeline (pipeline.h), whose parts it reads and asks. */
#ifndef CONSUMER_ROUTES_H
#define CONSUMER_ROUTES_H

#include <stddef.h>

#include "http_route.h"

extern const struct http_route gateway_routes[];
extern const size_t gateway_nroutes;

#endif
