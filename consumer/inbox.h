/* What one gateway sends another through <topic>.inbox.<node-id>
 * (docs/adr/0001), as the record's value; the key is the user (or the
 * stream), so a user's records stay in order. The value is one text line,
 *   KIND SEQ KAFKA_MS EXPIRES_MS IDLEN STREAMLEN TYPELEN\n
 * then the id, the stream, the type and the frame, back to back (lengths
 * rather than separators: a type may hold any character). Pure: encoded
 * and decoded without librdkafka. */
#ifndef CONSUMER_INBOX_H
#define CONSUMER_INBOX_H

#include <stddef.h>
#include <stdint.h>

#include "hub.h"

enum inbox_kind {
    INBOX_NOTIFY,     /* a personal notification for a user held there */
    INBOX_STREAM,     /* a room or broadcast notification, durable in the store */
    INBOX_ACK,        /* the user acknowledged id on another node */
    INBOX_DISCONNECT, /* close the user's tabs */
    INBOX_WAKE,       /* the sender stored the user's notifications: replay them */
    INBOX_RELAY,      /* a notification a node passes on from an inbox: not again */
};

/* The value for m (its id, stream, type, seq, Kafka timestamp, expiry and
 * frame) as kind: a malloc'ed buffer, its length in *len. For ACK,
 * DISCONNECT and WAKE only m's id (ACK) counts. */
char *inbox_encode(enum inbox_kind kind, const hub_msg_t *m, size_t *len);

/* One inbox record into *out (its strings owned: record_msg_clear; the user
 * the key; partition and offset -1, for the caller to set to the inbox
 * record's) and its kind. 0, or -1 with errstr for a value that is not one. */
int inbox_decode(const void *key, size_t klen, const void *value, size_t len, hub_msg_t *out,
                 enum inbox_kind *kind, char *errstr, size_t size);

#endif
