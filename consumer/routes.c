/* The gateway's HTTP handlers. */
#include "routes.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"

/* What /status.json says of the gateway, Kafka and the store. */
struct health_words {
    const char *status, *kafka, *store;
};

static struct health_words health_words(const struct pipeline *p,
                                        const struct kafka_status *kafka,
                                        const struct store_health *store)
{
    return (struct health_words){
        p->stopping                            ? "stopping"
        : kafka->unreachable || store->failing ? "degraded"
                                               : "ok",
        kafka->unreachable ? "unreachable" : "ok", store->failing ? "failing" : "ok"};
}

/* GET /healthz: liveness, for a supervisor that restarts what hangs: the
 * loop answers, 200 {"status":"ok"}, or 503 {"status":"stopping"} while it
 * drains. What the gateway holds and waits for is /status.json's and
 * /metrics'; whether to send it clients is /readyz's. */
static void get_healthz(void *ctx, http_request_t *req)
{
    const struct routes_view *v = ctx;
    static const char ok[] = "{\"status\":\"ok\"}\n", stopping[] = "{\"status\":\"stopping\"}\n";
    if (v->pipe->stopping)
        http_respond(req, HTTP_STATUS_SERVICE_UNAVAILABLE, "application/json", stopping,
                     sizeof(stopping) - 1);
    else
        http_respond(req, HTTP_STATUS_OK, "application/json", ok, sizeof(ok) - 1);
}

/* GET /readyz: whether a load balancer should send clients here: the
 * node read who holds which user (presence, to its end at start), its
 * consumers are members of their groups (with partitions or none, during
 * a rebalance too), a broker answers, the store answers, and the gateway
 * is not draining. 503 with the reasons otherwise. */
static void get_readyz(void *ctx, http_request_t *req)
{
    const struct routes_view *v = ctx;
    const struct pipeline *p = v->pipe;
    struct kafka_status kafka = kafka_status(p->kafka);
    const char *reasons[8];
    size_t n = 0;
    if (p->stopping)
        reasons[n++] = "draining";
    if (kafka.failed || cluster_link_failed(p->link))
        reasons[n++] = "kafka: consuming stopped (see the log)";
    if (kafka.unreachable)
        reasons[n++] = "kafka unreachable";
    else if (!cluster_link_ready(p->link))
        reasons[n++] = "presence not read yet";
    else if (!kafka.joined || !kafka_status(p->inbox).joined)
        reasons[n++] = "not in the consumer group yet";
    if (store_worker_health(p->store).failing)
        reasons[n++] = "store failing";
    char body[512];
    int len = snprintf(body, sizeof(body), "{\"ready\":%s", n ? "false,\"reasons\":[" : "true");
    for (size_t i = 0; i < n; i++)
        len += snprintf(body + len, sizeof(body) - (size_t)len, "%s\"%s\"", i ? "," : "",
                        reasons[i]);
    len += snprintf(body + len, sizeof(body) - (size_t)len, "%s}\n", n ? "]" : "");
    http_respond(req, n ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_OK, "application/json",
                 body, (size_t)len);
}

void respond_json(http_request_t *req, int status, const char *body)
{
    http_respond(req, status, "application/json", body, strlen(body));
}

int user_param_ok(http_request_t *req, const char *user)
{
    if (user && notification_user_valid(user, strlen(user)))
        return 1;
    respond_json(req, HTTP_STATUS_BAD_REQUEST,
                 "{\"error\":\"invalid userId: 1 to 128 letters, digits or . _ - @ : + ~\"}\n");
    return 0;
}

/* CORS on the API routes: a page from an allowed origin (--allowed-origins,
 * or the gateway's own) may read the answer. Call before answering. */
void cors(const struct routes_view *v, http_request_t *req)
{
    char origin[300], host[300];
    const char *o = http_request_header(req, WSI_TOKEN_ORIGIN, origin, sizeof(origin));
    http_add_header(req, "vary:", "Origin");
    if (o && origin_allowed(&v->ws->origins, o,
                            http_request_header(req, WSI_TOKEN_HOST, host, sizeof(host))))
        http_add_header(req, "access-control-allow-origin:", o);
}

/* OPTIONS on an API route: the browser's preflight. */
static void preflight(void *ctx, http_request_t *req)
{
    cors(ctx, req);
    http_add_header(req, "access-control-allow-headers:", "Authorization, Content-Type");
    http_add_header(req, "access-control-allow-methods:", "GET, POST");
    http_add_header(req, "access-control-max-age:", "600");
    http_respond(req, HTTP_STATUS_NO_CONTENT, "text/plain", "", 0);
}

int api_key_caller(const struct routes_view *v, http_request_t *req)
{
    cors(v, req); /* errors too: a page may read why */
    char bearer[API_KEY_MAX + 8];
    const api_keys_t *keys = v->keys ? *v->keys : NULL;
    if (!keys) {
        respond_json(req, HTTP_STATUS_FORBIDDEN,
                     "{\"error\":\"no API keys configured: see --api-keys-file\"}\n");
        return 0;
    }
    const char *key = http_request_bearer(req, bearer, sizeof(bearer));
    if (!key) {
        respond_json(req, HTTP_STATUS_UNAUTHORIZED,
                     "{\"error\":\"send Authorization: Bearer <API key>\"}\n");
        return 0;
    }
    const char *name = api_keys_match(keys, key, strlen(key));
    if (!name) {
        respond_json(req, HTTP_STATUS_FORBIDDEN, "{\"error\":\"not an API key of this gateway\"}\n");
        return 0;
    }
    log_debug("request with the API key of %s", name);
    return 1;
}

/* Who may read the operators' routes: an API key, or anyone with
 * --ops-open. */
static int operator_may(const struct routes_view *v, http_request_t *req)
{
    return v->ops_open || api_key_caller(v, req);
}

/* GET /metrics: Prometheus text (metrics.c). */
static void get_metrics(void *ctx, http_request_t *req)
{
    static char body[16384];
    if (!operator_may(ctx, req))
        return;
    size_t len = metrics_render(ctx, body, sizeof(body));
    http_respond(req, HTTP_STATUS_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

/* A file of --web-root (at most 64 KB), or 404 naming it. */
static void serve_web_file(const struct routes_view *v, http_request_t *req, const char *name,
                           const char *type)
{
    char path[1024];
    static char file[64 << 10];
    snprintf(path, sizeof(path), "%s/%s", v->web_root, name);
    FILE *f = fopen(path, "rb");
    size_t len = f ? fread(file, 1, sizeof(file), f) : 0;
    if (f)
        fclose(f);
    if (!len) {
        char body[128];
        snprintf(body, sizeof(body), "{\"error\":\"no %s in --web-root\"}\n", name);
        respond_json(req, HTTP_STATUS_NOT_FOUND, body);
        return;
    }
    http_respond(req, HTTP_STATUS_OK, type, file, len);
}

/* GET /status: the page (web/status.html), open: it holds no data and
 * asks /status.json, which wants a key. */
static void get_status_page(void *ctx, http_request_t *req)
{
    serve_web_file(ctx, req, "status.html", "text/html; charset=utf-8");
}

/* GET /notify.js: the client library, an ES module. Any page may load it
 * (test.html opened as a file has the origin "null"): it holds nothing
 * but code. */
static void get_notify_js(void *ctx, http_request_t *req)
{
    http_add_header(req, "access-control-allow-origin:", "*");
    serve_web_file(ctx, req, "notify.js", "text/javascript; charset=utf-8");
}

#define PEERS_MAX 256

/* GET /status.json: what the gateway holds and waits for, for operators
 * and the status page: "status" is "ok", "degraded" (Kafka unreachable or
 * the store failing: it keeps serving and retrying) or "stopping". */
static void get_status_json(void *ctx, http_request_t *req)
{
    const struct routes_view *v = ctx;
    if (!operator_may(v, req))
        return;
    const struct pipeline *p = v->pipe;
    const struct ws_refusals *r = &v->ws->refused;
    struct kafka_status kafka = kafka_status(p->kafka);
    struct store_health store = store_worker_health(p->store);
    const budget_t *b = &p->budget;
    struct health_words words = health_words(p, &kafka, &store);
    const char *peers[PEERS_MAX];
    static char body[2048 + 256 * 32];
    int n = snprintf(
        body, sizeof(body),
        "{\"status\":\"%s\",\"kafka\":\"%s\",\"store\":\"%s\",\"users\":%zu,"
        "\"connections\":%zu,\"inflight\":%zu,\"consumed\":%lu,\"pushed\":%lu,\"acked\":%lu,"
        "\"stored\":%lu,\"replayed\":%lu,\"deadLettered\":%lu,\"expired\":%lu,"
        "\"storeBacklog\":%zu,"
        "\"storeFailures\":%lu,\"kafkaPending\":%zu,\"partitions\":%d,"
        "\"memoryUsed\":%zu,\"memoryBudget\":%zu,"
        "\"memory\":{\"budget\":%zu,\"used\":%zu,\"handoff\":%zu,\"windows\":%zu,"
        "\"held\":%zu,\"storing\":%zu,\"full\":%s},"
        "\"cluster\":{\"node\":\"%s\",\"ready\":%s,\"peers\":%zu,\"remoteUsers\":%zu,"
        "\"inboxPending\":%zu},"
        "\"refused\":{\"origin\":%lu,\"addressLimit\":%lu,\"addressRate\":%lu,"
        "\"token\":%lu},\"lag\":{",
        words.status, words.kafka, words.store, hub_user_count(p->hub), hub_conn_count(p->hub),
        hub_inflight_count(p->hub), p->count.consumed, v->ws->pushed, v->ws->acked,
        p->count.stored, p->count.replayed, kafka.dead_lettered, kafka.expired + store.expired,
        store_worker_backlog(p->store),
        store.failures, kafka.pending, kafka.assigned, budget_used(b), b->limit, b->limit,
        budget_used(b), budget_part(b, BUDGET_HANDOFF), budget_part(b, BUDGET_WINDOWS),
        budget_part(b, BUDGET_HELD), budget_part(b, BUDGET_STORE),
        budget_full(b) ? "true" : "false", cluster_self(p->cluster),
        cluster_link_ready(p->link) && kafka_status(p->inbox).joined ? "true" : "false",
        cluster_peers(p->cluster, peers, PEERS_MAX),
        cluster_remote_users(p->cluster), kafka_status(p->inbox).pending, r->origin,
        r->address_limit, r->address_rate, r->token);
    /* Records behind each assigned partition's end (-1: not known yet). */
    struct partition_lag lag[256];
    size_t nlag = kafka_lag(p->kafka, lag, 256);
    for (size_t i = 0; i < nlag; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "%s\"%d\":%lld", i ? "," : "",
                      (int)lag[i].partition, (long long)lag[i].lag);
    n += snprintf(body + n, sizeof(body) - (size_t)n, "}}\n");
    http_respond(req, HTTP_STATUS_OK, "application/json", body, (size_t)n);
}

/* POST /api/users/{userId}/disconnect: an operator closes the user's
 * connections (4003) on this gateway and asks every other live one to;
 * what they held is stored. */
static void post_disconnect(void *ctx, http_request_t *req)
{
    const struct routes_view *v = ctx;
    if (!api_key_caller(v, req))
        return;
    const char *user = http_request_param(req, "userId");
    if (!user_param_ok(req, user))
        return;
    size_t n = ws_disconnect_user(v->ws, user);
    size_t nodes = pipeline_disconnect_elsewhere(v->pipe, user);
    log_info("operator: disconnected %s (%zu connections here, %zu other gateways asked)", user,
             n, nodes);
    char body[96];
    int len = snprintf(body, sizeof(body), "{\"closed\":%zu,\"otherGateways\":%zu}\n", n,
                       nodes);
    http_respond(req, HTTP_STATUS_OK, "application/json", body, (size_t)len);
}

/* The plain --health-listen port serves these only. */
const struct http_route health_routes[] = {
    {"GET", "/healthz", 0, get_healthz},
    {"GET", "/health", 0, get_healthz},
    {"GET", "/readyz", 0, get_readyz},
};
const size_t health_nroutes = sizeof(health_routes) / sizeof(health_routes[0]);

const struct http_route gateway_routes[] = {
    {"GET", "/healthz", 0, get_healthz},
    {"GET", "/health", 0, get_healthz}, /* the seeds' name */
    {"GET", "/readyz", 0, get_readyz},
    {"GET", "/metrics", 0, get_metrics},
    {"GET", "/status", 0, get_status_page},
    {"GET", "/status.json", 0, get_status_json},
    {"GET", "/notify.js", 0, get_notify_js},
    /* The body's limit is PUBLISH_MAX_BYTES, checked by the handler. */
    {"POST", "/api/notifications", 16u << 20, post_notifications},
    {"OPTIONS", "/api/notifications", 0, preflight},
    {"POST", "/api/users/{userId}/disconnect", 0, post_disconnect},
    {"GET", "/api/users/{userId}/notifications", 0, get_user_notifications},
    {"OPTIONS", "/api/users/{userId}/notifications", 0, preflight},
    {"POST", "/api/users/{userId}/notifications/ack-all", 0, post_ack_all},
    {"OPTIONS", "/api/users/{userId}/notifications/ack-all", 0, preflight},
    {"POST", "/api/users/{userId}/notifications/{id}/ack", 0, post_ack},
    {"OPTIONS", "/api/users/{userId}/notifications/{id}/ack", 0, preflight},
    {"GET", "/messages", 0, get_messages},
    {"OPTIONS", "/messages", 0, preflight},
    {"GET", "/api/messages", 0, get_messages},
    {"OPTIONS", "/api/messages", 0, preflight},
    {"POST", "/publisher", 64u << 10, post_publisher},
    {"POST", "/send-message", 64u << 10, post_send_message},
};
const size_t gateway_nroutes = sizeof(gateway_routes) / sizeof(gateway_routes[0]);
