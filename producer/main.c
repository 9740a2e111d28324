/* producer: publishes notifications to Kafka for the notification gateway,
 * one from flags, many from JSON lines on standard input, or N generated
 * ones for load. Run with --help for the whole interface. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "input.h"
#include "log.h"
#include "notification.h"
#include "options.h"
#include "sender.h"
#include "timeutil.h"
#include "token.h"
#include "uuid7.h"

enum {
    EXIT_DELIVERED = 0,
    EXIT_UNDELIVERED = 1,
    EXIT_USAGE = 2, /* also invalid input */
    EXIT_INTERRUPTED = 130,
};

#define STDIN_WAIT_MS 200 /* how often a quiet stdin lets us serve delivery reports */

/* Counts SIGINT and SIGTERM: the first stops reading, a second stops waiting
 * for deliveries. Only read by the loops below. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    if (interrupted < 100)
        interrupted++;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a signal must wake the poll() on standard input. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A closed stdout must not kill us while notifications are in flight. */
    signal(SIGPIPE, SIG_IGN);
}

/* What happened to the input, beyond the sender's tally. */
struct run {
    unsigned long bad;     /* invalid input lines */
    long first_bad;        /* line number of the first */
    unsigned long lines;   /* non-blank input lines */
    int read_error;
    int stopped;           /* input not read to its end: a signal or a fatal error */
};

/* Renders n and queues it. Returns 0, 1 when n is too big to send (told on
 * stderr with `where`), or -1 when sending must stop. */
static int send_notification(sender_t *s, const notification_t *n, const char *where, long line)
{
    size_t len = 0;
    char *json = notification_to_json(n, 0, &len);

    if (len > NOTIF_JSON_MAX) {
        free(json);
        fprintf(stderr, "%s: notification is %zu bytes as JSON, more than the limit of %d\n",
                where, len, NOTIF_JSON_MAX);
        return 1;
    }
    char key[NOTIF_ID_MAX + 1];
    notification_kafka_key(n, key);
    switch (sender_send(s, json, len, key, n->id, line)) {
    case SEND_OK:
    case SEND_FAILED: /* counted and told by the sender */
        return 0;
    case SEND_STOPPED:
    case SEND_FATAL:
        break;
    }
    return -1;
}

/* The flags' notification without id, time or message. It borrows o's
 * strings, so it is not cleared. */
static void from_flags(const producer_options_t *o, notification_t *n)
{
    memset(n, 0, sizeof(*n));
    if (o->user) {
        n->audience = NOTIF_TO_USER;
        snprintf(n->user, sizeof(n->user), "%s", o->user);
    } else if (o->nuser_ids) {
        n->audience = NOTIF_TO_USERS;
        n->user_ids = o->user_ids; /* only read */
        n->nuser_ids = o->nuser_ids;
    } else if (o->room) {
        n->audience = NOTIF_TO_ROOM;
        snprintf(n->room, sizeof(n->room), "%s", o->room);
    } else {
        n->audience = NOTIF_TO_BROADCAST;
    }
    if (o->type)
        snprintf(n->type, sizeof(n->type), "%s", o->type);
    n->data_json = o->data_json;
    n->ttl_ms = o->ttl_s * 1000LL;
    n->expires_ms = o->expires_ms;
}

/* --message: one notification. */
static void run_one(sender_t *s, const producer_options_t *o, struct run *r)
{
    notification_t n;

    from_flags(o, &n);
    if (o->id)
        snprintf(n.id, sizeof(n.id), "%s", o->id);
    else
        uuid7_generate(n.id);
    notification_set_time(&n, now_wall_ms());
    n.message = (char *)o->message; /* only read */

    int rc = send_notification(s, &n, "producer", 0);
    if (rc > 0)
        r->bad++;
    else if (rc < 0)
        r->stopped = 1;
}

/* --count N: generated notifications, spread over --users if given. */
static void run_count(sender_t *s, const producer_options_t *o, struct run *r)
{
    char message[64];
    notification_t n;
    unsigned long k;

    from_flags(o, &n);
    n.message = message;

    for (k = 1; k <= o->count && !interrupted; k++) {
        if (o->users)
            snprintf(n.user, sizeof(n.user), "%s-%lu", o->user, (k - 1) % o->users + 1);
        snprintf(message, sizeof(message), "Notification %lu of %lu", k, o->count);
        uuid7_generate(n.id);
        notification_set_time(&n, now_wall_ms());
        int rc = send_notification(s, &n, "producer", 0);
        if (rc < 0)
            break;
        if (rc > 0) { /* only a huge --data can do this, and then every one is too big */
            r->bad++;
            break;
        }
        sender_poll(s, 0);
    }
    if (k <= o->count) {
        r->stopped = 1;
        struct sender_stats st;
        sender_get_stats(s, &st);
        fprintf(stderr, "producer: stopped after sending %lu of %lu notifications\n", st.sent,
                o->count);
    }
}

static int blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != ' ' && p[i] != '\t')
            return 0;
    }
    return 1;
}

static void bad_line(struct run *r, long lineno)
{
    if (r->bad++ == 0)
        r->first_bad = lineno;
}

/* JSON lines from standard input, sent as they are read. */
static void run_stdin(sender_t *s, struct run *r)
{
    input_t *in = input_new(STDIN_FILENO, NOTIF_JSON_MAX);
    char errstr[256];
    char where[48];
    notification_t n;
    char *line;
    size_t len;

    while (!interrupted) {
        enum input_result got = input_next(in, &line, &len, STDIN_WAIT_MS);
        long lineno = input_lineno(in);

        if (got == INPUT_AGAIN) {
            /* Input is slow: let deliveries through and show their ids now. */
            sender_poll(s, 0);
            fflush(stdout);
            continue;
        }
        if (got == INPUT_EOF)
            break;
        if (got == INPUT_ERROR) {
            fprintf(stderr, "producer: cannot read standard input after line %ld: %s\n", lineno,
                    strerror(errno));
            r->read_error = 1;
            break;
        }
        if (got == INPUT_TOO_LONG) {
            r->lines++;
            fprintf(stderr, "stdin:%ld: line is longer than %d bytes, the limit for one "
                            "notification\n",
                    lineno, NOTIF_JSON_MAX);
            bad_line(r, lineno);
            continue;
        }

        if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3; /* a UTF-8 byte order mark, as some editors write */
            len -= 3;
        }
        if (blank(line, len))
            continue;
        r->lines++;
        if (notification_parse(line, len, NOTIF_FILL_ID | NOTIF_FILL_TIMESTAMP, &n, errstr,
                               sizeof(errstr)) != 0) {
            fprintf(stderr, "stdin:%ld: %s\n", lineno, errstr);
            bad_line(r, lineno);
            continue;
        }
        snprintf(where, sizeof(where), "stdin:%ld", lineno);
        int rc = send_notification(s, &n, where, lineno);
        notification_clear(&n);
        if (rc > 0)
            bad_line(r, lineno);
        if (rc < 0) {
            fprintf(stderr, "producer: stopped reading standard input at line %ld, which was "
                            "not sent\n",
                    lineno);
            r->stopped = 1;
            break;
        }
        sender_poll(s, 0);
    }
    if (interrupted && !r->stopped) {
        fprintf(stderr, "producer: stopped reading standard input after line %ld\n",
                input_lineno(in));
        r->stopped = 1;
    }
    input_free(in);
}

/* --token-for: the secret from --jwt-secret-file or JWT_SECRET, never the
 * command line. */
static int print_token(const producer_options_t *o)
{
    char secret[4096], token[2048];
    size_t len = 0;
    const char *env = getenv("JWT_SECRET");
    if (o->jwt_secret_file) {
        FILE *f = fopen(o->jwt_secret_file, "rb");
        if (!f) {
            fprintf(stderr, "producer: cannot open %s: %s\n", o->jwt_secret_file, strerror(errno));
            return EXIT_USAGE;
        }
        len = fread(secret, 1, sizeof(secret), f);
        fclose(f);
        while (len && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
            len--;
    } else if (env && *env) {
        len = strlen(env);
        if (len > sizeof(secret))
            len = sizeof(secret);
        memcpy(secret, env, len);
    } else {
        fprintf(stderr, "producer: --token-for needs the gateway's secret: set JWT_SECRET or "
                        "give --jwt-secret-file\n");
        return EXIT_USAGE;
    }
    if (len < 32) {
        fprintf(stderr, "producer: the secret is shorter than 32 bytes; the gateway refuses "
                        "such a secret\n");
        return EXIT_USAGE;
    }
    int64_t now = now_wall_ms() / 1000;
    if (token_mint(o->token_for, now, o->token_ttl_s, (unsigned char *)secret, len, token,
                   sizeof(token)) != 0) {
        fprintf(stderr, "producer: could not make the token\n");
        return EXIT_USAGE;
    }
    printf("%s\n", token);
    return EXIT_DELIVERED;
}

int main(int argc, char **argv)
{
    producer_options_t o;
    char errstr[1024];
    struct run r;
    int64_t started = now_mono_ms();

    int rc = options_parse(&o, argc, argv, isatty(STDIN_FILENO), errstr, sizeof(errstr));
    if (rc == OPTIONS_EXIT) {
        options_free(&o);
        return EXIT_DELIVERED;
    }
    if (rc != OPTIONS_RUN) {
        fprintf(stderr, "producer: %s\nTry 'producer --help' for more information.\n", errstr);
        options_free(&o);
        return EXIT_USAGE;
    }

    if (o.mode == MODE_TOKEN) {
        rc = print_token(&o);
        options_free(&o);
        return rc;
    }

    install_signals();
    sender_config_t cfg = {
        .brokers = o.brokers,
        .topic = o.topic,
        .timeout_ms = o.timeout_ms,
        .props = o.props,
        .nprops = o.nprops,
        .nquiet = o.nquiet,
        .quiet = o.quiet,
        .verbose = o.verbose,
        .interrupted = &interrupted,
    };
    sender_t *s = sender_new(&cfg, errstr, sizeof(errstr));
    if (!s) {
        fprintf(stderr, "producer: %s\nTry 'producer -X list' for the properties.\n", errstr);
        options_free(&o);
        return EXIT_USAGE;
    }

    memset(&r, 0, sizeof(r));
    switch (o.mode) {
    case MODE_ONE:
        run_one(s, &o, &r);
        break;
    case MODE_COUNT:
        run_count(s, &o, &r);
        break;
    case MODE_STDIN:
        run_stdin(s, &r);
        break;
    case MODE_TOKEN: /* handled above */
        break;
    }

    sender_flush(s);
    struct sender_stats st;
    sender_get_stats(s, &st);
    sender_report(s);
    if (st.fatal && st.failed == 0)
        fprintf(stderr, "producer: the Kafka producer stopped: nothing more could be sent\n");

    if (o.mode == MODE_STDIN) {
        if (r.bad)
            fprintf(stderr, "producer: %lu of %lu input lines invalid and not sent (the first "
                            "at stdin:%ld)\n",
                    r.bad, r.lines, r.first_bad);
        else if (r.lines == 0 && !r.read_error && !r.stopped)
            fprintf(stderr, "producer: standard input held no notifications: nothing sent\n");
    }
    if (o.verbose)
        log_info("%lu of %lu notifications delivered to topic %s in %lld ms", st.delivered,
                 st.sent, o.topic, (long long)(now_mono_ms() - started));
    if (interrupted && st.failed == 0)
        fprintf(stderr, "producer: interrupted: all %lu notifications sent were delivered\n",
                st.delivered);

    sender_destroy(s);
    options_free(&o);

    if (st.failed || st.fatal)
        return EXIT_UNDELIVERED;
    if (r.bad || r.read_error)
        return EXIT_USAGE;
    if (interrupted)
        return EXIT_INTERRUPTED;
    return EXIT_DELIVERED;
}
