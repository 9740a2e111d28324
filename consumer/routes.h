/* The gateway's HTTP routes and their handlers; each handler's ctx is a
 * routes_view of the gateway's parts, which it reads and asks. */
#ifndef CONSUMER_ROUTES_H
#define CONSUMER_ROUTES_H

#include <stddef.h>

#include "http_route.h"
#include "api_keys.h"
#include "http.h"
#include "pipeline.h"
#include "ws_session.h"

struct routes_view {
    const struct pipeline *pipe;
    struct ws_server *ws;
    const struct api_keys *const *keys; /* the gateway's, re-read on SIGHUP; may be NULL */
    int ops_open;                        /* /metrics without a key (--ops-open) */
    struct publisher *publisher;         /* POST /api/notifications */
    size_t publish_max;                  /* its body's bytes */
    size_t max_user_ids;                 /* --max-user-ids, checked before publishing */
    const char *web_root;                /* where status.html is */
};

/* Answers with a JSON body (a NUL-ended string). */
void respond_json(http_request_t *req, int status, const char *body);
/* Whether user (a path's {userId}) is a valid user id; answers 400 when
 * not. */
int user_param_ok(http_request_t *req, const char *user);
/* Adds the CORS headers for an allowed Origin; before answering. */
void cors(const struct routes_view *v, http_request_t *req);
/* Whether the caller brought one of the API keys; answers 401/403 itself
 * when not (with the CORS headers, as every API answer). */
int api_key_caller(const struct routes_view *v, http_request_t *req);
/* POST /api/notifications, and the seeds' /publisher and /send-message
 * (routes_publish.c). */
void post_notifications(void *ctx, http_request_t *req);
void post_publisher(void *ctx, http_request_t *req);
void post_send_message(void *ctx, http_request_t *req);
/* The inbox (routes_inbox.c): GET /api/users/{userId}/notifications,
 * /messages and /api/messages; POST .../{id}/ack and .../ack-all. */
void get_user_notifications(void *ctx, http_request_t *req);
void get_messages(void *ctx, http_request_t *req);
void post_ack(void *ctx, http_request_t *req);
void post_ack_all(void *ctx, http_request_t *req);

extern const struct http_route gateway_routes[];
extern const size_t gateway_nroutes;
extern const struct http_route health_routes[];
extern const size_t health_nroutes;

#endif
