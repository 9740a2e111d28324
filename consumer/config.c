/* The settings table and its parsing: defaults, environment, flags, --help. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kafka_props.h"
#include "log.h"
#include "origin.h"
#include "peer.h"
#include "xalloc.h"

#ifndef GATEWAY_VERSION
#define GATEWAY_VERSION "0.1.0"
#endif

/* The store of --embedded when --store is empty: nothing else to run. */
#define EMBEDDED_STORE "sqlite:data/notifications.db"

enum kind { STR, INT, FLAG, ENUM };

/* Checks a string setting's final value, once every source is read, with
 * the whole config at hand (a value may matter only when another setting
 * makes it used); source says where the value came from (a flag, an
 * environment variable or the default) for the error. */
typedef int validate_fn(const struct config *c, const char *value, const char *source,
                        char *errstr, size_t size);

struct setting {
    const char *flag;
    const char *env;
    const char *def;
    enum kind kind;
    size_t offset;
    const char *help;
    int min, max;              /* INT */
    const char *const *values; /* ENUM: the allowed values, NULL-ended */
    int secret;                /* may hold a password: never logged */
    int env_only;              /* a secret: refused on the command line, where ps shows it */
    const char *env_alias;     /* read when env is unset (another system's name for it) */
    validate_fn *validate;     /* optional */
};

static validate_fn check_node_id, check_store, check_mongodb_uri, check_auth, check_origins, check_proxies,
    check_tls, check_health_listen;

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

#define S(field) offsetof(struct config, field)

#define RANGE(lo, hi) .min = (lo), .max = (hi)

/* One entry a setting: flag, env, default, kind, field and help in that
 * order (after the leading .flag designator the fields follow in order),
 * then by name what the kind or the value needs. */
static const struct setting settings[] = {
    {.flag = "brokers", "KAFKA_BROKERS", "localhost:9092", STR, S(brokers),
     "Kafka bootstrap servers, host:port[,host:port…] (KAFKA_BROKER is read too)",
     .env_alias = "KAFKA_BROKER"},
    {.flag = "embedded", "EMBEDDED", "false", FLAG, S(embedded),
     "run an in-memory Kafka broker inside the gateway (development and demos; "
     "the store defaults to " EMBEDDED_STORE ")"},
    {.flag = "embedded-port", "EMBEDDED_PORT", "9092", INT, S(embedded_port),
     "loopback port where producers reach the embedded broker", RANGE(1, 65535)},
    {.flag = "kafka-config", "KAFKA_CONFIG", "", STR, S(kafka_config),
     "file of librdkafka key=value lines (credentials: sasl.password, ssl.key.password...); "
     "KAFKA_PROP_<NAME> variables are read too (KAFKA_PROP_SASL_PASSWORD), -X wins"},
    {.flag = "topic", "KAFKA_TOPIC", "notifications", STR, S(topic), "Kafka topic to consume"},
    {.flag = "dlq-topic", "DLQ_TOPIC", "", STR, S(dlq_topic),
     "Kafka topic for records that are not notifications, with the reason in a dlq.error "
     "header (empty: the topic's name + .dlq; created when missing)"},
    {.flag = "events-topic", "EVENTS_TOPIC", "", STR, S(events_topic),
     "Kafka topic for delivery receipts: delivered, acked, stored, dead-lettered, keyed by "
     "user (empty: none; created when missing)"},
    {.flag = "group", "KAFKA_GROUP", "notification-group", STR, S(group), "Kafka consumer group"},
    {.flag = "node-id", "NODE_ID", "", STR, S(node_id),
     "this gateway's name among the gateways on one topic and group: letters, digits, . _ -, "
     "up to 64, unique among live ones (empty: HOSTNAME-PORT)",
     .validate = check_node_id},
    {.flag = "store", "STORE_URI", "", STR, S(store),
     "offline store: mongodb://HOST:PORT/ or sqlite:PATH (empty: the --mongodb-uri server)",
     .secret = 1, .validate = check_store},
    {.flag = "mongodb-uri", "MONGODB_URI", "mongodb://localhost:27017/", STR, S(mongodb_uri),
     "MongoDB connection string for the offline store (MONGOURI is read too)", .secret = 1,
     .env_alias = "MONGOURI",
     .validate = check_mongodb_uri},
    {.flag = "mongodb-db", "MONGODB_DB", "notification_gateway", STR, S(mongodb_db),
     "MongoDB database (collection \"notifications\")"},
    {.flag = "port", "PORT", "8083", INT, S(port), "WebSocket and HTTP port", RANGE(1, 65535)},
    {.flag = "bind", "BIND_ADDRESS", "", STR, S(bind),
     "address to listen on (empty: every interface)"},
    {.flag = "web-root", "WEB_ROOT", "web", STR, S(web_root),
     "folder served over HTTP (test.html at /)"},
    {.flag = "ack-timeout", "ACK_TIMEOUT", "30", INT, S(ack_timeout_s),
     "seconds a pushed notification may stay unacknowledged before it is stored for later",
     RANGE(1, 86400)},
    {.flag = "max-connections", "MAX_CONNECTIONS", "10000", INT, S(max_connections),
     "WebSocket connections in all", RANGE(1, 1000000)},
    {.flag = "max-connections-per-user", "MAX_CONNECTIONS_PER_USER", "16", INT,
     S(max_connections_per_user), "WebSocket connections of one user (tabs, devices)",
     RANGE(1, 10000)},
    {.flag = "window", "WINDOW", "256", INT, S(window),
     "notifications sent to one connection and not yet acknowledged; "
     "past it, they wait in memory, then in the store",
     RANGE(1, 65536)},
    {.flag = "max-user-ids", "MAX_USER_IDS", "1000", INT, S(max_user_ids),
     "users one notification's \"userIds\" may name; one with more is dead-lettered",
     RANGE(1, 100000)},
    {.flag = "send-rate", "SEND_RATE", "10", INT, S(send_rate),
     "notifications one user may send from its connections a second ({\"type\":\"send\"}; "
     "bursts of twice that)",
     RANGE(1, 100000)},
    {.flag = "shutdown-timeout", "SHUTDOWN_TIMEOUT", "5", INT, S(shutdown_timeout_s),
     "seconds allowed at SIGTERM to store what is in flight and commit", RANGE(1, 600)},
    {.flag = "store-timeout", "STORE_TIMEOUT", "5", INT, S(store_timeout_s),
     "seconds one offline-store call may take before it fails and is tried again",
     RANGE(1, 600)},
    {.flag = "max-pending-per-user", "MAX_PENDING_PER_USER", "10000", INT,
     S(max_pending_per_user),
     "notifications kept for one user while they are away; beyond it the oldest expire, "
     "logged (0: no limit)",
     RANGE(0, 100000000)},
    {.flag = "pending-retention", "PENDING_RETENTION", "0", INT, S(pending_retention_s),
     "seconds a notification is kept for a user who is away before it expires, logged "
     "(0: until delivered)",
     RANGE(0, 315360000)},
    {.flag = "history-retention", "HISTORY_RETENTION", "0", INT, S(history_retention_s),
     "seconds acknowledged notifications are kept for the inbox's state=all (0: none)",
     RANGE(0, 315360000)},
    {.flag = "room-retention", "ROOM_RETENTION", "604800", INT, S(room_retention_s),
     "seconds room and broadcast notifications are kept for members who have not read them "
     "(acks do not delete them: each user has a cursor)",
     RANGE(1, 315360000)},
    {.flag = "memory-budget", "MEMORY_BUDGET", "256", INT, S(memory_budget_mb),
     "MiB of notifications held in memory (windows, hand-off, held, waiting for the store); "
     "at it, intake from Kafka pauses and live ones go through the store",
     RANGE(16, 1048576)},
    {.flag = "auth", "AUTH", "", STR, S(auth),
     "who may connect: jwt (a signed token names the user) or none (anyone, as any user); "
     "required unless --embedded, which defaults to none",
     .validate = check_auth},
    {.flag = "jwt-secret", "JWT_SECRET", "", STR, S(jwt_secret),
     "HS256 secret, 32 bytes or more (environment only: a flag would show it to ps)",
     .secret = 1, .env_only = 1},
    {.flag = "jwt-secret-file", "JWT_SECRET_FILE", "", STR, S(jwt_secret_file),
     "file holding the HS256 secret"},
    {.flag = "jwt-public-key-file", "JWT_PUBLIC_KEY_FILE", "", STR, S(jwt_public_key_file),
     "PEM public key: RSA for RS256 or P-256 for ES256"},
    {.flag = "jwks-file", "JWKS_FILE", "", STR, S(jwks_file),
     "JWK set of RSA and P-256 public keys, picked by the token's kid"},
    {.flag = "jwt-audience", "JWT_AUDIENCE", "", STR, S(jwt_audience),
     "\"aud\" a token must name (empty: not checked)"},
    {.flag = "jwt-issuer", "JWT_ISSUER", "", STR, S(jwt_issuer),
     "\"iss\" a token must have (empty: not checked)"},
    {.flag = "jwt-leeway", "JWT_LEEWAY", "30", INT, S(jwt_leeway_s),
     "seconds of clock skew allowed on a token's exp, nbf and iat", RANGE(0, 3600)},
    {.flag = "token-denylist", "TOKEN_DENYLIST", "", STR, S(token_denylist),
     "file of revoked tokens: a jti, or sub:USER, a line; their connections close with 4003 "
     "(re-read with the keys on SIGHUP)"},
    {.flag = "api-keys-file", "API_KEYS_FILE", "", STR, S(api_keys_file),
     "file of NAME KEY lines: callers of /metrics, /status.json and the /api routes send "
     "Authorization: Bearer KEY (re-read on SIGHUP)"},
    {.flag = "ops-open", "OPS_OPEN", "false", FLAG, S(ops_open),
     "serve /metrics and /status.json without a key (a trusted network; --embedded defaults "
     "to it)"},
    {.flag = "allow-anonymous-send", "ALLOW_ANONYMOUS_SEND", "false", FLAG,
     S(allow_anonymous_send),
     "with --auth none, let clients send notifications ({\"type\":\"send\"}) as the userId "
     "they connected with; with --auth jwt the token's \"send\": true decides"},
    {.flag = "publish-max-bytes", "PUBLISH_MAX_BYTES", "1048576", INT, S(publish_max_bytes),
     "bytes of a POST /api/notifications body (413 past it)", RANGE(1024, 16 << 20)},
    {.flag = "publish-timeout", "PUBLISH_TIMEOUT", "10", INT, S(publish_timeout_s),
     "seconds Kafka may take to have what POST /api/notifications sent (503 past it)",
     RANGE(1, 600)},
    {.flag = "auth-timeout", "AUTH_TIMEOUT", "5", INT, S(auth_timeout_s),
     "seconds a connection may take to send its token as its first message", RANGE(1, 60)},
    {.flag = "tls-cert-file", "TLS_CERT_FILE", "", STR, S(tls_cert_file),
     "PEM certificate (chain): serve wss:// and https:// on --port, and refuse plain ws:// there",
     .validate = check_tls},
    {.flag = "tls-key-file", "TLS_KEY_FILE", "", STR, S(tls_key_file),
     "PEM private key of --tls-cert-file"},
    {.flag = "health-listen", "HEALTH_LISTEN", "", STR, S(health_listen),
     "HOST:PORT where plain HTTP serves /healthz alone (empty: none, or 127.0.0.1:8084 with TLS)",
     .validate = check_health_listen},
    {.flag = "allowed-origins", "ALLOWED_ORIGINS", "", STR, S(allowed_origins),
     "web pages (Origin) that may open a WebSocket, comma-separated, * for any "
     "(empty: the gateway's own origin; FRONTEND_URL is read too)",
     .env_alias = "FRONTEND_URL", .validate = check_origins},
    {.flag = "max-connections-per-address", "MAX_CONNECTIONS_PER_ADDRESS", "256", INT,
     S(max_connections_per_address), "WebSocket connections from one client address",
     RANGE(1, 1000000)},
    {.flag = "connect-rate-per-address", "CONNECT_RATE_PER_ADDRESS", "20", INT,
     S(connect_rate_per_address), "new WebSocket connections a second from one client address",
     RANGE(1, 1000000)},
    {.flag = "connect-burst-per-address", "CONNECT_BURST_PER_ADDRESS", "50", INT,
     S(connect_burst_per_address),
     "new WebSocket connections one client address may open at once", RANGE(1, 1000000)},
    {.flag = "trusted-proxies", "TRUSTED_PROXIES", "", STR, S(trusted_proxies),
     "addresses or networks (10.0.0.0/8,::1) whose PROXY protocol header (v1, v2) or "
     "X-Forwarded-For names the client",
     .validate = check_proxies},
    {.flag = "log-level", "LOG_LEVEL", "info", ENUM, S(log_level), "how much to log on stderr",
     .values = log_levels},
    {.flag = "log-format", "LOG_FORMAT", "text", ENUM, S(log_format),
     "log lines as text, or as one JSON object a line (time, level, msg) for log collectors",
     .values = log_formats},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

/* librdkafka properties the gateway sets itself: -X must not change them.
 * The delivery guarantee rests on the first two. */
#define AT_LEAST_ONCE "offsets are stored only once a notification is delivered or stored"
static const struct {
    const char *key, *why;
} protected_props[] = {
    {"enable.auto.offset.store", AT_LEAST_ONCE},
    {"enable.auto.commit", AT_LEAST_ONCE},
    {"group.id", "--group / --brokers"},
    {"bootstrap.servers", "--group / --brokers"},
    {"metadata.broker.list", "--group / --brokers"},
};

#define NPROTECTED (sizeof(protected_props) / sizeof(protected_props[0]))

static const char *const store_schemes[] = {"mongodb://", "mongodb+srv://", "sqlite:", NULL};
static const char *const mongodb_schemes[] = {"mongodb://", "mongodb+srv://", NULL};
static const char *const yes_words[] = {"1", "true", "yes", NULL};
static const char *const no_words[] = {"0", "false", "no", NULL};

static int is_one_of(const char *value, const char *const *values)
{
    for (; *values; values++)
        if (strcmp(value, *values) == 0)
            return 1;
    return 0;
}

/* "a, b or c" */
static const char *join(const char *const *values, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; values[i]; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", i == 0 ? "" : values[i + 1] ? ", " : " or ",
                 values[i]);
    }
    return buf;
}

/* The message quotes only the scheme (the text up to the first colon): the
 * rest of a URI may hold a password. */
static int check_scheme(const char *uri, const char *const *schemes, const char *what,
                        const char *hint, const char *source, char *errstr, size_t size)
{
    for (const char *const *p = schemes; *p; p++)
        if (strncmp(uri, *p, strlen(*p)) == 0)
            return 0;
    size_t n = strcspn(uri, ":");
    snprintf(errstr, size, "%s: unknown %s scheme \"%.*s\"; use %s", source, what,
             (int)(n < 32 ? n + (uri[n] == ':') : 32), uri, hint);
    return -1;
}

static int check_store_uri(const char *uri, const char *source, char *errstr, size_t size)
{
    return check_scheme(uri, store_schemes, "store", "mongodb://HOST:PORT/ or sqlite:PATH",
                        source, errstr, size);
}

/* Empty: the embedded store or the --mongodb-uri server, see resolve_store. */
static int check_store(const struct config *c, const char *value, const char *source,
                       char *errstr, size_t size)
{
    (void)c;
    return *value ? check_store_uri(value, source, errstr, size) : 0;
}

/* Checked only when it is the store: a stale MONGODB_URI does not stop a
 * gateway that runs on --store or --embedded. */
static int check_mongodb_uri(const struct config *c, const char *value, const char *source,
                             char *errstr, size_t size)
{
    if (*c->store || c->embedded)
        return 0;
    return check_scheme(value, mongodb_schemes, "MongoDB URI",
                        "mongodb://HOST:PORT/ or mongodb+srv://HOST/", source, errstr, size);
}

static int check_auth(const struct config *c, const char *value, const char *source,
                      char *errstr, size_t size)
{
    if (!*value && !c->embedded) {
        snprintf(errstr, size,
                 "--auth is not set (AUTH): choose --auth jwt, with the key in JWT_SECRET, "
                 "--jwt-secret-file, --jwt-public-key-file or --jwks-file, or --auth none to let "
                 "anyone who reaches the port connect as any user");
        return -1;
    }
    if (*value && strcmp(value, "jwt") != 0 && strcmp(value, "none") != 0) {
        snprintf(errstr, size, "%s: \"%s\" is not an auth mode; use jwt or none", source, value);
        return -1;
    }
    int keys = !!*c->jwt_secret + !!*c->jwt_secret_file + !!*c->jwt_public_key_file +
               !!*c->jwks_file;
    if (strcmp(value, "jwt") == 0 && keys != 1) {
        snprintf(errstr, size,
                 "--auth jwt needs exactly one key: JWT_SECRET, --jwt-secret-file, "
                 "--jwt-public-key-file or --jwks-file (%d given)", keys);
        return -1;
    }
    return 0;
}

/* A list's check is its parse; the error says where the value came from. */
static int from_source(int rc, const char *source, const char *why, char *errstr, size_t size)
{
    if (rc != 0)
        snprintf(errstr, size, "%s: %s", source, why);
    return rc;
}

static int check_origins(const struct config *c, const char *value, const char *source,
                         char *errstr, size_t size)
{
    (void)c;
    struct origins o;
    char why[200];
    int rc = origins_parse(&o, value, why, sizeof(why));
    if (rc == 0)
        origins_free(&o);
    return from_source(rc, source, why, errstr, size);
}

static int check_proxies(const struct config *c, const char *value, const char *source,
                         char *errstr, size_t size)
{
    (void)c;
    struct proxies px;
    char why[200];
    return from_source(proxies_parse(&px, value, why, sizeof(why)), source, why, errstr, size);
}

static int check_node_id(const struct config *c, const char *value, const char *source,
                         char *errstr, size_t size)
{
    (void)c;
    if (!*value || node_id_valid(value))
        return 0;
    snprintf(errstr, size,
             "%s: \"%.80s\" is not a node id: use 1 to %d letters, digits, '.', '_' or '-'",
             source, value, NODE_ID_MAX);
    return -1;
}

static int check_tls(const struct config *c, const char *value, const char *source,
                     char *errstr, size_t size)
{
    (void)value;
    (void)source;
    if (!*c->tls_cert_file != !*c->tls_key_file) {
        snprintf(errstr, size, "TLS needs both --tls-cert-file and --tls-key-file (one is set)");
        return -1;
    }
    return 0;
}

static int check_health_listen(const struct config *c, const char *value, const char *source,
                               char *errstr, size_t size)
{
    (void)c;
    const char *colon = strrchr(value, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (*value && (!colon || colon == value || !colon[1] || *end || port < 1 || port > 65535)) {
        snprintf(errstr, size, "%s: \"%s\" is not HOST:PORT such as 127.0.0.1:8084", source,
                 value);
        return -1;
    }
    return 0;
}

static int parse_int(const struct setting *s, const char *value, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < s->min || v > s->max)
        return -1;
    *out = (int)v;
    return 0;
}

static int apply(struct config *c, const struct setting *s, const char *value, const char *source,
                 char *errstr, size_t size)
{
    char *field = (char *)c + s->offset;
    char list[128], what[64];

    switch (s->kind) {
    case STR:
        *(const char **)field = value;
        break;
    case FLAG:
        if (!is_one_of(value, yes_words) && !is_one_of(value, no_words)) {
            snprintf(errstr, size, "%s: \"%s\" is not true or false", source, value);
            return -1;
        }
        *(int *)field = is_one_of(value, yes_words);
        break;
    case INT:
        if (parse_int(s, value, (int *)field) != 0) {
            snprintf(errstr, size, "%s: \"%s\" is not a whole number from %d to %d", source,
                     value, s->min, s->max);
            return -1;
        }
        break;
    case ENUM:
        if (!is_one_of(value, s->values)) {
            /* "log-level" reads "log level" in a sentence. */
            snprintf(what, sizeof(what), "%s", s->flag);
            for (char *p = what; *p; p++)
                *p = *p == '-' ? ' ' : *p;
            snprintf(errstr, size, "%s: \"%s\" is not a %s; use %s", source, value, what,
                     join(s->values, list, sizeof(list)));
            return -1;
        }
        *(const char **)field = value;
        break;
    }
    return 0;
}

/* Why prop ("key=value") may not be given, naming only its key; NULL if it
 * may. */
static const char *prop_refused(const char *prop, char *buf, size_t size)
{
    const char *eq = strchr(prop, '=');
    if (!eq || eq == prop)
        return "expected key=value";
    size_t keylen = (size_t)(eq - prop);
    for (size_t i = 0; i < NPROTECTED; i++) {
        const char *key = protected_props[i].key;
        if (strlen(key) == keylen && strncmp(prop, key, keylen) == 0) {
            snprintf(buf, size, "the gateway sets %s itself (%s); use its own option instead",
                     key, protected_props[i].why);
            return buf;
        }
    }
    return NULL;
}

/* kafka_prop_fn for the --kafka-config file and KAFKA_PROP_* variables:
 * copied, as the file's lines do not outlive the reading. */
static int add_owned_prop(void *arg, const char *prop, char *errstr, size_t size)
{
    struct config *c = arg;
    const char *why = prop_refused(prop, errstr, size);
    if (!why && c->nkafka_props == CONFIG_MAX_PROPS)
        why = "too many librdkafka properties";
    if (why) {
        if (why != errstr)
            snprintf(errstr, size, "%s", why);
        return -1;
    }
    c->kafka_props[c->nkafka_props] = c->owned_props[c->nowned_props++] = xstrdup(prop);
    c->nkafka_props++;
    return 0;
}

/* In order, later ones winning in librdkafka: the file, the environment,
 * then -X. */
static int load_kafka_props(struct config *c, const char *const *cli, size_t ncli,
                            char *errstr, size_t size)
{
    extern char **environ;
    if (*c->kafka_config &&
        kafka_props_from_file(c->kafka_config, add_owned_prop, c, errstr, size) != 0)
        return -1;
    if (kafka_props_from_env(environ, add_owned_prop, c, errstr, size) != 0)
        return -1;
    for (size_t i = 0; i < ncli; i++) {
        char buf[200];
        const char *why = prop_refused(cli[i], buf, sizeof(buf));
        if (!why && c->nkafka_props == CONFIG_MAX_PROPS)
            why = "too many librdkafka properties";
        if (why) {
            snprintf(errstr, size, "-X %s: %s", cli[i], why);
            return -1;
        }
        c->kafka_props[c->nkafka_props++] = cli[i];
    }
    return 0;
}

void config_free(struct config *c)
{
    for (size_t i = 0; i < c->nowned_props; i++)
        free(c->owned_props[i]);
    c->nowned_props = c->nkafka_props = 0;
    c->kafka_props[0] = NULL;
}

/* The one place that decides which store the gateway opens; the
 * validators have checked the one it picks. */
static void resolve_store(struct config *c)
{
    c->store_uri = *c->store ? c->store : c->embedded ? EMBEDDED_STORE : c->mongodb_uri;
}

int node_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > NODE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && !strchr("._-", id[i]))
            return 0;
    return 1;
}

/* HOSTNAME-PORT, with what a node id cannot hold in the host name
 * replaced: the default is always a valid id. */
static void resolve_node_id(struct config *c)
{
    char host[NODE_ID_MAX + 1] = "gateway";
    if (*c->node_id)
        return;
    if (gethostname(host, sizeof(host)) != 0 || !*host)
        snprintf(host, sizeof(host), "gateway");
    host[sizeof(host) - 8] = '\0'; /* room for -PORT */
    for (char *h = host; *h; h++)
        if (!isalnum((unsigned char)*h) && !strchr("._-", *h))
            *h = '-';
    snprintf(c->node_id_default, sizeof(c->node_id_default), "%s-%d", host, c->port);
    c->node_id = c->node_id_default;
}

static void resolve_dlq(struct config *c)
{
    if (!*c->dlq_topic) {
        snprintf(c->dlq_default, sizeof(c->dlq_default), "%s.dlq", c->topic);
        c->dlq_topic = c->dlq_default;
    }
}

/* The default web root, "web", is the checkout's. An installed gateway
 * (make install) finds its files beside the binary instead: BIN/../share/
 * notification-gateway/web, wherever PREFIX or DESTDIR put them. */
static void resolve_web_root(struct config *c)
{
    struct stat st;
    char exe[4096];
    if (strcmp(c->web_root, "web") != 0 || (stat("web", &st) == 0 && S_ISDIR(st.st_mode)))
        return;
    ssize_t n = readlink("/proc/self/exe", exe, 2048);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = '\0';
    snprintf(c->web_installed, sizeof(c->web_installed), "%.2048s/../share/notification-gateway/web",
             exe);
    if (stat(c->web_installed, &st) == 0 && S_ISDIR(st.st_mode))
        c->web_root = c->web_installed;
}

/* With TLS, /healthz must stay reachable for plain health checks. */
static void resolve_health(struct config *c)
{
    if (!*c->health_listen && *c->tls_cert_file)
        c->health_listen = "127.0.0.1:8084";
}

/* check_auth allowed an empty --auth only in embedded mode. */
static void resolve_auth(struct config *c)
{
    c->auth_defaulted = !*c->auth;
    if (c->auth_defaulted)
        c->auth = "none";
}

void config_usage(FILE *out)
{
    char list[128];

    fprintf(out,
            "Usage: consumer [OPTION]...\n"
            "The notification gateway: consumes notifications from Kafka and pushes each to its\n"
            "user's WebSocket connections; keeps them in MongoDB while the user is offline.\n\n"
            "Options (each also read from the environment variable shown):\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        fprintf(out, "  --%s%s\n      %s", s->flag, s->kind == FLAG ? "" : "=VALUE", s->help);
        /* The README's table shows the same text: keep it in step. */
        if (s->kind == INT)
            fprintf(out, " (%d–%d)", s->min, s->max);
        else if (s->kind == ENUM)
            fprintf(out, " (%s)", join(s->values, list, sizeof(list)));
        const char *quote = s->kind == FLAG || !*s->def ? "" : "\"";
        fprintf(out, "\n      env %s%s, default %s%s%s\n", s->env,
                s->kind == FLAG ? "=true|false" : "", quote, *s->def ? s->def : "(empty)", quote);
    }
    fprintf(out,
            "  -X key=value\n      librdkafka consumer property (repeatable, at most %d), e.g. "
            "-X security.protocol=ssl\n      except",
            CONFIG_MAX_PROPS);
    for (size_t i = 0; i < NPROTECTED; i++)
        fprintf(out, "%s%s", i == 0 ? " " : i + 1 < NPROTECTED ? ", " : " and ",
                protected_props[i].key);
    fprintf(out,
            ", which the gateway sets itself\n"
            "  -h, --help       this text\n"
            "  -V, --version    the version\n\n"
            "Clients connect to ws://HOST:PORT/?userId=USER and acknowledge each notification with\n"
            "{\"type\":\"ack\",\"id\":\"<id>\"}; see docs/protocol.md.\n");
}

enum config_result config_load(struct config *c, int argc, char **argv, char *errstr, size_t size)
{
    struct option longopts[NSETTINGS + 3];
    const char *cli_props[CONFIG_MAX_PROPS];
    size_t ncli = 0;
    char sources[NSETTINGS][64]; /* where each final value came from */

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *env = getenv(s->env);
        const char *env_name = s->env;
        if ((!env || !*env) && s->env_alias) {
            env = getenv(s->env_alias);
            env_name = s->env_alias;
        }
        snprintf(sources[i], sizeof(sources[i]), "default of --%s", s->flag);
        if (apply(c, s, s->def, sources[i], errstr, size) != 0)
            return CONFIG_ERROR;
        if (env && *env) {
            snprintf(sources[i], sizeof(sources[i]), "environment variable %s", env_name);
            if (apply(c, s, env, sources[i], errstr, size) != 0)
                return CONFIG_ERROR;
        }
        longopts[i] = (struct option){s->flag, s->kind == FLAG ? no_argument : required_argument,
                                      NULL, 1000 + (int)i};
    }
    longopts[NSETTINGS] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[NSETTINGS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    longopts[NSETTINGS + 2] = (struct option){NULL, 0, NULL, 0};

    /* 0, not 1: glibc and musl then also forget a group of short options
     * left half-read by an earlier call (the unit tests call this often). */
    optind = 0;
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
            if (ncli == CONFIG_MAX_PROPS) {
                snprintf(errstr, size, "-X %s: at most %d of them", optarg, CONFIG_MAX_PROPS);
                return CONFIG_ERROR;
            }
            cli_props[ncli++] = optarg;
            break;
        case ':':
            snprintf(errstr, size, "%s needs a value (see --help)", argv[optind - 1]);
            return CONFIG_ERROR;
        case '?':
            snprintf(errstr, size, "unknown option %s (see --help)", argv[optind - 1]);
            return CONFIG_ERROR;
        default: {
            const struct setting *s = &settings[opt - 1000];
            if (s->env_only) {
                snprintf(errstr, size,
                         "--%s: a secret on the command line is visible to every user of the "
                         "machine (ps); set %s in the environment instead", s->flag, s->env);
                return CONFIG_ERROR;
            }
            snprintf(sources[opt - 1000], sizeof(sources[0]), "--%s", s->flag);
            if (apply(c, s, s->kind == FLAG ? "true" : optarg, sources[opt - 1000], errstr,
                      size) != 0)
                return CONFIG_ERROR;
        }
        }
    }
    if (optind < argc) {
        snprintf(errstr, size, "unexpected argument \"%s\" (see --help)", argv[optind]);
        return CONFIG_ERROR;
    }
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (!s->validate) /* only string settings have one */
            continue;
        const char *value = *(const char *const *)((const char *)c + s->offset);
        if (s->validate(c, value, sources[i], errstr, size) != 0)
            return CONFIG_ERROR;
    }
    if (load_kafka_props(c, cli_props, ncli, errstr, size) != 0) {
        config_free(c);
        return CONFIG_ERROR;
    }
    resolve_store(c);
    resolve_auth(c);
    resolve_health(c);
    resolve_dlq(c);
    resolve_node_id(c);
    resolve_web_root(c);
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].offset == S(ops_open) && c->embedded &&
            strncmp(sources[i], "default", 7) == 0)
            c->ops_open = c->ops_open_defaulted = 1;
    log_set_level(c->log_level); /* one of log_levels[], which log.c knows */
    log_set_format(c->log_format);
    return CONFIG_OK;
}

static const char *value_text(const struct config *c, const struct setting *s, char *buf,
                              size_t size)
{
    const char *field = (const char *)c + s->offset;
    const char *str = s->kind == INT    ? NULL
                      : s->kind == FLAG ? (*(const int *)field ? "true" : "false")
                                        : *(const char *const *)field;

    if (!str)
        snprintf(buf, size, "%d", *(const int *)field);
    else
        snprintf(buf, size, "%s",
                 !*str       ? "(empty)"
                 : s->secret ? "(set; not logged, it may hold a password)"
                             : str);
    return buf;
}

const char *config_value_text(const struct config *c, const char *flag, char *buf, size_t size)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].flag, flag) == 0)
            return value_text(c, &settings[i], buf, size);
    return NULL;
}

void config_log(const struct config *c)
{
    char buf[256];

    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *env = getenv(s->env), *alias = s->env_alias ? getenv(s->env_alias) : NULL;
        log_info("setting %s = %s", s->flag, value_text(c, s, buf, sizeof(buf)));
        if ((!env || !*env) && alias && *alias)
            log_info("  (from %s, read as another name for %s)", s->env_alias, s->env);
    }
}
