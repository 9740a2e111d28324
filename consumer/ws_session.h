/* WebSocket sessions: a client connection as the hub sees it. Learns the
 * user (a token checked by auth.h, or the URL's userId with --auth none),
 * joins client messages that span several reads or fragments (up to
 * CLIENT_MSG_MAX), passes acks to the hub, closes a connection whose token
 * runs out, and writes every queued frame that fits in one system call.
 *
 * Invariant: frames are built here, headers included, and written raw.
 * That is valid only while no WebSocket extension (permessage-deflate) is
 * negotiated: the gateway offers none, and one that is added must go back
 * to lws_write(LWS_WRITE_TEXT) per frame.
 *
 * The ws_on_* functions are called by the gateway's lws callback, on the
 * service thread. */
#ifndef CONSUMER_WS_SESSION_H
#define CONSUMER_WS_SESSION_H

#include <libwebsockets.h>
#include <stddef.h>

#include "auth.h"
#include "client_send.h"
#include "hub.h"
#include "publish.h"
#include "origin.h"
#include "peer.h"
#include "proxy_listen.h"
#include "notification.h"
#include "wsframe.h"

/* Bytes of frames put in one write to a connection. */
#define WS_WRITE_BATCH (32u << 10)
/* The most one write can carry: a batch, then one more frame. */
#define WS_WRITE_MAX (WS_WRITE_BATCH + NOTIF_JSON_MAX + 64)
/* Bytes of control frames waiting for one connection (a few hundred
 * "acked"), written before its notifications, in the same write. */
#define WS_CTL_MAX (16u << 10)
_Static_assert(WS_CTL_MAX + WSFRAME_HEADER_MAX + NOTIF_JSON_MAX <= WS_WRITE_MAX,
               "control frames and the first notification go out in one write");

/* Connections refused, by reason (reported in /healthz). */
struct ws_refusals {
    unsigned long origin;        /* HTTP 403 before the upgrade */
    unsigned long address_limit; /* 1013: --max-connections-per-address */
    unsigned long address_rate;  /* 1013: --connect-rate-per-address */
    unsigned long token;         /* 1008 or 4001 */
};

/* What every session shares; the gateway owns it. */
struct ws_server {
    hub_t *hub;
    const auth_t *auth;
    struct origins origins;
    struct proxies proxies;
    proxy_listener_t *proxy; /* with --trusted-proxies: who a PROXY header named */
    peers_t *peers;
    struct ws_refusals refused;
    unsigned long pushed; /* notification frames written to sockets */
    unsigned long acked;  /* acks that completed a notification this node held */
    unsigned long acked_dropped; /* "acked" frames not sent: WS_CTL_MAX waiting already */
    size_t max_connections;
    /* Client sends: published with the gateway's producer, at most
     * send_rate per user a second; anonymous_send: allowed without a
     * token (--allow-anonymous-send). */
    publisher_t *publisher;
    send_limiter_t *send_limiter;
    int anonymous_send;
    const int *stopping; /* set: new connections are refused with 1001 */
    size_t sessions; /* open WebSocket connections, the hub's or not */
    /* An ack or a connect queued work to hand on at the end of this turn. */
    void (*turn_work)(void *arg);
    void *arg;
    /* Connections with frames to write at the end of this turn. */
    struct lws **flush;
    size_t nflush, flush_cap;
    /* Where frames are gathered for one write: a batch, or one frame of the
     * largest size a notification can have. */
    unsigned char wbuf[LWS_PRE + WS_WRITE_MAX];
};

/* Per connection, inside lws's per-session data (zeroed by lws). */
struct ws_session {
    struct lws *wsi;
    hub_conn_t *conn; /* NULL until the user is known */
    int counted;      /* in ws_server.sessions */
    int closing;      /* the hub let go of it: close with 1001 */
    int awaiting_auth; /* open, its token to come as the first message */
    int speaks_v2;     /* may be sent control frames (see docs/protocol.md) */
    int signed_in;     /* by a token: checked against the deny-list */
    int may_send;      /* the token's "send": true, or --allow-anonymous-send */
    int any_room;      /* --auth none: any room may be joined */
    char *rooms_allowed; /* else the token's "rooms", comma-separated (NULL: none) */
    char *url_rooms, *url_types; /* ?rooms= and ?types=, until the user joins */
    int flush_queued;  /* in ws_server.flush */
    char *jti;         /* that token's id, NULL if none (most connections) */
    const char *addr;  /* the client's address, counted in peers (its copy) */
    /* Set by the timer (auth deadline, token end): closed at the next
     * writable callback with this code and reason. */
    int close_code;
    const char *close_reason;
    lws_sorted_usec_list_t timer;
    char *ctl; /* control frames (framed) to send before any notification */
    size_t ctl_len;
    char *rx;  /* a client message that came in several pieces */
    size_t rx_len;
    struct ws_send *sends; /* sends waiting for Kafka, answered then */
    size_t nsends;
};

/* LWS_CALLBACK_ESTABLISHED, _RECEIVE, _SERVER_WRITEABLE and _CLOSED: each
 * returns what the callback must return. */
int ws_on_established(struct ws_server *srv, struct lws *wsi, struct ws_session *s);
int ws_on_receive(struct ws_server *srv, struct lws *wsi, struct ws_session *s, const char *in,
                  size_t len);
int ws_on_writeable(struct ws_server *srv, struct lws *wsi, struct ws_session *s);
void ws_on_closed(struct ws_server *srv, struct ws_session *s);

/* An operator's request: closes every connection of user with 4003
 * "disconnected by operator", what they held going back to the store;
 * returns how many. */
size_t ws_disconnect_user(struct ws_server *srv, const char *user);
/* After the deny-list changed (SIGHUP): closes with 4003 every connection
 * whose token is revoked now. */
void ws_close_revoked(struct ws_server *srv);

/* The hub has frames for the connection wsi: queued for ws_flush. */
void ws_queue_write(struct ws_server *srv, struct lws *wsi);
/* At the end of a turn: writes each queued connection's frames (a waiting
 * control frame first) at once, without waiting for a writable event (a
 * wake and two epoll_ctl calls per write otherwise); a connection lws still
 * holds part of an earlier write for, or one that is closing, goes through
 * the writable callback as before. */
void ws_flush(struct ws_server *srv);
void ws_server_free(struct ws_server *srv);

/* hub_ops.acked's work: tells wsi (a v2 client) that another tab of its
 * user acknowledged id: {"type":"acked","id":…}, queued for ws_flush. */
void ws_send_acked(struct ws_server *srv, struct lws *wsi, const char *id);

/* hub_ops.closed: the transport is the lws wsi. */
void ws_hub_closed(void *ctx, void *transport);

#endif
