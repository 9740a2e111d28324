/* The embedded broker: librdkafka's in-process mock cluster, which speaks
 * the Kafka protocol on loopback, so a newcomer needs no Kafka to try the
 * gateway. It keeps messages in memory only: for development and demos.
 *
 * librdkafka 2.0.2 binds the mock to an ephemeral port it cannot be told
 * to use, so the embedded broker also listens on a fixed loopback port and
 * forwards each connection there, naming that port in the metadata it
 * passes back, so every connection of a client comes through it. It lets
 * clients send only so far ahead of what the gateway's consumer has read
 * (embedded_consumed): the mock drops the oldest of a partition beyond 5 MB,
 * so a burst waits in the producer rather than being trimmed unread. */
#ifndef CONSUMER_EMBEDDED_H
#define CONSUMER_EMBEDDED_H

#include <stddef.h>

typedef struct embedded embedded_t;

/* Starts the mock with topics (NULL-ended: the gateway's first, then the
 * dead-letter and receipts topics; partitions partitions each) and the
 * forwarder on 127.0.0.1:port, which holds connections in its backlog
 * until embedded_open. NULL with errstr if either cannot start. */
embedded_t *embedded_start(const char *const *topics, int partitions, int port, char *errstr,
                           size_t errstr_size);

/* The mock's own bootstrap address, for the gateway's consumer. */
const char *embedded_bootstraps(const embedded_t *e);

/* Lets producers in. The mock keeps at most 5 MB or 100,000 messages per
 * partition (compiled into librdkafka 2.0.2) and drops the oldest beyond
 * that: producers must not reach it before the gateway's consumer has its
 * partitions and is fetching, or a burst is trimmed before anyone reads
 * it. */
void embedded_open(embedded_t *e);

/* Producers are paced by what the gateway's consumer reads, from its
 * thread: */
/* a poll read bytes of messages; */
void embedded_consumed(embedded_t *e, size_t bytes);
/* a poll read nothing: while producers are held back and the mock has
 * answered every Produce sent, a mark (else -1); */
long long embedded_settled(const embedded_t *e);
/* asked after embedded_settled gave mark: every assigned partition is read
 * to the end the mock has, so everything sent before mark is read (this
 * corrects the difference between bytes sent and bytes of messages read:
 * headers, batches, other topics). */
void embedded_read_to(embedded_t *e, long long mark);

void embedded_stop(embedded_t *e);

#endif
