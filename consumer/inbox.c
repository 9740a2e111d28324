/* Encoding and decoding inbox records. */
#include "inbox.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errstr.h"
#include "notification.h"
#include "record.h"
#include "xalloc.h"

static const char *const kinds[] = {"notify", "stream", "ack", "disconnect", "wake", "relay"};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))
#define LINE_MAX_LEN 160

char *inbox_encode(enum inbox_kind kind, const hub_msg_t *m, size_t *len)
{
    int full = kind == INBOX_NOTIFY || kind == INBOX_STREAM || kind == INBOX_RELAY;
    const char *id = kind == INBOX_ACK || full ? m->id : "";
    const char *stream = full && m->stream ? m->stream : "";
    const char *type = full && m->type ? m->type : "";
    size_t idlen = strlen(id), slen = strlen(stream), tlen = strlen(type);
    size_t flen = full ? m->frame_len : 0;
    char line[LINE_MAX_LEN];
    int n = snprintf(line, sizeof(line), "%s %" PRId64 " %" PRId64 " %" PRId64 " %zu %zu %zu\n",
                     kinds[kind], full ? m->seq : 0, full ? m->kafka_ms : 0,
                     full ? m->expires_ms : 0, idlen, slen, tlen);
    char *buf = xmalloc((size_t)n + idlen + slen + tlen + flen);
    char *p = buf;
    memcpy(p, line, (size_t)n);
    p += n;
    memcpy(p, id, idlen);
    p += idlen;
    memcpy(p, stream, slen);
    p += slen;
    memcpy(p, type, tlen);
    p += tlen;
    if (flen)
        memcpy(p, m->frame, flen);
    *len = (size_t)n + idlen + slen + tlen + flen;
    return buf;
}

int inbox_decode(const void *key, size_t klen, const void *value, size_t len, hub_msg_t *out,
                 enum inbox_kind *kind, char *errstr, size_t size)
{
    const char *v = value;
    const char *nl = v ? memchr(v, '\n', len < LINE_MAX_LEN ? len : LINE_MAX_LEN) : NULL;
    char line[LINE_MAX_LEN], word[16];
    long long seq, kafka_ms, expires_ms;
    size_t idlen, slen, tlen;
    int used = 0;

    if (!nl)
        return errstr_set(errstr, size, "no header line");
    memcpy(line, v, (size_t)(nl - v));
    line[nl - v] = '\0';
    if (sscanf(line, "%15s %lld %lld %lld %zu %zu %zu%n", word, &seq, &kafka_ms, &expires_ms,
               &idlen, &slen, &tlen, &used) != 7 || line[used] != '\0')
        return errstr_set(errstr, size, "a header line that is not KIND SEQ KAFKA_MS "
                                        "EXPIRES_MS IDLEN STREAMLEN TYPELEN");
    size_t k = 0;
    while (k < NKINDS && strcmp(word, kinds[k]) != 0)
        k++;
    if (k == NKINDS)
        return errstr_set(errstr, size, "unknown kind \"%s\"", word);
    const char *p = nl + 1, *end = v + len;
    if (idlen > NOTIF_ID_MAX || slen > NOTIF_ROOM_MAX + 5 || tlen > NOTIF_TYPE_MAX ||
        idlen + slen + tlen > (size_t)(end - p))
        return errstr_set(errstr, size, "lengths past the record or the limits");
    if (!key || klen == 0 || klen > NOTIF_ROOM_MAX + 5 + NOTIF_USER_MAX)
        return errstr_set(errstr, size, "no key");
    int full = k == INBOX_NOTIFY || k == INBOX_STREAM || k == INBOX_RELAY;
    if ((full || k == INBOX_ACK) && idlen == 0)
        return errstr_set(errstr, size, "no id");
    if (k == INBOX_STREAM && slen == 0)
        return errstr_set(errstr, size, "a stream record without its stream");
    *out = (hub_msg_t){0};
    out->id = xstrndup(p, idlen);
    p += idlen;
    out->stream = slen ? xstrndup(p, slen) : NULL;
    p += slen;
    out->type = slen ? xstrndup(p, tlen) : NULL;
    p += tlen;
    out->user = k == INBOX_STREAM ? xstrdup("") : xstrndup(key, klen);
    out->frame = xstrndup(p, full ? (size_t)(end - p) : 0);
    out->frame_len = full ? (size_t)(end - p) : 0;
    out->seq = seq;
    out->kafka_ms = kafka_ms;
    out->expires_ms = expires_ms;
    out->partition = -1;
    out->offset = -1;
    *kind = (enum inbox_kind)k;
    return 0;
}
