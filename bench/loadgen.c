/* loadgen: the gateway benchmark's load client.
 *
 * One process, two threads:
 * - a producer thread (librdkafka, idempotent) that publishes notifications
 *   to Kafka either open-loop at a fixed rate (--rate) or as fast as it can
 *   (--burst), with the intended send time (CLOCK_REALTIME ns) inside the
 *   message text;
 * - the main thread, an epoll loop over many WebSocket client connections
 *   (a minimal RFC 6455 client written here), which acknowledges every
 *   notification and records receive time minus embedded send time in a
 *   log-linear histogram.
 *
 * Open loop: message i is scheduled for start + i/rate and carries that
 * intended time, so a stalled producer, broker or gateway shows up as
 * latency instead of silently lowering the offered rate (no coordinated
 * omission).
 *
 * Prints one JSON line of results on stdout; progress and errors on stderr.
 * Modes: default (connect, produce, receive), --idle (connect and hold until
 * stdin closes), --no-connect (produce only), --no-produce (connect and
 * receive what the gateway replays from its store).
 *
 * --conns-per-user K: K connections a user (a fan-out); each counts its own
 * frames, and a notification is complete when every connection of its
 * user has it. "deliveries" counts one per connection.
 *
 * Build: cc -O2 -std=c11 -o loadgen loadgen.c $(pkg-config --cflags --libs rdkafka) -pthread
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define RBUF_SIZE (1u << 20)       /* shared read buffer */
#define MAX_FRAME (16u << 20)      /* larger server frames are a protocol error */
#define HANDSHAKE_MAX 8192
#define MAX_CLOSE_NOTES 8

/* ------------------------------------------------------------------ */
/* Options */

static struct {
    char host[64];
    int port;
    const char *user_prefix;
    int users;
    int conns_per_user;
    const char *brokers;
    const char *topic;
    const char *id_prefix;
    long long count;       /* notifications to produce (or to expect replayed) */
    double rate;           /* per second; 0 = burst */
    int linger_ms;         /* -1: 0 when paced, 5 for a burst */
    int message_bytes;     /* padding in the message text */
    long long expect;      /* frames to receive; default count * conns_per_user */
    double timeout_s;      /* wait for the rest after the producer finished */
    int connect_parallel;  /* handshakes in flight at once */
    int source_addrs;      /* 127.0.0.1 .. 127.0.0.N as source addresses */
    int cpu_pid;           /* process whose CPU time to sample (the gateway) */
    double settle_s;       /* after the last frame, before the final CPU sample */
    double start_delay_s;  /* connected: wait this long before producing */
    int idle, no_connect, no_produce;
    int kafka_only; /* receive from Kafka instead of the gateway: the Kafka leg alone */
    int dump_consumer_defaults;
} opt = {
    .host = "127.0.0.1",
    .port = 8083,
    .user_prefix = "bench-",
    .users = 1000,
    .conns_per_user = 1,
    .brokers = "127.0.0.1:9092",
    .topic = "notifications",
    .id_prefix = "b-",
    .count = 0,
    .rate = 0,
    .linger_ms = -1,
    .message_bytes = 16,
    .expect = -1,
    .timeout_s = 30,
    .connect_parallel = 256,
    .source_addrs = 0,
    .cpu_pid = 0,
    .settle_s = 0.25,
    .start_delay_s = 1.0,
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static int64_t mono_ns(void) { return now_ns(CLOCK_MONOTONIC); }
static int64_t real_ns(void) { return now_ns(CLOCK_REALTIME); }

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ------------------------------------------------------------------ */
/* SHA-1 and base64, for Sec-WebSocket-Key / Sec-WebSocket-Accept */

struct sha1 {
    uint32_t h[5];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
};

static uint32_t rol(uint32_t v, int s) { return (v << s) | (v >> (32 - s)); }

static void sha1_block(struct sha1 *c, const uint8_t *p)
{
    uint32_t w[80], a, b, cc, d, e;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & cc) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ cc ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & cc) | (b & d) | (cc & d), k = 0x8F1BBCDC;
        else
            f = b ^ cc ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = cc, cc = rol(b, 30), b = a, a = t;
    }
    c->h[0] += a, c->h[1] += b, c->h[2] += cc, c->h[3] += d, c->h[4] += e;
}

static void sha1(const void *data, size_t len, uint8_t out[20])
{
    struct sha1 c = {{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, 0, {0}, 0};
    const uint8_t *p = data;
    c.len = (uint64_t)len * 8;
    while (len >= 64) {
        sha1_block(&c, p);
        p += 64, len -= 64;
    }
    memcpy(c.buf, p, len);
    c.buf[len++] = 0x80;
    if (len > 56) {
        memset(c.buf + len, 0, 64 - len);
        sha1_block(&c, c.buf);
        len = 0;
    }
    memset(c.buf + len, 0, 56 - len);
    for (int i = 0; i < 8; i++)
        c.buf[56 + i] = (uint8_t)(c.len >> (56 - 8 * i));
    sha1_block(&c, c.buf);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(c.h[i] >> (24 - 8 * j));
}

static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = t[v >> 18], *out++ = t[(v >> 12) & 63], *out++ = t[(v >> 6) & 63], *out++ = t[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *out++ = t[v >> 18], *out++ = t[(v >> 12) & 63];
        *out++ = i + 1 < n ? t[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    *out = '\0';
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    /* xorshift64*: masks and handshake keys need not be cryptographic here */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* ------------------------------------------------------------------ */
/* Log-linear histogram (HDR-like): exact below 2^SUB_BITS ns, then
 * 2^(SUB_BITS-1) buckets per power of two: relative error < 2^-(SUB_BITS-1). */

#define SUB_BITS 8
#define HALF (1u << (SUB_BITS - 1))
#define NBUCKETS ((64 - SUB_BITS + 2) * HALF)

static struct {
    uint64_t b[NBUCKETS];
    uint64_t n;
    int64_t min, max;
    long double sum;
} hist = {.min = INT64_MAX};

static size_t bucket_of(uint64_t v)
{
    if (v < 2 * HALF)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v);
    int shift = e - (SUB_BITS - 1);
    return (size_t)(shift + 1) * HALF + (size_t)((v >> shift) - HALF);
}

/* The highest value that falls in bucket i (what HDR reports). */
static uint64_t bucket_top(size_t i)
{
    if (i < 2 * HALF)
        return i;
    size_t shift = i / HALF - 1;
    uint64_t top = (uint64_t)(i % HALF + HALF);
    return ((top + 1) << shift) - 1;
}

/* Per second of intended send time: count, sum and max of latency. */
#define TL_MAX 900
static int64_t tl_origin; /* CLOCK_REALTIME ns of the clock start */
static struct { uint32_t n; int64_t max; double sum; } tl[TL_MAX];

static void timeline_add(int64_t sent, int64_t v)
{
    if (!tl_origin || sent < tl_origin)
        return;
    int64_t sec = (sent - tl_origin) / NS_PER_S;
    if (sec >= TL_MAX)
        return;
    tl[sec].n++;
    tl[sec].sum += (double)v;
    if (v > tl[sec].max)
        tl[sec].max = v;
}

static void hist_add(int64_t v)
{
    if (v < 0)
        v = 0;
    hist.b[bucket_of((uint64_t)v)]++;
    hist.n++;
    hist.sum += v;
    if (v < hist.min)
        hist.min = v;
    if (v > hist.max)
        hist.max = v;
}

static int64_t hist_pct(double p)
{
    if (!hist.n)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)hist.n + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > hist.n)
        rank = hist.n;
    uint64_t seen = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        seen += hist.b[i];
        if (seen >= rank) {
            int64_t v = (int64_t)bucket_top(i);
            return v > hist.max ? hist.max : v;
        }
    }
    return hist.max;
}

/* ------------------------------------------------------------------ */
/* CPU time of another process (the gateway), whole and per thread */

#define MAX_THREADS 64

struct cpu_sample {
    int ok;
    double ticks_s;     /* utime + stime from /proc/PID/stat */
    double sched_s;     /* sum of per-thread run time from schedstat (ns) */
    int nthreads;
    int tid[MAX_THREADS];
    char comm[MAX_THREADS][20];
    double thread_s[MAX_THREADS];
};

static int read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return (int)n;
}

static void cpu_sample(int pid, struct cpu_sample *s)
{
    char path[96], buf[1024];
    memset(s, 0, sizeof(*s));
    if (pid <= 0)
        return;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_file(path, buf, sizeof(buf)) < 0)
        return;
    /* Fields after the ")" that closes comm: state is field 3, utime 14, stime 15. */
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return;
    s->ticks_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    s->ok = 1;

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) && s->nthreads < MAX_THREADS) {
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        int tid = atoi(de->d_name);
        unsigned long long run_ns = 0;
        snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", pid, tid);
        if (read_file(path, buf, sizeof(buf)) < 0 || sscanf(buf, "%llu", &run_ns) != 1)
            continue;
        int i = s->nthreads++;
        s->tid[i] = tid;
        s->thread_s[i] = (double)run_ns / 1e9;
        s->sched_s += s->thread_s[i];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
        if (read_file(path, buf, sizeof(buf)) > 0) {
            buf[strcspn(buf, "\n")] = '\0';
            snprintf(s->comm[i], sizeof(s->comm[i]), "%.19s", buf);
        }
    }
    closedir(d);
}

/* ------------------------------------------------------------------ */
/* Producer thread */

static struct cpu_sample cpu0; /* the gateway's CPU when the clock starts */

static struct {
    pthread_t thread;
    atomic_llong produced;     /* handed to librdkafka */
    atomic_llong delivered;    /* delivery reports without error */
    atomic_llong failed;       /* delivery reports with an error */
    atomic_int done;           /* flushed (or gave up) */
    int64_t start_mono, end_mono; /* first produce, flush done */
    int64_t last_produce_mono;
    long long max_behind_ns;   /* how late the producer got against its schedule */
    char first_error[256];
} prod;

static atomic_int primer_state; /* 0 waiting, 1 delivered, -1 failed */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->_private) { /* the primer */
        atomic_store(&primer_state, m->err ? -1 : 1);
        return;
    }
    if (m->err) {
        if (atomic_fetch_add(&prod.failed, 1) == 0)
            snprintf(prod.first_error, sizeof(prod.first_error), "%s", rd_kafka_err2str(m->err));
    } else {
        atomic_fetch_add(&prod.delivered, 1);
    }
}

static void on_rk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 4)
        fprintf(stderr, "loadgen: kafka %s: %s\n", fac, buf);
}

static void conf_set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die("producer setting %s=%s: %s", k, v, err);
}

static int linger_ms(void) { return opt.linger_ms >= 0 ? opt.linger_ms : (opt.rate > 0 ? 0 : 5); }

static void *produce_loop(void *arg)
{
    (void)arg;
    char err[256], lbuf[16];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    conf_set(c, "bootstrap.servers", opt.brokers);
    conf_set(c, "client.id", "bench-loadgen");
    conf_set(c, "enable.idempotence", "true");
    snprintf(lbuf, sizeof(lbuf), "%d", linger_ms());
    conf_set(c, "linger.ms", lbuf);
    conf_set(c, "queue.buffering.max.messages", "2000000");
    conf_set(c, "queue.buffering.max.kbytes", "1048576");
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_conf_set_log_cb(c, on_rk_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    if (!rk)
        die("cannot create the producer: %s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, opt.topic, NULL);

    /* Connect and learn the partitions before the clock starts. */
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("no metadata for topic %s from %s", opt.topic, opt.brokers);
    rd_kafka_metadata_destroy(md);

    /* A primer, delivered before the clock starts, so that the idempotent
     * producer's PID and the broker connection are not in the measurement.
     * It goes to a connected user (acked, counted as foreign) so that
     * nothing lands in the offline store; with no connections it is not
     * a notification at all (the gateway logs and skips it). */
    char primer[256];
    int plen = opt.no_connect
                   ? snprintf(primer, sizeof(primer), "bench primer: not a notification")
                   : snprintf(primer, sizeof(primer),
                              "{\"id\":\"%sprimer\",\"userId\":\"%s0\",\"message\":\"primer\"}",
                              opt.id_prefix, opt.user_prefix);
    char pkey[160];
    int pklen = snprintf(pkey, sizeof(pkey), "%s0", opt.user_prefix);
    if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, primer, (size_t)plen,
                         pkey, (size_t)pklen, (void *)1) != 0)
        die("produce primer: %s", rd_kafka_err2str(rd_kafka_last_error()));
    int64_t pdeadline = mono_ns() + 30 * NS_PER_S;
    while (atomic_load(&primer_state) == 0 && mono_ns() < pdeadline && !stop_flag)
        rd_kafka_poll(rk, 5);
    if (atomic_load(&primer_state) != 1)
        die("the primer message was not delivered to %s within 30 s", opt.brokers);

    cpu_sample(opt.cpu_pid, &cpu0);

    size_t padn = opt.message_bytes > 0 ? (size_t)opt.message_bytes : 0;
    size_t value_size = padn + 512;
    char *pad = malloc(padn + 1), *value = malloc(value_size);
    if (!pad || !value)
        die("out of memory");
    memset(pad, 'x', padn);
    pad[padn] = '\0';

    int64_t period = opt.rate > 0 ? (int64_t)((double)NS_PER_S / opt.rate) : 0;
    int64_t t0 = mono_ns(), r0 = real_ns();
    tl_origin = r0;
    prod.start_mono = t0;
    char user[160], ts[40];
    time_t ts_sec = 0;
    for (long long i = 0; i < opt.count && !stop_flag; i++) {
        int64_t intended;
        if (period) {
            int64_t target = t0 + i * period;
            int64_t now = mono_ns();
            if (now < target) {
                struct timespec ts_abs = {(time_t)(target / NS_PER_S), (long)(target % NS_PER_S)};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts_abs, NULL);
            } else if (now - target > prod.max_behind_ns) {
                prod.max_behind_ns = now - target;
            }
            intended = r0 + (target - t0);
        } else {
            intended = real_ns();
        }
        if (intended / NS_PER_S != ts_sec) {
            ts_sec = (time_t)(intended / NS_PER_S);
            struct tm tm;
            gmtime_r(&ts_sec, &tm);
            strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        int ulen = snprintf(user, sizeof(user), "%s%lld", opt.user_prefix, i % opt.users);
        int vlen = snprintf(value, value_size,
                            "{\"id\":\"%s%lld\",\"userId\":\"%s\",\"message\":\"t=%" PRId64
                            " %s\",\"timestamp\":\"%s\"}",
                            opt.id_prefix, i, user, intended, pad, ts);
        for (;;) {
            if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value,
                                 (size_t)vlen, user, (size_t)ulen, NULL) == 0)
                break;
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(rk, 1);
        }
        atomic_fetch_add(&prod.produced, 1);
        if ((i & 255) == 0)
            rd_kafka_poll(rk, 0);
    }
    prod.last_produce_mono = mono_ns();
    while (rd_kafka_outq_len(rk) > 0 && !stop_flag &&
           mono_ns() - prod.last_produce_mono < (int64_t)(60 * NS_PER_S))
        rd_kafka_poll(rk, 50);
    prod.end_mono = mono_ns();
    if (rd_kafka_outq_len(rk) > 0)
        fprintf(stderr, "loadgen: %d messages not delivered by the producer\n", rd_kafka_outq_len(rk));
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(pad);
    free(value);
    atomic_store(&prod.done, 1);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* WebSocket client connections */

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED };

struct conn {
    int fd;
    enum cstate state;
    int user;
    int slot;        /* which of the user's --conns-per-user connections */
    long long frames; /* own notifications received on this connection */
    int attempts;
    int want_out; /* EPOLLOUT registered */
    int close_sent;
    char accept[32]; /* expected Sec-WebSocket-Accept */
    uint8_t *in;     /* bytes read and not yet parsed (partial frame) */
    size_t in_len, in_cap;
    uint8_t *msg;    /* a fragmented message being reassembled */
    size_t msg_len, msg_cap;
    int msg_op;
    uint8_t *out;    /* bytes to write */
    size_t out_len, out_off, out_cap;
};

static struct conn *conns;
static int nconns;
static int epfd;
static uint8_t *rbuf;

static struct {
    int next;            /* next connection to start */
    int in_progress;     /* connecting or handshaking */
    int open;
    int failed;          /* gave up after retries */
    int closed_by_server;
    int errors;
    long long frames, bytes, replayed, acks, pings, foreign, unparsed;
    long long unique, dup;
    long long deliveries; /* own notifications, first receipt on each connection */
    long long full;       /* own notifications that every connection of the user has */
    int64_t first_rx_mono, last_rx_mono, last_unique_mono, last_full_mono;
    int64_t connect_start, connect_end;
    int nnotes;
    char notes[MAX_CLOSE_NOTES][160];
} st;

/* Per notification number: which connections of its user have it. With
 * --conns-per-user K <= 8 a bit per connection (connection i is user
 * i % users and slot i / users), so a duplicate on one connection cannot
 * hide a loss on another; with more, a saturating count of receipts. */
static uint8_t *seen;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (st.nnotes < MAX_CLOSE_NOTES)
        vsnprintf(st.notes[st.nnotes++], sizeof(st.notes[0]), fmt, ap);
    va_end(ap);
}

static void *grow(void *p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c);
    if (!q)
        die("out of memory");
    *cap = c;
    return q;
}

static void set_events(struct conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) != 0)
        die("epoll_ctl: %s", strerror(errno));
}

static void conn_start(struct conn *c);

static void conn_drop(struct conn *c, int retry)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
        st.in_progress--;
    if (c->state == C_OPEN)
        st.open--;
    c->state = C_CLOSED;
    c->in_len = c->msg_len = c->out_len = c->out_off = 0;
    c->want_out = c->close_sent = 0;
    if (retry && c->attempts < 5 && !stop_flag) {
        conn_start(c);
    } else if (retry) {
        st.failed++;
    }
}

static void conn_start(struct conn *c)
{
    c->attempts++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s (raise the open-file limit?)", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int idx = (int)(c - conns);
    if (opt.source_addrs > 1) {
        /* More than one source address: the ephemeral ports of one are not
         * enough past ~28k connections. */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(idx % opt.source_addrs));
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
        if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0)
            die("bind to 127.0.0.%d: %s", 1 + idx % opt.source_addrs, strerror(errno));
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &dst.sin_addr);
    c->state = C_CONNECTING;
    st.in_progress++;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) != 0)
        die("epoll_ctl add: %s", strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS) {
        note("connect: %s", strerror(errno));
        st.errors++;
        conn_drop(c, 1);
    }
}

static void send_handshake(struct conn *c)
{
    uint8_t key[16], digest[20];
    char key64[32], req[512];
    for (int i = 0; i < 16; i += 8) {
        uint64_t r = rng();
        memcpy(key + i, &r, 8);
    }
    base64(key, 16, key64);
    char cat[96];
    int n = snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key64);
    sha1(cat, (size_t)n, digest);
    base64(digest, 20, c->accept);
    n = snprintf(req, sizeof(req),
                 "GET /?userId=%s%d HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 opt.user_prefix, c->user, opt.host, opt.port, key64);
    c->out = grow(c->out, &c->out_cap, (size_t)n);
    memcpy(c->out, req, (size_t)n);
    c->out_len = (size_t)n;
    c->out_off = 0;
}

/* Writes what is queued; registers for EPOLLOUT if the socket is full. */
static int flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) {
                c->want_out = 1;
                set_events(c, EPOLLIN | EPOLLOUT);
            }
            return 0;
        }
        return -1;
    }
    c->out_len = c->out_off = 0;
    if (c->want_out) {
        c->want_out = 0;
        set_events(c, EPOLLIN);
    }
    return 0;
}

/* Appends one masked client frame (RFC 6455 5.3) to the output buffer. */
static void queue_frame(struct conn *c, int opcode, const void *payload, size_t len)
{
    size_t hdr = 2 + (len >= 126 ? (len > 65535 ? 8 : 2) : 0) + 4;
    c->out = grow(c->out, &c->out_cap, c->out_len + hdr + len);
    uint8_t *p = c->out + c->out_len;
    *p++ = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        *p++ = (uint8_t)(0x80 | len);
    } else if (len <= 65535) {
        *p++ = 0x80 | 126;
        *p++ = (uint8_t)(len >> 8), *p++ = (uint8_t)len;
    } else {
        *p++ = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            *p++ = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint32_t m32 = (uint32_t)rng();
    uint8_t mask[4];
    memcpy(mask, &m32, 4);
    memcpy(p, mask, 4);
    p += 4;
    const uint8_t *s = payload;
    for (size_t i = 0; i < len; i++)
        p[i] = s[i] ^ mask[i & 3];
    c->out_len += hdr + len;
}

static long long expect_frames(void)
{
    return opt.expect >= 0 ? opt.expect : opt.count * opt.conns_per_user;
}

/* A whole text message from the server: a notification to acknowledge. */
static void on_message(struct conn *c, const uint8_t *p, size_t len, int64_t rx_real, int64_t rx_mono)
{
    const char *s = (const char *)p, *end = s + len;
    st.frames++;
    st.bytes += (long long)len;
    if (!st.first_rx_mono)
        st.first_rx_mono = rx_mono;
    st.last_rx_mono = rx_mono;

    const char *id = memmem(s, len, "\"id\":\"", 6);
    if (!id) {
        st.unparsed++;
        return;
    }
    id += 6;
    const char *id_end = memchr(id, '"', (size_t)(end - id));
    if (!id_end || id_end - id > 128) {
        st.unparsed++;
        return;
    }
    if (c) {
        char ack[200];
        int n = snprintf(ack, sizeof(ack), "{\"type\":\"ack\",\"id\":\"%.*s\"}", (int)(id_end - id), id);
        queue_frame(c, 0x1, ack, (size_t)n);
        st.acks++;
    }

    size_t plen = strlen(opt.id_prefix);
    int foreign = 1;
    if ((size_t)(id_end - id) > plen && memcmp(id, opt.id_prefix, plen) == 0 && id[plen] >= '0' &&
        id[plen] <= '9') {
        foreign = 0;
        long long seq = 0;
        for (const char *q = id + plen; q < id_end && *q >= '0' && *q <= '9'; q++)
            seq = seq * 10 + (*q - '0');
        if (seq >= 0 && seq < opt.count) {
            int k = opt.conns_per_user, was = seen[seq], fresh, now_full;
            if (seen[seq] == 0) {
                st.unique++;
                st.last_unique_mono = rx_mono;
            }
            if (k <= 8) {
                uint8_t bit = (uint8_t)(1u << (c ? c->slot : 0));
                fresh = !(was & bit);
                seen[seq] = (uint8_t)(was | bit);
                now_full = fresh && __builtin_popcount(seen[seq]) == k;
            } else {
                fresh = was < k;
                if (seen[seq] < 255)
                    seen[seq]++;
                now_full = fresh && seen[seq] == k;
            }
            if (fresh) {
                st.deliveries++;
                if (c)
                    c->frames++;
            } else {
                st.dup++;
            }
            if (now_full) {
                st.full++;
                st.last_full_mono = rx_mono;
            }
        }
    } else {
        st.foreign++;
    }
    const char *t = memmem(id_end, (size_t)(end - id_end), "\"message\":\"t=", 13);
    if (t && !foreign) {
        int64_t sent = strtoll(t + 13, NULL, 10);
        hist_add(rx_real - sent);
        timeline_add(sent, rx_real - sent);
    }
    if (memmem(id_end, (size_t)(end - id_end), "\"replayed\":true", 15))
        st.replayed++;
}

/* Parses whole frames from buf; returns bytes consumed, or -1 to drop. */
static ssize_t parse_frames(struct conn *c, uint8_t *buf, size_t len, int64_t rx_real, int64_t rx_mono)
{
    size_t off = 0;
    while (len - off >= 2) {
        uint8_t *p = buf + off;
        int fin = p[0] & 0x80, op = p[0] & 0x0f, masked = p[1] & 0x80;
        uint64_t plen = p[1] & 0x7f;
        size_t hdr = 2;
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = (uint64_t)p[2] << 8 | p[3];
            hdr = 4;
        } else if (plen == 127) {
            if (len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | p[2 + i];
            hdr = 10;
        }
        if (plen > MAX_FRAME) {
            note("server frame of %llu bytes", (unsigned long long)plen);
            return -1;
        }
        if (masked)
            hdr += 4;
        if (len - off < hdr + plen)
            break;
        uint8_t *pl = p + hdr;
        if (masked) { /* servers must not mask (5.1), but be lenient */
            uint8_t *mk = p + hdr - 4;
            for (uint64_t i = 0; i < plen; i++)
                pl[i] ^= mk[i & 3];
        }
        off += hdr + plen;
        switch (op) {
        case 0x1:
        case 0x2:
            if (fin) {
                on_message(c, pl, plen, rx_real, rx_mono);
            } else {
                c->msg = grow(c->msg, &c->msg_cap, plen);
                memcpy(c->msg, pl, plen);
                c->msg_len = plen;
                c->msg_op = op;
            }
            break;
        case 0x0:
            c->msg = grow(c->msg, &c->msg_cap, c->msg_len + plen);
            memcpy(c->msg + c->msg_len, pl, plen);
            c->msg_len += plen;
            if (fin) {
                on_message(c, c->msg, c->msg_len, rx_real, rx_mono);
                c->msg_len = 0;
            }
            break;
        case 0x8: {
            int code = plen >= 2 ? pl[0] << 8 | pl[1] : 1005;
            if (!stop_flag) {
                st.closed_by_server++;
                note("server closed a connection of user %s%d: %d %.*s", opt.user_prefix, c->user,
                     code, plen > 2 ? (int)(plen - 2) : 0, (const char *)pl + 2);
            }
            if (!c->close_sent) {
                queue_frame(c, 0x8, pl, plen >= 2 ? 2 : 0);
                c->close_sent = 1;
            }
            flush_out(c);
            return -1;
        }
        case 0x9:
            st.pings++;
            queue_frame(c, 0xA, pl, plen);
            break;
        case 0xA:
            break;
        default:
            note("unknown opcode %d", op);
            return -1;
        }
    }
    return (ssize_t)off;
}

/* The HTTP upgrade answer: returns header bytes consumed, 0 if incomplete, -1 on failure. */
static ssize_t parse_handshake(struct conn *c, uint8_t *buf, size_t len)
{
    uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len > HANDSHAKE_MAX ? -1 : 0;
    size_t hlen = (size_t)(end - buf) + 4;
    if (hlen < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        note("handshake refused: %.*s", (int)strcspn((char *)buf, "\r\n"), (char *)buf);
        return -1;
    }
    /* Find Sec-WebSocket-Accept (case-insensitive) and compare. */
    const char *p = (const char *)buf;
    const char *hend = (const char *)end;
    while (p < hend) {
        const char *eol = memmem(p, (size_t)(hend - p) + 2, "\r\n", 2);
        if (!eol)
            break;
        if (eol - p > 21 && strncasecmp(p, "Sec-WebSocket-Accept:", 21) == 0) {
            const char *v = p + 21;
            while (*v == ' ')
                v++;
            if ((size_t)(eol - v) == strlen(c->accept) && memcmp(v, c->accept, (size_t)(eol - v)) == 0)
                return (ssize_t)hlen;
            note("bad Sec-WebSocket-Accept");
            return -1;
        }
        p = eol + 2;
    }
    note("no Sec-WebSocket-Accept in the answer");
    return -1;
}

static void on_readable(struct conn *c)
{
    /* Leftover first, then fresh bytes after it, in the shared buffer. */
    size_t have = c->in_len;
    if (have)
        memcpy(rbuf, c->in, have);
    ssize_t n = read(c->fd, rbuf + have, RBUF_SIZE - have);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (!stop_flag) {
            st.errors++;
            note("connection of user %s%d %s", opt.user_prefix, c->user, n == 0 ? "closed by peer" : strerror(errno));
        }
        conn_drop(c, c->state != C_OPEN);
        return;
    }
    size_t len = have + (size_t)n;
    size_t off = 0;
    if (c->state == C_HANDSHAKE) {
        ssize_t h = parse_handshake(c, rbuf, len);
        if (h < 0) {
            st.errors++;
            conn_drop(c, 1);
            return;
        }
        if (h == 0) {
            c->in = grow(c->in, &c->in_cap, len);
            memcpy(c->in, rbuf, len);
            c->in_len = len;
            return;
        }
        off = (size_t)h;
        c->state = C_OPEN;
        st.in_progress--;
        st.open++;
        if (st.open == nconns)
            st.connect_end = mono_ns();
    }
    ssize_t used = parse_frames(c, rbuf + off, len - off, real_ns(), mono_ns());
    if (used < 0) {
        conn_drop(c, 0);
        return;
    }
    off += (size_t)used;
    c->in_len = len - off;
    if (c->in_len) {
        c->in = grow(c->in, &c->in_cap, c->in_len);
        memcpy(c->in, rbuf + off, c->in_len);
    }
    /* Every ack from this read goes out in one write. */
    if (c->out_len && flush_out(c) != 0) {
        st.errors++;
        conn_drop(c, 0);
    }
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err || (ev & (EPOLLERR | EPOLLHUP))) {
            note("connect: %s", strerror(err ? err : ECONNRESET));
            st.errors++;
            conn_drop(c, 1);
            return;
        }
        c->state = C_HANDSHAKE;
        send_handshake(c);
        set_events(c, EPOLLIN);
        if (flush_out(c) != 0) {
            st.errors++;
            conn_drop(c, 1);
        }
        return;
    }
    if (ev & EPOLLIN) {
        on_readable(c);
        if (c->state == C_CLOSED)
            return;
    }
    if (ev & EPOLLOUT) {
        if (flush_out(c) != 0) {
            st.errors++;
            conn_drop(c, 0);
        }
    } else if ((ev & (EPOLLERR | EPOLLHUP)) && !(ev & EPOLLIN)) {
        st.errors++;
        conn_drop(c, 0);
    }
}

/* Starts new connections while fewer than connect_parallel are under way. */
static void connect_more(void)
{
    while (st.next < nconns && st.in_progress < opt.connect_parallel) {
        struct conn *c = &conns[st.next++];
        conn_start(c);
    }
}

static void poll_once(int timeout_ms)
{
    struct epoll_event ev[512];
    int n = epoll_wait(epfd, ev, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr == NULL) { /* stdin: EOF ends --idle */
            char b[256];
            if (read(0, b, sizeof(b)) <= 0) {
                stop_flag = 1;
                epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
            }
            continue;
        }
        on_event(ev[i].data.ptr, ev[i].events);
    }
    connect_more();
}

static void connect_all(double timeout_s)
{
    st.connect_start = mono_ns();
    int64_t deadline = st.connect_start + (int64_t)(timeout_s * NS_PER_S);
    connect_more();
    while (!stop_flag && st.open + st.failed < nconns && mono_ns() < deadline)
        poll_once(10);
    if (!st.connect_end)
        st.connect_end = mono_ns();
}

/* ------------------------------------------------------------------ */
/* Output */

static void print_cpu(const struct cpu_sample *a, const struct cpu_sample *b)
{
    if (!a->ok || !b->ok) {
        printf("null");
        return;
    }
    printf("{\"ticks_s\":%.3f,\"sched_s\":%.4f,\"threads\":{", b->ticks_s - a->ticks_s, b->sched_s - a->sched_s);
    /* Per thread name: sum the deltas of threads present in both samples. */
    int first = 1;
    char done[MAX_THREADS] = {0};
    for (int i = 0; i < b->nthreads; i++) {
        if (done[i])
            continue;
        double sum = 0;
        for (int j = i; j < b->nthreads; j++) {
            if (strcmp(b->comm[j], b->comm[i]) != 0)
                continue;
            done[j] = 1;
            double before = 0;
            for (int k = 0; k < a->nthreads; k++)
                if (a->tid[k] == b->tid[j])
                    before = a->thread_s[k];
            sum += b->thread_s[j] - before;
        }
        printf("%s\"%s\":%.4f", first ? "" : ",", b->comm[i], sum);
        first = 0;
    }
    printf("}}");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen [options]\n"
            "  --url-base ws://HOST:PORT   the gateway (default ws://127.0.0.1:8083)\n"
            "  --users N                   user ids PREFIX0..PREFIX<N-1> (default 1000)\n"
            "  --user-prefix P             (default bench-)\n"
            "  --conns-per-user K          connections per user (default 1): connection i is\n"
            "                              user i mod N; a notification is complete when each\n"
            "                              of its user's K connections has it\n"
            "  --brokers B --topic T       Kafka to produce to\n"
            "  --rate R --duration S       open loop: R notifications/s for S seconds\n"
            "  --burst COUNT               COUNT notifications as fast as possible\n"
            "  --count COUNT               notifications (with --no-produce: those to expect)\n"
            "  --id-prefix P               notification ids P0..P<COUNT-1> (default b-)\n"
            "  --linger-ms MS              producer linger (default 0 paced, 5 burst)\n"
            "  --message-bytes N           padding in each message (default 16)\n"
            "  --expect N                  frames to receive (default COUNT x K)\n"
            "  --timeout S                 wait after the producer finished (default 30)\n"
            "  --connect-parallel N        handshakes at once (default 256)\n"
            "  --source-addrs N            spread over 127.0.0.1..N (default: 1 per 20000 conns)\n"
            "  --cpu-pid PID               sample this process's CPU time (the gateway)\n"
            "  --start-delay S             connected: wait S s before producing (default 1)\n"
            "  --idle                      connect, print a line, hold until stdin closes\n"
            "  --no-connect / --no-produce produce only / receive only\n"
            "  --kafka-only                receive with a Kafka consumer (librdkafka defaults)\n"
            "                              instead of WebSocket: the Kafka leg's latency alone\n"
            "  --dump-consumer-defaults    print librdkafka's consumer defaults as JSON\n");
    exit(2);
}

/* --kafka-only: a consumer with librdkafka's defaults (as the gateway's
 * fetch settings), in its own group, positioned at the end before the
 * producer starts. */
static rd_kafka_t *kc;

static void kafka_only_start(void)
{
    char err[256], group[64];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    snprintf(group, sizeof(group), "bench-kafka-only-%d-%lld", (int)getpid(), (long long)real_ns());
    conf_set(c, "bootstrap.servers", opt.brokers);
    conf_set(c, "group.id", group);
    conf_set(c, "auto.offset.reset", "latest");
    conf_set(c, "enable.auto.commit", "false");
    rd_kafka_conf_set_log_cb(c, on_rk_log);
    if (!(kc = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err))))
        die("cannot create the consumer: %s", err);
    rd_kafka_poll_set_consumer(kc);
    /* Assigned by hand at each partition's end: no group join to wait for. */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(kc, opt.topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(kc, 0, rkt, &md, 10000) || md->topic_cnt != 1 || md->topics[0].err)
        die("no metadata for topic %s", opt.topic);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t part = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(kc, opt.topic, part, &lo, &hi, 10000))
            die("no watermarks for %s partition %d", opt.topic, (int)part);
        rd_kafka_topic_partition_list_add(t, opt.topic, part)->offset = hi;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (rd_kafka_assign(kc, t))
        die("cannot assign the partitions of %s", opt.topic);
    rd_kafka_topic_partition_list_destroy(t);
    /* Let the first fetches go out. */
    int64_t until = mono_ns() + NS_PER_S / 2;
    while (mono_ns() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kc, 50);
        if (m)
            rd_kafka_message_destroy(m);
    }
}

static void kafka_only_poll(void)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(kc, 5);
    while (m) {
        if (!m->err && m->payload)
            on_message(NULL, m->payload, m->len, real_ns(), mono_ns());
        rd_kafka_message_destroy(m);
        m = rd_kafka_consumer_poll(kc, 0);
    }
}

static void dump_consumer_defaults(void)
{
    static const char *keys[] = {"fetch.wait.max.ms", "fetch.min.bytes", "fetch.max.bytes",
                                 "max.partition.fetch.bytes", "queued.min.messages",
                                 "queued.max.messages.kbytes", "fetch.error.backoff.ms",
                                 "socket.nagle.disable", "check.crcs"};
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char v[256];
    printf("{\"librdkafka\":\"%s\"", rd_kafka_version_str());
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        size_t n = sizeof(v);
        if (rd_kafka_conf_get(c, keys[i], v, &n) == RD_KAFKA_CONF_OK)
            printf(",\"%s\":\"%s\"", keys[i], v);
    }
    printf("}\n");
    rd_kafka_conf_destroy(c);
}

static void parse_args(int argc, char **argv)
{
    double duration = 0;
    enum { O_URL = 256, O_USERS, O_PREFIX, O_K, O_BROKERS, O_TOPIC, O_RATE, O_DURATION, O_BURST,
           O_COUNT, O_IDP, O_LINGER, O_MSGB, O_EXPECT, O_TIMEOUT, O_PAR, O_SRC, O_CPU, O_SETTLE,
           O_IDLE, O_NOCONN, O_NOPROD, O_DUMP, O_DELAY, O_KONLY };
    static const struct option lo[] = {
        {"url-base", 1, 0, O_URL}, {"users", 1, 0, O_USERS}, {"user-prefix", 1, 0, O_PREFIX},
        {"conns-per-user", 1, 0, O_K}, {"brokers", 1, 0, O_BROKERS}, {"topic", 1, 0, O_TOPIC},
        {"rate", 1, 0, O_RATE}, {"duration", 1, 0, O_DURATION}, {"burst", 1, 0, O_BURST},
        {"count", 1, 0, O_COUNT}, {"id-prefix", 1, 0, O_IDP}, {"linger-ms", 1, 0, O_LINGER},
        {"message-bytes", 1, 0, O_MSGB}, {"expect", 1, 0, O_EXPECT}, {"timeout", 1, 0, O_TIMEOUT},
        {"connect-parallel", 1, 0, O_PAR}, {"source-addrs", 1, 0, O_SRC}, {"cpu-pid", 1, 0, O_CPU},
        {"settle", 1, 0, O_SETTLE}, {"start-delay", 1, 0, O_DELAY}, {"idle", 0, 0, O_IDLE}, {"no-connect", 0, 0, O_NOCONN},
        {"no-produce", 0, 0, O_NOPROD}, {"kafka-only", 0, 0, O_KONLY}, {"dump-consumer-defaults", 0, 0, O_DUMP},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (o) {
        case O_URL:
            if (sscanf(optarg, "ws://%63[^:/]:%d", opt.host, &opt.port) != 2)
                die("--url-base: expected ws://HOST:PORT, got %s", optarg);
            break;
        case O_USERS: opt.users = atoi(optarg); break;
        case O_PREFIX: opt.user_prefix = optarg; break;
        case O_K: opt.conns_per_user = atoi(optarg); break;
        case O_BROKERS: opt.brokers = optarg; break;
        case O_TOPIC: opt.topic = optarg; break;
        case O_RATE: opt.rate = atof(optarg); break;
        case O_DURATION: duration = atof(optarg); break;
        case O_BURST: opt.count = atoll(optarg); opt.rate = 0; break;
        case O_COUNT: opt.count = atoll(optarg); break;
        case O_IDP: opt.id_prefix = optarg; break;
        case O_LINGER: opt.linger_ms = atoi(optarg); break;
        case O_MSGB: opt.message_bytes = atoi(optarg); break;
        case O_EXPECT: opt.expect = atoll(optarg); break;
        case O_TIMEOUT: opt.timeout_s = atof(optarg); break;
        case O_PAR: opt.connect_parallel = atoi(optarg); break;
        case O_SRC: opt.source_addrs = atoi(optarg); break;
        case O_CPU: opt.cpu_pid = atoi(optarg); break;
        case O_SETTLE: opt.settle_s = atof(optarg); break;
        case O_DELAY: opt.start_delay_s = atof(optarg); break;
        case O_IDLE: opt.idle = 1; break;
        case O_NOCONN: opt.no_connect = 1; break;
        case O_NOPROD: opt.no_produce = 1; break;
        case O_KONLY: opt.kafka_only = 1; break;
        case O_DUMP: opt.dump_consumer_defaults = 1; break;
        default: usage();
        }
    }
    if (opt.rate > 0 && duration > 0)
        opt.count = (long long)(opt.rate * duration + 0.5);
    if (opt.users < 1 || opt.conns_per_user < 1)
        die("--users and --conns-per-user must be at least 1");
    if (!opt.idle && opt.count <= 0 && !opt.dump_consumer_defaults)
        die("nothing to do: give --burst COUNT, --rate R --duration S, --count, or --idle");
    if (opt.source_addrs <= 0)
        opt.source_addrs = (opt.users * opt.conns_per_user + 19999) / 20000;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (opt.dump_consumer_defaults) {
        dump_consumer_defaults();
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rng_state ^= (uint64_t)real_ns() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    nconns = opt.no_connect || opt.kafka_only ? 0 : opt.users * opt.conns_per_user;
    conns = calloc((size_t)nconns + 1, sizeof(*conns));
    seen = calloc((size_t)(opt.count > 0 ? opt.count : 1), 1);
    rbuf = malloc(RBUF_SIZE);
    if (!conns || !seen || !rbuf)
        die("out of memory");
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].user = i % opt.users;
        conns[i].slot = i / opt.users;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));

    struct cpu_sample cpu_done = {0}, cpu1 = {0};
    struct rusage ru0, ru1;

    /* Connect first: the clock starts once every user is online. */
    if (nconns) {
        if (!opt.no_produce || opt.idle) {
            connect_all(120);
            fprintf(stderr, "loadgen: %d/%d connections open in %.2f s (%d failed)\n", st.open,
                    nconns, (double)(st.connect_end - st.connect_start) / 1e9, st.failed);
            if (st.open < nconns && !opt.idle)
                die("only %d of %d connections opened%s%s", st.open, nconns,
                    st.nnotes ? "; first problem: " : "", st.nnotes ? st.notes[0] : "");
        }
    }

    if (opt.idle) {
        printf("{\"event\":\"connected\",\"connections\":%d,\"failed\":%d,\"connect_s\":%.3f}\n",
               st.open, st.failed, (double)(st.connect_end - st.connect_start) / 1e9);
        fflush(stdout);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &e);
        while (!stop_flag)
            poll_once(200);
        printf("{\"event\":\"done\",\"open\":%d,\"closed_by_server\":%d,\"errors\":%d,\"pings\":%lld}\n",
               st.open, st.closed_by_server, st.errors, st.pings);
        return 0;
    }

    /* Each connect makes the gateway ask its store for the user's stored
     * notifications; until that answer is in, the user's live notifications
     * are stored too. Let those answers come in before producing. */
    if (nconns && !opt.no_produce) {
        int64_t until = mono_ns() + (int64_t)(opt.start_delay_s * NS_PER_S);
        while (!stop_flag && mono_ns() < until)
            poll_once(5);
    }
    if (opt.kafka_only)
        kafka_only_start();
    getrusage(RUSAGE_SELF, &ru0);
    int64_t t_start = mono_ns();
    if (opt.no_produce) {
        cpu_sample(opt.cpu_pid, &cpu0);
        /* The replay scenario: the clock runs from the first connect. */
        st.connect_start = 0;
        connect_more();
        st.connect_start = t_start;
    } else {
        if (pthread_create(&prod.thread, NULL, produce_loop, NULL) != 0)
            die("cannot start the producer thread");
    }

    long long want = nconns || opt.kafka_only ? expect_frames() : 0;
    int receiving = nconns || opt.kafka_only;
    int64_t done_at = 0;
    while (!stop_flag) {
        if (nconns)
            poll_once(5);
        else if (opt.kafka_only)
            kafka_only_poll();
        else
            usleep(5000);
        int produced_all = opt.no_produce || atomic_load(&prod.done);
        if (receiving && st.unique >= opt.count && st.deliveries >= want) {
            done_at = mono_ns();
            break;
        }
        if (!receiving && produced_all) {
            done_at = mono_ns();
            break;
        }
        int64_t since = opt.no_produce ? t_start : prod.end_mono;
        if (produced_all && since && mono_ns() - since > (int64_t)(opt.timeout_s * NS_PER_S))
            break; /* report the shortfall */
    }
    cpu_sample(opt.cpu_pid, &cpu_done);
    /* Let the gateway handle the last acks before the final CPU sample. */
    int64_t settle_end = mono_ns() + (int64_t)(opt.settle_s * NS_PER_S);
    while (nconns && mono_ns() < settle_end)
        poll_once(5);
    cpu_sample(opt.cpu_pid, &cpu1);
    getrusage(RUSAGE_SELF, &ru1);
    int complete = done_at != 0;
    if (!opt.no_produce) {
        if (!atomic_load(&prod.done))
            stop_flag = 1;
        pthread_join(prod.thread, NULL);
    }
    stop_flag = 1;

    int64_t t_first = opt.no_produce ? t_start : prod.start_mono;
    /* The last notification that every connection of its user has (with
     * one connection a user: the last new one). */
    int64_t t_last = receiving ? (opt.conns_per_user > 1 ? st.last_full_mono : st.last_unique_mono)
                               : prod.end_mono;
    double dur = t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0;
    double tput = dur > 0 ? (double)(receiving ? st.unique : atomic_load(&prod.produced)) / dur : 0;
    double gw_cpu = cpu1.ok && cpu0.ok ? cpu1.ticks_s - cpu0.ticks_s : 0;
    double gw_sched = cpu1.ok && cpu0.ok ? cpu1.sched_s - cpu0.sched_s : 0;
    double lg_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                             ru0.ru_stime.tv_sec) +
                    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                             ru0.ru_stime.tv_usec) / 1e6;

    printf("{\"mode\":\"%s\",\"complete\":%s,\"users\":%d,\"conns_per_user\":%d,\"connections\":%d,"
           "\"connect_s\":%.6f,\"count\":%lld,\"rate\":%.1f,\"linger_ms\":%d,\"message_bytes\":%d,",
           opt.no_produce ? "replay" : opt.no_connect ? "produce" : opt.kafka_only ? "kafka-only"
                                     : opt.rate > 0 ? "paced" : "burst",
           complete ? "true" : "false", opt.users, opt.conns_per_user, nconns,
           (double)(st.connect_end - st.connect_start) / 1e9, opt.count, opt.rate, linger_ms(),
           opt.message_bytes);
    printf("\"produced\":%lld,\"delivered\":%lld,\"produce_failed\":%lld,\"produce_error\":\"%s\","
           "\"produce_s\":%.3f,\"producer_max_behind_ms\":%.3f,",
           (long long)atomic_load(&prod.produced), (long long)atomic_load(&prod.delivered),
           (long long)atomic_load(&prod.failed), prod.first_error,
           prod.end_mono > prod.start_mono ? (double)(prod.end_mono - prod.start_mono) / 1e9 : 0,
           (double)prod.max_behind_ns / 1e6);
    printf("\"expected\":%lld,\"received\":%lld,\"unique\":%lld,\"duplicates\":%lld,\"missing\":%lld,"
           "\"replayed\":%lld,\"foreign\":%lld,\"unparsed\":%lld,\"acks\":%lld,\"pings\":%lld,"
           "\"avg_frame_bytes\":%.1f,\"closed_by_server\":%d,\"errors\":%d,",
           want, st.frames, st.unique, st.dup, receiving ? opt.count - st.unique : 0, st.replayed,
           st.foreign, st.unparsed, st.acks, st.pings,
           st.frames ? (double)st.bytes / (double)st.frames : 0, st.closed_by_server, st.errors);
    long long cf_min = nconns ? LLONG_MAX : 0, cf_max = 0;
    for (int i = 0; i < nconns; i++) {
        if (conns[i].frames < cf_min)
            cf_min = conns[i].frames;
        if (conns[i].frames > cf_max)
            cf_max = conns[i].frames;
    }
    printf("\"deliveries\":%lld,\"deliveries_missing\":%lld,\"complete_notifications\":%lld,"
           "\"conn_frames_min\":%lld,\"conn_frames_max\":%lld,",
           st.deliveries, receiving && want > st.deliveries ? want - st.deliveries : 0, st.full,
           cf_min, cf_max);
    /* CLOCK_MONOTONIC is the machine's: the driver compares these with its own. */
    printf("\"t_first_mono_ns\":%" PRId64 ",\"t_last_mono_ns\":%" PRId64 ",", t_first, t_last);
    printf("\"duration_s\":%.4f,\"throughput_per_s\":%.1f,\"gateway_cpu_s\":%.4f,"
           "\"gateway_sched_s\":%.4f,\"per_gateway_cpu_s\":%.1f,"
           "\"deliveries_per_gateway_cpu_s\":%.1f,\"gateway_us_per_delivery\":%.3f,"
           "\"loadgen_cpu_s\":%.3f,",
           dur, tput, gw_cpu, gw_sched, gw_sched > 0 ? (double)st.unique / gw_sched : 0,
           gw_sched > 0 ? (double)st.deliveries / gw_sched : 0,
           st.deliveries ? gw_sched * 1e6 / (double)st.deliveries : 0, lg_cpu);
    printf("\"gateway_cpu_at_last_frame\":");
    print_cpu(&cpu0, &cpu_done);
    printf(",\"gateway_cpu\":");
    print_cpu(&cpu0, &cpu1);
    printf(",\"latency_us\":{\"n\":%llu,\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
           "\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f}",
           (unsigned long long)hist.n, hist.n ? (double)hist.min / 1e3 : 0, hist_pct(50) / 1e3,
           hist_pct(90) / 1e3, hist_pct(99) / 1e3, hist_pct(99.9) / 1e3, (double)hist.max / 1e3,
           hist.n ? (double)(hist.sum / hist.n) / 1e3 : 0);
    printf(",\"timeline_ms\":[");
    int last = -1;
    for (int i = 0; i < TL_MAX; i++)
        if (tl[i].n)
            last = i;
    for (int i = 0; i <= last; i++)
        printf("%s[%u,%.2f,%.2f]", i ? "," : "", tl[i].n, tl[i].n ? tl[i].sum / tl[i].n / 1e6 : 0,
               (double)tl[i].max / 1e6);
    printf("]");
    printf(",\"notes\":[");
    for (int i = 0; i < st.nnotes; i++) {
        printf("%s\"", i ? "," : "");
        for (const char *q = st.notes[i]; *q; q++)
            if (*q == '"' || *q == '\\')
                printf("\\%c", *q);
            else if ((unsigned char)*q >= 0x20)
                putchar(*q);
        printf("\"");
    }
    printf("]}\n");
    fflush(stdout);
    if (kc) {
        rd_kafka_consumer_close(kc);
        rd_kafka_destroy(kc);
    }
    return complete ? 0 : 1;
}
