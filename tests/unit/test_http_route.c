/* The HTTP route table's matcher: methods, literal segments, {params},
 * 404 against 405, query strings, and the prefixes that become mounts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http_route.h"

static void handler(void *ctx, http_request_t *req)
{
    (void)ctx;
    (void)req;
}

static const struct http_route routes[] = {
    {"GET", "/healthz", 0, handler},
    {"GET", "/api/users/{userId}/inbox", 0, handler},
    {"POST", "/api/notifications", 65536, handler},
    {"DELETE", "/api/users/{userId}/inbox/{id}", 0, handler},
};
#define N (sizeof(routes) / sizeof(routes[0]))

static void literal_paths_match_their_method(void **state)
{
    (void)state;
    struct http_params p;
    assert_int_equal(http_route_match(routes, N, "GET", "/healthz", &p), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(http_route_match(routes, N, "GET", "/healthz?verbose=1", &p), 0);
    assert_int_equal(http_route_match(routes, N, "POST", "/api/notifications", &p), 2);
}

static void params_are_captured(void **state)
{
    (void)state;
    struct http_params p;
    assert_int_equal(http_route_match(routes, N, "GET", "/api/users/alice/inbox", &p), 1);
    assert_string_equal(http_param(&p, "userId"), "alice");
    assert_null(http_param(&p, "id"));
    assert_int_equal(http_route_match(routes, N, "DELETE", "/api/users/bob/inbox/n-1?x", &p), 3);
    assert_string_equal(http_param(&p, "userId"), "bob");
    assert_string_equal(http_param(&p, "id"), "n-1");
}

static void wrong_method_is_405_unknown_path_is_404(void **state)
{
    (void)state;
    struct http_params p;
    assert_int_equal(http_route_match(routes, N, "POST", "/healthz", &p), HTTP_ROUTE_BAD_METHOD);
    assert_int_equal(http_route_match(routes, N, "GET", "/api/notifications", &p),
                     HTTP_ROUTE_BAD_METHOD);
    assert_int_equal(http_route_match(routes, N, "GET", "/healthz/x", &p), HTTP_ROUTE_NONE);
    assert_int_equal(http_route_match(routes, N, "GET", "/healthzz", &p), HTTP_ROUTE_NONE);
    assert_int_equal(http_route_match(routes, N, "GET", "/", &p), HTTP_ROUTE_NONE);
    assert_int_equal(http_route_match(routes, N, "GET", "/api/users//inbox", &p), HTTP_ROUTE_NONE);
    assert_int_equal(http_route_match(routes, N, "GET", "/api/users/a/inbox/", &p), HTTP_ROUTE_NONE);
}

static void an_overlong_param_does_not_match(void **state)
{
    (void)state;
    struct http_params p;
    char path[512] = "/api/users/";
    memset(path + strlen(path), 'u', HTTP_PARAM_MAX + 1);
    strcat(path, "/inbox");
    assert_int_equal(http_route_match(routes, N, "GET", path, &p), HTTP_ROUTE_NONE);
}

static void prefixes_end_at_the_second_slash(void **state)
{
    (void)state;
    assert_int_equal(http_route_prefix_len("/healthz"), 8);
    assert_int_equal(http_route_prefix_len("/api/users/{userId}/inbox"), 4);
    assert_int_equal(http_route_prefix_len("/"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_paths_match_their_method),
        cmocka_unit_test(params_are_captured),
        cmocka_unit_test(wrong_method_is_405_unknown_path_is_404),
        cmocka_unit_test(an_overlong_param_does_not_match),
        cmocka_unit_test(prefixes_end_at_the_second_slash),
    };
    return cmocka_run_group_tests_name("http routes", tests, NULL, NULL);
}
