/* HTTP requests over libwebsockets: routing, bodies, answers now or later. */
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "xalloc.h"

#define RESPONSE_HEADERS 512

struct http_request {
    struct lws *wsi;   /* NULL once the client went away */
    int refs;          /* the connection's, and the handler's until it answers */
    const struct http_route *route;
    struct http_params params;
    char *body;
    size_t body_len;
    int head;          /* HEAD: answered as GET, without the body */
    int close;         /* answered before its body was read: close after */
    int status;        /* 0 until answered */
    int headers_sent;
    char content_type[64];
    char *resp;
    size_t resp_len;
    /* Headers beyond the common ones ("name:" and value), added before
     * the answer. */
    struct {
        char name[40];
        char value[200];
    } extra[HTTP_EXTRA_HEADERS];
    int nextra;
};

/* By lws's LWSHUMETH_* index; HEAD is matched as GET. */
static const char *const method_names[] = {
    [LWSHUMETH_GET] = "GET",         [LWSHUMETH_POST] = "POST",
    [LWSHUMETH_OPTIONS] = "OPTIONS", [LWSHUMETH_PUT] = "PUT",
    [LWSHUMETH_PATCH] = "PATCH",     [LWSHUMETH_DELETE] = "DELETE",
    [LWSHUMETH_CONNECT] = "CONNECT", [LWSHUMETH_HEAD] = "GET",
};

static void release(http_request_t *req)
{
    if (--req->refs > 0)
        return;
    free(req->body);
    free(req->resp);
    free(req);
}

/* Answers at once with {"error": why}; the request's body, if any, is
 * not read, so the connection closes after the answer. */
static int answer_error(http_request_t *req, int status, const char *why)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
    req->close = 1;
    req->refs++; /* http_respond drops one, as for a handler */
    http_respond(req, status, "application/json", body, (size_t)n);
    return 0;
}

/* Whether path is under one of srv's route prefixes ("/api/…"). */
static int under_routes(const struct http_server *srv, const char *path)
{
    for (size_t i = 0; i < srv->nroutes; i++) {
        const char *pattern = srv->routes[i].pattern;
        size_t n = http_route_prefix_len(pattern);
        if (strncmp(path, pattern, n) == 0 && (path[n] == '/' || path[n] == '\0' || path[n] == '?'))
            return 1;
    }
    return 0;
}

/* A missing file or path: JSON under the routes, a small page elsewhere
 * (libwebsockets' own links a stylesheet that is not there). */
static const char not_found_page[] =
    "<!doctype html><html lang=en><meta charset=utf-8><title>Not found</title>"
    "<style>body{font:16px system-ui,sans-serif;margin:3em;color:#1f2328}</style>"
    "<h1>Not found</h1><p>Nothing is served at this address. The gateway's page is "
    "<a href=\"/\">/</a>.</p></html>\n";

static int answer_not_found(const struct http_server *srv, http_request_t *req, const char *path)
{
    if (under_routes(srv, path))
        return answer_error(req, HTTP_STATUS_NOT_FOUND, "no such path");
    req->refs++; /* http_respond drops one, as for a handler */
    http_respond(req, HTTP_STATUS_NOT_FOUND, "text/html; charset=utf-8", not_found_page,
                 sizeof(not_found_page) - 1);
    return 0;
}

static void dispatch(const struct http_server *srv, http_request_t *req)
{
    req->refs++; /* the handler's */
    req->route->handle(srv->ctx, req);
}

int http_on_request(const struct http_server *srv, struct lws *wsi, struct http_session *s)
{
    char *uri;
    int uri_len, m = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
    char path[512];
    struct http_params params;

    if (m < 0 || (size_t)m >= sizeof(method_names) / sizeof(method_names[0]) ||
        !method_names[m] || uri_len < 1 || (size_t)uri_len >= sizeof(path)) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return -1;
    }
    memcpy(path, uri, (size_t)uri_len);
    path[uri_len] = '\0';
    int r = http_route_match(srv->routes, srv->nroutes, method_names[m], path, &params);

    http_on_closed(s); /* a pipelined request's predecessor, if still held */
    http_request_t *req = s->req = xcalloc(1, sizeof(*req));
    req->wsi = wsi;
    req->refs = 1;
    req->head = m == LWSHUMETH_HEAD;
    req->params = params;
    if (r == HTTP_ROUTE_NONE)
        return answer_not_found(srv, req, path);
    if (r == HTTP_ROUTE_BAD_METHOD)
        return answer_error(req, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed on this path");
    req->route = &srv->routes[r];

    char clen[24];
    if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && atol(clen) > 0) {
        if ((size_t)atol(clen) > req->route->max_body)
            return answer_error(req, HTTP_STATUS_REQ_ENTITY_TOO_LARGE,
                                "request body over this path's limit");
        return 0; /* handled once the body is in */
    }
    dispatch(srv, req);
    return 0;
}

int http_on_body(struct lws *wsi, struct http_session *s, const void *in, size_t len)
{
    http_request_t *req = s->req;
    (void)wsi;
    /* Content-Length was checked against the limit: lws passes no more. */
    if (!req || !req->route || req->status || !len)
        return 0; /* (lws may call with an empty body) */
    req->body = xrealloc(req->body, req->body_len + len + 1);
    memcpy(req->body + req->body_len, in, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return 0;
}

int http_on_body_done(const struct http_server *srv, struct lws *wsi, struct http_session *s)
{
    (void)wsi;
    if (s->req && s->req->route && !s->req->status)
        dispatch(srv, s->req);
    return 0;
}

void http_respond(http_request_t *req, int status, const char *content_type, const char *body,
                  size_t len)
{
    if (req->status) {
        log_error("a request was answered twice; the second answer (%d) is dropped", status);
    } else {
        req->status = status;
        snprintf(req->content_type, sizeof(req->content_type), "%s", content_type);
        req->resp = xstrndup(body, len);
        req->resp_len = len;
        if (req->wsi)
            lws_callback_on_writable(req->wsi);
    }
    release(req); /* the handler's */
}

int http_on_writeable(struct lws *wsi, struct http_session *s)
{
    http_request_t *req = s->req;
    if (!req || !req->status)
        return 0;
    if (!req->headers_sent) {
        unsigned char buf[LWS_PRE + RESPONSE_HEADERS];
        unsigned char *p = buf + LWS_PRE, *end = buf + sizeof(buf);
        if (lws_add_http_common_headers(wsi, (unsigned int)req->status, req->content_type,
                                        req->resp_len, &p, end))
            return 1;
        for (int i = 0; i < req->nextra; i++)
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)req->extra[i].name,
                                            (const unsigned char *)req->extra[i].value,
                                            (int)strlen(req->extra[i].value), &p, end))
                return 1;
        if (lws_finalize_write_http_header(wsi, buf + LWS_PRE, &p, end))
            return 1;
        req->headers_sent = 1;
        if (!req->head) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    int written = 1, close = req->close;
    if (!req->head) {
        unsigned char *out = xmalloc(LWS_PRE + req->resp_len);
        memcpy(out + LWS_PRE, req->resp, req->resp_len);
        written = lws_write(wsi, out + LWS_PRE, req->resp_len, LWS_WRITE_HTTP_FINAL) ==
                  (int)req->resp_len;
        free(out);
    }
    http_on_closed(s); /* answered: the connection is done with it */
    if (!written || close)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void http_on_closed(struct http_session *s)
{
    if (!s->req)
        return;
    s->req->wsi = NULL;
    release(s->req);
    s->req = NULL;
}

const char *http_request_param(const http_request_t *req, const char *name)
{
    return http_param(&req->params, name);
}

void http_add_header(http_request_t *req, const char *name, const char *value)
{
    if (req->nextra == HTTP_EXTRA_HEADERS)
        return;
    snprintf(req->extra[req->nextra].name, sizeof(req->extra[0].name), "%s", name);
    snprintf(req->extra[req->nextra].value, sizeof(req->extra[0].value), "%s", value);
    req->nextra++;
}

#define URL_ARGS_MAX 64

/* The value of the query argument name ("userId="): its length, -1 when
 * absent, -2 when present but unusable: longer than buf (libwebsockets'
 * own lookup would return it cut), or holding a decoded control character.
 * The first of repeated ones counts. */
int http_url_arg(struct lws *wsi, const char *name, char *buf, size_t size)
{
    size_t nlen = strlen(name);
    for (int n = 0; n < URL_ARGS_MAX; n++) {
        int flen = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, n);
        if (flen <= 0)
            return -1;
        char *frag = xmalloc((size_t)flen + 1);
        int got = lws_hdr_copy_fragment(wsi, frag, flen + 1, WSI_TOKEN_HTTP_URI_ARGS, n);
        int rc = -1;
        if (got >= (int)nlen && strncmp(frag, name, nlen) == 0) {
            size_t vlen = (size_t)got - nlen;
            rc = vlen < size ? (int)vlen : -2;
            for (size_t i = 0; rc >= 0 && i < vlen; i++)
                if ((unsigned char)frag[nlen + i] < 0x20 || frag[nlen + i] == 0x7f)
                    rc = -2;
            if (rc >= 0) {
                memcpy(buf, frag + nlen, vlen);
                buf[vlen] = '\0';
            }
        }
        free(frag);
        if (rc != -1)
            return rc;
    }
    return -1;
}

int http_request_query(const http_request_t *req, const char *name, char *buf, size_t size)
{
    return req->wsi ? http_url_arg(req->wsi, name, buf, size) : -1;
}

const char *http_header(struct lws *wsi, enum lws_token_indexes h, char *buf, size_t size)
{
    int len = wsi ? lws_hdr_total_length(wsi, h) : 0;
    if (len <= 0 || (size_t)len >= size || lws_hdr_copy(wsi, buf, (int)size, h) != len)
        return NULL;
    return buf;
}

int http_bearer(struct lws *wsi, char *buf, size_t size)
{
    if (!http_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, buf, size) ||
        strncasecmp(buf, "Bearer ", 7) != 0 || !buf[7])
        return 0;
    size_t len = strlen(buf) - 7;
    memmove(buf, buf + 7, len + 1); /* with its NUL */
    return (int)len;
}

const char *http_request_header(const http_request_t *req, enum lws_token_indexes h, char *buf,
                                size_t size)
{
    return http_header(req->wsi, h, buf, size);
}

const char *http_request_bearer(const http_request_t *req, char *buf, size_t size)
{
    return http_bearer(req->wsi, buf, size) ? buf : NULL;
}

const char *http_request_body(const http_request_t *req, size_t *len)
{
    *len = req->body_len;
    return req->body ? req->body : "";
}

const struct lws_http_mount *http_mounts(const struct http_server *srv, struct http_mounts *out,
                                         const char *protocol, const struct lws_http_mount *next)
{
    size_t n = 0;
    for (size_t i = 0; i < srv->nroutes; i++) {
        const char *pattern = srv->routes[i].pattern;
        size_t len = http_route_prefix_len(pattern), j;
        for (j = 0; j < n; j++) {
            if (strlen(out->prefix[j]) == len && memcmp(out->prefix[j], pattern, len) == 0)
                break;
        }
        if (j < n)
            continue;
        if (n == HTTP_MOUNTS_MAX || len >= sizeof(out->prefix[n]))
            return NULL;
        memcpy(out->prefix[n], pattern, len);
        out->prefix[n][len] = '\0';
        memset(&out->m[n], 0, sizeof(out->m[n]));
        out->m[n].mountpoint = out->prefix[n];
        out->m[n].mountpoint_len = (unsigned char)len;
        out->m[n].origin = protocol;
        out->m[n].origin_protocol = LWSMPRO_CALLBACK;
        n++;
    }
    for (size_t j = 0; j < n; j++)
        out->m[j].mount_next = j + 1 < n ? &out->m[j + 1] : next;
    return n ? &out->m[0] : next;
}
