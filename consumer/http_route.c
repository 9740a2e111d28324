/* The HTTP route matcher: methods and path patterns, no sockets. */
#include "http_route.h"

#include <string.h>

size_t http_route_prefix_len(const char *pattern)
{
    const char *slash = strchr(pattern + 1, '/');
    return slash ? (size_t)(slash - pattern) : strlen(pattern);
}

/* Whether path (up to '?' or its end) has pattern's shape; fills params. */
static int path_matches(const char *pattern, const char *path, struct http_params *params)
{
    params->n = 0;
    while (*pattern && *path && *path != '?') {
        if (*pattern != '/' || *path != '/')
            return 0;
        pattern++;
        path++;
        size_t plen = strcspn(pattern, "/");
        size_t slen = strcspn(path, "/?");
        if (plen >= 2 && pattern[0] == '{' && pattern[plen - 1] == '}') {
            if (slen == 0 || slen > HTTP_PARAM_MAX || params->n == HTTP_PARAMS_MAX)
                return 0;
            params->p[params->n].name = pattern + 1;
            params->p[params->n].name_len = plen - 2;
            memcpy(params->p[params->n].value, path, slen);
            params->p[params->n].value[slen] = '\0';
            params->n++;
        } else if (plen != slen || memcmp(pattern, path, plen) != 0) {
            return 0;
        }
        pattern += plen;
        path += slen;
    }
    return !*pattern && (!*path || *path == '?');
}

int http_route_match(const struct http_route *routes, size_t n, const char *method,
                     const char *path, struct http_params *params)
{
    int found = HTTP_ROUTE_NONE;
    for (size_t i = 0; i < n; i++) {
        if (!path_matches(routes[i].pattern, path, params))
            continue;
        if (strcmp(routes[i].method, method) == 0)
            return (int)i;
        found = HTTP_ROUTE_BAD_METHOD;
    }
    params->n = 0;
    return found;
}

const char *http_param(const struct http_params *params, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < params->n; i++) {
        if (params->p[i].name_len == len && memcmp(params->p[i].name, name, len) == 0)
            return params->p[i].value;
    }
    return NULL;
}
