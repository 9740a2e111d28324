/* Making sure a topic the gateway writes to exists. */
#include "kafka_topic.h"

#include <stdio.h>

#include "log.h"

int kafka_topic_ensure(rd_kafka_t *rk, const char *topic, int partitions,
                       const char *const *configs, int timeout_ms,
                       const char *what, const char *flag, char *errstr, size_t size)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
    rd_kafka_topic_destroy(t);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 1;
    rd_kafka_resp_err_t terr = md->topic_cnt < 1 ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                                                 : md->topics[0].err;
    rd_kafka_metadata_destroy(md);
    if (!terr)
        return 0;
    if (terr != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        snprintf(errstr, size, "the %s topic %s cannot be used (%s): name another with %s", what,
                 topic, rd_kafka_err2str(terr), flag);
        return -1;
    }
    char why[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, why, sizeof(why));
    if (!nt) {
        snprintf(errstr, size, "the %s topic %s cannot be created (%s)", what, topic, why);
        return -1;
    }
    for (const char *const *c = configs; c && *c; c += 2) {
        if (rd_kafka_NewTopic_set_config(nt, c[0], c[1]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(errstr, size, "the %s topic %s cannot be created with %s=%s", what, topic,
                     c[0], c[1]);
            rd_kafka_NewTopic_destroy(nt);
            return -1;
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
    int rc = -1;
    snprintf(why, sizeof(why), "no answer from the broker");
    if (ev) {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t cerr = n ? rd_kafka_topic_result_error(res[0])
                                     : rd_kafka_event_error(ev);
        if (!cerr || cerr == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            rc = 0;
        } else {
            snprintf(why, sizeof(why), "%s",
                     n && rd_kafka_topic_result_error_string(res[0])
                         ? rd_kafka_topic_result_error_string(res[0])
                         : rd_kafka_err2str(cerr));
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    if (rc == 0)
        log_info("created the %s topic %s (%d partitions)", what, topic, partitions);
    else
        snprintf(errstr, size,
                 "the %s topic %s is missing and the broker would not create it (%s): "
                 "create it, or name another with %s",
                 what, topic, why, flag);
    return rc;
}
