/* With --trusted-proxies the gateway accepts connections itself, so that a
 * trusted proxy may put a PROXY protocol header (proxy_header.h) before
 * the HTTP or TLS bytes: libwebsockets 4.1.6 reads none. A connection from
 * a trusted proxy is watched (without blocking the loop) until its first
 * bytes say whether a header is there; the header is read off the socket,
 * exactly, and the connection handed to libwebsockets as if it had
 * accepted it. Every other connection is handed over at once. */
#ifndef CONSUMER_PROXY_LISTEN_H
#define CONSUMER_PROXY_LISTEN_H

#include <stddef.h>

struct ev_loop;
struct lws_vhost;
struct proxies;

typedef struct proxy_listener proxy_listener_t;

/* Listens on bind (empty: every interface, IPv6 and IPv4) and port, for
 * vhost (made with CONTEXT_PORT_NO_LISTEN). NULL with errstr. */
proxy_listener_t *proxy_listener_new(struct ev_loop *loop, struct lws_vhost *vhost,
                                     const char *bind, int port, const struct proxies *trusted,
                                     char *errstr, size_t size);
void proxy_listener_free(proxy_listener_t *pl);

/* The client a PROXY header named for the connection on fd, or NULL (no
 * header, or it named none). */
const char *proxy_listener_client(const proxy_listener_t *pl, int fd);

#endif
