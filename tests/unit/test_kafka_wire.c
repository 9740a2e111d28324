/* The embedded broker's view of the Kafka wire: frames, request headers,
 * and broker ports set in Metadata and FindCoordinator responses, classic
 * and flexible versions, frames that do not parse left alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "kafka_wire.h"

struct buf {
    unsigned char b[256];
    size_t n;
};

static void put(struct buf *b, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        b->b[b->n++] = (unsigned char)(v >> (8 * i));
}

static void str(struct buf *b, const char *s, int compact)
{
    size_t n = strlen(s);
    if (compact)
        put(b, n + 1, 1);
    else
        put(b, n, 2);
    memcpy(b->b + b->n, s, n);
    b->n += n;
}

static void done(struct buf *b) /* the size prefix */
{
    uint32_t size = (uint32_t)(b->n - 4);
    for (int i = 0; i < 4; i++)
        b->b[i] = (unsigned char)(size >> (24 - 8 * i));
}

static int32_t port_at(const struct buf *b, size_t at)
{
    return (int32_t)((uint32_t)b->b[at] << 24 | (uint32_t)b->b[at + 1] << 16 |
                     (uint32_t)b->b[at + 2] << 8 | b->b[at + 3]);
}

static void metadata_v2_ports_are_set(void **state)
{
    (void)state;
    struct buf b = {.n = 4};
    put(&b, 77, 4);              /* correlation id */
    put(&b, 2, 4);               /* two brokers */
    for (int i = 1; i <= 2; i++) {
        put(&b, (uint64_t)i, 4); /* node id */
        str(&b, "127.0.0.1", 0);
        put(&b, 40000 + (uint64_t)i, 4);
        put(&b, 0xffff, 2);      /* rack: null */
    }
    put(&b, 0xffff, 2);          /* cluster id (not read) */
    done(&b);
    assert_int_equal(kafka_wire_frame_len(b.b, b.n), b.n);
    int32_t id;
    assert_int_equal(kafka_wire_response_id(b.b, b.n, &id), 0);
    assert_int_equal(id, 77);
    assert_int_equal(kafka_wire_set_ports(b.b, b.n, KAFKA_METADATA, 2, 9092), 2);
    assert_int_equal(port_at(&b, 8 + 4 + 4 + 2 + 9), 9092);
    assert_int_equal(port_at(&b, 8 + 4 + (4 + 11 + 4 + 2) + 4 + 11), 9092);
}

static void metadata_v9_flexible_ports_are_set(void **state)
{
    (void)state;
    struct buf b = {.n = 4};
    put(&b, 5, 4);   /* correlation id */
    put(&b, 0, 1);   /* header tags */
    put(&b, 0, 4);   /* throttle */
    put(&b, 2, 1);   /* one broker (compact: n + 1) */
    put(&b, 1, 4);
    str(&b, "127.0.0.1", 1);
    size_t at = b.n;
    put(&b, 40001, 4);
    put(&b, 0, 1);   /* rack: null */
    put(&b, 0, 1);   /* tags */
    done(&b);
    assert_int_equal(kafka_wire_set_ports(b.b, b.n, KAFKA_METADATA, 9, 9092), 1);
    assert_int_equal(port_at(&b, at), 9092);
}

static void find_coordinator_v2_and_v3(void **state)
{
    (void)state;
    for (int v = 2; v <= 3; v++) {
        struct buf b = {.n = 4};
        put(&b, 9, 4);
        if (v == 3)
            put(&b, 0, 1); /* header tags */
        put(&b, 0, 4);     /* throttle */
        put(&b, 0, 2);     /* error code */
        if (v == 3)
            put(&b, 0, 1); /* error message: null */
        else
            put(&b, 0xffff, 2);
        put(&b, 1, 4);
        str(&b, "127.0.0.1", v == 3);
        size_t at = b.n;
        put(&b, 40001, 4);
        if (v == 3)
            put(&b, 0, 1);
        done(&b);
        assert_int_equal(kafka_wire_set_ports(b.b, b.n, KAFKA_FIND_COORDINATOR, (int16_t)v, 9092),
                         1);
        assert_int_equal(port_at(&b, at), 9092);
    }
}

static void a_frame_that_does_not_parse_is_left_alone(void **state)
{
    (void)state;
    struct buf b = {.n = 4};
    put(&b, 1, 4);
    put(&b, 3, 4); /* three brokers, but only one follows */
    put(&b, 1, 4);
    str(&b, "127.0.0.1", 0);
    put(&b, 40001, 4);
    put(&b, 0xffff, 2);
    done(&b);
    struct buf before = b;
    assert_int_equal(kafka_wire_set_ports(b.b, b.n, KAFKA_METADATA, 2, 9092), -1);
    assert_memory_equal(b.b, before.b, b.n);
    assert_int_equal(kafka_wire_set_ports(b.b, b.n, 18, 3, 9092), -1); /* not ours */
    assert_int_equal(kafka_wire_frame_len(b.b, 3), 0);
}

static void request_headers(void **state)
{
    (void)state;
    struct buf b = {.n = 4};
    put(&b, KAFKA_METADATA, 2);
    put(&b, 4, 2);
    put(&b, 1234, 4);
    done(&b);
    int16_t key, version;
    int32_t id;
    assert_int_equal(kafka_wire_request(b.b, b.n, &key, &version, &id), 0);
    assert_int_equal(key, KAFKA_METADATA);
    assert_int_equal(version, 4);
    assert_int_equal(id, 1234);
    assert_int_equal(kafka_wire_request(b.b, 8, &key, &version, &id), -1);
}

/* Produce: acks follows the client id (and the transactional id from v3,
 * compact with tags from v9); acks 0 means no answer will come. */
static void produce_acks(void **state)
{
    (void)state;
    const int16_t versions[] = {2, 3, 7, 9};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        int16_t v = versions[i], acks = 99;
        struct buf b = {.n = 4};
        put(&b, KAFKA_PRODUCE, 2);
        put(&b, (uint64_t)v, 2);
        put(&b, 8, 4);
        str(&b, "producer", 0); /* client id: never compact */
        if (v >= 9)
            put(&b, 0, 1); /* header tags */
        if (v >= 9)
            str(&b, "tx", 1);
        else if (v >= 3)
            put(&b, 0xffff, 2); /* transactional id: null */
        put(&b, v == 7 ? 0 : 0xffff, 2); /* acks: 0, or -1 (all) */
        put(&b, 30000, 4);             /* timeout */
        done(&b);
        assert_int_equal(kafka_wire_produce_acks(b.b, b.n, v, &acks), 0);
        assert_int_equal(acks, v == 7 ? 0 : -1);
        assert_int_equal(kafka_wire_produce_acks(b.b, 14, v, &acks), -1); /* cut */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metadata_v2_ports_are_set),
        cmocka_unit_test(metadata_v9_flexible_ports_are_set),
        cmocka_unit_test(find_coordinator_v2_and_v3),
        cmocka_unit_test(a_frame_that_does_not_parse_is_left_alone),
        cmocka_unit_test(request_headers),
        cmocka_unit_test(produce_acks),
    };
    return cmocka_run_group_tests_name("kafka wire", tests, NULL, NULL);
}
