/* Rebalances: what the consumer group assigns to this gateway and takes
 * back, under eager and cooperative assignors. */
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kafka_internal.h"
#include "log.h"

/* "0,1,2" into buf, cut short when it does not fit. */
static void format_partitions(const rd_kafka_topic_partition_list_t *parts, char *buf,
                              size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int i = 0; i < parts->cnt && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? "," : "",
                                 parts->elems[i].partition);
}

/* librdkafka pauses every assigned partition while a rebalance callback is
 * due, and the assign call in the callback resumes them; in 2.0.2 the
 * resume does not wake the broker thread that fetches them, and one that
 * went idle meanwhile sleeps out its 1 s wait: the partitions this member
 * kept stall for up to a second at every rebalance. A request to each
 * partition's leader wakes that thread; asking for the newest offsets
 * changes nothing. */
static void wake_fetchers(kafka_t *k, const rd_kafka_topic_partition_list_t *held)
{
    if (held->cnt == 0)
        return;
    rd_kafka_topic_partition_list_t *probe = rd_kafka_topic_partition_list_copy(held);
    for (int i = 0; i < probe->cnt; i++)
        probe->elems[i].offset = RD_KAFKA_OFFSET_END; /* as a timestamp: the newest */
    /* Queuing the requests wakes the threads; no wait for the answers
     * (librdkafka drops late ones), so a slow broker holds nothing here. */
    rd_kafka_offsets_for_times(k->rk, probe, 0);
    rd_kafka_topic_partition_list_destroy(probe);
}

/* After a change: what librdkafka holds as this member's assignment,
 * read back rather than counted, so a failed call cannot leave it off;
 * then its fetchers are woken. The read goes through librdkafka's main
 * queue, so the resumes queued by the change are applied before that. */
static int settle_assignment(kafka_t *k)
{
    rd_kafka_topic_partition_list_t *now = NULL;
    int n = rd_kafka_assignment(k->rk, &now) ? -1 : now->cnt;
    if (n >= 0)
        wake_fetchers(k, now);
    if (now)
        rd_kafka_topic_partition_list_destroy(now);
    if (n < 0)
        return k->assigned;
    pthread_mutex_lock(&k->lock);
    k->assigned = n;
    pthread_mutex_unlock(&k->lock);
    return n;
}

/* librdkafka reports a failed assign call only in its log; ours says what
 * it meant to do. Takes ownership of error; the count is read back. */
static int assign_failed(kafka_t *k, const char *what, const char *list,
                         rd_kafka_error_t *error, rd_kafka_resp_err_t err)
{
    if (!error && !err)
        return 0;
    log_error("cannot %s partitions [%s] of %s: %s",
              what, list, k->topic, error ? rd_kafka_error_string(error) : rd_kafka_err2str(err));
    if (error)
        rd_kafka_error_destroy(error);
    settle_assignment(k);
    return 1;
}

/* Eager assignors (range, roundrobin: librdkafka's default) revoke the whole
 * assignment at every rebalance and hand out a whole new one. Cooperative
 * ones (cooperative-sticky, for several gateways in one group) move only the
 * partitions that change hands: the callback gets just those, and the
 * assignment must be changed incrementally. librdkafka refuses the other
 * call; the member then consumes nothing while the group counts it as the
 * owner, and it never finishes the next rebalance, so no member can join. */
void kafka_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_t *k = opaque;
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    int incremental = protocol && !strcmp(protocol, "COOPERATIVE");
    char list[512];
    int held;

    format_partitions(parts, list, sizeof(list));

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (incremental ? assign_failed(k, "add", list, rd_kafka_incremental_assign(rk, parts), 0)
                        : assign_failed(k, "assign", list, NULL, rd_kafka_assign(rk, parts)))
            return;
        held = settle_assignment(k);
        atomic_store(&k->joined, 1);
        k->ever_assigned = 1;
        log_info("assigned partitions [%s] of %s (%s rebalancing); %d held now", list, k->topic,
                 incremental ? "cooperative" : "eager", held);
        return;
    }

    /* Asked before the unassign below, which clears it. Lost: the group
     * has given them away already, so a commit for them fails; their new
     * owner consumes again from the last commit. */
    int lost = rd_kafka_assignment_lost(rk);
    if (lost)
        atomic_store(&k->joined, 0); /* until the group takes it back */
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        log_warn("rebalance of %s failed: %s; giving up partitions [%s]", k->topic,
                 rd_kafka_err2str(err), list);

    if (k->before_revoke && !lost)
        k->before_revoke(k->gate_arg);
    /* Completions still to come for these partitions are someone else's to
     * redo; librdkafka commits what was stored so far. Forgotten before the
     * unassign, so nothing is stored for a partition that is no longer ours. */
    pthread_mutex_lock(&k->lock);
    for (int i = 0; i < parts->cnt; i++)
        tracker_forget(k->tracker, parts->elems[i].partition);
    pthread_mutex_unlock(&k->lock);

    /* An error other than a revoke asks for a full reset (rd_kafka.h), but
     * that is refused under the cooperative protocol: giving up the listed
     * partitions is what it allows. */
    if (incremental
            ? assign_failed(k, "give up", list, rd_kafka_incremental_unassign(rk, parts), 0)
            : assign_failed(k, "give up", list, NULL, rd_kafka_assign(rk, NULL)))
        return;
    held = settle_assignment(k);
    if (lost)
        log_warn("lost partitions [%s] of %s (%s rebalancing); %d held now: the group no longer "
                 "counted this gateway as a member (session timeout or fencing), and their new "
                 "owner consumes again what was not committed",
                 list, k->topic, incremental ? "cooperative" : "eager", held);
    else
        log_info("revoked partitions [%s] of %s (%s rebalancing); %d held now", list, k->topic,
                 incremental ? "cooperative" : "eager", held);
}

