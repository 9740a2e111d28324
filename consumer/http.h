/* HTTP on the gateway's port: each request goes to the route of its method
 * and path (http_route.h), with a body read up to the route's limit, and
 * is answered with http_respond, at once or later from a completion (a
 * store read, a Kafka acknowledgement). Files are the lws mount's.
 *
 * The http_* callbacks below are called by the gateway's lws callback, on
 * the service thread. A request outlives its connection when a handler
 * still holds it: answering a request whose client went away frees it. */
#ifndef CONSUMER_HTTP_H
#define CONSUMER_HTTP_H

#include <libwebsockets.h>
#include <stddef.h>

#include "http_route.h"

struct http_server {
    const struct http_route *routes;
    size_t nroutes;
    void *ctx; /* passed to every handler */
};

/* Per connection, inside lws's per-session data. */
struct http_session {
    http_request_t *req;
};

/* LWS_CALLBACK_HTTP, _HTTP_BODY, _HTTP_BODY_COMPLETION, _HTTP_WRITEABLE
 * and _CLOSED_HTTP or _HTTP_DROP_PROTOCOL (whichever comes first: lws
 * frees the session data after the latter): each returns what the callback
 * must return. */
int http_on_request(const struct http_server *srv, struct lws *wsi, struct http_session *s);
int http_on_body(struct lws *wsi, struct http_session *s, const void *in, size_t len);
int http_on_body_done(const struct http_server *srv, struct lws *wsi, struct http_session *s);
int http_on_writeable(struct lws *wsi, struct http_session *s);
void http_on_closed(struct http_session *s);

const char *http_request_param(const http_request_t *req, const char *name);
/* The value of the query argument name ("userId=") in buf: its length, -1
 * when absent, -2 when present but longer than buf or holding a control
 * character. For WebSocket upgrades too. */
int http_url_arg(struct lws *wsi, const char *name, char *buf, size_t size);
/* The same for a request (-1 once its client went away). */
int http_request_query(const http_request_t *req, const char *name, char *buf, size_t size);
/* A request header's value in buf, or NULL when absent or longer than buf
 * (wsi may be NULL: a client gone). For WebSocket upgrades too. */
const char *http_header(struct lws *wsi, enum lws_token_indexes h, char *buf, size_t size);
/* The "Authorization: Bearer" credential, moved to the start of buf: its
 * length, 0 when there is none. */
int http_bearer(struct lws *wsi, char *buf, size_t size);

#define HTTP_EXTRA_HEADERS 6

/* Adds a header to the answer ("retry-after:", "5"); before http_respond. */
void http_add_header(http_request_t *req, const char *name, const char *value);
/* A request header's value in buf, or NULL when absent or longer. */
const char *http_request_header(const http_request_t *req, enum lws_token_indexes h, char *buf,
                                size_t size);
/* The request's "Authorization: Bearer" credential, in buf, or NULL. */
const char *http_request_bearer(const http_request_t *req, char *buf, size_t size);
/* The body read (NUL-terminated), and its length in *len. */
const char *http_request_body(const http_request_t *req, size_t *len);

/* Answers req (status, content type, body copied), exactly once. */
void http_respond(http_request_t *req, int status, const char *content_type, const char *body,
                  size_t len);

#define HTTP_MOUNTS_MAX 16

struct http_mounts {
    struct lws_http_mount m[HTTP_MOUNTS_MAX];
    char prefix[HTTP_MOUNTS_MAX][32];
};

/* Fills out with one callback mount per route prefix ("/healthz", "/api"),
 * bound to protocol, chained to next (the file mount). Returns the first
 * mount, or NULL when the routes have more prefixes than fit. */
const struct lws_http_mount *http_mounts(const struct http_server *srv, struct http_mounts *out,
                                         const char *protocol, const struct lws_http_mount *next);

#endif
