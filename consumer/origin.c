/* The Origin check. */
#include "origin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xalloc.h"

#define ORIGIN_MAX 256

/* "scheme://host[:port]" with no path, query or user part. */
static int origin_shaped(const char *s, size_t len)
{
    const char *sep = strstr(s, "://");
    if (!sep || sep == s || len > ORIGIN_MAX)
        return 0;
    for (const char *p = s; p < sep; p++)
        if (!isalpha((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
            return 0;
    const char *host = sep + 3;
    return *host && !strpbrk(host, "/?#@ \t");
}

int origins_parse(struct origins *o, const char *csv, char *errstr, size_t size)
{
    memset(o, 0, sizeof(*o));
    const char *p = csv;
    while (*p) {
        size_t len = strcspn(p, ",");
        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        size_t end = len;
        while (end && (isspace((unsigned char)p[end - 1]) || p[end - 1] == '/'))
            end--;
        if (end) {
            char *entry = xmalloc(end + 1);
            for (size_t i = 0; i < end; i++)
                entry[i] = (char)tolower((unsigned char)p[i]);
            entry[end] = '\0';
            int literal = strcmp(entry, "*") == 0 || strcmp(entry, "null") == 0;
            if (o->n == ORIGINS_MAX || (!literal && !origin_shaped(entry, end))) {
                snprintf(errstr, size,
                         "\"%.80s\" is not an origin such as https://app.example.com (at most "
                         "%d of them, comma-separated, or *)", entry, ORIGINS_MAX);
                free(entry);
                origins_free(o);
                return -1;
            }
            o->list[o->n++] = entry;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

void origins_free(struct origins *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->list[i]);
    o->n = 0;
}

int origin_allowed(const struct origins *o, const char *origin, const char *host)
{
    if (!origin || !*origin)
        return 1;
    char buf[ORIGIN_MAX + 1];
    size_t len = strlen(origin);
    while (len && origin[len - 1] == '/')
        len--;
    if (len > ORIGIN_MAX)
        return 0;
    memcpy(buf, origin, len);
    buf[len] = '\0';
    origin = buf;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->list[i], "null") == 0 && len == 4 && strncmp(origin, "null", 4) == 0)
            return 1; /* a page opened from a file (or a sandboxed frame): only if listed */
    if (!origin_shaped(origin, len))
        return 0;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->list[i], "*") == 0 ||
            (strlen(o->list[i]) == len && strncasecmp(o->list[i], origin, len) == 0))
            return 1;
    if (o->n || !host || !*host)
        return 0;
    /* Same origin: the page came from this Host. */
    const char *authority = strstr(origin, "://") + 3;
    return strlen(host) == len - (size_t)(authority - origin) &&
           strncasecmp(authority, host, strlen(host)) == 0;
}
