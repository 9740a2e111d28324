/* The gateway's settings, each declared once in config.c's table with its
 * flag, environment variable, default and help: --help, parsing and the
 * README's table come from the same place. Precedence: default, then the
 * environment, then flags. */
#ifndef CONSUMER_CONFIG_H
#define CONSUMER_CONFIG_H

#include <stdio.h>

#define CONFIG_MAX_PROPS 64

struct config {
    const char *brokers;
    const char *topic;
    const char *group;
    const char *store;
    const char *mongodb_uri;
    const char *mongodb_db;
    const char *bind;
    const char *web_root;
    const char *log_level;
    int port;
    int embedded;
    int embedded_port;
    int ack_timeout_s;
    int max_connections;
    int max_connections_per_user;
    int window;
    int shutdown_timeout_s;
    const char *kafka_props[CONFIG_MAX_PROPS + 1]; /* -X key=value, NULL-ended */
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

/* Fills c from the defaults, the environment and argv. CONFIG_EXIT_OK
 * after printing --help or --version; CONFIG_ERROR with errstr. */
enum config_result config_load(struct config *c, int argc, char **argv, char *errstr,
                               size_t errstr_size);

void config_usage(FILE *out);

/* Logs every setting (info level) at start-up. */
void config_log(const struct config *c);

#endif
