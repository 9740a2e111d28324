/* The metrics table and its Prometheus text rendering. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Everything one rendering reads, taken once. */
struct snapshot {
    const struct routes_view *v;
    struct kafka_status kafka;
    struct store_health store;
};

typedef double value_fn(const struct snapshot *s);

struct metric {
    const char *name;
    const char *type; /* "counter" or "gauge" */
    const char *help;
    const char *labels; /* "" or "{reason=\"origin\"}" */
    value_fn *value;
};

#define P(s) ((s)->v->pipe)
#define WS(s) ((s)->v->ws)

static double consumed(const struct snapshot *s) { return (double)P(s)->count.consumed; }
static double pushed(const struct snapshot *s) { return (double)WS(s)->pushed; }
static double acked(const struct snapshot *s) { return (double)WS(s)->acked; }
static double stored(const struct snapshot *s) { return (double)P(s)->count.stored; }
static double replayed(const struct snapshot *s) { return (double)P(s)->count.replayed; }
static double dead_lettered(const struct snapshot *s) { return (double)s->kafka.dead_lettered; }
static double acked_dropped(const struct snapshot *s) { return (double)WS(s)->acked_dropped; }
static double expired(const struct snapshot *s)
{
    return (double)(s->kafka.expired + s->store.expired);
}
static double receipts_sent(const struct snapshot *s)
{
    return (double)events_sent(P(s)->events);
}
static double history_dropped(const struct snapshot *s)
{
    return (double)store_worker_history_dropped(P(s)->store);
}
static double receipts_dropped(const struct snapshot *s)
{
    return (double)events_dropped(P(s)->events);
}
static double connections(const struct snapshot *s) { return (double)hub_conn_count(P(s)->hub); }
static double users(const struct snapshot *s) { return (double)hub_user_count(P(s)->hub); }
static double inflight(const struct snapshot *s) { return (double)hub_inflight_count(P(s)->hub); }
static double store_backlog(const struct snapshot *s)
{
    return (double)store_worker_backlog(P(s)->store);
}
static double store_failures(const struct snapshot *s) { return (double)s->store.failures; }
static double store_failing(const struct snapshot *s) { return s->store.failing; }
static double kafka_pending(const struct snapshot *s) { return (double)s->kafka.pending; }
static double partitions(const struct snapshot *s) { return s->kafka.assigned; }
static double kafka_unreachable(const struct snapshot *s) { return s->kafka.unreachable; }
static double memory_budget(const struct snapshot *s) { return (double)P(s)->budget.limit; }
static double memory_used(const struct snapshot *s) { return (double)budget_used(&P(s)->budget); }
static double intake_paused(const struct snapshot *s) { return budget_full(&P(s)->budget); }
#define MEMORY_PART(name, part)                                                                \
    static double name(const struct snapshot *s)                                               \
    {                                                                                          \
        return (double)budget_part(&P(s)->budget, part);                                       \
    }
MEMORY_PART(memory_handoff, BUDGET_HANDOFF)
MEMORY_PART(memory_windows, BUDGET_WINDOWS)
MEMORY_PART(memory_held, BUDGET_HELD)
MEMORY_PART(memory_storing, BUDGET_STORE)
static double refused_origin(const struct snapshot *s) { return (double)WS(s)->refused.origin; }
static double refused_limit(const struct snapshot *s)
{
    return (double)WS(s)->refused.address_limit;
}
static double refused_rate(const struct snapshot *s) { return (double)WS(s)->refused.address_rate; }
static double refused_token(const struct snapshot *s) { return (double)WS(s)->refused.token; }

static const struct metric metrics[] = {
    {"gateway_notifications_consumed_total", "counter", "Notifications taken from Kafka.", "",
     consumed},
    {"gateway_notifications_pushed_total", "counter",
     "Notification frames written to WebSocket connections.", "", pushed},
    {"gateway_notifications_acknowledged_total", "counter",
     "Acknowledgements that completed a notification.", "", acked},
    {"gateway_notifications_stored_total", "counter",
     "Notifications made durable in the offline store.", "", stored},
    {"gateway_notifications_replayed_total", "counter",
     "Notifications read back from the offline store for a replay.", "", replayed},
    {"gateway_notifications_dead_lettered_total", "counter",
     "Kafka records written to the dead-letter topic.", "", dead_lettered},
    {"gateway_acked_frames_dropped_total", "counter",
     "\"acked\" frames not sent to a tab that had 16 KB of control frames waiting.", "",
     acked_dropped},
    {"gateway_notifications_expired_total", "counter",
     "Notifications not delivered because their ttl or expiresAt had passed.", "", expired},
    {"gateway_history_dropped_total", "counter",
     "Acknowledged notifications not kept in the history: its queue was full.", "",
     history_dropped},
    {"gateway_receipts_sent_total", "counter",
     "Delivery receipts Kafka has (--events-topic).", "", receipts_sent},
    {"gateway_receipts_dropped_total", "counter",
     "Delivery receipts dropped: their queue was full or Kafka did not take them in time.", "",
     receipts_dropped},
    {"gateway_connections", "gauge", "Open WebSocket connections.", "", connections},
    {"gateway_users_online", "gauge", "Users with at least one connection.", "", users},
    {"gateway_notifications_in_flight", "gauge",
     "Notifications pushed or queued and not yet acknowledged.", "", inflight},
    {"gateway_store_backlog", "gauge", "Notifications handed to the store, not yet durable.", "",
     store_backlog},
    {"gateway_store_failures_total", "counter", "Offline-store calls that failed (each retried).",
     "", store_failures},
    {"gateway_store_failing", "gauge", "1 while the last call of a store lane failed.", "",
     store_failing},
    {"gateway_kafka_pending", "gauge",
     "Kafka records consumed whose offsets cannot be committed yet.", "", kafka_pending},
    {"gateway_kafka_partitions", "gauge", "Partitions assigned to this gateway.", "",
     partitions},
    {"gateway_kafka_unreachable", "gauge", "1 while no Kafka broker answers.", "",
     kafka_unreachable},
    {"gateway_memory_budget_bytes", "gauge", "The --memory-budget.", "", memory_budget},
    {"gateway_memory_used_bytes", "gauge", "Notifications held in memory, by the budget's cost.",
     "", memory_used},
    {"gateway_memory_part_bytes", "gauge",
     "The memory budget's use by part: handed over from Kafka, in connections' windows, held "
     "for a user, waiting for the store.",
     "{part=\"handoff\"}", memory_handoff},
    {"gateway_memory_part_bytes", "gauge", NULL, "{part=\"windows\"}", memory_windows},
    {"gateway_memory_part_bytes", "gauge", NULL, "{part=\"held\"}", memory_held},
    {"gateway_memory_part_bytes", "gauge", NULL, "{part=\"storing\"}", memory_storing},
    {"gateway_intake_paused", "gauge", "1 while the memory budget is spent and Kafka waits.", "",
     intake_paused},
    {"gateway_connections_refused_total", "counter", "WebSocket connections refused, by reason.",
     "{reason=\"origin\"}", refused_origin},
    {"gateway_connections_refused_total", "counter", NULL, "{reason=\"address_limit\"}",
     refused_limit},
    {"gateway_connections_refused_total", "counter", NULL, "{reason=\"address_rate\"}",
     refused_rate},
    {"gateway_connections_refused_total", "counter", NULL, "{reason=\"token\"}", refused_token},
};

/* Appends a formatted line when it fits. */
static size_t put(char *buf, size_t size, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t put(char *buf, size_t size, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = len < size ? vsnprintf(buf + len, size - len, fmt, ap) : -1;
    va_end(ap);
    return w > 0 && (size_t)w < size - len ? len + (size_t)w : len;
}

/* gateway_kafka_lag{partition="N"}: one sample per assigned partition. */
static size_t render_lag(const struct routes_view *v, char *buf, size_t size, size_t len)
{
    struct partition_lag lag[256];
    size_t n = kafka_lag(v->pipe->kafka, lag, 256);
    len = put(buf, size, len,
              "# HELP gateway_kafka_lag Records behind the end of each assigned "
              "partition (-1: not known yet).\n# TYPE gateway_kafka_lag gauge\n");
    for (size_t i = 0; i < n; i++)
        len = put(buf, size, len, "gateway_kafka_lag{partition=\"%d\"} %lld\n",
                  (int)lag[i].partition, (long long)lag[i].lag);
    return len;
}

/* One histogram's series: label is "" or `op="put",`; le is cumulative. */
static size_t render_histogram(char *buf, size_t size, size_t len, const char *name,
                               const char *label, const double *bounds, const unsigned long *le,
                               int nb, unsigned long count, double sum_s)
{
    for (int b = 0; b < nb; b++)
        len = put(buf, size, len, "%s_bucket{%sle=\"%g\"} %lu\n", name, label, bounds[b], le[b]);
    len = put(buf, size, len, "%s_bucket{%sle=\"+Inf\"} %lu\n", name, label, count);
    size_t at = strlen(label);
    char bare[64] = ""; /* the label without its trailing comma, in braces */
    if (at)
        snprintf(bare, sizeof(bare), "{%.*s}", (int)(at - 1), label);
    len = put(buf, size, len, "%s_sum%s %.6f\n", name, bare, sum_s);
    return put(buf, size, len, "%s_count%s %lu\n", name, bare, count);
}

/* gateway_store_call_seconds{op}: how long store calls take, by kind; and
 * gateway_delivery_seconds: Kafka's timestamp to the write to a tab. */
static size_t render_latencies(const struct routes_view *v, char *buf, size_t size, size_t len)
{
    static const char *const ops[] = {"put", "remove", "fetch"};
    len = put(buf, size, len,
                     "# HELP gateway_store_call_seconds Offline-store calls by kind (each "
                     "attempt), how long they took.\n# TYPE gateway_store_call_seconds "
                     "histogram\n");
    for (int op = 0; op < 3; op++) {
        struct store_latency l;
        char label[32];
        store_worker_latency(v->pipe->store, op, &l);
        snprintf(label, sizeof(label), "op=\"%s\",", ops[op]);
        len = render_histogram(buf, size, len, "gateway_store_call_seconds", label,
                               store_latency_bounds, l.le, STORE_LATENCY_BUCKETS, l.count, l.sum_s);
    }
    struct hub_latency e2e;
    hub_e2e_latency(v->pipe->hub, &e2e);
    len = put(buf, size, len,
              "# HELP gateway_delivery_seconds Live notifications, from their Kafka timestamp "
              "to each write to a tab.\n# TYPE gateway_delivery_seconds histogram\n");
    return render_histogram(buf, size, len, "gateway_delivery_seconds", "", hub_latency_bounds,
                            e2e.le, HUB_LATENCY_BUCKETS, e2e.count, e2e.sum_s);
}

size_t metrics_render(const struct routes_view *v, char *buf, size_t size)
{
    struct snapshot s = {v, kafka_status(v->pipe->kafka), store_worker_health(v->pipe->store)};
    size_t len = 0;
    for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
        const struct metric *m = &metrics[i];
        if (m->help) /* a family's first line: the rest share its HELP and TYPE */
            len = put(buf, size, len, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                      m->type);
        len = put(buf, size, len, "%s%s %.17g\n", m->name, m->labels, m->value(&s));
    }
    len = render_lag(v, buf, size, len);
    return render_latencies(v, buf, size, len);
}
