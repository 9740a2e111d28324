/* The producer's command line: one table declares every setting (flag, env
 * variable, default, help), from which both parsing and --help are made. */
#ifndef PRODUCER_OPTIONS_H
#define PRODUCER_OPTIONS_H

#include <stddef.h>

#define PRODUCER_VERSION "0.1.0"

#define OPT_DEFAULT_BROKERS "localhost:9092"
#define OPT_DEFAULT_TOPIC "notifications"
#define OPT_DEFAULT_TIMEOUT_MS 30000

enum producer_mode {
    MODE_ONE,   /* one notification from --user/--message */
    MODE_STDIN, /* JSON lines from standard input */
    MODE_COUNT, /* --count generated notifications */
    MODE_TOKEN, /* --token-for: print a token, send nothing */
};

typedef struct producer_options {
    enum producer_mode mode;
    const char *brokers;
    const char *topic;
    int timeout_ms;     /* --timeout: how long one notification may wait for delivery */
    const char *user;   /* --user */
    /* The other audiences, at most one given (choose_mode checks): */
    char **user_ids;    /* --user-ids, split; one owned allocation */
    size_t nuser_ids;
    const char *room;   /* --room */
    int broadcast;      /* --broadcast */
    long ttl_s;         /* --ttl, 0: none */
    long long expires_ms; /* --expires-at, 0: none */
    const char *message;
    const char *type;   /* NULL when absent */
    const char *id;     /* NULL: a new UUIDv7 */
    char *data_json;    /* --data, validated and compacted; owned */
    unsigned long count; /* --count */
    unsigned long users; /* --users: spread --count over user-1..user-K; 0 = just --user */
    /* librdkafka properties in the order to apply them: the --kafka-config
     * file's and KAFKA_PROP_* variables' (the first nquiet, owned copies),
     * then -X's (strings from argv). Owned array. */
    const char **props;
    size_t nprops, nquiet;
    const char **cli_props; /* -X while parsing */
    size_t ncli;
    const char *kafka_config;
    const char *token_for;  /* --token-for USER */
    long token_ttl_s;       /* --token-ttl */
    const char *jwt_secret_file; /* --jwt-secret-file; else JWT_SECRET */
    int quiet;
    int verbose;
} producer_options_t;

/* What options_parse asks main to do. */
enum {
    OPTIONS_RUN = 0,   /* send */
    OPTIONS_EXIT = 1,  /* done (--help, --version, -X list printed): exit 0 */
    OPTIONS_USAGE = 2, /* bad command line: errstr says why; exit 2 */
};

/* Fills *o from the defaults, then the environment (KAFKA_BROKERS,
 * KAFKA_TOPIC), then argv. stdin_is_tty chooses the mode when neither
 * --message, --count nor --stdin says it. Prints --help and --version
 * itself. */
int options_parse(producer_options_t *o, int argc, char **argv, int stdin_is_tty, char *errstr,
                  size_t errstr_size);

/* Frees what options_parse allocated. */
void options_free(producer_options_t *o);

#endif
