/* Parsing PROXY protocol headers, versions 1 and 2. */
#include "proxy_header.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "errstr.h"
#include "peer.h"

static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                         0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
#define V1_MAX 107 /* "PROXY TCP6" with the longest addresses and ports, and CRLF */

/* Whether the first n bytes agree with prefix (as far as both go). */
static int starts(const unsigned char *buf, size_t n, const void *prefix, size_t plen)
{
    return memcmp(buf, prefix, n < plen ? n : plen) == 0;
}

/* "PROXY TCP4 SRC DST SPORT DPORT\r\n", "PROXY TCP6 ...", "PROXY UNKNOWN...\r\n" */
static int parse_v1(const unsigned char *buf, size_t len, char *client, char *errstr,
                    size_t size)
{
    const unsigned char *nl = memchr(buf, '\n', len < V1_MAX ? len : V1_MAX);
    if (!nl)
        return len >= V1_MAX ? errstr_set(errstr, size, "a PROXY v1 line past 107 bytes")
                             : PROXY_MORE;
    size_t n = (size_t)(nl - buf) + 1;
    if (n < 8 || nl[-1] != '\r')
        return errstr_set(errstr, size, "a PROXY v1 line not ended by CRLF");
    char line[V1_MAX + 1], proto[8], src[64], dst[64];
    unsigned sport, dport;
    int used = 0;
    memcpy(line, buf, n - 2);
    line[n - 2] = '\0';
    if (strncmp(line, "PROXY UNKNOWN", 13) == 0 && (line[13] == '\0' || line[13] == ' ')) {
        client[0] = '\0';
        return (int)n;
    }
    if (sscanf(line, "PROXY %7s %63s %63s %u %u%n", proto, src, dst, &sport, &dport, &used) != 5 ||
        line[used] != '\0' || sport > 65535 || dport > 65535)
        return errstr_set(errstr, size, "a PROXY v1 line that is not PROXY TCP4|TCP6 SRC DST "
                                        "SPORT DPORT");
    unsigned char a[16];
    int family = !strcmp(proto, "TCP4") ? AF_INET : !strcmp(proto, "TCP6") ? AF_INET6 : 0;
    if (!family || inet_pton(family, src, a) != 1 || inet_pton(family, dst, a) != 1)
        return errstr_set(errstr, size, "a PROXY v1 line with a bad protocol or address");
    snprintf(client, PEER_ADDR_MAX, "%s", src);
    return (int)n;
}

/* 12-byte signature, version and command, family, length, addresses. */
static int parse_v2(const unsigned char *buf, size_t len, char *client, char *errstr,
                    size_t size)
{
    if (len < 16)
        return PROXY_MORE;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if ((buf[12] & 0xf0) != 0x20)
        return errstr_set(errstr, size, "a PROXY v2 header of version %d", buf[12] >> 4);
    if (16 + body > PROXY_HEADER_MAX)
        return errstr_set(errstr, size, "a PROXY v2 header of %zu bytes, past %d", 16 + body,
                          PROXY_HEADER_MAX);
    if (len < 16 + body)
        return PROXY_MORE;
    int command = buf[12] & 0x0f, family = buf[13] >> 4, transport = buf[13] & 0x0f;
    client[0] = '\0';
    if (command == 0x0) /* LOCAL: the proxy's own connection (a health check) */
        return (int)(16 + body);
    if (command != 0x1)
        return errstr_set(errstr, size, "a PROXY v2 header with command %d", command);
    if (transport == 0x1 && family == 0x1) {
        if (body < 12)
            return errstr_set(errstr, size, "a PROXY v2 TCP4 header too short");
        inet_ntop(AF_INET, buf + 16, client, PEER_ADDR_MAX);
    } else if (transport == 0x1 && family == 0x2) {
        if (body < 36)
            return errstr_set(errstr, size, "a PROXY v2 TCP6 header too short");
        inet_ntop(AF_INET6, buf + 16, client, PEER_ADDR_MAX);
    }
    return (int)(16 + body);
}

int proxy_header_sure(const unsigned char *buf, size_t len)
{
    return (len >= 6 && !memcmp(buf, "PROXY ", 6)) ||
           (len >= sizeof(v2_sig) && !memcmp(buf, v2_sig, sizeof(v2_sig)));
}

int proxy_header_parse(const unsigned char *buf, size_t len, char *client, char *errstr,
                       size_t size)
{
    if (len == 0)
        return PROXY_MORE;
    if (starts(buf, len, "PROXY ", 6))
        return len < 6 ? PROXY_MORE : parse_v1(buf, len, client, errstr, size);
    if (starts(buf, len, v2_sig, sizeof(v2_sig)))
        return len < sizeof(v2_sig) ? PROXY_MORE : parse_v2(buf, len, client, errstr, size);
    return PROXY_NOT;
}
