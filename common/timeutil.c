/* Clocks and ISO-8601 timestamps. */
#define _GNU_SOURCE /* timegm */
#include "timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec wall_in_ms(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

int64_t now_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int iso8601_from_ms(int64_t ms, char out[ISO8601_LEN])
{
    /* Years 1970..9999 keep the format fixed-width. */
    if (ms < 0 || ms > INT64_C(253402300799999))
        return -1;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return -1;
    size_t n = strftime(out, ISO8601_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, ISO8601_LEN - n, ".%03dZ", (int)(ms % 1000));
    return 0;
}

static int digits(const char *s, int n, int *val)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *val = v;
    return 0;
}

int iso8601_parse(const char *s, size_t len, int64_t *ms)
{
    struct tm tm;
    int year, mon, day, hour, min, sec, frac = 0;
    size_t i = 19;

    memset(&tm, 0, sizeof(tm));
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        return -1;
    if (digits(s, 4, &year) || digits(s + 5, 2, &mon) || digits(s + 8, 2, &day) ||
        digits(s + 11, 2, &hour) || digits(s + 14, 2, &min) || digits(s + 17, 2, &sec))
        return -1;
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -1;

    if (s[i] == '.') {
        int scale = 100, nd = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
            frac += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (nd == 0)
            return -1;
    }

    int offset_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_min = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1;

    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + frac;
    return 0;
}
