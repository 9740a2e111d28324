/* Levelled, timestamped log lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "utf8.h"

static enum log_level max_level = LOG_INFO;
static int json; /* --log-format json */
static const char *const names[] = {"error", "warn", "info", "debug"};

int log_set_level(const char *name)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i]) == 0) {
            max_level = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_set_format(const char *name)
{
    if (strcmp(name, "text") != 0 && strcmp(name, "json") != 0)
        return -1;
    json = strcmp(name, "json") == 0;
    return 0;
}

/* text as a JSON string's contents into out (size bytes, NUL-ended): quote,
 * backslash and control characters escaped, bytes that are not UTF-8 as
 * U+FFFD, so that every line parses whatever a message quotes. */
static void json_escape(const char *text, char *out, size_t size)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t o = 0, n = strlen(text);
    for (size_t i = 0; i < n && o + 8 < size;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            i++;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            out[o++] = (char)c;
            i++;
        } else {
            size_t len = utf8_seq(s + i, n - i);
            if (len) {
                memcpy(out + o, s + i, len);
                o += len;
                i += len;
            } else {
                o += (size_t)snprintf(out + o, size - o, "\\ufffd");
                i++;
            }
        }
    }
    out[o] = '\0';
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > max_level)
        return;

    struct timeval tv;
    struct tm tm;
    char when[32];
    char line[2048];
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    /* One fprintf per line so lines from several threads do not interleave. */
    if (json) {
        char escaped[sizeof(line) * 2];
        json_escape(line, escaped, sizeof(escaped));
        fprintf(stderr, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"}\n", when,
                (long)(tv.tv_usec / 1000), names[level], escaped);
    } else {
        fprintf(stderr, "%s.%03ldZ %-5s %s\n", when, (long)(tv.tv_usec / 1000), names[level],
                line);
    }
}
