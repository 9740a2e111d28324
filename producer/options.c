#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errstr.h"
#include "kafka_props.h"
#include "notification.h"
#include "timeutil.h"
#include "xalloc.h"

/* Codes for options that have no short form. */
enum {
    OPT_TYPE = 256,
    OPT_ID,
    OPT_DATA,
    OPT_STDIN,
    OPT_USERS,
    OPT_TIMEOUT,
    OPT_TOKEN_FOR,
    OPT_TOKEN_TTL,
    OPT_SECRET_FILE,
    OPT_KAFKA_CONFIG,
    OPT_USER_IDS,
    OPT_ROOM,
    OPT_BROADCAST,
    OPT_TTL,
    OPT_EXPIRES_AT,
};

#define COUNT_MAX 1000000000UL
#define USERS_MAX 1000000UL
#define TOPIC_MAX 249 /* Kafka's limit on a topic name */
#define TIMEOUT_MIN_MS 100
#define TIMEOUT_MAX_MS 2147483647L /* message.timeout.ms is an int */
#define TOKEN_TTL_MAX (366L * 86400)
#define USER_IDS_MAX 100000UL
#define TTL_MAX (100L * 366 * 86400)

/* One setting: how it is spelled on the command line and in the
 * environment, its default and its help. --help is printed from this
 * table and parsing reads it, so the two cannot drift apart. */
struct setting {
    const char *group; /* starts a new section of --help when set */
    const char *name;  /* long option */
    int code;          /* short option letter, or OPT_* */
    const char *arg;   /* the argument's name, or NULL for a switch */
    const char *env;   /* environment variable read before the flags, or NULL */
    const char *def;   /* default shown in --help, or NULL */
    const char *help;
};

static const struct setting settings[] = {
    {"One notification", "user", 'u', "ID", NULL, NULL,
     "the user to notify: letters, digits and . _ - @ : + ~, up to 128"},
    {NULL, "user-ids", OPT_USER_IDS, "A,B,...", NULL, NULL,
     "instead of --user: each of these users gets a personal copy (same id)"},
    {NULL, "room", OPT_ROOM, "NAME", NULL, NULL,
     "instead of --user: the members of a room (1 to 64 letters, digits or . _ -)"},
    {NULL, "broadcast", OPT_BROADCAST, NULL, NULL, NULL, "instead of --user: everyone"},
    {NULL, "message", 'm', "TEXT", NULL, NULL, "the text shown to the user"},
    {NULL, "type", OPT_TYPE, "TYPE", NULL, NULL, "a type for the client, up to 64 characters"},
    {NULL, "id", OPT_ID, "ID", NULL, "a new UUIDv7",
     "the notification's id, same characters as a user id"},
    {NULL, "data", OPT_DATA, "JSON", NULL, NULL,
     "any JSON value, passed to the client as \"data\""},
    {NULL, "ttl", OPT_TTL, "SECONDS", NULL, NULL,
     "expire it this long after it is sent: not delivered, not kept after that"},
    {NULL, "expires-at", OPT_EXPIRES_AT, "TIME", NULL, NULL,
     "instead of --ttl: expire it at TIME (ISO-8601, or epoch milliseconds)"},

    {"Many notifications from standard input", "stdin", OPT_STDIN, NULL, NULL, NULL,
     "read one JSON notification per line (also spelled -); the default when neither "
     "--message nor --count is given and standard input is not a terminal. See "
     "\"Standard input\" below"},

    {"Generated notifications, for trying out and load", "count", 'n', "N", NULL, NULL,
     "send N notifications \"Notification k of N\" to --user (with --type and --data "
     "if given)"},
    {NULL, "users", OPT_USERS, "K", NULL, NULL,
     "spread them over users ID-1 to ID-K in turn instead of ID itself"},

    {"Kafka", "brokers", 'b', "LIST", "KAFKA_BROKERS", OPT_DEFAULT_BROKERS,
     "bootstrap servers, host:port[,host:port...]"},
    {NULL, "topic", 't', "NAME", "KAFKA_TOPIC", OPT_DEFAULT_TOPIC, "topic to publish to"},
    {NULL, "timeout", OPT_TIMEOUT, "SECONDS", NULL, "30",
     "how long each notification may wait to be delivered (message.timeout.ms) before "
     "it counts as not delivered"},
    {NULL, "kafka-config", OPT_KAFKA_CONFIG, "FILE", "KAFKA_CONFIG", NULL,
     "librdkafka key=value lines (credentials: sasl.password...), kept off the command line; "
     "KAFKA_PROP_<NAME> variables are read too (KAFKA_PROP_SASL_PASSWORD is sasl.password)"},
    {NULL, NULL, 'X', "KEY=VALUE", NULL, NULL,
     "set a librdkafka property (applied after the options above, so it wins); "
     "repeatable; -X list prints them all"},

    {"A token for the gateway (--auth jwt with an HS256 secret), for demos and tests",
     "token-for", OPT_TOKEN_FOR, "USER", NULL, NULL,
     "print a token that lets USER connect, signed with JWT_SECRET (from the environment) "
     "or --jwt-secret-file, and exit; nothing is sent"},
    {NULL, "token-ttl", OPT_TOKEN_TTL, "SECONDS", NULL, "3600", "how long the token is valid"},
    {NULL, "jwt-secret-file", OPT_SECRET_FILE, "FILE", NULL, NULL,
     "file holding the secret, instead of JWT_SECRET"},

    {"Output", "quiet", 'q', NULL, NULL, NULL, "do not print the ids of delivered notifications"},
    {NULL, "verbose", 'v', NULL, NULL, NULL,
     "also log librdkafka's informational lines and a summary at the end"},
    {NULL, "help", 'h', NULL, NULL, NULL, "show this help and exit"},
    {NULL, "version", 'V', NULL, NULL, NULL, "show the version and exit"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const char usage_head[] =
    "Usage: producer [OPTION]... --user ID --message TEXT   send one notification\n"
    "       producer [OPTION]... [--stdin | -] < FILE        send one per line of JSON\n"
    "       producer [OPTION]... --count N --user ID         send N generated ones\n"
    "\n"
    "Publishes notifications to Kafka for the notification gateway. Each is sent as\n"
    "{\"id\",\"userId\",\"message\",\"timestamp\",\"type\"?,\"data\"?} JSON by an idempotent\n"
    "producer that waits for every delivery report, keyed by its audience: the user\n"
    "id, room:NAME for --room, broadcast for --broadcast, the id for --user-ids. The\n"
    "id of each delivered notification is printed on standard output, one per line,\n"
    "in the order the broker confirms them: input order for any one key, interleaved\n"
    "between keys.\n";

static const char usage_tail[] =
    "\n"
    "Standard input:\n"
    "  One notification per line, as JSON in any form the gateway accepts:\n"
    "    {\"id\":\"n-1\",\"userId\":\"u1\",\"message\":\"hi\",\"timestamp\":\"2023-10-01T12:00:00Z\",\n"
    "     \"type\":\"greeting\",\"data\":{\"k\":1}}\n"
    "  \"id\" and \"timestamp\" may be left out: a new UUIDv7 and the current time are\n"
    "  filled in. \"user_id\" is accepted for \"userId\" and epoch milliseconds for\n"
    "  \"timestamp\". In place of \"userId\": \"userIds\":[...], \"room\" or\n"
    "  \"broadcast\":true; \"ttl\" (seconds) or \"expiresAt\" and \"from\" are passed on;\n"
    "  other fields are ignored. Blank lines are skipped. Lines are\n"
    "  sent as they are read, so input of any size works: an invalid line is\n"
    "  reported on stderr as stdin:LINE: what is wrong, and is not sent; the valid\n"
    "  lines are still sent, and the exit status is then 2.\n"
    "\n"
    "Exit status:\n"
    "  0    every notification was delivered\n"
    "  1    some notification was not delivered (broker unreachable, unknown topic,\n"
    "       timeout...): stderr says how many and why. Takes precedence over 2.\n"
    "  2    bad command line, bad -X property, or invalid input lines\n"
    "  130  interrupted (SIGINT or SIGTERM): input stopped and everything sent\n"
    "       before was delivered. A signal that comes while waiting for the broker\n"
    "       stops the wait: what is still unconfirmed counts as not delivered (1).\n"
    "\n"
    "Examples:\n"
    "  producer --user user1 --message \"Your order has shipped\" \\\n"
    "           --type order --data '{\"orderId\":42}'\n"
    "  printf '%s\\n' '{\"userId\":\"u1\",\"message\":\"hi\"}' | producer -t alerts\n"
    "  producer --room ops --message \"Deploy at 14:00\" --ttl 3600\n"
    "  producer --count 100000 --user load --users 1000 --quiet\n"
    "  KAFKA_BROKERS=kafka:9092 producer -X compression.codec=lz4 < notifications.jsonl\n"
    "  JWT_SECRET=... producer --token-for user1 --token-ttl 600\n";

/* Prints text word-wrapped to `width` columns, continuation lines indented
 * by `indent`; `col` is the column the cursor is already at. */
static void print_wrapped(FILE *fp, const char *text, int col, int indent, int width)
{
    const char *p = text;
    while (*p) {
        const char *word = p;
        while (*p && *p != ' ')
            p++;
        int wlen = (int)(p - word);
        if (col > indent && col + 1 + wlen > width) {
            fprintf(fp, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', fp);
            col++;
        }
        fprintf(fp, "%.*s", wlen, word);
        col += wlen;
        while (*p == ' ')
            p++;
    }
    fputc('\n', fp);
}

static void print_usage(FILE *fp)
{
    enum { HELP_COL = 26, WIDTH = 80 };
    char label[64];
    char extra[128];
    char help[512];

    fputs(usage_head, fp);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (s->group) {
            char heading[256];
            snprintf(heading, sizeof(heading), "%s:", s->group);
            fputc('\n', fp);
            print_wrapped(fp, heading, 0, 2, WIDTH);
        }
        if (s->code < 256 && s->name)
            snprintf(label, sizeof(label), "  -%c, --%s%s%s", s->code, s->name,
                     s->arg ? " " : "", s->arg ? s->arg : "");
        else if (s->name)
            snprintf(label, sizeof(label), "      --%s%s%s", s->name, s->arg ? " " : "",
                     s->arg ? s->arg : "");
        else
            snprintf(label, sizeof(label), "  -%c %s", s->code, s->arg);
        if (s->code == OPT_STDIN)
            snprintf(label, sizeof(label), "      --stdin, -");

        extra[0] = '\0';
        if (s->env && s->def)
            snprintf(extra, sizeof(extra), "(env %s; default: %s)", s->env, s->def);
        else if (s->def)
            snprintf(extra, sizeof(extra), "(default: %s)", s->def);
        snprintf(help, sizeof(help), "%s", s->help);

        int col = (int)strlen(label);
        fputs(label, fp);
        if (col + 2 > HELP_COL) {
            fprintf(fp, "\n%*s", HELP_COL, "");
        } else {
            fprintf(fp, "%*s", HELP_COL - col, "");
        }
        print_wrapped(fp, help, HELP_COL, HELP_COL, WIDTH);
        if (extra[0])
            fprintf(fp, "%*s%s\n", HELP_COL, "", extra);
    }
    fputs(usage_tail, fp);
}

/* A bad command line: errstr says why, and the caller exits with status 2
 * (OPTIONS_USAGE, not errstr_set's -1). */
#define fail(errstr, size, ...) (errstr_set(errstr, size, __VA_ARGS__), OPTIONS_USAGE)

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int topic_valid(const char *t)
{
    size_t len = strlen(t);
    if (len == 0 || len > TOPIC_MAX || strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Whether s is valid UTF-8 (jansson refuses to encode anything else). */
static int utf8_valid(const char *s)
{
    json_t *j = json_string(s);
    if (!j)
        return 0;
    json_decref(j);
    return 1;
}

/* --user-ids a,b,c: split into one allocation (pointers, then strings). */
static int parse_user_ids(producer_options_t *o, const char *val, const char *from, char *errstr,
                          size_t size)
{
    size_t count = 1, len = strlen(val);
    for (const char *p = val; *p; p++)
        count += *p == ',';
    if (count > USER_IDS_MAX)
        return fail(errstr, size, "%s names %zu users, more than %lu", from, count, USER_IDS_MAX);
    free(o->user_ids);
    o->user_ids = xmalloc(count * sizeof(char *) + len + 1);
    char *copy = memcpy(o->user_ids + count, val, len + 1);
    o->nuser_ids = 0;
    for (char *p = copy, *comma;; p = comma + 1) {
        comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!notification_user_valid(p, strlen(p)))
            return fail(errstr, size, "%s: '%s' is not a user id: 1 to %d letters, digits or "
                        ". _ - @ : + ~, separated by commas", from, p, NOTIF_USER_MAX);
        o->user_ids[o->nuser_ids++] = p;
        if (!comma)
            break;
    }
    const char *repeat = notification_repeated(o->user_ids, o->nuser_ids);
    return repeat ? fail(errstr, size, "%s names '%s' twice", from, repeat) : OPTIONS_RUN;
}

/* Applies one setting's value; `from` names where it came from, for errors. */
static int apply(producer_options_t *o, int code, const char *val, const char *from,
                 char *errstr, size_t size)
{
    unsigned long n;

    switch (code) {
    case 'b':
        if (!*val)
            return fail(errstr, size, "%s is empty: give host:port[,host:port...]", from);
        o->brokers = val;
        break;
    case 't':
        if (!topic_valid(val))
            return fail(errstr, size,
                        "%s '%s' is not a Kafka topic name: 1 to %d letters, digits, . _ -", from,
                        val, TOPIC_MAX);
        o->topic = val;
        break;
    case OPT_TIMEOUT: {
        char *end;
        errno = 0;
        double secs = strtod(val, &end);
        if (errno || end == val || *end || !(secs * 1000 >= TIMEOUT_MIN_MS) ||
            !(secs * 1000 <= (double)TIMEOUT_MAX_MS))
            return fail(errstr, size, "%s '%s' is not a number of seconds from %g to %ld", from,
                        val, TIMEOUT_MIN_MS / 1000.0, TIMEOUT_MAX_MS / 1000);
        o->timeout_ms = (int)(secs * 1000 + 0.5);
        break;
    }
    case 'u':
        if (!notification_user_valid(val, strlen(val)))
            return fail(errstr, size,
                        "%s '%s' is not a user id: 1 to %d letters, digits or . _ - @ : + ~",
                        from, val, NOTIF_USER_MAX);
        o->user = val;
        break;
    case OPT_USER_IDS:
        return parse_user_ids(o, val, from, errstr, size);
    case OPT_ROOM:
        if (!notification_room_valid(val, strlen(val)))
            return fail(errstr, size, "%s '%s' is not a room name: 1 to %d letters, digits or "
                        ". _ -", from, val, NOTIF_ROOM_MAX);
        o->room = val;
        break;
    case OPT_BROADCAST:
        o->broadcast = 1;
        break;
    case OPT_TTL:
        if (parse_ulong(val, 1, TTL_MAX, &n) != 0)
            return fail(errstr, size, "%s '%s' is not a number of seconds from 1 to %ld", from,
                        val, TTL_MAX);
        o->ttl_s = (long)n;
        break;
    case OPT_EXPIRES_AT: {
        int64_t ms;
        char check[ISO8601_LEN];
        unsigned long epoch;
        if (parse_ulong(val, 1, ULONG_MAX, &epoch) == 0)
            ms = (int64_t)epoch;
        else if (iso8601_parse(val, strlen(val), &ms) != 0)
            ms = -1;
        if (ms <= 0 || iso8601_from_ms(ms, check) != 0)
            return fail(errstr, size, "%s '%s' is not a time: ISO-8601 (2030-01-01T00:00:00Z) "
                        "or epoch milliseconds, 1970 to 9999", from, val);
        o->expires_ms = ms;
        break;
    }
    case 'm':
        if (!utf8_valid(val))
            return fail(errstr, size, "%s is not valid UTF-8", from);
        o->message = val;
        break;
    case OPT_TYPE:
        if (strlen(val) > NOTIF_TYPE_MAX || !utf8_valid(val))
            return fail(errstr, size, "%s must be valid UTF-8, at most %d bytes", from,
                        NOTIF_TYPE_MAX);
        o->type = val;
        break;
    case OPT_ID:
        if (!notification_id_valid(val, strlen(val)))
            return fail(errstr, size,
                        "%s '%s' is not an id: 1 to %d letters, digits or . _ - @ : + ~", from,
                        val, NOTIF_ID_MAX);
        o->id = val;
        break;
    case OPT_DATA: {
        json_error_t jerr;
        json_t *j = json_loads(val, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
            return fail(errstr, size, "%s is not valid JSON: %s (at character %d)", from,
                        jerr.text, jerr.position);
        free(o->data_json);
        o->data_json = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(j);
        if (!o->data_json)
            return fail(errstr, size, "out of memory");
        break;
    }
    case OPT_TOKEN_FOR:
        if (!notification_user_valid(val, strlen(val)))
            return fail(errstr, size,
                        "%s '%s' is not a user id: 1 to %d letters, digits or . _ - @ : + ~",
                        from, val, NOTIF_USER_MAX);
        o->token_for = val;
        break;
    case OPT_TOKEN_TTL:
        if (parse_ulong(val, 1, TOKEN_TTL_MAX, &n) != 0)
            return fail(errstr, size, "%s '%s' is not a number of seconds from 1 to %ld", from,
                        val, TOKEN_TTL_MAX);
        o->token_ttl_s = (long)n;
        break;
    case OPT_SECRET_FILE:
        o->jwt_secret_file = val;
        break;
    case OPT_KAFKA_CONFIG:
        o->kafka_config = val;
        break;
    case 'n':
        if (parse_ulong(val, 1, COUNT_MAX, &n) != 0)
            return fail(errstr, size, "%s '%s' is not a count from 1 to %lu", from, val,
                        COUNT_MAX);
        o->count = n;
        break;
    case OPT_USERS:
        if (parse_ulong(val, 1, USERS_MAX, &n) != 0)
            return fail(errstr, size, "%s '%s' is not a number of users from 1 to %lu", from,
                        val, USERS_MAX);
        o->users = n;
        break;
    case 'X': {
        if (strcmp(val, "list") == 0) {
            rd_kafka_conf_properties_show(stdout);
            return OPTIONS_EXIT;
        }
        const char *eq = strchr(val, '=');
        if (!eq || eq == val)
            return fail(errstr, size,
                        "-X needs KEY=VALUE, not '%s' (-X list shows the properties)", val);
        o->cli_props = xrealloc(o->cli_props, (o->ncli + 1) * sizeof(*o->cli_props));
        o->cli_props[o->ncli++] = val;
        break;
    }
    default:
        return fail(errstr, size, "internal error: unhandled option %d", code);
    }
    return OPTIONS_RUN;
}

/* Settles the mode and rejects combinations that would be silently ignored. */
static int choose_mode(producer_options_t *o, int want_stdin, int stdin_is_tty, char *errstr,
                       size_t size)
{
    if (o->token_for) {
        if (want_stdin || o->message || o->count)
            return fail(errstr, size, "--token-for prints a token and sends nothing: it cannot "
                                      "be combined with what to send");
        o->mode = MODE_TOKEN;
        return OPTIONS_RUN;
    }
    if (o->token_ttl_s != 3600 || o->jwt_secret_file)
        return fail(errstr, size, "--token-ttl and --jwt-secret-file go with --token-for");
    if (want_stdin && (o->message || o->count))
        return fail(errstr, size, "--stdin reads the notifications from standard input: "
                                  "it cannot be combined with %s",
                    o->message ? "--message" : "--count");
    if (o->message && o->count)
        return fail(errstr, size, "--message and --count cannot be combined: --count makes "
                                  "its own messages");
    if (o->users && !o->count)
        return fail(errstr, size, "--users only applies to --count");
    int audiences = !!o->user + !!o->nuser_ids + !!o->room + !!o->broadcast;
    if (audiences > 1)
        return fail(errstr, size, "--user, --user-ids, --room and --broadcast each name the "
                                  "audience: give one");
    if (o->ttl_s && o->expires_ms)
        return fail(errstr, size, "--ttl and --expires-at both say when it expires: give one");
    if (o->users && !o->user)
        return fail(errstr, size, "--users spreads --count over users made from --user");

    if (o->message) {
        o->mode = MODE_ONE;
        if (!audiences)
            return fail(errstr, size, "--message needs its audience: --user, --user-ids, "
                                      "--room or --broadcast");
        return OPTIONS_RUN;
    }
    if (o->count) {
        o->mode = MODE_COUNT;
        if (!audiences)
            return fail(errstr, size, "--count needs its audience: --user (with --users K, the "
                                      "prefix of the user ids), --user-ids, --room or "
                                      "--broadcast");
        if (o->id)
            return fail(errstr, size, "--id names one notification: --count makes a new id "
                                      "for each");
        if (o->users) {
            char last[NOTIF_USER_MAX * 2];
            int len = snprintf(last, sizeof(last), "%s-%lu", o->user, o->users);
            if (len < 0 || len > NOTIF_USER_MAX)
                return fail(errstr, size, "--user '%s' is too long to add -%lu to it (at most "
                                          "%d characters in all)",
                            o->user, o->users, NOTIF_USER_MAX);
        }
        return OPTIONS_RUN;
    }

    if (!want_stdin && stdin_is_tty)
        return fail(errstr, size, "nothing to send: give --user and --message, --count N, or "
                                  "JSON lines on standard input");
    o->mode = MODE_STDIN;
    /* Each line names its own user and fields: a flag for them would be ignored. */
    const char *ignored = o->user ? "--user" : o->nuser_ids ? "--user-ids" : o->room ? "--room"
                          : o->broadcast ? "--broadcast" : o->type ? "--type" : o->id ? "--id"
                          : o->data_json ? "--data" : o->ttl_s ? "--ttl"
                          : o->expires_ms ? "--expires-at" : NULL;
    if (ignored)
        return fail(errstr, size, "%s goes with --message or --count; reading standard input, "
                                  "each line gives its own fields%s",
                    ignored, want_stdin ? "" : " (did you forget --message?)");
    return OPTIONS_RUN;
}

static int add_quiet_prop(void *arg, const char *prop, char *errstr, size_t size)
{
    producer_options_t *o = arg;
    if (!strchr(prop, '=') || prop[0] == '=') {
        snprintf(errstr, size, "expected key=value");
        return -1;
    }
    o->props = xrealloc(o->props, (o->nprops + 1) * sizeof(*o->props));
    o->props[o->nprops++] = xstrdup(prop);
    o->nquiet++;
    return 0;
}

/* The file's, then the variables', then -X's: later ones win. */
static int load_props(producer_options_t *o, char *errstr, size_t size)
{
    extern char **environ;
    if (o->kafka_config &&
        kafka_props_from_file(o->kafka_config, add_quiet_prop, o, errstr, size) != 0)
        return OPTIONS_USAGE;
    if (kafka_props_from_env(environ, add_quiet_prop, o, errstr, size) != 0)
        return OPTIONS_USAGE;
    for (size_t i = 0; i < o->ncli; i++) {
        o->props = xrealloc(o->props, (o->nprops + 1) * sizeof(*o->props));
        o->props[o->nprops++] = o->cli_props[i];
    }
    return OPTIONS_RUN;
}

int options_parse(producer_options_t *o, int argc, char **argv, int stdin_is_tty, char *errstr,
                  size_t errstr_size)
{
    struct option longopts[NSETTINGS + 1];
    char shortopts[2 * NSETTINGS + 2];
    size_t nlong = 0, nshort = 0;
    int want_stdin = 0;
    int rc;

    memset(o, 0, sizeof(*o));
    o->brokers = OPT_DEFAULT_BROKERS;
    o->topic = OPT_DEFAULT_TOPIC;
    o->timeout_ms = OPT_DEFAULT_TIMEOUT_MS;
    o->token_ttl_s = 3600;

    /* The environment first, so that flags override it. An empty variable
     * counts as unset, as docker-compose files often leave them. */
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *v = settings[i].env ? getenv(settings[i].env) : NULL;
        if (v && *v) {
            rc = apply(o, settings[i].code, v, settings[i].env, errstr, errstr_size);
            if (rc != OPTIONS_RUN)
                return rc;
        }
    }

    /* A leading ':' makes getopt report a missing argument as ':' and stay quiet. */
    shortopts[nshort++] = ':';
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (s->name)
            longopts[nlong++] = (struct option){s->name, s->arg ? required_argument : no_argument,
                                                NULL, s->code};
        if (s->code < 256) {
            shortopts[nshort++] = (char)s->code;
            if (s->arg)
                shortopts[nshort++] = ':';
        }
    }
    shortopts[nshort] = '\0';
    longopts[nlong] = (struct option){NULL, 0, NULL, 0};

    opterr = 0;
    optind = 1;
    for (;;) {
        int longindex = -1;
        int c = getopt_long(argc, argv, shortopts, longopts, &longindex);
        if (c == -1)
            break;
        const char *spelled = argv[optind - 1];
        switch (c) {
        case 'h':
            print_usage(stdout);
            return OPTIONS_EXIT;
        case 'V':
            printf("producer %s (librdkafka %s, jansson %s)\n", PRODUCER_VERSION,
                   rd_kafka_version_str(), JANSSON_VERSION);
            return OPTIONS_EXIT;
        case 'q':
            o->quiet = 1;
            break;
        case 'v':
            o->verbose = 1;
            break;
        case OPT_STDIN:
            want_stdin = 1;
            break;
        case ':':
            return fail(errstr, errstr_size, "option %s needs a value", spelled);
        case '?':
            if (strncmp(spelled, "--", 2) != 0 && optopt && optopt < 256)
                return fail(errstr, errstr_size, "unknown option -%c", optopt);
            if (optopt) /* a known long switch given a value: --quiet=1 */
                return fail(errstr, errstr_size, "option %.*s takes no value",
                            (int)strcspn(spelled, "="), spelled);
            return fail(errstr, errstr_size, "unknown or ambiguous option %s", spelled);
        default: {
            /* Name the option as the user wrote it: "--user", "-u", or "--user=x". */
            char from[64];
            if (longindex >= 0)
                snprintf(from, sizeof(from), "--%s", longopts[longindex].name);
            else
                snprintf(from, sizeof(from), "-%c", c);
            rc = apply(o, c, optarg, from, errstr, errstr_size);
            if (rc != OPTIONS_RUN)
                return rc;
        }
        }
    }

    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "-") == 0)
            want_stdin = 1;
        else
            return fail(errstr, errstr_size,
                        "unexpected argument '%s' (values go after their option, as in "
                        "--message \"some text\")",
                        argv[i]);
    }
    rc = load_props(o, errstr, errstr_size);
    if (rc != OPTIONS_RUN)
        return rc;
    return choose_mode(o, want_stdin, stdin_is_tty, errstr, errstr_size);
}

void options_free(producer_options_t *o)
{
    free(o->data_json);
    free(o->user_ids);
    for (size_t i = 0; i < o->nquiet; i++)
        free((char *)o->props[i]);
    free(o->props);
    free(o->cli_props);
    memset(o, 0, sizeof(*o));
}
