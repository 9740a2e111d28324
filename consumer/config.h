/* The gateway's settings, each declared once in config.c's table with its
 * flag, environment variable, default, kind and help: --help, parsing,
 * checking and the README's table come from the same place. Precedence:
 * default, then the environment, then flags. A setting that may hold a
 * password is never logged. */
#ifndef CONSUMER_CONFIG_H
#define CONSUMER_CONFIG_H

#include <stdio.h>

#define CONFIG_MAX_PROPS 64

#define NODE_ID_MAX 64

struct config {
    const char *brokers;
    const char *topic;
    const char *dlq_topic; /* resolved: never empty once loaded (<topic>.dlq) */
    const char *events_topic; /* delivery receipts; empty: none */
    const char *group;
    const char *node_id; /* resolved: never empty once loaded (HOSTNAME-PORT) */
    const char *store; /* as given; the gateway opens store_uri */
    const char *mongodb_uri;
    const char *mongodb_db;
    const char *bind;
    const char *web_root;
    const char *log_level; /* one of error, warn, info, debug */
    const char *log_format; /* text or json */
    int port;
    int embedded;
    int embedded_port;
    int ack_timeout_s;
    int max_connections;
    int max_connections_per_user;
    int window;
    int max_user_ids;
    int allow_anonymous_send; /* --auth none: clients may send */
    int send_rate;            /* client sends per user a second */
    int shutdown_timeout_s;
    int max_pending_per_user;
    int pending_retention_s;
    int history_retention_s; /* 0: no history of acknowledged notifications */
    int room_retention_s;    /* room and broadcast notifications are kept this long */
    int store_timeout_s;
    int memory_budget_mb;
    /* Identity: "jwt" or "none" (resolved: never empty once loaded; an
     * embedded gateway with no --auth gets "none" and auth_defaulted). */
    const char *auth;
    int auth_defaulted;
    const char *jwt_secret; /* from the environment only */
    const char *jwt_secret_file;
    const char *jwt_public_key_file;
    const char *jwks_file;
    const char *jwt_audience;
    const char *jwt_issuer;
    int jwt_leeway_s;
    int auth_timeout_s;
    const char *token_denylist;
    const char *api_keys_file; /* NAME KEY lines for the operators' routes */
    int ops_open;              /* /metrics without a key; embedded defaults to it */
    int ops_open_defaulted;
    int publish_max_bytes;  /* POST /api/notifications body */
    int publish_timeout_s;  /* how long Kafka may take to have a publish */ /* revoked jti and sub:USER lines; re-read on SIGHUP */
    /* Transport: wss:// and https:// with both files; /healthz then also on
     * the plain health_listen ("host:port"; resolved to 127.0.0.1:8084 with
     * TLS when not set, empty without). */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *health_listen;
    /* Abuse limits. */
    const char *allowed_origins; /* empty: the gateway's own origin */
    int max_connections_per_address;
    int connect_rate_per_address;
    int connect_burst_per_address;
    const char *trusted_proxies;
    char node_id_default[NODE_ID_MAX + 1];
    char dlq_default[300]; /* <topic>.dlq, when dlq_topic is not given */
    char web_installed[4096]; /* where make install put the web files, found from the binary */
    /* The store to open, never empty: --store, else the embedded mode's
     * SQLite file, else --mongodb-uri. Its scheme is mongodb://,
     * mongodb+srv:// or sqlite:. */
    const char *store_uri;
    /* librdkafka properties, NULL-ended, in the order to apply them: the
     * --kafka-config file's, KAFKA_PROP_* variables', then -X's; none sets
     * a key the gateway sets itself (group.id, bootstrap.servers,
     * enable.auto.commit, enable.auto.offset.store): config_load refuses
     * those. Values may be secrets: never logged. */
    const char *kafka_config;
    const char *kafka_props[CONFIG_MAX_PROPS + 1];
    size_t nkafka_props;
    char *owned_props[CONFIG_MAX_PROPS]; /* the file's and variables', freed by config_free */
    size_t nowned_props;
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

/* Fills c from the defaults, the environment and argv, checks every value
 * and sets the log level. CONFIG_EXIT_OK after printing --help or
 * --version; CONFIG_ERROR with errstr naming the flag or variable at fault.
 * The strings in c point into argv, the environment or static text. */
enum config_result config_load(struct config *c, int argc, char **argv, char *errstr,
                               size_t errstr_size);

/* Frees what config_load allocated (the file's and variables' Kafka
 * properties). */
void config_free(struct config *c);

/* Whether id is a node id: 1 to NODE_ID_MAX letters, digits, '.', '_', '-'
 * (it names Kafka topics and groups). */
int node_id_valid(const char *id);

/* The --help text. */
void config_usage(FILE *out);

/* The value of the setting --flag (flag without the dashes) as config_log
 * shows it, in buf: a secret reads "(set; not logged, ...)", an empty
 * string "(empty)". NULL if there is no such setting. */
const char *config_value_text(const struct config *c, const char *flag, char *buf, size_t size);

/* Logs every setting (info level) at start-up. */
void config_log(const struct config *c);

#endif
