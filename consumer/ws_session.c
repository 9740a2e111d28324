/* WebSocket sessions: users, client messages, acks, batched writes. */
#include "ws_session.h"

#include <stdlib.h>
#include <string.h>

#include "ack.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"

static int refuse(struct lws *wsi, enum lws_close_status code, const char *reason)
{
    lws_close_reason(wsi, code, (unsigned char *)reason, strlen(reason));
    return -1;
}

int ws_on_established(struct ws_server *srv, struct lws *wsi, struct ws_session *s)
{
    char buf[NOTIF_USER_MAX + 16];
    const char *user;

    srv->sessions++;
    s->counted = 1;
    if (*srv->stopping)
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
    if (hub_conn_count(srv->hub) >= srv->max_connections)
        return refuse(wsi, (enum lws_close_status)1013, /* try again later */
                      "server at its connection limit, try again later");
    s->conn = hub_connect(srv->hub, user, wsi);
    if (!s->conn)
        return refuse(wsi, (enum lws_close_status)1013,
                      "too many connections for this user, try again later");
    log_debug("user %s connected (%zu connections)", user, hub_conn_count(srv->hub));
    srv->turn_work(srv->arg);
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
    char id[NOTIF_ID_MAX + 1];
    char err[160];
    const char *msg = in;
    size_t msg_len = len;
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
            forget_rx(s);
            return refuse(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                          "client frames are limited to 4096 bytes");
        }
        if (!s->rx)
            s->rx = xmalloc(ACK_FRAME_MAX);
        memcpy(s->rx + s->rx_len, in, len);
        s->rx_len += len;
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
            return 0;
        msg = s->rx;
        msg_len = s->rx_len;
    }

    enum ack_result r = ack_parse(msg, msg_len, id, err, sizeof(err));
    forget_rx(s);
    if (r == ACK_INVALID)
        return refuse(wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, err);
    if (r == ACK_OK && hub_ack(srv->hub, s->conn, id) == 0)
        srv->turn_work(srv->arg);
    return 0;
}

int ws_on_writeable(struct ws_server *srv, struct lws *wsi, struct ws_session *s)
{
    unsigned char *out = srv->wbuf + LWS_PRE;
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
        if (used && used + WSFRAME_HEADER_MAX + len > WS_WRITE_BATCH)
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
    }
    /* Whole frames built here, so lws sends them as they are; whatever the
     * socket does not take now, lws keeps and sends first next time. */
    if (used && lws_write(wsi, out, used, LWS_WRITE_RAW) < (int)used) {
        log_warn("write to a client failed; closing its connection");
        return -1;
    }
    return 0;
}

void ws_on_closed(struct ws_server *srv, struct ws_session *s)
{
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

void ws_want_write(void *ctx, void *transport)
{
    (void)ctx;
    lws_callback_on_writable(transport);
}

void ws_hub_closed(void *ctx, void *transport)
{
    (void)ctx;
    struct ws_session *s = lws_wsi_user(transport);
    s->conn = NULL;
    s->closing = 1;
    lws_callback_on_writable(transport);
}
