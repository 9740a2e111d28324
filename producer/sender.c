#include "sender.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_producer.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"

#define FLUSH_MARGIN_MS 3000  /* librdkafka checks message timeouts about once a second */
#define PURGE_WAIT_MS 2000    /* for the reports of withdrawn messages */
#define LISTED_FAILURES_MAX 10 /* failed notifications named one by one on stderr */
#define ERROR_KINDS_MAX 8

/* Travels with each message as its opaque and comes back in its delivery report. */
struct msg_info {
    long line;
    char id[];
};

struct sender {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    char brokers[512];
    char topic[256];
    int timeout_ms;
    int quiet;
    int verbose;
    volatile sig_atomic_t *interrupted;

    unsigned long sent, delivered, failed, listed;
    struct {
        rd_kafka_resp_err_t err;
        unsigned long count;
    } errors[ERROR_KINDS_MAX];
    size_t nerrors;
    const char *withdrawn_why; /* set when sender_flush withdrew what was left */
    char broker_error[512];    /* the last broker or connection error, for the report */
    rd_kafka_resp_err_t seen[ERROR_KINDS_MAX]; /* kinds of error already logged */
    size_t nseen;
    int fatal;
    int stdout_broken;
    pthread_mutex_t lock;    /* guards last_warning, written on librdkafka's threads */
    char last_warning[512];  /* the last log line kept quiet, for the report */
};

static void count_error(sender_t *s, rd_kafka_resp_err_t err)
{
    for (size_t i = 0; i < s->nerrors; i++) {
        if (s->errors[i].err == err) {
            s->errors[i].count++;
            return;
        }
    }
    if (s->nerrors < ERROR_KINDS_MAX) {
        s->errors[s->nerrors].err = err;
        s->errors[s->nerrors].count = 1;
        s->nerrors++;
    }
}

static int withdrawn(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
}

static const char *describe(const sender_t *s, rd_kafka_resp_err_t err)
{
    if (withdrawn(err) && s->withdrawn_why)
        return s->withdrawn_why;
    return rd_kafka_err2str(err);
}

static void note_failure(sender_t *s, rd_kafka_resp_err_t err, const struct msg_info *info)
{
    char where[48] = "";

    s->failed++;
    count_error(s, err);
    if (s->listed < LISTED_FAILURES_MAX) {
        if (info->line > 0)
            snprintf(where, sizeof(where), " (stdin:%ld)", info->line);
        fprintf(stderr, "producer: not delivered: %s%s: %s\n", info->id, where, describe(s, err));
    } else if (s->listed == LISTED_FAILURES_MAX) {
        fprintf(stderr, "producer: (further notifications not delivered are counted, not "
                        "listed)\n");
    }
    s->listed++;
}

/* Called on the main thread, from rd_kafka_poll() or rd_kafka_flush(). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    sender_t *s = opaque;
    struct msg_info *info = m->_private;
    (void)rk;

    if (m->err) {
        note_failure(s, m->err, info);
    } else {
        s->delivered++;
        if (!s->quiet && !s->stdout_broken) {
            if (fputs(info->id, stdout) == EOF || putchar('\n') == EOF) {
                /* Say so once and keep delivering: the notifications matter more. */
                s->stdout_broken = 1;
                log_warn("cannot write ids to standard output (%s): delivering without "
                         "printing them",
                         strerror(errno));
            }
        }
    }
    free(info);
}

/* Whether this kind of error was seen before; remembers it if not. */
static int seen_error(sender_t *s, rd_kafka_resp_err_t err)
{
    for (size_t i = 0; i < s->nseen; i++) {
        if (s->seen[i] == err)
            return 1;
    }
    if (s->nseen < ERROR_KINDS_MAX)
        s->seen[s->nseen++] = err;
    return 0;
}

/* Called on the main thread, from rd_kafka_poll() or rd_kafka_flush(). */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    sender_t *s = opaque;

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t real = rd_kafka_fatal_error(rk, why, sizeof(why));
        s->fatal = 1;
        snprintf(s->broker_error, sizeof(s->broker_error), "%s", why);
        log_error("Kafka producer stopped by a fatal error: %s (%s)", why, rd_kafka_err2name(real));
        return;
    }
    /* librdkafka retries connections by itself until the delivery timeout:
     * say the first time a kind of error happens, keep the latest for the
     * final report, and repeat only when asked to be verbose. */
    if (s->verbose || !seen_error(s, (rd_kafka_resp_err_t)err))
        log_warn("Kafka: %s%s", reason,
                 s->verbose ? "" : " (retrying until the delivery timeout)");
    if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || !s->broker_error[0])
        snprintf(s->broker_error, sizeof(s->broker_error), "%s", reason);
}

/* Runs on librdkafka's threads: log_msg writes each line in one call. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    sender_t *s = rd_kafka_opaque(rk);

    /* Quiet unless asked: connection failures come again through on_error,
     * and a broker still starting answers the idempotence handshake with
     * "coordinator load in progress" until it is ready, which librdkafka
     * retries. Kept for the final report in case it never recovers. */
    if (!s->verbose && (strcmp(fac, "FAIL") == 0 || strcmp(fac, "GETPID") == 0)) {
        pthread_mutex_lock(&s->lock);
        snprintf(s->last_warning, sizeof(s->last_warning), "%s", buf);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if (level <= 3)
        log_error("Kafka %s: %s", fac, buf);
    else if (level == 4)
        log_warn("Kafka %s: %s", fac, buf);
    else
        log_info("Kafka %s: %s", fac, buf);
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, const char *from,
                    char *errstr, size_t size)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, val, why, sizeof(why)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(errstr, size, "%s: %s", from, why);
    return -1;
}

sender_t *sender_new(const sender_config_t *cfg, char *errstr, size_t errstr_size)
{
    /* The project's producers' common settings (idempotence, murmur2:
     * the partition Java and KafkaJS clients choose, so one user's
     * notifications stay in order whichever kind of producer sent them). */
    rd_kafka_conf_t *conf = kafka_producer_conf(cfg->brokers, "producer", errstr, errstr_size);
    if (!conf)
        return NULL;
    sender_t *s = xcalloc(1, sizeof(*s));
    char buf[64];
    char why[512];
    size_t size;

    pthread_mutex_init(&s->lock, NULL);
    s->quiet = cfg->quiet;
    s->verbose = cfg->verbose;
    s->interrupted = cfg->interrupted;

    snprintf(buf, sizeof(buf), "%d", cfg->timeout_ms);
    /* Then our defaults, then -X, each able to override the one before.
     * log.connection.close is off because failures that matter come
     * through the error callback. */
    const char *const defaults[][2] = {
        {"client.id", "notification-producer"},
        {"message.timeout.ms", buf},
        {"log.connection.close", "false"},
        {"log_level", cfg->verbose ? "6" : "4"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (conf_set(conf, defaults[i][0], defaults[i][1], defaults[i][0], errstr, errstr_size))
            goto fail;
    }
    for (size_t i = 0; i < cfg->nprops; i++) {
        char key[256];
        const char *eq = strchr(cfg->props[i], '=');
        size_t klen = eq ? (size_t)(eq - cfg->props[i]) : 0;
        if (!eq || klen == 0 || klen >= sizeof(key)) {
            snprintf(errstr, errstr_size, "-X %s: expected KEY=VALUE", cfg->props[i]);
            goto fail;
        }
        memcpy(key, cfg->props[i], klen);
        key[klen] = '\0';
        char from[300];
        if (i < cfg->nquiet) {
            if (rd_kafka_conf_set(conf, key, eq + 1, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
                snprintf(errstr, errstr_size, "librdkafka property %s (from --kafka-config or "
                         "KAFKA_PROP_*): %s", key,
                         strstr(why, eq + 1) ? "refused (its value is not shown)" : why);
                goto fail;
            }
            continue;
        }
        snprintf(from, sizeof(from), "-X %s", cfg->props[i]);
        if (conf_set(conf, key, eq + 1, from, errstr, errstr_size))
            goto fail;
    }

    /* Read back what -X may have changed, for the flush deadline and the report. */
    size = sizeof(buf);
    if (rd_kafka_conf_get(conf, "message.timeout.ms", buf, &size) == RD_KAFKA_CONF_OK)
        s->timeout_ms = atoi(buf);
    size = sizeof(s->brokers);
    if (rd_kafka_conf_get(conf, "bootstrap.servers", s->brokers, &size) != RD_KAFKA_CONF_OK)
        snprintf(s->brokers, sizeof(s->brokers), "%s", cfg->brokers);
    snprintf(s->topic, sizeof(s->topic), "%s", cfg->topic);

    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, s);

    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!s->rk) {
        snprintf(errstr, errstr_size, "cannot create the Kafka producer: %s", why);
        goto fail;
    }
    conf = NULL; /* rd_kafka_new took it */

    s->rkt = rd_kafka_topic_new(s->rk, cfg->topic, NULL);
    if (!s->rkt) {
        snprintf(errstr, errstr_size, "cannot use topic '%s': %s", cfg->topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    return s;

fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    sender_destroy(s);
    return NULL;
}

enum sender_result sender_send(sender_t *s, char *payload, size_t len, const char *user,
                               const char *id, long line)
{
    size_t idlen = strlen(id);
    struct msg_info *info = xmalloc(sizeof(*info) + idlen + 1);

    info->line = line;
    memcpy(info->id, id, idlen + 1);

    for (;;) {
        if (s->fatal) {
            free(payload);
            free(info);
            return SEND_FATAL;
        }
        /* F_FREE: librdkafka frees the payload once it is done with it. */
        if (rd_kafka_produce(s->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_FREE, payload, len,
                             user, strlen(user), info) == 0) {
            s->sent++;
            return SEND_OK;
        }
        rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Never drop: wait for deliveries to make room. A signal ends the
             * wait so that an unreachable broker cannot hold us here forever. */
            if (*s->interrupted) {
                free(payload);
                free(info);
                return SEND_STOPPED;
            }
            rd_kafka_poll(s->rk, 100);
            continue;
        }
        free(payload);
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
            s->fatal = 1;
            free(info);
            return SEND_FATAL;
        }
        s->sent++;
        note_failure(s, err, info);
        free(info);
        return SEND_FAILED;
    }
}

void sender_poll(sender_t *s, int wait_ms)
{
    rd_kafka_poll(s->rk, wait_ms);
}

void sender_flush(sender_t *s)
{
    sig_atomic_t signals_before = *s->interrupted;
    int64_t deadline = now_mono_ms() + s->timeout_ms + FLUSH_MARGIN_MS;

    while (rd_kafka_flush(s->rk, 100) == RD_KAFKA_RESP_ERR__TIMED_OUT) {
        if (*s->interrupted != signals_before) {
            s->withdrawn_why = "interrupted while waiting for the broker to confirm it";
            break;
        }
        if (s->timeout_ms > 0 && now_mono_ms() >= deadline) { /* 0: -X asked for no limit */
            s->withdrawn_why = "still not confirmed by the broker when the delivery timeout "
                               "ran out";
            break;
        }
    }
    if (s->withdrawn_why) {
        /* Withdraw the rest: each comes back as a failed delivery report. */
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(s->rk, PURGE_WAIT_MS);
    }
    fflush(stdout);
}

void sender_get_stats(const sender_t *s, struct sender_stats *st)
{
    st->sent = s->sent;
    st->delivered = s->delivered;
    st->failed = s->failed;
    st->fatal = s->fatal;
}

static int broker_unreachable(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
           err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__RESOLVE ||
           err == RD_KAFKA_RESP_ERR__TIMED_OUT || withdrawn(err);
}

/* Asks the broker whether the topic exists: a producer waits for an unknown
 * topic to appear until its messages time out, which alone says little. */
static int topic_missing(sender_t *s)
{
    const struct rd_kafka_metadata *md = NULL;
    int missing = 0;

    if (rd_kafka_metadata(s->rk, 0, s->rkt, &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    if (md->topic_cnt == 1 && (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                               md->topics[0].err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC))
        missing = 1;
    rd_kafka_metadata_destroy(md);
    return missing;
}

void sender_report(sender_t *s)
{
    char hint[2048] = "";
    size_t top = 0;

    if (s->failed == 0)
        return;
    for (size_t i = 1; i < s->nerrors; i++) {
        if (s->errors[i].count > s->errors[top].count)
            top = i;
    }
    rd_kafka_resp_err_t err = s->nerrors ? s->errors[top].err : RD_KAFKA_RESP_ERR_UNKNOWN;

    if (err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
        err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        snprintf(hint, sizeof(hint),
                 " (does topic '%s' exist? create it, or let the broker create topics)",
                 s->topic);
    else if (broker_unreachable(err) && s->broker_error[0])
        snprintf(hint, sizeof(hint), " (is the broker at %s running? last error: %s)",
                 s->brokers, s->broker_error);
    else if (broker_unreachable(err) && topic_missing(s))
        snprintf(hint, sizeof(hint),
                 " (topic '%s' does not exist at %s: create it, or let the broker create "
                 "topics)",
                 s->topic, s->brokers);
    else if (broker_unreachable(err)) {
        pthread_mutex_lock(&s->lock);
        snprintf(hint, sizeof(hint),
                 " (the broker at %s did not confirm in time: does topic '%s' exist, and "
                 "does each partition have a leader?%s%s)",
                 s->brokers, s->topic, s->last_warning[0] ? " last warning: " : "",
                 s->last_warning);
        pthread_mutex_unlock(&s->lock);
    }
    else if (s->fatal)
        snprintf(hint, sizeof(hint), " (%s)", s->broker_error);

    fprintf(stderr, "producer: %lu of %lu notification%s not delivered: %s%s\n", s->failed,
            s->sent, s->sent == 1 ? "" : "s", describe(s, err), hint);
    for (size_t i = 0; i < s->nerrors; i++) {
        if (i != top)
            fprintf(stderr, "producer: also %lu not delivered: %s\n", s->errors[i].count,
                    describe(s, s->errors[i].err));
    }
}

void sender_destroy(sender_t *s)
{
    if (!s)
        return;
    if (s->rkt)
        rd_kafka_topic_destroy(s->rkt);
    if (s->rk)
        rd_kafka_destroy(s->rk);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
