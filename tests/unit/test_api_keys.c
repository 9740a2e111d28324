/* API keys: loading NAME KEY lines and matching a bearer against them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "api_keys.h"

static char *file_with(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/test_api_keys_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void keys_are_matched_whole_and_named(void **state)
{
    (void)state;
    char err[300];
    char *path = file_with("# who may read /metrics\n\nprometheus 0123456789abcdef-prom\n"
                           "  grafana\tfedcba9876543210-graf  \n");
    api_keys_t *k = api_keys_load(path, err, sizeof(err));
    unlink(path);
    assert_non_null(k);
    assert_int_equal(api_keys_count(k), 2);
    const char *prom = "0123456789abcdef-prom";
    assert_string_equal(api_keys_match(k, prom, strlen(prom)), "prometheus");
    assert_string_equal(api_keys_match(k, "fedcba9876543210-graf", 21), "grafana");
    /* A prefix, a longer key, another key, nothing. */
    assert_null(api_keys_match(k, prom, strlen(prom) - 1));
    assert_null(api_keys_match(k, "0123456789abcdef-prom-and-more", 30));
    assert_null(api_keys_match(k, "0123456789abcdef-prox", 21));
    assert_null(api_keys_match(k, "", 0));
    assert_null(api_keys_match(NULL, prom, strlen(prom)));
    api_keys_free(k);
}

static void bad_files_are_refused_without_showing_a_key(void **state)
{
    (void)state;
    char err[300];
    const char *bad[] = {"prometheus short\n", "onlyaname\n",
                         "a 0123456789abcdef-long-enough extra\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *path = file_with(bad[i]);
        assert_null(api_keys_load(path, err, sizeof(err)));
        assert_non_null(strstr(err, ":1: expected NAME KEY"));
        assert_null(strstr(err, "short"));
        assert_null(strstr(err, "0123456789abcdef"));
        unlink(path);
    }
    assert_null(api_keys_load("/nonexistent/keys", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_are_matched_whole_and_named),
        cmocka_unit_test(bad_files_are_refused_without_showing_a_key),
    };
    return cmocka_run_group_tests_name("api keys", tests, NULL, NULL);
}
