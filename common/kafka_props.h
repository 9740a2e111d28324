/* librdkafka properties from outside the command line, where `ps` would
 * show a password: a file of key=value lines (--kafka-config FILE: blank
 * lines and lines starting with # skipped), and KAFKA_PROP_<NAME>
 * variables, NAME's "_" read as "." and "__" as "_", lower-cased
 * (KAFKA_PROP_SASL_PASSWORD is sasl.password). Shared by the gateway and
 * the producer. Errors name the file and line or the variable, never a
 * value. */
#ifndef COMMON_KAFKA_PROPS_H
#define COMMON_KAFKA_PROPS_H

#include <stddef.h>

/* Called with each "key=value" (a string the callee must copy or keep);
 * returns 0, or -1 with errstr set (where it came from is prefixed). */
typedef int kafka_prop_fn(void *arg, const char *prop, char *errstr, size_t size);

int kafka_props_from_file(const char *path, kafka_prop_fn *add, void *arg, char *errstr,
                          size_t size);
int kafka_props_from_env(char *const *env, kafka_prop_fn *add, void *arg, char *errstr,
                         size_t size);

/* Sets on conf, a producer's (or a consumer's that reads by hand, outside
 * a group), the properties of props (the group consumer's "key=value",
 * NULL-ended) that say how to reach and log in to the brokers (security.*, sasl.*, ssl.*, socket.*, broker.*, client.*,
 * reconnect.*); the consumer's own ones (session.timeout.ms...) are left
 * out. -1 with errstr naming the key when librdkafka refuses one. */
struct rd_kafka_conf_s;
int kafka_props_for_producer(struct rd_kafka_conf_s *conf, const char *const *props,
                             const char *who, char *errstr, size_t size);

#endif
