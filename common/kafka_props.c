/* librdkafka properties from a file and from the environment. */
#include "kafka_props.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#define LINE_MAX_BYTES 4096
#define PREFIX "KAFKA_PROP_"

static int add_from(kafka_prop_fn *add, void *arg, const char *prop, const char *where,
                    char *errstr, size_t size)
{
    char why[256];
    if (add(arg, prop, why, sizeof(why)) == 0)
        return 0;
    snprintf(errstr, size, "%s: %s", where, why);
    return -1;
}

int kafka_props_from_file(const char *path, kafka_prop_fn *add, void *arg, char *errstr,
                          size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, size, "--kafka-config %s: cannot open it", path);
        return -1;
    }
    char line[LINE_MAX_BYTES], where[300];
    int n = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        n++;
        snprintf(where, sizeof(where), "%s:%d", path, n);
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            snprintf(errstr, size, "%s: longer than %d bytes", where, LINE_MAX_BYTES - 2);
            rc = -1;
            break;
        }
        while (len && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (!eq || eq == p) {
            snprintf(errstr, size, "%s: expected key=value", where);
            rc = -1;
            break;
        }
        /* "key = value": the spaces around = are not part of either. */
        char *k_end = eq;
        while (k_end > p && isspace((unsigned char)k_end[-1]))
            k_end--;
        char *v = eq + 1;
        while (isspace((unsigned char)*v))
            v++;
        char prop[LINE_MAX_BYTES];
        snprintf(prop, sizeof(prop), "%.*s=%s", (int)(k_end - p), p, v);
        rc = add_from(add, arg, prop, where, errstr, size);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(errstr, size, "--kafka-config %s: cannot read it", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

int kafka_props_from_env(char *const *env, kafka_prop_fn *add, void *arg, char *errstr,
                         size_t size)
{
    for (; env && *env; env++) {
        const char *var = *env;
        if (strncmp(var, PREFIX, strlen(PREFIX)) != 0)
            continue;
        const char *name = var + strlen(PREFIX), *eq = strchr(name, '=');
        char where[160];
        snprintf(where, sizeof(where), "environment variable %.*s", (int)(eq ? eq - var : 60),
                 var);
        if (!eq || eq == name || eq[1] == '\0')
            continue; /* empty counts as unset, as everywhere else */
        char prop[LINE_MAX_BYTES];
        size_t o = 0;
        for (const char *c = name; c < eq && o < sizeof(prop) - 2; c++) {
            if (c[0] == '_' && c[1] == '_') {
                prop[o++] = '_';
                c++;
            } else {
                prop[o++] = *c == '_' ? '.' : (char)tolower((unsigned char)*c);
            }
        }
        snprintf(prop + o, sizeof(prop) - o, "=%s", eq + 1);
        if (add_from(add, arg, prop, where, errstr, size) != 0)
            return -1;
    }
    return 0;
}

static int shared_key(const char *key)
{
    static const char *const prefixes[] = {"security.", "sasl.", "ssl.", "socket.",
                                           "broker.",   "client.", "reconnect."};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

int kafka_props_for_producer(struct rd_kafka_conf_s *conf, const char *const *props,
                             const char *who, char *errstr, size_t size)
{
    char err[256];
    for (const char *const *p = props; p && *p; p++) {
        const char *eq = strchr(*p, '=');
        char key[256];
        if (!eq || (size_t)(eq - *p) >= sizeof(key))
            continue; /* config.c checked them */
        snprintf(key, sizeof(key), "%.*s", (int)(eq - *p), *p);
        if (shared_key(key) &&
            rd_kafka_conf_set(conf, key, eq + 1, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, size, "%s, property %s: %s", who, key, err);
            return -1;
        }
    }
    return 0;
}
