#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#ifndef GATEWAY_VERSION
#define GATEWAY_VERSION "0.1.0"
#endif

enum kind { STR, INT, FLAG };

struct setting {
    const char *flag;
    const char *env;
    const char *def;
    enum kind kind;
    int min, max;
    size_t offset;
    const char *help;
};

#define S(field) offsetof(struct config, field)

static const struct setting settings[] = {
    {"brokers", "KAFKA_BROKERS", "localhost:9092", STR, 0, 0, S(brokers),
     "Kafka bootstrap servers, host:port[,host:port…]"},
    {"embedded", "EMBEDDED", "false", FLAG, 0, 0, S(embedded),
     "run an in-memory Kafka broker inside the gateway (development and demos; "
     "the store defaults to sqlite:data/notifications.db)"},
    {"embedded-port", "EMBEDDED_PORT", "9092", INT, 1, 65535, S(embedded_port),
     "loopback port where producers reach the embedded broker"},
    {"topic", "KAFKA_TOPIC", "notifications", STR, 0, 0, S(topic), "Kafka topic to consume"},
    {"group", "KAFKA_GROUP", "notification-group", STR, 0, 0, S(group), "Kafka consumer group"},
    {"store", "STORE_URI", "", STR, 0, 0, S(store),
     "offline store: mongodb://HOST:PORT/ or sqlite:PATH (empty: the --mongodb-uri server)"},
    {"mongodb-uri", "MONGODB_URI", "mongodb://localhost:27017/", STR, 0, 0, S(mongodb_uri),
     "MongoDB connection string for the offline store"},
    {"mongodb-db", "MONGODB_DB", "notification_gateway", STR, 0, 0, S(mongodb_db),
     "MongoDB database (collection \"notifications\")"},
    {"port", "PORT", "8083", INT, 1, 65535, S(port), "WebSocket and HTTP port"},
    {"bind", "BIND_ADDRESS", "", STR, 0, 0, S(bind),
     "address to listen on (empty: every interface)"},
    {"web-root", "WEB_ROOT", "web", STR, 0, 0, S(web_root),
     "folder served over HTTP (test.html at /)"},
    {"ack-timeout", "ACK_TIMEOUT", "30", INT, 1, 86400, S(ack_timeout_s),
     "seconds a pushed notification may stay unacknowledged before it is stored for later"},
    {"max-connections", "MAX_CONNECTIONS", "10000", INT, 1, 1000000, S(max_connections),
     "WebSocket connections in all"},
    {"max-connections-per-user", "MAX_CONNECTIONS_PER_USER", "16", INT, 1, 10000,
     S(max_connections_per_user), "WebSocket connections of one user (tabs, devices)"},
    {"window", "WINDOW", "256", INT, 1, 65536, S(window),
     "notifications sent to one connection and not yet acknowledged; past it, they wait in the store"},
    {"shutdown-timeout", "SHUTDOWN_TIMEOUT", "5", INT, 1, 600, S(shutdown_timeout_s),
     "seconds allowed at SIGTERM to store what is in flight and commit"},
    {"log-level", "LOG_LEVEL", "info", STR, 0, 0, S(log_level), "error, warn, info or debug"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static int apply(struct config *c, const struct setting *s, const char *value, const char *source,
                 char *errstr, size_t size)
{
    char *base = (char *)c + s->offset;
    if (s->kind == STR) {
        *(const char **)base = value;
        return 0;
    }
    if (s->kind == FLAG) {
        if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes"))
            *(int *)base = 1;
        else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no"))
            *(int *)base = 0;
        else {
            snprintf(errstr, size, "%s: \"%s\" is not true or false", source, value);
            return -1;
        }
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < s->min || v > s->max) {
        snprintf(errstr, size, "%s: \"%s\" is not a whole number from %d to %d", source, value,
                 s->min, s->max);
        return -1;
    }
    *(int *)base = (int)v;
    return 0;
}

void config_usage(FILE *out)
{
    fprintf(out,
            "Usage: consumer [OPTION]...\n"
            "The notification gateway: consumes notifications from Kafka and pushes each to its\n"
            "user's WebSocket connections; keeps them in MongoDB while the user is offline.\n\n"
            "Options (each also read from the environment variable shown):\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (s->kind == FLAG)
            fprintf(out, "  --%s\n      %s\n      env %s=true|false, default %s\n", s->flag,
                    s->help, s->env, s->def);
        else
            fprintf(out, "  --%s=VALUE\n      %s\n      env %s, default \"%s\"\n", s->flag,
                    s->help, s->env, s->def);
    }
    fprintf(out,
            "  -X key=value\n      librdkafka consumer property (repeatable), e.g. -X "
            "security.protocol=ssl\n"
            "  -h, --help       this text\n"
            "  -V, --version    the version\n\n"
            "Clients connect to ws://HOST:PORT/?userId=USER and acknowledge each notification with\n"
            "{\"type\":\"ack\",\"id\":\"<id>\"}; see docs/protocol.md.\n");
}

enum config_result config_load(struct config *c, int argc, char **argv, char *errstr, size_t size)
{
    struct option longopts[NSETTINGS + 3];
    size_t nprops = 0;
    char source[128];

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *env = getenv(s->env);
        snprintf(source, sizeof(source), "default of --%s", s->flag);
        if (apply(c, s, s->def, source, errstr, size) != 0)
            return CONFIG_ERROR;
        snprintf(source, sizeof(source), "environment variable %s", s->env);
        if (env && *env && apply(c, s, env, source, errstr, size) != 0)
            return CONFIG_ERROR;
        longopts[i] = (struct option){s->flag, s->kind == FLAG ? no_argument : required_argument,
                                      NULL, 1000 + (int)i};
    }
    longopts[NSETTINGS] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[NSETTINGS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    longopts[NSETTINGS + 2] = (struct option){NULL, 0, NULL, 0};

    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":hVX:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            config_usage(stdout);
            return CONFIG_EXIT_OK;
        case 'V':
            printf("consumer (notification gateway) %s\n", GATEWAY_VERSION);
            return CONFIG_EXIT_OK;
        case 'X':
            if (!strchr(optarg, '=') || nprops == CONFIG_MAX_PROPS) {
                snprintf(errstr, size, "-X %s: expected key=value (at most %d of them)", optarg,
                         CONFIG_MAX_PROPS);
                return CONFIG_ERROR;
            }
            c->kafka_props[nprops++] = optarg;
            break;
        case ':':
            snprintf(errstr, size, "%s needs a value (see --help)", argv[optind - 1]);
            return CONFIG_ERROR;
        case '?':
            snprintf(errstr, size, "unknown option %s (see --help)", argv[optind - 1]);
            return CONFIG_ERROR;
        default: {
            const struct setting *s = &settings[opt - 1000];
            snprintf(source, sizeof(source), "--%s", s->flag);
            if (apply(c, s, s->kind == FLAG ? "true" : optarg, source, errstr, size) != 0)
                return CONFIG_ERROR;
        }
        }
    }
    if (optind < argc) {
        snprintf(errstr, size, "unexpected argument \"%s\" (see --help)", argv[optind]);
        return CONFIG_ERROR;
    }
    if (log_set_level(c->log_level) != 0) {
        snprintf(errstr, size, "log level \"%s\" is not one of error, warn, info, debug",
                 c->log_level);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

void config_log(const struct config *c)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *base = (const char *)c + s->offset;
        if (s->kind == INT)
            log_info("setting %s = %d", s->flag, *(const int *)base);
        else if (s->kind == FLAG)
            log_info("setting %s = %s", s->flag, *(const int *)base ? "true" : "false");
        else if (strcmp(s->flag, "mongodb-uri") == 0 || strcmp(s->flag, "store") == 0)
            log_info("setting %s = %s", s->flag, "(set; not logged, it may hold a password)");
        else
            log_info("setting %s = %s", s->flag, *(const char *const *)base);
    }
}
