/* The libwebsockets adapter: each callback translates one event into calls
 * on the hub, the store worker or the Kafka consumer, and owns nothing of
 * the delivery rules. Everything here runs on the single service thread;
 * the other threads reach it through lws_cancel_service(). */
#include "gateway.h"

#include <libwebsockets.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ack.h"
#include "embedded.h"
#include "hub.h"
#include "kafka.h"
#include "log.h"
#include "notification.h"
#include "store.h"
#include "storeq.h"
#include "timeutil.h"
#include "wsframe.h"
#include "xalloc.h"

/* Puts handed to the store and not yet durable: past either limit the loop
 * stops taking notifications from Kafka until the store catches up. */
#define STORE_BACKLOG_MAX 20000
#define STORE_BACKLOG_BYTES_MAX (64u << 20)
#define WINDOW_BYTES (1u << 20) /* per connection, queued and unacknowledged */
#define FETCH_BATCH 128
#define TICK_US (1 * LWS_US_PER_SEC)
/* libwebsockets allocates this for every connection: clients only send
 * acks of a few dozen bytes, and longer frames are reassembled up to
 * ACK_FRAME_MAX from several reads. */
#define RX_BUFFER_BYTES 512
/* Bytes of frames put in one write to a connection. */
#define WRITE_BATCH_BYTES (32u << 10)
#define EMBEDDED_STORE "sqlite:data/notifications.db"
#define EMBEDDED_PARTITIONS 3

struct gateway {
    struct config conf;
    struct lws_context *ctx;
    hub_t *hub;
    storeq_t *storeq;
    kafka_t *kafka;
    embedded_t *embedded;
    lws_sorted_usec_list_t tick;
    lws_sorted_usec_list_t flush_sul;
    int flush_scheduled;
    volatile sig_atomic_t stop_requested;
    int stopping;
    size_t sessions; /* open WebSocket connections, hub's or not */
    /* Where frames are gathered for one write: a batch, or one frame of the
     * largest size a notification can have. */
    unsigned char wbuf[LWS_PRE + WRITE_BATCH_BYTES + NOTIF_JSON_MAX + 64];
    /* Offsets completed by acks during this turn of the loop. */
    struct part_offset *done;
    size_t ndone, done_cap;
};

/* Per connection (WebSocket or plain HTTP). */
struct session {
    hub_conn_t *conn;
    int counted; /* in gateway.sessions */
    int closing;
    char *rx; /* a client frame that came in several fragments */
    size_t rx_len;
    char http_body[512];
    size_t http_len;
};

static gateway_t *of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- what the hub asks of the world ---- */

static void op_want_write(void *ctx, void *transport)
{
    (void)ctx;
    lws_callback_on_writable(transport);
}

static void op_store(void *ctx, const hub_msg_t *m)
{
    gateway_t *g = ctx;
    storeq_put(g->storeq, m);
}

static void op_fetch(void *ctx, const char *user, int64_t after, size_t limit, uint64_t gen)
{
    gateway_t *g = ctx;
    storeq_fetch(g->storeq, user, after, limit, gen);
}

static void op_remove(void *ctx, const char *user, const char *id)
{
    gateway_t *g = ctx;
    storeq_remove(g->storeq, user, id);
}

static void op_offset_done(void *ctx, int32_t partition, int64_t offset)
{
    gateway_t *g = ctx;
    if (g->ndone == g->done_cap) {
        g->done_cap = g->done_cap ? g->done_cap * 2 : 256;
        g->done = xrealloc(g->done, g->done_cap * sizeof(*g->done));
    }
    g->done[g->ndone++] = (struct part_offset){partition, offset};
}

static void op_closed(void *ctx, void *transport)
{
    (void)ctx;
    struct session *s = lws_wsi_user(transport);
    s->conn = NULL;
    s->closing = 1;
    lws_callback_on_writable(transport);
}

/* ---- batching: what one turn of the loop produced goes out at once ---- */

static void flush_now(gateway_t *g)
{
    if (g->ndone) {
        kafka_offsets_done(g->kafka, g->done, g->ndone);
        g->ndone = 0;
    }
    storeq_flush(g->storeq);
}

static void on_flush(lws_sorted_usec_list_t *sul)
{
    gateway_t *g = lws_container_of(sul, gateway_t, flush_sul);
    g->flush_scheduled = 0;
    flush_now(g);
}

/* Acks and connects arrive one per callback: collect a turn's worth. */
static void schedule_flush(gateway_t *g)
{
    if (g->flush_scheduled)
        return;
    g->flush_scheduled = 1;
    lws_sul_schedule(g->ctx, 0, &g->flush_sul, on_flush, 1);
}

/* Results from the store worker, then new notifications from Kafka while
 * the store keeps up. */
static void take_work(gateway_t *g)
{
    struct storeq_results r;
    if (storeq_poll(g->storeq, &r)) {
        if (r.nstored)
            kafka_offsets_done(g->kafka, r.stored, r.nstored);
        for (size_t i = 0; i < r.nfetched; i++) {
            struct storeq_fetched *f = &r.fetched[i];
            hub_replayed(g->hub, f->user, f->gen, f->msgs, f->n, f->limit);
        }
        storeq_results_free(&r);
    }
    while (!g->stopping && storeq_backlog(g->storeq) < STORE_BACKLOG_MAX &&
           storeq_backlog_bytes(g->storeq) < STORE_BACKLOG_BYTES_MAX) {
        kafka_batch_t *b = kafka_take(g->kafka);
        if (!b)
            break;
        for (size_t i = 0; i < b->n; i++)
            hub_publish(g->hub, &b->msgs[i]);
        kafka_batch_free(b);
    }
    flush_now(g);
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
    gateway_t *g = lws_container_of(sul, gateway_t, tick);
    hub_tick(g->hub, now_mono_ms());
    take_work(g); /* also retries intake held back by a full store backlog */
    lws_sul_schedule(g->ctx, 0, &g->tick, on_tick, TICK_US);
}

static void wake_loop(void *arg)
{
    gateway_t *g = arg;
    lws_cancel_service(g->ctx);
}

/* ---- WebSocket ---- */

static int refuse(struct lws *wsi, enum lws_close_status code, const char *reason)
{
    lws_close_reason(wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

static int on_established(gateway_t *g, struct lws *wsi, struct session *s)
{
    char buf[NOTIF_USER_MAX + 16];
    const char *user;

    if (g->stopping)
        return refuse(wsi, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
    user = lws_get_urlarg_by_name(wsi, "userId=", buf, sizeof(buf));
    if (!user || !*user)
        user = lws_get_urlarg_by_name(wsi, "user_id=", buf, sizeof(buf));
    if (!user || !*user)
        return refuse(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                      "missing user: connect to ws://host:port/?userId=<user>");
    if (!notification_user_valid(user, strlen(user)))
        return refuse(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                      "invalid userId: 1 to 128 letters, digits or . _ - @ : + ~");
    if (hub_conn_count(g->hub) >= (size_t)g->conf.max_connections)
        return refuse(wsi, (enum lws_close_status)1013, /* try again later */
                      "server at its connection limit, try again later");
    s->conn = hub_connect(g->hub, user, wsi);
    if (!s->conn)
        return refuse(wsi, (enum lws_close_status)1013,
                      "too many connections for this user, try again later");
    log_debug("user %s connected (%zu connections)", user, hub_conn_count(g->hub));
    schedule_flush(g);
    return 0;
}

static int on_receive(gateway_t *g, struct lws *wsi, struct session *s, const char *in, size_t len)
{
    char id[NOTIF_ID_MAX + 1];
    char err[160];
    const char *frame = in;
    size_t frame_len = len;
    /* One read holding a whole message; otherwise the pieces (WebSocket
     * fragments, or one frame longer than the receive buffer) are joined. */
    int whole = !s->rx_len && lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
                !lws_remaining_packet_payload(wsi);

    if (!s->conn)
        return 0;
    if (lws_frame_is_binary(wsi))
        return refuse(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                      "binary frames are not accepted: send JSON text acks");
    /* libwebsockets does not cap a reassembled message: we do. */
    if (!whole) {
        if (s->rx_len + len > ACK_FRAME_MAX) {
            free(s->rx);
            s->rx = NULL;
            return refuse(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "client frames are limited to 4096 bytes");
        }
        if (!s->rx)
            s->rx = xmalloc(ACK_FRAME_MAX);
        memcpy(s->rx + s->rx_len, in, len);
        s->rx_len += len;
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
            return 0;
        frame = s->rx;
        frame_len = s->rx_len;
    }

    enum ack_result r = ack_parse(frame, frame_len, id, err, sizeof(err));
    free(s->rx);
    s->rx = NULL;
    s->rx_len = 0;
    if (r == ACK_INVALID)
        return refuse(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, err);
    if (r == ACK_OK && hub_ack(g->hub, s->conn, id) == 0)
        schedule_flush(g);
    return 0;
}

static int on_writeable(gateway_t *g, struct lws *wsi, struct session *s)
{
    unsigned char *out = g->wbuf + LWS_PRE;
    size_t used = 0, len;
    char *frame;
    int64_t now = now_mono_ms();

    if (s->closing)
        return refuse(wsi, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
    if (!s->conn)
        return 0;
    /* Every queued frame that fits, in one write; the hub asks for another
     * writable callback when some are left. The first always fits. */
    while ((frame = hub_next_frame(s->conn, &len))) {
        if (used && used + WSFRAME_HEADER_MAX + len > WRITE_BATCH_BYTES)
            break;
        if (WSFRAME_HEADER_MAX + len > sizeof(g->wbuf) - LWS_PRE) {
            /* Only a store edited by hand can hold one this large. */
            log_error("a notification of %zu bytes is over the limit; closing the connection", len);
            return -1;
        }
        used += wsframe_text_header(out + used, len);
        memcpy(out + used, frame, len);
        used += len;
        hub_frame_sent(g->hub, s->conn, now);
    }
    /* Whole frames built here, so lws sends them as they are; whatever the
     * socket does not take now, lws keeps and sends first next time. */
    if (used && lws_write(wsi, out, used, LWS_WRITE_RAW) < (int)used) {
        log_warn("write to a client failed; closing its connection");
        return -1;
    }
    return 0;
}

/* ---- HTTP: /healthz; files are served by the mount ---- */

static int on_http(gateway_t *g, struct lws *wsi, struct session *s)
{
    unsigned char headers[LWS_PRE + 512], *p = headers + LWS_PRE, *end = headers + sizeof(headers);
    char uri[32];

    /* Files are the mount's; what reaches here is /healthz or nothing. */
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 || strcmp(uri, "/healthz") != 0) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return -1;
    }

    s->http_len = (size_t)snprintf(
        s->http_body, sizeof(s->http_body),
        "{\"status\":\"%s\",\"users\":%zu,\"connections\":%zu,\"inflight\":%zu,"
        "\"storeBacklog\":%zu,\"kafkaPending\":%zu,\"partitions\":%d}\n",
        g->stopping ? "stopping" : "ok", hub_user_count(g->hub), hub_conn_count(g->hub),
        hub_inflight_count(g->hub), storeq_backlog(g->storeq), kafka_pending(g->kafka),
        kafka_assigned(g->kafka));
    if (lws_add_http_common_headers(wsi, g->stopping ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_OK,
                                    "application/json", s->http_len, &p, end) ||
        lws_finalize_write_http_header(wsi, headers + LWS_PRE, &p, end))
        return 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_http_writeable(struct lws *wsi, struct session *s)
{
    unsigned char buf[LWS_PRE + sizeof(s->http_body)];
    memcpy(buf + LWS_PRE, s->http_body, s->http_len);
    if (lws_write(wsi, buf + LWS_PRE, s->http_len, LWS_WRITE_HTTP_FINAL) != (int)s->http_len)
        return 1;
    if (lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

/* Only WebSocket upgrades: HTTP/2 (h2c) in this libwebsockets has known
 * defects. The header is read from the request, not from `in`, which this
 * version may hand over already freed (CVE-2025-11677). */
static int confirm_upgrade(struct lws *wsi)
{
    char up[32];
    if (lws_hdr_copy(wsi, up, sizeof(up), WSI_TOKEN_UPGRADE) > 0 && strcasecmp(up, "websocket") == 0)
        return 0;
    return -1;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct session *s = user;
    gateway_t *g;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        g = of(wsi);
        if (g)
            take_work(g);
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        of(wsi)->sessions++;
        s->counted = 1;
        return on_established(of(wsi), wsi, s);
    case LWS_CALLBACK_RECEIVE:
        return on_receive(of(wsi), wsi, s, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(of(wsi), wsi, s);
    case LWS_CALLBACK_CLOSED:
        g = of(wsi);
        if (s->counted) {
            g->sessions--;
            s->counted = 0;
        }
        if (s->conn) {
            hub_disconnect(g->hub, s->conn);
            s->conn = NULL;
            schedule_flush(g);
        }
        free(s->rx);
        s->rx = NULL;
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(wsi);
    case LWS_CALLBACK_HTTP:
        return on_http(of(wsi), wsi, s);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_http_writeable(wsi, s);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* First in the list: a WebSocket that names no subprotocol, as the
 * original design's clients do, is bound to it. */
static const struct lws_protocols protocols[] = {
    {"notifications", callback, sizeof(struct session), RX_BUFFER_BYTES, 0, NULL, 0},
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

gateway_t *gateway_new(const struct config *c, char *errstr, size_t size)
{
    gateway_t *g = xcalloc(1, sizeof(*g));
    g->conf = *c;

    struct hub_ops ops = {g, op_want_write, op_store, op_fetch, op_remove, op_offset_done, op_closed};
    struct hub_limits limits = {
        .window = (size_t)c->window,
        .window_bytes = WINDOW_BYTES,
        .ack_timeout_ms = (int64_t)c->ack_timeout_s * 1000,
        .conns_per_user = (size_t)c->max_connections_per_user,
        .fetch_batch = FETCH_BATCH,
        .frame_headroom = LWS_PRE,
    };
    g->hub = hub_new(&ops, &limits);

    const char *store_uri = c->store && *c->store ? c->store
                            : c->embedded           ? EMBEDDED_STORE
                                                    : c->mongodb_uri;
    store_t *st = store_open(store_uri, c->mongodb_db, errstr, size);
    if (!st)
        goto fail;
    g->storeq = storeq_start(st, wake_loop, g);
    if (!g->storeq) {
        store_close(st);
        snprintf(errstr, size, "cannot start the store worker");
        goto fail;
    }

    static struct lws_http_mount mounts[2];
    memset(mounts, 0, sizeof(mounts));
    mounts[0].mountpoint = "/healthz";
    mounts[0].mountpoint_len = 8;
    mounts[0].origin = "notifications";
    mounts[0].origin_protocol = LWSMPRO_CALLBACK;
    mounts[0].mount_next = &mounts[1];
    mounts[1].mountpoint = "/";
    mounts[1].mountpoint_len = 1;
    mounts[1].origin = c->web_root;
    mounts[1].def = "test.html";
    mounts[1].origin_protocol = LWSMPRO_FILE;
    mounts[1].extra_mimetypes = NULL;
    mounts[1].interpret = NULL;
    mounts[1].cache_max_age = 0;

    static lws_retry_bo_t retry = {
        .secs_since_valid_ping = 25,   /* ping an idle client… */
        .secs_since_valid_hangup = 60, /* …and drop one that stopped answering */
    };

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = c->port;
    info.iface = c->bind && *c->bind ? c->bind : NULL;
    info.protocols = protocols;
    info.mounts = mounts;
    info.headers = &no_cache;
    info.user = g;
    info.retry_and_idle_policy = &retry;
    info.alpn = "http/1.1"; /* HTTP/2 in this libwebsockets has known defects */
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);

    g->ctx = lws_create_context(&info);
    if (!g->ctx) {
        snprintf(errstr, size, "cannot listen on %s:%d (is the port in use?)",
                 info.iface ? info.iface : "*", c->port);
        goto fail;
    }
    lws_sul_schedule(g->ctx, 0, &g->tick, on_tick, TICK_US);

    const char *brokers = c->brokers;
    if (c->embedded) {
        g->embedded = embedded_start(c->topic, EMBEDDED_PARTITIONS, c->embedded_port, errstr, size);
        if (!g->embedded)
            goto fail;
        brokers = embedded_bootstraps(g->embedded);
        g->conf.brokers = brokers;
    }
    struct kafka_conf kc = {
        .brokers = brokers,
        .topic = c->topic,
        .group = c->group,
        .props = c->kafka_props,
        .batch_max = 512,
        .queue_batches = 8,
    };
    g->kafka = kafka_start(&kc, wake_loop, g, errstr, size);
    if (!g->kafka)
        goto fail;
    return g;

fail:
    gateway_free(g);
    return NULL;
}

void gateway_request_stop(gateway_t *g)
{
    g->stop_requested = 1;
    if (g->ctx)
        lws_cancel_service(g->ctx);
}

int gateway_run(gateway_t *g)
{
    int rc = 0;

    log_info("listening on port %d; consuming %s as group %s from %s", g->conf.port,
             g->conf.topic, g->conf.group, g->conf.brokers);
    if (g->embedded) {
        char brokers[64] = "";
        if (g->conf.embedded_port != 9092)
            snprintf(brokers, sizeof(brokers), " --brokers 127.0.0.1:%d", g->conf.embedded_port);
        log_info("ready: open http://localhost:%d/?user=u1&autoconnect=1 and send a notification "
                 "with: ./build/producer%s --user u1 --message \"Hello\"",
                 g->conf.port, brokers);
    }
    while (!g->stop_requested) {
        if (lws_service(g->ctx, 0) < 0) {
            log_error("the event loop failed");
            rc = -1;
            break;
        }
    }

    /* Wind down: no more intake; whatever clients hold unacknowledged goes
     * to the store; once stored (or at the deadline) commit and leave. */
    int64_t deadline = now_mono_ms() + (int64_t)g->conf.shutdown_timeout_s * 1000;
    log_info("stopping: storing %zu unacknowledged notifications, then committing",
             hub_inflight_count(g->hub));
    g->stopping = 1;
    kafka_stop(g->kafka);
    hub_disconnect_all(g->hub);
    flush_now(g);
    /* Until what clients held is stored and every client got its close frame. */
    while ((storeq_backlog(g->storeq) > 0 || g->sessions > 0) && now_mono_ms() < deadline) {
        if (lws_service(g->ctx, 0) < 0)
            break;
    }
    storeq_stop(g->storeq, deadline);
    take_work(g);
    size_t left = storeq_backlog(g->storeq);
    if (left)
        log_warn("%zu notifications were not stored before the deadline: their offsets stay "
                 "uncommitted and they are consumed again on restart", left);
    /* A little beyond the store's deadline, for the final commit. */
    kafka_close(g->kafka, (deadline > now_mono_ms() ? deadline : now_mono_ms()) + 1000);
    g->kafka = NULL;
    log_info("stopped");
    return rc;
}

void gateway_free(gateway_t *g)
{
    if (!g)
        return;
    kafka_close(g->kafka, now_mono_ms() + 2000);
    embedded_stop(g->embedded);
    if (g->ctx)
        lws_context_destroy(g->ctx);
    storeq_free(g->storeq);
    hub_free(g->hub);
    free(g->done);
    free(g);
}
