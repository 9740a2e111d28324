/* The PROXY protocol header a load balancer (haproxy's send-proxy, an AWS
 * NLB) puts before a connection's first byte to say whose it is: version 1
 * (a text line) and version 2 (binary), as the spec at
 * haproxy.org/download/2.6/doc/proxy-protocol.txt has them. Pure: bytes in,
 * an address out. */
#ifndef CONSUMER_PROXY_HEADER_H
#define CONSUMER_PROXY_HEADER_H

#include <stddef.h>

#define PROXY_HEADER_MAX 536 /* v2's 16 bytes and the longest address block we read */

enum {
    PROXY_NOT = -2,  /* the bytes are not a PROXY header (plain HTTP, TLS) */
    PROXY_BAD = -1,  /* a PROXY header, malformed: close the connection */
    PROXY_MORE = 0,  /* a PROXY header, not all here yet */
};

/* Looks at the first len bytes of a connection. Returns the header's
 * length (> 0) with the client's address in client (text, PEER_ADDR_MAX;
 * "" when the header names none: LOCAL, UNKNOWN, a family other than
 * TCP over IPv4 or IPv6, and the proxy's own address counts), or one of
 * the above, with why in errstr for PROXY_BAD. */
int proxy_header_parse(const unsigned char *buf, size_t len, char *client, char *errstr,
                       size_t size);
/* Whether the first len bytes are surely a PROXY header's ("PROXY " or
 * v2's 12-byte signature, whole), not the start of something else. */
int proxy_header_sure(const unsigned char *buf, size_t len);

#endif
