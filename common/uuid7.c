/* UUIDv7: time-ordered notification ids. */
#include "uuid7.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>

#include "timeutil.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms;
static uint16_t counter; /* the 12-bit rand_a field, used as a counter within one ms */

static void fill_random(uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
}

void uuid7_generate(char out[UUID7_LEN])
{
    uint8_t b[16];
    int64_t ms = now_wall_ms();
    uint16_t seq;

    fill_random(b, sizeof(b));

    pthread_mutex_lock(&lock);
    if (ms > last_ms) {
        last_ms = ms;
        counter = (uint16_t)(((b[6] << 8) | b[7]) & 0x03ff); /* random start, room to count up */
    } else if (++counter > 0x0fff) {
        /* More than the counter holds in one ms: borrow the next ms. */
        last_ms++;
        counter = 0;
    }
    ms = last_ms;
    seq = counter;
    pthread_mutex_unlock(&lock);

    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (seq >> 8));
    b[7] = (uint8_t)seq;
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));

    snprintf(out, UUID7_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}
