/* The gateway's HTTP handlers. */
#include "routes.h"

#include <libwebsockets.h>
#include <stdio.h>

#include "http.h"
#include "pipeline.h"

/* GET /healthz: what the gateway holds and whether it is stopping. */
static void get_healthz(void *ctx, http_request_t *req)
{
    const struct pipeline *p = ctx;
    struct kafka_status kafka = kafka_status(p->kafka);
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"users\":%zu,\"connections\":%zu,\"inflight\":%zu,"
                     "\"storeBacklog\":%zu,\"kafkaPending\":%zu,\"partitions\":%d}\n",
                     p->stopping ? "stopping" : "ok", hub_user_count(p->hub),
                     hub_conn_count(p->hub), hub_inflight_count(p->hub),
                     store_worker_backlog(p->store), kafka.pending, kafka.assigned);
    http_respond(req, p->stopping ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_OK,
                 "application/json", body, (size_t)n);
}

const struct http_route gateway_routes[] = {
    {"GET", "/healthz", 0, get_healthz},
};
const size_t gateway_nroutes = sizeof(gateway_routes) / sizeof(gateway_routes[0]);
