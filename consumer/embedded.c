/* --embedded: librdkafka's in-process mock broker, forwarded to a fixed
 * loopback port so producers and kcat reach it. */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "embedded.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kafka_wire.h"
#include "log.h"
#include "xalloc.h"

#define MAX_PAIRS 64 /* client connections forwarded at once */
#define CHUNK 65536
#define FRAME_MAX (128u << 20) /* a Kafka frame larger than this drops the connection */
#define ASKED_MAX 16
/* Bytes clients may send ahead of what the gateway's consumer has read:
 * well under the mock's 5 MB per partition, so it never trims unread. A
 * read from a client takes at most what is left of it, or CHUNK, so the
 * mock holds at most CREDIT_MAX + CHUNK unread. */
#define CREDIT_MAX (2 << 20)

/* One direction of a connection: bytes read and not yet a whole frame. */
struct dir {
    unsigned char *buf;
    size_t len, cap;
};

struct pair {
    int client, broker;
    struct dir up, down; /* client to broker, broker to client */
    /* Metadata and FindCoordinator requests awaiting their answer, whose
     * broker ports are set to the fixed port. */
    struct {
        int32_t id;
        int16_t key, version;
    } asked[ASKED_MAX];
    int nasked;
    /* Produce requests sent to the mock and not yet answered (answers come
     * in request order): until then their records may not be in its log. */
    struct {
        int32_t *ids;
        size_t head, n, cap;
    } produces;
};

struct embedded {
    rd_kafka_t *rk; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
    struct sockaddr_in target;
    int listen_fd;
    int port;             /* the fixed port clients reach */
    /* Credit: clients may send while taken - returned < CREDIT_MAX. */
    atomic_llong taken;     /* bytes read from clients */
    atomic_llong returned;  /* bytes known read by the consumer */
    atomic_llong forwarded; /* bytes of whole requests written to the mock */
    atomic_long unanswered; /* Produce requests the mock has not answered */
    int accepting; /* forwarder thread only: set by the 'o' byte on wake */
    int wake[2];   /* 'o': open the port to producers; 's': stop */
    pthread_t thread;
    int started;
    struct pair pairs[MAX_PAIRS];
    int npairs;
};

static int connect_target(const embedded_t *e)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)&e->target, sizeof(e->target)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static long long credit(const embedded_t *e)
{
    return CREDIT_MAX - (atomic_load(&e->taken) - atomic_load(&e->returned));
}

static void drop_pair(embedded_t *e, int i)
{
    struct pair *p = &e->pairs[i];
    atomic_fetch_sub(&e->unanswered, (long)p->produces.n);
    atomic_fetch_sub(&e->taken, (long long)p->up.len); /* read, never sent */
    free(p->produces.ids);
    close(p->client);
    close(p->broker);
    free(p->up.buf);
    free(p->down.buf);
    e->pairs[i] = e->pairs[--e->npairs];
}

static int write_all(int fd, const unsigned char *buf, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* A Produce request whose answer is awaited; counted before it is
 * written, so a reader of forwarded then unanswered never misses it. */
static void awaiting_answer(embedded_t *e, struct pair *p, int32_t id)
{
    if (p->produces.n == p->produces.cap) {
        size_t cap = p->produces.cap ? 2 * p->produces.cap : 8;
        int32_t *ids = xmalloc(cap * sizeof(*ids));
        for (size_t i = 0; i < p->produces.n; i++)
            ids[i] = p->produces.ids[(p->produces.head + i) % p->produces.cap];
        free(p->produces.ids);
        p->produces.ids = ids;
        p->produces.head = 0;
        p->produces.cap = cap;
    }
    p->produces.ids[(p->produces.head + p->produces.n++) % p->produces.cap] = id;
    atomic_fetch_add(&e->unanswered, 1);
}

/* A request on its way to the mock: a Produce is awaited; one whose answer
 * names brokers is remembered. */
static void on_request(embedded_t *e, struct pair *p, const unsigned char *f, size_t len)
{
    int16_t key, version, acks;
    int32_t id;
    if (kafka_wire_request(f, len, &key, &version, &id) != 0)
        return;
    if (key == KAFKA_PRODUCE && kafka_wire_produce_acks(f, len, version, &acks) == 0 && acks)
        awaiting_answer(e, p, id);
    if (key != KAFKA_METADATA && key != KAFKA_FIND_COORDINATOR)
        return;
    if (p->nasked == ASKED_MAX) /* its answer then goes out as it is */
        memmove(p->asked, p->asked + 1, sizeof(p->asked[0]) * --p->nasked);
    p->asked[p->nasked].id = id;
    p->asked[p->nasked].key = key;
    p->asked[p->nasked++].version = version;
}

/* An answer on its way to a client: brokers are named by the fixed port,
 * so the client's every connection comes through here. */
static void on_response(embedded_t *e, struct pair *p, unsigned char *f, size_t len)
{
    int32_t id;
    if (kafka_wire_response_id(f, len, &id) != 0)
        return;
    if (p->produces.n && p->produces.ids[p->produces.head] == id) {
        p->produces.head = (p->produces.head + 1) % p->produces.cap;
        p->produces.n--;
        atomic_fetch_sub(&e->unanswered, 1);
        return;
    }
    for (int i = 0; i < p->nasked; i++) {
        if (p->asked[i].id != id)
            continue;
        kafka_wire_set_ports(f, len, p->asked[i].key, p->asked[i].version, e->port);
        p->asked[i] = p->asked[--p->nasked];
        return;
    }
}

/* Reads what is there on one side, and passes each whole frame to the
 * other. Returns -1 when either side is done (or sent a frame too big). */
static int pump(embedded_t *e, struct pair *p, int upward)
{
    struct dir *d = upward ? &p->up : &p->down;
    int from = upward ? p->client : p->broker, to = upward ? p->broker : p->client;

    if (d->cap - d->len < CHUNK) {
        d->cap = d->cap ? d->cap * 2 : 2 * CHUNK;
        d->buf = xrealloc(d->buf, d->cap);
    }
    size_t want = d->cap - d->len;
    if (upward) {
        long long left = credit(e);
        size_t most = left > CHUNK ? (size_t)left : CHUNK;
        if (want > most)
            want = most;
    }
    ssize_t n = read(from, d->buf + d->len, want);
    if (n <= 0)
        return n < 0 && errno == EINTR ? 0 : -1;
    d->len += (size_t)n;
    if (upward)
        atomic_fetch_add(&e->taken, n);
    size_t at = 0, flen;
    while ((flen = kafka_wire_frame_len(d->buf + at, d->len - at)) && flen <= d->len - at) {
        if (upward)
            on_request(e, p, d->buf + at, flen);
        else
            on_response(e, p, d->buf + at, flen);
        if (write_all(to, d->buf + at, flen) != 0)
            return -1;
        if (upward)
            atomic_fetch_add(&e->forwarded, (long long)flen);
        at += flen;
    }
    if (flen > FRAME_MAX)
        return -1;
    memmove(d->buf, d->buf + at, d->len - at);
    d->len -= at;
    return 0;
}

/* One thread forwards every connection: a development broker sees a handful
 * of clients. It reads from clients only while they have credit. */
static void *forward(void *arg)
{
    embedded_t *e = arg;
    struct pollfd fds[2 + 2 * MAX_PAIRS];

    for (;;) {
        fds[0] = (struct pollfd){e->wake[0], POLLIN, 0};
        /* Until opened, connections wait in the listen backlog. */
        fds[1] = (struct pollfd){e->accepting ? e->listen_fd : -1, POLLIN, 0};
        short from_clients = credit(e) > 0 ? POLLIN : 0;
        for (int i = 0; i < e->npairs; i++) {
            fds[2 + 2 * i] = (struct pollfd){e->pairs[i].client, from_clients, 0};
            fds[3 + 2 * i] = (struct pollfd){e->pairs[i].broker, POLLIN, 0};
        }
        int nfds = 2 + 2 * e->npairs;
        if (poll(fds, (nfds_t)nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("embedded broker: poll failed: %s", strerror(errno));
            return NULL;
        }
        if (fds[0].revents) {
            char cmd = 's';
            if (read(e->wake[0], &cmd, 1) != 1 || cmd == 's')
                return NULL;
            if (cmd == 'o')
                e->accepting = 1;
            continue; /* 'c': credit again */
        }
        /* Pairs first, from the end, so dropping one does not skip another. */
        for (int i = e->npairs - 1; i >= 0; i--) {
            short rc = fds[2 + 2 * i].revents, rb = fds[3 + 2 * i].revents;
            if ((rc && pump(e, &e->pairs[i], 1) != 0) || (rb && pump(e, &e->pairs[i], 0) != 0))
                drop_pair(e, i);
        }
        if (fds[1].revents & POLLIN) {
            int client = accept4(e->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (client < 0)
                continue;
            int broker = e->npairs < MAX_PAIRS ? connect_target(e) : -1;
            if (broker < 0) {
                log_warn("embedded broker: refusing a client (%s)",
                         e->npairs < MAX_PAIRS ? "mock broker unreachable"
                                               : "too many connections");
                close(client);
                continue;
            }
            e->pairs[e->npairs++] = (struct pair){.client = client, .broker = broker};
        }
    }
}

static int parse_target(embedded_t *e, char *errstr, size_t size)
{
    /* "127.0.0.1:PORT" (the first broker, if several) */
    char host[64];
    int port;
    if (sscanf(e->bootstraps, "%63[^:]:%d", host, &port) != 2 ||
        inet_pton(AF_INET, host, &e->target.sin_addr) != 1) {
        snprintf(errstr, size, "unexpected mock broker address \"%s\"", e->bootstraps);
        return -1;
    }
    e->target.sin_family = AF_INET;
    e->target.sin_port = htons((uint16_t)port);
    return 0;
}

static int listen_on(embedded_t *e, int port, char *errstr, size_t size)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    e->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (e->listen_fd < 0 ||
        setsockopt(e->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(e->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(e->listen_fd, 16) != 0) {
        snprintf(errstr, size,
                 "the embedded broker cannot listen on 127.0.0.1:%d: %s (is a Kafka broker "
                 "already running there? choose another with --embedded-port)",
                 port, strerror(errno));
        return -1;
    }
    return 0;
}

static void on_mock_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        log_error("embedded broker: %s: %s", fac, buf);
    else
        log_warn("embedded broker: %s: %s", fac, buf);
}

embedded_t *embedded_start(const char *const *topics, int partitions, int port, char *errstr,
                           size_t size)
{
    char err[512];
    embedded_t *e = xcalloc(1, sizeof(*e));
    e->listen_fd = -1;
    e->port = port;
    atomic_init(&e->taken, 0);
    atomic_init(&e->returned, 0);
    atomic_init(&e->forwarded, 0);
    atomic_init(&e->unanswered, 0);
    e->wake[0] = e->wake[1] = -1;

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "client.id", "embedded-broker", err, sizeof(err));
    /* Its only job is to own the mock: no notice that it has no brokers. */
    rd_kafka_conf_set(conf, "log_level", "4", err, sizeof(err));
    rd_kafka_conf_set_log_cb(conf, on_mock_log); /* through log.h, as every line */
    e->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!e->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, size, "cannot start the embedded broker: %s", err);
        goto fail;
    }
    e->mc = rd_kafka_mock_cluster_new(e->rk, 1);
    if (!e->mc) {
        snprintf(errstr, size, "cannot start the embedded broker (librdkafka mock cluster)");
        goto fail;
    }
    for (size_t i = 0; topics[i]; i++) {
        rd_kafka_resp_err_t rerr = rd_kafka_mock_topic_create(e->mc, topics[i], partitions, 1);
        if (rerr) {
            snprintf(errstr, size, "cannot create topic %s on the embedded broker: %s",
                     topics[i], rd_kafka_err2str(rerr));
            goto fail;
        }
    }
    e->bootstraps = xstrdup(rd_kafka_mock_cluster_bootstraps(e->mc));
    if (parse_target(e, errstr, size) != 0 ||
        listen_on(e, port, errstr, size) != 0)
        goto fail;
    if (pipe2(e->wake, O_CLOEXEC) != 0 || pthread_create(&e->thread, NULL, forward, e) != 0) {
        snprintf(errstr, size, "cannot start the embedded broker's forwarder");
        goto fail;
    }
    e->started = 1;
    log_warn("embedded Kafka broker on 127.0.0.1:%d (topic %s, %d partitions): it keeps "
             "messages in memory only and loses them when the gateway stops; for development "
             "and demos, not production",
             port, topics[0], partitions);
    return e;

fail:
    embedded_stop(e);
    return NULL;
}

const char *embedded_bootstraps(const embedded_t *e)
{
    return e->bootstraps;
}

/* The consumer's thread alone gives back. Never past what was taken: it
 * also reads what did not come through here. Wakes the forwarder if it may
 * have stopped reading clients. */
static void give_back_to(embedded_t *e, long long returned)
{
    long long was = atomic_load(&e->returned), taken = atomic_load(&e->taken);
    if (returned > taken)
        returned = taken;
    if (returned <= was)
        return;
    atomic_store(&e->returned, returned);
    if (CREDIT_MAX - (taken - was) <= 0) {
        ssize_t w = write(e->wake[1], "c", 1);
        (void)w; /* a full pipe already wakes it */
    }
}

void embedded_consumed(embedded_t *e, size_t bytes)
{
    give_back_to(e, atomic_load(&e->returned) + (long long)bytes);
}

long long embedded_settled(const embedded_t *e)
{
    if (credit(e) > CREDIT_MAX / 2)
        return -1;
    long long forwarded = atomic_load(&e->forwarded);
    return atomic_load(&e->unanswered) ? -1 : forwarded;
}

void embedded_read_to(embedded_t *e, long long mark)
{
    give_back_to(e, mark);
}

void embedded_open(embedded_t *e)
{
    ssize_t w = write(e->wake[1], "o", 1);
    (void)w; /* a pipe of one byte cannot be full */
}

void embedded_stop(embedded_t *e)
{
    if (!e)
        return;
    if (e->started) {
        ssize_t w = write(e->wake[1], "s", 1);
        (void)w;
        pthread_join(e->thread, NULL);
    }
    while (e->npairs)
        drop_pair(e, e->npairs - 1);
    if (e->listen_fd >= 0)
        close(e->listen_fd);
    if (e->wake[0] >= 0) {
        close(e->wake[0]);
        close(e->wake[1]);
    }
    if (e->mc)
        rd_kafka_mock_cluster_destroy(e->mc);
    if (e->rk)
        rd_kafka_destroy(e->rk);
    free(e->bootstraps);
    free(e);
}
