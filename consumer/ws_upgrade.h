/* The upgrade request of a WebSocket connection (ws_upgrade.c): what
 * ws_session.c reads from it before the user is known. */
#ifndef CONSUMER_WS_UPGRADE_H
#define CONSUMER_WS_UPGRADE_H

#include "ws_session.h"

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: only WebSocket, a request line read
 * whole (else HTTP 400), only from an allowed Origin (else HTTP 403).
 * Returns what the callback must return. */
int ws_confirm_upgrade(struct ws_server *srv, struct lws *wsi);
/* The token of the request: ?token= or "Authorization: Bearer"; its
 * length, 0 if none, -1 if one is there but unusable. */
int ws_request_token(struct lws *wsi, char *buf, size_t size);
/* The client's address (PEER_ADDR_MAX): behind --trusted-proxies, the one
 * they name. */
void ws_client_address(struct ws_server *srv, struct lws *wsi, char *out);

#endif
