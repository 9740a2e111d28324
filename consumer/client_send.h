/* Notifications sent by clients ({"type":"send"}, client_msg.h): who may
 * send, how often, and the notification the gateway publishes for them.
 * Plain decisions, no sockets: ws_session.c asks, publishes and answers.
 *
 * The gateway, not the client, makes the id and sets "from" (the sender's
 * user) and the time; the audience's Kafka key keeps the receiver's
 * notifications in order (notification_kafka_key). */
#ifndef CONSUMER_CLIENT_SEND_H
#define CONSUMER_CLIENT_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "notification.h"

/* Sends per user: a token bucket of rate_per_s, holding twice that. */
typedef struct send_limiter send_limiter_t;

send_limiter_t *send_limiter_new(double rate_per_s);
void send_limiter_free(send_limiter_t *l);
/* Takes one send for user at now_ms (monotonic): 1, or 0 when the user
 * sent too fast. Users whose bucket is full again are forgotten, so the
 * limiter holds only those who sent lately. */
int send_limiter_take(send_limiter_t *l, const char *user, int64_t now_ms);
size_t send_limiter_users(const send_limiter_t *l);

/* The notification to publish for body (client_msg's) from user: parsed
 * as any notification is, then given a new id, "from" and the current
 * time. Returns 0 with *value (malloc'd JSON), *len, key and id set, or
 * -1 with errstr saying what is wrong. */
int client_send_build(const char *body, const char *from, char **value, size_t *len,
                      char key[NOTIF_ID_MAX + 1], char id[NOTIF_ID_MAX + 1], char *errstr,
                      size_t errstr_size);

#endif
