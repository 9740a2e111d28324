/* The HTTP route table and its matcher, with no sockets: a route is a
 * method and a path pattern whose segments are literal or a {name}
 * parameter ("/api/users/{userId}/inbox"). */
#ifndef CONSUMER_HTTP_ROUTE_H
#define CONSUMER_HTTP_ROUTE_H

#include <stddef.h>

#define HTTP_PARAMS_MAX 4
#define HTTP_PARAM_MAX 128 /* bytes in one parameter's value */

typedef struct http_request http_request_t;

struct http_route {
    const char *method;  /* "GET", "POST", … */
    const char *pattern; /* begins with '/' */
    size_t max_body;     /* request body bytes accepted; more is refused with 413 */
    /* Answers with http_respond, now or later (from a store or Kafka
     * completion), exactly once. */
    void (*handle)(void *ctx, http_request_t *req);
};

struct http_params {
    size_t n;
    struct {
        const char *name; /* points into the route's pattern, after '{' */
        size_t name_len;
        char value[HTTP_PARAM_MAX + 1];
    } p[HTTP_PARAMS_MAX];
};

enum { HTTP_ROUTE_NONE = -1, HTTP_ROUTE_BAD_METHOD = -2 };

/* The index of the route matching method and path (a query string is
 * ignored), with its parameters in *params; HTTP_ROUTE_BAD_METHOD when a
 * route has the path but not the method (405), HTTP_ROUTE_NONE when none
 * has the path (404). An empty segment never matches a parameter. */
int http_route_match(const struct http_route *routes, size_t n, const char *method,
                     const char *path, struct http_params *params);

/* The value of parameter name, or NULL. */
const char *http_param(const struct http_params *params, const char *name);

/* The bytes up to the second '/' of pattern ("/api" of "/api/users/…"):
 * requests under it reach the routes; the rest are files. */
size_t http_route_prefix_len(const char *pattern);

#endif
