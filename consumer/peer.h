/* Limits per client address: how many WebSocket connections one address
 * holds and how fast it opens them (a token bucket), so that one address
 * cannot take every slot; and which address a connection is from, believing
 * X-Forwarded-For only from --trusted-proxies. Plain data, no sockets; the
 * loop thread only. */
#ifndef CONSUMER_PEER_H
#define CONSUMER_PEER_H

#include <stddef.h>
#include <stdint.h>

#define PEER_ADDR_MAX 64 /* an IPv6 address in text, with room */
#define PROXIES_MAX 32

struct peer_conf {
    int max_per_address;   /* open connections */
    double rate_per_s;     /* new connections a second, on average */
    int burst;             /* new connections at once */
};

enum peer_verdict { PEER_OK, PEER_TOO_MANY, PEER_TOO_FAST };

typedef struct peers peers_t;

peers_t *peers_new(const struct peer_conf *conf);
void peers_free(peers_t *p);
/* A new connection from addr at now_ms: PEER_OK counts it (peers_release
 * when it closes) and, when key is not NULL, points it at the table's copy
 * of addr, kept until that release (a connection need not hold its own);
 * a refusal counts nothing but the attempt's token. */
enum peer_verdict peers_admit(peers_t *p, const char *addr, int64_t now_ms, const char **key);
void peers_release(peers_t *p, const char *addr);
/* Forgets addresses with no connection whose bucket is full again. */
void peers_sweep(peers_t *p, int64_t now_ms);
size_t peers_tracked(const peers_t *p);

/* Networks whose X-Forwarded-For is believed. */
struct cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
};
struct proxies {
    struct cidr nets[PROXIES_MAX];
    size_t n;
};

/* "10.0.0.0/8,::1" (a bare address is /32 or /128); -1 with errstr. */
int proxies_parse(struct proxies *px, const char *csv, char *errstr, size_t size);

/* Whether addr (text) is in one of the networks. */
int proxies_trust(const struct proxies *px, const char *addr);
/* addr without the ::ffff: of an IPv4 client on a dual-stack socket. */
const char *peer_unmapped(const char *addr);

/* The client's address: peer itself, or, when peer is a trusted proxy, the
 * right-most address in xff (X-Forwarded-For, may be NULL) that is not a
 * trusted proxy. Written to out (PEER_ADDR_MAX). */
void peer_client_address(const struct proxies *px, const char *peer, const char *xff,
                         char *out);

#endif
