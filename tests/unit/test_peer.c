/* Who may open a connection: the Origin check, the per-address count and
 * rate, and the client address behind trusted proxies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "origin.h"
#include "peer.h"

static void the_gateways_own_origin_by_default(void **state)
{
    (void)state;
    struct origins none = {0};
    assert_true(origin_allowed(&none, "http://localhost:8083", "localhost:8083"));
    assert_true(origin_allowed(&none, "HTTP://LocalHost:8083/", "localhost:8083"));
    assert_true(origin_allowed(&none, NULL, "localhost:8083")); /* not a browser */
    assert_false(origin_allowed(&none, "http://evil.example", "localhost:8083"));
    assert_false(origin_allowed(&none, "http://localhost:8084", "localhost:8083"));
    assert_false(origin_allowed(&none, "http://localhost:80831", "localhost:8083"));
    assert_false(origin_allowed(&none, "http://localhost", "localhost:8083"));
    assert_false(origin_allowed(&none, "null", "localhost:8083"));
    assert_false(origin_allowed(&none, "http://localhost:8083", NULL));
}

static void a_list_replaces_the_default(void **state)
{
    (void)state;
    struct origins o;
    char err[200];
    assert_int_equal(origins_parse(&o, " https://app.example.com/, https://b.example:8443", err,
                                   sizeof(err)), 0);
    assert_int_equal(o.n, 2);
    assert_true(origin_allowed(&o, "https://APP.example.com", "gw:8083"));
    assert_true(origin_allowed(&o, "https://b.example:8443", "gw:8083"));
    assert_false(origin_allowed(&o, "http://app.example.com", "gw:8083"));
    assert_false(origin_allowed(&o, "https://app.example.com.evil", "gw:8083"));
    assert_false(origin_allowed(&o, "http://gw:8083", "gw:8083")); /* own origin not implied */
    origins_free(&o);

    assert_int_equal(origins_parse(&o, "null", err, sizeof(err)), 0);
    assert_true(origin_allowed(&o, "null", "gw:8083"));
    origins_free(&o);
    assert_int_equal(origins_parse(&o, "*", err, sizeof(err)), 0);
    assert_true(origin_allowed(&o, "https://anything.example", "gw:8083"));
    origins_free(&o);

    const char *bad[] = {"app.example.com", "https://a.example/path", "https://u@a.example",
                         "https://"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(origins_parse(&o, bad[i], err, sizeof(err)), -1);
        assert_non_null(strstr(err, "is not an origin"));
    }
}

static void one_address_is_capped_and_paced(void **state)
{
    (void)state;
    struct peer_conf conf = {.max_per_address = 3, .rate_per_s = 10, .burst = 5};
    peers_t *p = peers_new(&conf);
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++)
        assert_int_equal(peers_admit(p, "10.0.0.1", t, NULL), PEER_OK);
    assert_int_equal(peers_admit(p, "10.0.0.1", t, NULL), PEER_TOO_MANY);
    assert_int_equal(peers_admit(p, "10.0.0.2", t, NULL), PEER_OK); /* another address */
    peers_release(p, "10.0.0.1");
    assert_int_equal(peers_admit(p, "10.0.0.1", t, NULL), PEER_OK); /* the 5th token */
    /* The burst is spent: 100 ms later one more token. */
    assert_int_equal(peers_admit(p, "10.0.0.1", t, NULL), PEER_TOO_FAST);
    peers_release(p, "10.0.0.1");
    assert_int_equal(peers_admit(p, "10.0.0.1", t + 100, NULL), PEER_OK);
    assert_int_equal(peers_admit(p, "10.0.0.1", t + 100, NULL), PEER_TOO_FAST);

    /* Forgotten once closed and rested. */
    for (int i = 0; i < 3; i++)
        peers_release(p, "10.0.0.1");
    peers_release(p, "10.0.0.2");
    assert_int_equal(peers_tracked(p), 2);
    peers_sweep(p, t + 100);
    assert_int_equal(peers_tracked(p), 1); /* 10.0.0.2 has tokens back: 4 + 1 */
    peers_sweep(p, t + 10000);
    assert_int_equal(peers_tracked(p), 0);

    /* The table's copy of the address outlives the caller's buffer and
     * sweeps while the connection is open; a refusal gives none. */
    char addr[PEER_ADDR_MAX] = "10.0.0.3";
    const char *key = NULL, *none = NULL;
    assert_int_equal(peers_admit(p, addr, t, &key), PEER_OK);
    memset(addr, 0, sizeof(addr));
    peers_sweep(p, t + 10000);
    assert_string_equal(key, "10.0.0.3");
    for (int i = 0; i < 5; i++)
        peers_admit(p, "10.0.0.4", t, NULL);
    assert_int_equal(peers_admit(p, "10.0.0.4", t, &none), PEER_TOO_FAST);
    assert_null(none);
    peers_release(p, key);
    peers_free(p);
}

static void forwarded_for_is_believed_only_from_trusted_proxies(void **state)
{
    (void)state;
    struct proxies px;
    char err[200], out[PEER_ADDR_MAX];
    assert_int_equal(proxies_parse(&px, "10.0.0.0/8, 192.168.1.7, fd00::/8", err, sizeof(err)), 0);
    assert_int_equal(px.n, 3);

    peer_client_address(&px, "203.0.113.9", "1.2.3.4", out);
    assert_string_equal(out, "203.0.113.9"); /* not a proxy: its header is ignored */
    peer_client_address(&px, "10.1.2.3", "1.2.3.4", out);
    assert_string_equal(out, "1.2.3.4");
    peer_client_address(&px, "10.1.2.3", "6.6.6.6, 1.2.3.4, 192.168.1.7", out);
    assert_string_equal(out, "1.2.3.4"); /* the right-most that is not a proxy */
    peer_client_address(&px, "10.1.2.3", NULL, out);
    assert_string_equal(out, "10.1.2.3");
    peer_client_address(&px, "10.1.2.3", "junk, 1.2.3.4", out);
    assert_string_equal(out, "1.2.3.4");
    peer_client_address(&px, "10.1.2.3", "1.2.3.4, junk", out);
    assert_string_equal(out, "10.1.2.3"); /* a garbled last hop: trust nothing in it */
    peer_client_address(&px, "fd12::1", "2001:db8::5", out);
    assert_string_equal(out, "2001:db8::5");
    peer_client_address(&px, "192.168.1.8", "1.2.3.4", out);
    assert_string_equal(out, "192.168.1.8");
    /* IPv4 seen through a dual-stack socket. */
    peer_client_address(&px, "::ffff:10.1.2.3", "1.2.3.4", out);
    assert_string_equal(out, "1.2.3.4");
    peer_client_address(&px, "::FFFF:203.0.113.9", NULL, out);
    assert_string_equal(out, "203.0.113.9");

    const char *bad[] = {"10.0.0.0/33", "example.com", "10.0.0.0/", "::1/129"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(proxies_parse(&px, bad[i], err, sizeof(err)), -1);
        assert_non_null(strstr(err, "is not an address or network"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_gateways_own_origin_by_default),
        cmocka_unit_test(a_list_replaces_the_default),
        cmocka_unit_test(one_address_is_capped_and_paced),
        cmocka_unit_test(forwarded_for_is_believed_only_from_trusted_proxies),
    };
    return cmocka_run_group_tests_name("peer", tests, NULL, NULL);
}
