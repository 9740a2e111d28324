/* Reading Kafka frames and setting the broker ports of two responses. */
#include "kafka_wire.h"


/* A cursor over one frame; any read past its end marks it bad. */
struct cur {
    unsigned char *p;
    size_t len, at;
    int bad;
    int write; /* set_port writes (the second pass) or only checks */
};

static uint64_t be(struct cur *c, size_t n)
{
    uint64_t v = 0;
    if (c->bad || c->len - c->at < n) {
        c->bad = 1;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v = v << 8 | c->p[c->at + i];
    c->at += n;
    return v;
}

static void skip(struct cur *c, size_t n)
{
    if (c->bad || c->len - c->at < n)
        c->bad = 1;
    else
        c->at += n;
}

static uint64_t uvarint(struct cur *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint64_t b = be(c, 1);
        v |= (b & 0x7f) << shift;
        if (c->bad || !(b & 0x80))
            return v;
    }
    c->bad = 1;
    return 0;
}

/* A string: compact (length + 1 as a varint, 0 for null) or classic
 * (int16 length, -1 for null). */
static void skip_string(struct cur *c, int compact)
{
    if (compact) {
        uint64_t n = uvarint(c);
        if (n)
            skip(c, (size_t)(n - 1));
    } else {
        int16_t n = (int16_t)be(c, 2);
        if (n > 0)
            skip(c, (size_t)n);
    }
}

static void skip_tags(struct cur *c)
{
    for (uint64_t n = uvarint(c); n && !c->bad; n--) {
        uvarint(c); /* tag */
        skip(c, (size_t)uvarint(c));
    }
}

static void set_port(struct cur *c, int32_t port)
{
    if (c->bad || c->len - c->at < 4) {
        c->bad = 1;
        return;
    }
    uint32_t v = (uint32_t)port;
    for (int i = 0; c->write && i < 4; i++)
        c->p[c->at + i] = (unsigned char)(v >> (24 - 8 * i));
    c->at += 4;
}

size_t kafka_wire_frame_len(const unsigned char *buf, size_t len)
{
    if (len < 4)
        return 0;
    return 4 + ((size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3]);
}

int kafka_wire_request(const unsigned char *frame, size_t len, int16_t *api_key,
                       int16_t *api_version, int32_t *correlation_id)
{
    struct cur c = {(unsigned char *)frame, len, 4, 0, 0};
    *api_key = (int16_t)be(&c, 2);
    *api_version = (int16_t)be(&c, 2);
    *correlation_id = (int32_t)be(&c, 4);
    return c.bad ? -1 : 0;
}

int kafka_wire_produce_acks(const unsigned char *frame, size_t len, int16_t v, int16_t *acks)
{
    struct cur c = {(unsigned char *)frame, len, 12, 0, 0}; /* after size, key, version, id */
    int flex = v >= 9;
    skip_string(&c, 0); /* client_id: classic in every request header */
    if (flex)
        skip_tags(&c); /* request header v2 */
    if (v >= 3)
        skip_string(&c, flex); /* transactional_id */
    *acks = (int16_t)be(&c, 2);
    return c.bad ? -1 : 0;
}

int kafka_wire_response_id(const unsigned char *frame, size_t len, int32_t *correlation_id)
{
    struct cur c = {(unsigned char *)frame, len, 4, 0, 0};
    *correlation_id = (int32_t)be(&c, 4);
    return c.bad ? -1 : 0;
}

/* One broker of a Metadata response: node_id, host, port, rack. */
static void metadata_broker(struct cur *c, int16_t v, int flex, int32_t port)
{
    skip(c, 4);
    skip_string(c, flex);
    set_port(c, port);
    if (v >= 1)
        skip_string(c, flex);
    if (flex)
        skip_tags(c);
}

/* Walks the response, setting the ports when write is set. */
static int walk(unsigned char *frame, size_t len, int16_t key, int16_t v, int32_t port, int write)
{
    struct cur c = {frame, len, 8, 0, write}; /* after the size and the correlation id */
    int flex = key == KAFKA_METADATA ? v >= 9 : v >= 3;
    int set = 0;

    if (flex)
        skip_tags(&c); /* response header v1 */
    if (key == KAFKA_METADATA) {
        if (v >= 3)
            skip(&c, 4); /* throttle_time_ms */
        uint64_t n = flex ? uvarint(&c) - 1 : (uint64_t)(int32_t)be(&c, 4);
        for (uint64_t i = 0; i < n && !c.bad && n < 100000; i++, set++)
            metadata_broker(&c, v, flex, port);
    } else if (key == KAFKA_FIND_COORDINATOR && v >= 4) {
        skip(&c, 4); /* throttle_time_ms */
        uint64_t n = uvarint(&c) - 1;
        for (uint64_t i = 0; i < n && !c.bad && n < 100000; i++, set++) {
            skip_string(&c, 1); /* key */
            skip(&c, 4);        /* node_id */
            skip_string(&c, 1); /* host */
            set_port(&c, port);
            skip(&c, 2);        /* error_code */
            skip_string(&c, 1); /* error_message */
            skip_tags(&c);
        }
    } else if (key == KAFKA_FIND_COORDINATOR) {
        if (v >= 1)
            skip(&c, 4); /* throttle_time_ms */
        skip(&c, 2);     /* error_code */
        if (v >= 1)
            skip_string(&c, flex); /* error_message */
        skip(&c, 4);               /* node_id */
        skip_string(&c, flex);     /* host */
        set_port(&c, port);
        set = 1;
    } else {
        return -1;
    }
    return c.bad ? -1 : set;
}

int kafka_wire_set_ports(unsigned char *frame, size_t len, int16_t key, int16_t v, int32_t port)
{
    /* Checked whole first, so a frame that does not parse stays as it was. */
    if (walk(frame, len, key, v, port, 0) < 0)
        return -1;
    return walk(frame, len, key, v, port, 1);
}
