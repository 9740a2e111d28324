/* /metrics: the gateway's numbers in the Prometheus text format (0.0.4),
 * every one declared once in metrics.c's table (name, type, help, value).
 * A small format, written here rather than with a client library: a few
 * dozen lines of text, no registry or threads needed. */
#ifndef CONSUMER_METRICS_H
#define CONSUMER_METRICS_H

#include <stddef.h>

#include "routes.h"

/* Renders every metric into buf; returns the length (at most size - 1). */
size_t metrics_render(const struct routes_view *v, char *buf, size_t size);

#endif
