/* The producers' common settings. */
#include "kafka_producer.h"

#include <stdio.h>

#include "kafka_props.h"

static int set(rd_kafka_conf_t *c, const char *key, const char *value, const char *who,
               char *errstr, size_t size)
{
    char why[256];
    if (rd_kafka_conf_set(c, key, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(errstr, size, "%s, property %s: %s", who, key, why);
    return -1;
}

rd_kafka_conf_t *kafka_producer_conf(const char *brokers, const char *who, char *errstr,
                                     size_t size)
{
    const char *const common[][2] = {
        {"bootstrap.servers", brokers},
        {"enable.idempotence", "true"},
        {"partitioner", "murmur2_random"},
        {"linger.ms", "5"},
    };
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
        if (set(c, common[i][0], common[i][1], who, errstr, size) != 0) {
            rd_kafka_conf_destroy(c);
            return NULL;
        }
    }
    return c;
}

rd_kafka_t *kafka_producer_new(const struct kafka_producer_spec *spec, char *errstr, size_t size)
{
    rd_kafka_conf_t *c = kafka_producer_conf(spec->brokers, spec->who, errstr, size);
    if (!c)
        return NULL;
    int rc = kafka_props_for_producer(c, spec->props, spec->who, errstr, size);
    for (size_t i = 0; rc == 0 && i < spec->nown; i++)
        rc = set(c, spec->own[i][0], spec->own[i][1], spec->who, errstr, size);
    if (rc != 0) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    if (spec->on_delivery)
        rd_kafka_conf_set_dr_msg_cb(c, spec->on_delivery);
    if (spec->on_log)
        rd_kafka_conf_set_log_cb(c, spec->on_log);
    rd_kafka_conf_set_opaque(c, spec->opaque);
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, why, sizeof(why));
    if (!rk) {
        snprintf(errstr, size, "cannot create the %s: %s", spec->who, why);
        rd_kafka_conf_destroy(c);
    }
    return rk;
}
