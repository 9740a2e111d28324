/* WebSocket sessions: identity, client messages, acks, batched writes. */
#include "ws_session.h"
#include "http.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "client_msg.h"
#include "ws_upgrade.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"

static int refuse(struct lws *wsi, enum lws_close_status code, const char *reason)
{
    lws_close_reason(wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

static void on_timer(lws_sorted_usec_list_t *sul)
{
    struct ws_session *s = lws_container_of(sul, struct ws_session, timer);
    if (s->awaiting_auth) {
        s->close_code = AUTH_CLOSE_POLICY;
        s->close_reason = "no token: send {\"type\":\"auth\",\"token\":\"...\"} first";
    } else {
        s->close_code = AUTH_CLOSE_EXPIRED;
        s->close_reason = "the token has expired: reconnect with a fresh one";
    }
    lws_callback_on_writable(s->wsi);
}

static void set_timer(struct ws_session *s, int64_t in_ms)
{
    lws_sul_schedule(lws_get_context(s->wsi), 0, &s->timer, on_timer,
                     (in_ms > 0 ? in_ms : 0) * LWS_US_PER_MS);
}

static void cancel_timer(struct ws_session *s)
{
    if (s->wsi)
        lws_sul_schedule(lws_get_context(s->wsi), 0, &s->timer, NULL,
                         LWS_SET_TIMER_USEC_CANCEL);
}

/* Queues a control frame, framed, to go before any notification; only
 * v2 clients get them. Returns 0, or -1 when the connection has
 * WS_CTL_MAX bytes of them waiting already (a client that stopped
 * reading): not queued. */
static int queue_control(struct ws_session *s, const char *frame)
{
    size_t len = strlen(frame);
    if (!s->speaks_v2)
        return 0;
    if (s->ctl_len + WSFRAME_HEADER_MAX + len > WS_CTL_MAX)
        return -1;
    /* As long as what waits: most connections only ever queue a welcome. */
    s->ctl = xrealloc(s->ctl, s->ctl_len + WSFRAME_HEADER_MAX + len);
    s->ctl_len += wsframe_text_header((unsigned char *)s->ctl + s->ctl_len, len);
    memcpy(s->ctl + s->ctl_len, frame, len);
    s->ctl_len += len;
    return 0;
}

static void send_control(struct ws_session *s, const char *frame)
{
    if (queue_control(s, frame) == 0 && s->speaks_v2)
        lws_callback_on_writable(s->wsi);
}

void ws_send_acked(struct ws_server *srv, struct lws *wsi, const char *id)
{
    char frame[sizeof("{\"type\":\"acked\",\"id\":\"\"}") + NOTIF_ID_MAX];
    snprintf(frame, sizeof(frame), "{\"type\":\"acked\",\"id\":\"%s\"}", id); /* ids need no escaping */
    if (queue_control(lws_wsi_user(wsi), frame) != 0)
        srv->acked_dropped++;
    else
        ws_queue_write(srv, wsi);
}

/* ---- rooms ---- */

static void send_refused(struct ws_session *s, const char *ref, const char *reason,
                         const char *why);

#define SUBSCRIBE_MAX 64 /* rooms, and types, one connection takes */

static int room_allowed(const struct ws_session *s, const char *room)
{
    if (s->any_room)
        return 1;
    size_t len = strlen(room);
    for (const char *p = s->rooms_allowed; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && memcmp(p, room, len) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Splits a comma-separated list in place into out (at most max). */
static size_t split(char *list, const char **out, size_t max)
{
    size_t n = 0;
    for (char *p = list; p && *p && n < max;) {
        char *end = strchr(p, ',');
        if (end)
            *end = '\0';
        if (*p)
            out[n++] = p;
        p = end ? end + 1 : NULL;
    }
    return n;
}

/* The rooms (comma-separated) and types (NULL: every type) this
 * connection takes: rooms it may not join are told with an error frame
 * and left out; answered with "subscribed" when asked by a message. */
static void subscribe(struct ws_server *srv, struct ws_session *s, char *rooms, char *types,
                      int answer)
{
    const char *want[SUBSCRIBE_MAX], *keep[SUBSCRIBE_MAX], *typelist[SUBSCRIBE_MAX];
    size_t nwant = split(rooms, want, SUBSCRIBE_MAX), nkeep = 0;
    size_t ntypes = types ? split(types, typelist, SUBSCRIBE_MAX) : 0;
    for (size_t i = 0; i < nwant; i++) {
        char why[160];
        if (!notification_room_valid(want[i], strlen(want[i]))) {
            /* Not echoed: it may not even be UTF-8. */
            snprintf(why, sizeof(why), "a room name is 1 to %d letters, digits or . _ -",
                     NOTIF_ROOM_MAX);
            send_refused(s, "", "invalid", why);
            continue;
        }
        if (!room_allowed(s, want[i])) {
            snprintf(why, sizeof(why), "room %s is not one this connection may join%s", want[i],
                     s->any_room ? "" : " (the token's \"rooms\")");
            send_refused(s, "", "forbidden", why);
            continue;
        }
        keep[nkeep++] = want[i];
    }
    hub_subscribe(srv->hub, s->conn, keep, nkeep, types ? typelist : NULL, ntypes);
    srv->turn_work(srv->arg);
    if (!answer)
        return;
    json_t *frame = json_pack("{s:s, s:[]}", "type", "subscribed", "rooms");
    for (size_t i = 0; i < nkeep; i++)
        json_array_append_new(json_object_get(frame, "rooms"), json_string(keep[i]));
    if (types) {
        json_t *t = json_array();
        for (size_t i = 0; i < ntypes; i++)
            json_array_append_new(t, json_string(typelist[i]));
        json_object_set_new(frame, "types", t);
    }
    char *text = json_dumps(frame, JSON_COMPACT);
    send_control(s, text);
    free(text);
    json_decref(frame);
}

/* The user known: joins the hub. */
static int join(struct ws_server *srv, struct lws *wsi, struct ws_session *s, const char *user)
{
    if (hub_conn_count(srv->hub) >= srv->max_connections)
        return refuse(wsi, (enum lws_close_status)1013, /* try again later */
                      "server at its connection limit, try again later");
    s->conn = hub_connect(srv->hub, user, wsi);
    /* Signed in: the newest connection wins, so that no one holding
     * connections can lock the user out (without tokens it could be anyone,
     * so the newest waits). */
    struct lws *oldest = s->conn || !auth_required(srv->auth)
                             ? NULL : hub_oldest_transport(srv->hub, user);
    if (oldest) {
        struct ws_session *o = lws_wsi_user(oldest);
        hub_disconnect(srv->hub, o->conn);
        o->conn = NULL;
        o->close_code = 4002;
        o->close_reason = "replaced by a newer connection";
        lws_callback_on_writable(oldest);
        s->conn = hub_connect(srv->hub, user, wsi);
    }
    if (!s->conn)
        return refuse(wsi, (enum lws_close_status)1013,
                      "too many connections for this user, try again later");
    log_debug("user %s connected (%zu connections)", user, hub_conn_count(srv->hub));
    /* A v2 client learns it is in (a refused one is closed right after its
     * open event, so the open event alone does not say so). */
    char welcome[64 + NOTIF_USER_MAX];
    snprintf(welcome, sizeof(welcome), "{\"type\":\"welcome\",\"userId\":\"%s\"}", user);
    send_control(s, welcome); /* user ids need no JSON escaping */
    /* Broadcast, and the rooms the URL named, or else every room of the
     * token's claim; the types the URL named. */
    char none[1] = "";
    if (!s->url_rooms && s->rooms_allowed)
        s->url_rooms = xstrdup(s->rooms_allowed);
    subscribe(srv, s, s->url_rooms ? s->url_rooms : none, s->url_types, 0);
    free(s->url_rooms);
    free(s->url_types);
    s->url_rooms = s->url_types = NULL;
    return 0;
}

/* A token checked: 0 with user (NOTIF_USER_MAX + 1 bytes) set to its sub
 * and the timer at its end, or what the callback returns to close. */
static int accept_token(struct ws_server *srv, struct lws *wsi, struct ws_session *s,
                        const char *token, size_t len, const char *claimed_user, char *user)
{
    struct auth_grant g;
    int64_t now = now_wall_ms();
    auth_check(srv->auth, token, len, claimed_user, now, &g);
    if (g.close_code) {
        srv->refused.token++;
        return refuse(wsi, (enum lws_close_status)g.close_code, g.reason);
    }
    memcpy(user, g.user, sizeof(g.user));
    s->signed_in = 1;
    s->may_send = g.send;
    free(s->rooms_allowed);
    s->rooms_allowed = g.has_rooms && g.rooms[0] ? xstrdup(g.rooms) : NULL;
    free(s->jti);
    s->jti = g.jti[0] ? xstrdup(g.jti) : NULL;
    set_timer(s, g.until_ms - now);
    return 0;
}


int ws_on_established(struct ws_server *srv, struct lws *wsi, struct ws_session *s)
{
    char buf[NOTIF_USER_MAX + 16], v[8];
    static char token[CLIENT_MSG_MAX];
    const char *user;

    s->wsi = wsi;
    srv->sessions++;
    s->counted = 1;
    /* A new connection while draining: another gateway (or this one,
     * restarted) will take it; the open ones get 1001 as they are closed. */
    if (*srv->stopping)
        return refuse(wsi, (enum lws_close_status)1013, "server draining, try again later");
    char addr[PEER_ADDR_MAX];
    ws_client_address(srv, wsi, addr);
    switch (peers_admit(srv->peers, addr, now_mono_ms(), &s->addr)) {
    case PEER_OK:
        break;
    case PEER_TOO_MANY: /* not counted: s->addr stays NULL, nothing to release */
        srv->refused.address_limit++;
        return refuse(wsi, (enum lws_close_status)1013,
                      "too many connections from this address, try again later");
    case PEER_TOO_FAST:
        srv->refused.address_rate++;
        return refuse(wsi, (enum lws_close_status)1013,
                      "connecting too fast from this address, try again later");
    }
    int ulen = http_url_arg(wsi, "userId=", buf, sizeof(buf));
    if (ulen <= 0 && ulen != -2)
        ulen = http_url_arg(wsi, "user_id=", buf, sizeof(buf));
    user = ulen > 0 ? buf : NULL;
    if (ulen == -2 || (user && !notification_user_valid(user, (size_t)ulen)))
        return refuse(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                      "invalid userId: 1 to 128 letters, digits or . _ - @ : + ~");
    s->speaks_v2 = http_url_arg(wsi, "v=", v, sizeof(v)) == 1 && v[0] == '2';
    /* Read now: the URL is gone once the upgrade is done (a token may come
     * as the first message, and the user joins then). */
    static char list[CLIENT_MSG_MAX];
    if (http_url_arg(wsi, "rooms=", list, sizeof(list)) > 0)
        s->url_rooms = xstrdup(list);
    if (http_url_arg(wsi, "types=", list, sizeof(list)) > 0)
        s->url_types = xstrdup(list);

    if (!auth_required(srv->auth)) {
        if (!user || !*user)
            return refuse(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                          "missing user: connect to ws://host:port/?userId=<user>");
        s->may_send = srv->anonymous_send;
        s->any_room = 1;
        return join(srv, wsi, s, user);
    }
    int len = ws_request_token(wsi, token, sizeof(token));
    if (len < 0) {
        srv->refused.token++;
        return refuse(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                      "the token in the URL is over 4 KB or holds a control character");
    }
    if (len == 0) {
        /* The token comes as the first message: a v2 client. */
        s->awaiting_auth = 1;
        s->speaks_v2 = 1;
        set_timer(s, auth_timeout_ms(srv->auth));
        return 0;
    }
    char sub[NOTIF_USER_MAX + 1];
    if (accept_token(srv, wsi, s, token, (size_t)len, user, sub) != 0)
        return -1;
    return join(srv, wsi, s, sub);
}

/* ---- client sends ---- */

/* Sends waiting for Kafka, per connection; past it a send is refused as
 * rate-limited (the client is not waiting for its answers). */
#define WS_SENDS_MAX 64

/* A send waiting for Kafka's answer; s is NULL once its connection closed. */
struct ws_send {
    struct ws_send *next;
    struct ws_session *s;
    char ref[NOTIF_ID_MAX + 1];
    char id[NOTIF_ID_MAX + 1];
};

/* {"type":"error","reason":…,"message":…[,"ref":…]}: the send is refused. */
static void send_refused(struct ws_session *s, const char *ref, const char *reason,
                         const char *why)
{
    json_t *frame = json_pack("{s:s, s:s, s:s}", "type", "error", "reason", reason, "message",
                              why);
    if (frame && *ref)
        json_object_set_new(frame, "ref", json_string(ref));
    char *text = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
    if (text) /* why is ours, ref is checked: only a bug could make them bad UTF-8 */
        send_control(s, text);
    free(text);
    json_decref(frame);
}

static void on_sent(void *arg, const char *error)
{
    struct ws_send *w = arg;
    struct ws_session *s = w->s;
    if (s) {
        for (struct ws_send **at = &s->sends; *at; at = &(*at)->next)
            if (*at == w) {
                *at = w->next;
                s->nsends--;
                break;
            }
        if (error) {
            send_refused(s, w->ref, "unavailable", "Kafka did not take it: send it again");
        } else {
            char frame[64 + 2 * NOTIF_ID_MAX]; /* ids and refs need no escaping */
            snprintf(frame, sizeof(frame), "{\"type\":\"sent\",\"id\":\"%s\"%s%s%s}", w->id,
                     *w->ref ? ",\"ref\":\"" : "", w->ref, *w->ref ? "\"" : "");
            send_control(s, frame);
        }
    }
    free(w);
}

/* {"type":"send"}: checked, then published; answered "sent" once Kafka
 * has it, or "error" with why. */
static void client_send(struct ws_server *srv, struct ws_session *s, const struct client_msg *m,
                        const char *err)
{
    char key[NOTIF_ID_MAX + 1], why[256];
    struct publish_item item = {key, NULL, 0};
    const char *user = hub_conn_user(s->conn);

    if (!m->body)
        return send_refused(s, m->ref, "invalid", err);
    if (!s->may_send)
        return send_refused(s, m->ref, "forbidden",
                            s->signed_in ? "sending needs the token claim \"send\": true"
                                         : "this gateway lets no one send without a token "
                                           "(--allow-anonymous-send)");
    if (m->to_room && !room_allowed(s, m->rooms_buf))
        return send_refused(s, m->ref, "forbidden",
                            "\"toRoom\": a room this connection may not join (the token's "
                            "\"rooms\")");
    if (s->nsends >= WS_SENDS_MAX || !send_limiter_take(srv->send_limiter, user, now_mono_ms()))
        return send_refused(s, m->ref, "rate-limited", "too many sends: wait a little");
    struct ws_send *w = xcalloc(1, sizeof(*w));
    if (client_send_build(m->body, user, (char **)&item.value, &item.len, key, w->id, why,
                          sizeof(why)) != 0) {
        free(w);
        return send_refused(s, m->ref, "invalid", why);
    }
    memcpy(w->ref, m->ref, sizeof(w->ref));
    w->s = s;
    w->next = s->sends;
    s->sends = w;
    s->nsends++;
    publish(srv->publisher, &item, 1, on_sent, w);
    free((char *)item.value);
}

/* A client message once the connection has its user. */
static int on_message(struct ws_server *srv, struct lws *wsi, struct ws_session *s,
                      const char *msg, size_t len)
{
    static struct client_msg m;
    char err[160], sub[NOTIF_USER_MAX + 1];
    enum client_msg_type t = client_msg_parse(msg, len, &m, err, sizeof(err));

    if (t == CLIENT_MSG_INVALID)
        return refuse(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, err);
    if (s->awaiting_auth) {
        if (t != CLIENT_MSG_AUTH) {
            if (t == CLIENT_MSG_SEND)
                free(m.body);
            m.body = NULL;
            return refuse(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                          "the first message must be {\"type\":\"auth\",\"token\":\"...\"}");
        }
        s->awaiting_auth = 0;
        return accept_token(srv, wsi, s, m.token, strlen(m.token), NULL, sub) != 0 ||
                       join(srv, wsi, s, sub) != 0
                   ? -1
                   : 0;
    }
    /* (No conn: an operator or a newer connection took it; it is closing.) */
    if (t == CLIENT_MSG_REFRESH && auth_required(srv->auth))
        return s->conn ? accept_token(srv, wsi, s, m.token, strlen(m.token),
                                      hub_conn_user(s->conn), sub)
                       : 0;
    if (t == CLIENT_MSG_ACK && hub_ack(srv->hub, s->conn, m.id) == 0) {
        srv->acked++;
        srv->turn_work(srv->arg);
    }
    if (t == CLIENT_MSG_SUBSCRIBE && s->conn) {
        if (!m.rooms)
            send_refused(s, "", "invalid", err);
        else
            subscribe(srv, s, (char *)m.rooms, (char *)m.types, 1);
    }
    if (t == CLIENT_MSG_SEND) {
        if (s->conn && s->speaks_v2) /* the original protocol has no send */
            client_send(srv, s, &m, err);
        free(m.body);
        m.body = NULL;
    }
    return 0;
}

static void forget_rx(struct ws_session *s)
{
    free(s->rx);
    s->rx = NULL;
    s->rx_len = 0;
}

int ws_on_receive(struct ws_server *srv, struct lws *wsi, struct ws_session *s, const char *in,
                  size_t len)
{
    const char *msg = in;
    size_t msg_len = len;
    /* One read holding a whole message; otherwise the pieces (WebSocket
     * fragments, or one frame longer than the receive buffer) are joined. */
    int whole = !s->rx_len && lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
                !lws_remaining_packet_payload(wsi);

    if (!s->conn && !s->awaiting_auth)
        return 0;
    if (lws_frame_is_binary(wsi))
        return refuse(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                      "binary frames are not accepted: send JSON text acks");
    /* libwebsockets does not cap a reassembled message: we do, as soon as
     * a frame's declared length says it will not fit. */
    if (!whole) {
        if (s->rx_len + len + lws_remaining_packet_payload(wsi) > CLIENT_MSG_MAX) {
            forget_rx(s);
            return refuse(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                          "client frames are limited to 4096 bytes");
        }
        if (!s->rx)
            s->rx = xmalloc(CLIENT_MSG_MAX);
        memcpy(s->rx + s->rx_len, in, len);
        s->rx_len += len;
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
            return 0;
        msg = s->rx;
        msg_len = s->rx_len;
    }

    int rc = on_message(srv, wsi, s, msg, msg_len);
    forget_rx(s);
    return rc;
}

/* Writes a control frame if one waits, then every queued frame that fits,
 * in one write: 0, or -1 when the write failed. */
static int write_frames(struct ws_server *srv, struct lws *wsi, struct ws_session *s)
{
    unsigned char *out = srv->wbuf + LWS_PRE;
    size_t used = 0, len;
    char *frame;
    int64_t now = now_mono_ms();

    if (s->ctl) {
        memcpy(out, s->ctl, s->ctl_len); /* framed already */
        used = s->ctl_len;
        free(s->ctl);
        s->ctl = NULL;
        s->ctl_len = 0;
    }
    /* Every queued frame that fits, in one write; the hub asks for another
     * writable callback when some are left. The first always fits, after
     * the control frames too (WS_WRITE_MAX holds both). */
    size_t frames = 0;
    while (s->conn && (frame = hub_next_frame(s->conn, &len))) {
        if (frames++ && used + WSFRAME_HEADER_MAX + len > WS_WRITE_BATCH)
            break;
        if (WSFRAME_HEADER_MAX + len > sizeof(srv->wbuf) - LWS_PRE) {
            /* Only a store edited by hand can hold one this large. */
            log_error("a notification of %zu bytes is over the limit; closing the connection", len);
            return -1;
        }
        used += wsframe_text_header(out + used, len);
        memcpy(out + used, frame, len);
        used += len;
        hub_frame_sent(srv->hub, s->conn, now);
        srv->pushed++;
    }
    /* Whole frames built here, so lws sends them as they are; whatever the
     * socket does not take now, lws keeps and sends first next time. */
    if (used && lws_write(wsi, out, used, LWS_WRITE_RAW) < (int)used) {
        log_warn("write to a client failed; closing its connection");
        return -1;
    }
    return 0;
}

int ws_on_writeable(struct ws_server *srv, struct lws *wsi, struct ws_session *s)
{
    if (s->closing)
        return refuse(wsi, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
    if (s->close_code)
        return refuse(wsi, (enum lws_close_status)s->close_code, s->close_reason);
    return write_frames(srv, wsi, s);
}

void ws_queue_write(struct ws_server *srv, struct lws *wsi)
{
    struct ws_session *s = lws_wsi_user(wsi);
    if (s->flush_queued)
        return;
    if (srv->nflush == srv->flush_cap) {
        srv->flush_cap = srv->flush_cap ? srv->flush_cap * 2 : 256;
        srv->flush = xrealloc(srv->flush, srv->flush_cap * sizeof(*srv->flush));
    }
    srv->flush[srv->nflush++] = wsi;
    s->flush_queued = 1;
}

void ws_flush(struct ws_server *srv)
{
    /* Writing may queue a connection again (the hub asks while frames are
     * left past one batch): it is written at the next turn's end. */
    size_t n = srv->nflush;
    for (size_t i = 0; i < n; i++) {
        struct lws *wsi = srv->flush[i];
        if (!wsi)
            continue; /* closed since */
        struct ws_session *s = lws_wsi_user(wsi);
        s->flush_queued = 0;
        srv->flush[i] = NULL;
        if (s->closing || s->close_code || lws_partial_buffered(wsi)) {
            lws_callback_on_writable(wsi);
        } else if (write_frames(srv, wsi, s) != 0) {
            lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
    }
    /* What was queued while writing moves to the front. */
    size_t kept = 0;
    for (size_t i = n; i < srv->nflush; i++)
        if (srv->flush[i])
            srv->flush[kept++] = srv->flush[i];
    srv->nflush = kept;
}

void ws_server_free(struct ws_server *srv)
{
    send_limiter_free(srv->send_limiter);
    srv->send_limiter = NULL;
    free(srv->flush);
    srv->flush = NULL;
    srv->nflush = srv->flush_cap = 0;
}

void ws_on_closed(struct ws_server *srv, struct ws_session *s)
{
    cancel_timer(s);
    if (s->flush_queued) {
        for (size_t i = 0; i < srv->nflush; i++)
            if (srv->flush[i] == s->wsi)
                srv->flush[i] = NULL;
        s->flush_queued = 0;
    }
    if (s->addr) {
        peers_release(srv->peers, s->addr);
        s->addr = NULL;
    }
    free(s->ctl);
    s->ctl = NULL;
    free(s->jti);
    s->jti = NULL;
    free(s->rooms_allowed);
    s->rooms_allowed = NULL;
    free(s->url_rooms);
    free(s->url_types);
    s->url_rooms = s->url_types = NULL;
    for (struct ws_send *w = s->sends; w; w = w->next)
        w->s = NULL; /* answered to no one; freed by on_sent */
    s->sends = NULL;
    s->nsends = 0;
    if (s->counted) {
        srv->sessions--;
        s->counted = 0;
    }
    if (s->conn) {
        hub_disconnect(srv->hub, s->conn);
        s->conn = NULL;
        srv->turn_work(srv->arg);
    }
    forget_rx(s);
}

static void close_if_revoked(void *arg, void *transport)
{
    struct ws_server *srv = arg;
    struct ws_session *s = lws_wsi_user(transport);
    if (s->signed_in && s->conn &&
        auth_revoked(srv->auth, hub_conn_user(s->conn), s->jti ? s->jti : "")) {
        s->close_code = AUTH_CLOSE_FORBIDDEN;
        s->close_reason = "the token is revoked";
        lws_callback_on_writable(transport);
    }
}

static void disconnect_one(void *arg, void *transport)
{
    struct ws_server *srv = arg;
    struct ws_session *s = lws_wsi_user(transport);
    hub_disconnect(srv->hub, s->conn); /* releases what it held */
    s->conn = NULL;
    s->close_code = AUTH_CLOSE_FORBIDDEN;
    s->close_reason = "disconnected by operator";
    lws_callback_on_writable(transport);
}

size_t ws_disconnect_user(struct ws_server *srv, const char *user)
{
    size_t n = hub_each_user_transport(srv->hub, user, disconnect_one, srv);
    if (n)
        srv->turn_work(srv->arg);
    return n;
}

void ws_close_revoked(struct ws_server *srv)
{
    hub_each_transport(srv->hub, close_if_revoked, srv);
}

void ws_hub_closed(void *ctx, void *transport)
{
    (void)ctx;
    struct ws_session *s = lws_wsi_user(transport);
    s->conn = NULL;
    s->closing = 1;
    lws_callback_on_writable(transport);
}
