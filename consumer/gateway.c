/* The gateway's wiring and life cycle: creates the hub, the store worker,
 * the Kafka consumer and the libwebsockets context, runs the loop (the
 * pipeline moves work between the parts at each turn) and winds down at a
 * stop. The lws callback here only dispatches: WebSocket events to
 * ws_session.c, HTTP to http.c and the routes in routes.c. Everything here
 * runs on the single service thread; the other threads reach it through
 * their hand-off queues, which wake the loop with lws_cancel_service().
 *
 * The loop is libev's (epoll), which this file owns and lws joins as a
 * foreign loop: lws's own poll() loop walks every connection's pollfd on
 * every wake, so at a steady rate with thousands of connections most of
 * the gateway's CPU went to that walk, not to the few sockets with work. */
#include "gateway.h"

#include <ev.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "embedded.h"
#include "http.h"
#include "hub.h"
#include "log.h"
#include "pipeline.h"
#include "publish.h"
#include "routes.h"
#include "store.h"
#include "timeutil.h"
#include "webfiles.h"
#include "ws_session.h"
#include "ws_upgrade.h"
#include "xalloc.h"

#define WINDOW_BYTES (1u << 20) /* per connection, queued and unacknowledged */
#define FETCH_BATCH 128
/* Live notifications held in memory for one user whose replay or windows
 * are not ready (8 windows' worth at the default); past it they go
 * through the store. */
#define HELD_PER_USER 2048
#define TICK_US (1 * LWS_US_PER_SEC)
/* libwebsockets allocates this for every connection: clients only send
 * acks of a few dozen bytes (a UUIDv7 id: 58), and longer messages (tokens)
 * are reassembled up to CLIENT_MSG_MAX from several pieces. */
#define RX_BUFFER_BYTES 128
#define EMBEDDED_PARTITIONS 3
#define EXPIRY_INTERVAL_MS 60000 /* how often the store's limits are applied */
#define PROTOCOL "notifications"
/* A node silent this long is dead to the others: the consumer group's
 * session.timeout.ms, after which its partitions move too. */
#define CLUSTER_LIVE_MS 10000

struct gateway {
    struct config conf;
    struct ev_loop *loop;
    struct lws_context *ctx;
    struct pipeline pipe; /* the hub, the store worker, Kafka */
    embedded_t *embedded;
    int embedded_open; /* producers let in: the consumer has its partitions */
    char embedded_port[32]; /* "127.0.0.1:PORT": where producers reach it */
    lws_sorted_usec_list_t tick;
    publisher_t *publisher;             /* POST /api/notifications */
    lws_sorted_usec_list_t publish_tick; /* armed while it has messages out */
    int publish_armed;
    lws_sorted_usec_list_t turn_end;
    int turn_end_scheduled;
    /* Set by a signal handler: a plain flag, read by the loop after each
     * wait (the signal interrupts the wait; the tick bounds it anyway). */
    volatile sig_atomic_t stop_requested;
    volatile sig_atomic_t reload_requested;
    int failed; /* stopping because the gateway cannot go on: gateway_run returns -1 */
    struct ws_server ws;
    auth_t *auth;
    struct http_server http;
    struct routes_view view; /* what the HTTP handlers read */
    api_keys_t *keys;        /* --api-keys-file, or NULL */
    struct lws_vhost *health_vhost; /* --health-listen, or NULL */
    struct http_server health_http;
    struct http_mounts health_mounts;
    struct http_mounts mounts;
    struct lws_http_mount files;
};

/* lws's per-session data, for a WebSocket or a plain HTTP connection. The
 * WebSocket part comes first: ws_hub_closed finds it from the wsi. */
struct session {
    struct ws_session ws;
    struct http_session http;
};

static int link_ready(void *link)
{
    return cluster_link_ready(link);
}

/* Before a partition moves: what this node forwarded from it is written
 * (a few ms; at most 100, as the other partitions wait meanwhile). */
static void link_drain(void *link)
{
    cluster_link_drain(link, 100);
}

static void wake_loop(void *arg);

/* The inbox of a dead node, read in its group as it would have. */
static kafka_t *start_drain(void *arg, const char *node, int source)
{
    gateway_t *g = arg;
    char topic[512], group[512], err[512];
    cluster_inbox_topic(topic, sizeof(topic), g->conf.topic, node);
    snprintf(group, sizeof(group), "%s.%s", g->conf.group, node);
    struct kafka_conf dc = {.brokers = g->conf.brokers,
                            .topic = topic,
                            .group = group,
                            .props = g->conf.kafka_props,
                            .budget = &g->pipe.budget,
                            .inbox = 1,
                            .source = source};
    kafka_t *k = kafka_start(&dc, wake_loop, g, err, sizeof(err));
    if (!k)
        log_error("cluster: cannot drain the inbox of node %s: %s", node, err);
    return k;
}

/* Another node's operator disconnected user. */
static void disconnect_user(void *arg, const char *user)
{
    gateway_t *g = arg;
    size_t n = ws_disconnect_user(&g->ws, user);
    log_info("another gateway's operator disconnected %s: %zu connections here", user, n);
}

static gateway_t *gateway_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- each turn: what it produced goes out at once ---- */

static void on_turn_end(lws_sorted_usec_list_t *sul)
{
    gateway_t *g = lws_container_of(sul, gateway_t, turn_end);
    g->turn_end_scheduled = 0;
    ws_flush(&g->ws);
    pipeline_hand_on(&g->pipe);
}

/* Acks and connects arrive one per callback: collect a turn's worth. */
static void schedule_turn_end(void *arg)
{
    gateway_t *g = arg;
    if (g->turn_end_scheduled)
        return;
    g->turn_end_scheduled = 1;
    lws_sul_schedule(g->ctx, 0, &g->turn_end, on_turn_end, 1);
}

/* hub_ops.acked: the "acked" frame goes out at the end of this turn. */
static void tell_acked(void *ctx, void *transport, const char *id)
{
    (void)ctx;
    gateway_t *g = gateway_of(transport);
    ws_send_acked(&g->ws, transport, id);
    schedule_turn_end(g);
}

/* hub_ops.want_write: the transport is the lws wsi; its frames go out at
 * the end of this turn, with the others'. */
static void want_write(void *ctx, void *transport)
{
    (void)ctx;
    gateway_t *g = gateway_of(transport);
    ws_queue_write(&g->ws, transport);
    schedule_turn_end(g);
}

/* Embedded mode's welcome, once producers are let in. */
static void say_ready(const gateway_t *g)
{
    char brokers[64] = "";
    if (g->conf.embedded_port != 9092)
        snprintf(brokers, sizeof(brokers), " --brokers 127.0.0.1:%d", g->conf.embedded_port);
    log_info("ready: open http://localhost:%d/?user=u1&autoconnect=1 and send a notification "
             "with: ./build/producer%s --user u1 --message \"Hello\"",
             g->conf.port, brokers);
    if (auth_required(g->auth))
        log_info("the page needs a token for u1: paste the output of "
                 "JWT_SECRET=<the gateway's secret> ./build/producer --token-for u1");
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
    gateway_t *g = lws_container_of(sul, gateway_t, tick);
    if (g->embedded && !g->embedded_open && kafka_status(g->pipe.kafka).assigned > 0) {
        embedded_open(g->embedded);
        g->embedded_open = 1;
        say_ready(g);
    }
    const char *failed = kafka_status(g->pipe.kafka).failed;
    if (!failed)
        failed = cluster_link_failed(g->pipe.link);
    if (!failed)
        failed = kafka_status(g->pipe.inbox).failed;
    if (failed && !g->stop_requested) {
        log_error("cannot go on: %s", failed);
        g->failed = 1;
        g->stop_requested = 1;
    }
    hub_tick(g->pipe.hub, now_mono_ms());
    events_poll(g->pipe.events);
    peers_sweep(g->ws.peers, now_mono_ms());
    pipeline_take_work(&g->pipe); /* also retries intake held back by a full store backlog */
    lws_sul_schedule(g->ctx, 0, &g->tick, on_tick, TICK_US);
}

/* Delivery reports of HTTP publishes, every few ms while some are out. */
#define PUBLISH_POLL_US (5 * LWS_US_PER_MS)

static void on_publish_tick(lws_sorted_usec_list_t *sul)
{
    gateway_t *g = lws_container_of(sul, gateway_t, publish_tick);
    publish_poll(g->publisher);
    g->publish_armed = publish_pending(g->publisher) > 0;
    if (g->publish_armed)
        lws_sul_schedule(g->ctx, 0, &g->publish_tick, on_publish_tick, PUBLISH_POLL_US);
}

static void wake_loop(void *arg)
{
    gateway_t *g = arg;
    lws_cancel_service(g->ctx);
}

/* ---- the lws callback: a dispatcher ---- */

/* The routes of the listener the request came to. */
static const struct http_server *http_of(const gateway_t *g, struct lws *wsi)
{
    return lws_get_vhost(wsi) == g->health_vhost ? &g->health_http : &g->http;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct session *s = user;
    gateway_t *g = gateway_of(wsi);

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (g)
            pipeline_take_work(&g->pipe);
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        return ws_on_established(&g->ws, wsi, &s->ws);
    case LWS_CALLBACK_RECEIVE:
        return ws_on_receive(&g->ws, wsi, &s->ws, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_on_writeable(&g->ws, wsi, &s->ws);
    case LWS_CALLBACK_CLOSED:
        ws_on_closed(&g->ws, &s->ws);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (lws_get_vhost(wsi) == g->health_vhost)
            return -1; /* /healthz only there */
        return ws_confirm_upgrade(&g->ws, wsi);
    case LWS_CALLBACK_HTTP:
        return http_on_request(http_of(g, wsi), wsi, &s->http);
    case LWS_CALLBACK_HTTP_BODY:
        return http_on_body(wsi, &s->http, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return http_on_body_done(http_of(g, wsi), wsi, &s->http);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_on_writeable(wsi, &s->http);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL: /* per-session data is freed after this */
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s)
            http_on_closed(&s->http);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* First in the list: a WebSocket that names no subprotocol, as the
 * original design's clients do, is bound to it. */
static const struct lws_protocols protocols[] = {
    /* tx_packet_size: left at 0, lws cuts every send() to the receive
     * buffer's size and copies the rest for later writable callbacks. */
    {PROTOCOL, callback, sizeof(struct session), RX_BUFFER_BYTES, 0, NULL, WS_WRITE_MAX},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Added to every HTTP response: the page and the health answer are live. */
static const struct lws_protocol_vhost_options nosniff = {
    NULL, NULL, "x-content-type-options:", "nosniff"};
static const struct lws_protocol_vhost_options no_cache = {
    &nosniff, NULL, "cache-control:", "no-cache"};

/* ---- life cycle ---- */

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        n--;
    if (level & LLL_ERR)
        log_error("lws: %.*s", (int)n, line);
    else if (level & LLL_WARN)
        log_warn("lws: %.*s", (int)n, line);
    else
        log_debug("lws: %.*s", (int)n, line);
}

static int listen_http(gateway_t *g, char *errstr, size_t size)
{
    static const lws_retry_bo_t retry = {
        .secs_since_valid_ping = 25,   /* ping an idle client… */
        .secs_since_valid_hangup = 60, /* …and drop one that stopped answering */
    };
    const struct config *c = &g->conf;
    struct lws_context_creation_info info;

    g->files.mountpoint = "/";
    g->files.mountpoint_len = 1;
    g->files.origin = c->web_root;
    g->files.def = "test.html";
    g->files.origin_protocol = LWSMPRO_FILE;
    g->view = (struct routes_view){&g->pipe, &g->ws, (const struct api_keys *const *)&g->keys,
                                   c->ops_open, NULL, (size_t)c->publish_max_bytes,
                                   (size_t)c->max_user_ids, c->web_root};
    g->http = (struct http_server){gateway_routes, gateway_nroutes, &g->view};

    memset(&info, 0, sizeof(info));
    info.protocols = protocols;
    info.headers = &no_cache;
    info.user = g;
    info.retry_and_idle_policy = &retry;
    info.alpn = "http/1.1"; /* HTTP/2 in this libwebsockets has known defects */
    int tls = *c->tls_cert_file != '\0';
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_LIBEV | (tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
    g->loop = ev_loop_new(EVBACKEND_EPOLL);
    if (!g->loop) {
        snprintf(errstr, size, "cannot create the event loop (epoll)");
        return -1;
    }
    void *loops[] = {g->loop};
    info.foreign_loops = loops;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    g->ctx = lws_create_context(&info);
    if (!g->ctx) {
        snprintf(errstr, size, "cannot start libwebsockets (is its libev plugin, "
                               "libwebsockets-evlib-ev, installed?)");
        return -1;
    }

    /* The port clients use: WebSocket, the routes and the files; with TLS
     * only wss:// and https:// (plain ws:// is refused there). */
    info.port = c->port;
    info.iface = *c->bind ? c->bind : NULL;
    info.mounts = http_mounts(&g->http, &g->mounts, PROTOCOL, &g->files);
    if (!info.mounts) {
        snprintf(errstr, size, "the HTTP routes have more path prefixes than %d", HTTP_MOUNTS_MAX);
        return -1;
    }
    info.ssl_cert_filepath = tls ? c->tls_cert_file : NULL;
    info.ssl_private_key_filepath = tls ? c->tls_key_file : NULL;
    /* Behind trusted proxies the gateway accepts itself, to read PROXY
     * headers before libwebsockets sees a byte (proxy_listen.h). */
    int own_listener = *c->trusted_proxies != '\0';
    if (own_listener)
        info.port = CONTEXT_PORT_NO_LISTEN;
    struct lws_vhost *vhost = lws_create_vhost(g->ctx, &info);
    if (vhost && own_listener) {
        g->ws.proxy = proxy_listener_new(g->loop, vhost, c->bind, c->port, &g->ws.proxies, errstr,
                                         size);
        if (!g->ws.proxy)
            return -1;
    }
    if (!vhost) {
        snprintf(errstr, size,
                 tls ? "cannot listen on %s:%d, or load --tls-cert-file/--tls-key-file (is the "
                       "port in use? are they PEM and do they match?)"
                     : "cannot listen on %s:%d (is the port in use?)",
                 info.iface ? info.iface : "*", c->port);
        return -1;
    }

    /* Plain HTTP for health checks that cannot speak TLS: /healthz alone. */
    if (*c->health_listen) {
        char host[256];
        const char *colon = strrchr(c->health_listen, ':');
        snprintf(host, sizeof(host), "%.*s", (int)(colon - c->health_listen), c->health_listen);
        g->health_http = (struct http_server){health_routes, health_nroutes, &g->view};
        info.vhost_name = "health";
        info.port = atoi(colon + 1);
        info.iface = host;
        info.mounts = http_mounts(&g->health_http, &g->health_mounts, PROTOCOL, NULL);
        info.ssl_cert_filepath = info.ssl_private_key_filepath = NULL;
        info.options &= ~LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        g->health_vhost = lws_create_vhost(g->ctx, &info);
        if (!g->health_vhost) {
            snprintf(errstr, size, "cannot listen on --health-listen %s (is the port in use?)",
                     c->health_listen);
            return -1;
        }
    }
    if (webfiles_confine(g->ctx, c->web_root) != 0)
        log_warn("the web root %s does not exist: no files are served (test.html neither)",
                 c->web_root);
    lws_sul_schedule(g->ctx, 0, &g->tick, on_tick, TICK_US);
    return 0;
}

gateway_t *gateway_new(const struct config *c, char *errstr, size_t size)
{
    gateway_t *g = xcalloc(1, sizeof(*g));
    g->conf = *c;

    g->pipe.budget.limit = (size_t)c->memory_budget_mb << 20;
    struct hub_ops ops = {.want_write = want_write, .acked = tell_acked, .closed = ws_hub_closed};
    pipeline_hub_ops(&g->pipe, &ops);
    struct hub_limits limits = {
        .window = (size_t)c->window,
        .window_bytes = WINDOW_BYTES,
        .ack_timeout_ms = (int64_t)c->ack_timeout_s * 1000,
        .conns_per_user = (size_t)c->max_connections_per_user,
        .fetch_batch = FETCH_BATCH,
        .frame_headroom = LWS_PRE,
        .held_per_user = HELD_PER_USER,
        .budget = &g->pipe.budget,
    };
    g->auth = auth_new(c, errstr, size);
    if (!g->auth)
        goto fail;
    char mode[64];
    if (c->auth_defaulted)
        log_warn("auth: none (the embedded default): anyone who reaches the port can connect as "
                 "any user; set --auth jwt to require tokens");
    else if (!auth_required(g->auth))
        log_warn("auth: none (--auth none): anyone who reaches the port can connect as any user");
    else
        log_info("auth: %s", auth_describe(g->auth, mode, sizeof(mode)));
    g->ws.auth = g->auth;
    if (*c->api_keys_file) {
        g->keys = api_keys_load(c->api_keys_file, errstr, size);
        if (!g->keys)
            goto fail;
        log_info("API keys: %zu from %s", api_keys_count(g->keys), c->api_keys_file);
    }
    if (c->ops_open_defaulted)
        log_warn("/metrics and /status.json are open to anyone (the embedded default); OPS_OPEN=false closes it");
    /* config_load checked both lists. */
    origins_parse(&g->ws.origins, c->allowed_origins, errstr, size);
    proxies_parse(&g->ws.proxies, c->trusted_proxies, errstr, size);
    struct peer_conf pc = {c->max_connections_per_address, c->connect_rate_per_address,
                           c->connect_burst_per_address};
    g->ws.peers = peers_new(&pc);
    g->pipe.hub = g->ws.hub = hub_new(&ops, &limits);
    g->ws.max_connections = (size_t)c->max_connections;
    g->ws.send_limiter = send_limiter_new((double)c->send_rate);
    g->ws.anonymous_send = c->allow_anonymous_send;
    g->ws.stopping = &g->pipe.stopping;
    g->ws.turn_work = schedule_turn_end;
    g->ws.arg = g;

    /* A connection for each kind of call: none waits behind a slow other. */
    store_t *conns[STORE_LANES] = {0};
    for (int i = 0; i < STORE_LANES; i++) {
        conns[i] = store_open(c->store_uri, c->mongodb_db, c->store_timeout_s * 1000, errstr,
                              size);
        if (!conns[i]) {
            for (int j = 0; j < i; j++)
                store_close(conns[j]);
            goto fail;
        }
        store_keep_history(conns[i], (int64_t)c->history_retention_s * 1000);
    }
    g->pipe.history = c->history_retention_s > 0;
    g->pipe.room_retention_ms = (int64_t)c->room_retention_s * 1000;
    struct store_expiry expiry = {(size_t)c->max_pending_per_user,
                                  (int64_t)c->pending_retention_s * 1000,
                                  (int64_t)c->history_retention_s * 1000,
                                  (int64_t)c->room_retention_s * 1000, EXPIRY_INTERVAL_MS};
    g->pipe.store = store_worker_start(conns, &expiry, &g->pipe.budget, wake_loop, g);
    if (!g->pipe.store) {
        snprintf(errstr, size, "cannot start the store worker");
        goto fail;
    }
    if (listen_http(g, errstr, size) != 0)
        goto fail;

    struct kafka_conf kc = {.brokers = c->brokers,
                            .topic = c->topic,
                            .group = c->group,
                            .props = c->kafka_props,
                            .dlq_topic = c->dlq_topic,
                            .events_topic = c->events_topic,
                            .budget = &g->pipe.budget,
                            .max_user_ids = (size_t)c->max_user_ids};
    char presence[512], inbox[512], inbox_group[512];
    cluster_presence_topic(presence, sizeof(presence), c->topic);
    cluster_inbox_topic(inbox, sizeof(inbox), c->topic, c->node_id);
    snprintf(inbox_group, sizeof(inbox_group), "%s.%s", c->group, c->node_id);
    if (c->embedded) {
        const char *topics[] = {c->topic, presence, inbox, c->dlq_topic,
                                *c->events_topic ? c->events_topic : NULL, NULL};
        g->embedded = embedded_start(topics, EMBEDDED_PARTITIONS, c->embedded_port, errstr, size);
        if (!g->embedded)
            goto fail;
        kc.brokers = g->conf.brokers = embedded_bootstraps(g->embedded);
        kc.embedded = g->embedded;
        /* The gateway's own publishing is paced as every producer is. */
        snprintf(g->embedded_port, sizeof(g->embedded_port), "127.0.0.1:%d", c->embedded_port);
    }
    if (*c->events_topic) {
        g->pipe.events = events_new(kc.brokers, c->kafka_props, c->events_topic, errstr, size);
        if (!g->pipe.events)
            goto fail;
        kc.events = g->pipe.events;
    }
    /* Nothing is consumed before the node knows who holds which user. */
    struct cluster_link_conf lc = {kc.brokers, c->kafka_props, c->topic, c->group, c->node_id,
                                   c->embedded};
    g->pipe.cluster = cluster_new(c->node_id, CLUSTER_LIVE_MS);
    g->pipe.link = cluster_link_start(&lc, wake_loop, g, errstr, size);
    if (!g->pipe.link)
        goto fail;
    g->pipe.disconnect_user = disconnect_user;
    g->pipe.disconnect_arg = g;
    g->pipe.start_drain = start_drain;
    g->pipe.drain_arg = g;
    kc.gate = link_ready;
    kc.gate_arg = g->pipe.link;
    kc.before_revoke = link_drain;
    g->pipe.kafka = kafka_start(&kc, wake_loop, g, errstr, size);
    if (!g->pipe.kafka)
        goto fail;
    struct kafka_conf ic = {.brokers = kc.brokers,
                            .topic = inbox,
                            .group = inbox_group,
                            .props = c->kafka_props,
                            .budget = &g->pipe.budget,
                            .inbox = 1,
                            .gate = kc.gate,
                            .gate_arg = kc.gate_arg,
                            .source = 1};
    g->pipe.inbox = kafka_start(&ic, wake_loop, g, errstr, size);
    if (!g->pipe.inbox)
        goto fail;
    g->publisher = publisher_new(c->embedded ? g->embedded_port : kc.brokers, c->kafka_props,
                                 c->topic, c->publish_timeout_s * 1000, errstr, size);
    g->view.publisher = g->ws.publisher = g->publisher;
    if (!g->publisher)
        goto fail;
    return g;

fail:
    gateway_free(g);
    return NULL;
}

void gateway_request_stop(gateway_t *g)
{
    g->stop_requested = 1;
}

void gateway_request_reload(gateway_t *g)
{
    g->reload_requested = 1;
}

/* SIGHUP: the keys and the deny-list again; connections revoked now close.
 * A file that no longer reads leaves the old ones in force. */
static void reload(gateway_t *g)
{
    char err[512];
    if (*g->conf.api_keys_file) {
        api_keys_t *keys = api_keys_load(g->conf.api_keys_file, err, sizeof(err));
        if (!keys) {
            log_error("SIGHUP: %s; the API keys in force are kept", err);
        } else {
            api_keys_free(g->keys);
            g->keys = keys;
            log_info("SIGHUP: %zu API keys re-read", api_keys_count(keys));
        }
    }
    if (!auth_required(g->auth)) {
        log_info("SIGHUP: nothing to re-read (--auth none)");
        return;
    }
    if (auth_reload(g->auth, &g->conf, err, sizeof(err)) != 0) {
        log_error("SIGHUP: %s; the keys and deny-list in force are kept", err);
        return;
    }
    log_info("SIGHUP: keys and deny-list re-read");
    ws_close_revoked(&g->ws);
}

int gateway_run(gateway_t *g)
{
    log_info("listening on port %d; consuming %s as group %s from %s", g->conf.port,
             g->conf.topic, g->conf.group, g->conf.brokers);
    while (!g->stop_requested) {
        if (g->reload_requested) {
            g->reload_requested = 0;
            reload(g);
        }
        ev_run(g->loop, EVRUN_ONCE);
        if (g->publisher && !g->publish_armed && publish_pending(g->publisher)) {
            g->publish_armed = 1;
            lws_sul_schedule(g->ctx, 0, &g->publish_tick, on_publish_tick, PUBLISH_POLL_US);
        }
    }

    /* Wind down: no more intake; whatever clients hold unacknowledged goes
     * to the store; once stored (or at the deadline) commit and leave. */
    int64_t deadline = now_mono_ms() + (int64_t)g->conf.shutdown_timeout_s * 1000;
    log_info("stopping: storing %zu unacknowledged notifications, then committing",
             hub_inflight_count(g->pipe.hub));
    g->pipe.stopping = 1;
    kafka_stop(g->pipe.kafka);
    kafka_stop(g->pipe.inbox);
    hub_disconnect_all(g->pipe.hub); /* and each user's presence here ends */
    pipeline_hand_on(&g->pipe);
    /* Until what clients held is stored and every client got its close frame. */
    while ((store_worker_backlog(g->pipe.store) > 0 || g->ws.sessions > 0) &&
           now_mono_ms() < deadline)
        ev_run(g->loop, EVRUN_ONCE);
    store_worker_stop(g->pipe.store, deadline);
    /* What went to other nodes' inboxes completes its offsets too, once
     * Kafka has it and the link handed the news over (it polls every
     * 50 ms). */
    int64_t left_ms = deadline - now_mono_ms();
    cluster_link_drain(g->pipe.link, left_ms > 0 ? (int)left_ms : 0);
    struct timespec link_turn = {0, 120 * 1000000};
    nanosleep(&link_turn, NULL);
    pipeline_take_work(&g->pipe);
    size_t left = store_worker_backlog(g->pipe.store);
    if (left)
        log_warn("%zu notifications were not stored before the deadline: their offsets stay "
                 "uncommitted and they are consumed again on restart", left);
    /* A little beyond the store's deadline, for the final commit. */
    int64_t commit_by = (deadline > now_mono_ms() ? deadline : now_mono_ms()) + 1000;
    kafka_close(g->pipe.kafka, commit_by);
    kafka_close(g->pipe.inbox, commit_by);
    pipeline_drains_close(&g->pipe, commit_by);
    cluster_link_close(g->pipe.link, commit_by);
    g->pipe.kafka = g->pipe.inbox = NULL;
    g->pipe.link = NULL;
    log_info("stopped");
    return g->failed ? -1 : 0;
}

void gateway_free(gateway_t *g)
{
    if (!g)
        return;
    kafka_close(g->pipe.kafka, now_mono_ms() + 2000);
    kafka_close(g->pipe.inbox, now_mono_ms() + 2000);
    pipeline_drains_close(&g->pipe, now_mono_ms() + 2000);
    kafka_wait_detached(); /* drains given back lately: they use the budget */
    cluster_link_close(g->pipe.link, now_mono_ms() + 2000);
    cluster_free(g->pipe.cluster);
    /* Its last reports answer requests: before the context goes. */
    publisher_free(g->publisher);
    events_free(g->pipe.events, 2000);
    embedded_stop(g->embedded);
    proxy_listener_free(g->ws.proxy); /* its watchers are on the loop */
    if (g->ctx)
        lws_context_destroy(g->ctx);
    if (g->loop)
        ev_loop_destroy(g->loop);
    store_worker_free(g->pipe.store);
    hub_free(g->pipe.hub);
    auth_free(g->auth);
    api_keys_free(g->keys);
    origins_free(&g->ws.origins);
    ws_server_free(&g->ws);
    peers_free(g->ws.peers);
    pipeline_clear(&g->pipe);
    free(g);
}
