/* Accepting connections for libwebsockets, reading trusted proxies'
 * PROXY headers first. */
#define _GNU_SOURCE /* accept4 */
#include "proxy_listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uthash.h>

#include "log.h"
#include "peer.h"
#include "proxy_header.h"
#include "xalloc.h"

#define LISTENERS_MAX 2
#define HEADER_WAIT_S 5.0 /* a trusted proxy says its piece at once, or is dropped */
#define PEEK_AGAIN_S 0.005
#define ACCEPT_PAUSE_S 0.1 /* out of descriptors: accept again after this */

/* A connection a PROXY header named the client of. */
struct named {
    UT_hash_handle hh;
    int fd;
    char client[PEER_ADDR_MAX];
};

/* A connection from a trusted proxy whose first bytes are awaited. */
struct pending {
    ev_io io;
    ev_timer timer;
    proxy_listener_t *pl;
    unsigned char buf[PROXY_HEADER_MAX]; /* header bytes read off the socket so far */
    size_t have;
    char peer[PEER_ADDR_MAX];
    ev_tstamp since; /* accepted */
    int waiting;     /* on PEEK_AGAIN_S, not on the socket */
    struct pending *prev, *next;
};

struct proxy_listener {
    struct ev_loop *loop;
    struct lws_vhost *vhost;
    const struct proxies *trusted;
    ev_io listen[LISTENERS_MAX];
    int nlisten;
    ev_timer resume; /* after running out of descriptors */
    struct named *named;
    struct pending *pending;
};

const char *proxy_listener_client(const proxy_listener_t *pl, int fd)
{
    struct named *n = NULL;
    if (!pl)
        return NULL;
    HASH_FIND_INT(pl->named, &fd, n);
    return n ? n->client : NULL;
}

static void forget(proxy_listener_t *pl, int fd)
{
    struct named *n = NULL;
    HASH_FIND_INT(pl->named, &fd, n);
    if (n) {
        HASH_DEL(pl->named, n);
        free(n);
    }
}

static void adopt(proxy_listener_t *pl, int fd, const char *client)
{
    if (client && *client) {
        struct named *n = xcalloc(1, sizeof(*n));
        n->fd = fd;
        snprintf(n->client, sizeof(n->client), "%s", client);
        HASH_ADD_INT(pl->named, fd, n);
    }
    if (!lws_adopt_socket_vhost(pl->vhost, fd))
        forget(pl, fd); /* lws closed it (lws-adopt.h) */
}

static void pending_end(struct pending *p, int keep)
{
    proxy_listener_t *pl = p->pl;
    ev_io_stop(pl->loop, &p->io);
    ev_timer_stop(pl->loop, &p->timer);
    if (p->prev)
        p->prev->next = p->next;
    else
        pl->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (!keep)
        close(p->io.fd);
    free(p);
}

/* What the socket has, on the bytes read so far: a header (read exactly
 * that much off the socket, then hand over), none (hand over untouched),
 * part of one (read it off: every byte so far is the header's). */
/* The pending connection goes to libwebsockets, named client (or not). */
static void hand_over(struct pending *p, const char *client)
{
    int fd = p->io.fd;
    proxy_listener_t *pl = p->pl;
    pending_end(p, 1);
    adopt(pl, fd, client);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct pending *p = (struct pending *)w;
    unsigned char buf[PROXY_HEADER_MAX];
    char client[PEER_ADDR_MAX], why[128];
    memcpy(buf, p->buf, p->have);
    ssize_t got = recv(w->fd, buf + p->have, sizeof(buf) - p->have, MSG_PEEK);
    if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        pending_end(p, 0); /* closed before a byte */
        return;
    }
    int rc = proxy_header_parse(buf, p->have + (size_t)got, client, why, sizeof(why));
    if (rc == PROXY_NOT) {
        hand_over(p, NULL);
        return;
    }
    /* Bytes that may yet turn out to be HTTP ("P" of "POST") stay on the
     * socket; looked at again shortly rather than spun on. */
    if (rc == PROXY_MORE && !proxy_header_sure(buf, p->have + (size_t)got)) {
        ev_io_stop(loop, w);
        ev_timer_stop(loop, &p->timer);
        ev_timer_set(&p->timer, PEEK_AGAIN_S, 0);
        ev_timer_start(loop, &p->timer);
        p->waiting = 1;
        return;
    }
    size_t take = rc > 0 ? (size_t)rc - p->have : (size_t)got;
    if (rc == PROXY_BAD || recv(w->fd, p->buf + p->have, take, 0) != (ssize_t)take) {
        log_warn("a PROXY header from %s refused: %s", p->peer,
                 rc == PROXY_BAD ? why : "the socket failed");
        pending_end(p, 0);
        return;
    }
    p->have += take;
    if (rc > 0)
        hand_over(p, client);
}

static void on_silent(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct pending *p = (struct pending *)((char *)w - offsetof(struct pending, timer));
    if (p->waiting && ev_now(loop) - p->since < HEADER_WAIT_S) {
        p->waiting = 0; /* a few bytes were there: look again */
        ev_timer_set(&p->timer, HEADER_WAIT_S - (ev_now(loop) - p->since), 0);
        ev_timer_start(loop, &p->timer);
        ev_io_start(loop, &p->io);
        return;
    }
    log_debug("a connection from trusted proxy %s sent nothing in %g s: closed", p->peer,
              HEADER_WAIT_S);
    pending_end(p, 0);
}

static void peer_text(int fd, char *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char text[INET6_ADDRSTRLEN] = "";
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof(text));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof(text));
    }
    snprintf(out, PEER_ADDR_MAX, "%s", peer_unmapped(text));
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    proxy_listener_t *pl = w->data;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* The socket stays readable: pause rather than spin. */
                log_warn("accept: %s: accepting again in %g s", strerror(errno), ACCEPT_PAUSE_S);
                ev_io_stop(loop, w);
                ev_timer_start(loop, &pl->resume);
            } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                log_warn("accept: %s", strerror(errno));
            }
            return;
        }
        forget(pl, fd); /* a number closed and given out again */
        char peer[PEER_ADDR_MAX];
        peer_text(fd, peer);
        if (!proxies_trust(pl->trusted, peer)) {
            adopt(pl, fd, NULL);
            continue;
        }
        struct pending *p = xcalloc(1, sizeof(*p));
        p->pl = pl;
        snprintf(p->peer, sizeof(p->peer), "%s", peer);
        ev_io_init(&p->io, on_readable, fd, EV_READ);
        ev_timer_init(&p->timer, on_silent, HEADER_WAIT_S, 0);
        p->since = ev_now(loop);
        ev_io_start(loop, &p->io);
        ev_timer_start(loop, &p->timer);
        p->next = pl->pending;
        if (pl->pending)
            pl->pending->prev = p;
        pl->pending = p;
    }
}

static void on_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    proxy_listener_t *pl = w->data;
    for (int i = 0; i < pl->nlisten; i++)
        ev_io_start(loop, &pl->listen[i]);
}

static int listen_on(proxy_listener_t *pl, const struct addrinfo *ai, char *errstr, size_t size)
{
    int one = 1, zero = 0;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) /* IPv4 clients too, as ::ffff:a.b.c.d */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        snprintf(errstr, size, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    ev_io *w = &pl->listen[pl->nlisten++];
    ev_io_init(w, on_accept, fd, EV_READ);
    w->data = pl;
    ev_io_start(pl->loop, w);
    return 0;
}

proxy_listener_t *proxy_listener_new(struct ev_loop *loop, struct lws_vhost *vhost,
                                     const char *bind, int port, const struct proxies *trusted,
                                     char *errstr, size_t size)
{
    proxy_listener_t *pl = xcalloc(1, sizeof(*pl));
    pl->loop = loop;
    pl->vhost = vhost;
    pl->trusted = trusted;
    ev_timer_init(&pl->resume, on_resume, ACCEPT_PAUSE_S, 0);
    pl->resume.data = pl;
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char service[16], why[256] = "no address";
    snprintf(service, sizeof(service), "%d", port);
    /* Every interface: one IPv6 socket takes IPv4 too, else IPv4 alone. */
    hints.ai_family = *bind ? AF_UNSPEC : AF_INET6;
    int rc = getaddrinfo(*bind ? bind : NULL, service, &hints, &res);
    if (rc != 0 && !*bind) {
        hints.ai_family = AF_INET;
        rc = getaddrinfo(NULL, service, &hints, &res);
    }
    for (const struct addrinfo *ai = res; rc == 0 && ai && pl->nlisten == 0; ai = ai->ai_next)
        listen_on(pl, ai, why, sizeof(why));
    if (res)
        freeaddrinfo(res);
    if (pl->nlisten == 0 && !*bind) { /* no IPv6 here */
        hints.ai_family = AF_INET;
        if (getaddrinfo(NULL, service, &hints, &res) == 0) {
            listen_on(pl, res, why, sizeof(why));
            freeaddrinfo(res);
        }
    }
    if (pl->nlisten == 0) {
        snprintf(errstr, size, "cannot listen on %s:%d (%s: is the port in use?)",
                 *bind ? bind : "*", port, rc ? gai_strerror(rc) : why);
        free(pl);
        return NULL;
    }
    return pl;
}

void proxy_listener_free(proxy_listener_t *pl)
{
    if (!pl)
        return;
    ev_timer_stop(pl->loop, &pl->resume);
    for (int i = 0; i < pl->nlisten; i++) {
        ev_io_stop(pl->loop, &pl->listen[i]);
        close(pl->listen[i].fd);
    }
    while (pl->pending)
        pending_end(pl->pending, 0);
    struct named *n, *tmp;
    HASH_ITER(hh, pl->named, n, tmp) {
        HASH_DEL(pl->named, n);
        free(n);
    }
    free(pl);
}
