/* Levelled, timestamped log lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level max_level = LOG_INFO;
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
    fprintf(stderr, "%s.%03ldZ %-5s %s\n", when, (long)(tv.tv_usec / 1000), names[level], line);
}
