/* The upgrade request, read carefully: only WebSocket from an allowed
 * Origin, a request line libwebsockets read whole, query arguments whole,
 * the token it brings, the client's address. */
#include "ws_upgrade.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "log.h"
#include "xalloc.h"

int ws_confirm_upgrade(struct ws_server *srv, struct lws *wsi)
{
    char up[32], origin[300], host[300];
    /* Only WebSocket upgrades: HTTP/2 (h2c) in this libwebsockets has
     * known defects. The header is read from the request, not from `in`,
     * which this version may hand over already freed (CVE-2025-11677). */
    if (!http_header(wsi, WSI_TOKEN_UPGRADE, up, sizeof(up)) || strcasecmp(up, "websocket") != 0)
        return -1;
    /* A CR or LF encoded in the URL (%0D) ends libwebsockets' reading of
     * the request line there: the arguments are cut (userId=a%0Db reads as
     * "a") and the HTTP version is never seen. Refuse rather than misread. */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP) <= 0) {
        lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST,
                               "malformed request line (a CR or LF in the URL?)");
        return 1;
    }
    const char *o = http_header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin));
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0 && !o)
        o = "oversized"; /* refused below, never let through */
    if (origin_allowed(&srv->origins, o, http_header(wsi, WSI_TOKEN_HOST, host, sizeof(host))))
        return 0;
    srv->refused.origin++;
    log_debug("refused a WebSocket from origin %.100s", o);
    lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN,
                           "this page's origin may not connect: see --allowed-origins");
    return 1;
}

/* The client's address (behind trusted proxies, the one they name). */
void ws_client_address(struct ws_server *srv, struct lws *wsi, char *out)
{
    char peer[PEER_ADDR_MAX], xff[512];
    /* A trusted proxy's PROXY header names the client: nothing the client
     * sent (its own X-Forwarded-For) is believed after it. */
    const char *named = proxy_listener_client(srv->proxy, lws_get_socket_fd(wsi));
    if (named) {
        snprintf(out, PEER_ADDR_MAX, "%s", named);
        return;
    }
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    peer_client_address(&srv->proxies, peer,
                        http_header(wsi, WSI_TOKEN_X_FORWARDED_FOR, xff, sizeof(xff)), out);
}

/* The token of the upgrade request: ?token= or "Authorization: Bearer";
 * its length, 0 if none, -1 if one is there but unusable. */
int ws_request_token(struct lws *wsi, char *buf, size_t size)
{
    int n = http_url_arg(wsi, "token=", buf, size);
    if (n != -1)
        return n < 0 ? -1 : n;
    return http_bearer(wsi, buf, size);
}
