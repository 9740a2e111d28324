/* The settings table: --help and the README's "## Settings" table list the
 * same settings with the same text, the precedence default < environment <
 * flag holds, and a bad value gets an error that names where it came from
 * and what would do. Runs from the repository root (make unit does), where
 * README.md is. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

#define MAX_ROWS 64

/* One setting as a document shows it; def is "(empty)" for an empty one. */
struct row {
    char flag[64];
    char env[64];
    char def[128];
    char meaning[512];
};

static struct row help[MAX_ROWS];
static size_t nhelp;

static void copy(char *dst, size_t size, const char *src, size_t len)
{
    snprintf(dst, size, "%.*s", (int)len, src);
}

/* "\"x\"" or "`x`" to x; anything else as it is. */
static void unquote(char *s)
{
    size_t len = strlen(s);
    if (len >= 2 && (s[0] == '"' || s[0] == '`') && s[len - 1] == s[0]) {
        memmove(s, s + 1, len - 2);
        s[len - 2] = '\0';
    }
}

/* --help's entries: "  --flag[=VALUE]", "      meaning", "      env NAME[=true|false],
 * default X". -X is listed as "  -X key=value" with no env line. */
static void parse_help(void)
{
    char *text = NULL, *line, *save = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_usage(f);
    fclose(f);

    nhelp = 0;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "  -X ", 5) == 0) {
            assert_true(nhelp < MAX_ROWS);
            memset(&help[nhelp], 0, sizeof(help[nhelp]));
            copy(help[nhelp++].flag, sizeof(help[0].flag), line + 2, strlen(line + 2));
        } else if (strncmp(line, "  --", 4) == 0) {
            assert_true(nhelp < MAX_ROWS);
            struct row *r = &help[nhelp++];
            memset(r, 0, sizeof(*r));
            copy(r->flag, sizeof(r->flag), line + 2, strcspn(line + 2, "="));
            line = strtok_r(NULL, "\n", &save);
            assert_non_null(line);
            copy(r->meaning, sizeof(r->meaning), line + 6, strlen(line + 6));
            line = strtok_r(NULL, "\n", &save);
            assert_non_null(line);
            assert_memory_equal(line, "      env ", 10);
            copy(r->env, sizeof(r->env), line + 10, strcspn(line + 10, "=,"));
            const char *def = strstr(line, ", default ");
            assert_non_null(def);
            copy(r->def, sizeof(r->def), def + 10, strlen(def + 10));
            unquote(r->def);
        }
    }
    free(text);
    assert_true(nhelp > 10);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s: run the unit tests from the repository root (make unit does)",
                 path);
    char *text = malloc(1 << 20);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* The rows of README.md's "## Settings" table: "| `--flag` | `ENV` | `default` | meaning |". */
static size_t parse_readme(struct row *rows)
{
    char *text = read_file("README.md");
    char *start = strstr(text, "\n## Settings\n");
    assert_non_null(start);
    char *end = strstr(start + 1, "\n## ");
    if (end)
        *end = '\0';

    size_t n = 0;
    char *save = NULL;
    for (char *line = strtok_r(start, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "| `-", 4) != 0)
            continue;
        assert_true(n < MAX_ROWS);
        char *cells[4];
        char *cell = line + 2;
        for (int i = 0; i < 4; i++) {
            char *bar = strstr(cell, " |");
            assert_non_null(bar);
            *bar = '\0';
            cells[i] = cell;
            cell = bar + 2 + (bar[2] == ' ');
        }
        struct row *r = &rows[n++];
        copy(r->flag, sizeof(r->flag), cells[0], strlen(cells[0]));
        copy(r->env, sizeof(r->env), cells[1], strlen(cells[1]));
        copy(r->def, sizeof(r->def), cells[2], strlen(cells[2]));
        copy(r->meaning, sizeof(r->meaning), cells[3], strlen(cells[3]));
        unquote(r->flag);
        unquote(r->env);
        unquote(r->def);
    }
    free(text);
    return n;
}

static const struct row *find(const struct row *rows, size_t n, const char *flag)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].flag, flag) == 0)
            return &rows[i];
    return NULL;
}

/* Each test starts from the defaults: none of the settings' variables set. */
static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < nhelp; i++)
        if (help[i].env[0])
            unsetenv(help[i].env);
    extern char **environ;
    for (char **e = environ; *e;) {
        if (strncmp(*e, "KAFKA_PROP_", 11) == 0) {
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name); /* environ shifts: look at the same place again */
        } else {
            e++;
        }
    }
    setenv("AUTH", "none", 1); /* the tests that are not about it */
    return 0;
}

static int setup_group(void **state)
{
    parse_help();
    return clear_env(state);
}

/* config_load on "consumer" and the NULL-ended arguments. */
static enum config_result load(struct config *c, char *err, size_t size, ...)
{
    static char *argv[32];
    int argc = 0;
    va_list ap;

    argv[argc++] = "consumer";
    va_start(ap, size);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    return config_load(c, argc, argv, err, size);
}

static void same(const char *flag, const char *column, const char *readme, const char *usage)
{
    if (strcmp(readme, usage) != 0)
        fail_msg("README.md's %s of %s is \"%s\" but --help says \"%s\": make them agree",
                 column, flag, readme, usage);
}

static void help_and_readme_list_the_same_settings(void **state)
{
    (void)state;
    struct row readme[MAX_ROWS];
    size_t nreadme = parse_readme(readme);

    for (size_t i = 0; i < nhelp; i++) {
        const struct row *h = &help[i], *r = find(readme, nreadme, h->flag);
        if (!r)
            fail_msg("%s is in --help but not in README.md's settings table", h->flag);
        if (!h->env[0])
            continue; /* -X: no variable, no default */
        same(h->flag, "env", r->env, h->env);
        same(h->flag, "default", r->def, h->def);
        same(h->flag, "meaning", r->meaning, h->meaning);
    }
    for (size_t i = 0; i < nreadme; i++)
        if (!find(help, nhelp, readme[i].flag))
            fail_msg("README.md's settings table has %s, which is no setting", readme[i].flag);
}

static void flag_beats_environment_beats_default(void **state)
{
    (void)state;
    struct config c;
    char err[512];

    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_OK);
    assert_int_equal(c.port, 8083);
    assert_string_equal(c.topic, "notifications");

    setenv("PORT", "9000", 1);
    setenv("KAFKA_TOPIC", "", 1); /* empty counts as unset */
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_OK);
    assert_int_equal(c.port, 9000);
    assert_string_equal(c.topic, "notifications");

    assert_int_equal(load(&c, err, sizeof(err), "--port=9100", "--topic", "t", NULL), CONFIG_OK);
    assert_int_equal(c.port, 9100);
    assert_string_equal(c.topic, "t");
    clear_env(state);
}

static void a_bad_number_names_its_source_and_range(void **state)
{
    (void)state;
    struct config c;
    char err[512];

    setenv("PORT", "http", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_ERROR);
    assert_string_equal(err, "environment variable PORT: \"http\" is not a whole number from 1 to "
                             "65535");
    clear_env(state);

    assert_int_equal(load(&c, err, sizeof(err), "--window=0", NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "--window: \"0\""));

    setenv("EMBEDDED", "maybe", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_ERROR);
    assert_string_equal(err, "environment variable EMBEDDED: \"maybe\" is not true or false");
    clear_env(state);
}

static void a_bad_log_level_lists_the_allowed_ones(void **state)
{
    (void)state;
    struct config c;
    char err[512];

    assert_int_equal(load(&c, err, sizeof(err), "--log-level=loud", NULL), CONFIG_ERROR);
    assert_string_equal(err,
                        "--log-level: \"loud\" is not a log level; use error, warn, info or debug");

    setenv("LOG_LEVEL", "trace", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "environment variable LOG_LEVEL: \"trace\""));
    clear_env(state);

    assert_int_equal(load(&c, err, sizeof(err), "--log-level", "warn", NULL), CONFIG_OK);
    assert_string_equal(c.log_level, "warn");
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_OK); /* back to info */
}

static void a_bad_store_scheme_is_refused_without_showing_the_uri(void **state)
{
    (void)state;
    struct config c;
    char err[512];

    assert_int_equal(load(&c, err, sizeof(err), "--store=foo:bar", NULL), CONFIG_ERROR);
    assert_string_equal(err, "--store: unknown store scheme \"foo:\"; use mongodb://HOST:PORT/ or "
                             "sqlite:PATH");

    setenv("STORE_URI", "redis://user:secret@host/", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "environment variable STORE_URI: unknown store scheme"));
    assert_null(strstr(err, "secret"));
    clear_env(state);

    assert_int_equal(load(&c, err, sizeof(err), "--mongodb-uri=sqlite:x.db", NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "--mongodb-uri: unknown MongoDB URI scheme \"sqlite:\""));
    assert_int_equal(load(&c, err, sizeof(err), "--mongodb-uri=", NULL), CONFIG_ERROR);

    assert_int_equal(load(&c, err, sizeof(err), "--store=mongodb+srv://h/", NULL), CONFIG_OK);
    assert_int_equal(load(&c, err, sizeof(err), "--store=sqlite:x.db", NULL), CONFIG_OK);

    /* A MongoDB URI that is not the store is not in the way. */
    setenv("MONGODB_URI", "localhost:27017", 1);
    assert_int_equal(load(&c, err, sizeof(err), "--store=sqlite:x.db", NULL), CONFIG_OK);
    assert_int_equal(load(&c, err, sizeof(err), "--embedded", NULL), CONFIG_OK);
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "environment variable MONGODB_URI: unknown MongoDB URI scheme"));
    clear_env(state);
}

static void the_store_uri_is_resolved_once(void **state)
{
    (void)state;
    struct config c;
    char err[512];

    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_OK);
    assert_string_equal(c.store_uri, "mongodb://localhost:27017/");
    assert_int_equal(load(&c, err, sizeof(err), "--mongodb-uri=mongodb://db:1/", NULL), CONFIG_OK);
    assert_string_equal(c.store_uri, "mongodb://db:1/");
    assert_int_equal(load(&c, err, sizeof(err), "--embedded", NULL), CONFIG_OK);
    assert_string_equal(c.store_uri, "sqlite:data/notifications.db");
    assert_int_equal(load(&c, err, sizeof(err), "--embedded", "--store=sqlite:x.db", NULL),
                     CONFIG_OK);
    assert_string_equal(c.store_uri, "sqlite:x.db");
}

static void a_node_id_is_checked_and_defaults_to_host_and_port(void **state)
{
    (void)state;
    struct config c;
    char err[512], want[NODE_ID_MAX + 16], host[NODE_ID_MAX + 1] = "";

    assert_int_equal(load(&c, err, sizeof(err), "--node-id=gw.1_a-B", NULL), CONFIG_OK);
    assert_string_equal(c.node_id, "gw.1_a-B");
    assert_int_equal(load(&c, err, sizeof(err), "--node-id=a/b", NULL), CONFIG_ERROR);
    assert_string_equal(err, "--node-id: \"a/b\" is not a node id: use 1 to 64 letters, digits, "
                             "'.', '_' or '-'");
    setenv("NODE_ID", "x x", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "environment variable NODE_ID: \"x x\""));
    clear_env(state);

    assert_int_equal(load(&c, err, sizeof(err), "--port=8090", NULL), CONFIG_OK);
    gethostname(host, sizeof(host));
    snprintf(want, sizeof(want), "-%d", 8090);
    assert_true(node_id_valid(c.node_id));
    assert_non_null(strstr(c.node_id, want));
    if (strlen(host) + 5 <= NODE_ID_MAX && strspn(host, "abcdefghijklmnopqrstuvwxyz"
                                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                                               strlen(host)) {
        snprintf(want, sizeof(want), "%s-8090", host);
        assert_string_equal(c.node_id, want);
    }
}

static void kafka_keys_the_gateway_sets_are_refused(void **state)
{
    (void)state;
    struct config c;
    char err[512];

    assert_int_equal(load(&c, err, sizeof(err), "-X", "group.id=x", NULL), CONFIG_ERROR);
    assert_string_equal(err, "-X group.id=x: the gateway sets group.id itself (--group / "
                             "--brokers); use its own option instead");
    assert_int_equal(load(&c, err, sizeof(err), "-Xenable.auto.commit=false", NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "the gateway sets enable.auto.commit itself (offsets are stored"));
    /* An alias of bootstrap.servers too. */
    assert_int_equal(load(&c, err, sizeof(err), "-X", "metadata.broker.list=h:1", NULL),
                     CONFIG_ERROR);
    assert_int_equal(load(&c, err, sizeof(err), "-X", "linger", NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "expected key=value"));

    /* A key that only starts like a protected one is passed on. */
    assert_int_equal(load(&c, err, sizeof(err), "-X", "group.id.x=1", "-X",
                          "security.protocol=ssl", NULL),
                     CONFIG_OK);
    assert_string_equal(c.kafka_props[0], "group.id.x=1");
    assert_string_equal(c.kafka_props[1], "security.protocol=ssl");
    assert_null(c.kafka_props[2]);
}

static void secrets_are_not_logged(void **state)
{
    (void)state;
    struct config c;
    char err[512], buf[256];

    assert_int_equal(load(&c, err, sizeof(err), "--mongodb-uri=mongodb://u:pw@db/", "--bind=::1",
                          NULL),
                     CONFIG_OK);
    assert_string_equal(config_value_text(&c, "mongodb-uri", buf, sizeof(buf)),
                        "(set; not logged, it may hold a password)");
    assert_string_equal(config_value_text(&c, "store", buf, sizeof(buf)), "(empty)");
    assert_string_equal(config_value_text(&c, "bind", buf, sizeof(buf)), "::1");
    assert_string_equal(config_value_text(&c, "port", buf, sizeof(buf)), "8083");
    assert_string_equal(config_value_text(&c, "embedded", buf, sizeof(buf)), "false");
    assert_string_equal(config_value_text(&c, "log-level", buf, sizeof(buf)), "info");
    assert_null(config_value_text(&c, "no-such-setting", buf, sizeof(buf)));

    assert_int_equal(load(&c, err, sizeof(err), "--store=sqlite:/home/u/pw.db", NULL), CONFIG_OK);
    assert_string_equal(config_value_text(&c, "store", buf, sizeof(buf)),
                        "(set; not logged, it may hold a password)");
}

static void auth_must_be_chosen_and_its_secret_kept_off_the_command_line(void **state)
{
    (void)state;
    struct config c;
    char err[512], buf[256];

    unsetenv("AUTH");
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "--auth is not set"));
    assert_non_null(strstr(err, "--auth none"));
    /* Embedded (make run): none, said to be a default. */
    assert_int_equal(load(&c, err, sizeof(err), "--embedded", NULL), CONFIG_OK);
    assert_string_equal(c.auth, "none");
    assert_true(c.auth_defaulted);
    assert_int_equal(load(&c, err, sizeof(err), "--auth=none", NULL), CONFIG_OK);
    assert_false(c.auth_defaulted);
    assert_int_equal(load(&c, err, sizeof(err), "--auth=open", NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "use jwt or none"));

    /* jwt needs exactly one key. */
    assert_int_equal(load(&c, err, sizeof(err), "--auth=jwt", NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "exactly one key"));
    setenv("JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
    assert_int_equal(load(&c, err, sizeof(err), "--auth=jwt", NULL), CONFIG_OK);
    assert_string_equal(config_value_text(&c, "jwt-secret", buf, sizeof(buf)),
                        "(set; not logged, it may hold a password)");
    assert_int_equal(load(&c, err, sizeof(err), "--auth=jwt", "--jwks-file=k.json", NULL),
                     CONFIG_ERROR);
    assert_non_null(strstr(err, "(2 given)"));
    /* Never as a flag. */
    assert_int_equal(load(&c, err, sizeof(err), "--auth=jwt", "--jwt-secret=s3cr3t", NULL),
                     CONFIG_ERROR);
    assert_non_null(strstr(err, "set JWT_SECRET in the environment"));
    assert_null(strstr(err, "s3cr3t"));
    clear_env(state);
}

static void kafka_properties_come_from_a_file_the_environment_and_x(void **state)
{
    (void)state;
    struct config c;
    char err[512], path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# credentials for the cloud cluster\n"
                       "security.protocol = sasl_ssl\n\n"
                       "sasl.password=hunter2\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    setenv("KAFKA_PROP_SASL_USERNAME", "svc", 1);
    setenv("KAFKA_PROP_SSL_KEY__PASSWORD", "k", 1); /* "__" is "_" */
    assert_int_equal(load(&c, err, sizeof(err), "--kafka-config", path, "-X", "linger.ms=5",
                          NULL), CONFIG_OK);
    /* File, then environment (in its order), then -X: the later wins. */
    assert_int_equal(c.nkafka_props, 5);
    assert_string_equal(c.kafka_props[0], "security.protocol=sasl_ssl");
    assert_string_equal(c.kafka_props[1], "sasl.password=hunter2");
    assert_string_equal(c.kafka_props[4], "linger.ms=5");
    int user = 0, key = 0;
    for (int i = 2; i < 4; i++) {
        user |= strcmp(c.kafka_props[i], "sasl.username=svc") == 0;
        key |= strcmp(c.kafka_props[i], "ssl.key_password=k") == 0;
    }
    assert_true(user && key);
    assert_null(c.kafka_props[5]);
    config_free(&c);
    clear_env(state);

    /* What the gateway sets itself is refused from there too, without the value. */
    setenv("KAFKA_PROP_GROUP_ID", "sneaky", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "environment variable KAFKA_PROP_GROUP_ID: the gateway sets "
                                "group.id itself"));
    assert_null(strstr(err, "sneaky"));
    clear_env(state);
    fd = open(path, O_WRONLY | O_TRUNC);
    const char *bad = "sasl.password hunter2\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    assert_int_equal(load(&c, err, sizeof(err), "--kafka-config", path, NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, ":1: expected key=value"));
    assert_null(strstr(err, "hunter2"));
    unlink(path);
    assert_int_equal(load(&c, err, sizeof(err), "--kafka-config", path, NULL), CONFIG_ERROR);
    assert_non_null(strstr(err, "cannot open it"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_and_readme_list_the_same_settings),
        cmocka_unit_test_setup(flag_beats_environment_beats_default, clear_env),
        cmocka_unit_test_setup(a_bad_number_names_its_source_and_range, clear_env),
        cmocka_unit_test_setup(a_bad_log_level_lists_the_allowed_ones, clear_env),
        cmocka_unit_test_setup(a_bad_store_scheme_is_refused_without_showing_the_uri, clear_env),
        cmocka_unit_test_setup(the_store_uri_is_resolved_once, clear_env),
        cmocka_unit_test_setup(a_node_id_is_checked_and_defaults_to_host_and_port, clear_env),
        cmocka_unit_test_setup(kafka_keys_the_gateway_sets_are_refused, clear_env),
        cmocka_unit_test_setup(secrets_are_not_logged, clear_env),
        cmocka_unit_test_setup(auth_must_be_chosen_and_its_secret_kept_off_the_command_line,
                               clear_env),
        cmocka_unit_test_setup(kafka_properties_come_from_a_file_the_environment_and_x,
                               clear_env),
    };
    return cmocka_run_group_tests(tests, setup_group, NULL);
}
