/* PROXY protocol headers: the client's address from versions 1 and 2,
 * more bytes asked for until the header is whole, anything else left
 * alone, and a malformed one refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "peer.h"
#include "proxy_header.h"

static int parse(const void *buf, size_t len, char *client)
{
    char err[128];
    return proxy_header_parse(buf, len, client, err, sizeof(err));
}

static void version_1_names_the_client(void **state)
{
    (void)state;
    char client[PEER_ADDR_MAX];
    const char v4[] = "PROXY TCP4 203.0.113.7 10.0.0.1 56324 8083\r\nGET / HTTP/1.1\r\n";
    assert_int_equal(parse(v4, strlen(v4), client), 44);
    assert_string_equal(client, "203.0.113.7");
    const char v6[] = "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
    assert_int_equal(parse(v6, strlen(v6), client), (int)strlen(v6));
    assert_string_equal(client, "2001:db8::1");
    const char unknown[] = "PROXY UNKNOWN\r\n";
    assert_int_equal(parse(unknown, strlen(unknown), client), 15);
    assert_string_equal(client, "");
    /* Cut anywhere: more is asked for. */
    for (size_t n = 1; n < strlen(v4) - strlen("GET / HTTP/1.1\r\n"); n++)
        assert_int_equal(parse(v4, n, client), PROXY_MORE);
}

static void version_2_names_the_client(void **state)
{
    (void)state;
    char client[PEER_ADDR_MAX];
    unsigned char v2[16 + 12 + 4] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51,
                                     0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 16,
                                     198,  51,   100,  9,    10,   0,    0,    1,
                                     0xdc, 0x04, 0x1f, 0x93, 0x01, 0x02, 0x03, 0x04};
    assert_int_equal(parse(v2, sizeof(v2), client), 32); /* with 4 bytes of TLVs */
    assert_string_equal(client, "198.51.100.9");
    for (size_t n = 1; n < sizeof(v2); n++)
        assert_int_equal(parse(v2, n, client), PROXY_MORE);
    v2[12] = 0x20; /* LOCAL: the proxy's own health check */
    assert_int_equal(parse(v2, sizeof(v2), client), 32);
    assert_string_equal(client, "");
    unsigned char v6[16 + 36] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
                                 0x54, 0x0a, 0x21, 0x21, 0x00, 36,   0x20, 0x01, 0x0d, 0xb8};
    v6[31] = 1;
    assert_int_equal(parse(v6, sizeof(v6), client), 52);
    assert_string_equal(client, "2001:db8::1");
}

static void other_bytes_are_left_alone(void **state)
{
    (void)state;
    /* "P" may be "POST": not sure until "PROXY " is whole. */
    assert_false(proxy_header_sure((const unsigned char *)"P", 1));
    assert_false(proxy_header_sure((const unsigned char *)"PROXY", 5));
    assert_true(proxy_header_sure((const unsigned char *)"PROXY ", 6));
    assert_false(proxy_header_sure((const unsigned char *)"\r\n\r\n", 4));
    char client[PEER_ADDR_MAX];
    const char *plain[] = {"GET / HTTP/1.1\r\n", "POST /api", "PRI * HTTP/2.0", "\x16\x03\x01"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(parse(plain[i], strlen(plain[i]), client), PROXY_NOT);
}

static void malformed_headers_are_refused(void **state)
{
    (void)state;
    char client[PEER_ADDR_MAX], err[128] = "";
    const char *bad[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",          /* no CR */
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",        /* no such protocol */
        "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",      /* not an address */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",    /* not a port */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",          /* a field short */
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",            /* v6 address as v4 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(proxy_header_parse((const unsigned char *)bad[i], strlen(bad[i]), client,
                                            err, sizeof(err)),
                         PROXY_BAD);
    char long_line[200];
    memset(long_line, 'x', sizeof(long_line));
    memcpy(long_line, "PROXY ", 6);
    assert_int_equal(proxy_header_parse((const unsigned char *)long_line, sizeof(long_line),
                                        client, err, sizeof(err)),
                     PROXY_BAD);
    assert_non_null(strstr(err, "107"));
    unsigned char v2[16] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51,
                            0x55, 0x49, 0x54, 0x0a, 0x11, 0x11, 0x00, 12};
    assert_int_equal(proxy_header_parse(v2, 16, client, err, sizeof(err)), PROXY_BAD); /* v1 bits */
    v2[12] = 0x21;
    v2[14] = 0xff; /* past the largest header read */
    assert_int_equal(proxy_header_parse(v2, 16, client, err, sizeof(err)), PROXY_BAD);
    v2[14] = 0;
    v2[15] = 4; /* TCP4 with no room for its addresses */
    unsigned char short4[20];
    memcpy(short4, v2, 16);
    memset(short4 + 16, 0, 4);
    assert_int_equal(proxy_header_parse(short4, 20, client, err, sizeof(err)), PROXY_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_1_names_the_client),
        cmocka_unit_test(version_2_names_the_client),
        cmocka_unit_test(other_bytes_are_left_alone),
        cmocka_unit_test(malformed_headers_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
